import { describe, expect, it } from 'vitest';

import { Tensor, bf16ToF32, f16ToF32, f32ToBf16 } from '../../lib/index.js';

// Round a float32 value to 8 significant bits, ties to even, with float64 arithmetic: an
// implementation independent of the bit tricks under test.
function bf16Reference(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v;
  const e = Math.floor(Math.log2(Math.abs(v)));
  const ulp = 2 ** (e - 7);
  const q = v / ulp;
  const floor = Math.floor(q);
  const diff = q - floor;
  const r = diff > 0.5 || (diff === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
  return r * ulp;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('dtype conversions', () => {
  it('f32 -> bf16 rounds to nearest even like the float64 reference, including exact ties', () => {
    const rand = lcg(7);
    const values: number[] = [];
    for (let i = 0; i < 20000; i++) values.push(Math.fround((rand() - 0.5) * 2 ** Math.floor(rand() * 40 - 20)));
    // Exact ties: 8 significant bits plus a trailing half (odd and even lower neighbours).
    for (let m = 128; m < 256; m++) values.push(Math.fround((m + 0.5) * 2 ** -7), Math.fround(-(m + 0.5) * 2 ** 3));
    for (const v of values) expect(bf16ToF32(f32ToBf16(v))).toBe(bf16Reference(v));
  });

  it('f16 decoding covers normals, subnormals, infinities and NaN', () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(f16ToF32(0x7e00))).toBe(true);
    // Monotonic over all positive finite patterns: each is larger than the one before.
    let previous = -1;
    for (let bits = 0; bits < 0x7c00; bits++) {
      const v = f16ToF32(bits);
      expect(v > previous).toBe(true);
      previous = v;
    }
  });
});

describe('Tensor', () => {
  it('views typed data without copying and widens bf16 exactly', () => {
    const bits = new Uint16Array([f32ToBf16(1.5), f32ToBf16(-3.25), f32ToBf16(0.1), f32ToBf16(1e30)]);
    const t = new Tensor('bf16', [2, 2], bits);
    expect(t.data).toBe(bits);
    expect([...t.toFloat32()]).toEqual([1.5, -3.25, bf16Reference(Math.fround(0.1)), bf16Reference(Math.fround(1e30))]);
    expect(t.reshape([4]).data).toBe(bits);
    expect(t.reshape([-1, 1]).shape).toEqual([4, 1]);
  });

  it('rejects shapes that do not match the data', () => {
    expect(() => new Tensor('f32', [3, 3], new Float32Array(8))).toThrow(/needs 9 values, got 8/);
    expect(() => Tensor.zeros('f32', [2, -1])).toThrow(/invalid dimension -1/);
    expect(() => Tensor.fromBuffer('f32', [4], new ArrayBuffer(8))).toThrow(/does not fit/);
    expect(() => Tensor.fromBuffer('f32', [1], new ArrayBuffer(8), 2)).toThrow(/not aligned/);
    expect(() => Tensor.zeros('f32', [6]).reshape([4, -1])).toThrow(/does not match/);
  });
});
