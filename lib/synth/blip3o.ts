// The sizes of each BLIP3-o synthesis preset and the tensor layouts of a BLIP3-o checkpoint, with
// names and shapes as the blip3o-tiny fixture holds them:
//   top folder     Qwen2.5-VL's ViT (`visual.*`) and text decoder (`model.*`, `lm_head` when
//                  untied), the learned queries `model.latent_queries`, the DiT `model.dit.model.*`
//   diffusion-decoder/unet  diffusers' UNet2DConditionModel in the SDXL block layout
//   diffusion-decoder/vae   diffusers' AutoencoderKL (encoder included, as the release ships it)
// Filled with the shared scheme of tensors.ts, plus:
//   latent_queries      N(0, 1), as upstream's randn initialisation
//   DiT gate            N(0, 1): tanh(gate) scales the cross-attention, so it must not sit at 0
//
// The DiT has no entry in config.json: a loader reads its sizes back from tensor shapes
// (ditSizesFromShapes in lib/families/blip3o-config.ts), so each DiT size here is one a shape carries.
import type { Blip3oDitSizes } from '../families/blip3o-config.js';
import { BLIP3O_TOKEN_IDS, DIT_PREFIX } from '../families/blip3o-config.js';
import { BIAS, checkPositive, EMBED, TensorLayout } from './tensors.js';
import type { TensorSpec } from './tensors.js';
import type { LlmSizes } from './vargpt-v1.js';
import { addQwen2TextModel } from './vargpt-v1.1.js';

export interface Blip3oLlmSizes extends LlmSizes {
  maxWindowLayers: number;
  mropeSection: [number, number, number];
  tied: boolean;
}

export interface Blip3oVisionSizes {
  hidden: number;
  depth: number;
  heads: number;
  intermediate: number;
  fullAttentionBlocks: number[];
  windowSize: number;
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
}

// What a preset chooses; the other DiT sizes follow (blip3oDitSizes).
export interface Blip3oDitChoice {
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
}

export interface UnetSizes {
  blockOutChannels: number[];
  layersPerBlock: number;
  // Per down block; the first block is a plain DownBlock2D, so its entry is unused (as in SDXL).
  transformerLayersPerBlock: number[];
  // diffusers' attention_head_dim, which is the number of heads when num_attention_heads is null.
  attentionHeads: number[];
  additionTimeEmbedDim: number;
  crossAttentionDim: number;
  inChannels: number;
  sampleSize: number;
}

export interface VaeSizes {
  blockOutChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
  sampleSize: number;
  scalingFactor: number;
}

export interface Blip3oSizes {
  llm: Blip3oLlmSizes;
  vision: Blip3oVisionSizes;
  nQuery: number;
  dit: Blip3oDitChoice;
  unet: UnetSizes;
  vae: VaeSizes;
}

export type Blip3oPresetName = 'tiny' | 'small' | '4b' | '8b';
export const BLIP3O_PRESET_NAMES: readonly Blip3oPresetName[] = ['tiny', 'small', '4b', '8b'];

// Fixed by the release whatever the preset: the EVA-CLIP-E width the DiT predicts and the UNet
// attends to, the DiT's sinusoid width, FFN rounding and conditioning cap (build_dit's defaults).
export const CLIP_WIDTH = 1792;
const TIMESTEP_CHANNELS = 256;
const DIT_MULTIPLE_OF = 256;
const DIT_MAX_TEMB = 1024;
// SDXL's time_ids: six numbers (original size, crop corner, target size) per row.
const TIME_IDS = 6;
const NORM_GROUPS = 32;

// Lumina-Next's FFN width rule (diffusers before 0.33): int(2/3 * 4 * dim) rounded up to 256.
export function ditFfnDim(dim: number): number {
  const inner = Math.floor((2 * 4 * dim) / 3);
  return DIT_MULTIPLE_OF * Math.ceil(inner / DIT_MULTIPLE_OF);
}

export function blip3oDitSizes(s: Blip3oSizes): Blip3oDitSizes {
  const { dim, layers, heads, kvHeads } = s.dit;
  return {
    dim,
    inChannels: CLIP_WIDTH,
    outChannels: CLIP_WIDTH,
    layers,
    heads,
    headDim: dim / heads,
    kvHeads,
    captionDim: s.llm.hidden,
    tembDim: Math.min(dim, DIT_MAX_TEMB),
    ffnDim: ditFfnDim(dim),
    timestepChannels: TIMESTEP_CHANNELS,
  };
}

export function unetProjectionInputDim(u: UnetSizes): number {
  return u.crossAttentionDim + TIME_IDS * u.additionTimeEmbedDim;
}

const qwenLlm = (hidden: number, layers: number, heads: number, kvHeads: number, intermediate: number, tied: boolean, maxWindowLayers: number, mropeSection: [number, number, number]): Blip3oLlmSizes => ({
  hidden,
  layers,
  heads,
  kvHeads,
  intermediate,
  vocab: BLIP3O_TOKEN_IDS.tokenizerSize,
  maxPositions: 128000,
  maxWindowLayers,
  mropeSection,
  tied,
});

const qwenVit = (hidden: number, depth: number, heads: number, intermediate: number, fullAttentionBlocks: number[]): Blip3oVisionSizes => ({
  hidden,
  depth,
  heads,
  intermediate,
  fullAttentionBlocks,
  windowSize: 112,
  patchSize: 14,
  mergeSize: 2,
  temporalPatchSize: 2,
});

// Qwen2.5-VL's ViT, the same in both releases.
const RELEASE_VIT = qwenVit(1280, 32, 16, 3420, [7, 15, 23, 31]);
// build_dit's defaults: 24 blocks of width 1792, 28 heads of 64, full MHA.
const RELEASE_DIT: Blip3oDitChoice = { dim: 1792, layers: 24, heads: 28, kvHeads: 28 };
// SDXL-base's UNet with the CLIP width as cross-attention and pooled-text width.
const SDXL_UNET: UnetSizes = {
  blockOutChannels: [320, 640, 1280],
  layersPerBlock: 2,
  transformerLayersPerBlock: [1, 2, 10],
  attentionHeads: [5, 10, 20],
  additionTimeEmbedDim: 256,
  crossAttentionDim: CLIP_WIDTH,
  inChannels: 4,
  sampleSize: 128,
};
const SDXL_VAE: VaeSizes = { blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, latentChannels: 4, sampleSize: 1024, scalingFactor: 0.13025 };

// tiny = the blip3o-tiny fixture; 4b / 8b = the releases (Qwen2.5-VL-3B / 7B backbones); small =
// a benchmark size in between: a 768-wide 4-layer LLM, a 512-wide 4-layer DiT with the release's
// 64 queries, an SDXL-layout UNet at a fifth of the channels and a VAE at a quarter, drawing
// 256 x 256 by default. One image is about 0.5 T multiply-adds (the DiT's 30 steps for the prompt
// and for the negative, 50 UNet steps, both guided, the VAE decode): about a minute on two CPU
// cores at 5 GMAC/s each.
export const BLIP3O_PRESETS: Readonly<Record<Blip3oPresetName, Blip3oSizes>> = {
  tiny: {
    llm: qwenLlm(48, 2, 4, 2, 128, true, 2, [2, 2, 2]),
    vision: qwenVit(32, 4, 2, 64, [1, 3]),
    nQuery: 16,
    dit: { dim: 64, layers: 2, heads: 4, kvHeads: 4 },
    unet: { blockOutChannels: [32, 64, 64], layersPerBlock: 2, transformerLayersPerBlock: [1, 1, 2], attentionHeads: [2, 4, 4], additionTimeEmbedDim: 16, crossAttentionDim: CLIP_WIDTH, inChannels: 4, sampleSize: 8 },
    vae: { blockOutChannels: [32, 32, 64, 64], layersPerBlock: 2, latentChannels: 4, sampleSize: 64, scalingFactor: 0.13025 },
  },
  small: {
    llm: qwenLlm(768, 4, 6, 2, 2048, true, 4, [16, 24, 24]),
    vision: qwenVit(256, 4, 4, 512, [1, 3]),
    nQuery: 64,
    dit: { dim: 512, layers: 4, heads: 8, kvHeads: 8 },
    unet: { blockOutChannels: [64, 128, 256], layersPerBlock: 2, transformerLayersPerBlock: [1, 1, 2], attentionHeads: [2, 4, 8], additionTimeEmbedDim: 256, crossAttentionDim: CLIP_WIDTH, inChannels: 4, sampleSize: 32 },
    vae: { blockOutChannels: [32, 64, 128, 128], layersPerBlock: 2, latentChannels: 4, sampleSize: 256, scalingFactor: 0.13025 },
  },
  '4b': {
    llm: qwenLlm(2048, 36, 16, 2, 11008, true, 70, [16, 24, 24]),
    vision: RELEASE_VIT,
    nQuery: 64,
    dit: RELEASE_DIT,
    unet: SDXL_UNET,
    vae: SDXL_VAE,
  },
  '8b': {
    llm: qwenLlm(3584, 28, 28, 4, 18944, false, 28, [16, 24, 24]),
    vision: RELEASE_VIT,
    nQuery: 64,
    dit: RELEASE_DIT,
    unet: SDXL_UNET,
    vae: SDXL_VAE,
  },
};

export function copyBlip3oSizes(s: Blip3oSizes): Blip3oSizes {
  return {
    llm: { ...s.llm, mropeSection: [...s.llm.mropeSection] },
    vision: { ...s.vision, fullAttentionBlocks: [...s.vision.fullAttentionBlocks] },
    nQuery: s.nQuery,
    dit: { ...s.dit },
    unet: { ...s.unet, blockOutChannels: [...s.unet.blockOutChannels], transformerLayersPerBlock: [...s.unet.transformerLayersPerBlock], attentionHeads: [...s.unet.attentionHeads] },
    vae: { ...s.vae, blockOutChannels: [...s.vae.blockOutChannels] },
  };
}

// Qwen2.5-VL's ViT: RMSNorm blocks with a SwiGLU MLP, and the 2x2 patch merger to the LLM width.
function addVision(l: TensorLayout, s: Blip3oVisionSizes, llmHidden: number): void {
  const E = s.hidden;
  l.weight('visual.patch_embed.proj.weight', [E, 3, s.temporalPatchSize, s.patchSize, s.patchSize]);
  for (let i = 0; i < s.depth; i++) {
    const b = `visual.blocks.${i}`;
    l.norm(`${b}.norm1`, E, false);
    l.norm(`${b}.norm2`, E, false);
    l.linear(`${b}.attn.qkv`, 3 * E, E);
    l.linear(`${b}.attn.proj`, E, E, { residualLayers: s.depth });
    l.linear(`${b}.mlp.gate_proj`, s.intermediate, E);
    l.linear(`${b}.mlp.up_proj`, s.intermediate, E);
    l.linear(`${b}.mlp.down_proj`, E, s.intermediate, { residualLayers: s.depth });
  }
  const merged = E * s.mergeSize * s.mergeSize;
  l.norm('visual.merger.ln_q', E, false);
  l.linear('visual.merger.mlp.0', merged, merged);
  l.linear('visual.merger.mlp.2', llmHidden, merged);
}

// NextDiTCrossAttn's Lumina-Next blocks: AdaLN (RMS, scale only) sandwich norms, self-attention
// without output projection, gated cross-attention sharing attn2.to_out, SwiGLU FFN.
function addDit(l: TensorLayout, d: Blip3oDitSizes): void {
  const p = DIT_PREFIX;
  const D = d.dim;
  const kv = d.kvHeads * d.headDim;
  l.linear(`${p}.patch_embedder.proj`, D, d.inChannels);
  l.linear(`${p}.caption_projection.linear_1`, D, d.captionDim);
  l.linear(`${p}.caption_projection.linear_2`, D, D);
  l.linear(`${p}.time_caption_embed.timestep_embedder.linear_1`, d.tembDim, d.timestepChannels);
  l.linear(`${p}.time_caption_embed.timestep_embedder.linear_2`, d.tembDim, d.tembDim);
  l.norm(`${p}.time_caption_embed.caption_embedder.0`, D);
  l.linear(`${p}.time_caption_embed.caption_embedder.1`, d.tembDim, D);
  for (let i = 0; i < d.layers; i++) {
    const b = `${p}.layers.${i}`;
    l.add(`${b}.gate`, [d.heads], EMBED);
    for (const attn of ['attn1', 'attn2']) {
      l.linear(`${b}.${attn}.to_q`, D, D, { bias: false });
      l.linear(`${b}.${attn}.to_k`, kv, D, { bias: false });
      l.linear(`${b}.${attn}.to_v`, kv, D, { bias: false });
      l.norm(`${b}.${attn}.norm_q`, D);
      l.norm(`${b}.${attn}.norm_k`, kv);
    }
    l.linear(`${b}.attn2.to_out.0`, D, D, { bias: false, residualLayers: d.layers });
    l.linear(`${b}.feed_forward.linear_1`, d.ffnDim, D, { bias: false });
    l.linear(`${b}.feed_forward.linear_2`, D, d.ffnDim, { bias: false, residualLayers: d.layers });
    l.linear(`${b}.feed_forward.linear_3`, d.ffnDim, D, { bias: false });
    l.linear(`${b}.norm1.linear`, 4 * D, d.tembDim);
    for (const norm of ['norm1.norm', 'ffn_norm1', 'norm2', 'ffn_norm2', 'norm1_context']) l.norm(`${b}.${norm}`, D, false);
  }
  l.linear(`${p}.norm_out.linear_1`, D, d.tembDim);
  l.linear(`${p}.norm_out.linear_2`, d.outChannels, D);
}

// Key order as the module tree (what decides which shard a tensor lands in).
export function blip3oCheckpointLayout(sizes: Blip3oSizes): TensorSpec[] {
  validateBlip3oSizes(sizes);
  const l = new TensorLayout();
  addVision(l, sizes.vision, sizes.llm.hidden);
  addQwen2TextModel(l, sizes.llm);
  l.add('model.latent_queries', [1, sizes.nQuery, sizes.llm.hidden], EMBED);
  addDit(l, blip3oDitSizes(sizes));
  if (!sizes.llm.tied) l.linear('lm_head', sizes.llm.vocab, sizes.llm.hidden, { bias: false });
  return l.specs;
}

// diffusers' ResnetBlock2D; `temb` = 0 for the VAE's (no time embedding).
function resnet(l: TensorLayout, prefix: string, cin: number, cout: number, temb: number): void {
  l.norm(`${prefix}.norm1`, cin);
  l.conv(`${prefix}.conv1`, cout, cin, 3);
  if (temb > 0) l.linear(`${prefix}.time_emb_proj`, cout, temb);
  l.norm(`${prefix}.norm2`, cout);
  l.conv(`${prefix}.conv2`, cout, cout, 3);
  if (cin !== cout) l.conv(`${prefix}.conv_shortcut`, cout, cin, 1);
}

// Transformer2DModel with linear proj_in/out and GEGLU BasicTransformerBlocks.
function transformer2d(l: TensorLayout, prefix: string, c: number, depth: number, cross: number): void {
  l.norm(`${prefix}.norm`, c);
  l.linear(`${prefix}.proj_in`, c, c);
  for (let k = 0; k < depth; k++) {
    const b = `${prefix}.transformer_blocks.${k}`;
    l.norm(`${b}.norm1`, c);
    l.linear(`${b}.attn1.to_q`, c, c, { bias: false });
    l.linear(`${b}.attn1.to_k`, c, c, { bias: false });
    l.linear(`${b}.attn1.to_v`, c, c, { bias: false });
    l.linear(`${b}.attn1.to_out.0`, c, c, { residualLayers: depth });
    l.norm(`${b}.norm2`, c);
    l.linear(`${b}.attn2.to_q`, c, c, { bias: false });
    l.linear(`${b}.attn2.to_k`, c, cross, { bias: false });
    l.linear(`${b}.attn2.to_v`, c, cross, { bias: false });
    l.linear(`${b}.attn2.to_out.0`, c, c, { residualLayers: depth });
    l.norm(`${b}.norm3`, c);
    l.linear(`${b}.ff.net.0.proj`, 8 * c, c);
    l.linear(`${b}.ff.net.2`, c, 4 * c, { residualLayers: depth });
  }
  l.linear(`${prefix}.proj_out`, c, c);
}

// UNet2DConditionModel (SDXL: DownBlock2D then CrossAttnDownBlock2D, mirrored up blocks,
// "text_time" added embedding).
export function unetLayout(u: UnetSizes): TensorSpec[] {
  validateUnetSizes(u);
  const l = new TensorLayout();
  const ch = u.blockOutChannels;
  const n = ch.length;
  const temb = 4 * (ch[0] as number);
  const depthOf = (i: number) => u.transformerLayersPerBlock[i] as number;
  l.conv('conv_in', ch[0] as number, u.inChannels, 3);
  l.linear('time_embedding.linear_1', temb, ch[0] as number);
  l.linear('time_embedding.linear_2', temb, temb);
  l.linear('add_embedding.linear_1', temb, unetProjectionInputDim(u));
  l.linear('add_embedding.linear_2', temb, temb);
  let prev = ch[0] as number;
  for (let i = 0; i < n; i++) {
    const c = ch[i] as number;
    for (let j = 0; j < u.layersPerBlock; j++) {
      resnet(l, `down_blocks.${i}.resnets.${j}`, j === 0 ? prev : c, c, temb);
      if (i > 0) transformer2d(l, `down_blocks.${i}.attentions.${j}`, c, depthOf(i), u.crossAttentionDim);
    }
    if (i < n - 1) l.conv(`down_blocks.${i}.downsamplers.0.conv`, c, c, 3);
    prev = c;
  }
  const last = ch[n - 1] as number;
  resnet(l, 'mid_block.resnets.0', last, last, temb);
  transformer2d(l, 'mid_block.attentions.0', last, depthOf(n - 1), u.crossAttentionDim);
  resnet(l, 'mid_block.resnets.1', last, last, temb);
  const rev = [...ch].reverse();
  prev = last;
  for (let i = 0; i < n; i++) {
    const out = rev[i] as number;
    const skipIn = rev[Math.min(i + 1, n - 1)] as number;
    for (let j = 0; j <= u.layersPerBlock; j++) {
      const skip = j === u.layersPerBlock ? skipIn : out;
      resnet(l, `up_blocks.${i}.resnets.${j}`, (j === 0 ? prev : out) + skip, out, temb);
      if (i < n - 1) transformer2d(l, `up_blocks.${i}.attentions.${j}`, out, depthOf(n - 1 - i), u.crossAttentionDim);
    }
    if (i < n - 1) l.conv(`up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
    prev = out;
  }
  l.norm('conv_norm_out', ch[0] as number);
  l.conv('conv_out', u.inChannels, ch[0] as number, 3);
  return l.specs;
}

// The VAE's single-head mid-block attention, with biased projections.
function vaeAttention(l: TensorLayout, prefix: string, c: number): void {
  l.norm(`${prefix}.group_norm`, c);
  for (const p of ['to_q', 'to_k', 'to_v']) l.linear(`${prefix}.${p}`, c, c);
  l.linear(`${prefix}.to_out.0`, c, c);
}

function vaeMid(l: TensorLayout, prefix: string, c: number): void {
  resnet(l, `${prefix}.resnets.0`, c, c, 0);
  vaeAttention(l, `${prefix}.attentions.0`, c);
  resnet(l, `${prefix}.resnets.1`, c, c, 0);
}

// AutoencoderKL: encoder, quant convs, decoder.
export function vaeLayout(v: VaeSizes): TensorSpec[] {
  validateVaeSizes(v);
  const l = new TensorLayout();
  const ch = v.blockOutChannels;
  const n = ch.length;
  const last = ch[n - 1] as number;
  const L = v.latentChannels;
  l.conv('encoder.conv_in', ch[0] as number, 3, 3);
  let prev = ch[0] as number;
  for (let i = 0; i < n; i++) {
    const c = ch[i] as number;
    for (let j = 0; j < v.layersPerBlock; j++) resnet(l, `encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? prev : c, c, 0);
    if (i < n - 1) l.conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, c, c, 3);
    prev = c;
  }
  vaeMid(l, 'encoder.mid_block', last);
  l.norm('encoder.conv_norm_out', last);
  l.conv('encoder.conv_out', 2 * L, last, 3);
  l.conv('quant_conv', 2 * L, 2 * L, 1);
  l.conv('post_quant_conv', L, L, 1);
  l.conv('decoder.conv_in', last, L, 3);
  vaeMid(l, 'decoder.mid_block', last);
  const rev = [...ch].reverse();
  prev = last;
  for (let i = 0; i < n; i++) {
    const out = rev[i] as number;
    for (let j = 0; j <= v.layersPerBlock; j++) resnet(l, `decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : out, out, 0);
    if (i < n - 1) l.conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
    prev = out;
  }
  l.norm('decoder.conv_norm_out', ch[0] as number);
  l.conv('decoder.conv_out', 3, ch[0] as number, 3);
  return l.specs;
}

function fail(message: string): never {
  throw new RangeError(`synthesize: ${message}`);
}

function checkGroups(what: string, channels: readonly number[]): void {
  channels.forEach((c) => checkPositive(`${what}[]`, c));
  for (const c of channels) if (c % NORM_GROUPS !== 0) fail(`${what} ${c} is not a multiple of GroupNorm's ${NORM_GROUPS} groups`);
}

function validateUnetSizes(u: UnetSizes): void {
  const n = u.blockOutChannels.length;
  if (n < 2) fail('unet.blockOutChannels needs at least 2 levels (a plain block, then cross-attention blocks)');
  checkGroups('unet.blockOutChannels', u.blockOutChannels);
  for (const k of ['layersPerBlock', 'additionTimeEmbedDim', 'crossAttentionDim', 'inChannels', 'sampleSize'] as const) checkPositive(`unet.${k}`, u[k]);
  if (u.transformerLayersPerBlock.length !== n || u.attentionHeads.length !== n) fail(`unet.transformerLayersPerBlock and attentionHeads need one entry per level (${n})`);
  u.transformerLayersPerBlock.forEach((d) => checkPositive('unet.transformerLayersPerBlock[]', d));
  u.attentionHeads.forEach((h, i) => {
    checkPositive('unet.attentionHeads[]', h);
    const c = u.blockOutChannels[i] as number;
    if (c % h !== 0) fail(`unet level ${i}: ${c} channels are not a multiple of ${h} heads`);
  });
}

function validateVaeSizes(v: VaeSizes): void {
  if (v.blockOutChannels.length < 1) fail('vae.blockOutChannels is empty');
  checkGroups('vae.blockOutChannels', v.blockOutChannels);
  for (const k of ['layersPerBlock', 'latentChannels', 'sampleSize'] as const) checkPositive(`vae.${k}`, v[k]);
  if (!(v.scalingFactor > 0)) fail(`vae.scalingFactor must be positive, got ${v.scalingFactor}`);
}

export function validateBlip3oSizes(s: Blip3oSizes): void {
  const { llm, vision, dit } = s;
  for (const [k, v] of Object.entries(llm)) if (k !== 'mropeSection' && k !== 'tied') checkPositive(`llm.${k}`, v as number);
  if (llm.hidden % llm.heads !== 0) fail(`llm.hidden ${llm.hidden} is not a multiple of heads ${llm.heads}`);
  if (llm.heads % llm.kvHeads !== 0) fail(`llm.heads ${llm.heads} is not a multiple of kvHeads ${llm.kvHeads}`);
  if (llm.vocab < BLIP3O_TOKEN_IDS.tokenizerSize) fail(`llm.vocab ${llm.vocab} is smaller than the tokenizer (${BLIP3O_TOKEN_IDS.tokenizerSize} tokens)`);
  if (llm.mropeSection.length !== 3) fail('llm.mropeSection must have 3 entries (temporal, height, width)');
  llm.mropeSection.forEach((v) => checkPositive('llm.mropeSection[]', v));
  const pairs = llm.mropeSection.reduce((a, b) => a + b, 0);
  if (2 * pairs !== llm.hidden / llm.heads) fail(`llm.mropeSection sums to ${pairs}, not head_dim / 2 = ${llm.hidden / llm.heads / 2}`);
  for (const k of ['hidden', 'depth', 'heads', 'intermediate', 'windowSize', 'patchSize', 'mergeSize', 'temporalPatchSize'] as const) checkPositive(`vision.${k}`, vision[k]);
  // 2D RoPE rotates half of each head by row and half by column, in pairs.
  if (vision.hidden % vision.heads !== 0 || (vision.hidden / vision.heads) % 4 !== 0) fail(`vision.hidden ${vision.hidden} / heads ${vision.heads} must be a multiple of 4`);
  for (const b of vision.fullAttentionBlocks) if (!Number.isSafeInteger(b) || b < 0 || b >= vision.depth) fail(`vision.fullAttentionBlocks names block ${b}, but depth is ${vision.depth}`);
  if (vision.windowSize % (vision.patchSize * vision.mergeSize) !== 0) fail(`vision.windowSize ${vision.windowSize} is not a multiple of patchSize * mergeSize`);
  checkPositive('nQuery', s.nQuery);
  for (const [k, v] of Object.entries(dit)) checkPositive(`dit.${k}`, v);
  if (dit.dim % dit.heads !== 0) fail(`dit.dim ${dit.dim} is not a multiple of heads ${dit.heads}`);
  // The 2D RoPE interleaves row and column angles over (even, odd) pairs.
  if ((dit.dim / dit.heads) % 4 !== 0) fail(`dit head_dim ${dit.dim / dit.heads} must be a multiple of 4`);
  if (dit.heads % dit.kvHeads !== 0) fail(`dit.heads ${dit.heads} is not a multiple of kvHeads ${dit.kvHeads}`);
  validateUnetSizes(s.unet);
  validateVaeSizes(s.vae);
  if (s.unet.inChannels !== s.vae.latentChannels) fail(`unet.inChannels ${s.unet.inChannels} differs from vae.latentChannels ${s.vae.latentChannels}`);
  if (s.unet.crossAttentionDim !== CLIP_WIDTH) fail(`unet.crossAttentionDim must be the CLIP width ${CLIP_WIDTH}`);
}

export interface Blip3oLayouts {
  model: TensorSpec[];
  unet: TensorSpec[];
  vae: TensorSpec[];
}

export function blip3oLayouts(sizes: Blip3oSizes): Blip3oLayouts {
  return { model: blip3oCheckpointLayout(sizes), unet: unetLayout(sizes.unet), vae: vaeLayout(sizes.vae) };
}

// Parameter counts by part, as spec §1.1 quotes them.
export function blip3oParameterBreakdown(sizes: Blip3oSizes): Record<'llm' | 'vision' | 'queries' | 'dit' | 'unet' | 'vae', number> {
  const count = (specs: readonly TensorSpec[]) => specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  const { model, unet, vae } = blip3oLayouts(sizes);
  const part = (test: (name: string) => boolean) => count(model.filter((s) => test(s.name)));
  return {
    llm: part((n) => (n.startsWith('model.') && !n.startsWith(`${DIT_PREFIX}.`) && n !== 'model.latent_queries') || n === 'lm_head.weight'),
    vision: part((n) => n.startsWith('visual.')),
    queries: part((n) => n === 'model.latent_queries'),
    dit: part((n) => n.startsWith(`${DIT_PREFIX}.`)),
    unet: count(unet),
    vae: count(vae),
  };
}

// huggingface_hub's split_torch_state_dict_into_shards, which transformers' save_pretrained
// uses: a tensor larger than the limit gets a shard of its own (ahead of the shard being filled),
// the others fill shards greedily in key order.
export function planHubShards<T extends { bytes: number }>(items: readonly T[], maxBytes: number): T[][] {
  const shards: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    if (item.bytes > maxBytes) {
      shards.push([item]);
      continue;
    }
    if (size + item.bytes > maxBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += item.bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards.filter((s) => s.length > 0);
}
