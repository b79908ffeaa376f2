// Shared pieces of the model parity tests: locating ../shared/fixtures (never copied into the repo),
// reading expected tensors through the addon's openCheckpoint, building native requests from the
// fixture inputs, and comparisons that report the worst element against the fixture README's
// tolerances (|a - b| <= tol * max|ref|).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { expect } from 'vitest';

import { fixturesDir } from './paths.js';

import {
  native,
  type NativeCheckpoint,
  type NativeGenerateRequest,
  type NativeModel,
  type NativeTensor,
  type NativeVargptV1Info,
} from '../../lib/native.js';

export const addon = native();


export const FIXTURES = fixturesDir;
export const TINY = path.join(FIXTURES, 'vargpt-v1-tiny');
export const TINY_F32 = path.join(TINY, 'model');
export const TINY_BF16 = path.join(TINY, 'model-bf16-sharded');
export const EXPECTED = path.join(TINY, 'expected');

export function expectedJson(name: string): Record<string, any> {
  return JSON.parse(readFileSync(path.join(EXPECTED, name), 'utf8')) as Record<string, any>;
}

export class Expected {
  private constructor(private readonly ckpt: NativeCheckpoint) {}
  static async open(name: string): Promise<Expected> {
    return new Expected(await addon.openCheckpoint(path.join(EXPECTED, name)));
  }
  tensor(name: string): NativeTensor {
    return this.ckpt.read(name);
  }
  shape(name: string): number[] {
    return this.ckpt.read(name).shape;
  }
  // Values as float64 numbers, whatever the stored dtype.
  values(name: string): Float64Array {
    return toF64(this.ckpt.read(name));
  }
  ints(name: string): Int32Array {
    return Int32Array.from(toF64(this.ckpt.read(name)));
  }
  f32(name: string): Float32Array {
    return Float32Array.from(toF64(this.ckpt.read(name)));
  }
}

export function toF64(t: NativeTensor): Float64Array {
  switch (t.dtype) {
    case 'f32':
      return Float64Array.from(new Float32Array(t.data));
    case 'i32':
      return Float64Array.from(new Int32Array(t.data));
    case 'i64':
      return Float64Array.from(new BigInt64Array(t.data), (v) => Number(v));
    case 'u8':
      return Float64Array.from(new Uint8Array(t.data));
    default:
      throw new Error(`toF64: unsupported dtype ${t.dtype}`);
  }
}

// Worst errors seen, printed at the end of each file (the numbers that go in the report).
const observed = new Map<string, { rel: number; tol: number }>();
export function reportObserved(title: string): void {
  const lines = [...observed.entries()].map(([k, v]) => `  ${k.padEnd(34)} ${v.rel.toExponential(2)}  (tol ${v.tol})`);
  if (lines.length) console.log(`${title}: max |a-b| / max|ref|\n${lines.join('\n')}`);
  observed.clear();
}

// |got - ref| <= tol * max|ref| elementwise; reports the worst element on failure.
export function expectClose(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: number): number {
  expect(got.length, `${name}: length`).toBe(ref.length);
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) maxRef = Math.max(maxRef, Math.abs(ref[i]!));
  let worst = 0;
  let at = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i]! - ref[i]!);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  const rel = maxRef > 0 ? worst / maxRef : worst;
  const prev = observed.get(name);
  observed.set(name, { rel: Math.max(rel, prev?.rel ?? 0), tol });
  expect(
    rel <= tol,
    `${name}: max |a-b| = ${worst} at ${at} (got ${got[at]}, ref ${ref[at]}), ${rel.toExponential(3)} of max|ref| ${maxRef} > ${tol}`,
  ).toBe(true);
  return rel;
}

export function expectEqualInts(name: string, got: ArrayLike<number>, ref: ArrayLike<number>): void {
  expect(got.length, `${name}: length`).toBe(ref.length);
  const diffs: string[] = [];
  for (let i = 0; i < ref.length; i++) if (got[i] !== ref[i]) diffs.push(`[${i}] ${got[i]} != ${ref[i]}`);
  expect(diffs, `${name}: ${diffs.length} differ: ${diffs.slice(0, 8).join(', ')}`).toEqual([]);
}

export function traceValues(trace: Record<string, NativeTensor> | undefined, name: string): Float64Array {
  const t = trace?.[name];
  if (!t) throw new Error(`trace has no ${name} (has ${Object.keys(trace ?? {}).join(', ')})`);
  return toF64(t);
}

export function traceShape(trace: Record<string, NativeTensor> | undefined, name: string): number[] {
  const t = trace?.[name];
  if (!t) throw new Error(`trace has no ${name}`);
  return t.shape;
}

// Rows [begin, end) of a row-major tensor with `width` columns.
export function rows(values: Float64Array, width: number, begin: number, end: number): Float64Array {
  return values.subarray(begin * width, end * width);
}

export function baseRequest(inputIds: Int32Array): NativeGenerateRequest {
  return { inputIds, maxNewTokens: 8, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, stopIds: [] };
}

export async function understandingInputs(): Promise<{ inputIds: Int32Array; pixelValues: Float32Array; ex: Expected }> {
  const ex = await Expected.open('understanding.safetensors');
  return { inputIds: ex.ints('input_ids'), pixelValues: ex.f32('pixel_values'), ex };
}

export async function generationReplay(ex: Expected, scales: number) {
  const indices: Int32Array[] = [];
  const noise: Float32Array[] = [];
  for (let si = 0; si < scales; si++) {
    indices.push(ex.ints(`s${si}.sampled_idx`));
    noise.push(ex.f32(`s${si}.noise`));
  }
  return { indices, noise };
}

export async function loadTiny(dir = TINY_F32, device = 'cpu'): Promise<NativeModel> {
  return addon.loadModel(dir, { device });
}

// uint8 reference from a float [-1, 1] image [3, H, W] exactly as upstream: clamp, (x+1)/2, x255,
// truncation; HWC order. (Used only to cross-check the fixture's own image_uint8.)
export function truncToU8(chw: Float64Array, h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w * 3);
  for (let c = 0; c < 3; c++)
    for (let p = 0; p < h * w; p++) {
      const v = Math.fround(Math.min(1, Math.max(-1, chw[c * h * w + p]!)));
      out[p * 3 + c] = Math.trunc(Math.fround(Math.fround(Math.fround(v + 1) * 0.5) * 255));
    }
  return out;
}

// Fixture README: uint8 images within ±1 (truncation boundary) on a few pixels, within 2 everywhere.
export function expectImageClose(name: string, got: Uint8Array, ref: ArrayLike<number>, maxOffByOne = 0.01): void {
  expect(got.length, `${name}: length`).toBe(ref.length);
  let worst = 0;
  let offByOne = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i]! - ref[i]!);
    worst = Math.max(worst, d);
    if (d > 0) offByOne++;
  }
  observed.set(`${name} (max |diff| in 1/255)`, { rel: worst, tol: 2 });
  observed.set(`${name} (fraction != ref)`, { rel: offByOne / ref.length, tol: maxOffByOne });
  expect(worst, `${name}: max |diff| ${worst}`).toBeLessThanOrEqual(2);
  expect(offByOne / ref.length, `${name}: ${offByOne} values differ`).toBeLessThanOrEqual(maxOffByOne);
}

// float32 -> IEEE half bits, round to nearest even (Node 20 has no Float16Array).
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

// info() of a native model the test loaded from a VARGPT v1 checkpoint, narrowed to that family.
export function v1Info(model: NativeModel): NativeVargptV1Info {
  const info = model.info();
  if (info.family !== 'vargpt-v1') throw new Error(`expected a vargpt-v1 model, the runtime loaded "${info.family}"`);
  return info;
}

// The tolerance of a fixture tensor: 4x its recorded float32-vs-float64 spread (max|a32 - a64| /
// max|a64|), never tighter than 1e-5 of max|ref| (what a different summation order alone moves).
export function spreadTolerance(
  tensors: Record<string, { f32_vs_f64?: { rel_err_maxnorm?: number } } | undefined>,
  tensor: string,
  where: string,
): number {
  const spread = tensors[tensor]?.f32_vs_f64?.rel_err_maxnorm;
  if (spread === undefined) throw new Error(`${where}.${tensor}: no float32-vs-float64 spread in the fixture`);
  return Math.max(4 * spread, 1e-5);
}
