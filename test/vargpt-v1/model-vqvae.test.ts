// The multi-scale VQ-VAE on the tiny fixture: img_to_idxBl indices must be identical at every
// scale (the reference's float32 and float64 runs agree on all of them), and idxBl_to_img of those
// indices must match f-hat and the decoded image within the README tolerance (1e-4 of max|ref|).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NativeModel } from '../../lib/native.js';
import {
  Expected,
  expectClose,
  expectEqualInts,
  expectImageClose,
  expectedJson,
  loadTiny,
  reportObserved,
  traceValues,
  truncToU8,
} from '../helpers/model-fixture.js';

const TOL = 1e-4;

describe('VARGPT v1 multi-scale VQ-VAE (tiny fixture, f32)', () => {
  let model: NativeModel;
  let ex: Expected;
  const meta = expectedJson('vqvae.json');
  const SN: number = expectedJson('generation.json').patch_nums.length;

  beforeAll(async () => {
    model = await loadTiny();
    ex = await Expected.open('vqvae.safetensors');
  });
  afterAll(() => {
    model?.dispose();
    reportObserved('vqvae');
  });

  it('encodes an image to the reference indices at every scale', async () => {
    expect(meta.encode_indices_f64_equal_per_scale.every(Boolean)).toBe(true);
    const [C, H, W] = ex.shape('input') as [number, number, number];
    expect(C).toBe(3);
    const scales = await model.encodeImageTokens(ex.f32('input'), H, W);
    expect(scales.length).toBe(SN);
    for (let si = 0; si < SN; si++) expectEqualInts(`idx_s${si}`, scales[si]!, ex.ints(`idx_s${si}`));
  });

  it('decodes the indices to the reference f-hat and image', async () => {
    const indices = Array.from({ length: SN }, (_, si) => ex.ints(`idx_s${si}`));
    const r = await model.decodeImageTokens(indices, { trace: true });
    expect(r.width).toBe(256);
    expect(r.height).toBe(256);
    expectClose('decode fHat', traceValues(r.trace, 'fHat'), ex.values('decode_f_hat'), TOL);
    const ref = ex.values('decode_image');
    expectClose('decode image (clamped)', traceValues(r.trace, 'image'), ref, TOL);
    expectImageClose('decode image uint8', r.data, truncToU8(ref, 256, 256));
    // Without the option there is no trace, and the pixels are the same.
    const plain = await model.decodeImageTokens(indices);
    expect(plain.trace).toBeUndefined();
    expect(Buffer.from(plain.data).equals(Buffer.from(r.data))).toBe(true);
  });

  it('rejects malformed token lists and images with clear errors', async () => {
    const indices = Array.from({ length: SN }, (_, si) => ex.ints(`idx_s${si}`));
    await expect(model.decodeImageTokens(indices.slice(1))).rejects.toThrow(/index lists, expected one per scale/);
    const short = indices.map((a, i) => (i === 3 ? a.subarray(1) : a));
    await expect(model.decodeImageTokens(short)).rejects.toThrow(/scale 3 has 15 indices, expected 4x4/);
    const bad = indices.map((a, i) => (i === 2 ? Int32Array.from(a, (v, j) => (j === 4 ? 4096 : v)) : a));
    await expect(model.decodeImageTokens(bad)).rejects.toThrow(/scale 2 index 4 = 4096 is outside the codebook/);
    await expect(model.encodeImageTokens(new Float32Array(3 * 128 * 128), 128, 128)).rejects.toThrow(/256x256 images, got 128x128/);
    await expect(model.encodeImageTokens(new Float32Array(10), 256, 256)).rejects.toThrow(/pixels has 10 values/);
    // Still usable.
    const again = await model.encodeImageTokens(ex.f32('input'), 256, 256);
    expectEqualInts('idx_s0 after errors', again[0]!, ex.ints('idx_s0'));
  });
});
