// The VARGPT v1 adapter (lib/families/vargpt-v1.ts) over the native test double: its defaults
// (the spec's values, seeded from generation_config.json where it has them), the progress events
// (stage 'scale', step 1..K of K, with the deprecated scale/scales aliases) and info.family.
import { afterAll, describe, expect, it } from 'vitest';

import { CheckpointError } from '../../lib/errors.js';
import { SPEC_DEFAULTS, vargptV1 } from '../../lib/families/vargpt-v1.js';
import { loadModelWith } from '../../lib/model.js';
import type { ChatEvent } from '../../lib/stream.js';
import { jsonCheckpoint, removeJsonCheckpoints } from '../helpers/checkpoint-copy.js';
import { FIXTURE_INFO, fakeAddon } from '../helpers/fake-native.js';
import { fixtureModel } from '../helpers/fixtures.js';

afterAll(removeJsonCheckpoints);

const SAMPLING = {
  do_sample: true,
  temperature: 0.6,
  top_p: 0.9,
  repetition_penalty: 1.05,
  max_new_tokens: 64,
  image_cfg: 3,
  image_top_k: 500,
  image_top_p: 0.9,
};

describe('VARGPT v1 defaults', () => {
  it('are the spec values: greedy text, cfg 1.5, top-k 900, top-p 0.96', () => {
    expect(vargptV1.specDefaults).toBe(SPEC_DEFAULTS);
    expect(SPEC_DEFAULTS).toEqual({
      text: { maxNewTokens: 512, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
      image: { cfg: 1.5, topK: 900, topP: 0.96 },
    });
  });

  it('without sampling keys in generation_config.json (the fixture), or without the file, the spec values apply', async () => {
    for (const dir of [fixtureModel, jsonCheckpoint({ generationConfig: null })]) {
      const addon = fakeAddon();
      const model = await loadModelWith(addon, dir);
      expect(model.defaults).toEqual(SPEC_DEFAULTS);
      await model.chat([{ role: 'user', content: 'hi' }], { seed: 1 });
      const req = addon.model.requests[0]!;
      expect([req.temperature, req.topK, req.topP, req.repetitionPenalty, req.maxNewTokens]).toEqual([0, 0, 1, 1, 512]);
      expect(req.image).toMatchObject({ cfg: 1.5, topK: 900, topP: 0.96 });
    }
  });

  it('come from generation_config.json where it has them; options still win', async () => {
    const addon = fakeAddon();
    const model = await loadModelWith(addon, jsonCheckpoint({ generationConfig: (g) => Object.assign(g, SAMPLING) }));
    // top_k is not in the file: with do_sample, transformers' 50 applies.
    expect(model.defaults).toEqual({
      text: { maxNewTokens: 64, temperature: 0.6, topK: 50, topP: 0.9, repetitionPenalty: 1.05 },
      image: { cfg: 3, topK: 500, topP: 0.9 },
    });
    await model.chat([{ role: 'user', content: 'hi' }]);
    await model.chat([{ role: 'user', content: 'hi' }], { temperature: 0, maxNewTokens: 7, image: { cfg: 2 } });
    await model.generateImage('a fox', { topP: 0.5 });
    const [a, b, c] = addon.model.requests;
    expect([a!.temperature, a!.topK, a!.topP, a!.repetitionPenalty, a!.maxNewTokens]).toEqual([0.6, 50, 0.9, 1.05, 64]);
    expect(a!.image).toMatchObject({ cfg: 3, topK: 500, topP: 0.9 });
    expect([b!.temperature, b!.maxNewTokens]).toEqual([0, 7]);
    expect(b!.image).toMatchObject({ cfg: 2, topK: 500, topP: 0.9 });
    expect(c!.image).toMatchObject({ cfg: 3, topK: 500, topP: 0.5 });
    // Drawing from a prompt forces the start token: text sampling does not apply.
    expect([c!.temperature, c!.forceImage]).toEqual([0, true]);
  });

  it('do_sample false (or absent) keeps text greedy, as transformers reads the file', async () => {
    const model = await loadModelWith(fakeAddon(), jsonCheckpoint({ generationConfig: (g) => Object.assign(g, SAMPLING, { do_sample: false }) }));
    expect(model.defaults.text).toEqual({ maxNewTokens: 64, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.05 });
  });

  it('refuses generation_config.json values that no option may take, naming the file and key', async () => {
    const bad = async (edit: Record<string, unknown>, message: RegExp) => {
      const addon = fakeAddon();
      const load = loadModelWith(addon, jsonCheckpoint({ generationConfig: (g) => Object.assign(g, edit) }));
      await expect(load).rejects.toBeInstanceOf(CheckpointError);
      await expect(loadModelWith(addon, jsonCheckpoint({ generationConfig: (g) => Object.assign(g, edit) }))).rejects.toThrow(message);
      expect(addon.loads).toBe(0);
    };
    await bad({ do_sample: true, top_p: 1.5 }, /generation_config\.json: "top_p" must be a number in \(0, 1\], got 1\.5/);
    await bad({ do_sample: true, temperature: 'hot' }, /generation_config\.json: "temperature" must be a number, got "hot"/);
    await bad({ max_new_tokens: 0 }, /"max_new_tokens" must be an integer >= 1, got 0/);
    await bad({ image_top_k: 2.5 }, /"image_top_k" must be an integer in \[1, /);
    await bad({ image_cfg: -1 }, /"image_cfg" must be a number >= 0, got -1/);
    await bad({ do_sample: 'yes' }, /"do_sample" must be true or false/);
  });

  it('the image top-k default is at most the codebook; a model that cannot draw has no image defaults', async () => {
    const small = await loadModelWith(fakeAddon({ ...FIXTURE_INFO, var: { ...FIXTURE_INFO.var!, codebookSize: 512 } }), fixtureModel);
    expect(small.defaults.image).toEqual({ cfg: 1.5, topK: 512, topP: 0.96 });
    const noVar = await loadModelWith(fakeAddon({ ...FIXTURE_INFO, var: null, vqvae: null }), fixtureModel);
    expect(noVar.defaults.image).toBeNull();
  });
});

describe('VARGPT v1 info and progress', () => {
  it('info is tagged with the family', async () => {
    const model = await loadModelWith(fakeAddon(), fixtureModel);
    expect(model.info.family).toBe('vargpt-v1');
    expect(model.info.dir).toBe(fixtureModel);
    if (model.info.family === 'vargpt-v1') expect(model.info.var?.patchNums).toHaveLength(10);
  });

  it('image progress: stage "scale", step 1..10 of 10, scale and scales the same numbers', async () => {
    const model = await loadModelWith(fakeAddon(), fixtureModel);
    const seen: string[] = [];
    await model.generateImage('a fox', {
      seed: 3,
      onImageProgress: (p) => {
        if (p.stage !== 'scale') throw new Error(`VARGPT v1 reported stage ${p.stage}`);
        expect([p.scale, p.scales]).toEqual([p.step, p.steps]);
        seen.push(`${p.stage} ${p.step}/${p.steps}`);
      },
    });
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `scale ${i + 1}/10`));
    const events: ChatEvent[] = [];
    for await (const e of model.chatStream([{ role: 'user', content: 'x' }], { forceImage: true })) events.push(e);
    const progress = events.flatMap((e) => (e.type === 'image-progress' && e.stage === 'scale' ? [[e.stage, e.step, e.steps, e.scale, e.scales]] : []));
    expect(progress).toEqual(Array.from({ length: 10 }, (_, i) => ['scale', i + 1, 10, i + 1, 10]));
  });

  it('a runtime that reports another stage fails the call, and the model stays usable', async () => {
    const addon = fakeAddon();
    const model = await loadModelWith(addon, fixtureModel);
    const generate = addon.model.generate.bind(addon.model);
    addon.model.generate = (request) =>
      generate({ ...request, onImageProgress: request.onImageProgress && ((_stage, step, steps, preview) => request.onImageProgress!('denoise', step, steps, preview)) });
    await expect(model.generateImage('x', { onImageProgress: () => {} })).rejects.toThrow(/the runtime reported image stage "denoise"; VARGPT v1 draws by 'scale'/);
    addon.model.generate = generate;
    expect((await model.generateImage('x', { onImageProgress: () => {} })).stopReason).toBe('image');
  });
});
