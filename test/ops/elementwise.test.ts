// tanh (as an activation), GLU variants, NumPy-broadcast add / mul and the mean over an axis,
// against float64 references, on every CPU kernel path (the activations run on each path's
// vector kernels).
//
// Tolerances (u = 2^-24, the f32 unit roundoff):
// - tanh: the CPU formula is within 3 ulp of tanh(x) (an odd polynomial below |x| = 0.625, else
//   1 - 2/(e^2|x| + 1), exp_approx within 2 ulp, result >= 0.55 there); CUDA's tanhf is within 2
//   ulp: 16u·|y| is twice the larger bound (one ulp is at most 2u relative).
// - glu: y = act(g)·up, one more rounding than act(g): the activation bound of norm.test.ts
//   (16u·|act| + 4u·|g|) carried through the product, plus 2u·|y|.
// - binary: one correctly rounded f32 add or mul of f32 inputs: within u·|y| (half an ulp).
// - mean: the sum runs in double (relative error n·2^-53 of Σ|x|), then one rounding to f32 (u·|y|):
//   u·|y| + n·2^-52·mean|x|.
import { afterAll, beforeEach, describe, expect, it } from 'vitest';

import { type Act, EPS32, Rng, actRef, addon, asF32, expectClose, f32Tensor, kernelPaths, numel, runOp } from '../helpers/ops-reference.js';

const u = EPS32;

const initialPath = addon.devices().cpu.kernels;
afterAll(() => {
  addon.setCpuKernels(initialPath);
});

function actTol(act: Act, x: number): number {
  if (act === 'tanh') return 16 * u * Math.abs(Math.tanh(x)) + 1e-30;
  return 16 * u * Math.abs(actRef(act, x)) + 4 * u * Math.abs(x) + 1e-30;
}

// NumPy broadcasting in float64: y[idx] = f(a[idx mod a's shape], b[...]).
function broadcastRef(as: number[], a: Float32Array, bs: number[], b: Float32Array, f: (x: number, y: number) => number) {
  const R = Math.max(as.length, bs.length);
  const pa = [...Array<number>(R - as.length).fill(1), ...as];
  const pb = [...Array<number>(R - bs.length).fill(1), ...bs];
  const ys = pa.map((d, i) => (d === 1 ? pb[i]! : d));
  const out = new Float64Array(numel(ys));
  const idx = new Array<number>(R).fill(0);
  for (let n = 0; n < out.length; n++) {
    let rem = n;
    for (let i = R - 1; i >= 0; i--) {
      idx[i] = rem % ys[i]!;
      rem = Math.floor(rem / ys[i]!);
    }
    let ia = 0, ib = 0;
    for (let i = 0; i < R; i++) {
      ia = ia * pa[i]! + (pa[i] === 1 ? 0 : idx[i]!);
      ib = ib * pb[i]! + (pb[i] === 1 ? 0 : idx[i]!);
    }
    out[n] = f(a[ia]!, b[ib]!);
  }
  return { shape: ys, out };
}

describe.each(kernelPaths())('tanh and GLU on the %s kernels', (path) => {
  it('tanh over lengths 1..70 (vector tails) and the range [-12, 12], both branches and the saturation', async () => {
    addon.setCpuKernels(path);
    const rng = new Rng(71);
    for (let n = 1; n <= 70; n += 3) {
      const x = rng.f32(n * 3, -12, 12);
      for (let i = 0; i < x.length; i += 4) x[i] = x[i]! / 20; // small |x|: the polynomial branch
      const [y] = await runOp('activation', [f32Tensor([3, n], x)], { act: 'tanh' });
      expectClose(asF32(y!), Float64Array.from(x, Math.tanh), Float64Array.from(x, (v) => actTol('tanh', v)), `${path} tanh n=${n}`);
    }
    const edge = new Float32Array([0.625, -0.625, 0.62499994, -0.62499994, 1e-30, -1e-20, 44, -44, 90, -90, 1e-3, 9]);
    const [y] = await runOp('activation', [f32Tensor([edge.length], edge)], { act: 'tanh' });
    expectClose(asF32(y!), Float64Array.from(edge, Math.tanh), Float64Array.from(edge, (v) => actTol('tanh', v)), `${path} tanh edges`);
  });

  it.each(['silu', 'gelu_tanh', 'gelu', 'tanh', 'quick_gelu', 'none'] as const)('glu with act %s over [3, 5, 259] (rows off every vector width)', async (act) => {
    addon.setCpuKernels(path);
    const rng = new Rng(act.length * 17);
    const shape = [3, 5, 259];
    const g = rng.f32(numel(shape), -6, 6), up = rng.f32(numel(shape), -2, 2);
    const [y] = await runOp('glu', [f32Tensor(shape, g), f32Tensor(shape, up)], { act });
    expect(y!.shape).toEqual(shape);
    const ref = Float64Array.from(g, (v, i) => actRef(act, v) * up[i]!);
    const tol = Float64Array.from(g, (v, i) => actTol(act, v) * Math.abs(up[i]!) + 2 * u * Math.abs(ref[i]!) + 1e-30);
    expectClose(asF32(y!), ref, tol, `${path} glu ${act}`);
  });

});

describe.each(kernelPaths())('binary: NumPy-style broadcast add and mul (%s kernels)', (path) => {
  beforeEach(() => {
    addon.setCpuKernels(path);
  });

  const cases: [string, number[], number[]][] = [
    ['same shape [3, 5, 7]', [3, 5, 7], [3, 5, 7]],
    ['row vector [37] over [5, 37]', [5, 37], [37]],
    ['column [5, 1] against a row [1, 37]', [5, 1], [1, 37]],
    ['per-channel [1, 3, 1, 1] over an image [2, 3, 9, 11]', [2, 3, 9, 11], [1, 3, 1, 1]],
    ['size-1 axes on both sides [2, 1, 7, 1] x [3, 1, 5]', [2, 1, 7, 1], [3, 1, 5]],
    ['a scalar-like [1] against [4, 6]', [1], [4, 6]],
    ['rank 0 b', [3, 4], []],
    ['[4, 1, 13] x [1, 9, 13] (AdaLN-style scale over tokens)', [4, 1, 13], [1, 9, 13]],
  ];
  it.each(cases)('%s', async (_label, as, bs) => {
    const rng = new Rng(numel(as) * 7 + numel(bs));
    const a = rng.f32(numel(as), -3, 3), b = rng.f32(numel(bs), -3, 3);
    for (const [op, f] of [['add', (x: number, y: number) => x + y], ['mul', (x: number, y: number) => x * y]] as const) {
      const ref = broadcastRef(as, a, bs, b, f);
      const [y] = await runOp('binary', [f32Tensor(as, a), f32Tensor(bs, b)], { op });
      expect(y!.shape).toEqual(ref.shape);
      expectClose(asF32(y!), ref.out, Float64Array.from(ref.out, (v) => u * Math.abs(v)), `binary ${op} ${as} ${bs}`);
    }
  });

  it('rejects shapes that do not broadcast and an unknown op', async () => {
    const rng = new Rng(9);
    await expect(runOp('binary', [f32Tensor([3, 4], rng.f32(12)), f32Tensor([3], rng.f32(3))], { op: 'add' })).rejects.toThrow(
      /binary: a f32\[3, 4\] and b f32\[3\] do not broadcast \(axis -1: 4 vs 3\)/,
    );
    await expect(runOp('binary', [f32Tensor([3], rng.f32(3)), f32Tensor([3], rng.f32(3))], { op: 'sub' })).rejects.toThrow(
      /binary: op "sub" must be add or mul/,
    );
  });
});

describe.each(kernelPaths())('mean over an axis (%s kernels)', (path) => {
  beforeEach(() => {
    addon.setCpuKernels(path);
  });

  const cases: [number[], number][] = [
    [[1001], 0],
    [[7, 333], -1],
    [[7, 333], 0],
    [[3, 5, 9], 1],
    [[2, 3, 5, 7], 2],
    [[2, 3, 5, 7], 0],
    [[2, 3, 5, 7], 3],
    [[4, 600, 3], 1], // inner 3, a long reduced axis
  ];
  it.each(cases)('x %j over axis %i (axis dropped and kept)', async (shape, axis) => {
    const rng = new Rng(numel(shape) + axis + 10);
    const x = rng.f32(numel(shape), -2, 5);
    const R = shape.length, ax = axis < 0 ? axis + R : axis;
    const outer = numel(shape.slice(0, ax)), n = shape[ax]!, inner = numel(shape.slice(ax + 1));
    const ref = new Float64Array(outer * inner);
    const tol = new Float64Array(outer * inner);
    for (let o = 0; o < outer; o++)
      for (let c = 0; c < inner; c++) {
        let s = 0, abs = 0;
        for (let i = 0; i < n; i++) {
          s += x[(o * n + i) * inner + c]!;
          abs += Math.abs(x[(o * n + i) * inner + c]!);
        }
        ref[o * inner + c] = s / n;
        tol[o * inner + c] = u * Math.abs(s / n) + n * 2 ** -52 * (abs / n) + 1e-30;
      }
    for (const keepdim of [false, true]) {
      const [y] = await runOp('mean', [f32Tensor(shape, x)], { axis, keepdim });
      const expected = keepdim ? shape.map((d, i) => (i === ax ? 1 : d)) : shape.filter((_, i) => i !== ax);
      expect(y!.shape).toEqual(expected);
      expectClose(asF32(y!), ref, tol, `mean ${shape} axis ${axis}`);
    }
  });

  it('rejects an axis out of range', async () => {
    await expect(runOp('mean', [f32Tensor([2, 3], new Float32Array(6).fill(1))], { axis: 2 })).rejects.toThrow(
      /mean: axis 2 is out of range for x f32\[2, 3\]/,
    );
  });
});
