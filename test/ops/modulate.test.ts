// norm_modulate (LayerNorm or RMSNorm, optional affine, scale and optional shift per batch row)
// and gated_add with a tanh gate, against float64 references.
//
// Tolerances (u = 2^-24), per element, following norm.test.ts:
// - the normalised value n: RMSNorm (C + 16)·u·|n|; LayerNorm also carries the error of the mean,
//   amplified by 1/std: (2C + 16)·u·(|n| + mean|x|/std).
// - the affine and the modulation scale that error by |w|·|1 + s| and add a rounding each:
//   v = (n·w + b)·(1 + s) + t is within err(n)·|w|·|1 + s| + 4u·(|n w|·|1 + s| + |b|·|1 + s| + |t|)
//   (four roundings: the product with w, the bias, the modulation, the shift).
// - gated_add: x + y·tanh(g): tanh within 16u relative (elementwise.test.ts), then a product and a
//   sum: 16u·|y·tanh g| + 2u·(|x| + |y·tanh g|).
import { afterAll, beforeEach, describe, expect, it } from 'vitest';

import { EPS32, Rng, addon, asF32, expectClose, f32Tensor, kernelPaths, numel, runOp, weightTensor } from '../helpers/ops-reference.js';

const u = EPS32;

const initialPath = addon.devices().cpu.kernels;
afterAll(() => {
  addon.setCpuKernels(initialPath);
});

interface ModCase {
  B: number;
  L: number;
  C: number;
  norm: 'layer' | 'rms';
  weight: false | 'f32' | 'bf16';
  bias: boolean;
  shift: boolean;
  batched?: boolean; // x [B, L, C]; false: [L, C] with scale [C]
}

async function checkModulate(c: ModCase, seed: number, label: string) {
  const rng = new Rng(seed);
  const { B, L, C } = c;
  const batched = c.batched ?? true;
  const xs = batched ? [B, L, C] : [L, C];
  const x = rng.f32(B * L * C, -2, 4); // offset mean: exercises the mean subtraction
  const scale = rng.f32(B * C, -0.9, 0.9), shift = rng.f32(B * C);
  const w = c.weight ? weightTensor(rng, c.weight, [C], 1.5) : null;
  const b = c.bias ? rng.f32(C) : null;
  const eps = 1e-6;
  const vec = (v: Float32Array) => f32Tensor(batched ? [B, C] : [C], v);
  const [y] = await runOp(
    'norm_modulate',
    [f32Tensor(xs, x), vec(scale), c.shift ? vec(shift) : null, w ? w.tensor : null, b ? f32Tensor([C], b) : null],
    { norm: c.norm, eps },
  );
  expect(y!.shape).toEqual(xs);
  const ref = new Float64Array(x.length), tol = new Float64Array(x.length);
  for (let r = 0; r < B * L; r++) {
    const bi = Math.floor(r / L), o = r * C;
    let mean = 0;
    if (c.norm === 'layer') {
      for (let i = 0; i < C; i++) mean += x[o + i]! / C;
    }
    let ss = 0, absMean = 0;
    for (let i = 0; i < C; i++) {
      ss += (x[o + i]! - mean) ** 2;
      absMean += Math.abs(x[o + i]!) / C;
    }
    const inv = 1 / Math.sqrt(ss / C + eps);
    for (let i = 0; i < C; i++) {
      const n = (x[o + i]! - mean) * inv;
      const nErr = c.norm === 'layer' ? (2 * C + 16) * u * (Math.abs(n) + absMean * inv) : (C + 16) * u * Math.abs(n);
      const wv = w ? w.values[i]! : 1, bv = b ? b[i]! : 0;
      const s1 = 1 + scale[bi * C + i]!, t = c.shift ? shift[bi * C + i]! : 0;
      ref[o + i] = (n * wv + bv) * s1 + t;
      tol[o + i] = nErr * Math.abs(wv * s1) + 4 * u * (Math.abs(n * wv * s1) + Math.abs(bv * s1) + Math.abs(t)) + 1e-30;
    }
  }
  expectClose(asF32(y!), ref, tol, label);
}

describe.each(kernelPaths())('norm_modulate: y = norm(x) [* w + b] * (1 + scale[b]) [+ shift[b]] (%s kernels)', (path) => {
  beforeEach(() => {
    addon.setCpuKernels(path);
  });

  const cases: [string, ModCase][] = [
    ['Infinity: LayerNorm, no affine, scale and shift', { B: 2, L: 7, C: 130, norm: 'layer', weight: false, bias: false, shift: true }],
    ['Lumina-Next: RMSNorm with weight, scale only', { B: 3, L: 5, C: 67, norm: 'rms', weight: 'f32', bias: false, shift: false }],
    ['LayerNorm with bf16 affine, scale and shift, wide rows', { B: 1, L: 3, C: 2305, norm: 'layer', weight: 'bf16', bias: true, shift: true }],
    ['RMSNorm with weight and bias, shift', { B: 2, L: 4, C: 33, norm: 'rms', weight: 'f32', bias: true, shift: true }],
    ['[L, C] with scale [C] (one batch row)', { B: 1, L: 9, C: 17, norm: 'layer', weight: false, bias: false, shift: true, batched: false }],
    ['one channel', { B: 2, L: 3, C: 1, norm: 'rms', weight: false, bias: false, shift: true }],
  ];
  it.each(cases)('%s', async (label, c) => {
    await checkModulate(c, label.length * 11 + c.C, label);
  });

  it('rejects a scale of the wrong shape and an unknown norm', async () => {
    const rng = new Rng(3);
    const x = f32Tensor([2, 3, 8], rng.f32(48));
    await expect(runOp('norm_modulate', [x, f32Tensor([3, 8], rng.f32(24))], { norm: 'rms', eps: 1e-6 })).rejects.toThrow(
      /norm_modulate: scale f32\[3, 8\] must be \[2, 8\] for x f32\[2, 3, 8\]/,
    );
    await expect(runOp('norm_modulate', [x, f32Tensor([2, 8], rng.f32(16))], { norm: 'group', eps: 1e-6 })).rejects.toThrow(
      /norm_modulate: norm "group" must be layer or rms/,
    );
  });
});

describe.each(kernelPaths())('gated_add with a gate activation (%s kernels)', (path) => {
  beforeEach(() => {
    addon.setCpuKernels(path);
  });

  it.each([
    [2, 5, 131],
    [1, 3, 16],
  ])('x[b] += y[b] * tanh(gate[b]) over [%i, %i, %i] (Lumina-Next)', async (B, L, C) => {
    const rng = new Rng(B * L * C);
    const x = rng.f32(B * L * C, -2, 2), y = rng.f32(B * L * C, -2, 2), gate = rng.f32(B * C, -3, 3);
    const [out] = await runOp('gated_add', [f32Tensor([B, L, C], x), f32Tensor([B, L, C], y), f32Tensor([B, C], gate)], { act: 'tanh' });
    const ref = new Float64Array(x.length), tol = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const g = Math.tanh(gate[Math.floor(i / (L * C)) * C + (i % C)]!);
      const p = y[i]! * g;
      ref[i] = x[i]! + p;
      tol[i] = 16 * u * Math.abs(p) + 2 * u * (Math.abs(x[i]!) + Math.abs(p)) + 1e-30;
    }
    expectClose(asF32(out!), ref, tol, `gated_add tanh ${B}x${L}x${C}`);
  });

  it('the default gate is the identity (gated_add as before)', async () => {
    const rng = new Rng(2);
    const x = f32Tensor([2, 3, 9], rng.f32(54)), y = f32Tensor([2, 3, 9], rng.f32(54)), g = f32Tensor([2, 9], rng.f32(18));
    const [a] = await runOp('gated_add', [x, y, g]);
    const [b] = await runOp('gated_add', [x, y, g], { act: 'none' });
    expect(asF32(b!)).toEqual(asF32(a!));
    expect(numel(a!.shape)).toBe(54);
  });
});
