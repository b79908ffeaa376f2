// Reads the JSON files of a checkpoint folder (the Hugging Face layout): the JSON readers that name
// the file and key at fault, the CLIP image processor files that LLaVA-style families share, and
// the chat template. What config.json means is the family's business (lib/families/). Only the
// fields the TypeScript layer needs are checked; sizes the runtime needs come from the tensors.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

import { CheckpointError } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

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

export async function readTextFile(file: string, what: string): Promise<string>;
export async function readTextFile(file: string, what: string, encoding: null): Promise<Buffer>;
export async function readTextFile(file: string, what: string, encoding: 'utf8' | null = 'utf8'): Promise<string | Buffer> {
  try {
    return encoding === null ? await readFile(file) : await readFile(file, encoding);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT' ? `${what} not found: ${file}` : `cannot read ${what} ${file}: ${(error as Error).message}`,
    );
  }
}

// The errors of a JSON file that does not parse, or holds something other than an object.
export function invalidJsonError(what: string, file: string, parseMessage: string | null): CheckpointError {
  return new CheckpointError(parseMessage === null ? `${what} ${file} must hold a JSON object` : `${what} ${file} is not valid JSON: ${parseMessage}`);
}

// `text`, the contents of `file`, as a JSON object.
export function parseJsonObject(text: string, what: string, file: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalidJsonError(what, file, (error as Error).message);
  }
  if (!isObject(value)) throw invalidJsonError(what, file, null);
  return value;
}

export async function readJsonFile(file: string, what: string): Promise<JsonObject> {
  return parseJsonObject(await readTextFile(file, what), what, file);
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
export class Reader {
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

// vision_feature_select_strategy, as config.json and processor_config.json write it.
export function featureSelectStrategy(value: string | null, where: string): 'default' | 'full' | null {
  if (value === null) return null;
  if (value !== 'default' && value !== 'full') {
    throw new CheckpointError(`${where}: vision_feature_select_strategy must be "default" or "full", got "${value}"`);
  }
  return value;
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
    featureSelectStrategy: featureSelectStrategy(r.optionalString('vision_feature_select_strategy'), file),
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

// The JSON files of a checkpoint folder, read but not yet interpreted: config.json decides the
// family (lib/families/registry.ts), whose adapter reads the rest.
export interface CheckpointJson {
  dir: string;
  config: JsonObject;
  configFile: string;
  // tokenizer.json's bytes, not decoded: loadModel decodes and parses them off the main thread
  // (tokenizer-engine.ts).
  tokenizerFile: string;
  tokenizerBytes: Uint8Array;
  tokenizerConfig: JsonObject;
  chatTemplate: string;
  preprocessor: JsonObject | null;
  processor: JsonObject | null;
  generationConfig: JsonObject | null;
}

export const CHECKPOINT_FILES = {
  config: 'config.json',
  preprocessor: 'preprocessor_config.json',
  processor: 'processor_config.json',
  generationConfig: 'generation_config.json',
} as const;

// config.json is the first file read: when it is not there, say whether the folder itself is
// missing, not a folder, or empty, rather than name a file a missing folder cannot hold.
export async function readModelConfigJson(dir: string): Promise<JsonObject> {
  try {
    return await readJsonFile(path.join(dir, CHECKPOINT_FILES.config), 'model config');
  } catch (error) {
    const problem = await folderProblem(dir);
    if (problem) throw new CheckpointError(problem, { cause: error });
    throw error;
  }
}

const CHECKPOINT_LAYOUT = 'a checkpoint folder holds config.json, *.safetensors and the tokenizer files';

async function folderProblem(dir: string): Promise<string | null> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `model folder ${dir} does not exist (${CHECKPOINT_LAYOUT})`;
    if (code === 'ENOTDIR') return `${dir} is a file, not a model folder (${CHECKPOINT_LAYOUT})`;
    return null;
  }
  return entries.length === 0 ? `model folder ${dir} is empty (${CHECKPOINT_LAYOUT})` : null;
}

// `config`: config.json when the caller has read it already.
export async function readCheckpointJson(dir: string, config?: JsonObject): Promise<CheckpointJson> {
  const at = (name: string) => path.join(dir, name);
  const [configJson, tokenizerBytes, tokenizerConfig, preprocessor, processor, generationConfig] = await Promise.all([
    config ?? readModelConfigJson(dir),
    readTextFile(at('tokenizer.json'), 'tokenizer', null),
    readJsonFile(at('tokenizer_config.json'), 'tokenizer config'),
    readOptionalJsonFile(at(CHECKPOINT_FILES.preprocessor), 'image preprocessor config'),
    readOptionalJsonFile(at(CHECKPOINT_FILES.processor), 'processor config'),
    readOptionalJsonFile(at(CHECKPOINT_FILES.generationConfig), 'generation config'),
  ]);
  return {
    dir,
    config: configJson,
    configFile: at(CHECKPOINT_FILES.config),
    tokenizerFile: at('tokenizer.json'),
    tokenizerBytes,
    tokenizerConfig,
    chatTemplate: await readChatTemplate(dir, tokenizerConfig),
    preprocessor,
    processor,
    generationConfig,
  };
}
