// A temporary copy of the tiny fixture's JSON files (no weights: for tests over the native test
// double), with config.json or generation_config.json edited.
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { fixtureModel } from './fixtures.js';

type Json = Record<string, unknown>;

const made: string[] = [];

export function jsonCheckpoint(edits: { config?: (config: Json) => void; generationConfig?: ((gen: Json) => void) | null } = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vargpt-json-'));
  made.push(dir);
  for (const f of readdirSync(fixtureModel)) if (f.endsWith('.json')) copyFileSync(path.join(fixtureModel, f), path.join(dir, f));
  const edit = (name: string, fn: (value: Json) => void) => {
    const file = path.join(dir, name);
    const value = JSON.parse(readFileSync(file, 'utf8')) as Json;
    fn(value);
    writeFileSync(file, JSON.stringify(value));
  };
  if (edits.config) edit('config.json', edits.config);
  if (edits.generationConfig === null) rmSync(path.join(dir, 'generation_config.json'));
  else if (edits.generationConfig) edit('generation_config.json', edits.generationConfig);
  return dir;
}

export function removeJsonCheckpoints(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

// A temporary copy of a single-file checkpoint (`src`) keeping the tensors `keep` accepts (bytes
// copied as they are, or as `rewrite` returns them), with config.json edited: a checkpoint without
// one of its parts, or with one tensor changed.
export function filteredCheckpoint(
  src: string,
  keep: (name: string) => boolean,
  config?: (config: Json) => void,
  rewrite?: (name: string, data: Buffer) => Buffer,
): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vargpt-filtered-'));
  made.push(dir);
  for (const f of readdirSync(src)) if (f.endsWith('.json')) copyFileSync(path.join(src, f), path.join(dir, f));
  if (config) {
    const file = path.join(dir, 'config.json');
    const value = JSON.parse(readFileSync(file, 'utf8')) as Json;
    config(value);
    writeFileSync(file, JSON.stringify(value));
  }
  const bytes = readFileSync(path.join(src, 'model.safetensors'));
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const body = 8 + headerLength;
  const outHeader: Record<string, unknown> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      outHeader[name] = info;
      continue;
    }
    if (!keep(name)) continue;
    const stored = bytes.subarray(body + info.data_offsets[0], body + info.data_offsets[1]);
    const data = rewrite ? rewrite(name, stored) : stored;
    if (data.length !== stored.length) throw new Error(`rewrite of ${name} changed its size`);
    outHeader[name] = { dtype: info.dtype, shape: info.shape, data_offsets: [offset, offset + data.length] };
    chunks.push(data);
    offset += data.length;
  }
  let json = JSON.stringify(outHeader);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([length, Buffer.from(json), ...chunks]));
  return dir;
}
