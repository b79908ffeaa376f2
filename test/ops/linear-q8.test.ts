// linear_q8 and linear_q4. linear_q8: int8 weights (symmetric per output channel, core/quantize.h) times activations
// quantized per row on the fly, on every GEMM path this machine has (the avx512 and amx paths use
// the AVX-512 VNNI kernel where the CPU has it, the other x86 paths the AVX2 kernel, the portable
// path the portable one), so every int8 kernel this CPU can run is checked.
//
// Two checks per case:
// - exact: the integer sums are exact on every path, so the output must equal, bit for bit, the
//   float64 reproduction of the same arithmetic: the weights' q and scales as the op returns them,
//   the activations quantized here as the runtime does (f32 products, round half to even), the
//   dot product in integers, then the f32 epilogue (sx · scale[n] rounded to f32, times the sum,
//   plus the bias, then the activation within a few ulp);
// - the quantization error bound against the unquantized float64 product: with w = s_w q + e_w
//   (|e_w| <= s_w / 2) and x = s_x xq + e_x (|e_x| <= s_x / 2), |x·w - s_x s_w Σ xq q| <=
//   Σ_k (|x_k| s_w + |w_k| s_x + s_x s_w / 2) / 2, plus the f32 roundings (a few u of Σ|x w|).
import { afterAll, describe, expect, it } from 'vitest';

import type { NativeTensorInput } from '../../lib/native.js';
import { EPS32, Rng, actRef, addon, asF32, f32Tensor, kernelPaths, quantizeRow, roundHalfEven, runOp, weightTensor } from '../helpers/ops-reference.js';

const f = Math.fround;

interface Case {
  M: number;
  K: number;
  N: number;
  dtype: 'f32' | 'bf16' | 'f16';
  bias: boolean;
  act: 'none' | 'silu' | 'gelu';
}

async function checkCase(c: Case, seed: number, label: string): Promise<Float32Array> {
  const rng = new Rng(seed);
  const x = rng.f32(c.M * c.K, -2, 2);
  const w = weightTensor(rng, c.dtype, [c.N, c.K], 0.5);
  const bias = c.bias ? rng.f32(c.N, -1, 1) : null;
  const inputs: (NativeTensorInput | null)[] = [f32Tensor([c.M, c.K], x), w.tensor, bias ? f32Tensor([c.N], bias) : null];
  const [yT, qT, qpT] = await runOp('linear_q8', inputs, { act: c.act });
  const y = asF32(yT!), q = asF32(qT!), qp = asF32(qpT!);
  // The weights' quantization as documented: scale = max|w| / 127, q = round(w / scale), sums.
  for (let n = 0; n < c.N; n++) {
    let amax = 0, sum = 0;
    for (let k = 0; k < c.K; k++) amax = Math.max(amax, Math.abs(w.values[n * c.K + k]!));
    expect(qp[n], `${label}: scale of row ${n}`).toBe(f(amax / 127));
    const inv = f(127 / amax);
    for (let k = 0; k < c.K; k++) {
      const expected = Math.max(-127, Math.min(127, roundHalfEven(f(f(w.values[n * c.K + k]!) * inv))));
      if (q[n * c.K + k] !== expected) expect(q[n * c.K + k], `${label}: q[${n}, ${k}]`).toBe(expected);
      sum += expected;
    }
    expect(qp[c.N + n], `${label}: sum of row ${n}`).toBe(sum);
  }
  let worstBound = 0;
  for (let m = 0; m < c.M; m++) {
    const row = x.subarray(m * c.K, (m + 1) * c.K);
    const { xq, sx } = quantizeRow(row);
    for (let n = 0; n < c.N; n++) {
      let acc = 0, exact = 0, bound = 0, mag = 0;
      const sw = qp[n]!;
      for (let k = 0; k < c.K; k++) {
        acc += xq[k]! * q[n * c.K + k]!;
        const wv = w.values[n * c.K + k]!;
        exact += row[k]! * wv;
        mag += Math.abs(row[k]! * wv);
        bound += (Math.abs(row[k]!) * sw + Math.abs(wv) * sx + (sx * sw) / 2) / 2;
      }
      let pre = f(acc * f(sx * sw));
      if (bias) pre = f(pre + bias[n]!);
      const got = y[m * c.N + n]!;
      if (c.act === 'none') {
        if (got !== pre) expect(got, `${label}: y[${m}, ${n}] bit for bit`).toBe(pre);
      } else {
        const ref = actRef(c.act, pre);
        expect(Math.abs(got - ref), `${label}: y[${m}, ${n}] after ${c.act}`).toBeLessThanOrEqual(8 * EPS32 * Math.max(1, Math.abs(ref)));
      }
      // Against the unquantized product (before the activation, whose slope is at most ~1.13).
      const want = c.act === 'none' ? exact + (bias ? bias[n]! : 0) : actRef(c.act, exact + (bias ? bias[n]! : 0));
      const tol = 1.2 * (bound + 4 * EPS32 * mag) + 8 * EPS32 * Math.abs(want);
      expect(Math.abs(got - want), `${label}: y[${m}, ${n}] within the quantization bound`).toBeLessThanOrEqual(tol);
      worstBound = Math.max(worstBound, Math.abs(got - want) / Math.max(tol, 1e-30));
    }
  }
  expect(worstBound).toBeGreaterThan(0); // the check compared something that differs
  return y;
}

const CASES: Case[] = [
  { M: 1, K: 64, N: 8, dtype: 'f32', bias: false, act: 'none' }, // one decode row, K one VNNI block
  { M: 3, K: 100, N: 13, dtype: 'bf16', bias: true, act: 'none' }, // K tail, N tail, odd rows
  { M: 8, K: 256, N: 40, dtype: 'f16', bias: false, act: 'silu' }, // a full decode batch
  { M: 37, K: 300, N: 70, dtype: 'bf16', bias: true, act: 'gelu' }, // a prefill-sized block
];

const paths = kernelPaths();
const initialPath = addon.devices().cpu.kernels;
afterAll(() => {
  addon.setCpuKernels(initialPath);
});

describe('linear_q8 (int8 weights, activations quantized per row)', () => {
  it('matches the exact integer reproduction and stays within the quantization bound on every GEMM path, identically', async () => {
    for (const [ci, c] of CASES.entries()) {
      let first: Float32Array | null = null;
      for (const path of paths) {
        addon.setCpuKernels(path);
        const vnni = addon.devices().cpu.features.includes('avx512vnni');
        const avx2 = addon.devices().cpu.features.includes('avx2');
        const expected = path === 'portable' ? 'portable' : (path === 'avx512' || path === 'amx') && vnni ? 'avx512-vnni' : avx2 ? 'avx2' : 'portable';
        expect(addon.devices().cpu.int8Kernels).toBe(expected);
        const y = await checkCase(c, 100 + ci, `${path} ${JSON.stringify(c)}`);
        // The sums and the epilogue agree bit for bit; each path has its own activation formulas.
        if (c.act !== 'none') continue;
        if (first === null) first = y;
        else expect(Buffer.from(y.buffer).equals(Buffer.from(first.buffer)), `${path}: same bits as ${paths[0]}`).toBe(true);
      }
    }
  });

  it('a zero row gives zero, a row holding NaN gives NaN, and a weight holding an infinity is refused', async () => {
    addon.setCpuKernels(initialPath);
    const K = 70, N = 5;
    const rng = new Rng(9);
    const x = rng.f32(2 * K, -1, 1);
    x.fill(0, 0, K);
    x[K + 3] = Number.NaN;
    const w = rng.f32(N * K, -1, 1);
    const [y] = await runOp('linear_q8', [f32Tensor([2, K], x), f32Tensor([N, K], w), null]);
    const out = asF32(y!);
    for (let n = 0; n < N; n++) {
      expect(out[n]).toBe(0);
      expect(Number.isNaN(out[N + n])).toBe(true);
    }
    w[7] = Number.POSITIVE_INFINITY;
    await expect(runOp('linear_q8', [f32Tensor([1, K], x.subarray(K)), f32Tensor([N, K], w), null])).rejects.toThrow(/row 0 holds a NaN or an infinity/);
  });
});

// linear_q4: 4-bit weights in groups of 32 with f16 scales. The group sums are exact integers on
// every path; the sum over groups runs in f32 in a path-specific order, so the output must match
// the float64 reproduction within the rounding of that sum (2·G·u of Σ_g |d_g · dot_g| · sx, G
// groups), and the unquantized product within the quantization bound: |e_w| <= d_g / 2 per
// weight, |e_x| <= s_x / 2 per activation.
describe('linear_q4 (4-bit weights in groups of 32, activations quantized per row)', () => {
  it('matches the group-exact reproduction and stays within the quantization bound on every GEMM path', async () => {
    const cases: Case[] = [
      { M: 1, K: 64, N: 8, dtype: 'f32', bias: false, act: 'none' },
      { M: 3, K: 100, N: 13, dtype: 'bf16', bias: true, act: 'none' }, // K padded to 128
      { M: 8, K: 256, N: 40, dtype: 'f16', bias: false, act: 'none' },
      { M: 21, K: 320, N: 70, dtype: 'bf16', bias: true, act: 'silu' },
      // Longer rows in the VNNI kernel's two-block steps (Kp 1024 and 1152), and Kp 576, whose
      // steps end in a lone 64-value block.
      { M: 1, K: 1024, N: 9, dtype: 'bf16', bias: false, act: 'none' },
      { M: 5, K: 1100, N: 11, dtype: 'f32', bias: true, act: 'none' },
      { M: 2, K: 560, N: 6, dtype: 'f16', bias: false, act: 'none' },
    ];
    for (const [ci, c] of cases.entries()) {
      for (const path of paths) {
        addon.setCpuKernels(path);
        const rng = new Rng(300 + ci);
        const x = rng.f32(c.M * c.K, -2, 2);
        const w = weightTensor(rng, c.dtype, [c.N, c.K], 0.5);
        const bias = c.bias ? rng.f32(c.N, -1, 1) : null;
        const [yT, qT, dT] = await runOp('linear_q4', [f32Tensor([c.M, c.K], x), w.tensor, bias ? f32Tensor([c.N], bias) : null], { act: c.act });
        const y = asF32(yT!), q = asF32(qT!), d = asF32(dT!);
        const Kp = Math.ceil(c.K / 64) * 64, G = Kp / 32;
        for (let m = 0; m < c.M; m++) {
          const row = x.subarray(m * c.K, (m + 1) * c.K);
          const { xq, sx } = quantizeRow(row);
          for (let n = 0; n < c.N; n++) {
            let sum = 0, mag = 0, exact = 0, bound = 0, absProd = 0;
            for (let g = 0; g < G; g++) {
              let dot = 0;
              for (let k = g * 32; k < Math.min(c.K, (g + 1) * 32); k++) {
                dot += xq[k]! * q[n * Kp + k]!;
                const wv = w.values[n * c.K + k]!;
                exact += row[k]! * wv;
                absProd += Math.abs(row[k]! * wv);
                bound += (Math.abs(row[k]!) * d[n * G + g]! + Math.abs(wv) * sx + (sx * d[n * G + g]!) / 2) / 2;
              }
              sum += d[n * G + g]! * dot;
              mag += Math.abs(d[n * G + g]! * dot);
            }
            const b = bias ? bias[n]! : 0;
            const pre = sum * sx + b;
            const got = y[m * c.N + n]!;
            const label = `${path} ${JSON.stringify(c)} y[${m}, ${n}]`;
            const ref = c.act === 'none' ? pre : actRef(c.act, pre);
            expect(Math.abs(got - ref), `${label}: reproduction`).toBeLessThanOrEqual(1.2 * (2 * (G + 4) * EPS32 * mag * sx) + 8 * EPS32 * (Math.abs(ref) + Math.abs(b)));
            const want = c.act === 'none' ? exact + b : actRef(c.act, exact + b);
            expect(Math.abs(got - want), `${label}: quantization bound`).toBeLessThanOrEqual(1.2 * (bound + 2 * (G + 4) * EPS32 * (mag * sx + absProd)) + 8 * EPS32 * Math.abs(want));
          }
        }
      }
    }
  });
});
