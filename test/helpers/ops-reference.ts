// Shared pieces of the operator tests: a seeded PRNG, tensor constructors for runOp, dtype
// rounding, and a comparison that reports the worst element against a per-element tolerance.
import { expect } from 'vitest';

import { bf16ToF32, f16ToF32, f32ToBf16 } from '../../lib/tensor.js';
import { native, type NativeTensor, type NativeTensorInput } from '../../lib/native.js';

export const EPS32 = 2 ** -24; // unit roundoff of f32 (half an ulp at 1)

export const addon = native();

export async function runOp(op: string, inputs: (NativeTensorInput | null)[], attrs: Record<string, unknown> = {}) {
  return addon.runOp('cpu', op, inputs, attrs);
}

// mulberry32: small, fast and seedable; the tests only need reproducible variety.
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  // Uniform in [lo, hi), never exactly zero (zeros hide indexing bugs).
  uniform(lo = -1, hi = 1): number {
    for (;;) {
      const v = lo + (hi - lo) * this.next();
      if (v !== 0) return v;
    }
  }
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  f32(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.uniform(lo, hi);
    return a;
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function f32Tensor(shape: number[], data: Float32Array): NativeTensorInput {
  expect(data.length).toBe(numel(shape));
  return { dtype: 'f32', shape, data };
}

export function i32Tensor(shape: number[], data: Int32Array | number[]): NativeTensorInput {
  return { dtype: 'i32', shape, data: data instanceof Int32Array ? data : Int32Array.from(data) };
}

// A weight tensor in `dtype` plus the exact f64 values it holds (what the reference must use).
export function weightTensor(
  rng: Rng,
  dtype: 'f32' | 'bf16' | 'f16',
  shape: number[],
  scale = 1,
): { tensor: NativeTensorInput; values: Float64Array } {
  const n = numel(shape);
  const values = new Float64Array(n);
  if (dtype === 'f32') {
    const data = rng.f32(n, -scale, scale);
    values.set(data);
    return { tensor: { dtype, shape, data }, values };
  }
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const v = rng.uniform(-scale, scale);
    if (dtype === 'bf16') {
      bits[i] = f32ToBf16(v);
      values[i] = bf16ToF32(bits[i]!);
    } else {
      bits[i] = f32ToF16(v);
      values[i] = f16ToF32(bits[i]!);
    }
  }
  return { tensor: { dtype, shape, data: bits }, values };
}

// Round to nearest even f16 (normal range only is enough for test data).
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// The runtime's per-row activation quantization for the int8 and q4 GEMMs (core/quantize.h:
// quantize_q8_row), in f32 arithmetic: scale max|x| / 127, q = round half to even of x · (127 / max|x|).
export function quantizeRow(x: Float32Array): { xq: Int32Array; sx: number } {
  const f = Math.fround;
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const xq = new Int32Array(x.length);
  if (amax === 0) return { xq, sx: 0 };
  const inv = f(127 / amax);
  for (let k = 0; k < x.length; k++) xq[k] = Math.max(-127, Math.min(127, roundHalfEven(f(x[k]! * inv))));
  return { xq, sx: f(amax / 127) };
}

export function f32ToF16(value: number): number {
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a === 0) return sign;
  if (a < 2 ** -14) {
    return sign | Math.round(a / 2 ** -24); // subnormal; Math.round ties away, rare in tests
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  const m = a / 2 ** e - 1; // [0, 1)
  let mant = m * 1024;
  const floor = Math.floor(mant);
  const frac = mant - floor;
  mant = frac > 0.5 || (frac === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  let exp = e + 15;
  if (mant === 1024) {
    mant = 0;
    exp += 1;
  }
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | mant;
}

export function asF32(t: NativeTensor): Float32Array {
  expect(t.dtype).toBe('f32');
  return new Float32Array(t.data);
}

export function asI32(t: NativeTensor): Int32Array {
  expect(t.dtype).toBe('i32');
  return new Int32Array(t.data);
}

// Asserts |got[i] - ref[i]| <= tol[i] for every i, reporting the worst offender relative to its
// tolerance (index, values, tolerance) so a failure says where and by how much.
export function expectClose(
  got: ArrayLike<number>,
  ref: ArrayLike<number>,
  tol: number | ArrayLike<number>,
  label: string,
): void {
  expect(got.length, `${label}: length`).toBe(ref.length);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < ref.length; i++) {
    const t = typeof tol === 'number' ? tol : tol[i]!;
    const err = Math.abs(got[i]! - ref[i]!);
    const ratio = Number.isNaN(err) ? Infinity : err / Math.max(t, Number.MIN_VALUE);
    if (ratio > worstRatio) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (worstRatio > 1) {
    const t = typeof tol === 'number' ? tol : tol[worst]!;
    expect.fail(
      `${label}: element ${worst} is ${got[worst]} but the reference is ${ref[worst]} ` +
        `(error ${Math.abs(got[worst]! - ref[worst]!)}, tolerance ${t}, ${worstRatio.toFixed(2)}x over)`,
    );
  }
}

export function f64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a as ArrayLike<number>);
}

// The GEMM paths this machine can run, best first (the portable one always).
export function kernelPaths(): string[] {
  return addon.devices().cpu.kernelPaths;
}

// ---- float64 reference activations

// erf to ~1e-15: Maclaurin series below 3 (cancellation costs < 1e-13 there), continued fraction
// for erfc above.
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 3) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 200; n++) {
      term *= (-a * a) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  let f = a;
  for (let k = 80; k >= 1; k--) f = a + k / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

export type Act = 'none' | 'silu' | 'gelu' | 'gelu_tanh' | 'quick_gelu' | 'tanh';

export function actRef(act: Act, x: number): number {
  switch (act) {
    case 'none':
      return x;
    case 'silu':
      return x / (1 + Math.exp(-x));
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_tanh':
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    case 'quick_gelu':
      return x / (1 + Math.exp(-1.702 * x));
    case 'tanh':
      return Math.tanh(x);
  }
}

// ---- attention

export interface AttentionShape {
  B: number;
  Lq: number;
  Lk: number;
  Hq: number;
  Hkv: number;
  D: number;
  scale: number;
  causal: boolean; // query i of Lq sees keys [0, Lk - Lq + i] (backend.h)
  segments?: number[]; // cu_seqlens (Lq = Lk): query i sees only the keys of its segment
}

// softmax(scale · q k^T) v per head in float64, with a per-element tolerance for an f32 kernel.
// q is [B, Lq, Hq*D]; k and v are rows [kvBegin, kvBegin + Lk) of [B, kvLen, Hkv*D] caches. With
// segments, query i sees only the keys of its segment (AttentionParams::segments).
// Tolerance: a score s_j = scale·q·k_j in f32 is off by at most δ ≈ 2D·u·scale·Σ|q_d k_jd|
// (u = 2^-24); softmax turns score errors δ into relative weight errors of at most 2δ, so the
// output moves by ≤ 4δ·Σ_j p_j|v_j|; the weighted sum over Lk keys and the exp approximation (a
// few ulp) add (Lk + D + 8)·u·Σ_j p_j|v_j|. The tolerance is 2x that bound.
export function attentionReference(
  c: AttentionShape,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  kvLen: number,
  kvBegin: number,
): { out: Float64Array; tol: Float64Array } {
  const { B, Lq, Lk, Hq, Hkv, D, scale } = c;
  const out = new Float64Array(B * Lq * Hq * D);
  const tol = new Float64Array(out.length);
  const group = Hq / Hkv;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < Lq; i++) {
        let first = 0;
        let last = c.causal ? Lk - Lq + i : Lk - 1;
        if (c.segments) {
          const seg = c.segments.findIndex((o, s) => o <= i && i < c.segments![s + 1]!);
          first = c.segments[seg]!;
          last = Math.min(last, c.segments[seg + 1]! - 1);
        }
        const qOff = (b * Lq + i) * Hq * D + h * D;
        const s: number[] = [];
        let delta = 0;
        for (let j = first; j <= last; j++) {
          const kOff = (b * kvLen + kvBegin + j) * Hkv * D + hk * D;
          let dot = 0;
          let abs = 0;
          for (let d = 0; d < D; d++) {
            dot += q[qOff + d]! * k[kOff + d]!;
            abs += Math.abs(q[qOff + d]! * k[kOff + d]!);
          }
          s.push(dot * scale);
          delta = Math.max(delta, 2 * D * EPS32 * Math.abs(scale) * abs);
        }
        const max = Math.max(...s);
        const p = s.map((x) => Math.exp(x - max));
        const total = p.reduce((a, x) => a + x, 0);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          let absAcc = 0;
          for (let j = first; j <= last; j++) {
            const vv = v[(b * kvLen + kvBegin + j) * Hkv * D + hk * D + d]!;
            acc += (p[j - first]! / total) * vv;
            absAcc += (p[j - first]! / total) * Math.abs(vv);
          }
          out[qOff + d] = acc;
          tol[qOff + d] = 2 * (4 * delta + (Lk + D + 8) * EPS32) * absAcc + 1e-30;
        }
      }
    }
  return { out, tol };
}
