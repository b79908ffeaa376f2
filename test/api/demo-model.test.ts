// The shipped demo model (models/vargpt-v1-demo, trained by training/demo/ and shipped as the int8
// quantization of its bf16 master, training/demo/model-bf16) against the committed
// evaluation sets (training/demo/eval-set: held-out colour x shape pairs, and seen pairs), with
// their fixed seeds, judged as training/demo/eval.mjs judges them (drawings from the pixels by
// judge.mjs, answers by exact match). The bounds sit below the figures measured on the shipped
// checkpoint and recorded in the README ("The built-in demo model"), so a broken runtime or a
// damaged checkpoint fails here: a model drawing at random would get the colour right about 1 time
// in 6 and colour and shape together 1 in 24.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeImage, demoModelDir, loadModel } from '../../lib/index.js';
import type { VargptModel } from '../../lib/index.js';
import { judgeDrawing } from '../../training/demo/judge.mjs';
import { repoRoot } from '../helpers/paths.js';

interface EvalSet {
  colours: Record<string, number[]>;
  draw: Array<{ prompt: string; colour: string; shape: string; seed: number }>;
  ask: Array<{ image: string; question: string; answer: string; kind: string; colour: string; shape: string }>;
}

const setDir = path.join(repoRoot, 'training', 'demo', 'eval-set');
// The trained checkpoint at the precision it was exported in; the repository keeps it, the package
// ships `vargpt quantize --weights int8` of it.
const masterDir = path.join(repoRoot, 'training', 'demo', 'model-bf16');
const heldOut = JSON.parse(readFileSync(path.join(setDir, 'eval-set.json'), 'utf8')) as EvalSet;
const seen = JSON.parse(readFileSync(path.join(setDir, 'seen.json'), 'utf8')) as EvalSet;

let model: VargptModel;
beforeAll(async () => {
  model = await loadModel(demoModelDir());
});
afterAll(async () => {
  await model.dispose();
});

async function drawAll(set: EvalSet) {
  const rows = [];
  for (const d of set.draw) {
    const { image } = await model.generateImage(d.prompt, { seed: d.seed });
    expect([image.width, image.height]).toEqual([64, 64]);
    const v = judgeDrawing(image.data, image.width, image.height, set.colours);
    rows.push({ colour: v.colour === d.colour, both: v.colour === d.colour && v.shape === d.shape });
  }
  return { colour: rows.filter((r) => r.colour).length, both: rows.filter((r) => r.both).length };
}

async function askAll(set: EvalSet) {
  const rows = [];
  for (const q of set.ask) {
    const reply = await model.ask(path.join(setDir, q.image), q.question);
    rows.push({ kind: q.kind, ok: reply.text.trim() === q.answer, got: reply.text.trim(), want: q.answer });
  }
  return rows;
}

describe('the shipped demo model', () => {
  it('is a VARGPT v1 checkpoint that reads and draws 64x64 images', () => {
    const info = model.info;
    if (info.family !== 'vargpt-v1') throw new Error(`the demo model is ${info.family}, expected vargpt-v1`);
    expect(info.vision).not.toBeNull();
    expect(info.vqvae?.imageSize).toBe(64);
    // Shipped as int8 (LLM and VAR linear layers); 18,681,878 bytes.
    expect(info.llm.weights).toBe('int8');
    expect(info.var?.weights).toBe('int8');
    expect(statSync(path.join(demoModelDir(), 'model.safetensors')).size).toBeLessThan(20 * 2 ** 20);
  });

  it('the judge reads the world itself right: every committed image judges as its own colour and shape', async () => {
    for (const set of [heldOut, seen]) {
      for (const q of set.ask) {
        const rgb = await decodeImage(path.join(setDir, q.image));
        const v = judgeDrawing(rgb.data, rgb.width, rgb.height, set.colours);
        expect([v.colour, v.shape], q.image).toEqual([q.colour, q.shape]);
      }
    }
  });

  it('answers questions: 44 of 50 on held-out pairs (measured 48), 46 on seen ones (50); colour and background at least 19 of 20 on each set (measured 19 and 20)', async () => {
    for (const [set, bound] of [[heldOut, 44], [seen, 46]] as const) {
      const rows = await askAll(set);
      const misses = rows.filter((r) => !r.ok);
      expect(rows.length - misses.length, JSON.stringify(misses)).toBeGreaterThanOrEqual(bound);
      const plain = rows.filter((r) => r.kind === 'colour' || r.kind === 'background');
      expect(plain.filter((r) => !r.ok).length, JSON.stringify(plain.filter((r) => !r.ok))).toBeLessThanOrEqual(1);
    }
  });

  // The bounds sit about 2.5 standard errors below the mean rate over 400 seeded draws per set
  // (held-out: both right 74.75%, colour 78.5%; seen: 85.5%, 86%), not below this set's own seeds'
  // figures: another CPU's f32 kernels round differently, and one tipped sample redraws the rest of
  // that picture, so another machine draws as if with other seeds.
  it('draws: on seen pairs the requested colour 37 of 50 times (measured 45), colour and shape 36 (45); on held-out pairs the colour 32 (41), both 30 (40)', async () => {
    const s = await drawAll(seen);
    expect(s.colour).toBeGreaterThanOrEqual(37);
    expect(s.both).toBeGreaterThanOrEqual(36);
    const h = await drawAll(heldOut);
    expect(h.colour).toBeGreaterThanOrEqual(32);
    expect(h.both).toBeGreaterThanOrEqual(30);
  });

  it('chat: a drawing request starts an image on its own, a question about an image is answered in words', async () => {
    const drawn = await model.chat([{ role: 'user', content: 'draw a red circle' }], { seed: 7 });
    expect(drawn.images).toHaveLength(1);
    const q = heldOut.ask[0]!;
    const answered = await model.chat([{ role: 'user', content: [{ type: 'image', image: path.join(setDir, q.image) }, { type: 'text', text: q.question }] }]);
    expect(answered.images).toHaveLength(0);
    expect(answered.text.trim()).toBe(q.answer);
  });
});

// Quantized weights on a trained checkpoint, whose logits (unlike a random-weight model's) are far
// from flat: prefill logits of every other question in both sets against the bf16 master's, and the
// answers; and the shipped int8 checkpoint against the master quantized on load (the same weights,
// so the same logits bit for bit). Measured (npm run bench -- quant-accuracy): max |Δ| 1.0% (int8)
// and 7.6% (q4) of the largest logit; int8 changes no answer of 100, q4 one. The bounds: int8's
// per-weight step is 1/254 of its row's largest weight and q4's 1/14 of its group's, which over a
// few layers stays near a percent for int8 and several for q4; 3% and 20% leave room for other
// CPUs' kernels and rounding.
describe('the demo model with quantized weights', () => {
  it('int8 and q4: prefill logits within 3% and 20% of the largest logit, answers as the stored model gives them', async () => {
    const questions = [...heldOut.ask.map((q) => ({ q, dir: setDir })), ...seen.ask.map((q) => ({ q, dir: setDir }))].filter((_, i) => i % 2 === 0);
    const run = async (m: VargptModel) => {
      const out: Array<{ text: string; logits: Float32Array }> = [];
      for (const { q, dir } of questions) {
        const reply = await m.ask(path.join(dir, q.image), q.question, { trace: true });
        const t = reply.trace?.['prefillLogits'] ?? reply.trace?.['prefill_last_logits'];
        if (!t) throw new Error('no prefill logits traced');
        out.push({ text: reply.text.trim(), logits: new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)) });
      }
      return out;
    };
    const stored = await (async () => {
      const master = await loadModel(masterDir);
      try {
        expect(master.info.llm.weights).toBe('bf16');
        return await run(master);
      } finally {
        await master.dispose();
      }
    })();
    const shipped = await run(model);
    for (const [weights, bound] of [['int8', 0.03], ['q4', 0.2]] as const) {
      const quantized = await loadModel(masterDir, { weights });
      try {
        const got = await run(quantized);
        let maxDiff = 0, maxRef = 0, same = 0;
        got.forEach((g, i) => {
          const ref = stored[i]!;
          for (let k = 0; k < ref.logits.length; k++) {
            maxDiff = Math.max(maxDiff, Math.abs(g.logits[k]! - ref.logits[k]!));
            maxRef = Math.max(maxRef, Math.abs(ref.logits[k]!));
          }
          if (g.text === ref.text) same++;
        });
        expect(maxDiff, `${weights}: max |Δ logit| of max |logit| ${maxRef}`).toBeLessThanOrEqual(bound * maxRef);
        expect(maxDiff, `${weights}: the weights really are quantized`).toBeGreaterThan(0);
        expect(same, `${weights}: answers equal to the stored model's`).toBeGreaterThanOrEqual(questions.length - 2);
        if (weights === 'int8') {
          got.forEach((g, i) => {
            expect(g.text).toBe(shipped[i]!.text);
            expect(Buffer.from(g.logits.buffer).equals(Buffer.from(shipped[i]!.logits.buffer)), `question ${i}: the shipped model's logits`).toBe(true);
          });
        }
      } finally {
        await quantized.dispose();
      }
    }
  });
});
