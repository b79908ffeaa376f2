// Streams synthesized tensors into safetensors files chunk by chunk, so a checkpoint of any size
// is written with a few megabytes of memory. Layout as Python's safetensors writes it: an 8-byte
// little-endian header length, the JSON header padded with spaces to a multiple of 8, tensors
// sorted by (element size descending, name), "__metadata__": {"format": "pt"}.
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

import { abortErrorFrom } from '../errors.js';
import { TensorRng } from './rng.js';
import { elementCount } from './tensors.js';
import type { SynthDType, TensorSpec } from './tensors.js';

const ST_DTYPE: Readonly<Record<SynthDType | 'i64', string>> = { f32: 'F32', bf16: 'BF16', f16: 'F16', i64: 'I64' };
const ELEMENT_BYTES: Readonly<Record<SynthDType | 'i64', number>> = { f32: 4, bf16: 2, f16: 2, i64: 8 };
// Elements per generated chunk: 1 MiB of float32, about 3 ms of work between yields.
const CHUNK = 1 << 18;

export function storedDType(spec: TensorSpec, dtype: SynthDType): SynthDType | 'i64' {
  return spec.type === 'i64' ? 'i64' : dtype;
}

export function tensorBytes(spec: TensorSpec, dtype: SynthDType): number {
  return elementCount(spec) * ELEMENT_BYTES[storedDType(spec, dtype)];
}

// Round-to-nearest-even casts of a float32 chunk, as torch's .to(bfloat16 / float16).
function toBf16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i] as number;
    dst[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
}

function toF16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i] as number;
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    let mant = b & 0x7fffff;
    if (exp === 0xff) {
      dst[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      dst[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        dst[i] = sign;
        continue;
      }
      // Subnormal half: shift the implicit-one mantissa, round to nearest even.
      mant |= 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rest = mant & ((1 << shift) - 1);
      let v = mant >>> shift;
      if (rest > half || (rest === half && (v & 1))) v++;
      dst[i] = sign | v;
      continue;
    }
    let v = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (v & 1))) v++;
    dst[i] = sign | v;
  }
}

// Fills `out` with elements [start, start + out.length) of the tensor.
function fillChunk(spec: TensorSpec, rng: TensorRng, out: Float32Array, start: number, lvl: Int32Array | null): void {
  const init = spec.init;
  switch (init.kind) {
    case 'normal':
      rng.fillNormal(out, init.mean ?? 0, init.std);
      return;
    case 'const':
      out.fill(init.value);
      return;
    case 'blockCausal': {
      // [1, 1, L, L]: 0 where the query's scale >= the key's scale, else -inf.
      const levels = lvl as Int32Array;
      const L = levels.length;
      for (let i = 0; i < out.length; i++) {
        const flat = start + i;
        out[i] = (levels[Math.floor(flat / L)] as number) >= (levels[flat % L] as number) ? 0 : -Infinity;
      }
      return;
    }
    case 'lvl':
    case 'bitMask':
      throw new Error(`${spec.name} is written as int64`);
  }
}

export function levelOfToken(patchNums: readonly number[]): Int32Array {
  const L = patchNums.reduce((a, pn) => a + pn * pn, 0);
  const out = new Int32Array(L);
  let t = 0;
  patchNums.forEach((pn, si) => {
    for (let j = 0; j < pn * pn; j++) out[t++] = si;
  });
  return out;
}

// The values of an int64 buffer (all small: one per token or per bit).
function intValues(spec: TensorSpec, lvl: Int32Array): BigInt64Array {
  const n = elementCount(spec);
  switch (spec.init.kind) {
    case 'lvl':
      if (n !== lvl.length) throw new Error(`${spec.name}: ${n} elements but patch_nums give ${lvl.length} tokens`);
      return BigInt64Array.from(lvl, (v) => BigInt(v));
    case 'bitMask':
      return BigInt64Array.from({ length: n }, (_, i) => 1n << BigInt(n - 1 - i));
    default:
      throw new Error(`${spec.name}: no int64 values for init "${spec.init.kind}"`);
  }
}

export interface WriteContext {
  dtype: SynthDType;
  seed: number;
  // VAR's scale sizes, for lvl_1L and attn_bias_for_masking (VARGPT v1 only).
  patchNums?: readonly number[];
  signal?: AbortSignal;
  // Called after each chunk with the number of tensor bytes it added.
  onBytes?: (bytes: number) => void;
}

function headerBytes(specs: readonly TensorSpec[], dtype: SynthDType): { header: Buffer; ordered: TensorSpec[] } {
  const ordered = [...specs].sort((a, b) => {
    const sizeOrder = ELEMENT_BYTES[storedDType(b, dtype)] - ELEMENT_BYTES[storedDType(a, dtype)];
    return sizeOrder !== 0 ? sizeOrder : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const spec of ordered) {
    const bytes = tensorBytes(spec, dtype);
    header[spec.name] = { dtype: ST_DTYPE[storedDType(spec, dtype)], shape: spec.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return { header: out, ordered };
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done);
    done += bytesWritten;
  }
}

export async function writeSafetensors(file: string, specs: readonly TensorSpec[], ctx: WriteContext): Promise<void> {
  if (endianness() !== 'LE') throw new Error('synthesize: safetensors are little-endian; this machine is big-endian');
  const { header, ordered } = headerBytes(specs, ctx.dtype);
  const fh = await open(file, 'wx');
  try {
    await writeAll(fh, header);
    const f32 = new Float32Array(CHUNK);
    const u16 = new Uint16Array(CHUNK);
    const lvl = levelOfToken(ctx.patchNums ?? []);
    let sinceYield = 0;
    for (const spec of ordered) {
      const n = elementCount(spec);
      if (spec.type === 'i64') {
        await writeAll(fh, new Uint8Array(intValues(spec, lvl).buffer));
        ctx.onBytes?.(n * 8);
        continue;
      }
      const rng = new TensorRng(ctx.seed, spec.name);
      for (let start = 0; start < n; start += CHUNK) {
        if (ctx.signal?.aborted) throw abortErrorFrom(ctx.signal, 'synthesize');
        const len = Math.min(CHUNK, n - start);
        const values = f32.subarray(0, len);
        fillChunk(spec, rng, values, start, lvl);
        let bytes: Uint8Array;
        if (ctx.dtype === 'f32') {
          bytes = new Uint8Array(values.buffer, 0, len * 4);
        } else {
          const half = u16.subarray(0, len);
          if (ctx.dtype === 'bf16') toBf16(values, half);
          else toF16(values, half);
          bytes = new Uint8Array(half.buffer, 0, len * 2);
        }
        await writeAll(fh, bytes);
        ctx.onBytes?.(bytes.length);
        sinceYield += bytes.length;
        // Writes to the page cache rarely yield; let other work on the event loop run now and then.
        if (sinceYield >= 4 << 20) {
          sinceYield = 0;
          await yieldToLoop();
        }
      }
    }
  } finally {
    await fh.close();
  }
}

export interface Shard {
  file: string;
  specs: TensorSpec[];
  bytes: number;
}

// Greedy split in layout order, as transformers' save_pretrained: a new shard starts when the
// next tensor would push the current one past maxBytes.
export function planShards(specs: readonly TensorSpec[], dtype: SynthDType, maxBytes: number): Shard[] {
  const total = specs.reduce((n, s) => n + tensorBytes(s, dtype), 0);
  if (total <= maxBytes) return [{ file: 'model.safetensors', specs: [...specs], bytes: total }];
  const groups: Array<{ specs: TensorSpec[]; bytes: number }> = [];
  let current: { specs: TensorSpec[]; bytes: number } = { specs: [], bytes: 0 };
  for (const spec of specs) {
    const bytes = tensorBytes(spec, dtype);
    if (current.specs.length > 0 && current.bytes + bytes > maxBytes) {
      groups.push(current);
      current = { specs: [], bytes: 0 };
    }
    current.specs.push(spec);
    current.bytes += bytes;
  }
  groups.push(current);
  const count = String(groups.length).padStart(5, '0');
  return groups.map((g, i) => ({ file: `model-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`, ...g }));
}
