// Reads the JSON files of a VARGPT v1 checkpoint folder (the Hugging Face layout) into typed,
// validated objects. Only the fields the TypeScript layer needs are checked; sizes the runtime
// needs come from the tensors themselves (the native loader reads them).
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { CheckpointError } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface TextConfig {
  hiddenSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositions: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
}

export interface VisionConfig {
  hiddenSize: number;
  layers: number;
  heads: number;
  intermediateSize: number;
  imageSize: number;
  patchSize: number;
}

export interface ModelConfig {
  raw: JsonObject;
  text: TextConfig;
  vision: VisionConfig | null;
  imageTokenIndex: number;
  padTokenId: number | null;
  featureSelectStrategy: 'default' | 'full';
  // The strings of the image-generation special tokens, keyed as in config.special_tokens.
  specialTokens: { imageGenStart: string; imageGenEnd: string; imageGenPad: string } | null;
  specialTokenIds: { imageGenStart: number; imageGenEnd: number; imageGenPad: number } | null;
}

export interface PreprocessorConfig {
  shortestEdge: number;
  crop: { height: number; width: number } | null;
  resample: number;
  rescaleFactor: number;
  mean: [number, number, number];
  std: [number, number, number];
  doResize: boolean;
  doCenterCrop: boolean;
  doRescale: boolean;
  doNormalize: boolean;
}

export interface ProcessorConfig {
  imageToken: string | null;
  patchSize: number | null;
  featureSelectStrategy: 'default' | 'full' | null;
}

export async function readJsonFile(file: string, what: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT' ? `${what} not found: ${file}` : `cannot read ${what} ${file}: ${(error as Error).message}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CheckpointError(`${what} ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw new CheckpointError(`${what} ${file} must hold a JSON object`);
  return value;
}

export async function readOptionalJsonFile(file: string, what: string): Promise<JsonObject | null> {
  try {
    return await readJsonFile(file, what);
  } catch (error) {
    if (error instanceof CheckpointError && error.message.startsWith(`${what} not found`)) return null;
    throw error;
  }
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Field readers: each names the file and the key path at fault.
class Reader {
  constructor(
    readonly file: string,
    readonly object: JsonObject,
    readonly prefix = '',
  ) {}

  private where(key: string): string {
    return `${this.file}: "${this.prefix}${key}"`;
  }

  has(key: string): boolean {
    return this.object[key] !== undefined && this.object[key] !== null;
  }

  int(key: string, options: { min?: number; fallback?: number } = {}): number {
    const value = this.object[key];
    if ((value === undefined || value === null) && options.fallback !== undefined) return options.fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw new CheckpointError(`${this.where(key)} must be an integer, got ${JSON.stringify(value) ?? 'nothing'}`);
    }
    if (options.min !== undefined && value < options.min) {
      throw new CheckpointError(`${this.where(key)} must be >= ${options.min}, got ${value}`);
    }
    return value;
  }

  optionalInt(key: string): number | null {
    return this.has(key) ? this.int(key) : null;
  }

  number(key: string, fallback?: number): number {
    const value = this.object[key];
    if ((value === undefined || value === null) && fallback !== undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new CheckpointError(`${this.where(key)} must be a number, got ${JSON.stringify(value) ?? 'nothing'}`);
    }
    return value;
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.object[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'boolean') throw new CheckpointError(`${this.where(key)} must be true or false`);
    return value;
  }

  string(key: string): string {
    const value = this.object[key];
    if (typeof value !== 'string') {
      throw new CheckpointError(`${this.where(key)} must be a string, got ${JSON.stringify(value) ?? 'nothing'}`);
    }
    return value;
  }

  optionalString(key: string): string | null {
    return this.has(key) ? this.string(key) : null;
  }

  triple(key: string): [number, number, number] {
    const value = this.object[key];
    if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw new CheckpointError(`${this.where(key)} must be an array of 3 numbers`);
    }
    return [value[0] as number, value[1] as number, value[2] as number];
  }

  child(key: string): Reader {
    const value = this.object[key];
    if (!isObject(value)) throw new CheckpointError(`${this.where(key)} must be an object`);
    return new Reader(this.file, value, `${this.prefix}${key}.`);
  }

  optionalChild(key: string): Reader | null {
    return this.has(key) ? this.child(key) : null;
  }
}

function strategy(value: string | null, where: string): 'default' | 'full' | null {
  if (value === null) return null;
  if (value !== 'default' && value !== 'full') {
    throw new CheckpointError(`${where}: vision_feature_select_strategy must be "default" or "full", got "${value}"`);
  }
  return value;
}

export function parseModelConfig(raw: JsonObject, file = 'config.json'): ModelConfig {
  const r = new Reader(file, raw);
  const modelType = r.optionalString('model_type');
  if (modelType !== null && modelType !== 'vargpt_llava') {
    throw new CheckpointError(`${file}: model_type is "${modelType}"; this runtime reads VARGPT v1 ("vargpt_llava") checkpoints`);
  }
  const t = r.child('text_config');
  const heads = t.int('num_attention_heads', { min: 1 });
  const text: TextConfig = {
    hiddenSize: t.int('hidden_size', { min: 1 }),
    layers: t.int('num_hidden_layers', { min: 1 }),
    heads,
    kvHeads: t.int('num_key_value_heads', { min: 1, fallback: heads }),
    intermediateSize: t.int('intermediate_size', { min: 1 }),
    vocabSize: t.int('vocab_size', { min: 1 }),
    maxPositions: t.int('max_position_embeddings', { min: 1, fallback: 4096 }),
    bosTokenId: t.optionalInt('bos_token_id'),
    eosTokenId: t.optionalInt('eos_token_id'),
  };
  const v = r.optionalChild('vision_config');
  const vision: VisionConfig | null = v
    ? {
        hiddenSize: v.int('hidden_size', { min: 1 }),
        layers: v.int('num_hidden_layers', { min: 1 }),
        heads: v.int('num_attention_heads', { min: 1 }),
        intermediateSize: v.int('intermediate_size', { min: 1 }),
        imageSize: v.int('image_size', { min: 1 }),
        patchSize: v.int('patch_size', { min: 1 }),
      }
    : null;
  if (vision && vision.imageSize % vision.patchSize !== 0) {
    throw new CheckpointError(`${file}: vision_config.image_size ${vision.imageSize} is not a multiple of patch_size ${vision.patchSize}`);
  }
  const s = r.optionalChild('special_tokens');
  const specialTokens = s
    ? { imageGenStart: s.string('image_gen_start'), imageGenEnd: s.string('image_gen_end'), imageGenPad: s.string('image_gen_pad') }
    : null;
  const specialTokenIds = s
    ? {
        imageGenStart: s.int('image_gen_start_token_id', { min: 0 }),
        imageGenEnd: s.int('image_gen_end_token_id', { min: 0 }),
        imageGenPad: s.int('image_gen_pad_token_id', { min: 0 }),
      }
    : null;
  return {
    raw,
    text,
    vision,
    imageTokenIndex: r.int('image_token_index', { min: 0, fallback: 32000 }),
    padTokenId: r.optionalInt('pad_token_id'),
    featureSelectStrategy: strategy(r.optionalString('vision_feature_select_strategy'), file) ?? 'default',
    specialTokens,
    specialTokenIds,
  };
}

export function parsePreprocessorConfig(raw: JsonObject, file = 'preprocessor_config.json'): PreprocessorConfig {
  const r = new Reader(file, raw);
  const size = r.child('size');
  const crop = r.optionalChild('crop_size');
  const resample = r.int('resample', { fallback: 3 });
  if (resample < 0 || resample > 5) throw new CheckpointError(`${file}: "resample" ${resample} is not a PIL filter id (0-5)`);
  const std = r.triple('image_std');
  if (std.some((x) => x <= 0)) throw new CheckpointError(`${file}: "image_std" values must be positive`);
  return {
    shortestEdge: size.int('shortest_edge', { min: 1 }),
    crop: crop ? { height: crop.int('height', { min: 1 }), width: crop.int('width', { min: 1 }) } : null,
    resample,
    rescaleFactor: r.number('rescale_factor', 1 / 255),
    mean: r.triple('image_mean'),
    std,
    doResize: r.bool('do_resize', true),
    doCenterCrop: r.bool('do_center_crop', true),
    doRescale: r.bool('do_rescale', true),
    doNormalize: r.bool('do_normalize', true),
  };
}

export function parseProcessorConfig(raw: JsonObject, file = 'processor_config.json'): ProcessorConfig {
  const r = new Reader(file, raw);
  return {
    imageToken: r.optionalString('image_token'),
    patchSize: r.has('patch_size') ? r.int('patch_size', { min: 1 }) : null,
    featureSelectStrategy: strategy(r.optionalString('vision_feature_select_strategy'), file),
  };
}

// The chat template lives in chat_template.json (processor) or tokenizer_config.json; the
// processor's copy wins, as in transformers.
export async function readChatTemplate(dir: string, tokenizerConfig: JsonObject): Promise<string> {
  const file = path.join(dir, 'chat_template.json');
  const fromProcessor = await readOptionalJsonFile(file, 'chat template');
  if (fromProcessor) return new Reader(file, fromProcessor).string('chat_template');
  const value = tokenizerConfig['chat_template'];
  if (typeof value === 'string') return value;
  throw new CheckpointError(`${dir} has no chat template (neither chat_template.json nor "chat_template" in tokenizer_config.json)`);
}

export interface CheckpointFiles {
  dir: string;
  config: ModelConfig;
  tokenizerJson: JsonObject;
  tokenizerConfig: JsonObject;
  chatTemplate: string;
  preprocessor: PreprocessorConfig | null;
  processor: ProcessorConfig | null;
  generationConfig: JsonObject | null;
}

export async function readCheckpointFiles(dir: string): Promise<CheckpointFiles> {
  const at = (name: string) => path.join(dir, name);
  const [configRaw, tokenizerJson, tokenizerConfig, preprocessorRaw, processorRaw, generationConfig] = await Promise.all([
    readJsonFile(at('config.json'), 'model config'),
    readJsonFile(at('tokenizer.json'), 'tokenizer'),
    readJsonFile(at('tokenizer_config.json'), 'tokenizer config'),
    readOptionalJsonFile(at('preprocessor_config.json'), 'image preprocessor config'),
    readOptionalJsonFile(at('processor_config.json'), 'processor config'),
    readOptionalJsonFile(at('generation_config.json'), 'generation config'),
  ]);
  const config = parseModelConfig(configRaw, at('config.json'));
  const preprocessor = preprocessorRaw ? parsePreprocessorConfig(preprocessorRaw, at('preprocessor_config.json')) : null;
  if (config.vision && !preprocessor) {
    throw new CheckpointError(`${dir} has a vision tower but no preprocessor_config.json (image mean, std and size)`);
  }
  return {
    dir,
    config,
    tokenizerJson,
    tokenizerConfig,
    chatTemplate: await readChatTemplate(dir, tokenizerConfig),
    preprocessor,
    processor: processorRaw ? parseProcessorConfig(processorRaw, at('processor_config.json')) : null,
    generationConfig,
  };
}
