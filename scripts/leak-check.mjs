#!/usr/bin/env node
// Resident-memory check for long-running hosts, run in a fresh process with --expose-gc so JS
// garbage is collected before each reading:
//   node --expose-gc scripts/leak-check.mjs <model-dir> [loads=200] [aborts=100]
// Loads and disposes the model `loads` times, then aborts `aborts` image generations mid-run on
// one model, and prints one JSON line with the resident-memory growth of each phase (after a
// warm-up that lets the allocator and V8 settle).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { loadModel, isAbortError } = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
const [dir, loadsArg = '200', abortsArg = '100'] = process.argv.slice(2);
if (!dir || typeof globalThis.gc !== 'function') {
  console.error('usage: node --expose-gc scripts/leak-check.mjs <model-dir> [loads] [aborts]');
  process.exit(2);
}
const loads = Number(loadsArg);
const aborts = Number(abortsArg);

async function settledRss() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().rss;
}

async function loadCycle() {
  const model = await loadModel(dir, { device: 'cpu' });
  await model.dispose();
}

// V8 grows its heap to a plateau over the first loads (tokenizer tables); measure after it.
const warmLoads = 20;
for (let i = 0; i < warmLoads; i++) await loadCycle();
const loadStart = await settledRss();
for (let i = 0; i < loads; i++) await loadCycle();
const loadGrowth = (await settledRss()) - loadStart;

const model = await loadModel(dir, { device: 'cpu' });
let aborted = 0;
let completed = 0;
async function abortedGeneration(seed) {
  const controller = new AbortController();
  try {
    await model.generateImage('a butterfly on a flower', {
      seed,
      signal: controller.signal,
      onImageProgress: (p) => {
        if (p.scale === 2) controller.abort();
      },
    });
    // Progress events arrive asynchronously: a very small model can finish before the abort lands.
    completed++;
  } catch (error) {
    if (!isAbortError(error)) throw error;
    aborted++;
  }
}
// Warm-up: per-thread scratch and allocator arenas grow to the largest shapes the aborted runs
// reach (abort points vary with timing), then stay; growth after that is what leaks.
for (let i = 0; i < 40; i++) await abortedGeneration(i);
aborted = 0;
completed = 0;
const abortStart = await settledRss();
for (let i = 0; i < aborts; i++) await abortedGeneration(1000 + i);
const abortGrowth = (await settledRss()) - abortStart;
const after = await model.generateImage('a butterfly on a flower', { seed: 7 });
await model.dispose();

console.log(
  JSON.stringify({
    loads,
    loadGrowthBytes: loadGrowth,
    aborts,
    aborted,
    completed,
    abortGrowthBytes: abortGrowth,
    usableAfter: after.image.width === 256,
  }),
);
