// linear(): y = act(x · w^T + bias) (or y += that) on every GEMM path this machine has, against a
// float64 reference computed from the same (rounded) weights.
//
// Tolerance, per output element: the f32 dot product of K terms has a worst-case rounding error
// of about K·u·Σ|x_k w_k| (u = 2^-24, the f32 unit roundoff); we allow 2K·u·Σ|x_k w_k| plus a few
// u of the result. bf16/f16 weights are compared against the reference built from the very same
// rounded values, so no weight-rounding slack is needed: the kernel must widen them exactly.
// Activations add their own few-ulp error and pass the pre-activation error through a slope of at
// most ~1.13 (GELU), hence 1.2x plus 16u of the result.
//
// The amx path sums more terms into each output: three bf16 terms per activation (3K products,
// still exact) with bf16 weights, six term products with f32 weights plus the three it leaves out
// (below 2^-23 of each product, gemm_amx.cc). Its bound is therefore (3K + 3)u or (6K + 8)u of
// Σ|x_k w_k| where it runs on tiles (gemm.h: bf16 weights above 8 rows, f32 weights from 128 rows
// and K >= 128). Because a bound that loose could not see a lost low term, "exactly representable
// sums" below checks every path bit for bit on inputs whose every partial sum is exact in f32, and
// needs all three terms of each operand.
import { afterAll, describe, expect, it } from 'vitest';

import type { NativeTensorInput } from '../../lib/native.js';
import { f32ToBf16 } from '../../lib/tensor.js';

import {
  type Act,
  EPS32,
  Rng,
  actRef,
  addon,
  asF32,
  expectClose,
  f32Tensor,
  kernelPaths,
  runOp,
  weightTensor,
} from '../helpers/ops-reference.js';

type WDType = 'f32' | 'bf16' | 'f16';

interface Case {
  M: number;
  K: number;
  N: number;
  dtype: WDType;
  bias: boolean;
  act: Act;
  accumulate: boolean;
  xDtype?: 'f32' | 'bf16'; // activations kept in bf16 (backend.h): the reference uses the rounded values
}

// How many f32 roundings (in units of u·Σ|x w|) the worst case of one output may carry on `path`.
function roundingBound(path: string, c: Case): number {
  if (path === 'amx' && c.dtype === 'bf16' && c.M > 8) return 3 * c.K + 3;
  if (path === 'amx' && c.dtype === 'f32' && c.M >= 128 && c.K >= 128) return 6 * c.K + 8;
  return 2 * (c.K + 1);
}

async function checkLinear(c: Case, seed: number, label: string, path = '') {
  const rng = new Rng(seed);
  const xt = weightTensor(rng, c.xDtype ?? 'f32', [c.M, c.K]);
  const x = xt.values;
  const w = weightTensor(rng, c.dtype, [c.N, c.K]);
  const bias = c.bias ? rng.f32(c.N) : null;
  const yInit = c.accumulate ? rng.f32(c.M * c.N) : null;
  const [y] = await runOp(
    'linear',
    [
      xt.tensor,
      w.tensor,
      bias ? f32Tensor([c.N], bias) : null,
      ...(yInit ? [f32Tensor([c.M, c.N], yInit)] : []),
    ],
    { act: c.act, accumulate: c.accumulate },
  );
  expect(y!.shape).toEqual([c.M, c.N]);
  const ref = new Float64Array(c.M * c.N);
  const tol = new Float64Array(c.M * c.N);
  for (let m = 0; m < c.M; m++) {
    for (let n = 0; n < c.N; n++) {
      let sum = bias ? bias[n]! : 0;
      let abs = bias ? Math.abs(bias[n]!) : 0;
      for (let k = 0; k < c.K; k++) {
        const t = x[m * c.K + k]! * w.values[n * c.K + k]!;
        sum += t;
        abs += Math.abs(t);
      }
      const act = actRef(c.act, sum);
      const i = m * c.N + n;
      ref[i] = act + (yInit ? yInit[i]! : 0);
      let t = roundingBound(path, c) * EPS32 * abs + 4 * EPS32 * Math.abs(sum);
      if (c.act !== 'none') t = 1.2 * t + 16 * EPS32 * Math.abs(act) + 1e-30;
      if (yInit) t += 2 * EPS32 * (Math.abs(yInit[i]!) + Math.abs(ref[i]!));
      tol[i] = t;
    }
  }
  expectClose(asF32(y!), ref, tol, label);
}

const paths = kernelPaths();
const initialPath = addon.devices().cpu.kernels;
afterAll(() => {
  addon.setCpuKernels(initialPath);
});

describe.each(paths)('linear on the %s GEMM path', (path) => {
  it('selects the path', () => {
    addon.setCpuKernels(path);
    expect(addon.devices().cpu.kernels).toBe(path);
  });

  it.each(['f32', 'bf16', 'f16'] as const)(
    '%s weights: every M in 1,3,17,67 x K in 1,7,129 x N in 5,33,257 (sizes off every tile)',
    async (dtype) => {
      addon.setCpuKernels(path);
      const acts: Act[] = ['none', 'silu', 'gelu_tanh'];
      let seed = 1000;
      for (const M of [1, 3, 17, 67])
        for (const K of [1, 7, 129])
          for (const N of [5, 33, 257]) {
            seed++;
            const c: Case = { M, K, N, dtype, bias: seed % 2 === 0, act: acts[seed % 3]!, accumulate: false };
            await checkLinear(c, seed, `${path} ${dtype} M=${M} K=${K} N=${N} bias=${c.bias} act=${c.act}`, path);
          }
    },
  );

  it.each(['f32', 'bf16', 'f16'] as const)(
    '%s weights: blocked sizes (K beyond one K block, several N blocks, many row panels)',
    async (dtype) => {
      addon.setCpuKernels(path);
      const cases: Case[] = [
        { M: 67, K: 600, N: 1100, dtype, bias: true, act: 'none', accumulate: false },
        { M: 300, K: 40, N: 70, dtype, bias: false, act: 'quick_gelu', accumulate: false },
        { M: 4, K: 1000, N: 37, dtype, bias: true, act: 'gelu', accumulate: false },
        { M: 5, K: 513, N: 129, dtype, bias: false, act: 'none', accumulate: false },
        { M: 2, K: 4099, N: 9, dtype, bias: false, act: 'silu', accumulate: false },
        { M: 13, K: 300, N: 50, dtype, bias: true, act: 'none', accumulate: false },
        { M: 16, K: 64, N: 300, dtype, bias: false, act: 'none', accumulate: false },
        { M: 64, K: 129, N: 33, dtype, bias: true, act: 'silu', accumulate: false },
        { M: 45, K: 700, N: 31, dtype, bias: false, act: 'none', accumulate: false },
        // Several K blocks of the amx path (1024) with a tail step, f32 weights on tiles (M >= 128).
        { M: 130, K: 2100, N: 75, dtype, bias: true, act: 'gelu_tanh', accumulate: false },
      ];
      let seed = 5000;
      for (const c of cases) await checkLinear(c, ++seed, `${path} ${dtype} M=${c.M} K=${c.K} N=${c.N} act=${c.act}`, path);
    },
  );

  // bf16 activations (x stored as bf16, as a bf16 run keeps them) are widened exactly, so the
  // bound is that of f32 x holding the same values; every strategy (row dots, mid rows, packed,
  // amx) and every weight type.
  it.each(['f32', 'bf16', 'f16'] as const)('bf16 x with %s weights, M off every tile', async (dtype) => {
    addon.setCpuKernels(path);
    let seed = 7000;
    for (const [M, K, N] of [[1, 33, 17], [5, 129, 40], [19, 70, 33], [67, 257, 65], [130, 150, 21]] as const) {
      const c: Case = { M, K, N, dtype, bias: M % 2 === 1, act: M > 60 ? 'tanh' : 'none', accumulate: false, xDtype: 'bf16' };
      await checkLinear(c, ++seed, `${path} bf16 x, ${dtype} w M=${M} K=${K} N=${N} act=${c.act}`, path);
    }
  });

  // Integers whose products and partial sums all fit f32's 24-bit significand: every summation
  // order gives the exact result, so every path must return it bit for bit. Each case needs all
  // three bf16 terms of one operand: with round-to-nearest, hi and mid carry 17 significant bits
  // between them, so 18-bit values need lo, and a path that dropped or misplaced a term of the amx
  // split would be off by whole units.
  it('exactly representable sums, bit for bit (exercises every term of the amx split)', async () => {
    addon.setCpuKernels(path);
    const rng = new Rng(9100);
    const int = (bound: number) => Math.floor(rng.next() * (2 * bound + 1)) - bound;
    const M = 130, N = 33;
    // f32 weights run on tiles from K = 128 (gemm.h), where 128 full-size products would overflow
    // 24 bits: those cases keep only every `every`-th activation of a row (a different phase per
    // row, so a misplaced row or column still shows), at most 38 products per sum.
    const cases = [
      // 18-bit activations x {-1, 0, 1}: the activations' lo terms; 40 x 2^18 < 2^24, and K = 40
      // is two steps of the tiles, the second a tail
      { K: 40, every: 1, x: () => int((1 << 18) - 1), w: () => int(1), dtypes: ['bf16', 'f32'] as const },
      { K: 150, every: 4, x: () => int((1 << 18) - 1), w: () => int(1), dtypes: ['f32'] as const },
      // {-1, 0, 1} activations x 18-bit f32 weights: the weights' lo terms (hi x lo products)
      { K: 150, every: 4, x: () => int(1), w: () => int((1 << 18) - 1), dtypes: ['f32'] as const },
      // 9-bit x 10-bit: mid x mid, hi x mid and mid x hi products; 30 x 2^19 < 2^24
      { K: 150, every: 5, x: () => int((1 << 9) - 1), w: () => int((1 << 10) - 1), dtypes: ['f32'] as const },
    ];
    for (const c of cases) {
      const x = new Float32Array(M * c.K).map((_, i) =>
        i % c.K % c.every === Math.floor(i / c.K) % c.every ? c.x() * 2 ** -12 : 0,
      );
      const wv = new Float64Array(N * c.K).map(() => c.w());
      for (const dtype of c.dtypes) {
        const w: NativeTensorInput =
          dtype === 'f32'
            ? { dtype, shape: [N, c.K], data: Float32Array.from(wv) }
            : { dtype, shape: [N, c.K], data: Uint16Array.from(wv, (v) => f32ToBf16(v)) };
        const [y] = await runOp('linear', [f32Tensor([M, c.K], x), w]);
        const got = asF32(y!);
        for (let m = 0; m < M; m++)
          for (let n = 0; n < N; n++) {
            let exact = 0;
            for (let k = 0; k < c.K; k++) exact += x[m * c.K + k]! * wv[n * c.K + k]!;
            if (got[m * N + n] !== exact)
              throw new Error(`${path} ${dtype} K=${c.K}: y[${m}, ${n}] = ${got[m * N + n]}, exactly ${exact}`);
          }
      }
    }
  });

  it('accumulates into y (residual add), with and without activation, small and large M', async () => {
    addon.setCpuKernels(path);
    let seed = 7000;
    for (const M of [1, 3, 40])
      for (const act of ['none', 'silu'] as const)
        for (const dtype of ['f32', 'bf16'] as const)
          await checkLinear(
            { M, K: 77, N: 45, dtype, bias: true, act, accumulate: true },
            ++seed,
            `${path} accumulate M=${M} act=${act} ${dtype}`,
            path,
          );
  });
});

describe('linear: leading axes and bad input', () => {
  it('flattens leading axes of x [B, L, K]', async () => {
    const rng = new Rng(42);
    const x = rng.f32(2 * 3 * 8);
    const w = weightTensor(rng, 'f32', [5, 8]);
    const [y] = await runOp('linear', [f32Tensor([2, 3, 8], x), w.tensor]);
    expect(y!.shape).toEqual([2, 3, 5]);
    const ref = new Float64Array(30);
    for (let m = 0; m < 6; m++)
      for (let n = 0; n < 5; n++) {
        let s = 0;
        for (let k = 0; k < 8; k++) s += x[m * 8 + k]! * w.values[n * 8 + k]!;
        ref[m * 5 + n] = s;
      }
    expectClose(asF32(y!), ref, 1e-6, 'linear [2,3,8]');
  });

  it('rejects mismatched K, naming both tensors', async () => {
    const rng = new Rng(1);
    await expect(
      runOp('linear', [f32Tensor([3, 64], rng.f32(192)), weightTensor(rng, 'bf16', [128, 63]).tensor]),
    ).rejects.toThrow('linear: x f32[3, 64] and w bf16[128, 63] disagree on K');
  });

  it('rejects a bias of the wrong length and an unknown activation', async () => {
    const rng = new Rng(2);
    const x = f32Tensor([2, 4], rng.f32(8));
    const w = weightTensor(rng, 'f32', [3, 4]).tensor;
    await expect(runOp('linear', [x, w, f32Tensor([4], rng.f32(4))])).rejects.toThrow(/linear: bias f32\[4\] must be \[3\]/);
    await expect(runOp('linear', [x, w], { act: 'relu6' })).rejects.toThrow(/unknown activation "relu6"/);
    await expect(runOp('linear', [x, w], { accumulate: true })).rejects.toThrow(/accumulate needs the initial y/);
  });

  it('rejects integer activations and data of the wrong byte length', async () => {
    const w = { dtype: 'f32' as const, shape: [3, 4], data: new Float32Array(12).fill(1) };
    await expect(runOp('linear', [{ dtype: 'i32', shape: [2, 4], data: new Int32Array(8) }, w])).rejects.toThrow(
      /linear: x i32\[2, 4\] must be f32/,
    );
    await expect(runOp('linear', [{ dtype: 'f32', shape: [2, 4], data: new Float32Array(7) }, w])).rejects.toThrow(
      /needs 32 bytes, data has 28/,
    );
  });
});
