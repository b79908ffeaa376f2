// BLIP3-o drawing at sizes the fixture does not have: 9 learned queries (a 3 x 3 DiT grid), GQA in
// the DiT, an untied LLM head, a 96 x 64 image. No reference computed these, so the pipeline is
// checked against its own parts run alone: the DiT's flow loop (loadBlip3oDit) from the traced
// query hidden states and noise must give the traced CLIP features, and the UNet + VAE
// (loadDiffusionDecoder) from the traced conditioning and noise must give the image; both within
// 1e-5 of max|ref| (same kernels, same order: agreement is expected to the last bits).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { VargptModel } from '../../lib/model.js';
import { loadModel } from '../../lib/model.js';
import { native } from '../../lib/native.js';
import { synthesize } from '../../lib/synth.js';
import { BLIP3O_PRESETS, copyBlip3oSizes } from '../../lib/synth/blip3o.js';
import type { Tensor } from '../../lib/tensor.js';
// expectClose comes from the fixture helpers, so the gate (helpers/fixture-gate.ts) would skip this
// file without the fixtures, yet every checkpoint here is synthesized: naming fixturesMissing keeps
// it running on a fresh clone, with no test to skip.
import { expectClose } from '../helpers/model-fixture.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-b3sizes-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const f32 = (t: Tensor | undefined, name: string): Float32Array => {
  if (!t) throw new Error(`${name} is missing from the trace`);
  return Float32Array.from(t.data as ArrayLike<number>);
};

describe('BLIP3-o drawing at other sizes (synthesized: 9 queries, GQA DiT, untied head)', () => {
  const dir = path.join(work, 'model');
  let model: VargptModel;
  beforeAll(async () => {
    const sizes = copyBlip3oSizes(BLIP3O_PRESETS.tiny);
    sizes.nQuery = 9;
    sizes.dit = { ...sizes.dit, heads: 4, kvHeads: 2 };
    sizes.llm.tied = false;
    await synthesize({ family: 'blip3o', preset: 'tiny', sizes, out: dir, seed: 5, dtype: 'f32' });
    model = await loadModel(dir, { device: 'cpu' });
  }, 120_000);
  afterAll(() => model?.dispose());

  it('draws with the DiT grid from n_query, and its stages agree with the components run alone', async () => {
    if (model.info.family !== 'blip3o') throw new Error('not loaded as blip3o');
    expect(model.info.nQuery).toBe(9);
    expect(model.info.image?.dit).toMatchObject({ heads: 4, kvHeads: 2 });
    expect(model.defaults.image).toMatchObject({ grid: 3 });
    const flowSteps = 4;
    const steps = 3;
    const reply = await model.generateImage('a small house', { width: 96, height: 64, flowSteps, steps, seed: 9, trace: true });
    const t = reply.trace!;
    const clipWidth = model.info.image!.clipWidth;
    expect(t['query_hidden']!.shape).toEqual([9, model.info.llm.hiddenSize]);
    expect(t['clip_features']!.shape).toEqual([9, clipWidth]);
    expect(t['flow.latents']!.shape).toEqual([flowSteps + 1, clipWidth, 3, 3]);
    expect(t['unet.noise']!.shape).toEqual([4, 8, 12]);
    expect([reply.image.width, reply.image.height]).toEqual([96, 64]);

    const dit = await native().loadBlip3oDit(dir, 'cpu');
    for (const prefix of ['', 'neg.']) {
      const flow = await dit.sample({
        queryHidden: f32(t[`${prefix}query_hidden`], `${prefix}query_hidden`),
        noise: f32(t[`${prefix}flow.noise`], `${prefix}flow.noise`),
        steps: flowSteps,
        guidance: 3,
        shift: 1,
        trainTimesteps: 1000,
      });
      expectClose(`${prefix}clip_features vs the DiT alone`, new Float32Array(flow.clipFeatures.data), f32(t[`${prefix}clip_features`], 'clip_features'), 1e-5);
    }
    const decoder = await native().loadDiffusionDecoder(path.join(dir, 'diffusion-decoder'), 'cpu');
    const prompt = f32(t['unet.prompt_embeds'], 'unet.prompt_embeds');
    const out = await decoder.sample({
      encoderHiddenStates: { dtype: 'f32', shape: [2, 9, clipWidth], data: prompt },
      textEmbeds: { dtype: 'f32', shape: [2, clipWidth], data: f32(t['unet.text_embeds'], 'unet.text_embeds') },
      timeIds: [1024, 1024, 0, 0, 64, 96, 1024, 1024, 0, 0, 64, 96],
      noise: { dtype: 'f32', shape: [4, 8, 12], data: f32(t['unet.noise'], 'unet.noise') },
      steps,
      guidance: 3,
    });
    expect(Array.from(reply.image.data)).toEqual(Array.from(new Uint8Array(out.imageUint8!.data)));
    // The conditioning rows are the prompt's and the negative's CLIP features, in that order.
    const n = 9 * clipWidth;
    expectClose('prompt_embeds row 0 = clip_features', prompt.subarray(0, n), f32(t['clip_features'], 'clip_features'), 0);
    expectClose('prompt_embeds row 1 = neg.clip_features', prompt.subarray(n), f32(t['neg.clip_features'], 'neg.clip_features'), 0);
    // A non-degenerate image.
    expect(new Set(reply.image.data).size).toBeGreaterThan(8);
  });
});
