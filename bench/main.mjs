#!/usr/bin/env node
// npm run bench -- <suite> [options]: runs bench/<suite>.mjs and prints its table.
// Suites: cpu (kernels vs this machine's measured peaks), model (end-to-end timings), batch
// (continuous batching: concurrent streams batched vs one at a time), cuda, and the quantized
// weights' quant (prefill and decode), quant-kernels, quant-accuracy and quant-image (drawing), and
// self-check (self-checked drawing on the demo model: its cost and what it buys).
// A suite is a bench/*.mjs file that exports run(args); the others are shared helpers (common.mjs,
// _*.mjs) or scripts run with node directly (blip3o_full_size.mjs).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const suites = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== 'main.mjs' && !f.startsWith('_'))
  .filter((f) => /^export (async )?function run\b/m.test(readFileSync(path.join(here, f), 'utf8')))
  .map((f) => f.slice(0, -4));
const [suite, ...args] = process.argv.slice(2);
if (!suite || !suites.includes(suite)) {
  console.error(`usage: npm run bench -- <${suites.join('|')}> [options]`);
  process.exit(suite ? 1 : 0);
}
const file = path.join(here, `${suite}.mjs`);
if (!existsSync(file)) process.exit(1);
const mod = await import(pathToFileURL(file).href);
await mod.run(args);
