// BLIP3-o's SDXL VAE decoder (diffusion-decoder/vae, diffusers' AutoencoderKL) against the fixture's
// vae_decode case: every traced intermediate from the 1/scaling_factor input through the up blocks
// to the sample, then the [0, 1] image and its 8-bit rounding (ties to even).
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeDiffusionDecoder } from '../../lib/native.js';
import { FixtureCase, decoderDir, expectPixels, f32Of, toUint8 } from '../helpers/blip3o-decoder.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { readJson } from '../helpers/fixtures.js';
import { expectClose, reportObserved } from '../helpers/model-fixture.js';
import { fixturesMissing } from '../helpers/paths.js';

// Read by the fixture block's hook: without the fixtures that block skips, and the decoder's
// refusal of a folder that is not a pipeline is still checked.
let vae: FixtureCase;

describe.skipIf(fixturesMissing !== null)(fixtureTitle('BLIP3-o VAE decoder against the fixture'), () => {
  let dec: NativeDiffusionDecoder;
  beforeAll(async () => {
    vae = new FixtureCase('vae_decode');
    dec = await native().loadDiffusionDecoder(decoderDir, 'cpu');
  });
  afterAll(() => reportObserved('BLIP3-o VAE'));

  it('reads its sizes from vae/config.json and the tensor shapes', () => {
    const c = dec.config().vae;
    const cfg = readJson<{ scaling_factor: number; block_out_channels: number[]; latent_channels: number; layers_per_block: number }>(
      path.join(decoderDir, 'vae', 'config.json'),
    );
    expect(c.latentChannels).toBe(vae.shape('latents')[0]);
    expect(c.latentChannels).toBe(cfg.latent_channels);
    expect(c.scalingFactor).toBe(cfg.scaling_factor);
    expect(c.blockOutChannels).toEqual(cfg.block_out_channels);
    expect(c.resnetsPerUpBlock).toBe(cfg.layers_per_block + 1);
    expect(c.downsample).toBe(vae.shape('sample')[1]! / vae.shape('latents')[1]!);
    expect(c.imageChannels).toBe(vae.shape('sample')[0]);
  });

  it('decodes the seeded latents: every intermediate, the sample and the image', async () => {
    const out = await dec.vaeDecode({ latents: vae.input('latents'), trace: true });
    const trace = out.trace!;
    const ups = Object.keys(vae.meta.tensors).filter((k) => /^decoder\.up_\d+$/.test(k));
    expect(ups.length).toBe(dec.config().vae.blockOutChannels.length);
    const names = ['vae_input', 'post_quant_conv', 'decoder.conv_in', 'decoder.mid_block', ...ups, 'decoder.conv_norm_out', 'decoder.conv_out', 'sample'];
    for (const name of names) {
      expect(trace[name]?.shape, `${name}: shape`).toEqual(vae.shape(name));
      expectClose(name, f32Of(trace[name], name), vae.f32(name), vae.tolerance(name));
    }
    expect(out.sample.shape).toEqual(vae.shape('sample'));
    expectClose('sample (result)', f32Of(out.sample, 'sample'), vae.f32('sample'), vae.tolerance('sample'));
    expect(out.image01.shape).toEqual(vae.shape('image01'));
    const image01 = f32Of(out.image01, 'image01');
    expectClose('image01', image01, vae.f32('image01'), vae.tolerance('image01'));

    // The 8-bit image is numpy's round-half-even of our own image01 exactly, and the reference's
    // image within the pixels its own float32 and float64 runs round differently.
    expect(out.imageUint8.dtype).toBe('u8');
    expect(out.imageUint8.shape).toEqual(vae.shape('image_uint8'));
    const u8 = new Uint8Array(out.imageUint8.data);
    expect(Array.from(u8)).toEqual(Array.from(toUint8(image01)));
    expect(Array.from(toUint8(vae.f32('image01')))).toEqual(Array.from(vae.u8('image_uint8')));
    expectPixels('image_uint8', u8, vae.u8('image_uint8'), 4 * vae.pixelsDiffering('image_uint8'));
  });

  it('rejects bad input with a clear error and stays usable', async () => {
    const lat = vae.shape('latents');
    await expect(
      dec.vaeDecode({ latents: { dtype: 'f32', shape: [lat[0]! + 1, lat[1]!, lat[2]!], data: new Float32Array((lat[0]! + 1) * lat[1]! * lat[2]!) } }),
    ).rejects.toThrow(/latents.*expected f32 \[4, h, w\]/);
    await expect(dec.vaeDecode({ latents: { dtype: 'f32', shape: [4, 2], data: new Float32Array(8) } })).rejects.toThrow(/latents.*rank 3/);
    const out = await dec.vaeDecode({ latents: vae.input('latents') });
    expectClose('sample (after errors)', f32Of(out.sample, 'sample'), vae.f32('sample'), vae.tolerance('sample'));
  });
});

describe('loadDiffusionDecoder bad input', () => {
  it('rejects a folder that is not a diffusers pipeline, and missing arguments', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'vargpt-b3o-'));
    try {
      await expect(native().loadDiffusionDecoder(empty, 'cpu')).rejects.toThrow(/not a diffusers pipeline folder \(no model_index.json\)/);
      await expect(native().loadDiffusionDecoder(path.join(empty, 'missing'), 'cpu')).rejects.toThrow(/model_index.json/);
      // @ts-expect-error: dir must be a string
      await expect(native().loadDiffusionDecoder(42)).rejects.toThrow(/dir and device must be strings/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  // A copy of the decoder folder (weights linked) with one config value changed.
  async function loadWith(component: 'unet' | 'vae' | 'scheduler', file: string, edit: (cfg: Record<string, unknown>) => void) {
    const dir = mkdtempSync(path.join(tmpdir(), 'vargpt-b3o-'));
    try {
      cpSync(path.join(decoderDir, 'model_index.json'), path.join(dir, 'model_index.json'));
      for (const c of ['unet', 'vae', 'scheduler']) {
        cpSync(path.join(decoderDir, c), path.join(dir, c), { recursive: true, filter: (src) => !src.endsWith('.safetensors') });
        for (const w of ['diffusion_pytorch_model.bf16.safetensors'])
          if (c !== 'scheduler') symlinkSync(path.join(decoderDir, c, w), path.join(dir, c, w));
      }
      const cfgPath = path.join(dir, component, file);
      const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
      edit(cfg);
      writeFileSync(cfgPath, JSON.stringify(cfg));
      return await native().loadDiffusionDecoder(dir, 'cpu');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it.skipIf(fixturesMissing !== null)(fixtureTitle('rejects configurations it does not implement or that contradict the tensors, naming the key'), async () => {
    await expect(loadWith('unet', 'config.json', (c) => (c.use_linear_projection = false))).rejects.toThrow(/unet\/config.json: use_linear_projection must be true/);
    await expect(loadWith('unet', 'config.json', (c) => (c.down_block_types = ['DownBlock2D', 'SimpleCrossAttnDownBlock2D', 'CrossAttnDownBlock2D']))).rejects.toThrow(
      /down block type "SimpleCrossAttnDownBlock2D" is not supported/,
    );
    await expect(loadWith('unet', 'config.json', (c) => (c.projection_class_embeddings_input_dim = 1900))).rejects.toThrow(/add_embedding.linear_1.weight has shape \[128, 1888\], expected \[T, 1900\]/);
    await expect(loadWith('vae', 'config.json', (c) => (c.block_out_channels = [32, 64, 64, 64]))).rejects.toThrow(/block_out_channels\[1\] does not match the decoder's tensors/);
    await expect(loadWith('scheduler', 'scheduler_config.json', (c) => (c.prediction_type = 'v_prediction'))).rejects.toThrow(/prediction_type "v_prediction" is not supported/);
    await expect(loadWith('scheduler', 'scheduler_config.json', (c) => (c.timestep_spacing = 'karras'))).rejects.toThrow(/timestep_spacing "karras" is not supported/);
    // The unchanged copy loads.
    const ok = await loadWith('vae', 'config.json', () => {});
    expect(ok.config().vae.scalingFactor).toBe(dec0ScalingFactor());
  });
});

function dec0ScalingFactor(): number {
  return readJson<{ scaling_factor: number }>(path.join(decoderDir, 'vae', 'config.json')).scaling_factor;
}
