// npm run bench -- quant [--preset small|medium] [--prompt 128] [--tokens 64] [--runs 3]
//                        [--configs f32,bf16,int8,q4] [--source f32|bf16] [--no-mmap]
//                        [--kv-cache f32|bf16]
// Quantized weights (loadModel's weights option) against f32 and bf16 on a synthesized VARGPT v1
// preset (random weights; the f32 and bf16 checkpoints are synthesized from the same seed): for each
// precision, in a fresh process (so peak resident memory is its own):
// - prefill seconds of a text prompt and decode tokens/s (greedy, EOS ignored), medians of --runs;
// - the read-bandwidth ceiling beside it: bytes of the LLM's linear weights at that precision per
//   token / the measured all-thread read bandwidth = the most tokens/s a decode step can reach;
// - peak resident memory (maxRSS) after loading and running;
// - accuracy against f32: max and mean |Δ| of the prefill logits, and how many of the --agree (128)
//   greedy tokens match f32's before the first difference.
// int8 and q4 are quantized on load from the f32 checkpoint (the same weights f32 runs), or with
// --source bf16 from the bf16 one (for sizes whose f32 checkpoint does not fit the disk: run with
// --configs bf16,int8,q4, and the accuracy columns compare against bf16). --no-mmap loads every
// precision with loadModel's mmap: false (weights copied into the process's memory, on huge pages).
// --kv-cache bf16 runs every precision with bf16 attention caches (loadModel's kvCache; default
// f32), which halves what a decode step reads besides the weights.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { fmt, loadAddon, median, root, syntheticPreset, table } from './common.mjs';

const self = fileURLToPath(import.meta.url);

function parse(args) {
  const o = { preset: 'small', prompt: 128, tokens: 64, runs: 3, agree: 128, configs: ['f32', 'bf16', 'int8', 'q4'], source: 'f32', mmap: true, kvCache: 'f32', child: null };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => args[++i];
    if (a === '--preset') o.preset = next();
    else if (a === '--prompt') o.prompt = Number(next());
    else if (a === '--tokens') o.tokens = Number(next());
    else if (a === '--runs') o.runs = Number(next());
    else if (a === '--agree') o.agree = Number(next());
    else if (a === '--configs') o.configs = next().split(',');
    else if (a === '--source') o.source = next();
    else if (a === '--no-mmap') o.mmap = false;
    else if (a === '--kv-cache') o.kvCache = next();
    else if (a === '--child') o.child = JSON.parse(next());
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

function ids(info, n) {
  const out = [info.bosId];
  for (let i = 1; i < n; i++) out.push(100 + ((i * 7919) % Math.min(20000, info.llm.vocabSize - 200)));
  return Int32Array.from(out);
}

// One precision in this process: timings, logits and tokens.
async function child({ dir, weights, mmap, kvCache, prompt, tokens, runs, agree }) {
  const addon = loadAddon();
  const model = await addon.loadModel(dir, { device: 'cpu', weights, mmap });
  const info = model.info();
  const request = { inputIds: ids(info, prompt), temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, stopIds: [], ignoreEos: true, kvCache };
  await model.generate({ ...request, maxNewTokens: 2 }); // pages the weights in
  const prefill = [], decode = [];
  for (let r = 0; r < runs; r++) {
    const res = await model.generate({ ...request, maxNewTokens: tokens, profile: true });
    prefill.push(res.profile.prefill);
    decode.push(res.profile.decodeTokens / res.profile.decode);
  }
  const traced = await model.generate({ ...request, maxNewTokens: agree, trace: true });
  model.dispose();
  return {
    weights: info.llm.weights,
    prefillSeconds: median(prefill),
    decodeTokensPerSecond: median(decode),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    logits: Array.from(new Float32Array(traced.trace.prefillLogits.data)),
    tokens: Array.from(traced.tokens),
  };
}

// Bytes one decode step reads for the LLM's linear layers at a precision.
function linearBytes(info, precision) {
  const { hiddenSize: H, intermediateSize: I, layers: L, heads, kvHeads, headDim, vocabSize: V } = info.llm;
  const K = [H, H, H, heads * headDim, H, H, I];
  const N = [heads * headDim, kvHeads * headDim, kvHeads * headDim, H, I, I, H];
  let total = 0;
  const per = (n, k) => {
    if (precision === 'f32') return 4 * n * k;
    if (precision === 'bf16') return 2 * n * k;
    if (precision === 'int8') return n * k + 4 * n;
    const kp = Math.ceil(k / 64) * 64;
    return (n * kp) / 2 + 2 * n * (kp / 32);
  };
  for (let i = 0; i < 7; i++) total += L * per(N[i], K[i]);
  return total + per(V, H); // lm_head
}

export async function run(args) {
  const o = parse(args);
  if (o.child) {
    process.stdout.write(JSON.stringify(await child(o.child)));
    return;
  }
  const addon = loadAddon();
  if (o.source !== 'f32' && o.source !== 'bf16') throw new Error('--source is f32 or bf16');
  if (o.kvCache !== 'f32' && o.kvCache !== 'bf16') throw new Error('--kv-cache is f32 or bf16');
  if (o.source === 'bf16' && o.configs.includes('f32')) throw new Error('--source bf16 cannot run f32 (no f32 checkpoint)');
  const f32Dir = o.source === 'f32' ? await syntheticPreset({ preset: o.preset, dtype: 'f32' }) : null;
  const bf16Dir = o.configs.includes('bf16') || o.source === 'bf16' ? await syntheticPreset({ preset: o.preset, dtype: 'bf16' }) : null;
  const sourceDir = o.source === 'f32' ? f32Dir : bf16Dir;
  const [bw] = await addon.runOp('cpu', 'read_bandwidth', [], { bytes: 1 << 30, iterations: 5 });
  const bandwidth = new Float32Array(bw.data)[0];
  const info = (await addon.loadModel(sourceDir, { device: 'cpu' })).info();
  const cpu = addon.devices().cpu;
  console.log(`vargpt-v1 ${o.preset} preset (random weights, seed 0): ${path.relative(root, sourceDir)}; int8 and q4 quantized on load from ${o.source}`);
  console.log(`cpu ${cpu.model}, ${cpu.threads} threads, GEMM ${cpu.kernels}, int8/q4 ${cpu.int8Kernels}; read bandwidth ${fmt(bandwidth, 1)} GB/s (best of 5)`);
  console.log(`prompt ${o.prompt} tokens, decode ${o.tokens} tokens (EOS ignored), medians of ${o.runs}; each precision in its own process; weights ${o.mmap ? "read in place (mmap)" : "copied on load (mmap: false)"}; ${o.kvCache} attention caches\n`);
  const results = {};
  for (const c of o.configs) {
    const spec = { dir: c === 'bf16' ? bf16Dir : c === 'f32' ? f32Dir : sourceDir, weights: c === 'int8' || c === 'q4' ? c : 'auto', mmap: o.mmap, kvCache: o.kvCache, prompt: o.prompt, tokens: o.tokens, runs: o.runs, agree: o.agree };
    const out = execFileSync(process.execPath, [path.join(root, 'bench', 'main.mjs'), 'quant', '--child', JSON.stringify(spec)], { maxBuffer: 1 << 30 });
    results[c] = JSON.parse(out.toString('utf8'));
  }
  const refName = results.f32 ? 'f32' : 'bf16';
  const ref = results[refName];
  const rows = [['weights', 'linear GB/token', 'prefill s', 'decode tok/s', 'ceiling tok/s', 'of ceiling', 'vs bf16', 'peak RSS GB', `max |Δlogit| vs ${refName}`, 'mean |Δlogit|', `greedy = ${refName} (of ${o.agree})`]];
  for (const c of o.configs) {
    const r = results[c];
    const bytes = linearBytes(info, c);
    const ceiling = (bandwidth * 1e9) / bytes;
    let maxd = 0, sumd = 0, agree = 0;
    if (ref) {
      for (let i = 0; i < ref.logits.length; i++) {
        const d = Math.abs(ref.logits[i] - r.logits[i]);
        maxd = Math.max(maxd, d);
        sumd += d;
      }
      while (agree < ref.tokens.length && ref.tokens[agree] === r.tokens[agree]) agree++;
    }
    rows.push([
      c,
      fmt(bytes / 1e9, 3),
      fmt(r.prefillSeconds, 3),
      fmt(r.decodeTokensPerSecond, 1),
      fmt(ceiling, 1),
      `${fmt((100 * r.decodeTokensPerSecond) / ceiling, 0)}%`,
      results.bf16 ? `${fmt(r.decodeTokensPerSecond / results.bf16.decodeTokensPerSecond, 2)}x` : '-',
      fmt(r.maxRssBytes / 1e9, 2),
      ref ? maxd.toExponential(2) : '-',
      ref ? (sumd / ref.logits.length).toExponential(2) : '-',
      ref ? String(agree) : '-',
    ]);
  }
  table(rows);
  return { bandwidth, results };
}
