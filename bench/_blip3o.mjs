// The BLIP3-o part of `npm run bench -- model --family blip3o`, through the package's public API
// (model.ask, model.generateImage, model.reconstructImage with profile: true) on the native model
// bench/model.mjs loaded:
// - understanding of one image (Qwen2.5-VL ViT + merger, prefill of the chat-template prompt,
//   greedy decode with EOS ignored), medians of --runs after a warm-up;
// - drawing: one text-to-image end to end and per stage (stage 1: the LLM pass over prompt + [IMG]
//   + the learned queries, the DiT flow loop; stage 2: the UNet Euler loop, the VAE decode). The
//   " " negative's LLM + DiT loop runs only on the first drawing call per loaded model (later calls
//   reuse its cached features), so the first call is reported on its own and the --image-runs
//   medians after it are the steady state without it. --reconstruct adds model.reconstructImage
//   (the same stages after a ViT encode of the 448x448 source);
// read against this machine's ceilings; with --upstream, the upstream PyTorch implementation
// (bench/upstream/blip3o_understanding.py and blip3o_generation.py) on the same checkpoint, in the
// same run, with the same question, caption, sizes and step counts.
//
// FLOP estimates (2 FLOPs per multiply-add; norms, softmax, activations, the samplers' elementwise
// work not counted), from the checkpoint's weight shapes:
// - a linear weight [O, I] costs O·I multiply-adds per row it is applied to, a convolution weight
//   [O, I, kh, kw] O·I·kh·kw per output position;
// - DiT (Lumina-Next with cross-attention), 2 CFG rows: per flow step, every layer's linears over
//   the grid² image tokens and the AdaLN / timestep linears once per row, plus attention
//   2·N²·C (self) + 2·N·M·C (cross) per layer (N image tokens, M = n_query caption tokens, C the
//   to_q width); once per loop, the caption side (caption projection and embedder, every layer's
//   cross-attention keys and values over the M tokens), which the runtime prepares once and reuses
//   at every step (upstream's diffusers code recomputes it per step);
// - UNet (SDXL layout), 2 CFG rows: per Euler step, convolutions and linears at the resolution of
//   their block (down block i at latent/2^i, its downsampler's output at latent/2^(i+1), the mid
//   block at the lowest level, up block i at latent/2^(n-1-i), its upsampler's conv one level up),
//   time / text-time embeddings once per row, plus attention 2·T²·C (self) + 2·T·M·C (cross) per
//   transformer block of T tokens; once per loop, the cross-attention keys and values over the M
//   context tokens (cached by the runtime as the DiT's);
// - VAE decoder: post_quant_conv and the decoder's convolutions at their level (up block i at
//   latent·2^i, its upsampler's conv at latent·2^(i+1), conv_out at full size), the mid block's
//   attention 2·T²·C; direct-convolution counts (a Winograd 3x3 does fewer multiplies, so this rate
//   can pass the GEMM peak).
// - LLM stage: 2·T·P + 2·T²·q·layers (T = prompt + n_query, P the LLM's matmul weights per token).
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { runPython, understandingArgs } from './_vargpt-v1.1.mjs';
import { fmt, median, root, table } from './common.mjs';

// The public model on the already-loaded native one; `ignoreEos` is added to the requests the
// public API builds while `patch.ignoreEos` is set (understanding runs a fixed number of tokens).
async function publicModel(addon, nativeModel, dir) {
  const { loadModelWith } = await import(pathToFileURL(path.join(root, 'dist', 'model.js')).href);
  const patch = { ignoreEos: false };
  const proxied = new Proxy(nativeModel, {
    get(target, key) {
      if (key === 'generate') return (request) => target.generate(patch.ignoreEos ? { ...request, ignoreEos: true } : request);
      const v = target[key];
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const shim = { devices: () => addon.devices(), createCancelToken: () => addon.createCancelToken(), loadModel: async () => proxied };
  const model = await loadModelWith(shim, dir, { device: nativeModel.info().device });
  return { model, patch };
}

// A synthetic RGB image (values do not affect speed).
function rgb(width, height, seed) {
  const data = new Uint8Array(width * height * 3);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  return { width, height, data };
}

// name -> shape of every tensor in a folder's safetensors file (the header alone).
export function safetensorsShapes(folder) {
  const file = readdirSync(folder).find((f) => f.endsWith('.safetensors'));
  if (!file) throw new Error(`${folder}: no .safetensors file`);
  const fd = openSync(path.join(folder, file), 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const header = Buffer.alloc(Number(len.readBigUInt64LE(0)));
    readSync(fd, header, 0, header.length, 8);
    const json = JSON.parse(header.toString('utf8'));
    delete json.__metadata__;
    return new Map(Object.entries(json).map(([k, v]) => [k, v.shape]));
  } finally {
    closeSync(fd);
  }
}

// Multiply-adds of the weights (linear and conv) of `shapes`, each times positionsOf(name) (null: skip).
export function weightMacs(shapes, positionsOf) {
  let macs = 0;
  for (const [name, s] of shapes) {
    if (!name.endsWith('.weight') || s.length < 2) continue;
    const n = positionsOf(name);
    if (n !== null) macs += s.reduce((a, b) => a * b, 1) * n;
  }
  return macs;
}

// Attention score + value multiply-adds of every `<prefix>.<attn>.to_q.weight`: 2·T·S·C, T query
// tokens and S keys from tokensOf(prefix, attn).
function attentionMacs(shapes, attn, tokensOf) {
  let macs = 0;
  for (const [name, s] of shapes) {
    const m = new RegExp(`^(.*)\\.${attn}\\.to_q\\.weight$`).exec(name);
    if (!m) continue;
    const [T, S] = tokensOf(m[1]);
    macs += 2 * T * S * s[0];
  }
  return macs;
}

const CONDITIONING = /(^|\.)(time_caption_embed|time_embedding|add_embedding)\.|\.time_emb_proj\.|\.norm1\.linear\.|^norm_out\.linear_1\./;

// DiT multiply-adds of one row: `step`, one forward over N image tokens; `context`, the caption
// side (projection, pooled caption embedding, every layer's cross-attention keys and values over
// the M caption tokens), which the runtime computes once per flow loop.
export function ditMacs(shapes, N, M) {
  const context = /^caption_projection\.|^time_caption_embed\.caption_embedder\.|\.attn2\.to_[kv]\./;
  const step = weightMacs(shapes, (name) => (context.test(name) ? null : CONDITIONING.test(name) ? 1 : N));
  return {
    step: step + attentionMacs(shapes, 'attn1', () => [N, N]) + attentionMacs(shapes, 'attn2', () => [N, M]),
    context: weightMacs(shapes, (name) => (!context.test(name) ? null : CONDITIONING.test(name) ? 1 : M)),
  };
}

// UNet level (0 = the latent's resolution) of a weight or block prefix, n levels.
export function unetLevel(name, n) {
  let m;
  if ((m = /^down_blocks\.(\d+)\.downsamplers\./.exec(name))) return Number(m[1]) + 1;
  if ((m = /^down_blocks\.(\d+)\./.exec(name))) return Number(m[1]);
  if (name.startsWith('mid_block.')) return n - 1;
  if ((m = /^up_blocks\.(\d+)\.upsamplers\./.exec(name))) return n - 2 - Number(m[1]);
  if ((m = /^up_blocks\.(\d+)\./.exec(name))) return n - 1 - Number(m[1]);
  return 0;
}

// UNet multiply-adds of one row at an h x w latent: `step`, one forward; `context`, the
// cross-attention keys and values over the M context tokens, computed once per Euler loop.
export function unetMacs(shapes, levels, h, w, M) {
  const at = (level) => (h >> level) * (w >> level);
  const kv = /\.attn2\.to_[kv]\./;
  const step = weightMacs(shapes, (name) => (kv.test(name) ? null : CONDITIONING.test(name) ? 1 : at(unetLevel(name, levels))));
  const T = (prefix) => at(unetLevel(`${prefix}.`, levels));
  return {
    step: step + attentionMacs(shapes, 'attn1', (p) => [T(p), T(p)]) + attentionMacs(shapes, 'attn2', (p) => [T(p), M]),
    context: weightMacs(shapes, (name) => (kv.test(name) ? M : null)),
  };
}

// VAE decoder multiply-adds for an h x w latent (n levels).
export function vaeDecodeMacs(shapes, levels, h, w) {
  const scale = (name) => {
    let m;
    if ((m = /^decoder\.up_blocks\.(\d+)\.upsamplers\./.exec(name))) return 2 ** (Number(m[1]) + 1);
    if ((m = /^decoder\.up_blocks\.(\d+)\./.exec(name))) return 2 ** Number(m[1]);
    if (/^decoder\.(conv_out|conv_norm_out)\./.test(name)) return 2 ** (levels - 1);
    return 1;
  };
  const linear = weightMacs(shapes, (name) => (name.startsWith('decoder.') || name.startsWith('post_quant_conv.') ? h * w * scale(name) ** 2 : null));
  const attention = [...shapes].filter(([k]) => /^decoder\.mid_block\.attentions\.\d+\.to_q\.weight$/.test(k)).reduce((a, [, s]) => a + 2 * h * w * h * w * s[0], 0);
  return linear + attention;
}

function llmParams(llm) {
  const q = llm.heads * llm.headDim;
  const kv = llm.kvHeads * llm.headDim;
  return { q, kv, P: llm.layers * (llm.hiddenSize * (q + 2 * kv) + q * llm.hiddenSize + 3 * llm.hiddenSize * llm.intermediateSize) };
}

// ---- understanding

export async function measureBlip3oUnderstanding(addon, model, patch, dir, config, opts) {
  const info = model.info;
  if (!info.vision) throw new Error(`${dir} has no vision tower; the BLIP3-o understanding benchmark reads an image`);
  const ckpt = await addon.openCheckpoint(dir);
  let linearBytes = 0;
  let dtype = 'f32';
  const names = new Set(ckpt.list().map((t) => t.name));
  for (const t of ckpt.list()) {
    // The decode step streams every LLM linear layer and the head (the embedding when tied).
    const head = t.name === 'lm_head.weight' || (t.name === 'model.embed_tokens.weight' && !names.has('lm_head.weight'));
    if ((t.name.startsWith('model.layers.') && t.shape.length === 2) || head) {
      linearBytes += t.byteLength;
      dtype = t.dtype;
    }
  }
  const image = rgb(opts.imageSize.width, opts.imageSize.height, 7);
  const ask = (maxNewTokens) => model.ask(image, opts.question, { maxNewTokens, profile: true });
  patch.ignoreEos = true;
  let runs;
  let reply;
  try {
    if (opts.warmup) await ask(2);
    runs = [];
    for (let i = 0; i < opts.runs; i++) {
      reply = await ask(opts.tokens);
      runs.push(reply.profile);
    }
  } finally {
    patch.ignoreEos = false;
  }
  const stage = (k) => median(runs.map((p) => p[k] ?? NaN));
  const vision = stage('visionEncode');
  const prefill = stage('prefill');
  const decode = stage('decode');
  const steps = runs[0].decodeTokens ?? 0;
  const T = reply.promptTokens;

  const dist = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  const pre = dist.parseQwen2VlImageConfig(JSON.parse(readFileSync(path.join(dir, 'preprocessor_config.json'), 'utf8')));
  const v = info.vision;
  const resized = dist.smartResize(image.height, image.width, v.patchSize * v.mergeSize, pre.minPixels, pre.maxPixels);
  const patches = (resized.height / v.patchSize) * (resized.width / v.patchSize);
  const imageTokens = patches / (v.mergeSize * v.mergeSize);

  const llm = info.llm;
  const { q, kv, P } = llmParams(llm);
  const prefillFlops = 2 * T * P + 2 * T * T * q * llm.layers + 2 * llm.hiddenSize * llm.vocabSize;
  // ViT: per block qkv, proj and the SwiGLU MLP over every patch, attention over the whole image in
  // the full-attention blocks and over window_size² / patch² patches elsewhere; then the merger.
  const vc = config.vision_config ?? {};
  const E = v.embedDim;
  const I = vc.intermediate_size ?? 4 * E;
  const full = new Set(vc.fullatt_block_indexes ?? []);
  const window = Math.min(patches, ((vc.window_size ?? 112) / v.patchSize) ** 2);
  const m2 = v.mergeSize * v.mergeSize;
  let vitMacs = patches * v.patchValues * E + (patches / m2) * (m2 * E * m2 * E + m2 * E * v.outHidden);
  for (let b = 0; b < v.depth; b++) vitMacs += patches * (4 * E * E + 3 * E * I) + 2 * patches * (!v.windowed || full.has(b) ? patches : window) * E;
  const kvBytes = 2 * llm.layers * kv * 4 * (T + steps / 2);
  return {
    dtype,
    llmLinearBytes: linearBytes,
    question: opts.question,
    image: { requested: opts.imageSize, resized, patches, imageTokens },
    promptTokens: T,
    runs: opts.runs,
    visionSeconds: vision,
    visionGflops: (2 * vitMacs) / vision / 1e9,
    prefillSeconds: prefill,
    prefillTokensPerSecond: T / prefill,
    prefillGflops: prefillFlops / prefill / 1e9,
    decodeTokens: steps,
    decodeSeconds: decode,
    sampleTextSeconds: stage('sampleText'),
    decodeTokensPerSecond: steps / decode,
    decodeGBps: ((linearBytes + kvBytes) * steps) / decode / 1e9,
    samples: runs,
  };
}

// ---- drawing

const DRAW_KEYS = ['visionEncode', 'llm', 'flow', 'flowSteps', 'negative', 'negativeSteps', 'unet', 'unetSteps', 'vae'];

function pickStages(profile) {
  return Object.fromEntries(DRAW_KEYS.filter((k) => profile[k] !== undefined).map((k) => [k, profile[k]]));
}

export async function measureBlip3oImage(addon, model, dir, opts) {
  const info = model.info;
  const im = info.image;
  if (!im) throw new Error(`${dir}: this model cannot draw (${info.imageUnavailable ?? 'no drawing weights'})`);
  const d = model.defaults.image;
  const width = opts.drawSize?.width ?? d.width;
  const height = opts.drawSize?.height ?? d.height;
  const options = { steps: opts.steps ?? d.steps, guidance: d.guidance, flowSteps: opts.flowSteps ?? d.flowSteps, flowGuidance: d.flowGuidance, width, height, seed: opts.seed, profile: true };

  // Sizes and multiply-adds per step (one row; both CFG rows are counted below).
  const ckpt = await addon.openCheckpoint(dir);
  const ditShapes = new Map(
    ckpt
      .list()
      .filter((t) => t.name.startsWith('model.dit.model.'))
      .map((t) => [t.name.slice('model.dit.model.'.length), t.shape]),
  );
  const unetShapes = safetensorsShapes(path.join(dir, 'diffusion-decoder', 'unet'));
  const vaeShapes = safetensorsShapes(path.join(dir, 'diffusion-decoder', 'vae'));
  const grid = d.grid;
  const N = grid * grid;
  const M = info.nQuery;
  const lh = height / im.vae.downsample;
  const lw = width / im.vae.downsample;
  const levels = im.unet.blockOutChannels.length;
  const vaeLevels = [...vaeShapes.keys()].filter((k) => /^decoder\.up_blocks\.\d+\.resnets\.0\.conv1\.weight$/.test(k)).length;
  const dit = ditMacs(ditShapes, N, M);
  const unet = unetMacs(unetShapes, levels, lh, lw, M);
  // FLOPs of a loop of n steps, both CFG rows: n steps and the context side once.
  const ditLoop = (n) => 2 * 2 * (n * dit.step + dit.context);
  const unetLoop = (n) => 2 * 2 * (n * unet.step + unet.context);
  const vaeFlops = 2 * vaeDecodeMacs(vaeShapes, vaeLevels, lh, lw);
  const { q, P } = llmParams(info.llm);
  const llmFlops = (T) => 2 * T * P + 2 * T * T * q * info.llm.layers;

  const cases = { t2i: () => model.generateImage(opts.drawPrompt, options) };
  if (opts.reconstruct) {
    const source = rgb(448, 448, 11);
    cases.reconstruct = () => model.reconstructImage(source, options);
  }
  const out = {
    options: { ...options, caption: opts.drawPrompt },
    grid,
    nQuery: M,
    latent: [lh, lw],
    dit: im.dit,
    unet: im.unet,
    vae: im.vae,
    runs: opts.imageRuns,
    flops: { ditStep: 4 * dit.step, ditContext: 4 * dit.context, unetStep: 4 * unet.step, unetContext: 4 * unet.context, vae: vaeFlops },
  };
  for (const [name, draw] of Object.entries(cases)) {
    const timed = async () => {
      const t = performance.now();
      const r = await draw();
      const wall = (performance.now() - t) / 1000;
      return { wall, size: `${r.image.width}x${r.image.height}`, promptTokens: r.promptTokens, profile: pickStages(r.profile) };
    };
    // The first call of the model draws the negative too (only the first case pays it).
    const first = await timed();
    const runs = [];
    for (let i = 0; i < opts.imageRuns; i++) runs.push(await timed());
    const stages = {};
    for (const k of DRAW_KEYS) {
      const xs = runs.map((x) => x.profile[k]).filter((x) => x !== undefined);
      if (xs.length) stages[k] = median(xs);
    }
    const T = first.promptTokens + M;
    out[name] = {
      size: first.size,
      promptTokens: first.promptTokens,
      first: { wallSeconds: first.wall, ...first.profile },
      wallSeconds: median(runs.map((x) => x.wall)),
      stageSeconds: stages,
      samples: runs.map((x) => ({ wall: x.wall, ...x.profile })),
      llmGflops: llmFlops(T) / stages.llm / 1e9,
      ditGflops: ditLoop(stages.flowSteps) / stages.flow / 1e9,
      unetGflops: unetLoop(stages.unetSteps) / stages.unet / 1e9,
      vaeGflops: vaeFlops / stages.vae / 1e9,
    };
  }
  return out;
}

// ---- upstream

const upstreamScript = (name) => path.join(root, 'bench', 'upstream', name);

export function upstreamBlip3oUnderstanding(dir, opts) {
  return runPython(opts, [...understandingArgs(upstreamScript('blip3o_understanding.py'), dir, opts), '--warmup', opts.warmup ? '1' : '0']);
}

// Upstream's text-to-image (float32 only), with the same caption, size and step counts; its
// negative runs on every call (no cache), so its total holds it each time.
export function upstreamBlip3oImage(dir, opts, image) {
  const o = image.options;
  const args = [
    upstreamScript('blip3o_generation.py'),
    '--model', dir,
    '--upstream', opts.upstream,
    '--caption', o.caption,
    '--height', String(o.height),
    '--width', String(o.width),
    '--steps', String(o.steps),
    '--flow-steps', String(o.flowSteps),
    '--seed', String(opts.seed),
    '--runs', String(opts.imageRuns),
    '--warmup', opts.warmup ? '1' : '0',
    '--threads', String(opts.threads),
    '--quiet',
  ];
  // The flow scheduler config the runtime reads beside config.json, when the checkpoint has one.
  if (readdirSync(dir).includes('scheduler')) args.push('--flow-scheduler', path.join(dir, 'scheduler'));
  return runPython(opts, args);
}

// ---- the whole family run

export async function runBlip3o(addon, nativeModel, dir, opts, out, ceilings) {
  if (opts.device !== 'cpu') throw new Error('the BLIP3-o benchmark runs on the CPU (its ceilings and upstream side are the CPU ones)');
  const { model, patch } = await publicModel(addon, nativeModel, dir);
  const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const wantU = opts.part !== 'image';
  const wantI = opts.part !== 'understanding';
  if (wantU) out.understanding = await measureBlip3oUnderstanding(addon, model, patch, dir, config, opts);
  if (wantI) out.image = await measureBlip3oImage(addon, model, dir, opts);
  out.peakRssBytes = process.resourceUsage().maxRSS * 1024;
  await model.dispose();
  out.ceilings = await ceilings();
  if (opts.upstream && wantU) out.upstream = await upstreamBlip3oUnderstanding(dir, opts);
  if (opts.upstream && wantI) out.upstreamImage = await upstreamBlip3oImage(dir, opts, out.image);
  if (opts.out) writeFileSync(opts.out, `${JSON.stringify(out, null, 2)}\n`);
  if (opts.json) {
    console.log(JSON.stringify(out, null, 2));
    return out;
  }
  const c = out.ceilings;
  const u = out.understanding;
  console.log(`checkpoint ${dir} (BLIP3-o${u ? `, ${u.dtype} LLM weights, ${(u.llmLinearBytes / 1e9).toFixed(3)} GB of LLM linear weights + head` : ''}), device cpu`);
  console.log(`ceilings: FMA peak ${c.gflops.toFixed(1)} GFLOP/s, read bandwidth ${c.gbps.toFixed(1)} GB/s, ${c.threads} threads, kernels ${c.kernels}`);
  console.log(`load ${fmt(out.loadSeconds)} s, peak RSS ${(out.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
  if (u) printUnderstanding(u, c, out.upstream);
  if (out.image) printImage(out.image, c, out.upstreamImage);
  if (opts.out) console.log(`\nJSON written to ${opts.out}`);
  return out;
}

function printUnderstanding(u, c, up) {
  console.log('');
  console.log(`understanding: image ${u.image.requested.width}x${u.image.requested.height} -> ${u.image.resized.width}x${u.image.resized.height}, ${u.image.patches} patches, ${u.image.imageTokens} tokens; medians of ${u.runs} runs`);
  const t = up?.timings_ms;
  if (up) {
    console.log(`upstream PyTorch: torch ${up.versions?.torch ?? '?'}, transformers ${up.versions?.transformers ?? '?'}, ${up.threads ?? '?'} threads, ${up.dtype}, attention ${up.attn_implementation ?? '?'}; medians of ${up.runs} runs; peak RSS ${fmt(up.memory_mb?.peak_rss_process ?? NaN, 0)} MiB`);
    if (up.prompt_tokens !== u.promptTokens) console.log(`note: upstream's prompt has ${up.prompt_tokens} tokens, this runtime's ${u.promptTokens}`);
  }
  const rows = [['stage', 'seconds', 'rate', 'vs ceiling', ...(up ? ['upstream', 'speed-up'] : [])]];
  const vs = (ours, theirs, unit = 's') => (up ? [`${fmt(theirs)} ${unit}`, `${(theirs / ours).toFixed(2)}x`] : []);
  const perToken = u.decodeSeconds / u.decodeTokens;
  rows.push([`ViT + merger (${u.image.patches} patches)`, `${fmt(u.visionSeconds)} s`, `≈${fmt(u.visionGflops, 1)} GFLOP/s`, `${fmt((100 * u.visionGflops) / c.gflops, 0)}% peak`, ...vs(u.visionSeconds, t?.visionEncode / 1e3)]);
  rows.push([`prefill (${u.promptTokens} tokens)`, `${fmt(u.prefillSeconds)} s`, `${fmt(u.prefillTokensPerSecond, 1)} tok/s, ≈${fmt(u.prefillGflops, 1)} GFLOP/s`, `${fmt((100 * u.prefillGflops) / c.gflops, 0)}% peak`, ...vs(u.prefillSeconds, t?.prefill / 1e3)]);
  rows.push([`decode (${u.decodeTokens} steps)`, `${fmt(perToken * 1e3, 2)} ms/tok`, `${fmt(u.decodeTokensPerSecond, 2)} tok/s, ${fmt(u.decodeGBps, 1)} GB/s`, `${fmt((100 * u.decodeGBps) / c.gbps, 0)}% bw`, ...vs(perToken * 1e3, t?.decode_per_token, 'ms/tok')]);
  table(rows);
}

function printImage(im, c, up) {
  const o = im.options;
  console.log('');
  console.log(
    `drawing: ${o.width}x${o.height} (latent ${im.latent.join('x')}), DiT ${im.dit.layers} layers of ${im.dit.dim} over a ${im.grid}x${im.grid} grid, ${o.flowSteps} flow steps CFG ${o.flowGuidance}; ` +
      `UNet ${im.unet.blockOutChannels.join('/')}, ${o.steps} Euler steps CFG ${o.guidance}; medians of ${im.runs} runs after the first call`,
  );
  const g = (x) => fmt(x / 1e9, 2);
  console.log(
    `≈GFLOP (2 CFG rows): DiT ${g(im.flops.ditStep)} per step + ${g(im.flops.ditContext)} per loop (caption side), UNet ${g(im.flops.unetStep)} per step + ${g(im.flops.unetContext)} per loop (cross-attention K/V), ` +
      `VAE decode ${g(im.flops.vae)} (direct conv)`,
  );
  const u = up?.timings_ms;
  if (up) {
    console.log(`upstream PyTorch: torch ${up.versions?.torch ?? '?'}, transformers ${up.versions?.transformers ?? '?'}, diffusers ${up.versions?.diffusers ?? '?'}, ${up.threads ?? '?'} threads, ${up.dtype}; medians of ${up.runs} runs after ${up.warmup} warm-up; peak RSS ${fmt(up.memory_mb?.peak_rss_inference ?? NaN, 0)} MiB during inference`);
    console.log("upstream's negative (LLM + DiT loop for ' ') runs on every call: its total less its negative stands beside the steady end to end, its total beside the first call");
  }
  for (const name of ['t2i', 'reconstruct']) {
    const r = im[name];
    if (!r) continue;
    const s = r.stageSeconds;
    const f = r.first;
    const theirs = name === 't2i' ? u : undefined;
    console.log('');
    console.log(`${name === 't2i' ? 'text-to-image' : 'reconstruction (448x448 source)'} ${r.size}, prompt ${r.promptTokens} tokens + ${im.nQuery} queries${theirs && up.prompt_tokens !== r.promptTokens ? ` (upstream's prompt: ${up.prompt_tokens})` : ''}`);
    const rows = [['stage', 'seconds', 'per step', 'rate', 'vs peak', ...(theirs ? ['upstream s', 'speed-up'] : [])]];
    const vs = (ours, ms) => (theirs ? [fmt(ms / 1e3), ours > 0 && ms !== undefined ? `${(ms / 1e3 / ours).toFixed(2)}x` : '-'] : []);
    const pct = (g) => `${fmt((100 * g) / c.gflops, 0)}%`;
    if (s.visionEncode !== undefined) rows.push(['ViT + merger (source)', fmt(s.visionEncode), '', '', '', ...vs(s.visionEncode, undefined)]);
    rows.push(['LLM: prompt + [IMG] + queries', fmt(s.llm), '', `≈${fmt(r.llmGflops, 1)} GFLOP/s`, pct(r.llmGflops), ...vs(s.llm, u?.llm)]);
    rows.push([`DiT flow (${s.flowSteps} steps)`, fmt(s.flow), `${fmt((1e3 * s.flow) / s.flowSteps, 1)} ms`, `≈${fmt(r.ditGflops, 1)} GFLOP/s`, pct(r.ditGflops), ...vs(s.flow, u?.flow)]);
    if (f.negative !== undefined) rows.push([`negative, first call (LLM + ${f.negativeSteps} DiT steps)`, fmt(f.negative), '', '', '', ...vs(f.negative, u?.negative)]);
    rows.push([`UNet (${s.unetSteps} Euler steps)`, fmt(s.unet), `${fmt((1e3 * s.unet) / s.unetSteps, 1)} ms`, `≈${fmt(r.unetGflops, 1)} GFLOP/s`, pct(r.unetGflops), ...vs(s.unet, u?.unet)]);
    if (theirs) rows.push(['  upstream: steps alone, per step', '', '', '', '', fmt(u.unet_per_step / 1e3, 4), `${(u.unet_per_step / 1e3 / (s.unet / s.unetSteps)).toFixed(2)}x`]);
    rows.push(['VAE decode', fmt(s.vae), '', `≈${fmt(r.vaeGflops, 1)} GFLOP/s`, pct(r.vaeGflops), ...vs(s.vae, u?.vae)]);
    rows.push(['end to end, steady (negative cached)', fmt(r.wallSeconds), '', '', '', ...vs(r.wallSeconds, u ? u.total - u.negative : undefined)]);
    rows.push([f.negative !== undefined ? 'end to end, first call (negative, cold pages)' : 'end to end, first call', fmt(f.wallSeconds), '', '', '', ...vs(f.wallSeconds, u?.total)]);
    table(rows);
  }
}
