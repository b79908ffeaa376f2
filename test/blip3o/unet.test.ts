// BLIP3-o's SDXL-layout UNet (diffusion-decoder/unet) and EulerDiscrete scheduler against the
// fixture: the unet_step case (every traced block on Euler step 0's inputs), the scheduler tables
// of the generation case, and the generation and reconstruction cases' 50-step guided loops from
// the recorded CLIP features, time ids and noise through the latents, the VAE and the 8-bit image.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeDiffusionDecoder } from '../../lib/native.js';
import { FixtureCase, decoderDir, expectPixels, f32Of, part } from '../helpers/blip3o-decoder.js';
import { expectClose, expectEqualInts, reportObserved } from '../helpers/model-fixture.js';

const step = new FixtureCase('unet_step');
const gen = new FixtureCase('generation');

// The pipeline call a case records ("pipe(inputs, guidance_scale=3.0, ...)").
function guidanceScale(c: FixtureCase): number {
  const m = /guidance_scale=([0-9.]+)/.exec(String(c.meta.call));
  if (!m) throw new Error(`${c.name}.json: no guidance_scale in ${String(c.meta.call)}`);
  return Number(m[1]);
}

describe('BLIP3-o UNet and Euler scheduler against the fixture', () => {
  let dec: NativeDiffusionDecoder;
  beforeAll(async () => {
    dec = await native().loadDiffusionDecoder(decoderDir, 'cpu');
  });
  afterAll(() => reportObserved('BLIP3-o UNet'));

  it('reads its sizes from unet/config.json and the tensor shapes', () => {
    const u = dec.config().unet;
    expect(u.inChannels).toBe(step.shape('sample')[1]);
    expect(u.outChannels).toBe(step.shape('eps')[1]);
    expect(u.crossAttentionDim).toBe(step.shape('encoder_hidden_states')[2]);
    expect(u.textEmbedsDim).toBe(step.shape('text_embeds')[1]);
    expect(u.timeIds * step.shape('sample')[0]!).toBe(step.shape('time_ids')[0]);
    expect(u.blockOutChannels[0]).toBe(step.shape('conv_in')[1]);
    expect(u.timeEmbedDim).toBe(step.shape('time_embedding')[1]);
    expect(u.additionTimeEmbedDim).toBe(step.shape('add_time_proj')[1]);
  });

  it('computes the Euler tables of 50 steps: timesteps and init_noise_sigma exactly, sigmas to 2 ulp', () => {
    const steps = gen.shape('unet.timesteps')[0]!;
    const s = dec.schedule(steps);
    expect(Array.from(s.timesteps)).toEqual(Array.from(gen.f32('unet.timesteps')));
    // The float32 table passes through torch's linspace and cumprod kernels, whose roundings
    // differ between builds (SIMD width, FMA); the reference's own float64 run replays it, so its
    // spread says nothing here. Each sigma must lie within 2 float32 ulps of the reference's
    // (observed: 9 of 51 differ, by 1 or 2 ulps).
    const ref = gen.f32('unet.sigmas');
    expect(s.sigmas.length).toBe(ref.length);
    const ulps: string[] = [];
    for (let i = 0; i < ref.length; i++) {
      if (s.sigmas[i] === ref[i]) continue;
      const ulp = 2 * Math.max(2 ** (Math.floor(Math.log2(Math.abs(ref[i]!))) - 23), 2 ** -149);
      expect(Math.abs(s.sigmas[i]! - ref[i]!), `sigma[${i}] ${s.sigmas[i]} vs ${ref[i]}`).toBeLessThanOrEqual(ulp);
      ulps.push(`[${i}]`);
    }
    expect(ulps.length, `sigmas differing: ${ulps.join(' ')}`).toBeLessThan(ref.length / 4);
    expect(s.sigmas[0]).toBe(ref[0]); // the largest, which init_noise_sigma is computed from
    expect(s.sigmas[ref.length - 1]).toBe(0);
    const init = gen.get('unet.init_noise_sigma');
    expect(init.dtype).toBe('F64');
    expect(s.initNoiseSigma).toBe(new Float64Array(init.bytes.buffer.slice(init.bytes.byteOffset, init.bytes.byteOffset + 8))[0]);
  });

  it('runs one UNet step: embeddings, every block and eps', async () => {
    const timestep = step.f32('timestep');
    expect(timestep[0]).toBe(gen.f32('unet.timesteps')[0]);
    const out = await dec.unetStep({
      sample: step.input('sample'),
      timestep: Array.from(timestep),
      encoderHiddenStates: step.input('encoder_hidden_states'),
      textEmbeds: step.input('text_embeds'),
      timeIds: step.ints('time_ids'),
      trace: true,
    });
    const trace = out.trace!;
    const blocks = Object.keys(step.meta.tensors).filter((k) => /^(down|up)_\d+$/.test(k));
    expect(blocks.length).toBe(2 * dec.config().unet.blockOutChannels.length);
    const names = ['time_proj', 'time_embedding', 'add_time_proj', 'add_embedding', 'conv_in', ...blocks, 'mid', 'conv_norm_out', 'conv_out'];
    for (const name of names) {
      expect(trace[name]?.shape, `${name}: shape`).toEqual(step.shape(name));
      expectClose(name, f32Of(trace[name], name), step.f32(name), step.tolerance(name));
    }
    expect(out.eps.shape).toEqual(step.shape('eps'));
    const eps = f32Of(out.eps, 'eps');
    expectClose('eps', eps, step.f32('eps'), step.tolerance('eps'));
    // Rows 0 / 1 are the generation's conditional / unconditional step-0 predictions.
    const n = eps.length / 2;
    expectClose('eps row 0 = generation unet.eps_cond[0]', eps.subarray(0, n), part(gen.f32('unet.eps_cond'), 0, n), gen.tolerance('unet.eps_cond'));
    expectClose('eps row 1 = generation unet.eps_uncond[0]', eps.subarray(n), part(gen.f32('unet.eps_uncond'), 0, n), gen.tolerance('unet.eps_uncond'));
  });

  // Both text-to-image cases end in the same stage 2, from their own CLIP features and noise.
  it.each(['generation', 'reconstruction'])('runs the guided 50-step loop and the VAE of the %s case from its recorded conditioning and noise', async (name) => {
    const c = name === 'generation' ? gen : new FixtureCase(name);
    const steps = c.shape('unet.timesteps')[0]!;
    const out = await dec.sample({
      encoderHiddenStates: c.input('unet.prompt_embeds'),
      textEmbeds: c.input('unet.text_embeds'),
      timeIds: c.ints('unet.time_ids'),
      noise: c.input('unet.noise'),
      steps,
      guidance: guidanceScale(c),
      trace: true,
    });
    const trace = out.trace!;
    expectEqualInts('unet.time_ids (replayed)', c.ints('unet.time_ids'), c.meta.time_ids as number[]);
    for (const t of ['unet.latents', 'unet.model_input', 'unet.eps_cond', 'unet.eps_uncond', 'unet.eps_guided', 'vae.input', 'vae.sample']) {
      expect(trace[t]?.shape, `${name} ${t}: shape`).toEqual(c.shape(t));
      expectClose(`${name} ${t}`, f32Of(trace[t], t), c.f32(t), c.tolerance(t));
    }
    const n = c.f32('unet.noise').length;
    expectClose(`${name} latents (result)`, f32Of(out.latents, 'latents'), part(c.f32('unet.latents'), steps, n), c.tolerance('unet.latents'));
    expectClose(`${name} image01`, f32Of(out.image01, 'image01'), c.f32('image01'), c.tolerance('image01'));
    expectPixels(`${name} image_uint8`, new Uint8Array(out.imageUint8!.data), c.u8('image_uint8'), 4 * c.pixelsDiffering('image_uint8'));
  });

  it('rejects bad UNet input with a clear error and stays usable', async () => {
    const ctx = step.shape('encoder_hidden_states');
    const bad = { dtype: 'f32' as const, shape: [ctx[0]!, ctx[1]!, ctx[2]! - 1], data: new Float32Array(ctx[0]! * ctx[1]! * (ctx[2]! - 1)) };
    const base = {
      sample: step.input('sample'),
      timestep: 981,
      encoderHiddenStates: step.input('encoder_hidden_states'),
      textEmbeds: step.input('text_embeds'),
      timeIds: step.ints('time_ids'),
    };
    await expect(dec.unetStep({ ...base, encoderHiddenStates: bad })).rejects.toThrow(/encoder_hidden_states .*expected f32 \[2, L, 1792\]/);
    await expect(dec.unetStep({ ...base, timeIds: step.ints('time_ids').slice(1) })).rejects.toThrow(/11 time ids, expected 2 x 6/);
    await expect(dec.unetStep({ ...base, timestep: Number.NaN })).rejects.toThrow(/timestep holds a non-finite value/);
    expect(() => dec.schedule(0)).toThrow(/steps must be an integer from 1/);
    const noise = gen.shape('unet.noise');
    await expect(
      dec.sample({
        encoderHiddenStates: gen.input('unet.prompt_embeds'),
        textEmbeds: gen.input('unet.text_embeds'),
        timeIds: gen.ints('unet.time_ids'),
        noise: { dtype: 'f32', shape: [noise[0]! - 1, noise[1]!, noise[2]!], data: new Float32Array((noise[0]! - 1) * noise[1]! * noise[2]!) },
        steps: 2,
      }),
    ).rejects.toThrow(/noise f32\[3, 8, 8\], expected f32 \[4, h, w\]/);
    await expect(
      dec.sample({ encoderHiddenStates: step.input('sample'), noise: gen.input('unet.noise') }),
    ).rejects.toThrow(/encoderHiddenStates is f32\[2, 4, 8, 8\], expected an f32 tensor of rank 3/);
    const out = await dec.unetStep({ ...base, timestep: Array.from(step.f32('timestep')) });
    expectClose('eps (after errors)', f32Of(out.eps, 'eps'), step.f32('eps'), step.tolerance('eps'));
  });
});
