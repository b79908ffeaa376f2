// resize_bilinear: PyTorch F.interpolate(mode="bilinear", align_corners=False, antialias=False)
// on [C, H, W] and [N, C, H, W], up and down, against a float64 reference.
//
// The reference forms the taps exactly as ATen does, in f32 (Math.fround at each step): scale =
// in / out, src = max(scale·(d + 0.5) - 0.5, 0), i0 = min(floor(src), in - 1), i1 = i0 + 1 unless
// i0 is the last pixel, lambda = clamp(src - i0, 0, 1), weights (1 - lambda, lambda). So the taps
// and weights are the kernel's own, and only the interpolation sum (two products and a sum per
// row, then per column) rounds: each of its three levels adds at most u relative, so the result
// is within 4u·Σ|w_y w_x x| of the float64 sum (u = 2^-24). A fixed 2x2 -> 4x4 case checks the
// semantics against PyTorch's own output.
import { afterAll, describe, expect, it } from 'vitest';

import { EPS32, Rng, addon, asF32, expectClose, f32Tensor, kernelPaths, runOp } from '../helpers/ops-reference.js';

const u = EPS32;
const f = Math.fround;

const initialPath = addon.devices().cpu.kernels;
afterAll(() => {
  addon.setCpuKernels(initialPath);
});

function linearTaps(inSize: number, outSize: number) {
  const scale = f(inSize / outSize);
  return Array.from({ length: outSize }, (_, d) => {
    const src = Math.max(f(f(scale * f(d + 0.5)) - 0.5), 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(Math.max(f(src - i0), 0), 1);
    return { idx: [i0, i0 + (i0 < inSize - 1 ? 1 : 0)], w: [f(1 - lambda), lambda] };
  });
}

function bilinearRef(x: Float32Array, planes: number, H: number, W: number, Ho: number, Wo: number) {
  const ty = linearTaps(H, Ho), tx = linearTaps(W, Wo);
  const out = new Float64Array(planes * Ho * Wo);
  const tol = new Float64Array(out.length);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) {
        let s = 0, abs = 0;
        for (let a = 0; a < 2; a++)
          for (let b = 0; b < 2; b++) {
            const t = ty[oy]!.w[a]! * tx[ox]!.w[b]! * x[(p * H + ty[oy]!.idx[a]!) * W + tx[ox]!.idx[b]!]!;
            s += t;
            abs += Math.abs(t);
          }
        out[(p * Ho + oy) * Wo + ox] = s;
        tol[(p * Ho + oy) * Wo + ox] = 4 * u * abs + 1e-30;
      }
  return { out, tol };
}

describe.each(kernelPaths())('resize_bilinear (%s kernels)', (path) => {
  const cases: [string, number[], number, number][] = [
    ['up 5x7 -> 11x13, batch 2, 3 channels', [2, 3, 5, 7], 11, 13],
    ['down 17x19 -> 6x5 (no antialias: two taps)', [1, 4, 17, 19], 6, 5],
    ['mixed 9x4 -> 3x10, no batch axis', [5, 9, 4], 3, 10],
    ['identity size 8x8 -> 8x8', [2, 8, 8], 8, 8],
    ['from one pixel 1x1 -> 5x3', [3, 1, 1], 5, 3],
    ['to one pixel 7x6 -> 1x1', [1, 2, 7, 6], 1, 1],
    ['Infinity-like next scale 13x13 -> 16x16 (32 channels)', [1, 32, 13, 13], 16, 16],
  ];
  it.each(cases)('%s', async (label, shape, Ho, Wo) => {
    addon.setCpuKernels(path);
    const rng = new Rng(label.length * 3 + Ho * Wo);
    const H = shape[shape.length - 2]!, W = shape[shape.length - 1]!;
    const planes = shape.slice(0, -2).reduce((a, b) => a * b, 1);
    const x = rng.f32(planes * H * W, -2, 2);
    const [y] = await runOp('resize_bilinear', [f32Tensor(shape, x)], { size: [Ho, Wo] });
    expect(y!.shape).toEqual([...shape.slice(0, -2), Ho, Wo]);
    const ref = bilinearRef(x, planes, H, W, Ho, Wo);
    expectClose(asF32(y!), ref.out, ref.tol, `${path} bilinear ${label}`);
  });

  it('matches PyTorch on [[1, 2], [3, 4]] -> 4x4 (half-pixel centres, clamped at the edges)', async () => {
    addon.setCpuKernels(path);
    const [y] = await runOp('resize_bilinear', [f32Tensor([1, 1, 2, 2], new Float32Array([1, 2, 3, 4]))], { size: [4, 4] });
    // torch.nn.functional.interpolate(torch.arange(1., 5.).view(1, 1, 2, 2), size=4, mode="bilinear")
    const torch = [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4];
    expect(Array.from(asF32(y!))).toEqual(torch);
  });
});
