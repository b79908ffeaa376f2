// npm run bench -- quant-image [--preset small|medium] [--runs 3] [--configs f32,bf16,int8,q4]
//                              [--generator-only] [--prompt TEXT]
// Drawing with quantized weights: text-to-image (256x256, VARGPT v1's ten scales) on a synthesized
// VARGPT v1 preset (random weights, seed 0) at each precision of loadModel's weights option, which
// covers the LLM's and the VAR's linear layers alike (--generator-only: the VAR's alone, the LLM
// as stored). Each precision runs in its own process (so peak resident memory is its own) and is
// loaded from the f32 checkpoint (bf16 converted, int8 and q4 quantized on load: the same weights
// everywhere). Per precision: median wall seconds of --runs seeded drawings after one warm-up,
// the speed-up over bf16, peak resident memory, and against f32's drawing of the same seed the
// PSNR and whether every pixel is equal (a drawing is sampled: once a reduced-precision logit tips
// one sampled token the rest is another sample, so the PSNR counts that as much as closeness).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { fmt, importPackage, loadAddon, median, psnr8, root, syntheticPreset, table } from './common.mjs';

const main = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.mjs');

function parse(args) {
  const o = { preset: 'small', runs: 3, configs: ['f32', 'bf16', 'int8', 'q4'], generatorOnly: false, prompt: 'a red fox in the snow', child: null };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => args[++i];
    if (a === '--preset') o.preset = next();
    else if (a === '--runs') o.runs = Number(next());
    else if (a === '--configs') o.configs = next().split(',');
    else if (a === '--generator-only') o.generatorOnly = true;
    else if (a === '--prompt') o.prompt = next();
    else if (a === '--child') o.child = JSON.parse(next());
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

// One precision in this process: seconds per drawing and the pixels of each seed.
async function child({ dir, precision, generatorOnly, runs, prompt }) {
  const { loadModel } = await importPackage();
  const weights = precision === 'f32' ? 'auto' : generatorOnly ? { generator: precision } : precision;
  const model = await loadModel(dir, { device: 'cpu', weights });
  try {
    await model.generateImage(prompt, { seed: 1000 }); // warm-up: pages the weights in, sizes the buffers
    const seconds = [];
    const pixels = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const reply = await model.generateImage(prompt, { seed: r });
      seconds.push((performance.now() - t0) / 1000);
      pixels.push(Buffer.from(reply.image.data).toString('base64'));
    }
    const info = model.info;
    return { llm: info.llm.weights, generator: info.var?.weights, seconds, pixels, maxRssBytes: process.resourceUsage().maxRSS * 1024 };
  } finally {
    await model.dispose();
  }
}

export async function run(args) {
  const o = parse(args);
  if (o.child) {
    process.stdout.write(JSON.stringify(await child(o.child)));
    return;
  }
  const dir = await syntheticPreset({ preset: o.preset, dtype: 'f32' });
  const cpu = loadAddon().devices().cpu;
  console.log(`vargpt-v1 ${o.preset} preset (random weights, seed 0, f32): ${path.relative(root, dir)}; "${o.prompt}", 256x256`);
  console.log(`cpu ${cpu.model}, ${cpu.threads} threads, GEMM ${cpu.kernels}, int8/q4 ${cpu.int8Kernels}`);
  console.log(`${o.generatorOnly ? "the VAR's linear layers at each precision, the LLM as stored (f32)" : "the LLM's and the VAR's linear layers at each precision"}; median of ${o.runs} seeded drawings after a warm-up; each precision in its own process\n`);
  const results = {};
  for (const precision of o.configs) {
    const out = execFileSync(process.execPath, [main, 'quant-image', '--child', JSON.stringify({ dir, precision, generatorOnly: o.generatorOnly, runs: o.runs, prompt: o.prompt })], {
      encoding: 'utf8',
      maxBuffer: 1 << 30,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    results[precision] = JSON.parse(out);
  }
  const reference = results.f32;
  const bf16 = results.bf16 ? median(results.bf16.seconds) : NaN;
  const rows = [['weights', 'LLM', 'VAR', 'image s (median)', 'vs bf16', 'peak RSS GB', 'PSNR vs f32 dB (min / median)', 'drawings identical to f32']];
  for (const precision of o.configs) {
    const r = results[precision];
    const s = median(r.seconds);
    let psnrs = [], identical = 0;
    if (reference) {
      psnrs = r.pixels.map((p, i) => psnr8(Buffer.from(p, 'base64'), Buffer.from(reference.pixels[i], 'base64')));
      identical = psnrs.filter((x) => x === Infinity).length;
    }
    const sorted = [...psnrs].sort((a, b) => a - b);
    const db = (x) => (x === Infinity ? 'inf' : fmt(x, 1));
    rows.push([
      precision,
      r.llm,
      r.generator,
      fmt(s, 2),
      Number.isNaN(bf16) ? '-' : `${fmt(bf16 / s, 2)}x`,
      fmt(r.maxRssBytes / 1e9, 2),
      sorted.length ? `${db(sorted[0])} / ${db(median(sorted))}` : '-',
      reference ? `${identical}/${r.pixels.length}` : '-',
    ]);
  }
  table(rows);
}
