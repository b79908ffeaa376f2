// Drawing checked by the model's own reading (lib/self-check.ts): the rule that decides which
// questions apply to a request, the file format, and on the shipped demo model (whose folder has
// self_check.json) that the kept drawing is reproducible from its seed, that its readings are the
// model's own answers, and that the check draws the requested colour and shape more often than a
// single drawing does on the committed held-out requests.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  CheckpointError,
  InputError,
  candidateSeed,
  demoModelDir,
  generateImageSelfChecked,
  loadModel,
  loadReadBackCheck,
  parseReadBackCheck,
  wantedAnswers,
} from '../../lib/index.js';
import type { ReadBackCheck, VargptModel } from '../../lib/index.js';
import { judgeDrawing } from '../../training/demo/judge.mjs';
import { repoRoot } from '../helpers/paths.js';
import { postJson, startServer } from '../helpers/server.js';

interface EvalSet {
  colours: Record<string, number[]>;
  draw: Array<{ prompt: string; colour: string; shape: string; seed: number }>;
}

const setDir = path.join(repoRoot, 'training', 'demo', 'eval-set');
const heldOut = JSON.parse(readFileSync(path.join(setDir, 'eval-set.json'), 'utf8')) as EvalSet;
const seen = JSON.parse(readFileSync(path.join(setDir, 'seen.json'), 'utf8')) as EvalSet;

const shapes: ReadBackCheck = {
  questions: [
    { question: 'what colour is the shape?', answers: ['red', 'green', 'blue'] },
    { question: 'what shape is this?', answers: ['circle', 'square'] },
  ],
};

describe('which questions a request asks', () => {
  it('a question applies when the request names exactly one of its answers, as a whole word', () => {
    expect(wantedAnswers('Draw a big RED circle on the left', shapes)).toEqual([
      { question: 'what colour is the shape?', wanted: 'red' },
      { question: 'what shape is this?', wanted: 'circle' },
    ]);
    // Two colours named: which one the shape should be is not the check's to guess.
    expect(wantedAnswers('a red circle on a blue background', shapes)).toEqual([{ question: 'what shape is this?', wanted: 'circle' }]);
    // "reddish" and "circles" are other words.
    expect(wantedAnswers('something reddish with circles', shapes)).toEqual([]);
  });

  it('self_check.json: absent gives null; malformed is a CheckpointError naming the file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vargpt-self-check-'));
    try {
      expect(await loadReadBackCheck(dir)).toBeNull();
      writeFileSync(path.join(dir, 'self_check.json'), '{"questions": [');
      await expect(loadReadBackCheck(dir)).rejects.toThrow(CheckpointError);
      await expect(loadReadBackCheck(dir)).rejects.toThrow(/self_check\.json is not valid JSON/);
      writeFileSync(path.join(dir, 'self_check.json'), JSON.stringify({ questions: [{ question: 'what colour?', answers: ['Red'] }] }));
      await expect(loadReadBackCheck(dir)).rejects.toThrow(/answers must be a non-empty array of lower-case words/);
      expect(() => parseReadBackCheck({ questions: [] }, 'x')).toThrow(/non-empty array/);
      expect(() => parseReadBackCheck(null, 'x')).toThrow(CheckpointError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('candidate seeds: the first is the given seed, the rest far apart, all below 2^48', () => {
    expect(candidateSeed(5, 0)).toBe(5);
    expect(candidateSeed(5, 1)).not.toBe(candidateSeed(6, 0));
    expect(new Set([0, 1, 2, 3].flatMap((k) => [candidateSeed(4, k), candidateSeed(5, k)])).size).toBe(8);
    expect(candidateSeed(2 ** 48 - 1, 3)).toBeLessThan(2 ** 48);
  });
});

describe('self-checked drawing on the shipped demo model', () => {
  let model: VargptModel;
  let check: ReadBackCheck;
  beforeAll(async () => {
    model = await loadModel(demoModelDir());
    const loaded = await loadReadBackCheck(demoModelDir());
    if (!loaded) throw new Error('the demo model folder has no self_check.json');
    check = loaded;
  });
  afterAll(async () => {
    await model.dispose();
  });

  it('keeps a drawing reproducible from its seed, with the readings the model gives when asked', async () => {
    let redrawn = 0;
    for (const d of heldOut.draw.slice(0, 8)) {
      const reply = await generateImageSelfChecked(model, d.prompt, { seed: d.seed, candidates: 4, check });
      const report = reply.selfCheck;
      expect(report.drawn).toBeGreaterThanOrEqual(report.kept + 1);
      expect(report.drawn).toBeLessThanOrEqual(4);
      expect(report.readings).toHaveLength(report.drawn);
      expect(reply.seed).toBe(candidateSeed(d.seed, report.kept));
      const kept = report.readings[report.kept]!;
      expect(kept.map((r) => r.wanted)).toEqual([d.colour, d.shape]);
      expect(report.passed).toBe(kept.every((r) => r.answer === r.wanted));
      // A drawing that reads right ends the search; one that does not is followed by another.
      if (report.passed) expect(report.drawn).toBe(report.kept + 1);
      else expect(report.drawn).toBe(4);
      if (report.drawn > 1) redrawn++;
      const again = await model.generateImage(d.prompt, { seed: reply.seed });
      expect(Buffer.from(again.image.data).equals(Buffer.from(reply.image.data)), d.prompt).toBe(true);
      for (const r of kept) expect((await model.ask(again.image, r.question)).text.trim()).toBe(r.answer);
    }
    // Measured: 4 of these 8 requests need more than one drawing.
    expect(redrawn).toBeGreaterThan(0);
  });

  it('bad candidates and a request naming nothing: a clear error, or one drawing; the model stays usable', async () => {
    for (const candidates of [0, 65, 1.5, Number.NaN]) {
      await expect(generateImageSelfChecked(model, 'draw a red circle', { candidates, check })).rejects.toThrow(InputError);
    }
    await expect(generateImageSelfChecked(model, 'draw a red circle', { candidates: 2, check: { questions: [] } })).rejects.toThrow(InputError);
    const once = await generateImageSelfChecked(model, 'draw something', { seed: 3, candidates: 4, check });
    expect(once.selfCheck).toMatchObject({ kept: 0, drawn: 1, passed: true, readings: [[]] });
    expect(once.seed).toBe(3);
    const aborted = new AbortController();
    aborted.abort();
    await expect(generateImageSelfChecked(model, 'draw a red circle', { candidates: 4, check, signal: aborted.signal })).rejects.toThrow(/abort/i);
    expect((await model.generateImage('draw a red circle', { seed: 1 })).image.width).toBe(64);
  });

  it('the server self-checks image generations for a model given a check, and says what it read', async () => {
    const server = await startServer({ demo: model, plain: model }, { selfChecks: { demo: check } });
    try {
      const url = `${server.url}/v1/images/generations`;
      const d = heldOut.draw[4]!;
      const checked = await postJson(url, { model: 'demo', prompt: d.prompt, seed: d.seed, n: 2 });
      expect(checked.status, JSON.stringify(checked.json)).toBe(200);
      const data = checked.json['data'] as Array<{ b64_json: string; seed: number; self_check: { kept: number; drawn: number; candidates: number } }>;
      expect(data).toHaveLength(2);
      for (const [i, item] of data.entries()) {
        expect(item.self_check.candidates).toBe(4);
        expect(item.seed).toBe(candidateSeed(d.seed + i, item.self_check.kept));
        const direct = await generateImageSelfChecked(model, d.prompt, { seed: d.seed + i, candidates: 4, check });
        expect(item.b64_json).toBe((await direct.image.toPNG()).toString('base64'));
      }
      const once = await postJson(url, { model: 'demo', prompt: d.prompt, seed: d.seed, candidates: 1 });
      expect(once.status).toBe(200);
      const onceData = once.json['data'] as Array<{ seed: number; self_check?: unknown }>;
      expect(onceData[0]).toMatchObject({ seed: d.seed });
      expect(onceData[0]!.self_check).toBeUndefined();
      const plain = await postJson(url, { model: 'plain', prompt: d.prompt, seed: d.seed });
      expect((plain.json['data'] as Array<{ seed: number; self_check?: unknown }>)[0]!.self_check).toBeUndefined();
      const refused = await postJson(url, { model: 'plain', prompt: d.prompt, candidates: 2 });
      expect(refused.status).toBe(400);
      expect(refused.json.error).toMatchObject({ param: 'candidates' });
      expect(refused.json.error?.message).toContain('has no self-check');
      const bad = await postJson(url, { model: 'demo', prompt: d.prompt, candidates: 65 });
      expect(bad.status).toBe(400);
      expect(bad.json.error?.param).toBe('candidates');
    } finally {
      await server.close();
    }
    await expect(startServer({ demo: model }, { selfChecks: { other: check } })).rejects.toThrow(/no served model is named "other"/);
  });

  // Measured on the committed sets with their seeds (training/demo/eval.mjs --candidates 4):
  // held-out 45 of 50 (a single drawing: 40), seen 49 (45); over 400 fresh held-out draws 86.5%
  // and 88%, seen 95%. The bounds sit about 2.5 standard errors of 50 draws below those rates, as
  // test/api/demo-model.test.ts's do, and the check must not draw fewer right than one drawing.
  it('draws the requested colour and shape: held-out at least 38 of 50 (measured 45) and no fewer than single drawings; seen 44 (49)', async () => {
    const judged = async (set: EvalSet, candidates: number) => {
      let right = 0;
      for (const d of set.draw) {
        const { image } = candidates > 1 ? await generateImageSelfChecked(model, d.prompt, { seed: d.seed, candidates, check }) : await model.generateImage(d.prompt, { seed: d.seed });
        const v = judgeDrawing(image.data, image.width, image.height, set.colours);
        if (v.colour === d.colour && v.shape === d.shape) right++;
      }
      return right;
    };
    const checked = await judged(heldOut, 4);
    expect(checked).toBeGreaterThanOrEqual(38);
    expect(checked).toBeGreaterThanOrEqual(await judged(heldOut, 1));
    expect(await judged(seen, 4)).toBeGreaterThanOrEqual(44);
    // About 400 drawings and 700 answers: 14 s here, about ten times that on the sanitizer build.
  }, 600_000);
});
