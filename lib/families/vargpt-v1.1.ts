// VARGPT-v1.1 (spec/vargpt-v1.1.md): a Qwen2-VL ViT reads each image at its own resolution and a
// Qwen2 decoder with multimodal RoPE answers. This file is the family's TypeScript side: its
// config.json, its defaults, the Qwen2-VL image processor (one <|image_pad|> per merged patch, a
// different count per image), the position budget, and the native request. This runtime reads
// images with v1.1 but does not draw with it yet: drawing options are refused, not ignored.
import path from 'node:path';

import type { ChatTemplate } from '../chat-template.js';
import type { CheckpointJson, JsonObject } from '../checkpoint-config.js';
import { CHECKPOINT_FILES, Reader, readCheckpointJson } from '../checkpoint-config.js';
import { CheckpointError, InputError, throwIfAborted } from '../errors.js';
import type { GeneratedImage } from '../image.js';
import type { NativeGenerateRequest, NativeModelInfo, NativeVargptV11Info } from '../native.js';
import type { ChatOptions, GenerateImageOptions, ResolvedText } from '../options.js';
import { resolveText } from '../options.js';
import type { Qwen2VlImageConfig } from '../qwen2-vl-image.js';
import { parseQwen2VlImageConfig, qwen2VlPixels } from '../qwen2-vl-image.js';
import type { SpecialTokenSources, TokenConfig, VargptTokenizer } from '../tokenizer.js';
import type { ChatMessage, ImageInput } from '../types.js';
import { chatTemplateFor, loadedAs, newTokenBudget } from './common.js';
import { textDefaultsFrom } from './defaults.js';
import type { CallPlan, FamilyAdapter, FamilyCheckpoint, FamilyModel, ImageTokenCodec, ReadImage, RequestHooks, SamplingDefaults, TextDefaults } from './types.js';

export const FAMILY = 'vargpt-v1.1';
const MODEL_TYPES: readonly string[] = ['vargpt_qwen2_vl'];
const ARCHITECTURES: readonly string[] = ['VARGPTQwen2VLForConditionalGeneration'];

// Text is greedy, as upstream's demo (generate(do_sample=False)); a checkpoint's
// generation_config.json overrides these. maxNewTokens is this package's.
export const SPEC_DEFAULTS: SamplingDefaults = {
  text: { maxNewTokens: 512, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
  image: null,
};

const NO_DRAWING = 'this runtime reads images with VARGPT-v1.1 checkpoints but does not draw with them yet';

export interface V11TextConfig {
  hiddenSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositions: number;
  mropeSection: [number, number, number];
}

export interface V11VisionConfig {
  depth: number;
  embedDim: number;
  heads: number;
  outHidden: number;
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
}

export interface V11ModelConfig {
  raw: JsonObject;
  text: V11TextConfig;
  vision: V11VisionConfig | null;
  imageTokenId: number | null;
  visionStartTokenId: number | null;
  visionEndTokenId: number | null;
  specialTokens: { imageGenStart: string; imageGenEnd: string; imageGenPad: string } | null;
  specialTokenIds: { imageGenStart: number; imageGenEnd: number; imageGenPad: number } | null;
}

// info() of a VARGPT-v1.1 model.
export interface VargptV11ModelInfo extends NativeVargptV11Info {
  // The checkpoint folder.
  dir: string;
}

function ids(value: unknown, where: string): number[] {
  const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw new CheckpointError(`${where} must be a token id or a list of them`);
  }
  return list as number[];
}

export function parseModelConfig(raw: JsonObject, file = 'config.json'): V11ModelConfig {
  const r = new Reader(file, raw);
  const modelType = r.optionalString('model_type');
  if (modelType !== null && !MODEL_TYPES.includes(modelType)) {
    throw new CheckpointError(`${file}: model_type is "${modelType}"; VARGPT-v1.1 checkpoints have ${MODEL_TYPES.map((t) => `"${t}"`).join(', ')}`);
  }
  // Qwen2-VL keeps the text model's fields at the root; newer exports nest them in text_config.
  const t = r.optionalChild('text_config') ?? r;
  const heads = t.int('num_attention_heads', { min: 1 });
  const hiddenSize = t.int('hidden_size', { min: 1 });
  const scaling = t.optionalChild('rope_scaling');
  const section = scaling?.has('mrope_section') ? scaling.object['mrope_section'] : undefined;
  if (!Array.isArray(section) || section.length !== 3 || !section.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0)) {
    throw new CheckpointError(`${file}: rope_scaling.mrope_section must list 3 positive integers (VARGPT-v1.1 uses multimodal RoPE)`);
  }
  const text: V11TextConfig = {
    hiddenSize,
    layers: t.int('num_hidden_layers', { min: 1 }),
    heads,
    kvHeads: t.int('num_key_value_heads', { min: 1, fallback: heads }),
    intermediateSize: t.int('intermediate_size', { min: 1 }),
    vocabSize: t.int('vocab_size', { min: 1 }),
    maxPositions: t.int('max_position_embeddings', { min: 1, fallback: 32768 }),
    mropeSection: section as [number, number, number],
  };
  const v = r.optionalChild('vision_config');
  const vision: V11VisionConfig | null = v
    ? {
        depth: v.int('depth', { min: 1 }),
        embedDim: v.int('embed_dim', { min: 1 }),
        heads: v.int('num_heads', { min: 1 }),
        outHidden: v.int('hidden_size', { min: 1 }),
        patchSize: v.int('patch_size', { min: 1, fallback: 14 }),
        mergeSize: v.int('spatial_merge_size', { min: 1, fallback: 2 }),
        temporalPatchSize: v.int('temporal_patch_size', { min: 1, fallback: 2 }),
      }
    : null;
  const s = r.optionalChild('special_tokens');
  return {
    raw,
    text,
    vision,
    imageTokenId: r.optionalInt('image_token_id'),
    visionStartTokenId: r.optionalInt('vision_start_token_id'),
    visionEndTokenId: r.optionalInt('vision_end_token_id'),
    specialTokens: s ? { imageGenStart: s.string('image_gen_start'), imageGenEnd: s.string('image_gen_end'), imageGenPad: s.string('image_gen_pad') } : null,
    specialTokenIds: s
      ? {
          imageGenStart: s.int('image_gen_start_token_id', { min: 0 }),
          imageGenEnd: s.int('image_gen_end_token_id', { min: 0 }),
          imageGenPad: s.int('image_gen_pad_token_id', { min: 0 }),
        }
      : null,
  };
}

function tokenConfig(config: V11ModelConfig): TokenConfig {
  return { imageTokenIndex: config.imageTokenId, specialTokens: config.specialTokens, specialTokenIds: config.specialTokenIds };
}

// The checkpoint's files as this family reads them.
export interface VargptV11Files {
  dir: string;
  config: V11ModelConfig;
  tokenizerJson: JsonObject;
  tokenizerConfig: JsonObject;
  chatTemplate: string;
  imageProcessor: Qwen2VlImageConfig | null;
  generationConfig: JsonObject | null;
}

export function readFiles(json: CheckpointJson): VargptV11Files {
  const config = parseModelConfig(json.config, json.configFile);
  const preprocessorFile = path.join(json.dir, CHECKPOINT_FILES.preprocessor);
  const imageProcessor = json.preprocessor ? parseQwen2VlImageConfig(json.preprocessor, preprocessorFile) : null;
  if (config.vision && !imageProcessor) {
    throw new CheckpointError(`${json.dir} has a vision tower but no preprocessor_config.json (pixel limits, mean and std)`);
  }
  if (config.vision && imageProcessor) {
    const v = config.vision;
    const p = imageProcessor;
    if (p.patchSize !== v.patchSize || p.mergeSize !== v.mergeSize || p.temporalPatchSize !== v.temporalPatchSize) {
      throw new CheckpointError(
        `${preprocessorFile}: patch ${p.patchSize}, merge ${p.mergeSize}, temporal patch ${p.temporalPatchSize} differ from config.json vision_config (${v.patchSize}, ${v.mergeSize}, ${v.temporalPatchSize})`,
      );
    }
  }
  return {
    dir: json.dir,
    config,
    tokenizerJson: json.tokenizerJson,
    tokenizerConfig: json.tokenizerConfig,
    chatTemplate: json.chatTemplate,
    imageProcessor,
    generationConfig: json.generationConfig,
  };
}

export async function readCheckpointFiles(dir: string): Promise<VargptV11Files> {
  return readFiles(await readCheckpointJson(dir));
}

interface V11Call {
  what: string;
  messages: readonly ChatMessage[];
  text: ResolvedText;
  trace: boolean;
  profile: boolean;
}

// The images of a prompt, preprocessed: one [patches, 1176] block and one (t, h, w) grid each.
interface PreparedImages {
  pixelValues: Float32Array[];
  grids: Int32Array;
  tokens: number[]; // <|image_pad|> tokens per image
}

class VargptV11Model implements FamilyModel {
  readonly info: VargptV11ModelInfo;
  readonly template: ChatTemplate;
  readonly defaults: SamplingDefaults;
  readonly imageStartId: number | null;
  private readonly stopIds: number[];

  constructor(
    private readonly files: VargptV11Files,
    private readonly tokenizer: VargptTokenizer,
    nativeInfo: NativeModelInfo,
    text: TextDefaults,
  ) {
    const info = loadedAs(nativeInfo, FAMILY, files.dir);
    this.info = { ...info, dir: files.dir };
    this.checkAgreement(info);
    const s = tokenizer.specialTokens;
    this.template = chatTemplateFor(files.chatTemplate, tokenizer);
    this.imageStartId = s.imageGenStart?.id ?? null;
    this.defaults = { text, image: null };
    // Text ends on every id the checkpoint calls EOS (config.json, generation_config.json, the
    // tokenizer's eos_token) and on <|endoftext|>, Qwen's end of document.
    const stops = new Set<number>([...info.eosIds, s.eos.id]);
    const gen = files.generationConfig;
    if (gen) for (const id of ids(gen['eos_token_id'], `${path.join(files.dir, CHECKPOINT_FILES.generationConfig)}: "eos_token_id"`)) stops.add(id);
    const endOfText = tokenizer.tokenToId('<|endoftext|>');
    if (endOfText !== undefined) stops.add(endOfText);
    this.stopIds = [...stops].sort((a, b) => a - b);
  }

  // config.json, the tokenizer files and the tensors were read by separate loaders; they must agree.
  private checkAgreement(info: NativeVargptV11Info): void {
    const s = this.tokenizer.specialTokens;
    const dir = this.files.dir;
    if (!info.eosIds.includes(s.eos.id)) {
      throw new CheckpointError(`${dir}: the tokenizer's eos_token "${s.eos.text}" (${s.eos.id}) is not among config.json's eos_token_id ${JSON.stringify(info.eosIds)}`);
    }
    if (info.vision) {
      if (!s.image) throw new CheckpointError(`${dir}: the checkpoint has a vision tower but the tokenizer has no image token (config.json image_token_id)`);
      if (s.image.id !== info.imageTokenId) throw new CheckpointError(`${dir}: the image token is ${s.image.id} in the tokenizer files but ${info.imageTokenId} in config.json`);
      if (!this.files.config.vision) throw new CheckpointError(`${dir}: the checkpoint has visual.* tensors but config.json has no vision_config`);
    }
    if (s.imageGenStart && s.imageGenStart.id !== info.imageGenStartId) {
      throw new CheckpointError(`${dir}: <|image_gen_start|> is ${s.imageGenStart.id} in the tokenizer files but ${info.imageGenStartId} in config.json`);
    }
    if (this.tokenizer.size > info.llm.vocabSize) {
      throw new CheckpointError(`${dir}: the tokenizer has ${this.tokenizer.size} tokens, the embedding only ${info.llm.vocabSize} rows`);
    }
  }

  planChat(what: string, messages: readonly ChatMessage[], options: ChatOptions | undefined): CallPlan {
    const o = (options ?? {}) as ChatOptions;
    if (o.forceImage !== undefined && typeof o.forceImage !== 'boolean') throw new InputError(`${what} options.forceImage must be true or false`);
    if (o.forceImage) throw new InputError(`${what} options.forceImage: ${NO_DRAWING}`);
    if (o.image !== undefined) throw new InputError(`${what} options.image: ${NO_DRAWING}`);
    return this.plan({
      what,
      messages,
      text: resolveText(options, `${what} options`, this.defaults.text),
      trace: o.trace ?? false,
      profile: o.profile ?? false,
    });
  }

  planImage(what: string, _messages: readonly ChatMessage[], _options: GenerateImageOptions | undefined): CallPlan {
    throw new InputError(`${what}: ${NO_DRAWING}`);
  }

  // As upstream's demo and the fixture's understanding case: the question, then the image.
  askMessage(image: ImageInput, question: string): ChatMessage {
    return { role: 'user', content: [{ type: 'text', text: question }, { type: 'image', image }] };
  }

  private plan(call: V11Call): CallPlan {
    return {
      seed: call.text.seed,
      prepare: async (readImage, signal) => {
        const { inputIds, images } = await this.prompt(call, readImage, signal);
        const maxNewTokens = this.budget(call, inputIds.length);
        return { promptTokens: inputIds.length, request: (hooks) => this.request(call, inputIds, images, maxNewTokens, hooks) };
      },
    };
  }

  // Template, images and tokens: everything before the native call, checked.
  private async prompt(call: V11Call, readImage: ReadImage, signal: AbortSignal | undefined): Promise<{ inputIds: Int32Array; images: PreparedImages }> {
    const { prompt, images } = this.template.render(call.messages);
    const vision = this.info.vision;
    const processor = this.files.imageProcessor;
    const prepared: PreparedImages = { pixelValues: [], grids: new Int32Array(3 * images.length), tokens: [] };
    if (images.length > 0 && (!vision || !processor)) {
      throw new InputError(`${call.what}: this model has no vision tower (no visual.* weights), so it cannot read images; send text only`);
    }
    let expanded = prompt;
    if (vision && processor && images.length > 0) {
      const merge = vision.mergeSize * vision.mergeSize;
      for (const [i, input] of images.entries()) {
        const rgb = await readImage(input, `image ${i + 1}`);
        let px;
        try {
          px = await qwen2VlPixels(rgb, processor);
        } catch (error) {
          if (error instanceof InputError) throw new InputError(`${call.what}: image ${i + 1}: ${error.message}`);
          throw error;
        }
        prepared.pixelValues.push(px.patches);
        prepared.grids.set([px.grid.t, px.grid.h, px.grid.w], 3 * i);
        prepared.tokens.push((px.grid.t * px.grid.h * px.grid.w) / merge);
        throwIfAborted(signal, call.what);
      }
      const placeholder = this.tokenizer.specialTokens.image?.text;
      if (!placeholder) throw new CheckpointError(`${this.files.dir}: no image placeholder token`);
      expanded = expandEachPlaceholder(prompt, placeholder, prepared.tokens);
    }
    return { inputIds: Int32Array.from(this.tokenizer.encode(expanded)), images: prepared };
  }

  // New tokens the call may generate: the room max_position_embeddings leaves after the prompt.
  private budget(call: V11Call, promptTokens: number): number {
    return newTokenBudget(call.what, promptTokens, this.info.llm.maxPositions, call.text.maxNewTokens, this.defaults.text.maxNewTokens);
  }

  private request(call: V11Call, inputIds: Int32Array, images: PreparedImages, maxNewTokens: number, hooks: RequestHooks): NativeGenerateRequest {
    const { text } = call;
    return {
      inputIds,
      pixelValues: images.pixelValues,
      imageGrids: images.grids,
      maxNewTokens,
      temperature: text.temperature,
      topK: text.topK,
      topP: text.topP,
      repetitionPenalty: text.repetitionPenalty,
      seed: text.seed,
      stopIds: this.stopIds,
      trace: call.trace,
      profile: call.profile,
      cancel: hooks.cancel,
      onToken: hooks.onToken,
    };
  }

  progress(stage: string, _step: number, _steps: number, _preview: GeneratedImage): never {
    throw new Error(`the runtime reported image stage ${JSON.stringify(stage)}, but VARGPT-v1.1 does not draw in this runtime`);
  }

  imageTokens(what: string): ImageTokenCodec {
    throw new InputError(`${what}: ${NO_DRAWING} (its BSQ image tokens included)`);
  }
}

// The Qwen2-VL processor step: the i-th placeholder becomes counts[i] placeholders (the image's
// merged patches), after checking the template wrote exactly one per image.
export function expandEachPlaceholder(prompt: string, placeholder: string, counts: readonly number[]): string {
  const pieces = prompt.split(placeholder);
  if (pieces.length - 1 !== counts.length) {
    throw new InputError(`the prompt holds ${pieces.length - 1} image placeholder(s) "${placeholder}" but ${counts.length} image(s) were given`);
  }
  let out = pieces[0]!;
  counts.forEach((n, i) => {
    if (!Number.isSafeInteger(n) || n < 1) throw new InputError(`invalid image token count ${n}`);
    out += placeholder.repeat(n) + pieces[i + 1]!;
  });
  return out;
}

export const vargptV11: FamilyAdapter = {
  family: FAMILY,
  title: 'VARGPT-v1.1',
  modelTypes: MODEL_TYPES,
  architectures: ARCHITECTURES,
  specDefaults: SPEC_DEFAULTS,
  tokenConfig: (config: JsonObject, file: string): TokenConfig => tokenConfig(parseModelConfig(config, file)),
  open(json: CheckpointJson): FamilyCheckpoint {
    const files = readFiles(json);
    const text = textDefaultsFrom(SPEC_DEFAULTS.text, files.generationConfig, path.join(files.dir, CHECKPOINT_FILES.generationConfig));
    const tokenSources: SpecialTokenSources = { tokenizerConfig: files.tokenizerConfig, modelConfig: tokenConfig(files.config), processorConfig: null };
    return {
      tokenSources,
      bind: (info, tokenizer) => new VargptV11Model(files, tokenizer, info, text),
    };
  },
};
