// BLIP3-o's config.json (transformers 4.51's flat Qwen2.5-VL layout: the text fields at the root,
// `vision_config` beside them, plus the fields BLIP3-o's training adds) and the sizes of its DiT,
// which no config file holds (upstream's build_dit hard-codes them): they are read back from
// tensor shapes. Shared by the synthesizer and the family's loader, so both agree on what a
// BLIP3-o checkpoint is.
import type { JsonObject } from '../checkpoint-config.js';
import { Reader } from '../checkpoint-config.js';
import { CheckpointError } from '../errors.js';

export const BLIP3O_MODEL_TYPES: readonly string[] = ['blip3o_qwen', 'blip3o_qwen_inference'];

// Token ids upstream hard-codes (constants.py, generate_image); the tokenizer must agree.
export const BLIP3O_TOKEN_IDS = {
  imageStart: 151665, // [IMG], the generation trigger
  imageEnd: 151666, // [/IMG]
  image: 151667, // <image>, the reconstruction prompt's placeholder
  tokenizerSize: 151668,
} as const;

export interface Blip3oTextConfig {
  hiddenSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  // M-RoPE's (temporal, height, width) split of head_dim / 2 rotary pairs.
  mropeSection: [number, number, number];
  tiedEmbeddings: boolean;
}

export interface Blip3oVisionConfig {
  depth: number;
  hiddenSize: number;
  heads: number;
  intermediateSize: number;
  // The merger's output width, the LLM's.
  outHiddenSize: number;
  fullAttentionBlocks: number[];
  windowSize: number;
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
}

export interface Blip3oModelConfig {
  raw: JsonObject;
  modelType: string;
  text: Blip3oTextConfig;
  vision: Blip3oVisionConfig;
  // The learned queries appended after [IMG]: the DiT's caption length.
  nQuery: number;
  // The width of the CLIP features the DiT predicts (EVA-CLIP-E: 1792).
  genHiddenSize: number;
  genPooling: string | null;
  genVisionTower: string | null;
  imageTokenId: number;
  videoTokenId: number | null;
  visionStartTokenId: number;
  visionEndTokenId: number;
  tokenizerMaxLength: number | null;
}

function intList(r: Reader, key: string, min: number): number[] {
  const value = r.object[key];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= min)) {
    throw new CheckpointError(`${r.file}: "${r.prefix}${key}" must be a list of integers >= ${min}`);
  }
  return value as number[];
}

export function parseBlip3oConfig(raw: JsonObject, file = 'config.json'): Blip3oModelConfig {
  const r = new Reader(file, raw);
  const modelType = r.string('model_type');
  if (!BLIP3O_MODEL_TYPES.includes(modelType)) {
    throw new CheckpointError(`${file}: model_type is "${modelType}"; BLIP3-o checkpoints have ${BLIP3O_MODEL_TYPES.map((t) => `"${t}"`).join(' or ')}`);
  }
  if (r.has('text_config')) {
    throw new CheckpointError(`${file}: has a nested "text_config"; BLIP3-o checkpoints keep the Qwen2.5-VL text fields at the top level (transformers 4.51 layout)`);
  }
  const hiddenSize = r.int('hidden_size', { min: 1 });
  const heads = r.int('num_attention_heads', { min: 1 });
  const kvHeads = r.int('num_key_value_heads', { min: 1, fallback: heads });
  if (hiddenSize % heads !== 0) throw new CheckpointError(`${file}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}`);
  if (heads % kvHeads !== 0) throw new CheckpointError(`${file}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  const headDim = hiddenSize / heads;
  const section = r.child('rope_scaling').object['mrope_section'];
  if (!Array.isArray(section) || section.length !== 3 || !section.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0)) {
    throw new CheckpointError(`${file}: rope_scaling.mrope_section must list 3 positive integers (Qwen2.5-VL's multimodal RoPE)`);
  }
  const pairs = (section as number[]).reduce((a, b) => a + b, 0);
  if (2 * pairs !== headDim) throw new CheckpointError(`${file}: rope_scaling.mrope_section sums to ${pairs}, not head_dim / 2 = ${headDim / 2}`);
  const text: Blip3oTextConfig = {
    hiddenSize,
    layers: r.int('num_hidden_layers', { min: 1 }),
    heads,
    kvHeads,
    headDim,
    intermediateSize: r.int('intermediate_size', { min: 1 }),
    vocabSize: r.int('vocab_size', { min: 1 }),
    maxPositions: r.int('max_position_embeddings', { min: 1 }),
    rmsNormEps: r.number('rms_norm_eps', 1e-6),
    ropeTheta: r.number('rope_theta', 1e6),
    mropeSection: section as [number, number, number],
    tiedEmbeddings: r.bool('tie_word_embeddings', false),
  };
  if (text.vocabSize < BLIP3O_TOKEN_IDS.tokenizerSize) {
    throw new CheckpointError(`${file}: vocab_size ${text.vocabSize} has no row for [IMG] ... <image> (ids up to ${BLIP3O_TOKEN_IDS.tokenizerSize - 1})`);
  }

  const v = r.child('vision_config');
  const depth = v.int('depth', { min: 1 });
  const vision: Blip3oVisionConfig = {
    depth,
    hiddenSize: v.int('hidden_size', { min: 1 }),
    heads: v.int('num_heads', { min: 1 }),
    intermediateSize: v.int('intermediate_size', { min: 1 }),
    outHiddenSize: v.int('out_hidden_size', { min: 1 }),
    fullAttentionBlocks: intList(v, 'fullatt_block_indexes', 0),
    windowSize: v.int('window_size', { min: 1 }),
    patchSize: v.int('patch_size', { min: 1, fallback: 14 }),
    mergeSize: v.int('spatial_merge_size', { min: 1, fallback: 2 }),
    temporalPatchSize: v.int('temporal_patch_size', { min: 1, fallback: 2 }),
  };
  if (vision.hiddenSize % vision.heads !== 0) throw new CheckpointError(`${file}: vision_config.hidden_size ${vision.hiddenSize} is not a multiple of num_heads ${vision.heads}`);
  if (vision.outHiddenSize !== hiddenSize) {
    throw new CheckpointError(`${file}: vision_config.out_hidden_size ${vision.outHiddenSize} differs from hidden_size ${hiddenSize} (the merger writes into the LLM's embeddings)`);
  }
  const badBlock = vision.fullAttentionBlocks.find((i) => i >= depth);
  if (badBlock !== undefined) throw new CheckpointError(`${file}: vision_config.fullatt_block_indexes names block ${badBlock}, but depth is ${depth}`);
  const unit = vision.patchSize * vision.mergeSize;
  if (vision.windowSize % unit !== 0) throw new CheckpointError(`${file}: vision_config.window_size ${vision.windowSize} is not a multiple of patch_size * spatial_merge_size = ${unit}`);

  return {
    raw,
    modelType,
    text,
    vision,
    nQuery: r.int('n_query', { min: 1 }),
    genHiddenSize: r.int('gen_hidden_size', { min: 1 }),
    genPooling: r.optionalString('gen_pooling'),
    genVisionTower: r.optionalString('gen_vision_tower'),
    imageTokenId: r.int('image_token_id', { min: 0 }),
    videoTokenId: r.optionalInt('video_token_id'),
    visionStartTokenId: r.int('vision_start_token_id', { min: 0 }),
    visionEndTokenId: r.int('vision_end_token_id', { min: 0 }),
    tokenizerMaxLength: r.optionalInt('tokenizer_model_max_length'),
  };
}

// The DiT (NextDiTCrossAttn around Lumina-Next), each size named by the tensor that carries it.
export interface Blip3oDitSizes {
  dim: number; // patch_embedder.proj.weight.shape[0]
  inChannels: number; // patch_embedder.proj.weight.shape[1] (patch 1: the CLIP width)
  outChannels: number; // norm_out.linear_2.weight.shape[0]
  layers: number; // the number of layers.*
  heads: number; // layers.0.gate.shape[0]
  headDim: number; // dim / heads
  kvHeads: number; // layers.0.attn1.to_k.weight.shape[0] / headDim
  captionDim: number; // caption_projection.linear_1.weight.shape[1] (the LLM width)
  tembDim: number; // time_caption_embed.timestep_embedder.linear_2.weight.shape[0]
  ffnDim: number; // layers.0.feed_forward.linear_1.weight.shape[0]
  timestepChannels: number; // time_caption_embed.timestep_embedder.linear_1.weight.shape[1]
}

export const DIT_PREFIX = 'model.dit.model';

export function ditSizesFromShapes(shapes: ReadonlyMap<string, readonly number[]>, where = 'checkpoint'): Blip3oDitSizes {
  const shape = (name: string, rank: number): readonly number[] => {
    const s = shapes.get(`${DIT_PREFIX}.${name}`);
    if (!s) throw new CheckpointError(`${where}: missing tensor ${DIT_PREFIX}.${name} (a BLIP3-o checkpoint holds the DiT under ${DIT_PREFIX}.*)`);
    if (s.length !== rank) throw new CheckpointError(`${where}: ${DIT_PREFIX}.${name} has shape [${s.join(', ')}], expected ${rank} dimensions`);
    return s;
  };
  const dim = (name: string, rank: number, axis: number): number => shape(name, rank)[axis] as number;
  let layers = 0;
  while (shapes.has(`${DIT_PREFIX}.layers.${layers}.gate`)) layers++;
  if (layers === 0) throw new CheckpointError(`${where}: no DiT layers (${DIT_PREFIX}.layers.0.gate is missing)`);
  const width = dim('patch_embedder.proj.weight', 2, 0);
  const heads = dim('layers.0.gate', 1, 0);
  if (width % heads !== 0) throw new CheckpointError(`${where}: DiT width ${width} is not a multiple of its ${heads} heads (${DIT_PREFIX}.layers.0.gate)`);
  const headDim = width / heads;
  const kvRows = dim('layers.0.attn1.to_k.weight', 2, 0);
  if (kvRows % headDim !== 0 || heads % (kvRows / headDim) !== 0) {
    throw new CheckpointError(`${where}: ${DIT_PREFIX}.layers.0.attn1.to_k.weight has ${kvRows} rows, not a divisor of the ${heads} heads of ${headDim}`);
  }
  return {
    dim: width,
    inChannels: dim('patch_embedder.proj.weight', 2, 1),
    outChannels: dim('norm_out.linear_2.weight', 2, 0),
    layers,
    heads,
    headDim,
    kvHeads: kvRows / headDim,
    captionDim: dim('caption_projection.linear_1.weight', 2, 1),
    tembDim: dim('time_caption_embed.timestep_embedder.linear_2.weight', 2, 0),
    ffnDim: dim('layers.0.feed_forward.linear_1.weight', 2, 0),
    timestepChannels: dim('time_caption_embed.timestep_embedder.linear_1.weight', 2, 1),
  };
}

// The DiT against the rest of the checkpoint: it reads the LLM's query states and predicts
// gen_hidden_size-wide CLIP features.
export function checkDitAgainstConfig(dit: Blip3oDitSizes, config: Blip3oModelConfig, where = 'checkpoint'): void {
  if (dit.captionDim !== config.text.hiddenSize) {
    throw new CheckpointError(`${where}: the DiT's caption projection takes width ${dit.captionDim}, but the LLM's hidden_size is ${config.text.hiddenSize}`);
  }
  if (dit.inChannels !== config.genHiddenSize || dit.outChannels !== config.genHiddenSize) {
    throw new CheckpointError(`${where}: the DiT maps ${dit.inChannels} to ${dit.outChannels} channels, but gen_hidden_size is ${config.genHiddenSize}`);
  }
}

// diffusion-decoder/unet/config.json: diffusers' UNet2DConditionModel as BLIP3-o's decoder uses it
// (cross-attention on the CLIP features, SDXL's "text_time" added embedding of their mean and six
// size numbers).
export interface Blip3oUnetConfig {
  inChannels: number;
  outChannels: number;
  sampleSize: number;
  blockOutChannels: number[];
  downBlockTypes: string[];
  upBlockTypes: string[];
  layersPerBlock: number;
  transformerLayersPerBlock: number[];
  heads: number[];
  crossAttentionDim: number;
  additionTimeEmbedDim: number;
  projectionInputDim: number;
  normGroups: number;
  normEps: number;
  flipSinToCos: boolean;
  freqShift: number;
}

// diffusion-decoder/vae/config.json: diffusers' AutoencoderKL.
export interface Blip3oVaeConfig {
  blockOutChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
  outChannels: number;
  normGroups: number;
  scalingFactor: number;
  shiftFactor: number | null;
  usePostQuantConv: boolean;
  midBlockAttention: boolean;
}

// SDXL's time_ids: original size, crop corner, target size.
export const UNET_TIME_IDS = 6;

const DOWN_TYPES = ['DownBlock2D', 'CrossAttnDownBlock2D'];
const UP_TYPES = ['UpBlock2D', 'CrossAttnUpBlock2D'];

// A per-level entry written as one number or as a list of one per level.
function perLevel(r: Reader, key: string, levels: number): number[] {
  const value = r.object[key];
  if (typeof value === 'number') return Array.from({ length: levels }, () => r.int(key, { min: 1 }));
  const list = intList(r, key, 1);
  if (list.length !== levels) throw new CheckpointError(`${r.file}: "${key}" lists ${list.length} entries for ${levels} blocks`);
  return list;
}

function stringList(r: Reader, key: string, allowed: readonly string[], levels: number): string[] {
  const value = r.object[key];
  if (!Array.isArray(value) || value.length !== levels || !value.every((v) => typeof v === 'string' && allowed.includes(v))) {
    throw new CheckpointError(`${r.file}: "${key}" must list ${levels} of ${allowed.join(', ')}`);
  }
  return value as string[];
}

export function parseUnetConfig(raw: JsonObject, file = 'diffusion-decoder/unet/config.json'): Blip3oUnetConfig {
  const r = new Reader(file, raw);
  const className = r.optionalString('_class_name');
  if (className !== null && className !== 'UNet2DConditionModel') throw new CheckpointError(`${file}: _class_name is "${className}", expected "UNet2DConditionModel"`);
  const blockOutChannels = intList(r, 'block_out_channels', 1);
  const levels = blockOutChannels.length;
  if (levels === 0) throw new CheckpointError(`${file}: "block_out_channels" is empty`);
  const downBlockTypes = stringList(r, 'down_block_types', DOWN_TYPES, levels);
  const upBlockTypes = stringList(r, 'up_block_types', UP_TYPES, levels);
  downBlockTypes.forEach((t, i) => {
    const mirror = upBlockTypes[levels - 1 - i];
    if ((t === 'CrossAttnDownBlock2D') !== (mirror === 'CrossAttnUpBlock2D')) throw new CheckpointError(`${file}: up block ${levels - 1 - i} (${mirror}) does not mirror down block ${i} (${t})`);
  });
  const embedType = r.optionalString('addition_embed_type');
  if (embedType !== 'text_time') throw new CheckpointError(`${file}: addition_embed_type is ${JSON.stringify(embedType)}; BLIP3-o's decoder uses "text_time"`);
  for (const key of ['class_embed_type', 'encoder_hid_dim_type', 'time_cond_proj_dim', 'num_class_embeds']) {
    if (r.has(key)) throw new CheckpointError(`${file}: "${key}" is set; BLIP3-o's decoder has none`);
  }
  const timeEmbedding = r.optionalString('time_embedding_type') ?? 'positional';
  if (timeEmbedding !== 'positional') throw new CheckpointError(`${file}: time_embedding_type "${timeEmbedding}" is not supported (positional)`);
  // diffusers' naming quirk: attention_head_dim counts heads when num_attention_heads is unset.
  const heads = perLevel(r, r.has('num_attention_heads') ? 'num_attention_heads' : 'attention_head_dim', levels);
  heads.forEach((h, i) => {
    if ((blockOutChannels[i] as number) % h !== 0) throw new CheckpointError(`${file}: block ${i} has ${blockOutChannels[i]} channels, not a multiple of its ${h} heads`);
  });
  const crossAttentionDim = r.int('cross_attention_dim', { min: 1 });
  const additionTimeEmbedDim = r.int('addition_time_embed_dim', { min: 1 });
  const projectionInputDim = r.int('projection_class_embeddings_input_dim', { min: 1 });
  // The pooled input is the mean of the cross-attention tokens plus six embedded size numbers.
  if (projectionInputDim !== crossAttentionDim + UNET_TIME_IDS * additionTimeEmbedDim) {
    throw new CheckpointError(`${file}: projection_class_embeddings_input_dim ${projectionInputDim} is not cross_attention_dim + ${UNET_TIME_IDS} * addition_time_embed_dim = ${crossAttentionDim + UNET_TIME_IDS * additionTimeEmbedDim}`);
  }
  const normGroups = r.int('norm_num_groups', { min: 1, fallback: 32 });
  const bad = blockOutChannels.find((c) => c % normGroups !== 0);
  if (bad !== undefined) throw new CheckpointError(`${file}: ${bad} channels are not a multiple of norm_num_groups ${normGroups}`);
  if (!r.bool('use_linear_projection', false)) throw new CheckpointError(`${file}: use_linear_projection is false; BLIP3-o's decoder projects with linear layers`);
  return {
    inChannels: r.int('in_channels', { min: 1 }),
    outChannels: r.int('out_channels', { min: 1 }),
    sampleSize: r.int('sample_size', { min: 1 }),
    blockOutChannels,
    downBlockTypes,
    upBlockTypes,
    layersPerBlock: r.int('layers_per_block', { min: 1 }),
    transformerLayersPerBlock: perLevel(r, 'transformer_layers_per_block', levels),
    heads,
    crossAttentionDim,
    additionTimeEmbedDim,
    projectionInputDim,
    normGroups,
    normEps: r.number('norm_eps', 1e-5),
    flipSinToCos: r.bool('flip_sin_to_cos', true),
    freqShift: r.number('freq_shift', 0),
  };
}

export function parseVaeConfig(raw: JsonObject, file = 'diffusion-decoder/vae/config.json'): Blip3oVaeConfig {
  const r = new Reader(file, raw);
  const className = r.optionalString('_class_name');
  if (className !== null && className !== 'AutoencoderKL') throw new CheckpointError(`${file}: _class_name is "${className}", expected "AutoencoderKL"`);
  const blockOutChannels = intList(r, 'block_out_channels', 1);
  if (blockOutChannels.length === 0) throw new CheckpointError(`${file}: "block_out_channels" is empty`);
  const normGroups = r.int('norm_num_groups', { min: 1, fallback: 32 });
  const bad = blockOutChannels.find((c) => c % normGroups !== 0);
  if (bad !== undefined) throw new CheckpointError(`${file}: ${bad} channels are not a multiple of norm_num_groups ${normGroups}`);
  const scalingFactor = r.number('scaling_factor');
  if (!(scalingFactor > 0)) throw new CheckpointError(`${file}: scaling_factor must be positive, got ${scalingFactor}`);
  return {
    blockOutChannels,
    layersPerBlock: r.int('layers_per_block', { min: 1 }),
    latentChannels: r.int('latent_channels', { min: 1 }),
    outChannels: r.int('out_channels', { min: 1, fallback: 3 }),
    normGroups,
    scalingFactor,
    shiftFactor: r.has('shift_factor') ? r.number('shift_factor') : null,
    usePostQuantConv: r.bool('use_post_quant_conv', true),
    midBlockAttention: r.bool('mid_block_add_attention', true),
  };
}

// The decoder against the rest: the UNet attends to the DiT's CLIP features and denoises the VAE's latents.
export function checkDecoderAgainstConfig(unet: Blip3oUnetConfig, vae: Blip3oVaeConfig, config: Blip3oModelConfig, where = 'diffusion-decoder'): void {
  if (unet.crossAttentionDim !== config.genHiddenSize) {
    throw new CheckpointError(`${where}: the UNet's cross_attention_dim ${unet.crossAttentionDim} differs from gen_hidden_size ${config.genHiddenSize}`);
  }
  if (unet.inChannels !== vae.latentChannels || unet.outChannels !== vae.latentChannels) {
    throw new CheckpointError(`${where}: the UNet maps ${unet.inChannels} to ${unet.outChannels} channels, but the VAE's latents have ${vae.latentChannels}`);
  }
}
