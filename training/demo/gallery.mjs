#!/usr/bin/env node
// The README's pictures of the demo model: a fixed list of requests drawn with fixed seeds, laid
// out in two rows (each image scaled 2x, nearest neighbour, so the pixels stay the model's own):
// one drawing per request (generateImage) on top, and below it what `vargpt generate` draws by
// default, self-checked (up to 4 drawings, the first the model reads back as requested); and the
// answers it gives about the first images of the held-out set.
//   node training/demo/gallery.mjs [--model DIR] --out docs/demo-drawings.png
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import sharp from 'sharp';

const here = path.dirname(fileURLToPath(import.meta.url));
const { loadModel, demoModelDir, generateImageSelfChecked, loadReadBackCheck } = await import(path.join(here, '..', '..', 'dist', 'index.js'));
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

const modelDir = values.model ?? demoModelDir();
const check = await loadReadBackCheck(modelDir);
if (!check) throw new Error(`${modelDir} has no self_check.json: the gallery's second row is self-checked drawings`);
const model = await loadModel(modelDir);
const scale = 2;
const tile = (image) => sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: 3 } })
  .resize(image.width * scale, image.height * scale, { kernel: 'nearest' }).png().toBuffer();
const rows = [[], []];
for (const [prompt, seed] of GALLERY) {
  const single = await model.generateImage(prompt, { seed });
  const checked = await generateImageSelfChecked(model, prompt, { seed, candidates: 4, check });
  rows[0].push(await tile(single.image));
  rows[1].push(await tile(checked.image));
  const read = checked.selfCheck.readings[checked.selfCheck.kept].map((r) => r.answer).join(' ');
  console.log(`| "${prompt}" | ${seed} | self-checked: drawing ${checked.selfCheck.kept + 1} of ${checked.selfCheck.drawn}, read as ${read} |`);
}
const side = 64 * scale;
const gap = 8;
await sharp({ create: { width: GALLERY.length * (side + gap) - gap, height: 2 * side + gap, channels: 3, background: { r: 255, g: 255, b: 255 } } })
  .composite(rows.flatMap((row, r) => row.map((input, i) => ({ input, left: i * (side + gap), top: r * (side + gap) }))))
  .png()
  .toFile(values.out);

const set = JSON.parse(readFileSync(path.join(here, 'eval-set', 'eval-set.json'), 'utf8'));
for (const q of set.ask.slice(0, 6)) {
  const reply = await model.ask(path.join(here, 'eval-set', q.image), q.question);
  console.log(`| ${q.image} | ${q.question} | ${reply.text.trim()} | ${q.answer} |`);
}
await model.dispose();
