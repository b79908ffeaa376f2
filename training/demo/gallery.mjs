#!/usr/bin/env node
// The README's pictures of the demo model: a fixed list of requests drawn with fixed seeds, laid
// out in one row (each image scaled 2x, nearest neighbour, so the pixels stay the model's own),
// and the answers it gives about the first images of the held-out set.
//   node training/demo/gallery.mjs [--model DIR] --out docs/demo-drawings.png
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import sharp from 'sharp';

const here = path.dirname(fileURLToPath(import.meta.url));
const { loadModel, demoModelDir } = await import(path.join(here, '..', '..', 'dist', 'index.js'));
const { values } = parseArgs({ options: { model: { type: 'string' }, out: { type: 'string' } } });
if (!values.out) throw new Error('--out FILE is required');

// The first four are held-out pairs (never seen together in training).
export const GALLERY = [
  ['draw a big red triangle', 1],
  ['a green circle on the left', 2],
  ['draw a blue diamond on a black background', 3],
  ['please draw a small yellow square at the top', 4],
  ['generate an image of a purple circle', 5],
  ['make a drawing of a big orange diamond on a gray background', 6],
];

const model = await loadModel(values.model ?? demoModelDir());
const scale = 2;
const tiles = [];
for (const [prompt, seed] of GALLERY) {
  const { image } = await model.generateImage(prompt, { seed });
  tiles.push(await sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(image.width * scale, image.height * scale, { kernel: 'nearest' }).png().toBuffer());
  console.log(`| "${prompt}" | ${seed} |`);
}
const side = 64 * scale;
const gap = 8;
await sharp({ create: { width: tiles.length * (side + gap) - gap, height: side, channels: 3, background: { r: 255, g: 255, b: 255 } } })
  .composite(tiles.map((input, i) => ({ input, left: i * (side + gap), top: 0 })))
  .png()
  .toFile(values.out);

const set = JSON.parse(readFileSync(path.join(here, 'eval-set', 'eval-set.json'), 'utf8'));
for (const q of set.ask.slice(0, 6)) {
  const reply = await model.ask(path.join(here, 'eval-set', q.image), q.question);
  console.log(`| ${q.image} | ${q.question} | ${reply.text.trim()} | ${q.answer} |`);
}
await model.dispose();
