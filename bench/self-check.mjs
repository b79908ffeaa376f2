// npm run bench -- self-check [--model DIR] [--set held-out|seen|FILE] [--candidates 4] [--repeat 1]
// What a self-checked drawing costs and buys (generateImageSelfChecked; `vargpt generate`'s default
// on a model folder with self_check.json, such as the built-in demo model, the default --model).
// Each request of an evaluation set (training/demo/eval-set; --set as in training/demo/eval.mjs)
// is drawn both ways with the same seed in the same process, interleaved request by request: once
// (generateImage) and self-checked (up to --candidates drawings). Per way: wall seconds in all and
// per request, drawings made, answers asked, and how many drawings training/demo/judge.mjs (the
// pixel judge, which the check does not use) finds in the requested colour and shape. A drawing's
// and an answer's own cost come from timing each call.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { judgeDrawing } from '../training/demo/judge.mjs';
import { fmt, importPackage, root, table } from './common.mjs';

function parse(args) {
  const o = { model: null, set: 'held-out', candidates: 4, repeat: 1 };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => args[++i];
    if (a === '--model') o.model = next();
    else if (a === '--set') o.set = next();
    else if (a === '--candidates') o.candidates = Number(next());
    else if (a === '--repeat') o.repeat = Number(next());
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(o.candidates) || o.candidates < 2) throw new Error('--candidates is a whole number, 2 or more');
  if (!Number.isInteger(o.repeat) || o.repeat < 1) throw new Error('--repeat is a whole number, 1 or more');
  return o;
}

export async function run(args) {
  const o = parse(args);
  const { loadModel, demoModelDir, generateImageSelfChecked, loadReadBackCheck } = await importPackage();
  const dir = o.model ?? demoModelDir();
  const check = await loadReadBackCheck(dir);
  if (!check) throw new Error(`${dir} has no self_check.json: nothing to check drawings with`);
  const setDir = path.join(root, 'training', 'demo', 'eval-set');
  const file = o.set === 'held-out' ? path.join(setDir, 'eval-set.json') : o.set === 'seen' ? path.join(setDir, 'seen.json') : o.set;
  const set = JSON.parse(readFileSync(file, 'utf8'));
  const requests = set.draw.flatMap((d) => Array.from({ length: o.repeat }, (_, r) => ({ ...d, seed: d.seed + 1000 * r })));
  const model = await loadModel(dir, { device: 'cpu' });
  const right = (image, d) => {
    const v = judgeDrawing(image.data, image.width, image.height, set.colours);
    return v.colour === d.colour && v.shape === d.shape;
  };
  // Timed wrappers, so a drawing's and an answer's own cost are measured inside the checked runs.
  const timed = { draw: [], ask: [] };
  const timedModel = {
    generateImage: async (prompt, options) => {
      const t = performance.now();
      const reply = await model.generateImage(prompt, options);
      timed.draw.push(performance.now() - t);
      return reply;
    },
    ask: async (image, question, options) => {
      const t = performance.now();
      const reply = await model.ask(image, question, options);
      timed.ask.push(performance.now() - t);
      return reply;
    },
  };
  await model.generateImage('warm up', { seed: 0 });
  const single = { ms: 0, right: 0 };
  const checked = { ms: 0, right: 0, drawings: 0, answers: 0, passed: 0 };
  for (const d of requests) {
    let t = performance.now();
    const one = await model.generateImage(d.prompt, { seed: d.seed });
    single.ms += performance.now() - t;
    single.right += right(one.image, d);
    t = performance.now();
    const reply = await generateImageSelfChecked(timedModel, d.prompt, { seed: d.seed, candidates: o.candidates, check });
    checked.ms += performance.now() - t;
    checked.right += right(reply.image, d);
    checked.drawings += reply.selfCheck.drawn;
    checked.answers += reply.selfCheck.readings.reduce((n, r) => n + r.length, 0);
    checked.passed += reply.selfCheck.passed;
  }
  await model.dispose();
  const n = requests.length;
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`${dir}, ${path.basename(file)} x ${o.repeat} seeds: ${n} requests, up to ${o.candidates} drawings each`);
  table([
    ['way', 'right', 'drawings', 'answers', 's total', 'ms / request', 'vs once'],
    ['once (generateImage)', `${single.right} / ${n}`, n, 0, fmt(single.ms / 1000, 2), fmt(single.ms / n, 1), '1.00x'],
    [`self-checked, up to ${o.candidates}`, `${checked.right} / ${n}`, checked.drawings, checked.answers, fmt(checked.ms / 1000, 2), fmt(checked.ms / n, 1), `${fmt(checked.ms / single.ms, 2)}x`],
  ]);
  console.log(`inside the checked runs: a drawing ${fmt(mean(timed.draw), 1)} ms, an answer ${fmt(mean(timed.ask), 1)} ms (means); ` +
    `${checked.passed} of ${n} kept drawings read back as asked`);
}
