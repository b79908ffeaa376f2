// attention(): softmax(scale · q k^T) v per head, GQA, the Causal mask of backend.h (query i of
// Lq sees keys [0, Lk - Lq + i]), batches, and k/v given as slices of a larger cache (strided
// rows), against the float64 reference and per-element error bound of helpers/ops-reference.ts
// (attentionReference, where the bound is derived).
import { afterAll, describe, expect, it } from 'vitest';

import {
  type AttentionShape,
  Rng,
  addon,
  asF32,
  attentionReference,
  expectClose,
  f32Tensor,
  kernelPaths,
  runOp,
  weightTensor,
} from '../helpers/ops-reference.js';

interface AttnCase extends AttentionShape {
  cache?: { length: number; begin: number }; // k/v stored in a [B, length, Hkv*D] cache
  valueRange?: number;
  qDtype?: 'f32' | 'bf16'; // stored type of q, and of k and v (a bf16 KV cache)
  kvDtype?: 'f32' | 'bf16';
}

async function checkAttention(c: AttnCase, seed: number, label: string) {
  const rng = new Rng(seed);
  const range = c.valueRange ?? 1;
  const kvLen = c.cache?.length ?? c.Lk;
  const kvBegin = c.cache?.begin ?? 0;
  // bf16 inputs: the reference uses the rounded values, so the f32 bound applies unchanged.
  const q = weightTensor(rng, c.qDtype ?? 'f32', [c.B, c.Lq, c.Hq * c.D], range);
  const k = weightTensor(rng, c.kvDtype ?? 'f32', [c.B, kvLen, c.Hkv * c.D], range);
  const v = weightTensor(rng, c.kvDtype ?? 'f32', [c.B, kvLen, c.Hkv * c.D]);
  const attrs: Record<string, unknown> = { qHeads: c.Hq, kvHeads: c.Hkv, headDim: c.D, scale: c.scale, causal: c.causal };
  if (c.cache) Object.assign(attrs, { kvBegin, kvEnd: kvBegin + c.Lk });
  if (c.segments) attrs['segments'] = c.segments;
  const [out] = await runOp('attention', [q.tensor, k.tensor, v.tensor], attrs);
  expect(out!.shape).toEqual([c.B, c.Lq, c.Hq * c.D]);
  expect(out!.dtype).toBe('f32');
  const ref = attentionReference(c, q.values, k.values, v.values, kvLen, kvBegin);
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

  // Segments (cu_seqlens): several images in one ViT call, window attention. Segment lengths
  // off the 128-query block and the 128-key tile, one longer than a block, one a single token.
  const segmentCases: [string, AttnCase][] = [
    ['segments [0, 5, 12, 13, 40] (one token alone), no mask', { B: 1, Lq: 40, Lk: 40, Hq: 2, Hkv: 2, D: 16, scale: 0.25, causal: false, segments: [0, 5, 12, 13, 40] }],
    ['segments of 150 and 67 tokens (past one query block), GQA 4/2', { B: 1, Lq: 217, Lk: 217, Hq: 4, Hkv: 2, D: 40, scale: 0.16, causal: false, segments: [0, 150, 217] }],
    ['segments with a causal mask inside each, batch 2', { B: 2, Lq: 30, Lk: 30, Hq: 3, Hkv: 1, D: 24, scale: 0.2, causal: true, segments: [0, 9, 23, 30] }],
    ['segments on the decode path (fewer than 8 tokens)', { B: 1, Lq: 6, Lk: 6, Hq: 2, Hkv: 2, D: 32, scale: 0.3, causal: false, segments: [0, 2, 6] }],
    ['Qwen2-VL-like windows of 64 over 211 tokens, head_dim 80', { B: 1, Lq: 211, Lk: 211, Hq: 2, Hkv: 2, D: 80, scale: 80 ** -0.5, causal: false, segments: [0, 64, 128, 192, 211] }],
  ];
  it.each(segmentCases)('%s', async (label, c) => {
    addon.setCpuKernels(path);
    await checkAttention(c, label.length * 7 + c.Lq, `${path}: ${label}`);
  });

  // bf16 q / k / v (a bf16 KV cache): read as stored, output f32.
  const bf16Cases: [string, AttnCase][] = [
    ['bf16 k and v cache, decode, GQA 8/2 over 301 keys', { B: 1, Lq: 1, Lk: 301, Hq: 8, Hkv: 2, D: 64, scale: 0.125, causal: true, kvDtype: 'bf16', cache: { length: 320, begin: 0 } }],
    ['bf16 q, k and v, causal prefill of 77', { B: 1, Lq: 77, Lk: 77, Hq: 2, Hkv: 2, D: 48, scale: 48 ** -0.5, causal: true, qDtype: 'bf16', kvDtype: 'bf16' }],
    ['bf16 k and v from a cache slice, 9 queries after a prefix, batch 2', { B: 2, Lq: 9, Lk: 40, Hq: 4, Hkv: 4, D: 32, scale: 0.2, causal: true, kvDtype: 'bf16', cache: { length: 50, begin: 3 } }],
    ['bf16 q only, segments', { B: 1, Lq: 33, Lk: 33, Hq: 2, Hkv: 1, D: 16, scale: 0.25, causal: false, qDtype: 'bf16', segments: [0, 20, 33] }],
  ];
  it.each(bf16Cases)('%s', async (label, c) => {
    addon.setCpuKernels(path);
    await checkAttention(c, label.length * 13 + c.Lk, `${path}: ${label}`);
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

  it('rejects segments that do not partition the tokens, and f16 activations', async () => {
    const rng = new Rng(4);
    const x = f32Tensor([1, 6, 32], rng.f32(192));
    const attrs = { qHeads: 2, kvHeads: 2, headDim: 16, scale: 1 };
    await expect(runOp('attention', [x, x, x], { ...attrs, segments: [0, 3, 5] })).rejects.toThrow(
      /attention: segments must run from 0 to 6/,
    );
    await expect(runOp('attention', [x, x, x], { ...attrs, segments: [0, 4, 4, 6] })).rejects.toThrow(
      /segment offsets must increase strictly, but offset 2 = 4 follows 4/,
    );
    const kv = f32Tensor([1, 8, 32], rng.f32(256));
    await expect(runOp('attention', [x, kv, kv], { ...attrs, segments: [0, 6] })).rejects.toThrow(
      /segments need self-attention/,
    );
    const h = weightTensor(rng, 'f16', [1, 6, 32]).tensor;
    await expect(runOp('attention', [x, h, h], attrs)).rejects.toThrow(/attention: k f16\[1, 6, 32\] must be f32 or bf16/);
  });
});
