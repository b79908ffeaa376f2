// Paths of the shared reference fixtures (never copied into the repo) and a minimal safetensors
// reader for their expected tensors, independent of the native addon so pure-TS tests run
// without a build.
import { readFileSync } from 'node:fs';

import { repoRoot, tinyBf16Dir, tinyDir, tinyExpectedDir, tinyModelDir } from './paths.js';

export { repoRoot };
export const fixtureRoot = tinyDir;
export const fixtureModel = tinyModelDir;
export const fixtureModelBf16 = tinyBf16Dir;
export const fixtureExpected = tinyExpectedDir;

export interface StTensor {
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

export function readSafetensorsHeader(file: string): Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  delete header['__metadata__'];
  return header as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
}

export function readSafetensors(file: string): Map<string, StTensor> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, StTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = info.data_offsets;
    out.set(name, { dtype: info.dtype, shape: info.shape, bytes: buf.subarray(8 + n + a, 8 + n + b) });
  }
  return out;
}

function aligned(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

export function asFloat32(t: StTensor): Float32Array {
  if (t.dtype !== 'F32') throw new Error(`expected F32, got ${t.dtype}`);
  return new Float32Array(aligned(t.bytes));
}

export function asNumbers(t: StTensor): number[] {
  if (t.dtype === 'I64') return Array.from(new BigInt64Array(aligned(t.bytes)), Number);
  if (t.dtype === 'I32') return Array.from(new Int32Array(aligned(t.bytes)));
  throw new Error(`expected an integer tensor, got ${t.dtype}`);
}

export function readJson<T = Record<string, unknown>>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}
