// npm run bench -- quant-accuracy [--model DIR] [--weights int8,q4]
// Quantized weights on a trained checkpoint (by default the demo model's bf16 master,
// training/demo/model-bf16, of which the package ships the int8 copy), whose logits, unlike a
// random-weight model's, are far from flat. Each precision against the
// checkpoint at its stored precision, over the demo's two committed evaluation sets
// (training/demo/eval-set: 50 held-out-pair and 50 seen-pair questions about images, and as many
// seeded drawing requests):
// - the understanding prefill's logits (trace): max and mean |Δ| against stored, and the largest
//   logit for scale;
// - answers: how many equal the stored precision's answer, and how many are right;
// - drawings: PSNR of each seeded drawing against the stored precision's drawing with the same
//   seed (the LLM's hidden states condition every scale, so a quantized LLM changes the image only
//   through them), how many are pixel-identical or within 30 dB, and how many the pixel judge finds
//   right. Sampling is seeded, not greedy: once a quantized logit tips one sampled token the rest of
//   the image is another sample (PSNR near that of two unrelated drawings), so the low end of the
//   PSNR range counts such flips, and 'drawings right' moves by a few either way with them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { fmt, importPackage, psnr8, root, table } from './common.mjs';

function parse(args) {
  const o = { model: null, weights: ['int8', 'q4'] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--model') o.model = args[++i];
    else if (a === '--weights') o.weights = args[++i].split(',');
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

async function runAll(loadModel, dir, weights, sets, judgeDrawing) {
  const model = await loadModel(dir, { device: 'cpu', ...(weights === 'stored' ? {} : { weights }) });
  const out = { asks: [], draws: [] };
  try {
    for (const { setDir, set } of sets) {
      for (const q of set.ask) {
        const reply = await model.ask(path.join(setDir, q.image), q.question, { trace: true });
        const logits = reply.trace?.['prefillLogits'] ?? reply.trace?.['prefill_last_logits'];
        if (!logits) throw new Error('no prefill logits in the trace');
        const text = reply.text.trim().toLowerCase();
        out.asks.push({ text, right: text === q.answer, logits: new Float32Array(logits.data.buffer.slice(logits.data.byteOffset, logits.data.byteOffset + logits.data.byteLength)) });
      }
      for (const d of set.draw) {
        const { image } = await model.generateImage(d.prompt, { seed: d.seed });
        const verdict = judgeDrawing(image.data, image.width, image.height, set.colours);
        out.draws.push({ pixels: image.data, right: verdict.colour === d.colour && verdict.shape === d.shape });
      }
    }
  } finally {
    await model.dispose();
  }
  return out;
}

export async function run(args) {
  const o = parse(args);
  const { loadModel } = await importPackage();
  const { judgeDrawing } = await import(pathToFileURL(path.join(root, 'training', 'demo', 'judge.mjs')).href);
  const dir = o.model ?? path.join(root, 'training', 'demo', 'model-bf16');
  const setDir = path.join(root, 'training', 'demo', 'eval-set');
  const sets = ['eval-set.json', 'seen.json'].map((f) => ({ setDir, set: JSON.parse(readFileSync(path.join(setDir, f), 'utf8')) }));
  console.log(`checkpoint ${dir}; ${sets.reduce((n, s) => n + s.set.ask.length, 0)} questions, ${sets.reduce((n, s) => n + s.set.draw.length, 0)} seeded drawings (held-out and seen sets)`);
  const base = await runAll(loadModel, dir, 'stored', sets, judgeDrawing);
  const rows = [{
    weights: 'stored', 'max |Δlogit|': '0', 'mean |Δlogit|': '0', 'max |logit|': fmt(Math.max(...base.asks.map((a) => Math.max(...a.logits.map(Math.abs)))), 1),
    'answers = stored': `${base.asks.length}/${base.asks.length}`, 'answers right': `${base.asks.filter((a) => a.right).length}`,
    'drawings identical': `${base.draws.length}/${base.draws.length}`, 'PSNR dB (min / median)': '-', 'PSNR >= 30 dB': '-', 'drawings right': `${base.draws.filter((d) => d.right).length}`,
  }];
  for (const weights of o.weights) {
    const q = await runAll(loadModel, dir, weights, sets, judgeDrawing);
    let maxD = 0, sumD = 0, n = 0;
    q.asks.forEach((a, i) => {
      const b = base.asks[i].logits;
      for (let k = 0; k < b.length; k++) {
        const d = Math.abs(a.logits[k] - b[k]);
        maxD = Math.max(maxD, d);
        sumD += d;
        n++;
      }
    });
    const psnrs = q.draws.map((d, i) => psnr8(d.pixels, base.draws[i].pixels)).sort((x, y) => x - y);
    const finite = psnrs.filter(Number.isFinite);
    rows.push({
      weights, 'max |Δlogit|': fmt(maxD, 3), 'mean |Δlogit|': fmt(sumD / n, 4), 'max |logit|': '',
      'answers = stored': `${q.asks.filter((a, i) => a.text === base.asks[i].text).length}/${q.asks.length}`,
      'answers right': `${q.asks.filter((a) => a.right).length}`,
      'drawings identical': `${psnrs.length - finite.length}/${psnrs.length}`,
      'PSNR dB (min / median)': finite.length ? `${fmt(finite[0], 1)} / ${fmt(psnrs[Math.floor(psnrs.length / 2)], 1)}` : 'all identical',
      'PSNR >= 30 dB': `${psnrs.filter((p) => p >= 30).length}/${psnrs.length}`,
      'drawings right': `${q.draws.filter((d) => d.right).length}`,
    });
  }
  const columns = Object.keys(rows[0]);
  table([columns, ...rows.map((r) => columns.map((c) => r[c]))]);
}
