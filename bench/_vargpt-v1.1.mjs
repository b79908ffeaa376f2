// The VARGPT-v1.1 part of `npm run bench -- model --family vargpt-v1.1`: understanding of one
// image (Qwen2-VL ViT + merger, prefill of the chat-template prompt, greedy decode with EOS
// ignored), medians of --runs after a warm-up, read against this machine's ceilings; with
// --upstream, the upstream PyTorch implementation (bench/upstream/vargpt_v1_1_understanding.py)
// on the same checkpoint, in the same run, with the same prompt and image size.
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

function runUpstream(opts, dir) {
  const script = path.join(root, 'bench', 'upstream', 'vargpt_v1_1_understanding.py');
  const args = [
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
  return new Promise((resolve, reject) => {
    const child = spawn(opts.python, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`upstream timing script exited with ${code}`));
      try {
        resolve(JSON.parse(stdout.slice(stdout.indexOf('{'))));
      } catch (error) {
        reject(new Error(`upstream timing script printed no JSON: ${error.message}`));
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
