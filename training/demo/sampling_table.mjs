#!/usr/bin/env node
// The package README's sampling table: how often drawings come out right, and how much two seeds'
// drawings of one request differ, as the image sampler narrows (top-p, top-k, guidance).
//
//   node training/demo/sampling_table.mjs [--model DIR] [--seed-shift 1000]
//
// Per setting: the committed sets' 50 requests each (eval-set/, held-out and seen pairs), drawn with
// the seeds s + shift, s + shift + 1000, s + shift + 2000, s + shift + 3000 (200 drawings per set),
// judged by judge.mjs as eval.mjs judges them; and the mean absolute difference (0-255 per channel)
// between the drawings of seeds s + shift and s + shift + 1000 of the first 25 held-out requests.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { judgeDrawing } from './judge.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { loadModel, demoModelDir } = await import(path.join(here, '..', '..', 'dist', 'index.js'));
const { values } = parseArgs({ options: { model: { type: 'string' }, 'seed-shift': { type: 'string', default: '1000' } } });
const shift = Number(values['seed-shift']);
if (!Number.isInteger(shift) || shift < 0) throw new Error('--seed-shift is a whole number, 0 or more');

const sets = Object.fromEntries(
  [['held-out', 'eval-set.json'], ['seen', 'seen.json']].map(([name, file]) => [name, JSON.parse(readFileSync(path.join(here, 'eval-set', file), 'utf8'))]),
);
const settings = [
  ['0.96 / 512 / 3 (the default)', {}],
  ['0.5 / 512 / 3', { topP: 0.5 }],
  ['0.3 / 512 / 3', { topP: 0.3 }],
  ['- / 1 / 5', { topK: 1, cfg: 5 }],
  ['- / 1 / 3', { topK: 1, cfg: 3 }],
];
const model = await loadModel(values.model ?? demoModelDir());
console.log('| `--top-p` / `--top-k` / `--cfg` | held-out pairs right | seen pairs right | difference between seeds |');
console.log('|---|---|---|---|');
for (const [name, options] of settings) {
  const right = [];
  const firstTwo = []; // the first 25 held-out requests' drawings at seeds s + shift, s + shift + 1000
  for (const [setName, set] of Object.entries(sets)) {
    let ok = 0;
    for (const [i, d] of set.draw.entries()) {
      for (let r = 0; r < 4; r++) {
        const { image } = await model.generateImage(d.prompt, { seed: d.seed + shift + 1000 * r, ...options });
        const v = judgeDrawing(image.data, image.width, image.height, set.colours);
        ok += v.colour === d.colour && v.shape === d.shape;
        if (setName === 'held-out' && i < 25 && r < 2) firstTwo.push(image.data);
      }
    }
    right.push(`${ok} / ${4 * set.draw.length} (${((100 * ok) / (4 * set.draw.length)).toFixed(1)}%)`);
  }
  let diff = 0;
  let count = 0;
  for (let i = 0; i < firstTwo.length; i += 2) {
    const [a, b] = [firstTwo[i], firstTwo[i + 1]];
    for (let j = 0; j < a.length; j++) diff += Math.abs(a[j] - b[j]);
    count += a.length;
  }
  console.log(`| ${name} | ${right.join(' | ')} | ${(diff / count).toFixed(1)} |`);
}
await model.dispose();
