// The VARGPT-v1.1 part of `npm run bench -- model --family vargpt-v1.1`:
// - understanding of one image (Qwen2-VL ViT + merger, prefill of the chat-template prompt, greedy
//   decode with EOS ignored), medians of --runs after a warm-up;
// - image: one 512x512 text-to-image and one instruction edit (the source image as an
//   understanding image before the instruction), forced <|image_gen_start|>, upstream's cfg 3,
//   tau 0.5, top-k 900, top-p 0.97 and 10-scale schedule; end to end and per stage from the
//   runtime's profile, medians of --image-runs after a warm-up;
// read against this machine's ceilings; with --upstream, the upstream PyTorch implementation
// (bench/upstream/vargpt_v1_1_understanding.py and vargpt_v1_1_generation.py) on the same
// checkpoint, in the same run, with the same prompts and image sizes.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { median, pseudo, root } from './common.mjs';

// The prompt upstream's demo builds for (question, image): the checkpoint's chat template with
// the question first, the image's <|image_pad|> expanded to its merged-token count.
async function understandingRequest(dir, info, opts) {
  const dist = pathToFileURL(path.join(root, 'dist', 'index.js')).href;
  const { ChatTemplate, VargptTokenizer, parseQwen2VlImageConfig, smartResize } = await import(dist);
  const tokenizer = await VargptTokenizer.fromDir(dir);
  const chat = JSON.parse(readFileSync(path.join(dir, 'chat_template.json'), 'utf8')).chat_template;
  const pre = parseQwen2VlImageConfig(JSON.parse(readFileSync(path.join(dir, 'preprocessor_config.json'), 'utf8')));
  const v = info.vision;
  const { width, height } = opts.imageSize;
  // The requested size is what is timed: the checkpoint's pixel limits are widened to include it
  // (as the upstream timing script does), so a tiny checkpoint's max_pixels does not shrink it.
  const pixels = width * height;
  const resized = smartResize(height, width, v.patchSize * v.mergeSize, Math.min(pre.minPixels, pixels), Math.max(pre.maxPixels, pixels));
  const grid = [1, resized.height / v.patchSize, resized.width / v.patchSize];
  const patches = grid[0] * grid[1] * grid[2];
  const imageTokens = patches / (v.mergeSize * v.mergeSize);
  const template = new ChatTemplate(chat, { image: '<|image_pad|>', imageGenStart: null, imageGenEnd: null });
  const raw = { width: 28, height: 28, data: new Uint8Array(28 * 28 * 3).fill(128) };
  const { prompt } = template.render([{ role: 'user', content: [{ type: 'text', text: opts.question }, { type: 'image', image: raw }] }]);
  const ids = tokenizer.encode(prompt.replace('<|image_pad|>', '<|image_pad|>'.repeat(imageTokens)));
  return {
    request: {
      inputIds: Int32Array.from(ids),
      pixelValues: [pseudo(patches * v.patchValues, 7, -1.8, 2.1)],
      imageGrids: Int32Array.from(grid),
      maxNewTokens: opts.tokens,
      temperature: 0,
      topK: 0,
      topP: 1,
      repetitionPenalty: 1,
      seed: 0,
      stopIds: [],
      ignoreEos: true,
      profile: true,
    },
    imageTokens,
    patches,
    resized,
  };
}

// The arguments an understanding script of bench/upstream takes (the VARGPT-v1.1 and BLIP3-o ones).
export function understandingArgs(script, dir, opts) {
  return [
    script,
    '--model', dir,
    '--upstream', opts.upstream,
    '--image-size', `${opts.imageSize.width}x${opts.imageSize.height}`,
    '--question', opts.question,
    '--new-tokens', String(opts.tokens),
    '--runs', String(opts.runs),
    '--threads', String(opts.threads),
    '--dtype', opts.dtype === 'bf16' ? 'bfloat16' : 'float32',
    '--quiet',
  ];
}

function runUpstream(opts, dir) {
  return runPython(opts, understandingArgs(path.join(root, 'bench', 'upstream', 'vargpt_v1_1_understanding.py'), dir, opts));
}

// Runs an upstream script and returns the JSON object it prints.
export function runPython(opts, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.python, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${path.basename(args[0])} exited with ${code}`));
      try {
        resolve(JSON.parse(stdout.slice(stdout.indexOf('{'))));
      } catch (error) {
        reject(new Error(`${path.basename(args[0])} printed no JSON: ${error.message}`));
      }
    });
  });
}

// Weight bytes the decode step streams: every LLM linear layer and the head.
function llmLinearBytes(ckpt) {
  let bytes = 0;
  let dtype = 'f32';
  for (const t of ckpt.list()) {
    if ((t.name.startsWith('model.layers.') && t.shape.length === 2) || t.name === 'lm_head.weight') {
      bytes += t.byteLength;
      dtype = t.dtype;
    }
  }
  return { bytes, dtype };
}

export async function measureVargptV11(addon, model, info, dir, opts) {
  const ckpt = await addon.openCheckpoint(dir);
  const { bytes: linearBytes, dtype } = llmLinearBytes(ckpt);
  if (!info.vision) throw new Error(`${dir} has no vision tower; the VARGPT-v1.1 benchmark reads an image`);
  const { request, imageTokens, patches, resized } = await understandingRequest(dir, info, opts);
  const T = request.inputIds.length;
  if (opts.warmup) await model.generate({ ...request, maxNewTokens: 2 });
  const runs = [];
  for (let i = 0; i < opts.runs; i++) runs.push((await model.generate(request)).profile);
  const vision = median(runs.map((p) => p.visionEncode));
  const prefill = median(runs.map((p) => p.prefill));
  const steps = runs[0].decodeTokens ?? 0;
  const decode = median(runs.map((p) => p.decode ?? NaN));

  const llm = info.llm;
  const q = llm.heads * llm.headDim;
  const kv = llm.kvHeads * llm.headDim;
  const P = llm.layers * (llm.hiddenSize * (q + 2 * kv) + q * llm.hiddenSize + 3 * llm.hiddenSize * llm.intermediateSize);
  const prefillFlops = 2 * T * P + 2 * T * T * q * llm.layers + 2 * llm.hiddenSize * llm.vocabSize;
  const v = info.vision;
  const E = v.embedDim;
  const m2 = v.mergeSize * v.mergeSize;
  // Per block: qkv, proj, fc1, fc2 and full attention over the image's patches; then the merger.
  const vitFlops =
    2 * patches * v.patchValues * E +
    v.depth * (2 * patches * (3 * E * E + E * E + 2 * 4 * E * E) + 4 * patches * patches * E) +
    2 * (patches / m2) * (m2 * E * m2 * E + m2 * E * v.outHidden);
  const kvBytes = 2 * llm.layers * kv * 4 * (T + steps / 2);
  return {
    dtype,
    llmLinearBytes: linearBytes,
    image: { requested: opts.imageSize, resized, patches, imageTokens },
    promptTokens: T,
    runs: opts.runs,
    visionSeconds: vision,
    visionGflops: vitFlops / vision / 1e9,
    prefillSeconds: prefill,
    prefillTokensPerSecond: T / prefill,
    prefillGflops: prefillFlops / prefill / 1e9,
    decodeTokens: steps,
    decodeSeconds: decode,
    decodeTokensPerSecond: steps / decode,
    decodeGBps: ((linearBytes + kvBytes) * steps) / decode / 1e9,
  };
}

export async function upstreamVargptV11(dir, opts) {
  return runUpstream(opts, dir);
}

// ---- image: text-to-image and one edit

// The release's 512x512 schedule (spec 2.6), as upstream's '0.25M' entry: [h, w] token grids.
const RELEASE_SCALES = [[1, 1], [2, 2], [4, 4], [6, 6], [8, 8], [12, 12], [16, 16], [20, 20], [24, 24], [32, 32]];
// Upstream's drawing settings, hard-coded in its forward (spec 2.6).
const DRAW = { cfg: 3, tau: 0.5, topK: 900, topP: 0.97 };

// Requests for the two cases, as upstream builds them: the checkpoint's chat template with the
// default system turn; text-to-image = [text prompt]; edit = [image, text instruction] with the
// source image at its processor size (limits widened to keep it, as for understanding).
async function imageCases(dir, info, opts) {
  const dist = pathToFileURL(path.join(root, 'dist', 'index.js')).href;
  const { ChatTemplate, VargptTokenizer, parseQwen2VlImageConfig, smartResize } = await import(dist);
  const tokenizer = await VargptTokenizer.fromDir(dir);
  const chat = JSON.parse(readFileSync(path.join(dir, 'chat_template.json'), 'utf8')).chat_template;
  const pre = parseQwen2VlImageConfig(JSON.parse(readFileSync(path.join(dir, 'preprocessor_config.json'), 'utf8')));
  const template = new ChatTemplate(chat, { image: '<|image_pad|>', imageGenStart: null, imageGenEnd: null });
  const raw = { width: 28, height: 28, data: new Uint8Array(28 * 28 * 3).fill(128) };
  const base = {
    forceImage: true,
    maxNewTokens: 0,
    temperature: 0,
    topK: 0,
    topP: 1,
    repetitionPenalty: 1,
    seed: 0,
    stopIds: [],
    image: { ...DRAW, seed: opts.seed, scales: RELEASE_SCALES },
    profile: true,
  };
  const cases = {};
  {
    const { prompt } = template.render([{ role: 'user', content: [{ type: 'text', text: opts.drawPrompt }] }]);
    cases.t2i = { request: { ...base, inputIds: Int32Array.from(tokenizer.encode(prompt)) } };

    const v = info.vision;
    const { width, height } = opts.editImageSize;
    const pixels = width * height;
    const resized = smartResize(height, width, v.patchSize * v.mergeSize, Math.min(pre.minPixels, pixels), Math.max(pre.maxPixels, pixels));
    const grid = [1, resized.height / v.patchSize, resized.width / v.patchSize];
    const patches = grid[0] * grid[1] * grid[2];
    const imageTokens = patches / (v.mergeSize * v.mergeSize);
    const edit = template.render([{ role: 'user', content: [{ type: 'image', image: raw }, { type: 'text', text: opts.instruction }] }]);
    const ids = tokenizer.encode(edit.prompt.replace('<|image_pad|>', '<|image_pad|>'.repeat(imageTokens)));
    cases.edit = {
      request: { ...base, inputIds: Int32Array.from(ids), pixelValues: [pseudo(patches * v.patchValues, 11, -1.8, 2.1)], imageGrids: Int32Array.from(grid) },
      source: { requested: opts.editImageSize, resized, patches, imageTokens },
    };
  }
  return cases;
}

// Sizes the FLOP estimates need, from the checkpoint's tensor shapes (config.json does not
// describe the image generator).
function generatorSizes(ckpt) {
  const shapes = new Map(ckpt.list().map((t) => [t.name, t.shape]));
  const blocks = [...shapes.keys()].filter((k) => /^vargpt_gen\.block_chunks\.\d+\.module\.\d+\.ffn\.fc1\.weight$/.test(k)).length;
  const b0 = [...shapes.keys()].find((k) => k.endsWith('.ffn.fc1.weight') && k.startsWith('vargpt_gen.block_chunks.'));
  const [F, C] = shapes.get(b0);
  const [, K] = shapes.get('vargpt_gen.cfg_uncond');
  const [, D] = shapes.get('vargpt_gen.word_embed.weight');
  // VAE decoder convolutions and the resolution each runs at: the latent grid, doubled by every
  // upsample between the decoder's deepest level and the conv's own level.
  const levels = new Set();
  const ups = new Set();
  for (const k of shapes.keys()) {
    const m = /^vae_local\.decoder\.up\.(\d+)\./.exec(k);
    if (m) levels.add(Number(m[1]));
    const u = /^vae_local\.decoder\.up\.(\d+)\.upsample\./.exec(k);
    if (u) ups.add(Number(u[1]));
  }
  const upsAbove = (i) => [...ups].filter((j) => j > i).length;
  const vaeConvs = [];
  for (const [k, s] of shapes) {
    if (!k.startsWith('vae_local.decoder.') || s.length !== 4) continue;
    const macs = s[0] * s[1] * s[2] * s[3];
    const m = /^vae_local\.decoder\.up\.(\d+)\.(upsample)?/.exec(k);
    let scale = 1;
    if (m) scale = 2 ** (upsAbove(Number(m[1])) + (m[2] ? 1 : 0));
    else if (k.startsWith('vae_local.decoder.conv_out')) scale = 2 ** ups.size;
    vaeConvs.push({ macs, scale });
  }
  return { blocks, C, F, K, D, vaeConvs, vaeLevels: levels.size };
}

// FLOPs of the stages read against the GEMM ceiling (2 per multiply-add; softmax, norms and
// elementwise work not counted). Both CFG rows; the Infinity figure counts the LLM->Infinity
// projector, the blocks (self-attention over the scales so far, cross-attention over the context)
// and the bitwise head, as the runtime's infinityBlocks stage does.
function imageFlops(info, gen, promptTokens, contextTokens) {
  const llm = info.llm;
  const q = llm.heads * llm.headDim;
  const kv = llm.kvHeads * llm.headDim;
  const P = llm.layers * (llm.hiddenSize * (q + 2 * kv) + q * llm.hiddenSize + 3 * llm.hiddenSize * llm.intermediateSize);
  const H = llm.hiddenSize;
  const { C, F, K, D, blocks } = gen;
  let llmFlops = 2 * P + 4 * (promptTokens + 1) * q * llm.layers; // the start token
  let infFlops = 0;
  let past = promptTokens + 1;
  let cum = 0;
  for (const [h, w] of RELEASE_SCALES) {
    const n = h * w;
    cum += n;
    // conditional rows attend to the cache, unconditional ones to their own scale only
    llmFlops += 2 * 2 * n * P + 4 * n * (past + n) * q * llm.layers + 4 * n * n * q * llm.layers;
    past += n;
    const perToken = 2 * (H * H + H * C) + blocks * 2 * (4 * C * C + 2 * C * C + 2 * C * F) + 2 * C * 2 * D;
    const attention = blocks * (4 * n * cum * C + 4 * n * contextTokens * C);
    infFlops += 2 * (n * perToken + attention);
  }
  // cross-attention keys/values of the two contexts, once per block
  infFlops += blocks * 2 * 2 * contextTokens * K * 2 * C;
  const last = RELEASE_SCALES.at(-1);
  const latent = last[0] * last[1];
  const vaeFlops = gen.vaeConvs.reduce((a, c) => a + 2 * c.macs * latent * c.scale * c.scale, 0);
  return { llmFlops, infFlops, vaeFlops, imageTokens: cum };
}

const STAGE_KEYS = ['visionEncode', 'prefill', 'imageLlm', 'imageCondition', 'infinityBlocks', 'sampling', 'codes', 'vaeDecode'];

export async function measureVargptV11Image(addon, model, info, dir, opts) {
  if (!info.image) throw new Error(`${dir} has no image generator (vargpt_gen.*, vae_local.*)`);
  const ckpt = await addon.openCheckpoint(dir);
  const gen = generatorSizes(ckpt);
  const cases = await imageCases(dir, info, opts);
  const out = { runs: opts.imageRuns, warmup: opts.warmup, scales: RELEASE_SCALES, ...DRAW, seed: opts.seed, generator: { blocks: gen.blocks, width: gen.C, ffn: gen.F, bits: gen.D } };
  for (const [name, c] of Object.entries(cases)) {
    if (opts.warmup) await model.generate(c.request);
    const runs = [];
    for (let i = 0; i < opts.imageRuns; i++) {
      const t = performance.now();
      const r = await model.generate(c.request);
      const wall = (performance.now() - t) / 1000;
      if (!r.image) throw new Error(`${name}: the runtime drew no image (stop reason ${r.stopReason})`);
      runs.push({ wall, profile: r.profile, size: `${r.image.width}x${r.image.height}`, tokens: Array.from(r.tokens) });
    }
    const stages = {};
    for (const k of STAGE_KEYS) {
      const xs = runs.map((x) => x.profile[k]).filter((x) => x !== undefined);
      if (xs.length) stages[k] = median(xs);
    }
    const promptTokens = c.request.inputIds.length;
    const f = imageFlops(info, gen, promptTokens, promptTokens);
    out[name] = {
      promptTokens,
      size: runs[0].size,
      tokens: runs[0].tokens,
      source: c.source,
      wallSeconds: median(runs.map((x) => x.wall)),
      stageSeconds: stages,
      profileKeys: Object.keys(runs[0].profile),
      samples: runs.map((x) => ({ wall: x.wall, ...x.profile })),
      imageLlmGflops: f.llmFlops / stages.imageLlm / 1e9,
      infinityGflops: f.infFlops / stages.infinityBlocks / 1e9,
      vaeDecodeGflops: f.vaeFlops / stages.vaeDecode / 1e9,
      flops: f,
    };
  }
  return out;
}

export async function upstreamVargptV11Image(dir, opts) {
  const script = path.join(root, 'bench', 'upstream', 'vargpt_v1_1_generation.py');
  return runPython(opts, [
    script,
    '--model', dir,
    '--upstream', opts.upstream,
    '--what', 'both',
    '--prompt', opts.drawPrompt,
    '--instruction', opts.instruction,
    '--edit-image-size', `${opts.editImageSize.width}x${opts.editImageSize.height}`,
    '--seed', String(opts.seed),
    '--runs', String(opts.imageRuns),
    '--warmup', opts.warmup ? '1' : '0',
    '--threads', String(opts.threads),
    '--dtype', opts.dtype === 'bf16' ? 'bfloat16' : 'float32',
    '--quiet',
  ]);
}

// Upstream's stage medians (seconds) in this runtime's profile stages, and what is left over.
export function upstreamImageStages(c) {
  const t = c.timings_ms;
  const s = (...keys) => keys.reduce((a, k) => a + (t[k] ?? 0), 0) / 1e3;
  return {
    prefill: s('prompt_forward'),
    imageLlm: s('start_token_forward', 'image_llm'),
    imageCondition: s('image_condition'),
    infinityBlocks: s('infinity_projector_in', 'infinity_level_embed', 'infinity_blocks', 'infinity_head'),
    infinityBlocksOnly: s('infinity_blocks'),
    sampling: s('sampling'),
    codes: s('codes'),
    vaeDecode: s('vae_decode'),
    lmHeadLastScale: s('lm_head_last_scale'),
    rest: s('image_write', 'image_forward_other'),
    wall: s('end_to_end'),
    promptTokens: c.prompt_tokens,
  };
}
