// The non-weight files of a synthesized BLIP3-o checkpoint, in the schema of the release (and of
// the blip3o-tiny fixture): config.json in transformers 4.51's flat Qwen2.5-VL layout with
// BLIP3-o's training fields, the Qwen2.5 tokenizer grown by [IMG], [/IMG] and <image> (fast
// tokenizer.json and the slow vocab.json + merges.txt that upstream loads), the stock Qwen2.5-VL
// processor and chat template, and diffusion-decoder/ in diffusers layout.
import type { Json, JsonObject } from '../checkpoint-config.js';
import { BLIP3O_TOKEN_IDS } from '../families/blip3o-config.js';
import type { Blip3oSizes, UnetSizes, VaeSizes } from './blip3o.js';
import { CLIP_WIDTH, unetProjectionInputDim } from './blip3o.js';
import { TORCH_DTYPE } from './tensors.js';
import type { SynthDType } from './tensors.js';
import { BASE_VOCAB, V11_CHAT_TEMPLATE, v11TokenizerJson } from './vargpt-v1.1-files.js';

// Added tokens from BASE_VOCAB in id order, with the `special` flag Qwen2.5's tokenizer gives
// them (its tool-call and fill-in-the-middle tokens are not special), then BLIP3-o's three.
const ADDED: ReadonlyArray<readonly [string, boolean]> = [
  ['<|endoftext|>', true],
  ['<|im_start|>', true],
  ['<|im_end|>', true],
  ['<|object_ref_start|>', true],
  ['<|object_ref_end|>', true],
  ['<|box_start|>', true],
  ['<|box_end|>', true],
  ['<|quad_start|>', true],
  ['<|quad_end|>', true],
  ['<|vision_start|>', true],
  ['<|vision_end|>', true],
  ['<|vision_pad|>', true],
  ['<|image_pad|>', true],
  ['<|video_pad|>', true],
  ['<tool_call>', false],
  ['</tool_call>', false],
  ['<|fim_prefix|>', false],
  ['<|fim_middle|>', false],
  ['<|fim_suffix|>', false],
  ['<|fim_pad|>', false],
  ['<|repo_name|>', false],
  ['<|file_sep|>', false],
  ['[IMG]', true],
  ['[/IMG]', true],
  ['<image>', true],
];

// train.py's add_special_tokens replaces the list: only BLIP3-o's three remain in it.
const ADDITIONAL_SPECIAL = ['[IMG]', '[/IMG]', '<image>'];

const idOf = (token: string): number => {
  const i = ADDED.findIndex(([t]) => t === token);
  if (i < 0) throw new Error(`${token} is not an added token`);
  return BASE_VOCAB + i;
};

if (idOf('[IMG]') !== BLIP3O_TOKEN_IDS.imageStart || idOf('<image>') !== BLIP3O_TOKEN_IDS.image || BASE_VOCAB + ADDED.length !== BLIP3O_TOKEN_IDS.tokenizerSize) {
  throw new Error('the BLIP3-o added tokens disagree with the ids upstream hard-codes');
}

const ENDOFTEXT = idOf('<|endoftext|>');
const IM_END = idOf('<|im_end|>');

export async function blip3oTokenizerJson(): Promise<JsonObject> {
  const base = await v11TokenizerJson();
  return {
    ...base,
    added_tokens: ADDED.map(([content, special], i) => ({
      id: BASE_VOCAB + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special,
    })),
  };
}

// vocab.json and merges.txt, the slow tokenizer's files, as Qwen2Tokenizer writes them: the
// vocabulary in id order (JSON.stringify of the object would move digit keys to the front).
export async function blip3oSlowTokenizerFiles(): Promise<{ vocab: string; merges: string }> {
  const model = (await v11TokenizerJson())['model'] as { vocab: Record<string, number>; merges: string[][] };
  const entries = Object.entries(model.vocab).sort((a, b) => a[1] - b[1]);
  const vocab = `{${entries.map(([token, id]) => `${JSON.stringify(token)}:${id}`).join(',')}}`;
  const merges = `#version: 0.2\n${model.merges.map((pair) => `${pair.join(' ')}\n`).join('')}`;
  return { vocab, merges };
}

const tokenEntry = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });

export function blip3oTokenizerConfigJson(): JsonObject {
  const decoder: JsonObject = {};
  ADDED.forEach(([content, special], i) => {
    decoder[String(BASE_VOCAB + i)] = { ...tokenEntry(content), special };
  });
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    additional_special_tokens: [...ADDITIONAL_SPECIAL],
    bos_token: null,
    chat_template: V11_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    extra_special_tokens: {},
    model_max_length: 512,
    pad_token: '<|endoftext|>',
    padding_side: 'right',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

export function blip3oSpecialTokensMapJson(): JsonObject {
  return {
    additional_special_tokens: ADDITIONAL_SPECIAL.map(tokenEntry),
    eos_token: tokenEntry('<|im_end|>'),
    pad_token: tokenEntry('<|endoftext|>'),
  };
}

export function blip3oAddedTokensJson(): JsonObject {
  return Object.fromEntries(ADDED.map(([content], i) => [content, BASE_VOCAB + i]));
}

export function blip3oChatTemplateJson(): JsonObject {
  return { chat_template: V11_CHAT_TEMPLATE };
}

// Greedy; the release's own file is unknown (see the fixture's README).
export function blip3oGenerationConfigJson(): JsonObject {
  return {
    bos_token_id: ENDOFTEXT,
    do_sample: false,
    eos_token_id: [IM_END, ENDOFTEXT],
    pad_token_id: ENDOFTEXT,
    transformers_version: '4.51.3',
  };
}

// The stock Qwen2.5-VL image processor.
export function blip3oPreprocessorConfigJson(sizes: Blip3oSizes): JsonObject {
  const { vision } = sizes;
  return {
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_processor_type: 'Qwen2VLImageProcessor',
    image_std: [0.26862954, 0.26130258, 0.27577711],
    max_pixels: 12845056,
    merge_size: vision.mergeSize,
    min_pixels: 3136,
    patch_size: vision.patchSize,
    processor_class: 'Qwen2_5_VLProcessor',
    resample: 3,
    rescale_factor: 0.00392156862745098,
    temporal_patch_size: vision.temporalPatchSize,
  };
}

export function blip3oModelConfigJson(sizes: Blip3oSizes, dtype: SynthDType): JsonObject {
  const { llm, vision } = sizes;
  return {
    architectures: ['blip3oQwenForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: ENDOFTEXT,
    eos_token_id: IM_END,
    freeze_mm_mlp_adapter: false,
    gen_hidden_size: CLIP_WIDTH,
    gen_pooling: 'early_pool2d_4',
    gen_vision_tower: 'eva-clip-E-14-plus',
    hidden_act: 'silu',
    hidden_size: llm.hidden,
    image_aspect_ratio: 'square',
    image_token_id: idOf('<|image_pad|>'),
    initializer_range: 0.02,
    intermediate_size: llm.intermediate,
    max_position_embeddings: llm.maxPositions,
    max_window_layers: llm.maxWindowLayers,
    mm_patch_merge_type: 'flat',
    mm_projector_lr: null,
    mm_projector_type: 'mlp2x_gelu',
    mm_use_im_patch_token: false,
    mm_use_im_start_end: false,
    mm_vision_select_feature: 'patch',
    mm_vision_select_layer: -2,
    model_type: 'blip3o_qwen',
    n_query: sizes.nQuery,
    num_attention_heads: llm.heads,
    num_hidden_layers: llm.layers,
    num_key_value_heads: llm.kvHeads,
    pad_token_id: ENDOFTEXT,
    rms_norm_eps: 1e-6,
    // transformers 4.51 rewrites Qwen's "mrope" type to "default" on save.
    rope_scaling: { mrope_section: [...llm.mropeSection], rope_type: 'default', type: 'default' },
    rope_theta: 1000000.0,
    sliding_window: 32768,
    tie_word_embeddings: llm.tied,
    tokenizer_model_max_length: 512,
    tokenizer_padding_side: 'right',
    torch_dtype: TORCH_DTYPE[dtype],
    transformers_version: '4.51.3',
    tune_mm_mlp_adapter: false,
    use_cache: true,
    use_mm_proj: true,
    use_sliding_window: false,
    video_token_id: idOf('<|video_pad|>'),
    vision_config: {
      depth: vision.depth,
      fullatt_block_indexes: [...vision.fullAttentionBlocks],
      hidden_act: 'silu',
      hidden_size: vision.hidden,
      in_channels: 3,
      in_chans: 3,
      initializer_range: 0.02,
      intermediate_size: vision.intermediate,
      model_type: 'qwen2_5_vl',
      num_heads: vision.heads,
      out_hidden_size: llm.hidden,
      patch_size: vision.patchSize,
      spatial_merge_size: vision.mergeSize,
      spatial_patch_size: vision.patchSize,
      temporal_patch_size: vision.temporalPatchSize,
      tokens_per_second: 2,
      torch_dtype: TORCH_DTYPE[dtype],
      window_size: vision.windowSize,
    },
    vision_end_token_id: idOf('<|vision_end|>'),
    vision_start_token_id: idOf('<|vision_start|>'),
    vision_token_id: idOf('<|vision_pad|>'),
    vision_tower_pretrained: null,
    vocab_size: llm.vocab,
  };
}

// diffusers' component files. The pipeline and scheduler come from the release (diffusers
// 0.24.0); the model configs carry the version that wrote the fixture's.
const DIFFUSERS_MODEL_VERSION = '0.40.0.dev0';
const NULL_COMPONENT: Json = [null, null];

export function modelIndexJson(): JsonObject {
  return {
    _class_name: 'EmuVisualGenerationPipeline',
    _diffusers_version: '0.24.0',
    feature_extractor: NULL_COMPONENT,
    multimodal_encoder: NULL_COMPONENT,
    safety_checker: NULL_COMPONENT,
    scheduler: ['diffusers', 'EulerDiscreteScheduler'],
    tokenizer: NULL_COMPONENT,
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  };
}

// SDXL-base's Euler scheduler.
export function eulerSchedulerJson(): JsonObject {
  return {
    _class_name: 'EulerDiscreteScheduler',
    _diffusers_version: '0.24.0',
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    clip_sample: false,
    interpolation_type: 'linear',
    num_train_timesteps: 1000,
    prediction_type: 'epsilon',
    sample_max_value: 1.0,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
    timestep_spacing: 'leading',
    trained_betas: null,
    use_karras_sigmas: false,
  };
}

export function unetConfigJson(u: UnetSizes): JsonObject {
  const n = u.blockOutChannels.length;
  return {
    _class_name: 'UNet2DConditionModel',
    _diffusers_version: DIFFUSERS_MODEL_VERSION,
    act_fn: 'silu',
    addition_embed_type: 'text_time',
    addition_embed_type_num_heads: 64,
    addition_time_embed_dim: u.additionTimeEmbedDim,
    attention_head_dim: [...u.attentionHeads],
    attention_type: 'default',
    block_out_channels: [...u.blockOutChannels],
    center_input_sample: false,
    class_embed_type: null,
    class_embeddings_concat: false,
    conv_in_kernel: 3,
    conv_out_kernel: 3,
    cross_attention_dim: u.crossAttentionDim,
    cross_attention_norm: null,
    down_block_types: Array.from({ length: n }, (_, i) => (i === 0 ? 'DownBlock2D' : 'CrossAttnDownBlock2D')),
    downsample_padding: 1,
    dropout: 0.0,
    dual_cross_attention: false,
    encoder_hid_dim: null,
    encoder_hid_dim_type: null,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: u.inChannels,
    layers_per_block: u.layersPerBlock,
    mid_block_only_cross_attention: null,
    mid_block_scale_factor: 1,
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    norm_eps: 1e-5,
    norm_num_groups: 32,
    num_attention_heads: null,
    num_class_embeds: null,
    only_cross_attention: false,
    out_channels: u.inChannels,
    projection_class_embeddings_input_dim: unetProjectionInputDim(u),
    resnet_out_scale_factor: 1.0,
    resnet_skip_time_act: false,
    resnet_time_scale_shift: 'default',
    reverse_transformer_layers_per_block: null,
    sample_size: u.sampleSize,
    time_cond_proj_dim: null,
    time_embedding_act_fn: null,
    time_embedding_dim: null,
    time_embedding_type: 'positional',
    timestep_post_act: null,
    transformer_layers_per_block: [...u.transformerLayersPerBlock],
    up_block_types: Array.from({ length: n }, (_, i) => (i === n - 1 ? 'UpBlock2D' : 'CrossAttnUpBlock2D')),
    upcast_attention: false,
    use_linear_projection: true,
  };
}

export function vaeConfigJson(v: VaeSizes): JsonObject {
  const n = v.blockOutChannels.length;
  return {
    _class_name: 'AutoencoderKL',
    _diffusers_version: DIFFUSERS_MODEL_VERSION,
    act_fn: 'silu',
    block_out_channels: [...v.blockOutChannels],
    down_block_types: Array.from({ length: n }, () => 'DownEncoderBlock2D'),
    force_upcast: true,
    in_channels: 3,
    latent_channels: v.latentChannels,
    latents_mean: null,
    latents_std: null,
    layers_per_block: v.layersPerBlock,
    mid_block_add_attention: true,
    norm_num_groups: 32,
    out_channels: 3,
    sample_size: v.sampleSize,
    scaling_factor: v.scalingFactor,
    shift_factor: null,
    up_block_types: Array.from({ length: n }, () => 'UpDecoderBlock2D'),
    use_post_quant_conv: true,
    use_quant_conv: true,
  };
}

// diffusers' save_pretrained(variant=...) file name for a stored dtype.
export function diffusersWeightsFile(dtype: SynthDType): string {
  const variant = { f32: '', bf16: '.bf16', f16: '.fp16' }[dtype];
  return `diffusion_pytorch_model${variant}.safetensors`;
}
