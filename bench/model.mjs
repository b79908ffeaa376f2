// npm run bench -- model --preset <checkpoint-dir | tiny | small | medium | vargpt-v1> [--dtype f32|bf16]
//                        [--device cpu|cuda|cuda:N] [--prompt 595] [--tokens 32] [--no-warmup] [--json]
// npm run bench -- model --family vargpt-v1.1 --preset <dir | tiny | small | medium | full> [--dtype f32|bf16]
//                        [--part understanding|image|both] [--image 448x448] [--tokens 32] [--runs 3]
//                        [--image-runs 3] [--edit-image 512x512] [--seed 1]
//                        [--upstream <VARGPT-v1.1 checkout> --python <venv python>] [--threads 2]
//   (VARGPT-v1.1: bench/_vargpt-v1.1.mjs; understanding, then one 512x512 text-to-image and one
//   edit (--part image); with --upstream the upstream PyTorch code is timed on the same checkpoint
//   in the same run, see bench/upstream/README.md)
// npm run bench -- model --family blip3o --preset <dir | tiny | small | 4b | 8b> [--dtype f32|bf16]
//                        [--part understanding|image|both] [--image 448x448] [--tokens 32] [--runs 3]
//                        [--image-runs 3] [--steps 50] [--flow-steps 30] [--draw-size WxH] [--draw-prompt TEXT]
//                        [--reconstruct] [--seed 1] [--out result.json]
//                        [--upstream <BLIP3o checkout> --python <venv python>] [--threads 2]
//   (BLIP3-o: bench/_blip3o.mjs, through the public API on the loaded model; understanding, then
//   text-to-image at the checkpoint's default size and step counts (--part image): one image end
//   to end and per stage -- LLM, DiT flow steps, the " " negative (first call only: later calls
//   reuse it), UNet Euler steps, VAE -- with the DiT's and UNet's GFLOP per step counted from the
//   weight shapes; --reconstruct adds reconstructImage. With --upstream, bench/upstream's
//   blip3o_understanding.py and blip3o_generation.py run on the same checkpoint in the same run;
//   diffusers on PYTHONPATH, see bench/upstream/README.md)
// Any family: --json prints the result object; --out also writes it to a file (BLIP3-o).
//
// A preset name is synthesized once (random weights, the synth tool's sizes; shared/bench/README.md
// has the upstream PyTorch timings for small and medium) into bench/out/presets/<name>-<dtype>.
// End-to-end VARGPT v1 timings on one checkpoint folder (the tiny fixture, a synthesized preset or
// the real 7B download):
// - load: loadModel wall time. Weights are memory-mapped and their pages are mapped on first use,
//   so one warm-up call of each kind runs first (its time is printed apart; --no-warmup skips it).
// - understanding: CLIP encode + projector, prefill of a --prompt-token prompt (one image's worth
//   of image tokens inside), then --tokens greedy decode steps (EOS ignored). Prefill is read
//   against the FMA peak (≈ GFLOP/s), decode against the read bandwidth (weight bytes per token).
// - text-to-image: one forced image end to end, and per stage from the runtime's profile
//   (`profile: true` synchronises the device at stage edges): LLM passes, VAR blocks + head,
//   CFG + sampling, f-hat updates, VQ-VAE decode.
// - VQ-VAE encode alone (encodeImageTokens of one image).
// - peak RSS of the process.
// Ceilings (cpu): the native peak_flops and read_bandwidth probes, as in `npm run bench -- cpu`
// (on the amx path the GFLOP/s ceiling is the AMX tile peak over the term products per f32 product);
// (cuda): the device's bf16 mma (or FFMA for f32 weights) loop and read bandwidth, as in
// `npm run bench -- cuda`, plus the device memory in use while the model is loaded.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

import { measureVargptV11, measureVargptV11Image, upstreamImageStages, upstreamVargptV11, upstreamVargptV11Image } from './_vargpt-v1.1.mjs';
import { runBlip3o } from './_blip3o.mjs';
import { fmt, loadAddon, pseudo, syntheticPreset, table } from './common.mjs';

// VARGPT_ADDON_PATH selects another build (the cmake-js one with the CUDA library, for instance).
const addon = loadAddon();

function parseArgs(args) {
  const opts = {
    family: 'vargpt-v1',
    preset: undefined,
    dtype: 'f32',
    device: 'cpu',
    prompt: 595,
    tokens: 32,
    json: false,
    seed: 1,
    warmup: true,
    runs: 3,
    imageSize: { width: 448, height: 448 },
    question: 'What is shown in this image?',
    part: 'both',
    imageRuns: undefined,
    editImageSize: { width: 512, height: 512 },
    drawPrompt: 'Please design a drawing of a butterfly on a flower.',
    instruction: 'Make it look like a watercolor painting.',
    upstream: undefined,
    python: 'python3',
    steps: undefined,
    flowSteps: undefined,
    drawSize: undefined,
    reconstruct: false,
    out: undefined,
    threads: 2,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => {
      if (i + 1 >= args.length) throw new Error(`${a} needs a value`);
      return args[++i];
    };
    if (a === '--preset') opts.preset = next();
    else if (a === '--family') opts.family = next();
    else if (a === '--runs') opts.runs = Number(next());
    else if (a === '--image') {
      const [w, h] = next().split('x').map(Number);
      opts.imageSize = { width: w, height: h ?? w };
    } else if (a === '--edit-image') {
      const [w, h] = next().split('x').map(Number);
      opts.editImageSize = { width: w, height: h ?? w };
    } else if (a === '--part') opts.part = next();
    else if (a === '--image-runs') opts.imageRuns = Number(next());
    else if (a === '--draw-prompt') opts.drawPrompt = next();
    else if (a === '--instruction') opts.instruction = next();
    else if (a === '--question') opts.question = next();
    else if (a === '--upstream') opts.upstream = next();
    else if (a === '--python') opts.python = next();
    else if (a === '--steps') opts.steps = Number(next());
    else if (a === '--flow-steps') opts.flowSteps = Number(next());
    else if (a === '--draw-size') {
      const [w, h] = next().split('x').map(Number);
      opts.drawSize = { width: w, height: h ?? w };
    } else if (a === '--reconstruct') opts.reconstruct = true;
    else if (a === '--out') opts.out = path.resolve(next());
    else if (a === '--threads') opts.threads = Number(next());
    else if (a === '--device') opts.device = next();
    else if (a === '--dtype') opts.dtype = next();
    else if (a === '--prompt') opts.prompt = Number(next());
    else if (a === '--tokens') opts.tokens = Number(next());
    else if (a === '--seed') opts.seed = Number(next());
    else if (a === '--json') opts.json = true;
    else if (a === '--no-warmup') opts.warmup = false;
    else throw new Error(`unknown option ${a}`);
  }
  if (!opts.preset) throw new Error('usage: npm run bench -- model --preset <checkpoint-dir> [--device cpu] [--prompt 595] [--tokens 32] [--json]');
  if (!['understanding', 'image', 'both'].includes(opts.part)) throw new Error(`--part ${opts.part}: use understanding, image or both`);
  opts.imageRuns ??= opts.runs;
  return opts;
}

async function resolvePreset(preset, dtype, family) {
  const dir = path.resolve(preset);
  if (existsSync(dir) && statSync(dir).isDirectory()) return dir;
  return syntheticPreset({ family, preset, dtype });
}

function fillerIds(n, info, seed) {
  // Ordinary vocabulary ids (below the image / special ids).
  const top = Math.min(info.llm.vocabSize, info.imageTokenId > 0 ? info.imageTokenId : info.llm.vocabSize);
  const r = pseudo(n, seed, 3, top - 1);
  return Array.from(r, (v) => Math.floor(v));
}

async function weightBytes(dir) {
  const ckpt = await addon.openCheckpoint(dir);
  let llmLinear = 0;
  let dtype = 'f32';
  for (const t of ckpt.list()) {
    if (t.name.startsWith('language_model.') && t.shape.length === 2 && !t.name.includes('embed_tokens')) {
      llmLinear += t.byteLength;
      dtype = t.dtype;
    }
  }
  return { llmLinear, dtype };
}

function llmMatmulParams(llm) {
  const q = llm.heads * llm.headDim;
  const kv = llm.kvHeads * llm.headDim;
  return llm.layers * (llm.hiddenSize * (q + 2 * kv) + q * llm.hiddenSize + 3 * llm.hiddenSize * llm.intermediateSize);
}


export async function run(args) {
  const opts = parseArgs(args);
  const dir = await resolvePreset(opts.preset, opts.dtype, opts.family);
  const out = { checkpoint: dir, device: opts.device, date: new Date().toISOString() };

  let t = performance.now();
  const model = await addon.loadModel(dir, { device: opts.device });
  out.loadSeconds = (performance.now() - t) / 1000;
  const info = model.info();
  out.info = info;
  if (info.family === 'vargpt-v1.1') return runVargptV11(model, info, dir, opts, out);
  if (info.family === 'blip3o') return runBlip3o(addon, model, dir, opts, out, cpuCeilings);
  const { llmLinear, dtype } = await weightBytes(dir);
  out.weights = { llmLinearBytes: llmLinear, dtype };

  // ---- understanding
  const P = llmMatmulParams(info.llm);
  {
    const imageTokens = info.vision ? info.vision.tokens : 0;
    const text = Math.max(2, opts.prompt - imageTokens - 1);
    const ids = [info.bosId, ...fillerIds(Math.floor(text / 2), info, 3)];
    if (imageTokens) ids.push(...new Array(imageTokens).fill(info.imageTokenId));
    ids.push(...fillerIds(text - Math.floor(text / 2), info, 4));
    const request = {
      inputIds: Int32Array.from(ids),
      maxNewTokens: opts.tokens,
      temperature: 0,
      topK: 0,
      topP: 1,
      repetitionPenalty: 1,
      seed: 0,
      stopIds: [],
      ignoreEos: true,
      profile: true,
    };
    if (imageTokens) {
      const S = info.vision.imageSize;
      request.pixelValues = [pseudo(3 * S * S, 7, -1.8, 2.1)];
    }
    if (opts.warmup) {
      // First call: pays the page faults of the memory-mapped CLIP and LLM weights.
      t = performance.now();
      await model.generate({ ...request, maxNewTokens: 2 });
      out.coldUnderstandingSeconds = (performance.now() - t) / 1000;
    }
    t = performance.now();
    const r = await model.generate(request);
    const wall = (performance.now() - t) / 1000;
    const p = r.profile;
    const T = ids.length;
    const steps = p.decodeTokens ?? 0;
    // Prefill ≈ 2·T·P matmul FLOPs + causal attention 2·T²·q_dim per layer (+ one lm_head row).
    const prefillFlops = 2 * T * P + 2 * T * T * info.llm.heads * info.llm.headDim * info.llm.layers;
    // Decode streams every LLM linear weight (and the KV cache so far) once per token.
    const kvBytes = 2 * info.llm.layers * info.llm.kvHeads * info.llm.headDim * 4 * (T + steps / 2);
    out.understanding = {
      promptTokens: T,
      imageTokens,
      wallSeconds: wall,
      visionSeconds: p.visionEncode ?? 0,
      prefillSeconds: p.prefill,
      prefillTokensPerSecond: T / p.prefill,
      prefillGflops: prefillFlops / p.prefill / 1e9,
      decodeTokens: steps,
      decodeSeconds: p.decode ?? 0,
      decodeTokensPerSecond: steps / (p.decode ?? NaN),
      decodeGBps: ((llmLinear + kvBytes) * steps) / (p.decode ?? NaN) / 1e9,
      generated: r.tokens.length,
    };
  }

  // ---- text-to-image
  if (info.var) {
    const ids = [info.bosId, ...fillerIds(20, info, 5)];
    const imageRequest = {
      inputIds: Int32Array.from(ids),
      forceImage: true,
      maxNewTokens: 0,
      temperature: 0,
      topK: 0,
      topP: 1,
      repetitionPenalty: 1,
      seed: 0,
      stopIds: [],
      image: { cfg: 1.5, topK: 900, topP: 0.96, seed: opts.seed },
      profile: true,
    };
    if (opts.warmup) {
      t = performance.now();
      await model.generate(imageRequest);
      out.coldImageSeconds = (performance.now() - t) / 1000;
    }
    t = performance.now();
    const r = await model.generate(imageRequest);
    const wall = (performance.now() - t) / 1000;
    const p = r.profile;
    const v = info.var;
    const L = v.patchNums.reduce((a, pn) => a + pn * pn, 0);
    const mlp = 4 * v.width; // VAR mlp_ratio 4 (exact hidden size is in the checkpoint; used only for the estimate)
    const varFlops = 2 * 2 * L * (v.depth * (4 * v.width * v.width + 2 * v.width * mlp) + v.width * v.codebookSize);
    out.image = {
      wallSeconds: wall,
      size: `${r.image.width}x${r.image.height}`,
      stages: p,
      llmImageTokensPerSecond: (L + 1) / p.imageLlm,
      llmImageGflops: (2 * (L + 1) * P) / p.imageLlm / 1e9,
      varGflops: varFlops / p.varBlocks / 1e9,
    };
  }
  if (info.vqvae?.hasEncoder) {
    const S = info.vqvae.imageSize;
    t = performance.now();
    await model.encodeImageTokens(pseudo(3 * S * S, 9, -1, 1), S, S);
    out.vqvaeEncodeSeconds = (performance.now() - t) / 1000;
  }
  // Before the bandwidth probe, whose 1 GiB buffer would dominate the peak.
  out.peakRssBytes = process.resourceUsage().maxRSS * 1024;
  if (opts.device.startsWith('cuda')) {
    // Device memory in use by the whole process while the model is loaded (weights, the step
    // buffers its allocator keeps cached, the CUDA context), from the driver's free/total.
    const index = opts.device === 'cuda' ? 0 : Number(opts.device.slice(5));
    const d = addon.devices().cuda.devices.find((x) => x.index === index);
    if (d) out.deviceMemory = { usedBytes: d.totalMemory - d.freeMemory, totalBytes: d.totalMemory, name: d.name };
  }
  model.dispose();
  if (opts.device.startsWith('cuda')) {
    const [peakT] = await addon.runOp(opts.device, 'peak_flops', [], { seconds: 1, kind: dtype === 'f32' ? 'fma_f32' : 'mma_bf16' });
    const [bwT] = await addon.runOp(opts.device, 'read_bandwidth', [], { bytes: 1 << 30, iterations: 5 });
    out.ceilings = { gflops: new Float32Array(peakT.data)[0], gbps: new Float32Array(bwT.data)[0], peakKind: dtype === 'f32' ? 'FFMA' : 'bf16 mma' };
  }
  if (opts.device === 'cpu') {
    out.ceilings = await cpuCeilings();
    if (out.ceilings.kernels === 'amx') {
      // The GEMMs of the GFLOP/s stages run on the tiles (bf16 weights: three term products per
      // f32 product; f32 weights: six), so their ceiling is the tile peak over the terms; the FMA
      // peak is kept for the header.
      const [tileT] = await addon.runOp('cpu', 'peak_flops', [], { seconds: 1, kind: 'amx_bf16' });
      const terms = dtype === 'bf16' ? 3 : 6;
      out.ceilings.fmaGflops = out.ceilings.gflops;
      out.ceilings.tileGflops = new Float32Array(tileT.data)[0];
      out.ceilings.gflops = out.ceilings.tileGflops / terms;
      out.ceilings.gflopsKind = `AMX tile peak / ${terms}`;
    }
  }


  if (opts.json) {
    console.log(JSON.stringify(out, null, 2));
    return out;
  }
  const c = out.ceilings;
  console.log(`checkpoint ${dir} (${dtype} LLM weights, ${(llmLinear / 1e9).toFixed(3)} GB of LLM linear weights), device ${opts.device}`);
  if (c && c.peakKind) console.log(`ceilings: ${c.peakKind} peak ${c.gflops.toFixed(0)} GFLOP/s, device read bandwidth ${c.gbps.toFixed(0)} GB/s`);
  else if (c && c.gflopsKind)
    console.log(`ceilings: ${c.gflopsKind} = ${c.gflops.toFixed(1)} GFLOP/s (tile peak ${c.tileGflops.toFixed(0)}, FMA peak ${c.fmaGflops.toFixed(1)}), read bandwidth ${c.gbps.toFixed(1)} GB/s, ${c.threads} threads, kernels ${c.kernels}`);
  else if (c) console.log(`ceilings: FMA peak ${c.gflops.toFixed(1)} GFLOP/s, read bandwidth ${c.gbps.toFixed(1)} GB/s, ${c.threads} threads, kernels ${c.kernels}`);
  console.log(`load ${fmt(out.loadSeconds)} s, peak RSS ${(out.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
  if (out.deviceMemory)
    console.log(`device memory in use with the model loaded: ${(out.deviceMemory.usedBytes / 2 ** 30).toFixed(2)} of ${(out.deviceMemory.totalBytes / 2 ** 30).toFixed(1)} GiB (${out.deviceMemory.name})`);
  if (opts.warmup)
    console.log(`first (cold) calls, not in the table: understanding with 2 new tokens ${fmt(out.coldUnderstandingSeconds)} s, image ${fmt(out.coldImageSeconds)} s`);
  console.log('');
  const u = out.understanding;
  const rows = [['stage', 'seconds', 'rate', 'vs ceiling']];
  rows.push(['CLIP encode + projector', fmt(u.visionSeconds), '', '']);
  rows.push([`prefill (${u.promptTokens} tokens)`, fmt(u.prefillSeconds), `${fmt(u.prefillTokensPerSecond, 1)} tok/s, ≈${fmt(u.prefillGflops, 1)} GFLOP/s`, c ? `${fmt((100 * u.prefillGflops) / c.gflops, 0)}% peak` : '']);
  rows.push([`decode (${u.decodeTokens} steps)`, fmt(u.decodeSeconds), `${fmt(u.decodeTokensPerSecond, 2)} tok/s, ${fmt(u.decodeGBps, 1)} GB/s`, c ? `${fmt((100 * u.decodeGBps) / c.gbps, 0)}% bw` : '']);
  if (out.image) {
    const im = out.image;
    const s = im.stages;
    rows.push([`text-to-image ${im.size} end to end`, fmt(im.wallSeconds), '', '']);
    rows.push(['  LLM passes (start token + scales)', fmt(s.imageLlm), `${fmt(im.llmImageTokensPerSecond, 1)} tok/s, ≈${fmt(im.llmImageGflops, 1)} GFLOP/s`, c ? `${fmt((100 * im.llmImageGflops) / c.gflops, 0)}% peak` : '']);
    rows.push(['  VAR blocks + head (2 CFG rows)', fmt(s.varBlocks), `≈${fmt(im.varGflops, 1)} GFLOP/s`, c ? `${fmt((100 * im.varGflops) / c.gflops, 0)}% peak` : '']);
    rows.push(['  CFG + top-k/top-p sampling', fmt(s.sampling), '', '']);
    rows.push(['  f-hat updates + next input', fmt(s.fhat), '', '']);
    rows.push(['  VQ-VAE decode', fmt(s.vqvaeDecode), '', '']);
  }
  if (out.vqvaeEncodeSeconds !== undefined) rows.push(['VQ-VAE encode alone', fmt(out.vqvaeEncodeSeconds), '', '']);
  table(rows);
  return out;
}

async function cpuCeilings() {
  const cpu = addon.devices().cpu;
  const [peakT] = await addon.runOp('cpu', 'peak_flops', [], { seconds: 1 });
  const [bwT] = await addon.runOp('cpu', 'read_bandwidth', [], { bytes: 1 << 30, iterations: 3 });
  return { gflops: new Float32Array(peakT.data)[0], gbps: new Float32Array(bwT.data)[0], threads: cpu.threads, kernels: cpu.kernels };
}

async function runVargptV11(model, info, dir, opts, out) {
  if (opts.device !== 'cpu') throw new Error('the VARGPT-v1.1 benchmark runs on the CPU (the CUDA backend has not run this family)');
  const wantU = opts.part !== 'image';
  const wantI = opts.part !== 'understanding';
  if (wantU) out.understanding = await measureVargptV11(addon, model, info, dir, opts);
  if (wantI) out.image = await measureVargptV11Image(addon, model, info, dir, opts);
  out.peakRssBytes = process.resourceUsage().maxRSS * 1024;
  model.dispose();
  out.ceilings = await cpuCeilings();
  if (opts.upstream && wantU) out.upstream = await upstreamVargptV11(dir, opts);
  if (opts.upstream && wantI) out.upstreamImage = await upstreamVargptV11Image(dir, opts);
  if (opts.json) {
    console.log(JSON.stringify(out, null, 2));
    return out;
  }
  const c = out.ceilings;
  const u = out.understanding;
  const up = out.upstream;
  console.log(`checkpoint ${dir} (VARGPT-v1.1${u ? `, ${u.dtype} LLM weights, ${(u.llmLinearBytes / 1e9).toFixed(3)} GB of LLM linear weights + head` : ''}), device cpu`);
  console.log(`ceilings: FMA peak ${c.gflops.toFixed(1)} GFLOP/s, read bandwidth ${c.gbps.toFixed(1)} GB/s, ${c.threads} threads, kernels ${c.kernels}`);
  console.log(`load ${fmt(out.loadSeconds)} s, peak RSS ${(out.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
  if (u) printUnderstanding(u, c, up);
  if (out.image) printImage(out.image, c, out.upstreamImage);
  return out;
}

function printUnderstanding(u, c, up) {
  console.log('');
  console.log(`understanding: image ${u.image.requested.width}x${u.image.requested.height} -> ${u.image.resized.width}x${u.image.resized.height}, ${u.image.patches} patches, ${u.image.imageTokens} tokens; medians of ${u.runs} runs`);
  if (up) console.log(`upstream PyTorch: torch ${up.versions?.torch ?? '?'}, transformers ${up.versions?.transformers ?? '?'}, ${up.threads ?? '?'} threads, ${up.dtype}, attention ${up.attn_implementation ?? '?'}; medians of ${up.runs} runs`);
  const rows = [['stage', 'seconds', 'rate', 'vs ceiling', ...(up ? ['upstream', 'speed-up'] : [])]];
  const upstream = up ? upstreamStages(up) : null;
  if (upstream && upstream.promptTokens !== u.promptTokens) {
    console.log(`note: upstream's prompt has ${upstream.promptTokens} tokens, this runtime's ${u.promptTokens}`);
  }
  const vs = (ours, theirs, unit = 's') => (upstream ? [`${fmt(theirs)} ${unit}`, `${(theirs / ours).toFixed(2)}x`] : []);
  const perToken = u.decodeSeconds / u.decodeTokens;
  rows.push([`ViT + merger (${u.image.patches} patches)`, `${fmt(u.visionSeconds)} s`, `≈${fmt(u.visionGflops, 1)} GFLOP/s`, `${fmt((100 * u.visionGflops) / c.gflops, 0)}% peak`, ...vs(u.visionSeconds, upstream?.vision)]);
  rows.push([`prefill (${u.promptTokens} tokens)`, `${fmt(u.prefillSeconds)} s`, `${fmt(u.prefillTokensPerSecond, 1)} tok/s, ≈${fmt(u.prefillGflops, 1)} GFLOP/s`, `${fmt((100 * u.prefillGflops) / c.gflops, 0)}% peak`, ...vs(u.prefillSeconds, upstream?.prefill)]);
  rows.push(['first token (ViT + prefill)', `${fmt(u.visionSeconds + u.prefillSeconds)} s`, '', '', ...vs(u.visionSeconds + u.prefillSeconds, upstream?.firstToken)]);
  rows.push([`decode (${u.decodeTokens} steps)`, `${fmt(perToken * 1e3, 2)} ms/tok`, `${fmt(u.decodeTokensPerSecond, 2)} tok/s, ${fmt(u.decodeGBps, 1)} GB/s`, `${fmt((100 * u.decodeGBps) / c.gbps, 0)}% bw`, ...vs(perToken * 1e3, upstream ? upstream.decodePerToken * 1e3 : undefined, 'ms/tok')]);
  if (upstream) {
    console.log(
      "upstream's prefill is its LLM forward on the prompt embeddings, with lm_head over every prompt position as upstream's generate computes it; " +
        "its first token is its whole first forward (ViT included). Peak RSS: upstream " +
        `${fmt(upstream.peakRssMiB, 0)} MiB during inference.`,
    );
  }
  table(rows);
}

// Text-to-image and edit: one table per case, this runtime's profile stages beside upstream's
// matching stages (bench/upstream/README.md says what each upstream key covers).
function printImage(im, c, upAll) {
  console.log('');
  console.log(`image: ${im.scales.length} scales to ${im.scales.at(-1).join('x')} tokens, cfg ${im.cfg}, tau ${im.tau}, top-k ${im.topK}, top-p ${im.topP}; Infinity ${im.generator.blocks} blocks, width ${im.generator.width}; medians of ${im.runs} runs after ${im.warmup ? 'a warm-up' : 'no warm-up'}`);
  if (upAll) console.log(`upstream PyTorch: torch ${upAll.versions?.torch ?? '?'}, transformers ${upAll.versions?.transformers ?? '?'}, ${upAll.threads ?? '?'} threads, ${upAll.dtype}; medians of ${upAll.runs} runs after ${upAll.warmup} warm-up; peak RSS ${fmt(upAll.memory_mb?.peak_rss_inference ?? NaN, 0)} MiB during inference`);
  for (const name of ['t2i', 'edit']) {
    const r = im[name];
    if (!r) continue;
    const upc = upAll?.cases?.[name];
    const u = upc ? upstreamImageStages(upc) : null;
    const s = r.stageSeconds;
    console.log('');
    const what = name === 't2i' ? `text-to-image ${r.size}` : `edit ${r.size} (source ${r.source.requested.width}x${r.source.requested.height} -> ${r.source.resized.width}x${r.source.resized.height}, ${r.source.imageTokens} image tokens)`;
    console.log(`${what}, prompt ${r.promptTokens} tokens${u && u.promptTokens !== r.promptTokens ? ` (upstream's: ${u.promptTokens})` : ''}`);
    // The start token and the token predicted after it: the same greedy pick on both sides.
    if (upc) console.log(`new tokens: ${r.tokens.join(', ')}; upstream's: ${upc.output_ids_tail.join(', ')}`);
    const rows = [['stage', 'seconds', 'rate', 'vs ceiling', ...(u ? ['upstream s', 'speed-up'] : [])]];
    const vs = (ours, theirs) => (u ? [fmt(theirs), ours > 0 ? `${(theirs / ours).toFixed(2)}x` : '-'] : []);
    const pct = (g) => `${fmt((100 * g) / c.gflops, 0)}% peak`;
    const pre = (s.visionEncode ?? 0) + (s.prefill ?? 0);
    rows.push([name === 'edit' ? 'ViT + prompt prefill' : 'prompt prefill', fmt(pre), '', '', ...vs(pre, u?.prefill)]);
    rows.push(['LLM: start token + image scales (2 CFG rows)', fmt(s.imageLlm), `≈${fmt(r.imageLlmGflops, 1)} GFLOP/s`, pct(r.imageLlmGflops), ...vs(s.imageLlm, u?.imageLlm)]);
    rows.push(['condition (pool, context, AdaLN, start input)', fmt(s.imageCondition), '', '', ...vs(s.imageCondition, u?.imageCondition)]);
    rows.push(['Infinity: projector + blocks + head', fmt(s.infinityBlocks), `≈${fmt(r.infinityGflops, 1)} GFLOP/s`, pct(r.infinityGflops), ...vs(s.infinityBlocks, u?.infinityBlocks)]);
    rows.push(['CFG + top-k/top-p bit sampling', fmt(s.sampling, 4), '', '', ...vs(s.sampling, u?.sampling)]);
    rows.push(['codes, upsampling, next-scale input', fmt(s.codes, 4), '', '', ...vs(s.codes, u?.codes)]);
    // Direct-convolution FLOPs; the CPU backend runs the 3x3 convolutions as Winograd, which does
    // fewer multiplies, so this rate can pass the GEMM peak.
    rows.push(['BSQ VAE decode', fmt(s.vaeDecode), `≈${fmt(r.vaeDecodeGflops, 1)} GFLOP/s (direct-conv equiv.)`, pct(r.vaeDecodeGflops), ...vs(s.vaeDecode, u?.vaeDecode)]);
    if (u) {
      rows.push(['upstream only: lm_head on the last scale', '', '', '', fmt(u.lmHeadLastScale), '']);
      rows.push(['upstream only: PNG write, CFG mix, rest', '', '', '', fmt(u.rest), '']);
    }
    rows.push(['end to end', fmt(r.wallSeconds), '', '', ...vs(r.wallSeconds, u?.wall)]);
    table(rows);
  }
}

// The upstream script's stage medians, in this benchmark's stages (seconds).
function upstreamStages(up) {
  const t = up.timings_ms;
  return {
    vision: t.vit_encode_merger / 1e3,
    prefill: t.prefill_llm_only / 1e3,
    firstToken: t.prefill_full_forward / 1e3,
    decodePerToken: t.decode_per_token / 1e3,
    promptTokens: up.prompt_tokens,
    peakRssMiB: up.memory_mb?.peak_rss_process,
  };
}
