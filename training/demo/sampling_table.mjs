#!/usr/bin/env node
// The package README's sampling table: how often drawings come out right, and how much two seeds'
// drawings of one request differ, as the image sampler narrows (top-p, top-k, guidance).
//
//   node training/demo/sampling_table.mjs [--model DIR] [--seed-shift 1000] [--repeat 4]
//                                         [--fresh | --held-out FILE --seen FILE]
//
// Per setting: the committed sets' 50 requests each (eval-set/, held-out and seen pairs), drawn with
// the seeds s + shift, s + shift + 1000, s + shift + 2000, s + shift + 3000 (200 drawings per set),
// judged by judge.mjs as eval.mjs judges them; and the mean absolute difference (0-255 per channel)
// between the drawings of seeds s + shift and s + shift + 1000 of the first 25 held-out requests.
// --held-out and --seen replace the sets, --repeat the number of seeds per request. --fresh is the
// package README's second table: eval-set/fresh-held-out.json and fresh-seen.json (200 requests each
// that no choice was made on), each drawn with seeds s and s + 1000 (--repeat 2 --seed-shift 0).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { judgeDrawing } from './judge.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { loadModel, demoModelDir } = await import(path.join(here, '..', '..', 'dist', 'index.js'));
const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    'seed-shift': { type: 'string' },
    repeat: { type: 'string' },
    fresh: { type: 'boolean', default: false },
    'held-out': { type: 'string' },
    seen: { type: 'string' },
  },
});
if (values.fresh && (values['held-out'] || values.seen)) throw new Error('--fresh chooses the sets itself: leave out --held-out and --seen');
const shift = Number(values['seed-shift'] ?? (values.fresh ? '0' : '1000'));
if (!Number.isInteger(shift) || shift < 0) throw new Error('--seed-shift is a whole number, 0 or more');
const repeat = Number(values.repeat ?? (values.fresh ? '2' : '4'));
if (!Number.isInteger(repeat) || repeat < 2 || repeat > 100) throw new Error('--repeat is a whole number from 2 to 100');
const setFile = (given, committed, fresh) => given ?? path.join(here, 'eval-set', values.fresh ? fresh : committed);
const sets = {
  'held-out': JSON.parse(readFileSync(setFile(values['held-out'], 'eval-set.json', 'fresh-held-out.json'), 'utf8')),
  seen: JSON.parse(readFileSync(setFile(values.seen, 'seen.json', 'fresh-seen.json'), 'utf8')),
};
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
      for (let r = 0; r < repeat; r++) {
        const { image } = await model.generateImage(d.prompt, { seed: d.seed + shift + 1000 * r, ...options });
        const v = judgeDrawing(image.data, image.width, image.height, set.colours);
        ok += v.colour === d.colour && v.shape === d.shape;
        if (setName === 'held-out' && i < 25 && r < 2) firstTwo.push(image.data);
      }
    }
    const total = repeat * set.draw.length;
    right.push(`${ok} / ${total} (${((100 * ok) / total).toFixed(1)}%)`);
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
