// Normalisations, modulation, element-wise ops and RoPE against float64 references.
//
// Tolerances (u = 2^-24, the f32 unit roundoff):
// - sums of C non-negative terms (RMS, L2 norms) are off by at most C·u relative; the division,
//   square root and scaling add a few u: (C + 16)·u·|y|.
// - mean-subtracting norms (LayerNorm, AdaLN, GroupNorm) also carry the error of the mean,
//   ≤ C·u·mean|x|, amplified by 1/std: (2C + 16)·u·(|y| + |w|·mean|x|/std + |b|).
// - activations: a few ulp of the result, plus the absolute error of 1 + erf(x) / 1 + tanh(u)
//   near -1, which the f32 formula (PyTorch's too) cannot avoid: 16u·|y| + 4u·|x|.
// - RoPE: the angle p·θ^(-2j/D) is formed in f32 as Hugging Face does, so it is off by about
//   2|angle|·u; the rotated pair moves by that times |x1| + |x2|: (4|angle| + 4)·u·(|x1| + |x2|).
import { afterAll, describe, expect, it } from 'vitest';

import {
  type Act,
  EPS32,
  Rng,
  actRef,
  addon,
  asF32,
  expectClose,
  f32Tensor,
  i32Tensor,
  kernelPaths,
  numel,
  runOp,
} from '../helpers/ops-reference.js';

const u = EPS32;

function rows(n: number, c: number, f: (r: number, i: number) => void) {
  for (let r = 0; r < n; r++) f(r, r * c);
}

describe('normalisations', () => {
  it.each([
    [1, 1],
    [3, 7],
    [5, 129],
    [2, 4096],
  ])('rms_norm over %i rows of %i (weights f32 and bf16)', async (R, C) => {
    const rng = new Rng(R * 1000 + C);
    const x = rng.f32(R * C, -3, 3);
    const w = rng.f32(C, 0.5, 1.5);
    const eps = 1e-6;
    const ref = new Float64Array(R * C);
    const tol = new Float64Array(R * C);
    rows(R, C, (r, o) => {
      let ss = 0;
      for (let c = 0; c < C; c++) ss += x[o + c]! ** 2;
      const inv = 1 / Math.sqrt(ss / C + eps);
      for (let c = 0; c < C; c++) {
        ref[o + c] = w[c]! * x[o + c]! * inv;
        tol[o + c] = (C + 16) * u * Math.abs(ref[o + c]!) + 1e-30;
      }
    });
    const [y] = await runOp('rms_norm', [f32Tensor([R, C], x), f32Tensor([C], w)], { eps });
    expectClose(asF32(y!), ref, tol, `rms_norm ${R}x${C}`);
  });

  it.each([
    [4, 7, true],
    [3, 1920, false],
    [2, 65, true],
  ] as const)('layer_norm over %i rows of %i (affine %s)', async (R, C, affine) => {
    const rng = new Rng(R + C);
    const x = rng.f32(R * C, -2, 4); // offset mean: exercises the mean subtraction
    const w = rng.f32(C, 0.5, 1.5);
    const b = rng.f32(C);
    const eps = 1e-5;
    const ref = new Float64Array(R * C);
    const tol = new Float64Array(R * C);
    rows(R, C, (r, o) => {
      let mean = 0;
      for (let c = 0; c < C; c++) mean += x[o + c]!;
      mean /= C;
      let v = 0;
      let absMean = 0;
      for (let c = 0; c < C; c++) {
        v += (x[o + c]! - mean) ** 2;
        absMean += Math.abs(x[o + c]!) / C;
      }
      const inv = 1 / Math.sqrt(v / C + eps);
      for (let c = 0; c < C; c++) {
        const n = (x[o + c]! - mean) * inv;
        ref[o + c] = affine ? n * w[c]! + b[c]! : n;
        const wc = affine ? Math.abs(w[c]!) : 1;
        tol[o + c] = (2 * C + 16) * u * (Math.abs(ref[o + c]!) + wc * absMean * inv + (affine ? Math.abs(b[c]!) : 0));
      }
    });
    const inputs = affine ? [f32Tensor([R, C], x), f32Tensor([C], w), f32Tensor([C], b)] : [f32Tensor([R, C], x)];
    const [y] = await runOp('layer_norm', inputs, { eps });
    expectClose(asF32(y!), ref, tol, `layer_norm ${R}x${C}`);
  });

  it('norm_modulate as AdaLN (VAR, Infinity): LayerNorm(x) * (1 + scale[b]) + shift[b] over [B, L, C]', async () => {
    const B = 2, L = 5, C = 33;
    const rng = new Rng(77);
    const x = rng.f32(B * L * C, -2, 3);
    const scale = rng.f32(B * C);
    const shift = rng.f32(B * C);
    const eps = 1e-6;
    const ref = new Float64Array(B * L * C);
    const tol = new Float64Array(B * L * C);
    rows(B * L, C, (r, o) => {
      const b = Math.floor(r / L);
      let mean = 0;
      for (let c = 0; c < C; c++) mean += x[o + c]! / C;
      let v = 0;
      let absMean = 0;
      for (let c = 0; c < C; c++) {
        v += (x[o + c]! - mean) ** 2 / C;
        absMean += Math.abs(x[o + c]!) / C;
      }
      const inv = 1 / Math.sqrt(v + eps);
      for (let c = 0; c < C; c++) {
        const s = 1 + scale[b * C + c]!;
        ref[o + c] = (x[o + c]! - mean) * inv * s + shift[b * C + c]!;
        tol[o + c] = (2 * C + 16) * u * (Math.abs(ref[o + c]!) + Math.abs(s) * (absMean * inv + 1) + Math.abs(shift[b * C + c]!));
      }
    });
    const [y] = await runOp(
      'norm_modulate',
      [f32Tensor([B, L, C], x), f32Tensor([B, C], scale), f32Tensor([B, C], shift)],
      { norm: 'layer', eps },
    );
    expectClose(asF32(y!), ref, tol, 'norm_modulate (AdaLN)');
  });

  it('gated_add: x[b] += y[b] * gate[b]', async () => {
    const B = 3, L = 4, C = 21;
    const rng = new Rng(5);
    const x = rng.f32(B * L * C), y = rng.f32(B * L * C), g = rng.f32(B * C);
    const ref = new Float64Array(B * L * C);
    const tol = new Float64Array(B * L * C);
    for (let i = 0; i < ref.length; i++) {
      const b = Math.floor(i / (L * C)), c = i % C;
      ref[i] = x[i]! + y[i]! * g[b * C + c]!;
      tol[i] = 2 * u * (Math.abs(x[i]!) + Math.abs(y[i]! * g[b * C + c]!));
    }
    const [out] = await runOp('gated_add', [f32Tensor([B, L, C], x), f32Tensor([B, L, C], y), f32Tensor([B, C], g)]);
    expectClose(asF32(out!), ref, tol, 'gated_add');
  });

  it.each([
    [[1, 64, 5, 7], 32],
    [[64, 16, 16], 32],
    [[2, 96, 3, 3], 32],
    [[1, 6, 1, 1], 3],
    // Groups of several 4096-value chunks (moments merged across chunks), with a partial last one.
    [[1, 64, 48, 48], 32],
    [[1, 32, 70, 70], 8],
  ] as const)('group_norm on %j with %i groups', async (shape, groups) => {
    const rng = new Rng(shape.length * 100 + groups);
    const n = numel(shape);
    const C = shape[shape.length - 3]!, HW = shape[shape.length - 1]! * shape[shape.length - 2]!;
    const N = n / (C * HW);
    const x = rng.f32(n, -1, 3);
    const w = rng.f32(C, 0.5, 1.5), b = rng.f32(C);
    const eps = 1e-6;
    const ref = new Float64Array(n);
    const tol = new Float64Array(n);
    const per = C / groups;
    for (let s = 0; s < N; s++)
      for (let g = 0; g < groups; g++) {
        const o = (s * C + g * per) * HW, count = per * HW;
        let mean = 0, absMean = 0;
        for (let i = 0; i < count; i++) {
          mean += x[o + i]! / count;
          absMean += Math.abs(x[o + i]!) / count;
        }
        let v = 0;
        for (let i = 0; i < count; i++) v += (x[o + i]! - mean) ** 2 / count;
        const inv = 1 / Math.sqrt(v + eps);
        for (let i = 0; i < count; i++) {
          const c = g * per + Math.floor(i / HW);
          ref[o + i] = (x[o + i]! - mean) * inv * w[c]! + b[c]!;
          tol[o + i] = 32 * u * (Math.abs(ref[o + i]!) + Math.abs(w[c]!) * (absMean * inv + 1) + Math.abs(b[c]!));
        }
      }
    const [y] = await runOp('group_norm', [f32Tensor([...shape], x), f32Tensor([C], w), f32Tensor([C], b)], { groups, eps });
    expectClose(asF32(y!), ref, tol, `group_norm ${shape.join('x')}`);
  });

  it('l2_normalize_heads with and without per-head scale', async () => {
    const L = 5, H = 3, D = 64;
    const rng = new Rng(11);
    const x = rng.f32(L * H * D);
    x.fill(1e-20, 2 * D, 3 * D); // a near-zero head: the 1e-12 floor keeps it finite
    const scale = rng.f32(H, 1, 4);
    for (const withScale of [false, true]) {
      const ref = new Float64Array(L * H * D);
      const tol = new Float64Array(L * H * D);
      for (let r = 0; r < L * H; r++) {
        let ss = 0;
        for (let d = 0; d < D; d++) ss += x[r * D + d]! ** 2;
        const s = withScale ? scale[r % H]! : 1;
        const f = s / Math.max(Math.sqrt(ss), 1e-12);
        for (let d = 0; d < D; d++) {
          ref[r * D + d] = x[r * D + d]! * f;
          tol[r * D + d] = (D + 16) * u * Math.abs(ref[r * D + d]!) + 1e-30;
        }
      }
      const [y] = await runOp('l2_normalize_heads', [f32Tensor([L, H * D], x), withScale ? f32Tensor([H], scale) : null], {
        headDim: D,
      });
      expectClose(asF32(y!), ref, tol, `l2_normalize_heads scale=${withScale}`);
    }
  });
});

describe('element-wise', () => {
  it.each(['none', 'silu', 'gelu', 'gelu_tanh', 'quick_gelu'] as const)('activation %s over [-12, 12]', async (act: Act) => {
    const rng = new Rng(act.length);
    const x = rng.f32(3 * 1001, -12, 12);
    const ref = new Float64Array(x.length).map((_, i) => actRef(act, x[i]!));
    const tol = new Float64Array(x.length).map((_, i) => 16 * u * Math.abs(ref[i]!) + 4 * u * Math.abs(x[i]!));
    const [y] = await runOp('activation', [f32Tensor([3, 1001], x)], { act });
    expectClose(asF32(y!), ref, tol, `activation ${act}`);
  });

  it('glu with silu (SwiGLU) = silu(gate) * up', async () => {
    const rng = new Rng(8);
    const g = rng.f32(2 * 300, -8, 8), up = rng.f32(2 * 300);
    const ref = new Float64Array(600).map((_, i) => actRef('silu', g[i]!) * up[i]!);
    const tol = new Float64Array(600).map((_, i) => 16 * u * Math.abs(ref[i]!) + 4 * u * Math.abs(g[i]! * up[i]!));
    const [y] = await runOp('glu', [f32Tensor([2, 300], g), f32Tensor([2, 300], up)], { act: 'silu' });
    expectClose(asF32(y!), ref, tol, 'glu silu');
  });

  it.each([[[2, 3, 5], [5]], [[2, 3, 5], [3, 5]], [[4, 17], [4, 17]], [[6], [6]]] as const)(
    'add with a %j + %j suffix broadcast',
    async (aShape, bShape) => {
      const rng = new Rng(aShape.length * 10 + bShape.length);
      const na = numel(aShape), nb = numel(bShape);
      const a = rng.f32(na), b = rng.f32(nb);
      const ref = new Float64Array(na).map((_, i) => a[i]! + b[i % nb]!);
      const [y] = await runOp('add', [f32Tensor([...aShape], a), f32Tensor([...bShape], b)]);
      expectClose(asF32(y!), ref, 2 * u * 2, `add ${aShape}+${bShape}`);
    },
  );

  it('axpby = alpha a + beta b', async () => {
    const rng = new Rng(9);
    const a = rng.f32(123), b = rng.f32(123);
    const ref = new Float64Array(123).map((_, i) => 1.5 * a[i]! - 0.5 * b[i]!);
    const [y] = await runOp('axpby', [f32Tensor([123], a), f32Tensor([123], b)], { alpha: 1.5, beta: -0.5 });
    expectClose(asF32(y!), ref, 4 * u * 2, 'axpby');
  });

  it.each([
    [[7, 2 * 64], 64, 'rotate_half'],
    [[2, 5, 3 * 128], 128, 'rotate_half'],
    [[3, 5 * 6], 6, 'rotate_half'],
    [[7, 2 * 64], 64, 'interleaved'],
    [[2, 5, 3 * 6], 6, 'interleaved'],
  ] as const)('rope on %j, head_dim %i, %s pairing, from a cos | sin table', async (shape, D, pairing) => {
    const rng = new Rng(D + shape.length + pairing.length);
    const n = numel(shape);
    const L = shape[shape.length - 2]!, HD = shape[shape.length - 1]!;
    const half = D / 2;
    const x = rng.f32(n);
    // Angles of any size and sign, as M-RoPE sections or 2D grids produce; the op reads the table.
    const table = new Float32Array(L * D);
    for (let l = 0; l < L; l++)
      for (let j = 0; j < half; j++) {
        const angle = (rng.f32(1)[0]! - 0.5) * 4000;
        table[l * D + j] = Math.cos(angle);
        table[l * D + half + j] = Math.sin(angle);
      }
    const [first, second] = pairing === 'rotate_half' ? [1, half] : [2, 1];
    const ref = new Float64Array(n);
    const tol = new Float64Array(n);
    for (let r = 0; r < n / HD; r++) {
      const l = r % L;
      for (let h = 0; h < HD / D; h++)
        for (let j = 0; j < half; j++) {
          const c = table[l * D + j]!, s = table[l * D + half + j]!;
          const ia = r * HD + h * D + j * first, ib = ia + second;
          const x1 = x[ia]!, x2 = x[ib]!;
          ref[ia] = x1 * c - x2 * s;
          ref[ib] = x2 * c + x1 * s;
          // two f32 products and one sum (or one fused multiply-add)
          const t = 3 * u * (Math.abs(x1) + Math.abs(x2)) + 1e-30;
          tol[ia] = t;
          tol[ib] = t;
        }
    }
    const [y] = await runOp('rope', [f32Tensor([...shape], x), f32Tensor([L, D], table)], { headDim: D, pairing });
    expectClose(asF32(y!), ref, tol, `rope ${shape} ${pairing}`);
  });
});

describe('normalisation and element-wise: bad input', () => {
  it('rejects mismatched shapes, bad group counts and odd RoPE head sizes', async () => {
    const rng = new Rng(1);
    await expect(runOp('rms_norm', [f32Tensor([2, 8], rng.f32(16)), f32Tensor([7], rng.f32(7))], { eps: 1e-6 })).rejects.toThrow(
      /rms_norm: weight f32\[7\] must have 8 elements/,
    );
    await expect(
      runOp('group_norm', [f32Tensor([6, 2, 2], rng.f32(24)), f32Tensor([6], rng.f32(6)), f32Tensor([6], rng.f32(6))], {
        groups: 4,
        eps: 1e-6,
      }),
    ).rejects.toThrow(/group_norm: 4 groups do not divide the 6 channels/);
    await expect(runOp('glu', [f32Tensor([2, 3], rng.f32(6)), f32Tensor([3, 2], rng.f32(6))], { act: 'silu' })).rejects.toThrow(
      /glu: gate f32\[2, 3\] and up f32\[3, 2\] must have the same shape/,
    );
    await expect(runOp('add', [f32Tensor([2, 3], rng.f32(6)), f32Tensor([2], rng.f32(2))])).rejects.toThrow(
      /add: b f32\[2\] is not a suffix of a f32\[2, 3\]/,
    );
    await expect(runOp('rope', [f32Tensor([2, 6], rng.f32(12)), f32Tensor([2, 3], rng.f32(6))], { headDim: 3 })).rejects.toThrow(
      /rope: head_dim 3 must be even/,
    );
    await expect(runOp('rope', [f32Tensor([2, 8], rng.f32(16)), f32Tensor([3, 4], rng.f32(12))], { headDim: 4 })).rejects.toThrow(
      /rope: table f32\[3, 4\] must be \[2, 4\]/,
    );
    await expect(
      runOp('rope', [f32Tensor([2, 8], rng.f32(16)), f32Tensor([2, 4], rng.f32(8))], { headDim: 4, pairing: 'pairs' }),
    ).rejects.toThrow(/rope: pairing "pairs" must be rotate_half or interleaved/);
  });
});

// The activations and SwiGLU run on the dispatched path's vectors (16 or 8 lanes, masked tails):
// every path, lengths around the vector widths.
const initialPath = addon.devices().cpu.kernels;
afterAll(() => {
  addon.setCpuKernels(initialPath);
});

describe.each(kernelPaths())('element-wise on the %s path', (path) => {
  const lengths = [1, 7, 8, 15, 16, 17, 33, 100];
  it.each(['silu', 'gelu_tanh', 'quick_gelu', 'gelu'] as const)('activation %s, lengths 1..100 (tails)', async (act: Act) => {
    addon.setCpuKernels(path);
    for (const n of lengths) {
      const rng = new Rng(n * 7 + act.length);
      // Both tails of the sigmoid (exp clamping near -104 / 88.7) and the region around 0.
      const x = rng.f32(3 * n, -110, 110).map((v, i) => (i % 3 === 0 ? v / 20 : v));
      const ref = new Float64Array(x.length).map((_, i) => actRef(act, x[i]!));
      const tol = new Float64Array(x.length).map((_, i) => 16 * u * Math.abs(ref[i]!) + 4 * u * Math.abs(x[i]!) + 1e-37);
      const [y] = await runOp('activation', [f32Tensor([3, n], x)], { act });
      expectClose(asF32(y!), ref, tol, `${path} activation ${act} n=${n}`);
    }
  });

  it('glu with silu (SwiGLU), lengths 1..100 (tails)', async () => {
    addon.setCpuKernels(path);
    for (const n of lengths) {
      const rng = new Rng(n + 77);
      const g = rng.f32(2 * n, -30, 30), up = rng.f32(2 * n);
      const ref = new Float64Array(2 * n).map((_, i) => actRef('silu', g[i]!) * up[i]!);
      const tol = new Float64Array(2 * n).map((_, i) => 16 * u * Math.abs(ref[i]!) + 4 * u * Math.abs(g[i]! * up[i]!) + 1e-37);
      const [y] = await runOp('glu', [f32Tensor([2, n], g), f32Tensor([2, n], up)], { act: 'silu' });
      expectClose(asF32(y!), ref, tol, `${path} glu silu n=${n}`);
    }
  });
});
