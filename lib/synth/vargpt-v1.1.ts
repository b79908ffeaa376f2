// The sizes of each VARGPT-v1.1 synthesis preset and the full tensor layout of a VARGPT-v1.1
// checkpoint (spec §2, §6.2; names, shapes and dtypes as the vargpt-v1.1-tiny fixture holds them):
// the Qwen2-VL text decoder (`model.*`, `lm_head`), its ViT and merger (`visual.*`), the two
// GenPatchMerger bridges, `sos_embedding`, Infinity (`vargpt_gen.*`) and the BSQ VAE
// (`vae_local.*`). Filled with the shared scheme of tensors.ts, plus:
//   scale_mul_1H11             ln 4, Infinity's initial value
//   ada_gss                    N(0, 1/C), Infinity's initial value
//   cfg_uncond, sos_embedding, N(0, 1) (rows that stand in for text embeddings, and a query)
//   attentive-pool mat_q
//   pos_start, lvl_embed       N(0, 0.1^2), as position embeddings
//   buffers                    zero_k_bias (0); quantizer.lfq.mask int64 2^(d-1) ... 1
//
// Infinity and the VAE have no entry in config.json (upstream hard-codes them): a loader reads
// their sizes back from tensor shapes, as sizesFromShapes() below does, so each size here is one
// that a shape carries.
import { BIAS, checkPositive, EMBED, NORM, POS, TensorLayout, ZERO } from './tensors.js';
import type { TensorSpec } from './tensors.js';
import type { LlmSizes } from './vargpt-v1.js';

export interface QwenLlmSizes extends LlmSizes {
  // M-RoPE's (temporal, height, width) split of head_dim / 2 rotary pairs.
  mropeSection: [number, number, number];
}

export interface QwenVisionSizes {
  embed: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
}

// Each size names the tensor that carries it.
export interface InfinitySizes {
  depth: number; // the number of vargpt_gen.block_chunks.*.module.*
  width: number; // word_embed.weight.shape[0]
  heads: number; // sa.scale_mul_1H11.shape[1]
  mlpRatio: number; // ffn.fc1.weight.shape[0] / width
  blockChunks: number; // the number of vargpt_gen.block_chunks.*
  textChannels: number; // cfg_uncond.shape[1]
  textMaxLen: number; // cfg_uncond.shape[0]
}

export interface BsqVaeSizes {
  codebookDim: number; // bits per token: word_embed.weight.shape[1], quantizer.lfq.mask.shape[0]
  baseCh: number; // decoder.conv_out.conv.weight.shape[1]
  chMult: number[]; // decoder.up.{i}.block.0.conv1.conv.weight.shape[0] / baseCh
  patchSize: number; // 2 ** (the number of decoder.up.*.upsample)
  resBlocks: number; // the number of decoder.up.0.block.* minus one
}

export interface ImageProcessorSizes {
  minPixels: number;
  maxPixels: number;
}

export interface V11Sizes {
  llm: QwenLlmSizes;
  vision: QwenVisionSizes;
  infinity: InfinitySizes;
  vae: BsqVaeSizes;
  imageProcessor: ImageProcessorSizes;
}

// Token ids the layout depends on (spec §3.1); the synthesized tokenizer has 151660 tokens.
export const IMAGE_GEN_START_ID = 151657;
export const TOKENIZER_SIZE = 151660;
// Infinity's lvl_embed has a row per possible scale, however many a schedule uses.
const LEVEL_ROWS = 15;
// The attentive pool (text_proj_for_sos) has head_dim 128 whatever Infinity's head count.
const POOL_HEAD_DIM = 128;
// BSQ's encoder/decoder use GroupNorm with 32 groups.
const NORM_GROUPS = 32;

export type V11PresetName = 'tiny' | 'small' | 'medium' | 'full';
export const V11_PRESET_NAMES: readonly V11PresetName[] = ['tiny', 'small', 'medium', 'full'];

const qwenVision = (embed: number, depth: number, heads: number): QwenVisionSizes => ({
  embed,
  depth,
  heads,
  mlpRatio: 4,
  patchSize: 14,
  mergeSize: 2,
  temporalPatchSize: 2,
});

// Four blocks per chunk, as Infinity-2B (32 blocks in 8 chunks); text_channels = width, since
// VARGPT feeds cfg_uncond rows straight into the blocks' cross-attention.
const infinity = (depth: number, width: number, heads: number): InfinitySizes => ({
  depth,
  width,
  heads,
  mlpRatio: 4,
  blockChunks: Math.max(1, depth / 4),
  textChannels: width,
  textMaxLen: 512,
});

const qwenLlm = (hidden: number, layers: number, heads: number, kvHeads: number, intermediate: number, mropeSection: [number, number, number]): QwenLlmSizes => ({
  hidden,
  layers,
  heads,
  kvHeads,
  intermediate,
  vocab: 152064,
  maxPositions: 32768,
  mropeSection,
});

// The released BSQ VAE d32 (Infinity's infinity_vae_d32reg; spec §2.5).
export const FULL_BSQ_VAE: BsqVaeSizes = { codebookDim: 32, baseCh: 128, chMult: [1, 2, 4, 4, 4], patchSize: 16, resBlocks: 2 };
const QWEN2_VL_VIT = qwenVision(1280, 32, 16);
// Qwen2-VL-7B-Instruct's preprocessor_config.json.
const RELEASE_PIXELS: ImageProcessorSizes = { minPixels: 3136, maxPixels: 12845056 };

// tiny = the vargpt-v1.1-tiny fixture; full = the released VARGPT-v1.1 (Qwen2-VL-7B + Infinity-2B
// + BSQ VAE d32); small and medium in between, with the released VAE.
export const V11_PRESETS: Readonly<Record<V11PresetName, V11Sizes>> = {
  tiny: {
    llm: qwenLlm(32, 2, 2, 1, 96, [2, 3, 3]),
    vision: qwenVision(32, 2, 2),
    infinity: { depth: 4, width: 128, heads: 2, mlpRatio: 4, blockChunks: 2, textChannels: 128, textMaxLen: 512 },
    vae: { codebookDim: 32, baseCh: 32, chMult: [1, 1, 2, 2, 2], patchSize: 16, resBlocks: 2 },
    imageProcessor: { minPixels: 3136, maxPixels: 12544 },
  },
  small: {
    llm: qwenLlm(1024, 8, 16, 4, 2816, [8, 12, 12]),
    vision: qwenVision(256, 4, 4),
    infinity: infinity(8, 512, 8),
    vae: FULL_BSQ_VAE,
    imageProcessor: RELEASE_PIXELS,
  },
  medium: {
    llm: qwenLlm(2048, 16, 16, 4, 5504, [16, 24, 24]),
    vision: QWEN2_VL_VIT,
    infinity: infinity(16, 1024, 16),
    vae: FULL_BSQ_VAE,
    imageProcessor: RELEASE_PIXELS,
  },
  full: {
    llm: qwenLlm(3584, 28, 28, 4, 18944, [16, 24, 24]),
    vision: QWEN2_VL_VIT,
    infinity: infinity(32, 2048, 16),
    vae: FULL_BSQ_VAE,
    imageProcessor: RELEASE_PIXELS,
  },
};

export function copyV11Sizes(s: V11Sizes): V11Sizes {
  return {
    llm: { ...s.llm, mropeSection: [...s.llm.mropeSection] },
    vision: { ...s.vision },
    infinity: { ...s.infinity },
    vae: { ...s.vae, chMult: [...s.vae.chMult] },
    imageProcessor: { ...s.imageProcessor },
  };
}

// Qwen2-VL's ViT and PatchMerger (spec §2.3), merging to the LLM width.
function addVision(l: TensorLayout, s: QwenVisionSizes, llmHidden: number): void {
  const E = s.embed;
  l.weight('visual.patch_embed.proj.weight', [E, 3, s.temporalPatchSize, s.patchSize, s.patchSize]);
  for (let i = 0; i < s.depth; i++) {
    const b = `visual.blocks.${i}`;
    l.norm(`${b}.norm1`, E);
    l.norm(`${b}.norm2`, E);
    l.linear(`${b}.attn.qkv`, 3 * E, E);
    l.linear(`${b}.attn.proj`, E, E, { residualLayers: s.depth });
    l.linear(`${b}.mlp.fc1`, E * s.mlpRatio, E);
    l.linear(`${b}.mlp.fc2`, E, E * s.mlpRatio, { residualLayers: s.depth });
  }
  const merged = E * s.mergeSize * s.mergeSize;
  l.norm('visual.merger.ln_q', E);
  l.linear('visual.merger.mlp.0', merged, merged);
  l.linear('visual.merger.mlp.2', llmHidden, merged);
}

// Qwen2's text model: q/k/v with bias, o_proj and the MLP without. BLIP3-o's Qwen2.5 has the same.
export function addQwen2TextModel(l: TensorLayout, s: LlmSizes): void {
  const headDim = s.hidden / s.heads;
  l.add('model.embed_tokens.weight', [s.vocab, s.hidden], EMBED);
  for (let i = 0; i < s.layers; i++) {
    const b = `model.layers.${i}`;
    l.norm(`${b}.input_layernorm`, s.hidden, false);
    l.norm(`${b}.post_attention_layernorm`, s.hidden, false);
    l.linear(`${b}.self_attn.q_proj`, s.heads * headDim, s.hidden);
    l.linear(`${b}.self_attn.k_proj`, s.kvHeads * headDim, s.hidden);
    l.linear(`${b}.self_attn.v_proj`, s.kvHeads * headDim, s.hidden);
    l.linear(`${b}.self_attn.o_proj`, s.hidden, s.heads * headDim, { bias: false, residualLayers: s.layers });
    l.linear(`${b}.mlp.gate_proj`, s.intermediate, s.hidden, { bias: false });
    l.linear(`${b}.mlp.up_proj`, s.intermediate, s.hidden, { bias: false });
    l.linear(`${b}.mlp.down_proj`, s.hidden, s.intermediate, { bias: false, residualLayers: s.layers });
  }
  l.norm('model.norm', s.hidden, false);
}

// VARGPT-v1.1 unties lm_head (spec §2.2).
function addLlm(l: TensorLayout, s: QwenLlmSizes): void {
  addQwen2TextModel(l, s);
  l.linear('lm_head', s.vocab, s.hidden, { bias: false });
}

// GenPatchMerger both ways (ln_q stored, never applied) and the start token's embedding row
// table (only row IMAGE_GEN_START_ID is read).
function addBridge(l: TensorLayout, llmHidden: number, width: number): void {
  l.norm('image_gen_projector.ln_q', width);
  l.linear('image_gen_projector.mlp.0', width, width);
  l.linear('image_gen_projector.mlp.2', llmHidden, width);
  l.norm('image_gen_projector_out.ln_q', llmHidden);
  l.linear('image_gen_projector_out.mlp.0', llmHidden, llmHidden);
  l.linear('image_gen_projector_out.mlp.2', width, llmHidden);
  l.add('sos_embedding.weight', [IMAGE_GEN_START_ID + 1, width], EMBED);
}

// Infinity (spec §2.4): shared AdaLN, self- and cross-attention blocks, bitwise head.
function addInfinity(l: TensorLayout, s: InfinitySizes, bits: number): void {
  const p = 'vargpt_gen';
  const C = s.width;
  const ffn = Math.round(C * s.mlpRatio);
  l.add(`${p}.cfg_uncond`, [s.textMaxLen, s.textChannels], EMBED);
  l.norm(`${p}.text_norm`, s.textChannels, false);
  const pool = `${p}.text_proj_for_sos.ca`;
  l.add(`${pool}.mat_q`, [1, C / POOL_HEAD_DIM, POOL_HEAD_DIM], EMBED);
  l.weight(`${pool}.mat_kv.weight`, [2 * C, s.textChannels]);
  l.add(`${pool}.v_bias`, [C], BIAS);
  l.add(`${pool}.zero_k_bias`, [C], ZERO, 'float', true);
  l.linear(`${pool}.proj`, C, C);
  l.linear(`${p}.text_proj_for_ca.0`, C, s.textChannels);
  l.linear(`${p}.text_proj_for_ca.2`, C, C);
  l.add(`${p}.pos_start`, [1, 1, C], POS);
  l.add(`${p}.lvl_embed.weight`, [LEVEL_ROWS, C], POS);
  l.linear(`${p}.word_embed`, C, bits);
  l.linear(`${p}.shared_ada_lin.1`, 6 * C, C);
  const perChunk = s.depth / s.blockChunks;
  for (let i = 0; i < s.depth; i++) {
    const b = `${p}.block_chunks.${Math.floor(i / perChunk)}.module.${i % perChunk}`;
    l.add(`${b}.ada_gss`, [1, 1, 6, C], { kind: 'normal', std: 1 / Math.sqrt(C) });
    l.weight(`${b}.sa.mat_qkv.weight`, [3 * C, C]);
    l.add(`${b}.sa.q_bias`, [C], BIAS);
    l.add(`${b}.sa.v_bias`, [C], BIAS);
    l.add(`${b}.sa.zero_k_bias`, [C], ZERO, 'float', true);
    l.add(`${b}.sa.scale_mul_1H11`, [1, s.heads, 1, 1], { kind: 'const', value: Math.log(4) });
    l.linear(`${b}.sa.proj`, C, C, { residualLayers: s.depth });
    l.linear(`${b}.ca.mat_q`, C, C);
    l.weight(`${b}.ca.mat_kv.weight`, [2 * C, C]);
    l.add(`${b}.ca.v_bias`, [C], BIAS);
    l.add(`${b}.ca.zero_k_bias`, [C], ZERO, 'float', true);
    l.linear(`${b}.ca.proj`, C, C, { residualLayers: s.depth });
    l.norm(`${b}.ca_norm`, C);
    l.linear(`${b}.ffn.fc1`, ffn, C);
    l.linear(`${b}.ffn.fc2`, C, ffn, { residualLayers: s.depth });
  }
  l.linear(`${p}.head_nm.ada_lin.1`, 2 * C, C);
  l.linear(`${p}.head`, 2 * bits, C);
}

// Flux-style conv blocks, each conv and norm one level deeper (`.conv`, `.norm`) as bsq_vae names them.
function resnet(l: TensorLayout, prefix: string, cin: number, cout: number): void {
  l.norm(`${prefix}.norm1.norm`, cin);
  l.conv(`${prefix}.conv1.conv`, cout, cin, 3);
  l.norm(`${prefix}.norm2.norm`, cout);
  l.conv(`${prefix}.conv2.conv`, cout, cout, 3);
  if (cin !== cout) l.conv(`${prefix}.nin_shortcut.conv`, cout, cin, 1);
}

// The BSQ VAE (spec §2.5): no attention, no quant convs, a parameter-free quantizer but for its
// bit-weight buffer.
function addBsqVae(l: TensorLayout, s: BsqVaeSizes): void {
  const levels = s.chMult.length;
  const ch = (i: number) => s.baseCh * (s.chMult[i] as number);
  const e = 'vae_local.encoder';
  l.conv(`${e}.conv_in.conv`, s.baseCh, 3, 3);
  let blockIn = s.baseCh;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < s.resBlocks; j++) {
      resnet(l, `${e}.down.${i}.block.${j}`, blockIn, ch(i));
      blockIn = ch(i);
    }
    if (i !== levels - 1) l.conv(`${e}.down.${i}.downsample.conv.conv`, blockIn, blockIn, 3);
  }
  resnet(l, `${e}.mid.block_1`, blockIn, blockIn);
  resnet(l, `${e}.mid.block_2`, blockIn, blockIn);
  l.norm(`${e}.norm_out.norm`, blockIn);
  l.conv(`${e}.conv_out.conv`, s.codebookDim, blockIn, 3);

  const d = 'vae_local.decoder';
  blockIn = ch(levels - 1);
  l.conv(`${d}.conv_in.conv`, blockIn, s.codebookDim, 3);
  resnet(l, `${d}.mid.block_1`, blockIn, blockIn);
  resnet(l, `${d}.mid.block_2`, blockIn, blockIn);
  for (let i = levels - 1; i >= 0; i--) {
    for (let j = 0; j < s.resBlocks + 1; j++) {
      resnet(l, `${d}.up.${i}.block.${j}`, blockIn, ch(i));
      blockIn = ch(i);
    }
    if (i !== 0) l.conv(`${d}.up.${i}.upsample.conv.conv`, blockIn, blockIn, 3);
  }
  l.norm(`${d}.norm_out.norm`, blockIn);
  l.conv(`${d}.conv_out.conv`, 3, blockIn, 3);
  l.add('vae_local.quantizer.lfq.mask', [s.codebookDim], { kind: 'bitMask' }, 'i64', true);
}

export function v11CheckpointLayout(sizes: V11Sizes): TensorSpec[] {
  validateV11Sizes(sizes);
  const l = new TensorLayout();
  addVision(l, sizes.vision, sizes.llm.hidden);
  addLlm(l, sizes.llm);
  addBridge(l, sizes.llm.hidden, sizes.infinity.width);
  addInfinity(l, sizes.infinity, sizes.vae.codebookDim);
  addBsqVae(l, sizes.vae);
  return l.specs;
}

// Parameter counts by part, in the order of the module tree (spec §2.1).
export function v11ParameterBreakdown(sizes: V11Sizes): Record<'llm' | 'vision' | 'bridge' | 'infinity' | 'vae', number> {
  const out = { llm: 0, vision: 0, bridge: 0, infinity: 0, vae: 0 };
  for (const spec of v11CheckpointLayout(sizes)) {
    if (spec.buffer) continue;
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const part = spec.name.startsWith('visual.')
      ? 'vision'
      : spec.name.startsWith('model.') || spec.name === 'lm_head.weight'
        ? 'llm'
        : spec.name.startsWith('vargpt_gen.')
          ? 'infinity'
          : spec.name.startsWith('vae_local.')
            ? 'vae'
            : 'bridge';
    out[part] += n;
  }
  return out;
}

function fail(message: string): never {
  throw new RangeError(`synthesize: ${message}`);
}

export function validateV11Sizes(s: V11Sizes): void {
  const { llm, vision, infinity: inf, vae, imageProcessor } = s;
  for (const [k, v] of Object.entries(llm)) if (k !== 'mropeSection') checkPositive(`llm.${k}`, v as number);
  if (llm.hidden % llm.heads !== 0) fail(`llm.hidden ${llm.hidden} is not a multiple of heads ${llm.heads}`);
  if (llm.heads % llm.kvHeads !== 0) fail(`llm.heads ${llm.heads} is not a multiple of kvHeads ${llm.kvHeads}`);
  if (llm.vocab < TOKENIZER_SIZE) fail(`llm.vocab ${llm.vocab} is smaller than the tokenizer (${TOKENIZER_SIZE} tokens)`);
  if (llm.mropeSection.length !== 3) fail('llm.mropeSection must have 3 entries (temporal, height, width)');
  llm.mropeSection.forEach((v) => checkPositive('llm.mropeSection[]', v));
  const pairs = llm.mropeSection.reduce((a, b) => a + b, 0);
  if (2 * pairs !== llm.hidden / llm.heads) fail(`llm.mropeSection sums to ${pairs}, not head_dim / 2 = ${llm.hidden / llm.heads / 2}`);
  for (const [k, v] of Object.entries(vision)) checkPositive(`vision.${k}`, v);
  // 2D RoPE rotates half of each head by row and half by column, in pairs.
  if (vision.embed % vision.heads !== 0 || (vision.embed / vision.heads) % 4 !== 0) fail(`vision.embed ${vision.embed} / heads ${vision.heads} must be a multiple of 4`);
  for (const [k, v] of Object.entries(inf)) checkPositive(`infinity.${k}`, v);
  if (inf.width % inf.heads !== 0 || (inf.width / inf.heads) % 4 !== 0) fail(`infinity.width ${inf.width} / heads ${inf.heads} must be a multiple of 4`);
  if (inf.width % POOL_HEAD_DIM !== 0) fail(`infinity.width ${inf.width} is not a multiple of ${POOL_HEAD_DIM} (the attentive pool's head_dim)`);
  if (inf.depth % inf.blockChunks !== 0) fail(`infinity.depth ${inf.depth} is not a multiple of blockChunks ${inf.blockChunks}`);
  if (!Number.isSafeInteger(inf.width * inf.mlpRatio)) fail(`infinity.width * mlpRatio must be an integer`);
  if (inf.textChannels !== inf.width) fail(`infinity.textChannels ${inf.textChannels} must equal width ${inf.width}: cfg_uncond rows are the unconditional cross-attention context`);
  for (const k of ['codebookDim', 'baseCh', 'patchSize', 'resBlocks'] as const) checkPositive(`vae.${k}`, vae[k]);
  if (vae.codebookDim > 63) fail(`vae.codebookDim ${vae.codebookDim} does not fit the int64 bit mask`);
  if (vae.chMult.length === 0) fail('vae.chMult is empty');
  vae.chMult.forEach((m) => checkPositive('vae.chMult[]', m));
  if (vae.patchSize !== 2 ** (vae.chMult.length - 1)) fail(`vae.patchSize ${vae.patchSize} must be 2^(levels - 1) = ${2 ** (vae.chMult.length - 1)} for ${vae.chMult.length} levels`);
  for (const m of vae.chMult) if ((vae.baseCh * m) % NORM_GROUPS !== 0) fail(`vae channels ${vae.baseCh * m} are not a multiple of GroupNorm's ${NORM_GROUPS} groups`);
  checkPositive('imageProcessor.minPixels', imageProcessor.minPixels);
  checkPositive('imageProcessor.maxPixels', imageProcessor.maxPixels);
  if (imageProcessor.maxPixels < imageProcessor.minPixels) fail('imageProcessor.maxPixels is below minPixels');
}

// Infinity's and the VAE's sizes read back from tensor shapes (they are in no config file).
export function sizesFromShapes(shapes: ReadonlyMap<string, readonly number[]>): { infinity: InfinitySizes; vae: BsqVaeSizes } {
  const shape = (name: string): readonly number[] => {
    const s = shapes.get(name);
    if (!s) throw new Error(`missing tensor ${name}`);
    return s;
  };
  const dim = (name: string, axis: number): number => shape(name)[axis] as number;
  const chunks = new Set<string>();
  let depth = 0;
  for (const name of shapes.keys()) {
    const m = /^vargpt_gen\.block_chunks\.(\d+)\.module\.\d+\.ffn\.fc1\.weight$/.exec(name);
    if (m) {
      depth++;
      chunks.add(m[1] as string);
    }
  }
  const width = dim('vargpt_gen.word_embed.weight', 0);
  const infinity: InfinitySizes = {
    depth,
    width,
    heads: dim('vargpt_gen.block_chunks.0.module.0.sa.scale_mul_1H11', 1),
    mlpRatio: dim('vargpt_gen.block_chunks.0.module.0.ffn.fc1.weight', 0) / width,
    blockChunks: chunks.size,
    textChannels: dim('vargpt_gen.cfg_uncond', 1),
    textMaxLen: dim('vargpt_gen.cfg_uncond', 0),
  };
  const baseCh = dim('vae_local.decoder.conv_out.conv.weight', 1);
  const chMult: number[] = [];
  while (shapes.has(`vae_local.decoder.up.${chMult.length}.block.0.conv1.conv.weight`)) {
    chMult.push(dim(`vae_local.decoder.up.${chMult.length}.block.0.conv1.conv.weight`, 0) / baseCh);
  }
  let blocks = 0;
  while (shapes.has(`vae_local.decoder.up.0.block.${blocks}.conv1.conv.weight`)) blocks++;
  let upsamples = 0;
  for (const name of shapes.keys()) if (/^vae_local\.decoder\.up\.\d+\.upsample\.conv\.conv\.weight$/.test(name)) upsamples++;
  const vae: BsqVaeSizes = {
    codebookDim: dim('vargpt_gen.word_embed.weight', 1),
    baseCh,
    chMult,
    patchSize: 2 ** upsamples,
    resBlocks: blocks - 1,
  };
  return { infinity, vae };
}
