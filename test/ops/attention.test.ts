// attention(): softmax(scale · q k^T) v per head, GQA, the Causal mask of backend.h (query i of
// Lq sees keys [0, Lk - Lq + i]), batches, and k/v given as slices of a larger cache (strided
// rows), against the float64 reference and per-element error bound of helpers/ops-reference.ts
// (attentionReference, where the bound is derived).
import { afterAll, describe, expect, it } from 'vitest';

import { type AttentionShape, Rng, addon, asF32, attentionReference, expectClose, f32Tensor, kernelPaths, runOp } from '../helpers/ops-reference.js';

interface AttnCase extends AttentionShape {
  cache?: { length: number; begin: number }; // k/v stored in a [B, length, Hkv*D] cache
  valueRange?: number;
}

async function checkAttention(c: AttnCase, seed: number, label: string) {
  const rng = new Rng(seed);
  const range = c.valueRange ?? 1;
  const kvLen = c.cache?.length ?? c.Lk;
  const kvBegin = c.cache?.begin ?? 0;
  const q = rng.f32(c.B * c.Lq * c.Hq * c.D, -range, range);
  const k = rng.f32(c.B * kvLen * c.Hkv * c.D, -range, range);
  const v = rng.f32(c.B * kvLen * c.Hkv * c.D);
  const attrs: Record<string, unknown> = { qHeads: c.Hq, kvHeads: c.Hkv, headDim: c.D, scale: c.scale, causal: c.causal };
  if (c.cache) Object.assign(attrs, { kvBegin, kvEnd: kvBegin + c.Lk });
  const [out] = await runOp(
    'attention',
    [
      f32Tensor([c.B, c.Lq, c.Hq * c.D], q),
      f32Tensor([c.B, kvLen, c.Hkv * c.D], k),
      f32Tensor([c.B, kvLen, c.Hkv * c.D], v),
    ],
    attrs,
  );
  expect(out!.shape).toEqual([c.B, c.Lq, c.Hq * c.D]);
  const ref = attentionReference(c, q, k, v, kvLen, kvBegin);
  expectClose(asF32(out!), ref.out, ref.tol, label);
}

const initialPath = addon.devices().cpu.kernels;
afterAll(() => {
  addon.setCpuKernels(initialPath);
});

// The blocked path (8 or more queries) runs on the GEMM micro-kernels, so every case runs on
// every GEMM path this machine has.
describe.each(kernelPaths())('attention on the %s kernels', (path) => {
  const cases: [string, AttnCase][] = [
    ['self-attention, no mask', { B: 1, Lq: 5, Lk: 5, Hq: 2, Hkv: 2, D: 16, scale: 0.25, causal: false }],
    ['causal prefill Lq = Lk (odd length, several key blocks)', { B: 1, Lq: 77, Lk: 77, Hq: 3, Hkv: 3, D: 32, scale: 32 ** -0.5, causal: true }],
    ['causal with Lq < Lk (new tokens after a cache), GQA 8/2', { B: 1, Lq: 7, Lk: 70, Hq: 8, Hkv: 2, D: 64, scale: 0.125, causal: true }],
    ['decode: one query over 100 keys, GQA 4/1', { B: 1, Lq: 1, Lk: 100, Hq: 4, Hkv: 1, D: 64, scale: 0.125, causal: true }],
    // Decode splits the keys into chunks merged at the end: several chunks, a partial last one.
    ['decode: one query over 701 keys (four chunks), head_dim 128', { B: 1, Lq: 1, Lk: 701, Hq: 8, Hkv: 8, D: 128, scale: 128 ** -0.5, causal: true, valueRange: 3 }],
    ['decode: 2 queries x batch 2 over a [0, 333) cache slice, GQA 6/2', { B: 2, Lq: 2, Lk: 333, Hq: 6, Hkv: 2, D: 48, scale: 0.15, causal: true, cache: { length: 400, begin: 0 } }],
    ['batch of 3, no mask, head_dim 24', { B: 3, Lq: 9, Lk: 13, Hq: 2, Hkv: 1, D: 24, scale: 0.3, causal: false }],
    ['head_dim 80 and 17 queries (off the query block)', { B: 1, Lq: 17, Lk: 33, Hq: 2, Hkv: 2, D: 80, scale: 0.11, causal: true }],
    ['VAR-like: scale 1 on large scores, no mask', { B: 2, Lq: 13, Lk: 40, Hq: 2, Hkv: 2, D: 64, scale: 1, causal: false }],
    ['ViT-like head_dim 16', { B: 1, Lq: 50, Lk: 50, Hq: 4, Hkv: 4, D: 16, scale: 0.25, causal: false }],
    ['strided k/v: a slice [0, 50) of a 90-long cache, batch 2', { B: 2, Lq: 6, Lk: 50, Hq: 4, Hkv: 2, D: 32, scale: 0.2, causal: true, cache: { length: 90, begin: 0 } }],
    ['strided k/v: a slice [17, 81) of a cache, no mask', { B: 2, Lq: 3, Lk: 64, Hq: 2, Hkv: 2, D: 16, scale: 0.5, causal: false, cache: { length: 90, begin: 17 } }],
  ];
  it.each(cases)('%s', async (label, c) => {
    addon.setCpuKernels(path);
    await checkAttention(c, label.length * 31 + c.Lk, `${path}: ${label}`);
  });

  it('VQ-VAE-like: one head of dim 512 over 256 tokens', async () => {
    addon.setCpuKernels(path);
    await checkAttention({ B: 1, Lq: 256, Lk: 256, Hq: 1, Hkv: 1, D: 512, scale: 512 ** -0.5, causal: false }, 9, 'vqvae');
  });
});

describe('attention: bad input', () => {
  it('rejects a head count that does not match q, and a causal mask with fewer keys than queries', async () => {
    const rng = new Rng(3);
    const q = f32Tensor([1, 4, 32], rng.f32(128));
    const kv = f32Tensor([1, 4, 32], rng.f32(128));
    await expect(runOp('attention', [q, kv, kv], { qHeads: 3, kvHeads: 1, headDim: 16, scale: 1 })).rejects.toThrow(
      /attention: q f32\[1, 4, 32\] must have q_heads \* head_dim = 48 columns/,
    );
    await expect(runOp('attention', [q, kv, kv], { qHeads: 2, kvHeads: 3, headDim: 16, scale: 1 })).rejects.toThrow(
      /q_heads 2 is not a multiple of kv_heads 3/,
    );
    const short = f32Tensor([1, 2, 32], rng.f32(64));
    await expect(
      runOp('attention', [q, short, short], { qHeads: 2, kvHeads: 2, headDim: 16, scale: 1, causal: true }),
    ).rejects.toThrow(/causal mask needs at least as many keys as queries/);
  });
});
