// BLIP3-o drawing through the public API, against the fixture's generation and reconstruction
// cases: generateImage / reconstructImage with the recorded noises replayed, and every tensor the
// fixture records compared under the trace's name of it -- floats within 4x the tensor's
// float32-vs-float64 spread (never tighter than 1e-5 of max|ref|), ids and tables exactly, the
// 8-bit image within +-1 on at most 4x the pixels the reference's own float32 and float64 runs
// round apart. Then what the fixture cannot show: the negative's cache, progress, abort, the
// attention-mask choice and bad input.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InputError } from '../../lib/errors.js';
import type { ImageReply, VargptModel } from '../../lib/model.js';
import { loadModel } from '../../lib/model.js';
import type { GenerateImageOptions } from '../../lib/options.js';
import type { Tensor } from '../../lib/tensor.js';
import { FixtureCase, expectPixels } from '../helpers/blip3o-decoder.js';
import { readJson } from '../helpers/fixtures.js';
import { expectClose, expectEqualInts, reportObserved } from '../helpers/model-fixture.js';
import { blip3oExpectedDir, blip3oModelDir } from '../helpers/paths.js';

const gen = new FixtureCase('generation');
const recon = new FixtureCase('reconstruction');
const reconImage = path.join(blip3oExpectedDir, 'recon_input.png');

// Tensors that index the recorded subsets of a stacked one, not values the runtime computes.
const SUBSET_INDEX = /(^|\.)flow\.(latent_idx|v_steps|guided_steps)$/;

// The options that reproduce a case: its size, the DiT grid it records, its noises, and the
// transformers >= 4.53 reading of upstream's short attention mask that computed it.
function caseOptions(c: FixtureCase, extra: GenerateImageOptions = {}): GenerateImageOptions {
  const [height, width] = c.meta.height_width as [number, number];
  return {
    width,
    height,
    grid: c.meta.grid as number,
    maskLastQuery: true,
    replay: { 'flow.noise': c.f32('flow.noise'), 'neg.flow.noise': c.f32('neg.flow.noise'), 'unet.noise': c.f32('unet.noise') },
    trace: true,
    ...extra,
  };
}

function values(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

// Rows `steps` (each `per` values) of a stacked tensor.
function pick(all: ArrayLike<number>, steps: number[], per: number): Float64Array {
  const out = new Float64Array(steps.length * per);
  steps.forEach((s, j) => {
    for (let i = 0; i < per; i++) out[j * per + i] = all[s * per + i]!;
  });
  return out;
}

function expectCase(c: FixtureCase, reply: ImageReply): void {
  const trace = reply.trace ?? {};
  const names = Object.keys(c.meta.tensors).filter((n) => !SUBSET_INDEX.test(n) && n !== 'resized_uint8');
  expect(names.filter((n) => !(n in trace)), `${c.name}: tensors missing from the trace`).toEqual([]);
  for (const name of names) {
    const want = c.get(name);
    let got = values(trace[name]!);
    const count = want.shape.reduce((a, b) => a * b, 1);
    // The fixture keeps some flow tensors at a subset of steps; the trace has every step.
    const subset = /flow\.latents$/.test(name) ? 'latent_idx' : /flow\.v_(uncond|cond)$/.test(name) ? 'v_steps' : /flow\.v_guided$/.test(name) ? 'guided_steps' : null;
    if (subset && got.length !== count) {
      const steps = c.ints(name.replace(/(latents|v_uncond|v_cond|v_guided)$/, subset));
      got = Array.from(pick(got, steps, count / steps.length));
    }
    expect(got.length, `${c.name}.${name}: element count`).toBe(count);
    if (name === 'image_uint8') {
      expectPixels(`${c.name}.image_uint8`, Uint8Array.from(got), c.u8(name), 4 * c.pixelsDiffering(name));
    } else if (want.dtype === 'F32' || want.dtype === 'F64') {
      const ref = want.dtype === 'F32' ? c.f32(name) : new Float64Array(Uint8Array.from(want.bytes).buffer);
      expectClose(`${c.name}.${name}`, got, ref, c.tolerance(name));
    } else {
      expectEqualInts(`${c.name}.${name}`, got, c.ints(name));
    }
  }
  // The public image is the traced one.
  expect(Array.from(reply.image.data)).toEqual(values(trace['image_uint8']!));
  expect([reply.image.height, reply.image.width]).toEqual(c.meta.height_width as number[]);
}

describe('BLIP3-o drawing through the public API (fixture blip3o-tiny)', () => {
  let model: VargptModel;
  const loadProgress: Array<{ loaded: number; total: number }> = [];
  beforeAll(async () => {
    model = await loadModel(blip3oModelDir, { device: 'cpu', onLoadProgress: (p) => loadProgress.push(p) });
  });
  afterAll(async () => {
    reportObserved('BLIP3-o drawing');
    await model?.dispose();
  });

  it('reports loading as one count over the checkpoint and its diffusion-decoder/ folder', () => {
    const total = loadProgress[0]!.total;
    expect(loadProgress.every((p, i) => p.total === total && (i === 0 || p.loaded >= loadProgress[i - 1]!.loaded))).toBe(true);
    expect(loadProgress.at(-1)!.loaded).toBe(total);
    // The decoder's tensors are counted: more than the top folder's safetensors hold.
    const top = readdirSync(blip3oModelDir).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + statSync(path.join(blip3oModelDir, f)).size, 0);
    expect(total).toBeGreaterThan(top);
  });

  it('reports what it draws with, and the defaults the spec and the checkpoint give', () => {
    if (model.info.family !== 'blip3o') throw new Error('not loaded as blip3o');
    const image = model.info.image!;
    expect(image.clipWidth).toBe(gen.shape('clip_features')[1]);
    // The pipeline's default size: the UNet's sample_size times the VAE's downsampling.
    const unet = readJson<{ sample_size: number; block_out_channels: number[] }>(path.join(blip3oModelDir, 'diffusion-decoder', 'unet', 'config.json'));
    const vae = readJson<{ block_out_channels: number[] }>(path.join(blip3oModelDir, 'diffusion-decoder', 'vae', 'config.json'));
    const down = 2 ** (vae.block_out_channels.length - 1);
    expect(image.defaultSize).toBe(unet.sample_size * down);
    expect(image.sizeMultiple).toBe(down * 2 ** (unet.block_out_channels.length - 1));
    const side = Math.sqrt(model.info.nQuery);
    expect(model.defaults.image).toEqual({ flowSteps: 30, flowGuidance: 3, flowShift: 1, steps: 50, guidance: 3, width: image.defaultSize, height: image.defaultSize, grid: Number.isInteger(side) ? side : null });
    // The flow shift the fixture's external scheduler config holds is the default read here.
    expect((gen.meta.flow_scheduler_config as { shift: number }).shift).toBe(1);
  });

  it('generation: prompt, stage 1 (LLM, DiT flow, the " " negative) and stage 2 (UNet, VAE) match every recorded tensor', async () => {
    const reply = await model.generateImage(gen.meta.caption as string, caseOptions(gen));
    expect(reply.stopReason).toBe('image');
    expectCase(gen, reply);
  });

  it('reconstruction: the image at 448x448 through the vision tower, then both stages, match every recorded tensor', async () => {
    const reply = await model.reconstructImage(reconImage, caseOptions(recon));
    expectCase(recon, reply);
  });

  it('by default every position attends causally (transformers 4.51), which changes only the last query', async () => {
    const o = caseOptions(gen, { flowSteps: 1, steps: 1 });
    const short = await model.generateImage(gen.meta.caption as string, o);
    const causal = await model.generateImage(gen.meta.caption as string, { ...o, maskLastQuery: false });
    const a = values(short.trace!['query_hidden']!), b = values(causal.trace!['query_hidden']!);
    const H = gen.shape('query_hidden')[1]!;
    expect(b.slice(0, a.length - H)).toEqual(a.slice(0, a.length - H));
    const last = a.slice(a.length - H).reduce((m, v, i) => Math.max(m, Math.abs(v - b[a.length - H + i]!)), 0);
    expect(last).toBeGreaterThan(1e-3);
  });

  it('computes the " " negative once per model and setting, from its own seed: a call depends on its seed only', async () => {
    const fresh = await loadModel(blip3oModelDir, { device: 'cpu' });
    try {
      const o: GenerateImageOptions = { flowSteps: 2, steps: 2, seed: 11, trace: true };
      const first = await fresh.generateImage('a red square', o);
      expect(Object.keys(first.trace!).some((n) => n.startsWith('neg.'))).toBe(true);
      // A replayed negative is computed for its call and not cached.
      await fresh.generateImage('a blue circle', { ...o, seed: 5, replay: { 'neg.flow.noise': gen.f32('neg.flow.noise') } });
      const again = await fresh.generateImage('a red square', o);
      expect(Object.keys(again.trace!).some((n) => n.startsWith('neg.'))).toBe(false);
      expect(again.image.data).toEqual(first.image.data);
      // Another model instance, whose cache starts empty, draws the same image.
      const other = await model.generateImage('a red square', o);
      expect(other.image.data).toEqual(first.image.data);
      const seeded = await fresh.generateImage('a red square', { ...o, seed: 12 });
      expect(seeded.image.data).not.toEqual(first.image.data);
    } finally {
      await fresh.dispose();
    }
  });

  it('reports progress by stage with previews in stage 2, and stops between steps when aborted', async () => {
    const fresh = await loadModel(blip3oModelDir, { device: 'cpu' });
    try {
      const events: Array<{ stage: string; step: number; steps: number; preview: boolean }> = [];
      const reply = await fresh.generateImage('a cat', {
        flowSteps: 3,
        steps: 4,
        seed: 1,
        onImageProgress: (p) => {
          if (p.stage === 'scale') throw new Error('BLIP3-o reported a scale');
          events.push({ stage: p.stage, step: p.step, steps: p.steps, preview: p.preview !== null });
        },
      });
      expect(events.map((e) => `${e.stage}${e.step}/${e.steps}${e.preview ? '+' : ''}`)).toEqual([
        'flow1/3', 'flow2/3', 'flow3/3', 'negative1/3', 'negative2/3', 'negative3/3', 'denoise1/4+', 'denoise2/4+', 'denoise3/4+', 'denoise4/4+',
      ]);
      expect(reply.image.width).toBe(fresh.info.family === 'blip3o' ? fresh.info.image?.defaultSize : -1);

      const controller = new AbortController();
      let denoised = 0;
      await expect(
        fresh.generateImage('a cat', {
          flowSteps: 3,
          steps: 20,
          seed: 1,
          signal: controller.signal,
          onImageProgress: (p) => {
            if (p.stage === 'denoise' && ++denoised === 2) controller.abort();
          },
        }),
      ).rejects.toThrow(/abort/i);
      expect(denoised).toBeLessThanOrEqual(3);
      const after = await fresh.generateImage('a cat', { flowSteps: 3, steps: 4, seed: 1 });
      expect(after.image.data).toEqual(reply.image.data);
    } finally {
      await fresh.dispose();
    }
  });

  it('refuses bad drawing options with a clear error and stays usable', async () => {
    if (model.info.family !== 'blip3o') throw new Error('not loaded as blip3o');
    const m = model.info.image!.sizeMultiple;
    const noise = model.info.image!.clipWidth * Number(model.defaults.image && 'grid' in model.defaults.image ? model.defaults.image.grid : 0) ** 2;
    const bad: Array<[GenerateImageOptions, RegExp]> = [
      [{ width: m + m / 2 }, new RegExp(`width must be a multiple of ${m}`)],
      [{ height: 0 }, new RegExp(`height must be a multiple of ${m}`)],
      [{ width: 4096 }, new RegExp(`width must be a multiple of ${m} in \\[${m}, 2048\\]`)],
      [{ steps: 0 }, /steps must be an integer in \[1, 1000\]/],
      [{ flowGuidance: -1 }, /flowGuidance must be a number in \[0, 100\]/],
      [{ flowShift: 0 }, /flowShift must be a number in \(0, 100\]/],
      [{ cfg: 3 }, /cfg: an option of the next-scale families/],
      [{ scales: [[1, 1]] }, /scales: an option of the next-scale families/],
      [{ replay: { 'flow.noise': new Float32Array(3) } }, new RegExp(`replay\\.flow\\.noise has 3 values, expected ${noise}`)],
      [{ replay: { bits: [new Int32Array(1)] } }, /replay\.bits: BLIP3-o replays/],
      [{ maskLastQuery: 1 as unknown as boolean }, /maskLastQuery must be true or false/],
    ];
    for (const [options, message] of bad) {
      const call = model.generateImage('a cat', options);
      await expect(call).rejects.toThrow(InputError);
      await expect(call).rejects.toThrow(message);
    }
    await expect(model.reconstructImage(Buffer.from('not an image'))).rejects.toThrow(/image/);
    await expect(model.encodeImageTokens(reconImage)).rejects.toThrow(/no discrete image tokens/);
    const ok = await model.generateImage('a cat', { flowSteps: 1, steps: 1, seed: 3 });
    expect(ok.image.width).toBe(model.info.family === 'blip3o' ? model.info.image?.defaultSize : -1);
  });
});
