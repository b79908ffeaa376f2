// npm run bench -- batch [--model DIR | --preset small|medium] [--dtype f32|bf16] [--tokens 64]
//                        [--streams 1,2,4,8] [--rounds 3]
// Continuous batching: aggregate decode tokens/s of N concurrent text streams (model.chat through
// the public API, each with its own prompt and seed, EOS ignored so every stream decodes exactly
// --tokens tokens), batched (loadModel's default maxBatch 8: one forward pass per step for every
// stream) against one at a time (maxBatch 1: the same calls, each decoded alone), both models
// loaded in the same process from the same checkpoint, rounds alternating between them.
//
// Reported per N: wall seconds from the first call to the last reply (prefills included: each
// stream's prompt is short), aggregate generated tokens per second, the speed-up, and whether every
// batched reply's tokens equal the same call's tokens decoded alone. The ceiling beside it: the
// read bandwidth probe, as "weight passes per second" a decode step at most achieves
// (bandwidth / bytes of the LLM's linear weights): one pass per step serves every batched stream.
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { fmt, loadAddon, median, root, syntheticPreset, table } from './common.mjs';

function parse(args) {
  const opts = { model: undefined, preset: 'small', dtype: 'f32', tokens: 64, streams: [1, 2, 4, 8], rounds: 3 };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--model') opts.model = next();
    else if (a === '--preset') opts.preset = next();
    else if (a === '--dtype') opts.dtype = next();
    else if (a === '--tokens') opts.tokens = Number(next());
    else if (a === '--rounds') opts.rounds = Number(next());
    else if (a === '--streams') opts.streams = next().split(',').map(Number);
    else throw new Error(`unknown option ${a}`);
  }
  if (!(opts.tokens >= 1) || !(opts.rounds >= 1) || opts.streams.some((n) => !(n >= 1 && n <= 8))) throw new Error('bad --tokens, --rounds or --streams (1..8)');
  return opts;
}

async function checkpointDir(opts) {
  return opts.model ? path.resolve(opts.model) : syntheticPreset({ preset: opts.preset, dtype: opts.dtype });
}

// Bytes of the LLM's linear weights (what one decode step streams from memory: the tensors
// `vargpt quantize` would quantize), from the headers.
function linearBytes(dir, isLlmLinear) {
  let total = 0;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.safetensors'))) {
    const fd = openSync(path.join(dir, f), 'r');
    try {
      const size = Buffer.alloc(8);
      readSync(fd, size, 0, 8, 0);
      const header = Buffer.alloc(Number(size.readBigUInt64LE(0)));
      readSync(fd, header, 0, header.length, 8);
      for (const [name, t] of Object.entries(JSON.parse(header.toString('utf8')))) {
        if (isLlmLinear(name)) total += t.data_offsets[1] - t.data_offsets[0];
      }
    } finally {
      closeSync(fd);
    }
  }
  return total;
}

export async function run(args) {
  const opts = parse(args);
  const dir = await checkpointDir(opts);
  const addon = loadAddon();

  // Every request decodes exactly opts.tokens tokens: ignoreEos is added to what the public API
  // sends, on both models alike.
  const { loadModelWith } = await import(pathToFileURL(path.join(root, 'dist', 'model.js')).href);
  const shim = {
    devices: () => addon.devices(),
    createCancelToken: () => addon.createCancelToken(),
    loadModel: async (d, o) => {
      const m = await addon.loadModel(d, o);
      const patched = (request) => ({ ...request, ignoreEos: true });
      return new Proxy(m, {
        get(target, key) {
          if (key === 'generate') return (r) => target.generate(patched(r));
          if (key === 'startTurn') return (r) => target.startTurn(patched(r));
          const v = target[key];
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    },
  };
  const batched = await loadModelWith(shim, dir, { device: 'cpu', maxBatch: 8 });
  const alone = await loadModelWith(shim, dir, { device: 'cpu', maxBatch: 1 });
  const topics = ['the sea', 'a city at night', 'mountains', 'a small robot', 'the history of maps', 'bread', 'winter birds', 'a quiet library'];
  const call = (model, i) =>
    model.chat([{ role: 'user', content: `Write about ${topics[i % topics.length]}.` }], {
      maxNewTokens: opts.tokens,
      temperature: i % 2 === 0 ? 0 : 0.7,
      seed: 1000 + i,
    });
  // Warm-up: page in the weights for both models.
  await call(batched, 0);
  await call(alone, 0);

  const [bw] = await addon.runOp('cpu', 'read_bandwidth', [], { bytes: 1 << 30, iterations: 3 });
  const bandwidth = new Float32Array(bw.data)[0];
  const { isLlmLinear } = await import(pathToFileURL(path.join(root, 'dist', 'quantize.js')).href);
  const weightBytes = linearBytes(dir, isLlmLinear);
  const cpu = addon.devices().cpu;
  console.log(`checkpoint ${dir}`);
  console.log(`cpu: ${cpu.model ?? 'unknown'}, ${cpu.threads ?? '?'} threads; read bandwidth ${fmt(bandwidth, 1)} GB/s; LLM linear weights ${fmt(weightBytes / 1e9, 3)} GB -> at most ${fmt((bandwidth * 1e9) / weightBytes, 1)} weight passes (decode steps) per second`);
  console.log(`${opts.tokens} tokens per stream, EOS ignored, median of ${opts.rounds} rounds (alternating batched / one at a time)\n`);

  const rows = [['streams', 'batched s', 'batched tok/s', 'one-at-a-time s', 'one-at-a-time tok/s', 'speed-up', 'steps/s (batched)', 'tokens equal']];
  const results = [];
  for (const n of opts.streams) {
    const timesB = [];
    const timesA = [];
    let equal = true;
    for (let r = 0; r < opts.rounds; r++) {
      let t = performance.now();
      const rb = await Promise.all(Array.from({ length: n }, (_, i) => call(batched, i)));
      timesB.push((performance.now() - t) / 1000);
      t = performance.now();
      const ra = await Promise.all(Array.from({ length: n }, (_, i) => call(alone, i)));
      timesA.push((performance.now() - t) / 1000);
      for (let i = 0; i < n; i++) {
        const a = ra[i].tokens, b = rb[i].tokens;
        if (a.length !== b.length || a.some((x, j) => x !== b[j])) equal = false;
      }
    }
    const tb = median(timesB), ta = median(timesA);
    const tokens = n * opts.tokens;
    results.push({ streams: n, batchedSeconds: tb, aloneSeconds: ta, batchedTokensPerSecond: tokens / tb, aloneTokensPerSecond: tokens / ta, equal });
    rows.push([n, fmt(tb, 2), fmt(tokens / tb, 1), fmt(ta, 2), fmt(tokens / ta, 1), `${fmt(ta / tb, 2)}x`, fmt(opts.tokens / tb, 1), equal ? 'yes' : 'NO']);
  }
  table(rows);
  await batched.dispose();
  await alone.dispose();
  return { dir, bandwidth, weightBytes, results };
}
