#!/usr/bin/env node
// Evaluates a demo checkpoint through the package's public API on the held-out set (eval-set/,
// written by make_eval_set.py): colour x shape pairs never seen together in training.
//
//   node training/demo/eval.mjs [--model DIR] [--set held-out|seen|FILE] [--repeat N] [--candidates N]
//                               [--images OUT_DIR] [--json]
//
// --set seen runs the same measurement on pairs the training saw (seen.json), for comparison; a
// FILE is any set in the same format (make_eval_set.py --probe writes drawing-only ones). --repeat
// N draws each request N times, with seeds s, s + 1000, ..., s + 1000 (N - 1). --candidates N
// draws as `vargpt generate` does by default on a model folder with self_check.json: up to N
// drawings per request, the first the model itself reads back as requested kept
// (generateImageSelfChecked); without it, one drawing per request, as generateImage draws.
// Drawing: 50 requests, each drawn with its fixed seed and judged from the pixels (judge.mjs):
// right when both the colour and the shape are the requested ones. Understanding: 50 questions
// about 50 images, right when the answer is exactly the expected word.
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { judgeDrawing } from './judge.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { loadModel, demoModelDir, generateImageSelfChecked, loadReadBackCheck } = await import(path.join(here, '..', '..', 'dist', 'index.js'));

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    set: { type: 'string', default: 'held-out' },
    repeat: { type: 'string', default: '1' },
    candidates: { type: 'string', default: '1' },
    images: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const setDir = path.join(here, 'eval-set');
const setFile = values.set === 'held-out' ? path.join(setDir, 'eval-set.json') : values.set === 'seen' ? path.join(setDir, 'seen.json') : values.set;
const set = JSON.parse(readFileSync(setFile, 'utf8'));
const repeat = Number(values.repeat);
if (!Number.isInteger(repeat) || repeat < 1 || repeat > 100) throw new Error('--repeat is a whole number from 1 to 100');
const candidates = Number(values.candidates);
if (!Number.isInteger(candidates) || candidates < 1) throw new Error('--candidates is a whole number, 1 or more');
const modelDir = values.model ?? demoModelDir();
const check = candidates > 1 ? await loadReadBackCheck(modelDir) : null;
if (candidates > 1 && !check) throw new Error(`--candidates ${candidates}: ${modelDir} has no self_check.json`);
const model = await loadModel(modelDir);
if (values.images) mkdirSync(values.images, { recursive: true });

const draw = [];
for (const [i, d] of set.draw.flatMap((req) => Array.from({ length: repeat }, (_, r) => ({ ...req, seed: req.seed + 1000 * r }))).entries()) {
  const reply = check ? await generateImageSelfChecked(model, d.prompt, { seed: d.seed, candidates, check }) : await model.generateImage(d.prompt, { seed: d.seed });
  const img = reply.image;
  const verdict = judgeDrawing(img.data, img.width, img.height, set.colours);
  const ok = verdict.colour === d.colour && verdict.shape === d.shape;
  draw.push({ prompt: d.prompt, seed: d.seed, want: [d.colour, d.shape], got: [verdict.colour, verdict.shape], ok,
    ...(check ? { kept: reply.selfCheck.kept, drawn: reply.selfCheck.drawn, readBack: reply.selfCheck.passed } : {}) });
  if (values.images) await img.save(path.join(values.images, `draw-${String(i).padStart(3, '0')}.png`));
}
const ask = [];
for (const q of set.ask) {
  const reply = await model.ask(path.join(setDir, q.image), q.question);
  const answer = reply.text.trim().toLowerCase();
  ask.push({ image: q.image, question: q.question, kind: q.kind, want: q.answer, got: answer, ok: answer === q.answer });
}
await model.dispose();

const rate = (rows) => rows.filter((r) => r.ok).length / rows.length;
const byKind = {};
for (const r of ask) (byKind[r.kind] ??= []).push(r);
const summary = {
  set: set.split,
  heldOutPairs: set.held_out_pairs,
  drawing: {
    right: draw.filter((r) => r.ok).length,
    of: draw.length,
    rate: rate(draw),
    colourRight: draw.filter((r) => r.got[0] === r.want[0]).length,
    shapeRight: draw.filter((r) => r.got[1] === r.want[1]).length,
    ...(check ? {
      candidates,
      drawingsMade: draw.reduce((n, r) => n + r.drawn, 0),
      readBackAsRequested: draw.filter((r) => r.readBack).length,
    } : {}),
  },
  understanding: { right: ask.filter((r) => r.ok).length, of: ask.length, rate: rate(ask) },
  understandingByKind: Object.fromEntries(Object.entries(byKind).map(([k, rows]) => [k, rate(rows)])),
  drawingByPair: Object.fromEntries(
    [...new Set(draw.map((r) => r.want.join(' ')))].sort().map((pair) => {
      const rows = draw.filter((r) => r.want.join(' ') === pair);
      return [pair, { right: rows.filter((r) => r.ok).length, of: rows.length }];
    }),
  ),
};
if (values.json) {
  console.log(JSON.stringify({ summary, draw, ask }, null, 1));
} else {
  for (const r of draw.filter((x) => !x.ok)) console.log(`draw miss: "${r.prompt}" seed ${r.seed}: got ${r.got.join(' ')}`);
  for (const r of ask.filter((x) => !x.ok)) console.log(`ask miss: ${r.image} "${r.question}": got "${r.got}", want "${r.want}"`);
  const d = summary.drawing;
  console.log(`drawing: ${d.right}/${d.of} right (${(100 * d.rate).toFixed(0)}%); colour ${d.colourRight}, shape ${d.shapeRight}` +
    (check ? `; self-check up to ${candidates}: ${d.drawingsMade} drawings made, ${d.readBackAsRequested} kept as read back right` : ''));
  console.log(`drawing by pair: ${Object.entries(summary.drawingByPair).map(([p, v]) => `${p} ${v.right}/${v.of}`).join(', ')}`);
  if (ask.length > 0) console.log(`understanding: ${summary.understanding.right}/${summary.understanding.of} right (${(100 * summary.understanding.rate).toFixed(0)}%)`,
    Object.entries(summary.understandingByKind).map(([k, v]) => `${k} ${(100 * v).toFixed(0)}%`).join(', '));
}
