// The JSON side of a synthesized checkpoint: config.json and the tokenizer / processor / generation
// files, in the schema the released VARGPT v1 (and the fixture) use. tokenizer.json is rebuilt
// from llama-tokenizer-js, which carries the Llama-2 vocabulary and merge list (the same 32000
// tokens and 61249 merges as llava-1.5's tokenizer.json), plus VARGPT's five added tokens.
// llama-tokenizer-js decodes its vocabulary when imported (about 100 ms on one core), so it is
// imported here on first use, never by `import 'vargpt'` or loadModel.
import type { JsonObject } from '../checkpoint-config.js';
import { TORCH_DTYPE } from './tensors.js';
import type { SynthDType } from './tensors.js';
import type { ModelSizes } from './vargpt-v1.js';

// VARGPT v1's added tokens, in id order (spec §2.1).
export const ADDED_TOKENS: ReadonlyArray<{ id: number; content: string }> = [
  { id: 0, content: '<unk>' },
  { id: 1, content: '<s>' },
  { id: 2, content: '</s>' },
  { id: 32000, content: '<image>' },
  { id: 32001, content: '<pad>' },
  { id: 32002, content: '<|image_gen_start|>' },
  { id: 32003, content: '<|image_gen_end|>' },
  { id: 32004, content: '<|image_gen_pad|>' },
];

const IMAGE_GEN = ['<|image_gen_start|>', '<|image_gen_end|>', '<|image_gen_pad|>'];

const SPECIAL_TOKENS = {
  image_gen_end: '<|image_gen_end|>',
  image_gen_end_token_id: 32003,
  image_gen_pad: '<|image_gen_pad|>',
  image_gen_pad_token_id: 32004,
  image_gen_start: '<|image_gen_start|>',
  image_gen_start_token_id: 32002,
};

// The llava-1.5 template (spec §2.2): role prefix, images before text, text + ' ', "ASSISTANT:".
export const CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}" +
  "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}" +
  "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}" +
  "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";

export async function tokenizerJson(): Promise<JsonObject> {
  const { default: llama } = await import('llama-tokenizer-js');
  const vocab: JsonObject = {};
  llama.vocabById.forEach((token, id) => {
    vocab[token] = id;
  });
  // llama-tokenizer-js keeps merges in priority order as "left right" keys.
  const merges = [...llama.merges.keys()];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ADDED_TOKENS.map(({ id, content }) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges,
    },
  };
}

const tokenEntry = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });

export function tokenizerConfigJson(): JsonObject {
  const decoder: JsonObject = {};
  for (const { id, content } of ADDED_TOKENS) decoder[String(id)] = { ...tokenEntry(content), special: true };
  return {
    add_bos_token: true,
    add_eos_token: false,
    add_prefix_space: null,
    added_tokens_decoder: decoder,
    additional_special_tokens: [...IMAGE_GEN],
    bos_token: '<s>',
    clean_up_tokenization_spaces: false,
    eos_token: '</s>',
    extra_special_tokens: {},
    legacy: false,
    // transformers writes int(1e30) here ("no limit"); JSON keeps it as a number.
    model_max_length: 1e30,
    pad_token: '<pad>',
    padding_side: 'left',
    processor_class: 'VARGPTLlavaProcessor',
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
    unk_token: '<unk>',
    use_default_system_prompt: false,
  };
}

export function specialTokensMapJson(): JsonObject {
  return {
    additional_special_tokens: IMAGE_GEN.map(tokenEntry),
    bos_token: tokenEntry('<s>'),
    eos_token: tokenEntry('</s>'),
    pad_token: tokenEntry('<pad>'),
    unk_token: tokenEntry('<unk>'),
  };
}

export function generationConfigJson(): JsonObject {
  return {
    _from_model_config: true,
    allowed_special_tokens: [...IMAGE_GEN],
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 32001,
    special_tokens: {
      image_gen_start: '<|image_gen_start|>',
      image_gen_start_token_id: 32002,
      image_gen_end: '<|image_gen_end|>',
      image_gen_end_token_id: 32003,
      image_gen_pad: '<|image_gen_pad|>',
      image_gen_pad_token_id: 32004,
    },
  };
}

export function preprocessorConfigJson(imageSize: number): JsonObject {
  return {
    crop_size: { height: imageSize, width: imageSize },
    do_center_crop: true,
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_processor_type: 'CLIPImageProcessor',
    image_std: [0.26862954, 0.26130258, 0.27577711],
    processor_class: 'VARGPTLlavaProcessor',
    resample: 3,
    rescale_factor: 0.00392156862745098,
    size: { shortest_edge: imageSize },
  };
}

export function processorConfigJson(patchSize: number): JsonObject {
  return { image_token: '<image>', patch_size: patchSize, processor_class: 'VARGPTLlavaProcessor', vision_feature_select_strategy: 'default' };
}

export function chatTemplateJson(): JsonObject {
  return { chat_template: CHAT_TEMPLATE };
}

export function modelConfigJson(sizes: ModelSizes, dtype: SynthDType): JsonObject {
  const { llm, vision } = sizes;
  const config: JsonObject = {
    architectures: ['VARGPTLlavaForConditionalGeneration'],
    hidden_size: llm.hidden,
    ignore_index: -100,
  };
  if (vision) config['image_seq_length'] = (vision.imageSize / vision.patchSize) ** 2;
  Object.assign(config, {
    image_token_index: 32000,
    model_type: 'vargpt_llava',
    pad_token_id: 32001,
    padding_side: 'left',
    projector_hidden_act: 'gelu',
    special_tokens: { ...SPECIAL_TOKENS },
    text_config: {
      _name_or_path: 'lmsys/vicuna-7b-v1.5',
      architectures: ['LlamaForCausalLM'],
      attention_bias: false,
      attention_dropout: 0.0,
      bos_token_id: 1,
      eos_token_id: 2,
      head_dim: llm.hidden / llm.heads,
      hidden_act: 'silu',
      hidden_size: llm.hidden,
      initializer_range: 0.02,
      intermediate_size: llm.intermediate,
      max_position_embeddings: llm.maxPositions,
      mlp_bias: false,
      model_type: 'llama',
      num_attention_heads: llm.heads,
      num_hidden_layers: llm.layers,
      num_key_value_heads: llm.kvHeads,
      pad_token_id: null,
      pretraining_tp: 1,
      rms_norm_eps: 1e-5,
      rope_scaling: null,
      rope_theta: 10000.0,
      tie_word_embeddings: false,
      use_cache: true,
      vocab_size: llm.vocab,
    },
    tie_word_embeddings: false,
    torch_dtype: TORCH_DTYPE[dtype],
    train_from_scratch: false,
    transformers_version: '4.46.1',
  });
  if (vision) {
    config['vision_config'] = {
      attention_dropout: 0.0,
      hidden_act: 'quick_gelu',
      hidden_size: vision.hidden,
      image_size: vision.imageSize,
      initializer_factor: 1.0,
      initializer_range: 0.02,
      intermediate_size: vision.intermediate,
      layer_norm_eps: 1e-5,
      model_type: 'clip_vision_model',
      num_attention_heads: vision.heads,
      num_channels: 3,
      num_hidden_layers: vision.layers,
      patch_size: vision.patchSize,
      projection_dim: 768,
      vocab_size: 32000,
    };
  }
  config['vision_feature_layer'] = -2;
  config['vision_feature_select_strategy'] = 'default';
  config['vocab_size'] = llm.vocab;
  return config;
}
