// Every Backend op on 'cuda' against the same op on 'cpu' (the reference backend), on random
// non-zero inputs whose sizes do not divide the CUDA tiles (64 x 64 GEMM tiles, 16-row GEMV
// cutoff, 4-query attention blocks, 32 x 32 transpose tiles). Skipped, saying why, where the
// loaded addon has no usable CUDA device (see helpers/cuda.ts for how to load the CUDA build).
// Each case names the Backend ops it covers in brackets at the start of its title ("[glu] ...");
// cuda-coverage.test.ts fails when a Backend op has no such case.
//
// Tolerances (u = 2^-24, the f32 unit roundoff). Each backend is within its own rounding bound of
// the exact result, so the two may differ by the sum of both bounds:
// - exact (0): data movement (copy, cast, transpose, upsample, embedding), argmax, add, binary (one
//   correctly rounded f32 add or mul on each side), and the resize kernels, which repeat the CPU's float operations one by one without fused
//   multiply-adds (exact on x86-64, where the CPU build does not contract either).
// - dot products of K terms (linear, conv2d): f32 accumulation in any order is within
//   K·u·Σ|x_k w_k| of exact on each side. The tensor-core path (bf16/f16 weights, M > 16) splits
//   each activation into three 16-bit terms, so its products are exact; its accumulator adds with
//   truncation rather than rounding, worth about twice the rounding error: 4(K + 2)·u·Σ|x_k w_k|,
//   plus 32u of the result where an activation follows.
// - linear_q8: exact without an activation (the same integer sums and f32 epilogue operations);
//   linear_q4: the group terms summed in f32 in each device's order (see its case).
// - row statistics (norms): sums of C terms, C·u relative on each side, amplified by 1/std for the
//   mean-subtracting norms: 2(2C + 16)·u·(|w|·max|x - mean|/std + |b|) per row.
// - transcendental functions: CUDA's expf/erff/tanhf/cosf/sinf are within 2 ulp, the CPU's
//   exp_approx within 2 ulp and its tanh within 3: 32u·(|y| + |x|) for activations (glu: the
//   same through the product with up), 16u·(|x1| + |x2|) for RoPE.
// - norm_modulate: the row-statistics bound times |1 + scale|, plus 4u of the shift.
// - mean: double sums on both sides, each then rounded to f32: 2u·|y| + n·2^-51·max|x|.
// - attention: the bound of attentionReference (helpers/ops-reference.ts).
// - sampling: the filters and the draw are evaluated in double on both sides, so indices and kept
//   counts must be equal (a tie at rounding level is not expected on random logits).
import { describe, expect, it } from 'vitest';

import type { NativeTensor, NativeTensorInput } from '../../lib/native.js';
import { cudaAvailable, cudaTitle } from '../helpers/cuda.js';
import {
  type Act,
  EPS32,
  Rng,
  actRef,
  addon,
  asF32,
  asI32,
  attentionReference,
  type AttentionShape,
  expectClose,
  f32Tensor,
  i32Tensor,
  numel,
  quantizeRow,
  weightTensor,
} from '../helpers/ops-reference.js';

const u = EPS32;

async function both(op: string, inputs: (NativeTensorInput | null)[], attrs: Record<string, unknown> = {}) {
  const cpu = await addon.runOp('cpu', op, inputs, attrs);
  const gpu = await addon.runOp('cuda', op, inputs, attrs);
  expect(gpu.length).toBe(cpu.length);
  for (let i = 0; i < cpu.length; i++) {
    expect(gpu[i]!.dtype, `${op} output ${i} dtype`).toBe(cpu[i]!.dtype);
    expect(gpu[i]!.shape, `${op} output ${i} shape`).toEqual(cpu[i]!.shape);
  }
  return { cpu, gpu };
}

function bytesEqual(a: NativeTensor, b: NativeTensor, label: string) {
  const x = new Uint8Array(a.data), y = new Uint8Array(b.data);
  expect(x.length, `${label}: byte length`).toBe(y.length);
  let first = -1;
  for (let i = 0; i < x.length && first < 0; i++) if (x[i] !== y[i]) first = i;
  expect(first, `${label}: first differing byte`).toBe(-1);
}

async function exact(label: string, op: string, inputs: (NativeTensorInput | null)[], attrs: Record<string, unknown> = {}) {
  const { cpu, gpu } = await both(op, inputs, attrs);
  for (let i = 0; i < cpu.length; i++) bytesEqual(gpu[i]!, cpu[i]!, `${label} output ${i}`);
}

async function close(label: string, op: string, inputs: (NativeTensorInput | null)[], attrs: Record<string, unknown>, tol: ArrayLike<number> | number) {
  const { cpu, gpu } = await both(op, inputs, attrs);
  expectClose(asF32(gpu[0]!), asF32(cpu[0]!), tol, label);
}

describe.skipIf(!cudaAvailable)(cudaTitle('cuda ops against cpu: memory and layout'), () => {
  it('[copy] including into and out of slices (strided rows)', async () => {
    const rng = new Rng(1);
    const x = f32Tensor([3, 37, 45], rng.f32(3 * 37 * 45));
    await exact('copy dense', 'copy', [x]);
    await exact('copy from a slice', 'copy', [x], { slice: [1, 5, 33] });
    await exact('copy into a slice', 'copy', [f32Tensor([3, 7, 45], rng.f32(3 * 7 * 45))], { outShape: [3, 37, 45], outSlice: [1, 11, 18] });
    await exact('copy a column slice', 'copy', [x], { slice: [2, 3, 40] });
    const bits = weightTensor(rng, 'bf16', [33, 70]).tensor;
    await exact('copy bf16 slice', 'copy', [bits], { slice: [1, 1, 69] });
  });

  it('[fill, cast] f32 <-> bf16 <-> f16 (round to nearest even, bit-exact)', async () => {
    await exact('fill', 'fill', [], { shape: [5, 77], value: -1.25 });
    const rng = new Rng(2);
    const x = rng.f32(1001, -70000, 70000); // beyond the f16 range too: overflow to inf on both sides
    for (let i = 0; i < 50; i++) x[i] = x[i]! * 1e-6; // f16 subnormals
    for (const dtype of ['bf16', 'f16', 'f32']) await exact(`cast f32->${dtype}`, 'cast', [f32Tensor([7, 143], x)], { dtype });
    const h = weightTensor(rng, 'f16', [3, 99]).tensor;
    for (const dtype of ['bf16', 'f32']) await exact(`cast f16->${dtype}`, 'cast', [h], { dtype });
  });

  it('[transpose] [R, C] and [B, R, C] off the 32 x 32 tile, f32 and bf16', async () => {
    const rng = new Rng(3);
    await exact('transpose 2d', 'transpose', [f32Tensor([45, 70], rng.f32(45 * 70))]);
    await exact('transpose 3d', 'transpose', [f32Tensor([3, 33, 65], rng.f32(3 * 33 * 65))]);
    await exact('transpose bf16', 'transpose', [weightTensor(rng, 'bf16', [2, 31, 95]).tensor]);
  });
});

// ---- linear

function dotBound(x: Float32Array, w: Float64Array, M: number, K: number, N: number, bias: Float32Array | null, act: string) {
  const tol = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let abs = bias ? Math.abs(bias[n]!) : 0;
      let sum = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) {
        const t = x[m * K + k]! * w[n * K + k]!;
        abs += Math.abs(t);
        sum += t;
      }
      let t = 4 * (K + 2) * u * abs;
      if (act !== 'none') t = 1.2 * t + 32 * u * Math.abs(sum);
      tol[m * N + n] = t + 1e-30;
    }
  return tol;
}

describe.skipIf(!cudaAvailable)(cudaTitle('cuda ops against cpu: linear'), () => {
  const shapes = [
    [1, 7, 5],
    [3, 200, 67], // GEMV, scalar loads (K % 8 != 0)
    [16, 256, 130], // GEMV, 16-byte loads, largest row count
    [17, 123, 77], // smallest tiled GEMM
    [67, 129, 65], // one row and one column past the 64 x 64 tile
    [130, 600, 257], // several K steps and tiles
  ];
  it.each(['f32', 'bf16', 'f16'] as const)('[linear] %s weights over GEMV, tensor-core and CUDA-core shapes, with bias and activations', async (dtype) => {
    let seed = 100;
    const acts = ['none', 'silu', 'gelu_tanh', 'gelu', 'quick_gelu'];
    for (const [M, K, N] of shapes) {
      const rng = new Rng(++seed);
      const x = rng.f32(M! * K!);
      const w = weightTensor(rng, dtype, [N!, K!]);
      const bias = seed % 2 ? rng.f32(N!) : null;
      const act = acts[seed % acts.length]!;
      const inputs = [f32Tensor([M!, K!], x), w.tensor, bias ? f32Tensor([N!], bias) : null];
      await close(`linear ${dtype} M=${M} K=${K} N=${N} act=${act}`, 'linear', inputs, { act }, dotBound(x, w.values, M!, K!, N!, bias, act));
    }
  });

  it('[linear] accumulates into y and reads x from a slice (rows spaced by a larger stride)', async () => {
    const rng = new Rng(7);
    for (const [M, dtype] of [[3, 'f32'], [40, 'bf16'], [40, 'f32']] as const) {
      const K = 77, N = 45;
      const x = rng.f32(M * K);
      const w = weightTensor(rng, dtype, [N, K]);
      const bias = rng.f32(N);
      const y0 = rng.f32(M * N);
      const tol = dotBound(x, w.values, M, K, N, bias, 'silu').map((t, i) => t + 4 * u * Math.abs(y0[i]!) + 8 * u);
      await close(`linear accumulate ${dtype} M=${M}`, 'linear', [f32Tensor([M, K], x), w.tensor, f32Tensor([N], bias), f32Tensor([M, N], y0)], { act: 'silu', accumulate: true }, tol);
    }
  });

  it('[linear] f16 weights with activations far outside the f16 range (per-row power-of-two scaling)', async () => {
    const rng = new Rng(8);
    const M = 33, K = 96, N = 70;
    const x = rng.f32(M * K, -1, 1);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) x[m * K + k] = x[m * K + k]! * 10 ** ((m % 11) - 5) * (m % 3 === 0 ? 1e5 : 1);
    const w = weightTensor(rng, 'f16', [N, K]);
    await close('linear f16 wide-range x', 'linear', [f32Tensor([M, K], x), w.tensor], {}, dotBound(x, w.values, M, K, N, null, 'none'));
  });

  it('[linear] bf16 activations (x stored as bf16) over GEMV and tiled shapes', async () => {
    let seed = 300;
    for (const [M, K, N, dtype] of [[3, 70, 45, 'f32'], [40, 77, 70, 'bf16'], [67, 129, 65, 'f32'], [20, 96, 33, 'f16']] as const) {
      const rng = new Rng(++seed);
      const x = weightTensor(rng, 'bf16', [M, K]);
      const w = weightTensor(rng, dtype, [N, K]);
      const xf = Float32Array.from(x.values);
      await close(`linear bf16 x, ${dtype} w M=${M}`, 'linear', [x.tensor, w.tensor], { act: 'tanh' }, dotBound(xf, w.values, M, K, N, null, 'tanh'));
    }
  });

  it('[linear] rejects host-side errors with the CPU twin messages', async () => {
    const rng = new Rng(9);
    await expect(
      addon.runOp('cuda', 'linear', [f32Tensor([3, 64], rng.f32(192)), weightTensor(rng, 'bf16', [128, 63]).tensor], {}),
    ).rejects.toThrow('linear: x f32[3, 64] and w bf16[128, 63] disagree on K');
  });
});

// ---- linear_q8, linear_q4: the op binder quantizes the float weights on the host, so both devices
// get the same bytes (outputs 1 and 2, returned for the reference, must be identical).

const QUANT_SHAPES = [
  [1, 64, 8], // one decode row, 16-byte loads
  [3, 100, 13], // GEMV, K % 16 != 0: byte loads (int8), K padded to 128 (q4)
  [16, 256, 40], // GEMV, its largest row count
  [17, 300, 70], // the smallest tiled GEMM, K % 64 != 0
  [67, 129, 65], // one row and one column past the 64 x 64 tile, K % 4 != 0
  [130, 640, 257], // several k steps and tiles
] as const;

function quantInputs(seed: number, M: number, K: number, N: number, withBias: boolean) {
  const rng = new Rng(seed);
  const x = rng.f32(M * K, -2, 2);
  const w = weightTensor(rng, seed % 2 ? 'bf16' : 'f32', [N, K], 0.5);
  const bias = withBias ? rng.f32(N, -1, 1) : null;
  return { x, bias, inputs: [f32Tensor([M, K], x), w.tensor, bias ? f32Tensor([N], bias) : null] };
}

describe.skipIf(!cudaAvailable)(cudaTitle('cuda ops against cpu: quantized linear'), () => {
  it('[linear_q8] equals the CPU bit for bit: exact integer sums and the same f32 epilogue, with and without bias', async () => {
    let seed = 500;
    for (const [M, K, N] of QUANT_SHAPES) {
      const { inputs } = quantInputs(++seed, M, K, N, seed % 2 === 1);
      await exact(`linear_q8 M=${M} K=${K} N=${N}`, 'linear_q8', inputs);
    }
  });

  it('[linear_q8] with activations: the same pre-activation, then each device\'s activation formula', async () => {
    let seed = 550;
    for (const act of ['silu', 'gelu', 'gelu_tanh'] as const) {
      for (const [M, K, N] of [[5, 96, 33], [40, 130, 70]] as const) {
        const { inputs } = quantInputs(++seed, M, K, N, true);
        const [pre] = await addon.runOp('cpu', 'linear_q8', inputs, {});
        const p = asF32(pre!);
        const tol = Array.from(p, (v) => 32 * u * (Math.abs(actRef(act, v)) + Math.abs(v)) + 1e-30);
        await close(`linear_q8 ${act} M=${M}`, 'linear_q8', inputs, { act }, tol);
      }
    }
  });

  it('[linear_q8] a row holding NaN gives NaN and a zero row gives zero, as on the CPU', async () => {
    const K = 70, N = 9;
    const rng = new Rng(580);
    const x = rng.f32(3 * K, -1, 1);
    x.fill(0, 0, K);
    x[K + 5] = Number.NaN;
    const w = weightTensor(rng, 'f32', [N, K]);
    const { cpu, gpu } = await both('linear_q8', [f32Tensor([3, K], x), w.tensor, null]);
    const a = asF32(gpu[0]!), b = asF32(cpu[0]!);
    for (let n = 0; n < N; n++) {
      expect(a[n]).toBe(0);
      expect(Number.isNaN(a[N + n])).toBe(true);
      expect(a[2 * N + n]).toBe(b[2 * N + n]);
    }
  });

  // Both devices sum exact int32 group dots, times f16 scales, in f32 in their own order: each is
  // within (P + 2)·u of Σ|terms| (P partial sums: the GEMV adds half groups of 16), so they may
  // differ by twice that, plus the final product with sx and the bias add.
  it('[linear_q4] within the rounding of the f32 sums over groups', async () => {
    let seed = 600;
    for (const [M, K, N] of QUANT_SHAPES) {
      for (const act of ['none', 'silu'] as const) {
        const withBias = seed % 2 === 0;
        const { x, bias, inputs } = quantInputs(++seed, M, K, N, withBias);
        const { cpu, gpu } = await both('linear_q4', inputs, { act });
        bytesEqual(gpu[1]!, cpu[1]!, `linear_q4 M=${M} q`);
        bytesEqual(gpu[2]!, cpu[2]!, `linear_q4 M=${M} scales`);
        const q = asF32(cpu[1]!), d = asF32(cpu[2]!);
        const Kp = Math.ceil(K / 64) * 64, pieces = Kp / 16;
        const tol = new Float64Array(M * N);
        for (let m = 0; m < M; m++) {
          const { xq, sx } = quantizeRow(x.subarray(m * K, (m + 1) * K));
          for (let n = 0; n < N; n++) {
            let mag = 0, sum = 0;
            for (let p = 0; p < pieces; p++) {
              let dot = 0;
              for (let k = p * 16; k < Math.min(K, (p + 1) * 16); k++) dot += xq[k]! * q[n * Kp + k]!;
              mag += Math.abs(d[n * (Kp / 32) + Math.floor(p / 2)]! * dot);
              sum += d[n * (Kp / 32) + Math.floor(p / 2)]! * dot;
            }
            const b = bias ? bias[n]! : 0;
            const pre = sum * sx + b;
            let t = 2 * (pieces + 4) * u * mag * sx + 4 * u * (Math.abs(pre) + Math.abs(b));
            if (act !== 'none') t = 1.2 * t + 32 * u * (Math.abs(pre) + Math.abs(actRef(act, pre)));
            tol[m * N + n] = t + 1e-30;
          }
        }
        expectClose(asF32(gpu[0]!), asF32(cpu[0]!), tol, `linear_q4 M=${M} K=${K} N=${N} act=${act}`);
      }
    }
  });
});

// ---- attention

type AttnCase = Omit<AttentionShape, 'scale'> & {
  cache?: number; // k/v rows stored in a cache of this length, the keys being rows [2, 2 + Lk)
  qDtype?: 'f32' | 'bf16';
  kvDtype?: 'f32' | 'bf16'; // a bf16 KV cache
};

describe.skipIf(!cudaAvailable)(cudaTitle('cuda ops against cpu: attention'), () => {
  const cases: [string, AttnCase][] = [
    ['prefill, causal, GQA 4/2, D 64', { B: 1, Lq: 37, Lk: 37, Hq: 4, Hkv: 2, D: 64, causal: true }],
    ['decode, causal, one query over a cache slice', { B: 1, Lq: 1, Lk: 70, Hq: 4, Hkv: 1, D: 128, causal: true, cache: 80 }],
    ['chunk of queries after a prefix (Lk > Lq, causal)', { B: 1, Lq: 6, Lk: 43, Hq: 2, Hkv: 2, D: 40, causal: true }],
    ['VAR-like: batch 2, no mask, keys from a cache slice', { B: 2, Lq: 9, Lk: 14, Hq: 3, Hkv: 3, D: 64, causal: false, cache: 20 }],
    ['VQ-VAE-like: one head of 512', { B: 1, Lq: 17, Lk: 17, Hq: 1, Hkv: 1, D: 512, causal: false }],
    ['one head of 640 (the largest the kernel takes)', { B: 1, Lq: 5, Lk: 11, Hq: 1, Hkv: 1, D: 640, causal: false }],
    ['head_dim 24 (not a multiple of 32)', { B: 1, Lq: 7, Lk: 7, Hq: 2, Hkv: 1, D: 24, causal: true }],
    // Segments whose bounds fall inside the kernel's 4-query blocks and 64-key tiles.
    ['segments (cu_seqlens) [0, 5, 6, 71, 90], no mask', { B: 1, Lq: 90, Lk: 90, Hq: 2, Hkv: 2, D: 80, causal: false, segments: [0, 5, 6, 71, 90] }],
    ['segments with a causal mask, batch 2, GQA 4/2', { B: 2, Lq: 37, Lk: 37, Hq: 4, Hkv: 2, D: 32, causal: true, segments: [0, 13, 37] }],
    ['bf16 KV cache, decode over a cache slice', { B: 1, Lq: 1, Lk: 70, Hq: 8, Hkv: 2, D: 64, causal: true, cache: 80, kvDtype: 'bf16' }],
    ['bf16 q, k and v, prefill', { B: 1, Lq: 21, Lk: 21, Hq: 2, Hkv: 2, D: 48, causal: true, qDtype: 'bf16', kvDtype: 'bf16' }],
  ];
  it.each(cases)('[attention] %s', async (_label, c) => {
    const rng = new Rng(c.Lq * 31 + c.Lk + c.D);
    const kvLen = c.cache ?? c.Lk;
    const kvBegin = c.cache ? 2 : 0;
    const q = weightTensor(rng, c.qDtype ?? 'f32', [c.B, c.Lq, c.Hq * c.D], 2);
    const k = weightTensor(rng, c.kvDtype ?? 'f32', [c.B, kvLen, c.Hkv * c.D], 2);
    const v = weightTensor(rng, c.kvDtype ?? 'f32', [c.B, kvLen, c.Hkv * c.D]);
    const scale = 1 / Math.sqrt(c.D);
    const attrs: Record<string, unknown> = { qHeads: c.Hq, kvHeads: c.Hkv, headDim: c.D, scale, causal: c.causal };
    if (c.cache) Object.assign(attrs, { kvBegin, kvEnd: kvBegin + c.Lk });
    if (c.segments) attrs['segments'] = c.segments;
    const tol = attentionReference({ ...c, scale }, q.values, k.values, v.values, kvLen, kvBegin).tol;
    await close(`attention ${_label}`, 'attention', [q.tensor, k.tensor, v.tensor], attrs, tol);
  });

  it('[attention] rejects a head_dim beyond the kernel limit with a clear message', async () => {
    const rng = new Rng(5);
    const x = f32Tensor([1, 2, 1024], rng.f32(2048));
    await expect(addon.runOp('cuda', 'attention', [x, x, x], { qHeads: 1, kvHeads: 1, headDim: 1024, scale: 1 })).rejects.toThrow(
      /attention: head_dim 1024 exceeds the CUDA kernel's limit of 640/,
    );
  });
});

// ---- norms and element-wise

function normBound(x: Float32Array, R: number, C: number, w: Float32Array | null, b: Float32Array | null, eps: number, centred: boolean) {
  const tol = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[r * C + c]! / C;
    if (!centred) mean = 0;
    let ss = 0, big = 0;
    for (let c = 0; c < C; c++) {
      ss += (x[r * C + c]! - mean) ** 2;
      big = Math.max(big, Math.abs(x[r * C + c]! - mean));
    }
    const inv = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++)
      tol[r * C + c] = 2 * (2 * C + 16) * u * ((w ? Math.abs(w[c]!) : 1) * big * inv + (b ? Math.abs(b[c]!) : 0)) + 1e-30;
  }
  return tol;
}

describe.skipIf(!cudaAvailable)(cudaTitle('cuda ops against cpu: normalisation and element-wise'), () => {
  it('[rms_norm, layer_norm] f32 and bf16 weights, with and without affine', async () => {
    for (const [R, C] of [[3, 7], [5, 300], [2, 4097]] as const) {
      const rng = new Rng(R * C);
      const x = rng.f32(R * C, -2, 4);
      const w = rng.f32(C, 0.5, 1.5);
      const b = rng.f32(C);
      await close(`rms_norm ${R}x${C}`, 'rms_norm', [f32Tensor([R, C], x), f32Tensor([C], w)], { eps: 1e-6 }, normBound(x, R, C, w, null, 1e-6, false));
      const wb = weightTensor(rng, 'bf16', [C], 1);
      const wf = Float32Array.from(wb.values);
      await close(`rms_norm bf16 weight ${R}x${C}`, 'rms_norm', [f32Tensor([R, C], x), wb.tensor], { eps: 1e-6 }, normBound(x, R, C, wf, null, 1e-6, false));
      await close(`layer_norm ${R}x${C}`, 'layer_norm', [f32Tensor([R, C], x), f32Tensor([C], w), f32Tensor([C], b)], { eps: 1e-5 }, normBound(x, R, C, w, b, 1e-5, true));
      await close(`layer_norm no affine ${R}x${C}`, 'layer_norm', [f32Tensor([R, C], x)], { eps: 1e-5 }, normBound(x, R, C, null, null, 1e-5, true));
    }
  });

  it('[norm_modulate, gated_add] AdaLN and gated residual over [B, L, C]', async () => {
    const rng = new Rng(11);
    const B = 2, L = 5, C = 130;
    const x = rng.f32(B * L * C, -2, 3);
    const scale = rng.f32(B * C), shift = rng.f32(B * C), gate = rng.f32(B * C), y = rng.f32(B * L * C);
    const tol = normBound(x, B * L, C, null, null, 1e-6, true).map((t, i) => {
      const b = Math.floor(i / (L * C)), c = i % C;
      return t * (1 + Math.abs(scale[b * C + c]!)) + 4 * u * Math.abs(shift[b * C + c]!);
    });
    await close('norm_modulate (AdaLN)', 'norm_modulate', [f32Tensor([B, L, C], x), f32Tensor([B, C], scale), f32Tensor([B, C], shift)], { norm: 'layer', eps: 1e-6 }, tol);
    const gtol = Float64Array.from(x, (xv, i) => 4 * u * (Math.abs(xv) + Math.abs(y[i]! * gate[Math.floor(i / (L * C)) * C + (i % C)]!)));
    await close('gated_add', 'gated_add', [f32Tensor([B, L, C], x), f32Tensor([B, L, C], y), f32Tensor([B, C], gate)], {}, gtol);
  });

  it('[group_norm] over [N, C, H, W] and [C, H, W] (double moments on both sides)', async () => {
    for (const shape of [[2, 8, 5, 7], [12, 9, 11]]) {
      const rng = new Rng(numel(shape));
      const C = shape[shape.length - 3]!;
      const x = rng.f32(numel(shape), -1, 3);
      const w = rng.f32(C, 0.5, 1.5), b = rng.f32(C);
      const tol = Float64Array.from(x, (xv) => 16 * u * (Math.abs(xv) * 4 + 4)); // x·a + shift, |a| ≲ 4, |shift| ≲ 4
      await close(`group_norm ${shape}`, 'group_norm', [f32Tensor(shape, x), f32Tensor([C], w), f32Tensor([C], b)], { groups: C % 4 === 0 ? 4 : 3, eps: 1e-6 }, tol);
    }
  });

  it('[l2_normalize_heads] with and without per-head scale', async () => {
    const rng = new Rng(12);
    const R = 9, H = 3, D = 40;
    const x = rng.f32(R * H * D);
    const hs = rng.f32(H, 1, 5);
    const tol = Float64Array.from(x, () => 2 * (D + 16) * u * 5);
    await close('l2_normalize_heads scaled', 'l2_normalize_heads', [f32Tensor([R, H * D], x), f32Tensor([H], hs)], { headDim: D }, tol);
    await close('l2_normalize_heads', 'l2_normalize_heads', [f32Tensor([R, H * D], x)], { headDim: D }, tol);
  });

  it('[activation, add, axpby] activations (tanh too), SwiGLU through glu, add (suffix broadcast) and axpby', async () => {
    const rng = new Rng(13);
    const x = rng.f32(37 * 29, -12, 12);
    const actTol = Float64Array.from(x, (v) => 32 * u * 2 * Math.abs(v) + 1e-30);
    for (const act of ['none', 'silu', 'gelu', 'gelu_tanh', 'quick_gelu', 'tanh'])
      await close(`activation ${act}`, 'activation', [f32Tensor([37, 29], x)], { act }, actTol);
    const up = rng.f32(37 * 29);
    const sTol = Float64Array.from(x, (v, i) => 32 * u * Math.abs(v * up[i]!) + 1e-30);
    await close('glu silu', 'glu', [f32Tensor([37, 29], x), f32Tensor([37, 29], up)], { act: 'silu' }, sTol);
    await exact('add suffix [29]', 'add', [f32Tensor([37, 29], x), f32Tensor([29], rng.f32(29))]);
    await exact('add suffix [5, 29]', 'add', [f32Tensor([3, 5, 29], rng.f32(3 * 5 * 29)), f32Tensor([5, 29], rng.f32(5 * 29))]);
    const a = rng.f32(1000), b = rng.f32(1000);
    const abTol = Float64Array.from(a, (v, i) => 2 * u * (Math.abs(1.5 * v) + Math.abs(0.25 * b[i]!)) + 1e-30);
    await close('axpby', 'axpby', [f32Tensor([1000], a), f32Tensor([1000], b)], { alpha: 1.5, beta: -0.25 }, abTol);
  });

  it('[norm_modulate] LayerNorm / RMSNorm, with and without affine and shift, [B, L, C] and [L, C]', async () => {
    const rng = new Rng(21);
    const cases = [
      { B: 2, L: 5, C: 130, norm: 'layer', w: false, b: false, shift: true }, // Infinity
      { B: 3, L: 4, C: 67, norm: 'rms', w: true, b: false, shift: false }, // Lumina-Next
      { B: 1, L: 3, C: 1031, norm: 'layer', w: true, b: true, shift: true },
      { B: 1, L: 6, C: 33, norm: 'rms', w: true, b: true, shift: true },
    ] as const;
    for (const c of cases) {
      const { B, L, C } = c;
      const x = rng.f32(B * L * C, -2, 3);
      const scale = rng.f32(B * C, -0.9, 0.9), shift = rng.f32(B * C);
      const w = weightTensor(rng, c.w && C > 1000 ? 'bf16' : 'f32', [C], 1.5);
      const wf = Float32Array.from(w.values);
      const b = rng.f32(C);
      // normBound of each side, through the modulation, plus the shift's rounding.
      const tol = normBound(x, B * L, C, c.w ? wf : null, c.b ? b : null, 1e-6, c.norm === 'layer').map((t, i) => {
        const bi = Math.floor(i / (L * C)), ch = i % C;
        return t * (1 + Math.abs(scale[bi * C + ch]!)) + 4 * u * (c.shift ? Math.abs(shift[bi * C + ch]!) : 0) + 1e-30;
      });
      const xs = B === 1 ? [L, C] : [B, L, C];
      const vs = B === 1 ? [C] : [B, C];
      await close(
        `norm_modulate ${c.norm} ${B}x${L}x${C}`,
        'norm_modulate',
        [f32Tensor(xs, x), f32Tensor(vs, scale), c.shift ? f32Tensor(vs, shift) : null, c.w ? w.tensor : null, c.b ? f32Tensor([C], b) : null],
        { norm: c.norm, eps: 1e-6 },
        tol,
      );
    }
  });

  it('[gated_add] with a tanh gate (Lumina-Next)', async () => {
    const rng = new Rng(22);
    const B = 2, L = 7, C = 67;
    const x = rng.f32(B * L * C, -2, 2), y = rng.f32(B * L * C, -2, 2), gate = rng.f32(B * C, -3, 3);
    const tol = Float64Array.from(x, (xv, i) => {
      const p = Math.abs(y[i]! * Math.tanh(gate[Math.floor(i / (L * C)) * C + (i % C)]!));
      return 32 * u * p + 4 * u * (Math.abs(xv) + p) + 1e-30;
    });
    await close('gated_add tanh', 'gated_add', [f32Tensor([B, L, C], x), f32Tensor([B, L, C], y), f32Tensor([B, C], gate)], { act: 'tanh' }, tol);
  });

  it('[glu] SwiGLU and GEGLU (tanh and erf) and a tanh gate over rows off the vector widths', async () => {
    const rng = new Rng(23);
    const g = rng.f32(9 * 131, -6, 6), up = rng.f32(9 * 131, -2, 2);
    for (const act of ['silu', 'gelu_tanh', 'gelu', 'tanh']) {
      // Each side's activation within 16u·|act| + 4u·|g| (norm.test.ts), then one product.
      const tol = Float64Array.from(g, (v, i) => 2 * (16 * u * Math.abs(actRef(act as Act, v)) + 4 * u * Math.abs(v)) * Math.abs(up[i]!) + 1e-30);
      await close(`glu ${act}`, 'glu', [f32Tensor([9, 131], g), f32Tensor([9, 131], up)], { act }, tol);
    }
  });

  it('[binary] NumPy broadcasting add and mul (one correctly rounded operation: exact)', async () => {
    const rng = new Rng(24);
    const shapes: [number[], number[]][] = [[[5, 37], [37]], [[5, 1], [1, 37]], [[2, 3, 9, 11], [1, 3, 1, 1]], [[2, 1, 7, 1], [3, 1, 5]], [[3, 4], []], [[4, 33], [4, 33]]];
    for (const [as, bs] of shapes)
      for (const op of ['add', 'mul'])
        await exact(`binary ${op} ${as} ${bs}`, 'binary', [f32Tensor(as, rng.f32(numel(as))), f32Tensor(bs, rng.f32(numel(bs)))], { op });
  });

  it('[mean] over every axis of a 4-d tensor (double sums on both sides)', async () => {
    const rng = new Rng(25);
    const shape = [3, 5, 67, 9];
    const x = rng.f32(numel(shape), -2, 5);
    for (let axis = -4; axis < 4; axis++) {
      const { cpu, gpu } = await both('mean', [f32Tensor(shape, x)], { axis, keepdim: axis % 2 === 0 });
      const ref = asF32(cpu[0]!);
      const n = shape[(axis + 4) % 4]!;
      // Each side is the f32 rounding of a double sum (n·2^-53 relative of Σ|x| <= 5n).
      expectClose(asF32(gpu[0]!), ref, Float64Array.from(ref, (v) => 2 * u * Math.abs(v) + n * 2 ** -51 * 5 + 1e-30), `mean axis ${axis}`);
    }
  });

  it.each(['rotate_half', 'interleaved'] as const)('[rope] from a cos | sin table, %s pairing', async (pairing) => {
    const rng = new Rng(14);
    const L = 11, H = 3, D = 66;
    const x = rng.f32(2 * L * H * D);
    const table = Float32Array.from({ length: L * D }, (_, i) => {
      const angle = (i * 397 + 3) * 0.37;
      return i % D < D / 2 ? Math.cos(angle) : Math.sin(angle);
    });
    const tol = new Float64Array(x.length).fill(4 * u * 2 + 1e-30);
    await close(`rope [2, L, H*D] ${pairing}`, 'rope', [f32Tensor([2, L, H * D], x), f32Tensor([L, D], table)], { headDim: D, pairing }, tol);
  });
});

// ---- images

describe.skipIf(!cudaAvailable)(cudaTitle('cuda ops against cpu: images'), () => {
  const convs: [string, number[], number[], number, number | number[], boolean, 'f32' | 'bf16'][] = [
    ['3x3 pad 1, batch 2', [2, 5, 13, 11], [7, 5, 3, 3], 1, 1, true, 'f32'],
    ['1x1 (pointwise)', [1, 70, 9, 9], [66, 70, 1, 1], 1, 0, true, 'f32'],
    ['3x3 stride 2, asymmetric padding [0, 1, 0, 1]', [1, 6, 17, 16], [9, 6, 3, 3], 2, [0, 1, 0, 1], false, 'f32'],
    ['patch embedding 14x14 stride 14, bf16 weights', [3, 42, 42], [65, 3, 14, 14], 14, 0, false, 'bf16'],
  ];
  it.each(convs)('[conv2d] %s', async (_label, xs, ws, stride, padding, hasBias, dtype) => {
    const rng = new Rng(numel(xs) + numel(ws));
    const x = rng.f32(numel(xs));
    const w = weightTensor(rng, dtype, ws, 0.5);
    const bias = hasBias ? rng.f32(ws[0]!) : null;
    const { cpu, gpu } = await both('conv2d', [f32Tensor(xs, x), w.tensor, bias ? f32Tensor([ws[0]!], bias) : null], { stride, padding });
    // Bound from the largest possible |x|·|w| sum of one output: K·max|x|·max|w| (+|bias|).
    const K = ws[1]! * ws[2]! * ws[3]!;
    const tol = 4 * (K + 2) * u * (K * 1 * 0.5 + 1);
    expectClose(asF32(gpu[0]!), asF32(cpu[0]!), tol, `conv2d ${_label}`);
  });

  it('[upsample_nearest2x, resize_bicubic, resize_area, resize_bilinear] bit-exact on x86-64', async () => {
    const rng = new Rng(15);
    await exact('upsample_nearest2x', 'upsample_nearest2x', [f32Tensor([2, 3, 5, 7], rng.f32(210))]);
    const x = f32Tensor([1, 4, 13, 13], rng.f32(4 * 13 * 13));
    const resize = async (op: string, size: number[]) => {
      if (process.arch === 'x64') return exact(`${op} -> ${size}`, op, [x], { size });
      return close(`${op} -> ${size}`, op, [x], { size }, 1e-5); // fused multiply-adds on the CPU side
    };
    for (const size of [[16, 16], [7, 7], [1, 1], [26, 5], [13, 13]]) {
      await resize('resize_bicubic', size);
      await resize('resize_area', size);
      await resize('resize_bilinear', size);
    }
  });
});

// ---- tokens, codebooks, sampling

describe.skipIf(!cudaAvailable)(cudaTitle('cuda ops against cpu: tokens and sampling'), () => {
  it.each(['f32', 'bf16', 'f16'] as const)('[embedding] %s rows (exact), and a bad id rejected before any write', async (dtype) => {
    const rng = new Rng(16);
    const table = weightTensor(rng, dtype, [50, 33]).tensor;
    await exact(`embedding ${dtype}`, 'embedding', [i32Tensor([7], [0, 49, 3, 3, 17, 48, 1]), table]);
    await expect(addon.runOp('cuda', 'embedding', [i32Tensor([3], [0, 50, 1]), table], {})).rejects.toThrow(
      /embedding: ids\[1\] = 50 is outside the table/,
    );
    await expect(addon.runOp('cuda', 'embedding', [i32Tensor([2], [1, -1]), table], {})).rejects.toThrow(/ids\[1\] = -1 is outside/);
  });

  it('[vq_nearest] picks a codeword at the smallest distance (to within rounding of the distances)', async () => {
    const rng = new Rng(17);
    const N = 70, C = 32, V = 300;
    const z = rng.f32(N * C);
    const book = weightTensor(rng, 'f32', [V, C]);
    const { cpu, gpu } = await both('vq_nearest', [f32Tensor([N, C], z), book.tensor]);
    const a = asI32(gpu[0]!), b = asI32(cpu[0]!);
    let differ = 0;
    for (let n = 0; n < N; n++) {
      if (a[n] === b[n]) continue;
      differ++;
      const dist = (v: number) => {
        let s = 0;
        for (let c = 0; c < C; c++) s += (z[n * C + c]! - book.values[v * C + c]!) ** 2;
        return s;
      };
      // Both distances are (|z|² + |e|²) - 2 z·e in f32: ~(C + 4)·u·(|z|² + |e|²) from exact.
      expect(Math.abs(dist(a[n]!) - dist(b[n]!)), `row ${n}: ${a[n]} vs ${b[n]}`).toBeLessThan(4 * (C + 4) * u * 2 * C);
    }
    expect(differ, 'rows choosing a different (equally near) codeword').toBeLessThanOrEqual(1);
  });

  it('[argmax] first maximum, ties included', async () => {
    const rng = new Rng(18);
    const N = 9, V = 1001;
    const x = rng.f32(N * V);
    x[3 * V + 10] = 5;
    x[3 * V + 900] = 5; // tie: the first wins
    x[5 * V + 1000] = 7;
    await exact('argmax', 'argmax', [f32Tensor([N, V], x)]);
  });

  const configs: [string, Record<string, number>, number][] = [
    ['VAR settings: top-k 900, top-p 0.96, V 4096', { topK: 900, topP: 0.96, temperature: 1 }, 4096],
    ['top-k only (k = 50)', { topK: 50, topP: 1, temperature: 1 }, 1000],
    ['top-p only (p = 0.5) with temperature 0.7', { topK: 0, topP: 0.5, temperature: 0.7 }, 1000],
    ['no filter, temperature 1.3, LLM vocabulary', { topK: 0, topP: 1, temperature: 1.3 }, 32064],
    ['top-k 1 (greedy)', { topK: 1, topP: 1, temperature: 1 }, 100],
    ['top-p 0 keeps only the largest', { topK: 0, topP: 0, temperature: 1 }, 100],
  ];
  it.each(configs)('[sample] %s: the same indices and kept counts as the CPU for the same seed', async (_label, p, V) => {
    const N = V > 10000 ? 4 : 64;
    const rng = new Rng(V + (p.topK ?? 0));
    const logits = new Float32Array(N * V);
    for (let i = 0; i < logits.length; i++) logits[i] = rng.normal() * 3;
    await exact(`sample ${_label}`, 'sample', [f32Tensor([N, V], logits)], { ...p, seed: 1234567890123n, stream: (2n << 32n) | 5n });
  });

  it('[sample] rejects NaN logits naming the position', async () => {
    await expect(addon.runOp('cuda', 'sample', [f32Tensor([2, 3], new Float32Array([0, 1, 2, 1, NaN, 0]))], { seed: 1 })).rejects.toThrow(
      /sample: logits\[1, 1\] is NaN/,
    );
  });

  it('[randn] philox_normal in double on both sides (equal to within one f32 ulp)', async () => {
    const { cpu, gpu } = await both('randn', [], { shape: [7, 1111], seed: 42n, stream: 7 });
    const ref = asF32(cpu[0]!);
    expectClose(asF32(gpu[0]!), ref, Float64Array.from(ref, (v) => 2 * u * Math.abs(v) + 1e-30), 'randn');
  });
});

describe.skipIf(!cudaAvailable)(cudaTitle('cuda device probes'), () => {
  it('reports a tensor-core peak, a read bandwidth and device memory', async () => {
    const [peak] = await addon.runOp('cuda', 'peak_flops', [], { seconds: 0.2 });
    expect(asF32(peak!)[0]).toBeGreaterThan(1000); // GFLOP/s: any sm_80+ part does far more
    const [bw] = await addon.runOp('cuda', 'read_bandwidth', [], { bytes: 1 << 28, iterations: 2 });
    expect(asF32(bw!)[0]).toBeGreaterThan(50); // GB/s
    const [mem] = await addon.runOp('cuda', 'device_memory', [], {});
    const m = new BigInt64Array(mem!.data);
    expect(m[4]! > 0n && m[3]! <= m[4]!).toBe(true);
  });
});
