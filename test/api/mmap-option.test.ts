// loadModel(dir, { mmap: false }): the weights the CPU reads in place from the mapped checkpoint
// (stored linear layers, embeddings, f32 norms and convolutions, a `vargpt quantize` checkpoint's
// int8 tensors) are copied into the process's memory on load instead. Nothing is computed
// differently, so every result must equal the mapped model's bit for bit: the traced logits of a
// few decode steps, the tokens, and a seeded drawing (which reads the image generator's and the
// VQ-VAE's weights). Synthesized checkpoints: no fixture needed.
import { readFileSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InputError, loadModel, synthesize } from '../../lib/index.js';
import type { LoadModelOptions } from '../../lib/index.js';
import { quantizeCheckpoint } from '../../lib/quantize.js';

let work: string;
const dirs: Record<string, string> = {};

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'vargpt-mmap-'));
  dirs['f32'] = path.join(work, 'f32');
  dirs['bf16'] = path.join(work, 'bf16');
  dirs['int8-file'] = path.join(work, 'int8-file');
  await synthesize({ preset: 'tiny', out: dirs['f32'], seed: 5 });
  await synthesize({ preset: 'tiny', out: dirs['bf16'], seed: 5, dtype: 'bf16' });
  await quantizeCheckpoint({ model: dirs['f32'], out: dirs['int8-file'], weights: 'int8' });
}, 120_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

// Resident kB of this process's mappings of files under `dir` (Linux; null elsewhere).
function residentFileKb(dir: string): number | null {
  if (process.platform !== 'linux') return null;
  let total = 0, inside = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) inside = header[1]!.startsWith(dir + path.sep);
    else if (inside && line.startsWith('Rss:')) total += Number(line.split(/\s+/)[1]);
  }
  return total;
}

async function run(dir: string, options: LoadModelOptions) {
  const model = await loadModel(dir, { device: 'cpu', ...options });
  try {
    const reply = await model.chat([{ role: 'user', content: 'Describe a small red square.' }], { maxNewTokens: 5, trace: true });
    const logits = reply.trace?.['stepLogits'] ?? reply.trace?.['prefillLogits'];
    if (!logits) throw new Error('no logits traced');
    const image = await model.generateImage('a blue circle', { seed: 11 });
    const fileKb = residentFileKb(dir);
    return { fileKb, weights: model.info.llm.weights, logits: Buffer.from(logits.data.buffer, logits.data.byteOffset, logits.data.byteLength), tokens: Array.from(reply.tokens), pixels: Buffer.from(image.image.data) };
  } finally {
    await model.dispose();
  }
}

describe.each([
  ['an f32 checkpoint', 'f32', 'auto'],
  ['a bf16 checkpoint', 'bf16', 'auto'],
  ['int8 quantized on load', 'f32', 'int8'],
  ['a vargpt quantize int8 checkpoint', 'int8-file', 'auto'],
] as const)('mmap: false with %s', (_title, source, weights) => {
  it('computes exactly what the mapped model computes', async () => {
    const mapped = await run(dirs[source]!, { weights });
    // A copy of the folder of its own: the mapped model's file mappings may outlive its dispose()
    // until the next garbage collection, and must not count as the copied model's.
    const own = path.join(work, `${source}-${weights}-copied`);
    await cp(dirs[source]!, own, { recursive: true });
    const copied = await run(own, { weights, mmap: false });
    expect(copied.weights).toBe(mapped.weights);
    expect(mapped.logits.length).toBeGreaterThan(0);
    expect(copied.logits.equals(mapped.logits)).toBe(true);
    expect(copied.tokens).toEqual(mapped.tokens);
    expect(copied.pixels.equals(mapped.pixels)).toBe(true);
    if (mapped.fileKb !== null && copied.fileKb !== null) {
      // The mapped model computes from the file's pages; the copied one let go of them.
      expect(mapped.fileKb, 'resident kB of the mapped checkpoint files').toBeGreaterThan(0);
      expect(copied.fileKb, `resident kB of the files with mmap: false (mapped: ${mapped.fileKb})`).toBeLessThan(mapped.fileKb / 4);
    }
  }, 120_000);
});

it('rejects an mmap option that is not a boolean', async () => {
  await expect(loadModel(dirs['f32']!, { device: 'cpu', mmap: 'no' as unknown as boolean })).rejects.toThrow(InputError);
  await expect(loadModel(dirs['f32']!, { device: 'cpu', mmap: 'no' as unknown as boolean })).rejects.toThrow(/mmap must be true or false/);
});
