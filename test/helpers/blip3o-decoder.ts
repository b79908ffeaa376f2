// The BLIP3-o fixture's diffusion-decoder cases (vae_decode, unet_step, generation's stage 2): the
// recorded tensors, their tolerances (4x each tensor's float32-vs-float64 spread, never tighter
// than 1e-5 of max|ref|) and conversions to the native tensor inputs.
import path from 'node:path';

import { expect } from 'vitest';

import type { NativeTensor, NativeTensorInput } from '../../lib/native.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from './fixtures.js';
import { blip3oExpectedDir, blip3oModelDir } from './paths.js';

export const decoderDir = path.join(blip3oModelDir, 'diffusion-decoder');

interface CaseJson {
  tensors: Record<string, { shape: number[]; f32_vs_f64?: { rel_err_maxnorm?: number; num_pixels_differing?: number } }>;
  [key: string]: unknown;
}

export class FixtureCase {
  readonly meta: CaseJson;
  private readonly tensors: Map<string, StTensor>;
  constructor(readonly name: string) {
    this.meta = readJson<CaseJson>(path.join(blip3oExpectedDir, `${name}.json`));
    this.tensors = readSafetensors(path.join(blip3oExpectedDir, `${name}.safetensors`));
  }
  get(tensor: string): StTensor {
    const t = this.tensors.get(tensor);
    if (!t) throw new Error(`${this.name}: fixture tensor ${tensor} is missing`);
    return t;
  }
  shape(tensor: string): number[] {
    return this.get(tensor).shape;
  }
  f32(tensor: string): Float32Array {
    return asFloat32(this.get(tensor));
  }
  ints(tensor: string): number[] {
    return asNumbers(this.get(tensor));
  }
  u8(tensor: string): Uint8Array {
    const t = this.get(tensor);
    if (t.dtype !== 'U8') throw new Error(`${this.name}.${tensor}: expected U8, got ${t.dtype}`);
    return new Uint8Array(t.bytes);
  }
  input(tensor: string): NativeTensorInput {
    return { dtype: 'f32', shape: this.shape(tensor), data: this.f32(tensor) };
  }
  spread(tensor: string): number {
    const s = this.meta.tensors[tensor]?.f32_vs_f64?.rel_err_maxnorm;
    if (s === undefined) throw new Error(`${this.name}.${tensor}: no float32-vs-float64 spread in the fixture`);
    return s;
  }
  tolerance(tensor: string): number {
    return Math.max(4 * this.spread(tensor), 1e-5);
  }
  // Pixels the reference's own float32 and float64 runs round differently.
  pixelsDiffering(tensor: string): number {
    const n = this.meta.tensors[tensor]?.f32_vs_f64?.num_pixels_differing;
    if (n === undefined) throw new Error(`${this.name}.${tensor}: no pixel count in the fixture`);
    return n;
  }
}

export function f32Of(t: NativeTensor | undefined, name: string): Float32Array {
  if (!t) throw new Error(`${name} is missing`);
  expect(t.dtype, name).toBe('f32');
  return new Float32Array(t.data);
}

// Rows [i * n, (i + 1) * n) of a stacked tensor.
export function part(values: Float32Array, i: number, n: number): Float32Array {
  return values.subarray(i * n, (i + 1) * n);
}

// numpy's round (ties to even) of image01 * 255 in float32, as diffusers' numpy_to_pil.
export function toUint8(image01: Float32Array): Uint8Array {
  const out = new Uint8Array(image01.length);
  for (let i = 0; i < image01.length; i++) {
    const v = Math.fround(image01[i]! * 255);
    const f = Math.floor(v);
    const d = v - f;
    out[i] = d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  }
  return out;
}

// uint8 images: equal except at most `allowed` values off by exactly 1.
export function expectPixels(name: string, got: Uint8Array, ref: Uint8Array, allowed: number): number {
  expect(got.length, `${name}: length`).toBe(ref.length);
  let off = 0;
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i]! - ref[i]!);
    if (d > 0) off++;
    worst = Math.max(worst, d);
  }
  expect(worst, `${name}: largest pixel difference`).toBeLessThanOrEqual(allowed > 0 ? 1 : 0);
  expect(off, `${name}: ${off} pixel values differ by 1, allowed ${allowed}`).toBeLessThanOrEqual(allowed);
  return off;
}
