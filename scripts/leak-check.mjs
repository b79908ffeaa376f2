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
const { native } = await import(pathToFileURL(path.join(root, 'dist', 'native.js')).href);
const [dir, loadsArg = '200', abortsArg = '100'] = process.argv.slice(2);
if (!dir || typeof globalThis.gc !== 'function') {
  console.error('usage: node --expose-gc scripts/leak-check.mjs <model-dir> [loads] [aborts]');
  process.exit(2);
}
const loads = Number(loadsArg);
const aborts = Number(abortsArg);

// One reading after JS garbage is collected and glibc has returned its free pages to the kernel
// (malloc_trim): without the trim, resident memory also counts freed blocks that per-thread arenas
// happen to cache at that moment, which swings by tens of MB with thread timing and hides or fakes
// leaks. `heap` is the C heap's live bytes, the most direct leak figure; `rss` is what the OS sees.
async function settledReading() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const stats = native().allocatorStats(true);
  return { rss: process.memoryUsage().rss, heap: stats.available ? stats.inUseBytes : Number.NaN };
}

async function loadCycle() {
  const model = await loadModel(dir, { device: 'cpu' });
  await model.dispose();
}

// Runs `count` cycles with a reading after each tenth of them. Growth is the median of the last
// three readings minus the median of the first three: a leak grows steadily and shows in full,
// while one reading caught with an allocator arena briefly mapped (a few MB either way) does not
// decide the result.
async function measuredPhase(count, cycle) {
  const readings = [await settledReading()];
  const stride = Math.max(1, Math.floor(count / 10));
  for (let i = 0; i < count; i++) {
    await cycle(i);
    if ((i + 1) % stride === 0 || i + 1 === count) readings.push(await settledReading());
  }
  const median3 = (xs) => [...xs].sort((a, b) => a - b)[1];
  const growth = (key) =>
    median3(readings.slice(-3).map((r) => r[key])) - median3(readings.slice(0, 3).map((r) => r[key]));
  const rss = readings.map((r) => r.rss);
  return { rss: growth('rss'), heap: growth('heap'), rssSpan: Math.max(...rss) - Math.min(...rss) };
}

// V8 grows its heap to a plateau over the first loads (tokenizer tables); measure after it. The
// first forced full GC drops about 14 MB of V8 heap that the next loads rebuild once and keep, so
// the warm-up starts with a settled reading, and its loads then absorb that rebuild.
// Resident memory also climbs by a few MB over the first ~100 loads outside both heaps (glibc
// arena pages that stay mapped once touched) and then stays flat, at a pace that varies between
// machines: the warm-up runs at least 100 loads, then batches of 20 until one batch moves resident
// memory by under 0.5 MB (300 loads at most). A real leak never settles, so it reaches the cap and
// then shows in full in the measured loads.
const MB = 1024 * 1024;
let warmLoads = 0;
let lastRss = (await settledReading()).rss;
for (;;) {
  for (let i = 0; i < 20; i++) await loadCycle();
  warmLoads += 20;
  const rss = (await settledReading()).rss;
  const settled = Math.abs(rss - lastRss) < 0.5 * MB;
  lastRss = rss;
  if ((warmLoads >= 100 && settled) || warmLoads >= 300) break;
}
const loadPhase = await measuredPhase(loads, () => loadCycle());

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
        if (p.step === 2) controller.abort();
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
// reach (abort points vary with timing, so on a busy machine later runs can reach further), then
// stay; growth after that is what leaks. As for the loads: at least 40 runs, then batches of 20
// until one moves resident memory by under 0.5 MB (200 at most), so a real leak, which never
// settles, still shows in full in the measured runs.
let warmAborts = 0;
lastRss = (await settledReading()).rss;
for (;;) {
  for (let i = 0; i < 20; i++) await abortedGeneration(warmAborts + i);
  warmAborts += 20;
  const rss = (await settledReading()).rss;
  const settled = Math.abs(rss - lastRss) < 0.5 * MB;
  lastRss = rss;
  if ((warmAborts >= 40 && settled) || warmAborts >= 200) break;
}
aborted = 0;
completed = 0;
const abortPhase = await measuredPhase(aborts, (i) => abortedGeneration(1000 + i));
const after = await model.generateImage('a butterfly on a flower', { seed: 7 });
await model.dispose();

console.log(
  JSON.stringify({
    loads,
    warmLoads,
    loadGrowthBytes: loadPhase.rss,
    loadHeapGrowthBytes: loadPhase.heap,
    loadRssSpanBytes: loadPhase.rssSpan,
    aborts,
    warmAborts,
    aborted,
    completed,
    abortGrowthBytes: abortPhase.rss,
    abortHeapGrowthBytes: abortPhase.heap,
    abortRssSpanBytes: abortPhase.rssSpan,
    usableAfter: after.image.width === 256,
  }),
);
