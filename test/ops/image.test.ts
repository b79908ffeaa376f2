// Image ops against float64 references: conv2d on the shapes VARGPT uses (3x3 pad 1, 3x3 stride
// 2 with (0,1,0,1) padding, 1x1, 14x14 stride 14), nearest 2x upsampling, PyTorch-exact bicubic
// and area resizing on every VAR scale pair (spec §6.4), and transpose.
//
// Tolerances (u = 2^-24): conv is a dot product of K = C·kh·kw terms: 2(K + 1)·u·Σ|w x| (+ bias),
// bf16 weights compared against the same rounded values. Bicubic weights are formed in f32 from
// an f32 source coordinate (off by ~in·u), so each weight is off by a few tens of u; with 16 taps
// we allow 64u·Σ|w_y w_x x|. The f32 source coordinate itself is off by ~in·u, which moves t by
// as much and each weight by at most 1.4x that (the kernel's slope), so we add
// 4u·Σ|x|(|w_x|·in_h + |w_y|·in_w) for the taps. Area is a plain mean of at most 36 values: (n + 4)·u·mean|x|.
import { afterAll, describe, expect, it } from 'vitest';

import {
  EPS32,
  Rng,
  addon,
  asF32,
  expectClose,
  f32Tensor,
  kernelPaths,
  numel,
  runOp,
  weightTensor,
} from '../helpers/ops-reference.js';

const initialPath = addon.devices().cpu.kernels;
afterAll(() => {
  addon.setCpuKernels(initialPath);
});

const u = EPS32;

interface ConvCase {
  N: number | null; // null: [C, H, W] without a batch axis
  C: number;
  H: number;
  W: number;
  O: number;
  k: number;
  stride: number;
  pad: [number, number, number, number]; // top, bottom, left, right
  dtype: 'f32' | 'bf16' | 'f16';
  bias: boolean;
}

// F(4x4, 3x3) Winograd matrices (conv_winograd.cc): output tile = A^T [(G g G^T) ⊙ (B^T d B)] A.
const WINO_AT = [
  [1, 1, 1, 1, 1, 0],
  [0, 1, -1, 2, -2, 0],
  [0, 1, 1, 4, 4, 0],
  [0, 1, -1, 8, -8, 1],
];
const WINO_BT = [
  [4, 0, -5, 0, 1, 0],
  [0, -4, -4, 1, 1, 0],
  [0, 4, -4, -1, 1, 0],
  [0, -2, -1, 2, 1, 0],
  [0, 2, -1, -2, 1, 0],
  [0, 4, 0, -5, 0, 1],
];
const WINO_G = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
];

// |M| X |N|^T for a 6 x r matrix M, an r x r matrix X (non-negative) and a 6 x r matrix N.
function absSandwich(Mt: number[][], X: number[][], Nt: number[][]): number[][] {
  const r = X.length;
  const t = Mt.map((row) => Array.from({ length: r }, (_, j) => row.reduce((s, m, i) => s + Math.abs(m) * X[i]![j]!, 0)));
  return t.map((row) => Nt.map((nrow) => nrow.reduce((s, nv, j) => s + Math.abs(nv) * row[j]!, 0)));
}

// Forward error bound of the Winograd path, in the style of Higham's bound for bilinear
// algorithms: output (k, l) of a tile is Σ_c Σ_αβ A^T[k][α] A^T[l][β] U_c[α][β] V_c[α][β] with
// U = G g G^T, V = B^T d B. Every term is formed and summed with at most C + 16 roundings (the
// C-term GEMM sum, two transform stages each side, the product, the bias), so the error stays
// below (C + 16)·u·Σ_c Σ_αβ |A^T[k][α]| |A^T[l][β]| (|G||g||G^T|)[α][β] (|B^T||d||B|)[α][β].
// Unlike the direct sum's bound it involves the whole 6x6 input window of the pixel's tile.
function winogradTolerance(c: ConvCase, x: Float32Array, w: Float64Array, Ho: number, Wo: number): Float64Array {
  const N = c.N ?? 1;
  const tol = new Float64Array(N * c.O * Ho * Wo);
  const Uabs: number[][][] = [];
  for (let o = 0; o < c.O; o++)
    for (let ci = 0; ci < c.C; ci++) {
      const g = [0, 1, 2].map((i) => [0, 1, 2].map((j) => Math.abs(w[((o * c.C + ci) * 3 + i) * 3 + j]!)));
      Uabs.push(absSandwich(WINO_G, g, WINO_G));
    }
  for (let n = 0; n < N; n++)
    for (let ty = 0; ty * 4 < Ho; ty++)
      for (let tx = 0; tx * 4 < Wo; tx++) {
        const Vabs: number[][][] = [];
        for (let ci = 0; ci < c.C; ci++) {
          const d = [0, 1, 2, 3, 4, 5].map((i) =>
            [0, 1, 2, 3, 4, 5].map((j) => {
              const ih = 4 * ty - c.pad[0] + i, iw = 4 * tx - c.pad[2] + j;
              return ih < 0 || ih >= c.H || iw < 0 || iw >= c.W ? 0 : Math.abs(x[((n * c.C + ci) * c.H + ih) * c.W + iw]!);
            }),
          );
          Vabs.push(absSandwich(WINO_BT, d, WINO_BT));
        }
        for (let o = 0; o < c.O; o++) {
          const P = Array.from({ length: 6 }, () => new Float64Array(6));
          for (let ci = 0; ci < c.C; ci++) {
            const U = Uabs[o * c.C + ci]!, V = Vabs[ci]!;
            for (let a = 0; a < 6; a++) for (let b = 0; b < 6; b++) P[a]![b] = P[a]![b]! + U[a]![b]! * V[a]![b]!;
          }
          for (let k = 0; k < 4 && 4 * ty + k < Ho; k++)
            for (let l = 0; l < 4 && 4 * tx + l < Wo; l++) {
              let bound = 0;
              for (let a = 0; a < 6; a++)
                for (let b = 0; b < 6; b++) bound += Math.abs(WINO_AT[k]![a]!) * Math.abs(WINO_AT[l]![b]!) * P[a]![b]!;
              tol[((n * c.O + o) * Ho + 4 * ty + k) * Wo + 4 * tx + l] = (c.C + 16) * u * bound;
            }
        }
      }
  return tol;
}

async function checkConv(c: ConvCase, seed: number, winograd = false) {
  const rng = new Rng(seed);
  const N = c.N ?? 1;
  const x = rng.f32(N * c.C * c.H * c.W);
  const w = weightTensor(rng, c.dtype, [c.O, c.C, c.k, c.k], 0.5);
  const bias = c.bias ? rng.f32(c.O) : null;
  const Ho = Math.floor((c.H + c.pad[0] + c.pad[1] - c.k) / c.stride) + 1;
  const Wo = Math.floor((c.W + c.pad[2] + c.pad[3] - c.k) / c.stride) + 1;
  const xShape = c.N === null ? [c.C, c.H, c.W] : [N, c.C, c.H, c.W];
  const [y] = await runOp('conv2d', [f32Tensor(xShape, x), w.tensor, bias ? f32Tensor([c.O], bias) : null], {
    stride: c.stride,
    padding: c.pad,
  });
  expect(y!.shape).toEqual(c.N === null ? [c.O, Ho, Wo] : [N, c.O, Ho, Wo]);
  const ref = new Float64Array(N * c.O * Ho * Wo);
  const tol = new Float64Array(ref.length);
  const K = c.C * c.k * c.k;
  for (let n = 0; n < N; n++)
    for (let o = 0; o < c.O; o++)
      for (let oh = 0; oh < Ho; oh++)
        for (let ow = 0; ow < Wo; ow++) {
          let s = bias ? bias[o]! : 0;
          let abs = Math.abs(s);
          for (let ci = 0; ci < c.C; ci++)
            for (let ky = 0; ky < c.k; ky++)
              for (let kx = 0; kx < c.k; kx++) {
                const ih = oh * c.stride - c.pad[0] + ky, iw = ow * c.stride - c.pad[2] + kx;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                const t = w.values[((o * c.C + ci) * c.k + ky) * c.k + kx]! * x[((n * c.C + ci) * c.H + ih) * c.W + iw]!;
                s += t;
                abs += Math.abs(t);
              }
          const i = ((n * c.O + o) * Ho + oh) * Wo + ow;
          ref[i] = s;
          tol[i] = 2 * (K + 1) * u * abs + 1e-30;
        }
  if (winograd) {
    // The bias is added after the output transform: one more rounding of |ref|.
    const wt = winogradTolerance(c, x, w.values, Ho, Wo);
    for (let i = 0; i < tol.length; i++) tol[i] = wt[i]! + 2 * u * Math.abs(ref[i]!) + 1e-30;
  }
  expectClose(asF32(y!), ref, tol, `conv2d ${JSON.stringify(c)}`);
}

describe('conv2d', () => {
  const base = { N: 1, bias: true, dtype: 'f32' as const };
  const cases: [string, ConvCase][] = [
    ['3x3 pad 1', { ...base, C: 5, H: 9, W: 11, O: 7, k: 3, stride: 1, pad: [1, 1, 1, 1] }],
    ['3x3 pad 1, no batch axis, bf16 weights, no bias', { ...base, N: null, C: 4, H: 6, W: 5, O: 3, k: 3, stride: 1, pad: [1, 1, 1, 1], dtype: 'bf16', bias: false }],
    ['3x3 stride 2, padding (0,1,0,1) on an even image', { ...base, C: 6, H: 8, W: 8, O: 5, k: 3, stride: 2, pad: [0, 1, 0, 1] }],
    ['3x3 stride 2, padding (0,1,0,1) on an odd image, batch 2', { ...base, N: 2, C: 3, H: 9, W: 7, O: 4, k: 3, stride: 2, pad: [0, 1, 0, 1] }],
    ['1x1 (pointwise), f16 weights', { ...base, C: 20, H: 6, W: 5, O: 13, k: 1, stride: 1, pad: [0, 0, 0, 0], dtype: 'f16' }],
    ['1x1 batch 2, wide channels', { ...base, N: 2, C: 64, H: 4, W: 4, O: 33, k: 1, stride: 1, pad: [0, 0, 0, 0] }],
    ['14x14 stride 14 (ViT patches)', { ...base, C: 3, H: 28, W: 42, O: 8, k: 14, stride: 14, pad: [0, 0, 0, 0] }],
    ['3x3 pad 1 on 32 channels at 16x16', { ...base, C: 32, H: 16, W: 16, O: 32, k: 3, stride: 1, pad: [1, 1, 1, 1] }],
  ];
  it.each(cases)('%s', async (label, c) => {
    await checkConv(c, label.length);
  });

  it('rejects a channel mismatch and a kernel larger than the padded input', async () => {
    const rng = new Rng(2);
    const x = f32Tensor([3, 4, 4], rng.f32(48));
    await expect(runOp('conv2d', [x, f32Tensor([2, 4, 3, 3], rng.f32(72))], { padding: 1 })).rejects.toThrow(
      /conv2d: x f32\[3, 4, 4\] has 3 channels but weight f32\[2, 4, 3, 3\] expects 4/,
    );
    await expect(runOp('conv2d', [x, f32Tensor([2, 3, 5, 5], rng.f32(150))])).rejects.toThrow(/larger than the padded input/);
  });
});

// Stride-1 3x3 layers with at least 16 input and output channels and 64 output tiles (4x4) take
// the Winograd F(4x4, 3x3) path, held to its own forward error bound (winogradTolerance; the
// direct sum's bound covers only the pixel's own 3x3 window, and a pixel whose window is all
// padding would be held to the bias's rounding alone). Sizes off the 4x4
// tiles and the 16-tile vectors, partial tile groups, asymmetric and zero padding, batch 2, bf16
// weights, channel counts past one GEMM K block, on every kernel path.
describe.each(kernelPaths())('conv2d 3x3 on the Winograd path (%s kernels)', (path) => {
  const base = { N: 1, bias: true, dtype: 'f32' as const, k: 3, stride: 1 };
  const cases: [string, ConvCase][] = [
    ['33x35, 16 -> 17 channels, pad 1', { ...base, C: 16, H: 33, W: 35, O: 17, pad: [1, 1, 1, 1] }],
    ['32x70 (two tile groups per row), batch 2, no bias', { ...base, N: 2, C: 17, H: 32, W: 70, O: 16, pad: [1, 1, 1, 1], bias: false }],
    ['unpadded 34x34, bf16 weights', { ...base, C: 16, H: 34, W: 34, O: 20, pad: [0, 0, 0, 0], dtype: 'bf16' }],
    ['asymmetric padding (2,0,1,3), no batch axis', { ...base, N: null, C: 18, H: 31, W: 29, O: 16, pad: [2, 0, 1, 3] }],
    ['300 channels (two K blocks) at 32x32', { ...base, C: 300, H: 32, W: 32, O: 24, pad: [1, 1, 1, 1] }],
    ['74x70: 19 tile rows in two blocks of whole rows', { ...base, C: 16, H: 74, W: 70, O: 16, pad: [1, 1, 1, 1] }],
  ];
  it.each(cases)('%s', async (label, c) => {
    addon.setCpuKernels(path);
    await checkConv(c, label.length + 100, true);
  });
});

describe('upsample and transpose', () => {
  it('upsample_nearest2x repeats each pixel into a 2x2 block', async () => {
    const rng = new Rng(4);
    const x = rng.f32(2 * 3 * 5 * 7);
    const [y] = await runOp('upsample_nearest2x', [f32Tensor([2, 3, 5, 7], x)]);
    expect(y!.shape).toEqual([2, 3, 10, 14]);
    const got = asF32(y!);
    for (let p = 0; p < 6; p++)
      for (let i = 0; i < 10; i++)
        for (let j = 0; j < 14; j++)
          if (got[(p * 10 + i) * 14 + j] !== x[(p * 5 + (i >> 1)) * 7 + (j >> 1)]) expect.fail(`pixel ${p},${i},${j}`);
  });

  it.each([[[33, 70]], [[2, 5, 3]], [[1, 1]], [[3, 64, 65]]] as const)('transpose %j is exact', async (shape) => {
    const rng = new Rng(shape.length);
    const n = numel(shape);
    const x = rng.f32(n);
    const [y] = await runOp('transpose', [f32Tensor([...shape], x)]);
    const B = shape.length === 3 ? shape[0]! : 1, R = shape[shape.length - 2]!, C = shape[shape.length - 1]!;
    expect(y!.shape).toEqual(shape.length === 3 ? [B, C, R] : [C, R]);
    const got = asF32(y!);
    for (let b = 0; b < B; b++)
      for (let r = 0; r < R; r++)
        for (let c = 0; c < C; c++)
          if (got[(b * C + c) * R + r] !== x[(b * R + r) * C + c]) expect.fail(`element ${b},${r},${c}`);
  });
});

// ---- resize references, written from the PyTorch semantics in spec §6.4

function cubicWeights(t: number): number[] {
  const A = -0.75;
  const c1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const c2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)];
}

function bicubicAxis(inSize: number, outSize: number) {
  return Array.from({ length: outSize }, (_, d) => {
    const src = (d + 0.5) * (inSize / outSize) - 0.5;
    const i0 = Math.floor(src);
    const w = cubicWeights(src - i0);
    const idx = [i0 - 1, i0, i0 + 1, i0 + 2].map((i) => Math.min(Math.max(i, 0), inSize - 1));
    return { idx, w };
  });
}

function bicubicRef(x: Float32Array, planes: number, H: number, W: number, Ho: number, Wo: number) {
  const ay = bicubicAxis(H, Ho), ax = bicubicAxis(W, Wo);
  const out = new Float64Array(planes * Ho * Wo);
  const tol = new Float64Array(out.length);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) {
        let s = 0, abs = 0, slack = 0;
        for (let a = 0; a < 4; a++)
          for (let b = 0; b < 4; b++) {
            const wy = ay[oy]!.w[a]!, wx = ax[ox]!.w[b]!;
            const v = x[(p * H + ay[oy]!.idx[a]!) * W + ax[ox]!.idx[b]!]!;
            s += wy * wx * v;
            abs += Math.abs(wy * wx * v);
            slack += Math.abs(v) * (Math.abs(wx) * H + Math.abs(wy) * W);
          }
        out[(p * Ho + oy) * Wo + ox] = s;
        tol[(p * Ho + oy) * Wo + ox] = 64 * u * abs + 4 * u * slack + 1e-30;
      }
  return { out, tol };
}

function areaRef(x: Float32Array, planes: number, H: number, W: number, Ho: number, Wo: number) {
  const win = (a: number, o: number, i: number) => [Math.floor((a * i) / o), Math.ceil(((a + 1) * i) / o)] as const;
  const out = new Float64Array(planes * Ho * Wo);
  const tol = new Float64Array(out.length);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) {
        const [y0, y1] = win(oy, Ho, H), [x0, x1] = win(ox, Wo, W);
        let s = 0, abs = 0;
        for (let iy = y0; iy < y1; iy++)
          for (let ix = x0; ix < x1; ix++) {
            s += x[(p * H + iy) * W + ix]!;
            abs += Math.abs(x[(p * H + iy) * W + ix]!);
          }
        const n = (y1 - y0) * (x1 - x0);
        out[(p * Ho + oy) * Wo + ox] = s / n;
        tol[(p * Ho + oy) * Wo + ox] = (n + 4) * u * (abs / n) + 1e-30;
      }
  return { out, tol };
}

describe('resize (PyTorch F.interpolate semantics)', () => {
  const scales = [1, 2, 3, 4, 5, 6, 8, 10, 13];
  const C = 32;

  it.each(scales)('bicubic %i -> 16 and 16 -> %i', async (p) => {
    const rng = new Rng(p);
    for (const [H, Ho] of [[p, 16], [16, p]] as const) {
      const x = rng.f32(C * H * H, -2, 2);
      const [y] = await runOp('resize_bicubic', [f32Tensor([1, C, H, H], x)], { size: [Ho, Ho] });
      expect(y!.shape).toEqual([1, C, Ho, Ho]);
      const ref = bicubicRef(x, C, H, H, Ho, Ho);
      expectClose(asF32(y!), ref.out, ref.tol, `bicubic ${H}->${Ho}`);
    }
  });

  it.each(scales)('area 16 -> %i and %i -> 16', async (p) => {
    const rng = new Rng(100 + p);
    for (const [H, Ho] of [[16, p], [p, 16]] as const) {
      const x = rng.f32(C * H * H, -2, 2);
      const [y] = await runOp('resize_area', [f32Tensor([1, C, H, H], x)], { size: [Ho, Ho] });
      const ref = areaRef(x, C, H, H, Ho, Ho);
      expectClose(asF32(y!), ref.out, ref.tol, `area ${H}->${Ho}`);
    }
  });

  it('bicubic and area on non-square images without a batch axis', async () => {
    const rng = new Rng(5);
    const x = rng.f32(3 * 5 * 9);
    const [b] = await runOp('resize_bicubic', [f32Tensor([3, 5, 9], x)], { size: [11, 4] });
    const rb = bicubicRef(x, 3, 5, 9, 11, 4);
    expectClose(asF32(b!), rb.out, rb.tol, 'bicubic 5x9 -> 11x4');
    const [a] = await runOp('resize_area', [f32Tensor([3, 5, 9], x)], { size: [3, 7] });
    const ra = areaRef(x, 3, 5, 9, 3, 7);
    expectClose(asF32(a!), ra.out, ra.tol, 'area 5x9 -> 3x7');
  });

  it('bicubic from a 1x1 map is constant', async () => {
    const x = new Float32Array([0.37, -1.25]);
    const [y] = await runOp('resize_bicubic', [f32Tensor([2, 1, 1], x)], { size: [16, 16] });
    const got = asF32(y!);
    for (let i = 0; i < 256; i++) {
      expect(Math.abs(got[i]! - 0.37)).toBeLessThanOrEqual(4 * u);
      expect(Math.abs(got[256 + i]! + 1.25)).toBeLessThanOrEqual(8 * u);
    }
  });

  it('rejects a size that is not [H, W]', async () => {
    await expect(runOp('resize_area', [f32Tensor([1, 2, 2], new Float32Array(4).fill(1))], { size: [3] })).rejects.toThrow(
      /resize_area: size must be \[H, W\]/,
    );
  });
});
