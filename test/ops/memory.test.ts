// Data movement (copy between strided views, fill, cast with round-to-nearest-even) and the
// runOp entry point's handling of bad calls: every one must reject with a message that names
// the op, and the process must stay alive.
import { describe, expect, it } from 'vitest';

import { bf16ToF32, f16ToF32, f32ToBf16 } from '../../lib/tensor.js';
import { Rng, addon, asF32, f32Tensor, f32ToF16, runOp } from '../helpers/ops-reference.js';

describe('copy, fill, cast', () => {
  it('copies a strided slice of the source into a contiguous tensor', async () => {
    const rng = new Rng(1);
    const x = rng.f32(4 * 6 * 5);
    const [y] = await runOp('copy', [f32Tensor([4, 6, 5], x)], { slice: [1, 2, 5] });
    expect(y!.shape).toEqual([4, 3, 5]);
    const got = asF32(y!);
    for (let a = 0; a < 4; a++)
      for (let b = 0; b < 3; b++)
        for (let c = 0; c < 5; c++) expect(got[(a * 3 + b) * 5 + c]).toBe(x[(a * 6 + b + 2) * 5 + c]);
  });

  it('copies into a strided slice of the destination (last axis sliced: non-unit row spacing)', async () => {
    const rng = new Rng(2);
    const x = rng.f32(3 * 4);
    const [y] = await runOp('copy', [f32Tensor([3, 4], x)], { outShape: [3, 9], outSlice: [1, 3, 7] });
    const got = asF32(y!);
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 9; c++) expect(got[r * 9 + c]).toBe(c >= 3 && c < 7 ? x[r * 4 + c - 3] : 0);
  });

  it('copies between two non-contiguous views (column slice to column slice)', async () => {
    const rng = new Rng(3);
    const x = rng.f32(5 * 8);
    const [y] = await runOp('copy', [f32Tensor([5, 8], x)], { slice: [1, 1, 4], outShape: [5, 6], outSlice: [1, 2, 5] });
    const got = asF32(y!);
    for (let r = 0; r < 5; r++)
      for (let c = 0; c < 6; c++) expect(got[r * 6 + c]).toBe(c >= 2 && c < 5 ? x[r * 8 + c - 1] : 0);
  });

  it('fill writes the value everywhere', async () => {
    const [y] = await runOp('fill', [], { shape: [3, 7], value: -2.5 });
    expect(Array.from(asF32(y!))).toEqual(new Array(21).fill(-2.5));
  });

  it('casts f32 to bf16 and f16 with round-to-nearest-even, and back exactly', async () => {
    const rng = new Rng(4);
    const values = rng.f32(4096, -70000, 70000);
    // Include exact halfway cases for both formats.
    values[0] = bf16ToF32(0x3f80) + 2 ** -8; // halfway between two bf16 values above 1: rounds to even
    values[1] = 1 + 2 ** -11; // halfway for f16: rounds to even (1.0)
    values[2] = 65520; // rounds to f16 infinity
    for (const dtype of ['bf16', 'f16'] as const) {
      const [y] = await runOp('cast', [f32Tensor([4096], values)], { dtype });
      expect(y!.dtype).toBe(dtype);
      const bits = new Uint16Array(y!.data);
      for (let i = 0; i < values.length; i++) {
        const want = dtype === 'bf16' ? f32ToBf16(values[i]!) : f32ToF16(values[i]!);
        expect(bits[i], `${dtype} element ${i} (${values[i]})`).toBe(want);
      }
      const [back] = await runOp('cast', [y!], { dtype: 'f32' });
      const widened = asF32(back!);
      for (let i = 0; i < values.length; i++) expect(widened[i]).toBe(dtype === 'bf16' ? bf16ToF32(bits[i]!) : f16ToF32(bits[i]!));
    }
  });
});

describe('runOp: bad calls reject with a clear message and the process lives', () => {
  it('unknown op, device and attribute', async () => {
    await expect(runOp('matmul', [])).rejects.toThrow(/runOp: unknown op "matmul" \(known: .*linear/);
    await expect(addon.runOp('tpu', 'fill', [], { shape: [1], value: 0 })).rejects.toThrow(/unknown device "tpu"/);
    await expect(runOp('fill', [], { shape: [2], value: 1, colour: 'red' })).rejects.toThrow(/fill: unknown attribute "colour"/);
  });

  it('wrong input counts, malformed tensors and attribute types', async () => {
    await expect(runOp('glu', [f32Tensor([2], new Float32Array([1, 2]))], { act: 'silu' })).rejects.toThrow(/glu: expected 2 inputs, got 1/);
    await expect(runOp('activation', [{ dtype: 'f64' as never, shape: [1], data: new Float64Array(1) }], { act: 'silu' })).rejects.toThrow(
      /unknown dtype "f64"/,
    );
    await expect(runOp('activation', [{ dtype: 'f32', shape: [-1], data: new Float32Array(1) }], { act: 'silu' })).rejects.toThrow(
      /not a non-negative integer/,
    );
    await expect(runOp('rms_norm', [f32Tensor([1, 2], new Float32Array([1, 2])), f32Tensor([2], new Float32Array([1, 1]))], { eps: 'small' })).rejects.toThrow(
      /rms_norm: attribute eps must be a number/,
    );
    await expect(runOp('randn', [], { shape: [2.5], seed: 1 })).rejects.toThrow(/randn: attribute shape holds 2.5, not an integer/);
  });

  it('a misaligned view of a JS buffer', async () => {
    const bytes = new Uint8Array(17);
    const view = new Float32Array(bytes.buffer, 0, 4);
    const misaligned = { dtype: 'f32' as const, shape: [4], data: new Uint8Array(bytes.buffer, 1, 16) };
    expect(view.length).toBe(4);
    await expect(runOp('activation', [misaligned], { act: 'silu' })).rejects.toThrow(/not aligned for f32/);
  });

  it('still runs ops after all the failures above', async () => {
    const [y] = await runOp('fill', [], { shape: [2], value: 3 });
    expect(Array.from(asF32(y!))).toEqual([3, 3]);
  });
});
