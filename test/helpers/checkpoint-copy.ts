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
