// The VARGPT-v1.1 fixture's BSQ VAE (vae_local): the encoder, the multi-scale bit quantizer (area
// downsampling of the residual, bilinear accumulation, area next-scale inputs) and the decode of
// the bits (bilinear sum of each scale's codes, decoder, clamp) against upstream. Bits must be
// identical; tensors within 4x each one's float32-vs-float64 spread, never tighter than 1e-5 of
// max|ref|.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeBsqVae, type NativeTensor } from '../../lib/native.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { expectClose, expectEqualInts, reportObserved, spreadTolerance } from '../helpers/model-fixture.js';
import { fixturesMissing, v11ExpectedDir, v11ModelDir, tinyModelDir } from '../helpers/paths.js';
import { validF32File } from '../helpers/safetensors-writer.js';

// The fixture case, read by the fixture block's hook: without the fixtures that block skips, and
// the VAEs synthesized here (other sizes) are still checked.
let expected: Map<string, StTensor>;
let manifest: {
  scale_schedule: [number, number, number][];
  tensors: Record<string, { f32_vs_f64?: { rel_err_maxnorm?: number } }>;
};

function tolerance(tensor: string): number {
  return spreadTolerance(manifest.tensors, tensor, 'bsq_vae');
}

function get(name: string): StTensor {
  const t = expected.get(name);
  if (!t) throw new Error(`fixture tensor ${name} is missing`);
  return t;
}

function f32(t: NativeTensor): Float32Array {
  expect(t.dtype).toBe('f32');
  return new Float32Array(t.data);
}

let scales: Int32Array;
let S: number;
let input: StTensor;
let H: number;
let W: number;
let pixels: Float32Array;

describe.skipIf(fixturesMissing !== null)(fixtureTitle('VARGPT-v1.1 BSQ VAE against the fixture'), () => {
  let vae: NativeBsqVae;
  beforeAll(async () => {
    expected = readSafetensors(path.join(v11ExpectedDir, 'bsq_vae.safetensors'));
    manifest = readJson<typeof manifest>(path.join(v11ExpectedDir, 'bsq_vae.json'));
    // The fixture lists (t, h, w); an image has one frame, so only (h, w) matter.
    scales = Int32Array.from(manifest.scale_schedule.flatMap(([, h, w]) => [h, w]));
    S = manifest.scale_schedule.length;
    input = get('input');
    [, H, W] = input.shape as [number, number, number];
    pixels = asFloat32(input);
    vae = await native().loadBsqVae(v11ModelDir, 'cpu');
  });
  afterAll(() => reportObserved('BSQ VAE'));

  it('derives its sizes from the tensor shapes', () => {
    const c = vae.config();
    const bits = get(`bits_s${S - 1}`).shape[2]!;
    expect(c.bits).toBe(bits);
    expect(c.imageChannels).toBe(input.shape[0]);
    expect(c.downsample).toBe(H / get('encoder_out').shape[1]!);
    expect(c.encoder).not.toBeNull();
    expect(c.decoder.blocks).toBe(c.encoder!.blocks + 1); // the flux decoder runs one block more per level
    expect(c.decoder.scaleFactor).toBe(c.downsample);
  });

  it('encodes: encoder output, bits of every scale, next-scale inputs and the code sum', async () => {
    const out = await vae.encode(pixels, H, W, scales);
    expect(out.encoderOut.shape).toEqual(get('encoder_out').shape);
    expectClose('encoder_out', f32(out.encoderOut), asFloat32(get('encoder_out')), tolerance('encoder_out'));
    expect(out.bits.length).toBe(S);
    for (let si = 0; si < S; si++) expectEqualInts(`bits_s${si}`, out.bits[si]!, asNumbers(get(`bits_s${si}`)));
    expect(out.nextInputs.length).toBe(S - 1);
    for (let si = 0; si < S - 1; si++) {
      const name = `var_input_s${si}`;
      const ref = get(name);
      expect(out.nextInputs[si]!.shape).toEqual([ref.shape[0], ref.shape[2], ref.shape[3]]);
      expectClose(name, f32(out.nextInputs[si]!), asFloat32(ref), tolerance(name));
    }
    expectClose('quantized_sum', f32(out.quantizedSum), asFloat32(get('quantized_sum')), tolerance('quantized_sum'));
  });

  it('decodes the fixture bits: summed codes and the clamped image', async () => {
    const bits = Array.from({ length: S }, (_, si) => Uint8Array.from(asNumbers(get(`bits_s${si}`))));
    const out = await vae.decode(bits, scales);
    expectClose('decode_summed_codes', f32(out.summedCodes), asFloat32(get('decode_summed_codes')), tolerance('decode_summed_codes'));
    expect(out.image.shape).toEqual(get('decode_image').shape);
    const image = f32(out.image);
    expectClose('decode_image', image, asFloat32(get('decode_image')), tolerance('decode_image'));
    let outside = 0;
    for (const v of image) if (v < -1 || v > 1) outside++;
    expect(outside).toBe(0);
    // Int32Array bits give the same image.
    const again = await vae.decode(bits.map((b) => Int32Array.from(b)), scales);
    expect(f32(again.image)).toEqual(image);
  });

  it('takes other schedules and non-square images: decoding the bits gives back the encoder code sum', async () => {
    // The left half of the fixture image: 128 x 64 -> an 8 x 4 latent, three scales.
    const half = new Float32Array(3 * H * (W / 2));
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < H; y++) half.set(pixels.subarray((c * H + y) * W, (c * H + y) * W + W / 2), (c * H + y) * (W / 2));
    const ds = vae.config().downsample;
    const sched = Int32Array.of(1, 1, 3, 2, H / ds, W / 2 / ds);
    const enc = await vae.encode(half, H, W / 2, sched);
    expect(enc.encoderOut.shape).toEqual([vae.config().bits, H / ds, W / 2 / ds]);
    expect(enc.bits.map((b) => b.length)).toEqual([1, 6, (H / ds) * (W / 2 / ds)].map((n) => n * vae.config().bits));
    const dec = await vae.decode(enc.bits, sched);
    expectClose('summed codes of the encoder bits', f32(dec.summedCodes), f32(enc.quantizedSum), 1e-5);
    expect(dec.image.shape).toEqual([3, H, W / 2]);
  });

  it('rejects bad input with clear errors and stays usable', async () => {
    await expect(vae.encode(pixels.subarray(1), H, W, scales)).rejects.toThrow(/pixels has \d+ values, expected 3 x 128 x 128/);
    await expect(vae.encode(pixels.subarray(0, 3 * 120 * 120), 120, 120, scales)).rejects.toThrow(/multiples of 16/);
    await expect(vae.encode(pixels, H, W, Int32Array.of(1, 1, 4, 4, 2, 2, 8, 8))).rejects.toThrow(
      /scale 2 \(2x2\) is smaller than scale 1 \(4x4\)/,
    );
    await expect(vae.encode(pixels, H, W, Int32Array.of(1, 1, 4, 4))).rejects.toThrow(/last scale is 4x4, it must be the latent size 8x8/);
    await expect(vae.encode(pixels, H, W, Int32Array.of(1, 1, 8))).rejects.toThrow(/\(h, w\) pairs/);
    await expect(vae.encode(pixels, H, W, Int32Array.of(0, 1, 8, 8))).rejects.toThrow(/sizes must be positive/);
    await expect(vae.encode(pixels, 127.5, W, scales)).rejects.toThrow(/positive integers/);

    const bits = Array.from({ length: S }, (_, si) => Uint8Array.from(asNumbers(get(`bits_s${si}`))));
    const two = bits.map((b) => Uint8Array.from(b));
    two[1]![5] = 2;
    await expect(vae.decode(two, scales)).rejects.toThrow(/bits\[1\]\[5\] is 2, bits must be 0 or 1/);
    await expect(vae.decode([bits[0]!, bits[1]!.subarray(1), ...bits.slice(2)], scales)).rejects.toThrow(
      /bits\[1\] has 127 values, expected 2 x 2 x 32 = 128/,
    );
    await expect(vae.decode(bits.slice(1), scales)).rejects.toThrow(/4 bit maps for 5 scales/);
    await expect(vae.decode([new Float32Array(32) as unknown as Uint8Array], Int32Array.of(1, 1))).rejects.toThrow(
      /must be a Uint8Array or an Int32Array/,
    );
    await expect(vae.decode(bits, Int32Array.of(1, 1, 2, 2, 4, 4, 6, 6, 3, 3))).rejects.toThrow(/smaller than scale 3/);

    await expect(native().loadBsqVae(tinyModelDir, 'cpu')).rejects.toThrow(/vae_local\.decoder\.conv_in\.conv\.weight/);
    await expect(native().loadBsqVae(path.join(v11ExpectedDir, 'no-such-dir'), 'cpu')).rejects.toThrow(/no-such-dir/);

    const out = await vae.encode(pixels, H, W, scales);
    expectEqualInts(`bits_s${S - 1} after the errors`, out.bits[S - 1]!, asNumbers(get(`bits_s${S - 1}`)));
  });
});

// A BSQ VAE of sizes no fixture has: 16 bits per token, 48 and 96 channels (48 takes flux's
// 24-group GroupNorm), one res block per encoder level, three levels of which only one resamples
// (patch 2). Random weights, so no reference: the sizes must come out of the tensor shapes, and
// decoding the encoder's bits must give back the encoder's code sum.
function synthVae(dir: string, opts: { bits: number; base: number; chMult: number[]; blocks: number; resampleLevels: number[] }): void {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  const tensors: Record<string, { shape: number[]; values: Float32Array }> = {};
  const fill = (n: number, f: () => number) => Float32Array.from({ length: n }, f);
  const conv = (name: string, o: number, i: number, k: number) => {
    const scale = 2 * Math.sqrt(3 / (i * k * k));
    tensors[`${name}.conv.weight`] = { shape: [o, i, k, k], values: fill(o * i * k * k, () => scale * rand()) };
    tensors[`${name}.conv.bias`] = { shape: [o], values: fill(o, () => 0.1 * rand()) };
  };
  const norm = (name: string, c: number) => {
    tensors[`${name}.norm.weight`] = { shape: [c], values: fill(c, () => 1 + 0.2 * rand()) };
    tensors[`${name}.norm.bias`] = { shape: [c], values: fill(c, () => 0.2 * rand()) };
  };
  const resnet = (p: string, cin: number, cout: number) => {
    norm(`${p}.norm1`, cin);
    conv(`${p}.conv1`, cout, cin, 3);
    norm(`${p}.norm2`, cout);
    conv(`${p}.conv2`, cout, cout, 3);
    if (cin !== cout) conv(`${p}.nin_shortcut`, cout, cin, 1);
  };
  const { bits, base, chMult, blocks, resampleLevels } = opts;
  const ch = (i: number) => base * chMult[i]!;
  const L = chMult.length;
  const e = 'vae_local.encoder';
  conv(`${e}.conv_in`, base, 3, 3);
  let c = base;
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < blocks; j++, c = ch(i)) resnet(`${e}.down.${i}.block.${j}`, c, ch(i));
    if (resampleLevels.includes(i)) conv(`${e}.down.${i}.downsample.conv`, c, c, 3);
  }
  resnet(`${e}.mid.block_1`, c, c);
  resnet(`${e}.mid.block_2`, c, c);
  norm(`${e}.norm_out`, c);
  conv(`${e}.conv_out`, bits, c, 3);
  const d = 'vae_local.decoder';
  conv(`${d}.conv_in`, c, bits, 3);
  resnet(`${d}.mid.block_1`, c, c);
  resnet(`${d}.mid.block_2`, c, c);
  for (let i = L - 1; i >= 0; i--) {
    for (let j = 0; j < blocks + 1; j++, c = ch(i)) resnet(`${d}.up.${i}.block.${j}`, c, ch(i));
    // The decoder resamples one level up from the encoder (flux: 1 <= level <= max_up).
    if (resampleLevels.includes(i - 1)) conv(`${d}.up.${i}.upsample.conv`, c, c, 3);
  }
  norm(`${d}.norm_out`, c);
  conv(`${d}.conv_out`, 3, c, 3);
  writeFileSync(path.join(dir, 'model.safetensors'), validF32File(tensors));
}

describe('BSQ VAE of other sizes', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vargpt-bsq-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('16 bits, 48 / 96 channels, patch 2: sizes from shapes, encode and decode agree', async () => {
    synthVae(dir, { bits: 16, base: 48, chMult: [1, 2, 2], blocks: 1, resampleLevels: [0] });
    const vae = await native().loadBsqVae(dir, 'cpu');
    const c = vae.config();
    expect(c).toMatchObject({ bits: 16, imageChannels: 3, downsample: 2 });
    expect(c.encoder).toMatchObject({ ch: 48, chMult: [1, 2, 2], blocks: 1, scaleFactor: 2 });
    expect(c.decoder).toMatchObject({ ch: 48, chMult: [1, 2, 2], blocks: 2, scaleFactor: 2 });
    const h = 12, w = 10;
    const pixels = Float32Array.from({ length: 3 * h * w }, (_, i) => Math.sin(i * 0.37) * 0.9);
    const sched = Int32Array.of(1, 1, 2, 3, 4, 4, h / 2, w / 2);
    const enc = await vae.encode(pixels, h, w, sched);
    expect(enc.encoderOut.shape).toEqual([16, h / 2, w / 2]);
    expect(enc.bits.map((b) => b.length)).toEqual([1, 6, 16, 30].map((n) => 16 * n));
    let ones = 0;
    for (const b of enc.bits) for (const v of b) {
      expect(v === 0 || v === 1).toBe(true);
      ones += v;
    }
    expect(ones).toBeGreaterThan(0);
    expect(enc.nextInputs.map((t) => t.shape)).toEqual([[16, 2, 3], [16, 4, 4], [16, h / 2, w / 2]]);
    const dec = await vae.decode(enc.bits, sched);
    expectClose('16-bit summed codes of the encoder bits', f32(dec.summedCodes), f32(enc.quantizedSum), 1e-5);
    expect(dec.image.shape).toEqual([3, h, w]);
  });

  it('rejects channel counts no GroupNorm group count divides', async () => {
    synthVae(dir, { bits: 8, base: 40, chMult: [1], blocks: 1, resampleLevels: [] });
    await expect(native().loadBsqVae(dir, 'cpu')).rejects.toThrow(/no GroupNorm group count \(32, 24\) divides 40 channels/);
  });
});
