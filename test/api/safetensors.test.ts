import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { Checkpoint, f32ToBf16 } from '../../lib/index.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { fixturesMissing, tinyBf16Dir, tinyModelDir } from '../helpers/paths.js';
import { safetensorsBytes, validF32File } from '../helpers/safetensors-writer.js';

// The header as the file states it, parsed independently of the native reader.
function readHeader(file: string): Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> {
  const bytes = readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, never>;
  delete header['__metadata__'];
  return header;
}

const dtypeNames: Record<string, string> = { F32: 'f32', BF16: 'bf16', F16: 'f16', I64: 'i64', I32: 'i32', U8: 'u8' };

// Only this block reads the fixtures; the malformed-file and lazy-loading tests write their own files.
describe.skipIf(fixturesMissing !== null)(fixtureTitle('safetensors: the tiny fixture'), () => {
  it('lists every tensor of the f32 file with the name, shape and dtype its header states', async () => {
    const file = path.join(tinyModelDir, 'model.safetensors');
    const header = readHeader(file);
    const ckpt = await Checkpoint.open(tinyModelDir);
    expect(ckpt.tensors.length).toBe(Object.keys(header).length);
    expect(ckpt.tensors.length).toBeGreaterThan(100);
    for (const t of ckpt.tensors) {
      const h = header[t.name];
      expect(h, t.name).toBeDefined();
      expect(t.shape).toEqual(h!.shape);
      expect(t.dtype).toBe(dtypeNames[h!.dtype]);
      expect(t.byteLength).toBe(h!.data_offsets[1] - h!.data_offsets[0]);
    }
  });

  it('reads the sharded bf16 variant through its index, and bf16 values are the f32 values rounded to bf16, bit for bit', async () => {
    const index = JSON.parse(readFileSync(path.join(tinyBf16Dir, 'model.safetensors.index.json'), 'utf8')) as {
      weight_map: Record<string, string>;
    };
    const shards = new Set(Object.values(index.weight_map));
    expect(shards.size).toBe(2);
    const headers = new Map([...shards].map((s) => [s, readHeader(path.join(tinyBf16Dir, s))]));
    const bf16 = await Checkpoint.open(tinyBf16Dir);
    const f32 = await Checkpoint.open(path.join(tinyModelDir, 'model.safetensors'));
    expect(bf16.tensors.map((t) => t.name).sort()).toEqual(Object.keys(index.weight_map).sort());
    let compared = 0;
    for (const t of bf16.tensors) {
      const h = headers.get(index.weight_map[t.name]!)![t.name]!;
      expect(t.shape).toEqual(h.shape);
      expect(t.dtype).toBe(dtypeNames[h.dtype]);
      const reference = f32.read(t.name);
      const stored = bf16.read(t.name);
      expect(stored.shape).toEqual(reference.shape);
      if (t.dtype === 'bf16') {
        const expected = (reference.data as Float32Array).map((v) => v); // copy keeps reference intact
        const bits = stored.data as Uint16Array;
        let mismatches = 0;
        for (let i = 0; i < expected.length; i++) if (bits[i] !== f32ToBf16(expected[i]!)) mismatches++;
        expect(mismatches, t.name).toBe(0);
        // And widening is exact: every widened value is the bf16 pattern shifted into f32.
        const widened = stored.toFloat32();
        const widenedBits = new Uint32Array(widened.buffer);
        for (let i = 0; i < bits.length; i += 97) expect(widenedBits[i]).toBe((bits[i]! << 16) >>> 0);
        compared += bits.length;
      } else {
        // Integer buffers (lvl_1L) stay as they were.
        expect(t.dtype).toBe('i64');
        expect([...(stored.data as BigInt64Array)]).toEqual([...(reference.data as BigInt64Array)]);
      }
    }
    expect(compared).toBeGreaterThan(1_000_000);
  });
});

describe('safetensors: malformed files give clear errors and leave the process alive', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vargpt-st-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const f32 = (n: number) => Buffer.from(new Float32Array(Array.from({ length: n }, (_, i) => i * 0.5 - 1)).buffer);
  const ok = { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] };

  const fileCases: Array<[string, Buffer, RegExp]> = [
    ['empty file', Buffer.alloc(0), /shorter than the 8-byte header length/],
    ['five bytes', Buffer.from([1, 2, 3, 4, 5]), /shorter than the 8-byte header length/],
    ['giant header length', safetensorsBytes({ a: ok }, f32(4), 1n << 40n), /header length \d+ exceeds the limit/],
    ['header runs past the end', safetensorsBytes({ a: ok }, Buffer.alloc(0), 5000n), /runs past the end of the file/],
    ['header is not JSON', safetensorsBytes('this is not json', f32(4)), /invalid JSON/],
    ['header is an array', safetensorsBytes([1, 2, 3], f32(4)), /must be a JSON object/],
    ['truncated JSON', safetensorsBytes('{"a": {"dtype": "F32", "shape": [2, 2]', f32(4)), /invalid JSON.*(unterminated|expected)/],
    ['unknown dtype', safetensorsBytes({ a: { ...ok, dtype: 'Q4_K' } }, f32(4)), /tensor "a".*unsupported dtype "Q4_K"/],
    ['dtype not a string', safetensorsBytes({ a: { ...ok, dtype: 7 } }, f32(4)), /tensor "a".*non-string "dtype"/],
    ['missing shape', safetensorsBytes({ a: { dtype: 'F32', data_offsets: [0, 16] } }, f32(4)), /tensor "a".*"shape"/],
    ['negative dimension', safetensorsBytes({ a: { ...ok, shape: [-2, -2] } }, f32(4)), /tensor "a".*non-negative integers/],
    ['fractional dimension', safetensorsBytes({ a: { ...ok, shape: [2.5, 2] } }, f32(4)), /tensor "a".*non-negative integers/],
    ['shape overflow', safetensorsBytes({ a: { ...ok, shape: [1 << 30, 1 << 30, 1 << 30] } }, f32(4)), /tensor "a".*overflows/],
    ['rank above 8', safetensorsBytes({ a: { ...ok, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1, 4] } }, f32(4)), /rank 10 is above the limit/],
    ['one data offset', safetensorsBytes({ a: { ...ok, data_offsets: [0] } }, f32(4)), /tensor "a".*two integers/],
    ['begin after end', safetensorsBytes({ a: { ...ok, data_offsets: [16, 0] } }, f32(4)), /tensor "a".*begin <= end/],
    ['span does not match shape', safetensorsBytes({ a: { ...ok, data_offsets: [0, 12] } }, f32(4)), /tensor "a".*needs 16 bytes but data_offsets span 12/],
    ['span past end of data', safetensorsBytes({ a: { ...ok, data_offsets: [8, 24] } }, f32(4)), /tensor "a".*run past the end of the data/],
    [
      'overlapping spans',
      safetensorsBytes({ a: ok, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, f32(4)),
      /tensors "a" \[0, 16\) and "b" \[8, 16\) overlap/,
    ],
    ['duplicate key', safetensorsBytes(`{"a": ${JSON.stringify(ok)}, "a": ${JSON.stringify(ok)}}`, f32(4)), /duplicate object key/],
    ['metadata not strings', safetensorsBytes({ __metadata__: { format: 3 }, a: ok }, f32(4)), /__metadata__\.format must be a string/],
    ['nesting too deep', safetensorsBytes('['.repeat(500) + ']'.repeat(500), f32(4)), /nesting too deep/],
    ['control character in a name', safetensorsBytes('{"a\u0001": {}}', f32(4)), /control character in string/],
    ['bad unicode escape', safetensorsBytes('{"\\ud800x": {}}', f32(4)), /unpaired surrogate/],
  ];

  for (const [name, bytes, message] of fileCases) {
    it(`rejects: ${name}`, async () => {
      const file = path.join(dir, `${name.replace(/\W+/g, '_')}.safetensors`);
      writeFileSync(file, bytes);
      const error = await Checkpoint.open(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain(file);
    });
  }

  function shardedFolder(name: string, index: string, shards: Record<string, Buffer> = {}): string {
    const folder = path.join(dir, name);
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'model.safetensors.index.json'), index);
    for (const [file, bytes] of Object.entries(shards)) writeFileSync(path.join(folder, file), bytes);
    return folder;
  }
  const shard = validF32File({ w: { shape: [4], values: new Float32Array([1, 2, 3, 4]) } });

  const indexCases: Array<[string, () => string, RegExp]> = [
    ['index is not JSON', () => shardedFolder('bad-json', '{ weight_map: nope }'), /model\.safetensors\.index\.json: invalid JSON/],
    ['index without weight_map', () => shardedFolder('no-map', '{"metadata": {}}'), /missing "weight_map"/],
    ['empty weight_map', () => shardedFolder('empty-map', '{"weight_map": {}}'), /weight_map is empty/],
    ['shard at an absolute path', () => shardedFolder('absolute', '{"weight_map": {"w": "/etc/passwd"}}'), /shard "\/etc\/passwd" is an absolute path/],
    [
      'shard outside the folder',
      () => shardedFolder('dotdot', '{"weight_map": {"w": "../secrets/model.safetensors"}}'),
      /leaves the checkpoint folder \(".."\)/,
    ],
    ['missing shard', () => shardedFolder('missing', '{"weight_map": {"w": "model-00001-of-00002.safetensors"}}'), /shard "model-00001-of-00002\.safetensors" \(holding "w"\) is missing/],
    [
      'tensor missing from its shard',
      () => shardedFolder('absent', '{"weight_map": {"w": "a.safetensors", "v": "a.safetensors"}}', { 'a.safetensors': shard }),
      /puts "v" in a\.safetensors, which has no such tensor/,
    ],
    ['shard name not a string', () => shardedFolder('number', '{"weight_map": {"w": 3}}'), /weight_map\["w"\] must be a file name string/],
    [
      'corrupt shard',
      () => shardedFolder('corrupt', '{"weight_map": {"w": "a.safetensors"}}', { 'a.safetensors': Buffer.from('garbage!') }),
      /a\.safetensors: header length \d+ (exceeds|runs past)/,
    ],
    [
      'folder without weights',
      () => {
        const folder = path.join(dir, 'empty-folder');
        mkdirSync(folder, { recursive: true });
        return folder;
      },
      /no model\.safetensors or model\.safetensors\.index\.json/,
    ],
    ['nonexistent path', () => path.join(dir, 'does-not-exist.safetensors'), /does-not-exist\.safetensors: cannot open/],
  ];

  for (const [name, make, message] of indexCases) {
    it(`rejects: ${name}`, async () => {
      await expect(Checkpoint.open(make())).rejects.toThrow(message);
    });
  }

  it('still loads good checkpoints after all of that', async () => {
    const file = path.join(dir, 'good.safetensors');
    writeFileSync(file, validF32File({ w: { shape: [2, 3], values: new Float32Array([1.5, -2, 3.25, 4, 5, -6]) } }));
    const ckpt = await Checkpoint.open(file);
    expect([...ckpt.read('w').toFloat32()]).toEqual([1.5, -2, 3.25, 4, 5, -6]);
    expect(() => ckpt.read('nope')).toThrow(/no tensor named "nope"/);
  });
});

describe('safetensors: lazy loading', () => {
  it('maps a 4 GiB sparse file without making it resident', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vargpt-sparse-'));
    try {
      const file = path.join(dir, 'big.safetensors');
      const count = 1 << 30; // 2^30 f32 values = 4 GiB
      const header = { big: { dtype: 'F32', shape: [1024, 1024, 1024], data_offsets: [0, count * 4] } };
      const prefix = safetensorsBytes(header);
      // Pad the header with spaces so the data section starts 8-byte aligned, as writers do.
      const headerJson = JSON.stringify(header);
      const padded = headerJson + ' '.repeat((8 - ((8 + headerJson.length) % 8)) % 8);
      const start = safetensorsBytes(padded);
      expect(start.length % 8).toBe(0);
      expect(prefix.length).toBeGreaterThan(8);
      const fd = openSync(file, 'w');
      writeSync(fd, start, 0, start.length, 0);
      ftruncateSync(fd, start.length + count * 4);
      // Two known values: the first element and the last.
      writeSync(fd, Buffer.from(new Float32Array([3.5]).buffer), 0, 4, start.length);
      writeSync(fd, Buffer.from(new Float32Array([-7.25]).buffer), 0, 4, start.length + (count - 1) * 4);
      closeSync(fd);

      const before = process.memoryUsage().rss;
      const ckpt = await Checkpoint.open(file);
      const big = ckpt.read('big');
      expect(big.shape).toEqual([1024, 1024, 1024]);
      const values = big.data as Float32Array;
      expect(values[0]).toBe(3.5);
      expect(values[count - 1]).toBe(-7.25);
      const grown = process.memoryUsage().rss - before;
      expect(grown).toBeLessThan(64 * 1024 * 1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
