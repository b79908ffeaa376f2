// VARGPT-v1.1 (spec/vargpt-v1.1.md): a Qwen2-VL ViT reads each image at its own resolution and a
// Qwen2 decoder with multimodal RoPE answers. This file is the family's TypeScript side: its
// config.json, its defaults, the Qwen2-VL image processor (one <|image_pad|> per merged patch, a
// different count per image), the position budget, and the native request. This runtime reads
// the drawing options (Infinity's scale schedule, CFG, the per-bit sampler), editing, and the BSQ
// image tokens.
import path from 'node:path';

import type { ChatTemplate } from '../chat-template.js';
import type { CheckpointJson, JsonObject } from '../checkpoint-config.js';
import { CHECKPOINT_FILES, Reader, readCheckpointJson } from '../checkpoint-config.js';
import { CheckpointError, InputError } from '../errors.js';
import type { GeneratedImage, RgbImage } from '../image.js';
import { resizeImage } from '../image.js';
import type { NativeGenerateRequest, NativeModelInfo, NativeVargptV11Info } from '../native.js';
import type { ChatOptions, EditImageOptions, GenerateImageOptions, ImageProgressBase, ResolvedText, Rule, ScaleSchedule } from '../options.js';
import { checkCallbacks, checkDefault, describeValue, DIFFUSION_OPTION_KEYS, imageRules, num, optionObject, rejectOptions, resolveSeed, resolveText, toTyped } from '../options.js';
import type { Qwen2VlImageConfig } from '../qwen2-vl-image.js';
import { parseQwen2VlImageConfig } from '../qwen2-vl-image.js';
import type { SpecialTokenSources, TokenConfig, VargptTokenizer } from '../tokenizer.js';
import type { ChatMessage, ImageInput } from '../types.js';
import { chatTemplateFor, commonRequestFields, loadedAs, turnBudget } from './common.js';
import type { PreparedImages } from './qwen-vl.js';
import { checkQwenVlAgreement, checkQwenVlProcessor, qwenVlPrompt, qwenVlStopIds } from './qwen-vl.js';
import { imageDefaultsFrom, textDefaultsFrom } from './defaults.js';
import type {
  CallPlan,
  FamilyAdapter,
  FamilyCheckpoint,
  FamilyModel,
  ImageDefaults,
  ImageTokenCodec,
  ReadImage,
  RequestHooks,
  SamplingDefaults,
  TextDefaults,
} from './types.js';

export const FAMILY = 'vargpt-v1.1';
const MODEL_TYPES: readonly string[] = ['vargpt_qwen2_vl'];
const ARCHITECTURES: readonly string[] = ['VARGPTQwen2VLForConditionalGeneration'];

// Upstream's 512x512 schedule (spec 2.6, '0.25M' at aspect 1): 10 scales, 2521 tokens; with the
// release's 16x VAE the last 32x32 grid is 512x512 pixels.
export const DEFAULT_SCALES: ScaleSchedule = Object.freeze(
  [1, 2, 4, 6, 8, 12, 16, 20, 24, 32].map((n) => Object.freeze([n, n] as const)),
);

// Text is greedy, as upstream's demo (generate(do_sample=False)); images sample as upstream's
// inference branch (spec 4.2): cfg 3 on every scale, logits temperature 0.5, top-k 900 (2 per
// bit: a no-op), top-p 0.97. A checkpoint's generation_config.json overrides these
// (image_cfg, image_tau, image_top_k, image_top_p). maxNewTokens is this package's.
export const SPEC_DEFAULTS: { text: TextDefaults; image: ImageDefaults & { tau: number; scales: ScaleSchedule } } = {
  text: { maxNewTokens: 512, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
  image: { cfg: 3, tau: 0.5, topK: 900, topP: 0.97, scales: DEFAULT_SCALES },
};

// Editing reads the source at most this many pixels (LlamaFactory's image_max_pixels, spec 3.3).
const EDIT_MAX_PIXELS = 512 * 512;
const MIN_SIDE = 28;

const TAU_RULE: Rule = { check: (v) => v > 0, rule: 'a number > 0' };
// Top-k over a bit's two values: any k >= 1 (k >= 2 keeps both), as upstream clamps 900 to 2.
const V11_IMAGE_RULES = imageRules(Number.MAX_SAFE_INTEGER);

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

// Image progress of VARGPT-v1.1: stage 'scale', step k of K scales (K = 10 by default).
export interface VargptV11ImageProgress extends ImageProgressBase {
  stage: 'scale';
  /** @deprecated The same as `step`; present so code written for VARGPT v1's event reads both. */
  scale: number;
  /** @deprecated The same as `steps`. */
  scales: number;
}

// The drawing options of one call, checked.
export interface V11ResolvedImage {
  cfg: number;
  tau: number;
  topK: number;
  topP: number;
  scales: Array<[number, number]>;
  replay?: { bits: Int32Array[] };
}

// What a schedule must be: non-empty [h, w] token grids that never shrink, at most `levels`
// (the decoder's level embeddings).
export function checkScaleSchedule(value: unknown, what: string, levels: number): Array<[number, number]> {
  if (!Array.isArray(value) || value.length === 0) throw new InputError(`${what} must be a non-empty array of [height, width] token grids`);
  if (value.length > levels) throw new InputError(`${what} has ${value.length} scales; this model's image decoder has level embeddings for ${levels}`);
  const out: Array<[number, number]> = [];
  value.forEach((pair: unknown, i) => {
    const ok = Array.isArray(pair) && pair.length === 2 && pair.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= 4096);
    if (!ok) throw new InputError(`${what}[${i}] must be [height, width] with whole numbers of tokens in 1..4096, got ${describeValue(pair)}`);
    const [h, w] = pair as [number, number];
    const prev = out[i - 1];
    if (prev && (h < prev[0] || w < prev[1])) throw new InputError(`${what}[${i}] = [${h}, ${w}] is smaller than the scale before it [${prev[0]}, ${prev[1]}]; scales go coarse to fine`);
    out.push([h, w]);
  });
  return out;
}

// The image options of a call over the model's defaults; `image` (the model's decoder) checks the
// schedule and the replayed bits.
export function resolveV11Image(
  value: unknown,
  what: string,
  image: { bits: number; levels: number } | null,
  defaults: ImageDefaults & { tau: number; scales: ScaleSchedule },
): V11ResolvedImage {
  const o = optionObject(value, what);
  rejectOptions(o, what, DIFFUSION_OPTION_KEYS, 'a BLIP3-o (diffusion) option; VARGPT-v1.1 draws by next-scale prediction (cfg, tau, topK, topP, scales)');
  const levels = image?.levels ?? Number.MAX_SAFE_INTEGER;
  const out: V11ResolvedImage = {
    cfg: num(o, 'cfg', what, defaults.cfg, V11_IMAGE_RULES.cfg),
    tau: num(o, 'tau', what, defaults.tau, TAU_RULE),
    topK: num(o, 'topK', what, defaults.topK, V11_IMAGE_RULES.topK),
    topP: num(o, 'topP', what, defaults.topP, V11_IMAGE_RULES.topP),
    scales: checkScaleSchedule(o['scales'] ?? defaults.scales, `${what}.scales`, levels),
  };
  if (o['replay'] !== undefined) {
    if (!image) throw new InputError(`${what}.replay: this model has no image decoder`);
    const r = optionObject(o['replay'], `${what}.replay`);
    for (const key of ['indices', 'noise']) {
      if (r[key] !== undefined) throw new InputError(`${what}.replay.${key}: VARGPT-v1.1 replays drawn bits (replay.bits), not ${key}`);
    }
    out.replay = { bits: checkBits(r['bits'], `${what}.replay.bits`, out.scales, image.bits) };
  }
  return out;
}

// Per scale h*w*d values 0 or 1.
function checkBits(value: unknown, what: string, scales: ReadonlyArray<readonly [number, number]>, bits: number): Int32Array[] {
  return toTyped(
    value,
    (n) => new Int32Array(n),
    what,
    scales.map(([h, w]) => h * w * bits),
    (v) => v === 0 || v === 1,
    'a bit (0 or 1)',
  );
}

function scalePairs(scales: ReadonlyArray<readonly [number, number]>): Int32Array {
  return Int32Array.from(scales.flatMap(([h, w]) => [h, w]));
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
  if (config.vision && imageProcessor) checkQwenVlProcessor(config.vision, imageProcessor, preprocessorFile);
  return {
    dir: json.dir,
    config,
    tokenizerConfig: json.tokenizerConfig,
    chatTemplate: json.chatTemplate,
    imageProcessor,
    generationConfig: json.generationConfig,
  };
}

export async function readCheckpointFiles(dir: string): Promise<VargptV11Files> {
  return readFiles(await readCheckpointJson(dir));
}

// The checkpoint's defaults: the family's, overlaid with generation_config.json.
function checkpointDefaults(files: VargptV11Files): { text: TextDefaults; image: ImageDefaults & { tau: number; scales: ScaleSchedule } } {
  const file = path.join(files.dir, CHECKPOINT_FILES.generationConfig);
  const gen = files.generationConfig;
  const image = imageDefaultsFrom(SPEC_DEFAULTS.image, gen, file, V11_IMAGE_RULES);
  const r = gen ? new Reader(file, gen) : null;
  const tau = r?.has('image_tau') ? checkDefault(r.number('image_tau'), TAU_RULE, `${file}: "image_tau"`) : SPEC_DEFAULTS.image.tau;
  return {
    text: textDefaultsFrom(SPEC_DEFAULTS.text, gen, file),
    image: { ...image, tau, scales: SPEC_DEFAULTS.image.scales },
  };
}

// LlamaFactory's preparation of an editing source (spec 3.3): at most 512x512 pixels (nearest,
// int() truncation of each side), then sides under 28 pixels widened.
export async function preShrinkEditSource(image: RgbImage): Promise<RgbImage> {
  let out: RgbImage = image;
  if (out.width * out.height > EDIT_MAX_PIXELS) {
    const factor = Math.sqrt(EDIT_MAX_PIXELS / (out.width * out.height));
    out = await resizeImage(out, Math.max(1, Math.floor(out.width * factor)), Math.max(1, Math.floor(out.height * factor)), 'nearest');
  }
  if (Math.min(out.width, out.height) < MIN_SIDE) {
    out = await resizeImage(out, Math.max(out.width, MIN_SIDE), Math.max(out.height, MIN_SIDE), 'nearest');
  }
  return out;
}

interface V11Call {
  what: string;
  messages: readonly ChatMessage[];
  text: ResolvedText;
  image: V11ResolvedImage;
  forceImage: boolean;
  // The editing source's pre-shrink (image 0 of the prompt): always, never, or 'auto' (only when
  // the prompt would not fit the image decoder's context without it).
  preShrink: boolean | 'auto';
  trace: boolean;
  profile: boolean;
}

class VargptV11Model implements FamilyModel {
  readonly info: VargptV11ModelInfo;
  readonly template: ChatTemplate;
  readonly defaults: SamplingDefaults;
  readonly imageStartId: number | null;
  private readonly stopIds: number[];
  private readonly imageSampling: ImageDefaults & { tau: number; scales: ScaleSchedule };

  constructor(
    private readonly files: VargptV11Files,
    private readonly tokenizer: VargptTokenizer,
    nativeInfo: NativeModelInfo,
    defaults: { text: TextDefaults; image: ImageDefaults & { tau: number; scales: ScaleSchedule } },
    private readonly kvCache: 'f32' | 'bf16',
  ) {
    const info = loadedAs(nativeInfo, FAMILY, files.dir);
    this.info = { ...info, dir: files.dir };
    this.checkAgreement(info);
    const s = tokenizer.specialTokens;
    this.template = chatTemplateFor(files.chatTemplate, tokenizer);
    this.imageStartId = s.imageGenStart?.id ?? null;
    this.imageSampling = defaults.image;
    this.defaults = { text: defaults.text, image: info.image ? defaults.image : null };
    this.stopIds = qwenVlStopIds(info, tokenizer, files.generationConfig, files.dir);
  }

  // config.json, the tokenizer files and the tensors were read by separate loaders; they must agree.
  private checkAgreement(info: NativeVargptV11Info): void {
    const s = this.tokenizer.specialTokens;
    const dir = this.files.dir;
    checkQwenVlAgreement(info, this.tokenizer, dir, this.files.config.vision !== null);
    if (s.imageGenStart && s.imageGenStart.id !== info.imageGenStartId) {
      throw new CheckpointError(`${dir}: <|image_gen_start|> is ${s.imageGenStart.id} in the tokenizer files but ${info.imageGenStartId} in config.json`);
    }
    if (info.image && !s.imageGenStart) {
      throw new CheckpointError(`${dir}: the checkpoint has image generation weights but the tokenizer has no <|image_gen_start|> (config.json special_tokens)`);
    }
  }

  private resolveImage(value: unknown, what: string): V11ResolvedImage {
    return resolveV11Image(value, what, this.info.image, this.imageSampling);
  }

  planChat(what: string, messages: readonly ChatMessage[], options: ChatOptions | undefined): CallPlan {
    const o = (options ?? {}) as ChatOptions;
    if (o.forceImage !== undefined && typeof o.forceImage !== 'boolean') throw new InputError(`${what} options.forceImage must be true or false`);
    return this.plan({
      what,
      messages,
      text: resolveText(options, `${what} options`, this.defaults.text),
      image: this.resolveImage(o.image, `${what} options.image`),
      forceImage: o.forceImage ?? false,
      preShrink: false,
      trace: o.trace ?? false,
      profile: o.profile ?? false,
    });
  }

  // Drawing from a prompt: the first new token is forced to <|image_gen_start|> (as the fixture's
  // generation case), so text sampling does not apply.
  planImage(what: string, messages: readonly ChatMessage[], options: GenerateImageOptions | undefined): CallPlan {
    return this.planDrawing(what, messages, options, false);
  }

  // Editing (spec 4.4): the source image, then the instruction, in one user turn (the fixture's
  // editing case and LlamaFactory's data), and the drawing forced as for generateImage.
  planEdit(what: string, image: ImageInput, instruction: string, options: EditImageOptions | undefined): CallPlan {
    const o = (options ?? {}) as EditImageOptions;
    if (o.preShrink !== undefined && typeof o.preShrink !== 'boolean' && o.preShrink !== 'auto') {
      throw new InputError(`${what} options.preShrink must be true, false or "auto"`);
    }
    const messages: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text: instruction }] }];
    return this.planDrawing(what, messages, o, o.preShrink ?? 'auto');
  }

  private planDrawing(what: string, messages: readonly ChatMessage[], options: GenerateImageOptions | undefined, preShrink: boolean | 'auto'): CallPlan {
    const o = (options ?? {}) as GenerateImageOptions;
    const where = `${what} options`;
    checkCallbacks(o as Record<string, unknown>, where, ['onImageProgress']);
    return this.plan({
      what,
      messages,
      text: { maxNewTokens: null, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: resolveSeed(o as Record<string, unknown>, where) },
      image: this.resolveImage(o, where),
      forceImage: true,
      preShrink,
      trace: o.trace ?? false,
      profile: o.profile ?? false,
    });
  }

  // As upstream's demo and the fixture's understanding case: the question, then the image.
  askMessage(image: ImageInput, question: string): ChatMessage {
    return { role: 'user', content: [{ type: 'text', text: question }, { type: 'image', image }] };
  }

  private plan(call: V11Call): CallPlan {
    if (call.forceImage && !this.info.image) {
      throw new InputError(`${call.what}: this model has no image generation weights (vargpt_gen.*, vae_local.*)`);
    }
    return {
      seed: call.text.seed,
      prepare: async (readImage, signal) => {
        let { inputIds, images } = await this.prompt(call, readImage, signal, call.preShrink === true);
        const rows = this.info.image?.contextRows;
        if (call.preShrink === 'auto' && rows !== undefined && inputIds.length > rows) {
          ({ inputIds, images } = await this.prompt(call, readImage, signal, true));
        }
        this.checkContext(call, inputIds.length);
        const maxNewTokens = this.budget(call, inputIds.length);
        return { promptTokens: inputIds.length, request: (hooks) => this.request(call, inputIds, images, maxNewTokens, hooks) };
      },
    };
  }

  // `shrinkSource`: pre-shrink image 0, the editing source.
  private prompt(call: V11Call, readImage: ReadImage, signal: AbortSignal | undefined, shrinkSource: boolean): Promise<{ inputIds: Int32Array; images: PreparedImages }> {
    return qwenVlPrompt(
      {
        what: call.what,
        messages: call.messages,
        template: this.template,
        tokenizer: this.tokenizer,
        vision: this.info.vision,
        processor: this.files.imageProcessor,
        dir: this.files.dir,
        adjust: shrinkSource ? (rgb, i) => (i === 0 ? preShrinkEditSource(rgb) : Promise.resolve(rgb)) : undefined,
      },
      readImage,
      signal,
    );
  }

  // The image decoder cross-attends to every token before <|image_gen_start|>; its unconditional
  // context (cfg_uncond) has a fixed number of rows, which bounds that length (spec 7.2).
  private checkContext(call: V11Call, promptTokens: number): void {
    const rows = this.info.image?.contextRows;
    if (call.forceImage && rows !== undefined && promptTokens > rows) {
      const hint = call.preShrink === true ? '' : ' (a smaller image, or editImage with preShrink, uses fewer)';
      throw new InputError(`${call.what}: the prompt has ${promptTokens} tokens; the image decoder attends to at most ${rows}${hint}`);
    }
  }

  // Positions one image takes: <|image_gen_start|> and every scale's tokens.
  private imagePositions(call: V11Call): number {
    return this.info.image ? 1 + call.image.scales.reduce((a, [h, w]) => a + h * w, 0) : 0;
  }

  // New tokens the call may generate: the room max_position_embeddings leaves after the prompt and
  // an image (a forced image needs only its start token).
  private budget(call: V11Call, promptTokens: number): number {
    const { maxPositions } = this.info.llm;
    return turnBudget(call.what, promptTokens, maxPositions, call.forceImage, this.imagePositions(call), call.text.maxNewTokens, this.defaults.text.maxNewTokens);
  }

  private request(call: V11Call, inputIds: Int32Array, images: PreparedImages, maxNewTokens: number, hooks: RequestHooks): NativeGenerateRequest {
    const { text, image } = call;
    return {
      ...commonRequestFields(text, this.stopIds, this.kvCache, call, hooks),
      inputIds,
      pixelValues: images.pixelValues,
      imageGrids: images.grids,
      forceImage: call.forceImage,
      maxNewTokens,
      // Only a model that draws gets image options: the runtime draws whenever the start token comes.
      image: this.info.image
        ? { cfg: image.cfg, tau: image.tau, topK: image.topK, topP: image.topP, seed: text.seed, scales: image.scales, replay: image.replay }
        : undefined,
    };
  }

  progress(stage: string, step: number, steps: number, preview: GeneratedImage | null): VargptV11ImageProgress {
    if (!preview) throw new Error(`the runtime reported image stage ${JSON.stringify(stage)} without a preview`);
    if (stage !== 'scale') throw new Error(`the runtime reported image stage ${JSON.stringify(stage)}; VARGPT-v1.1 draws by 'scale'`);
    return { stage, step, steps, preview, scale: step, scales: steps };
  }

  imageTokens(what: string, options: Record<string, unknown>): ImageTokenCodec {
    const image = this.info.image;
    if (!image) throw new InputError(`${what}: this model has no image generation weights (vargpt_gen.*, vae_local.*), so no BSQ image tokens`);
    const scales = checkScaleSchedule(options['scales'] ?? this.imageSampling.scales, `${what} options.scales`, Number.MAX_SAFE_INTEGER);
    const last = scales[scales.length - 1]!;
    return {
      encoderInput: () => {
        if (!image.hasEncoder) throw new InputError(`${what}: this checkpoint has no BSQ VAE encoder weights (vae_local.encoder.*)`);
        return { width: last[1] * image.downsample, height: last[0] * image.downsample, scales: scalePairs(scales) };
      },
      checkTokens: (value, where) => ({ tokens: checkBits(value, where, scales, image.bits), scales: scalePairs(scales) }),
    };
  }
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
    const defaults = checkpointDefaults(files);
    const tokenSources: SpecialTokenSources = { tokenizerConfig: files.tokenizerConfig, modelConfig: tokenConfig(files.config), processorConfig: null };
    return {
      tokenSources,
      bind: (info, tokenizer, options) => new VargptV11Model(files, tokenizer, info, defaults, options.kvCache),
    };
  },
};
