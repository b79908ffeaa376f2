// VARGPT v1 (spec/vargpt-v1.md): LLaVA-1.5 (Vicuna-7B + CLIP ViT-L/14-336) reads images; VAR-d30
// draws them by next-scale prediction into a multi-scale VQ-VAE, with the LLM in the loop. This
// file is the family's TypeScript side: its config.json, its defaults, the meaning of its options,
// the prompt and its image placeholders, the position budget, and the native request.
import path from 'node:path';

import type { ChatTemplate } from '../chat-template.js';
import { expandImagePlaceholders, imageTokenCount } from '../chat-template.js';
import type { CheckpointJson, JsonObject, PreprocessorConfig, ProcessorConfig } from '../checkpoint-config.js';
import {
  CHECKPOINT_FILES,
  Reader,
  featureSelectStrategy,
  parsePreprocessorConfig,
  parseProcessorConfig,
  readCheckpointJson,
} from '../checkpoint-config.js';
import { CheckpointError, InputError, throwIfAborted } from '../errors.js';
import type { GeneratedImage } from '../image.js';
import { clipPixelValues } from '../image.js';
import type { NativeGenerateRequest, NativeModelInfo, NativeVargptV1Info } from '../native.js';
import type { ChatOptions, GenerateImageOptions, ImageProgressBase, ImageShape, ResolvedImage, ResolvedText } from '../options.js';
import { checkCallbacks, imageRules, resolveImage, resolveImageIndices, resolveSeed, resolveText } from '../options.js';
import type { SpecialTokenSources, TokenConfig, VargptTokenizer } from '../tokenizer.js';
import type { ChatMessage, ImageInput } from '../types.js';
import { chatTemplateFor, commonRequestFields, loadedAs, turnBudget } from './common.js';
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

export const FAMILY = 'vargpt-v1';
const MODEL_TYPES: readonly string[] = ['vargpt_llava'];
const ARCHITECTURES: readonly string[] = ['VARGPTLlavaForConditionalGeneration'];

// The family's defaults (spec §3, §4.2, §4.4-4.5): text is greedy, as upstream's generate(do_sample=False);
// images sample as VAR's reference setting, which VARGPT reuses: cfg 1.5 (ramped over the scales),
// top-k 900, top-p 0.96. maxNewTokens is this package's.
export const SPEC_DEFAULTS: { text: TextDefaults; image: ImageDefaults } = {
  text: { maxNewTokens: 512, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
  image: { cfg: 1.5, topK: 900, topP: 0.96 },
};

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

// The checkpoint's files as this family reads them.
export interface VargptV1Files {
  dir: string;
  config: ModelConfig;
  tokenizerConfig: JsonObject;
  chatTemplate: string;
  preprocessor: PreprocessorConfig | null;
  processor: ProcessorConfig | null;
  generationConfig: JsonObject | null;
}

// info() of a VARGPT v1 model.
export interface VargptV1ModelInfo extends NativeVargptV1Info {
  // The checkpoint folder.
  dir: string;
}

// Image progress of VARGPT v1: stage 'scale', step k of K scales (K = 10: 1x1 up to 16x16 tokens).
export interface VargptV1ImageProgress extends ImageProgressBase {
  stage: 'scale';
  /** @deprecated The same as `step` (the scale, counting from 1); kept for callers written before `step`. */
  scale: number;
  /** @deprecated The same as `steps` (the number of scales). */
  scales: number;
}

export function parseModelConfig(raw: JsonObject, file = 'config.json'): ModelConfig {
  const r = new Reader(file, raw);
  const modelType = r.optionalString('model_type');
  if (modelType !== null && !MODEL_TYPES.includes(modelType)) {
    throw new CheckpointError(`${file}: model_type is "${modelType}"; VARGPT v1 checkpoints have ${MODEL_TYPES.map((t) => `"${t}"`).join(', ')}`);
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
    featureSelectStrategy: featureSelectStrategy(r.optionalString('vision_feature_select_strategy'), file) ?? 'default',
    specialTokens,
    specialTokenIds,
  };
}

// config.json, the processor files and generation_config.json, read and checked.
export function readFiles(json: CheckpointJson): VargptV1Files {
  const at = (name: string) => path.join(json.dir, name);
  const config = parseModelConfig(json.config, json.configFile);
  const preprocessor = json.preprocessor ? parsePreprocessorConfig(json.preprocessor, at(CHECKPOINT_FILES.preprocessor)) : null;
  if (config.vision && !preprocessor) {
    throw new CheckpointError(`${json.dir} has a vision tower but no preprocessor_config.json (image mean, std and size)`);
  }
  return {
    dir: json.dir,
    config,
    tokenizerConfig: json.tokenizerConfig,
    chatTemplate: json.chatTemplate,
    preprocessor,
    processor: json.processor ? parseProcessorConfig(json.processor, at(CHECKPOINT_FILES.processor)) : null,
    generationConfig: json.generationConfig,
  };
}

// The JSON files of a VARGPT v1 checkpoint folder, read and checked (synthesize() and tests use it).
export async function readCheckpointFiles(dir: string): Promise<VargptV1Files> {
  return readFiles(await readCheckpointJson(dir));
}

// The checkpoint's defaults: the family's, overlaid with generation_config.json. The image top-k
// is checked against the codebook once the runtime reports it (bind).
function checkpointDefaults(files: VargptV1Files): { text: TextDefaults; image: ImageDefaults } {
  const file = path.join(files.dir, CHECKPOINT_FILES.generationConfig);
  return {
    text: textDefaultsFrom(SPEC_DEFAULTS.text, files.generationConfig, file),
    image: imageDefaultsFrom(SPEC_DEFAULTS.image, files.generationConfig, file, imageRules(Number.MAX_SAFE_INTEGER)),
  };
}

// A generate call with its options checked.
interface V1Call {
  what: string;
  messages: readonly ChatMessage[];
  text: ResolvedText;
  image: ResolvedImage;
  forceImage: boolean;
  trace: boolean;
  profile: boolean;
}

class VargptV1Model implements FamilyModel {
  readonly info: VargptV1ModelInfo;
  readonly template: ChatTemplate;
  readonly defaults: SamplingDefaults;
  readonly imageStartId: number | null;
  private readonly imageShape: ImageShape | null;
  // Image sampling defaults; chat() checks options.image with them even on a model that cannot draw.
  private readonly imageSampling: ImageDefaults;
  // Positions an image takes in the sequence: <|image_gen_start|> and every scale's tokens.
  private readonly imagePositions: number;

  constructor(
    private readonly files: VargptV1Files,
    private readonly tokenizer: VargptTokenizer,
    nativeInfo: NativeModelInfo,
    defaults: { text: TextDefaults; image: ImageDefaults },
    private readonly kvCache: 'f32' | 'bf16',
  ) {
    const info = loadedAs(nativeInfo, FAMILY, files.dir);
    this.info = { ...info, dir: files.dir };
    this.checkAgreement(info);
    const s = tokenizer.specialTokens;
    this.template = chatTemplateFor(files.chatTemplate, tokenizer);
    this.imageStartId = s.imageGenStart?.id ?? null;
    const v = info.var;
    this.imageShape = v ? { patchNums: v.patchNums, codebookSize: v.codebookSize, llmHidden: info.llm.hiddenSize } : null;
    this.imagePositions = v ? 1 + v.patchNums.reduce((a, pn) => a + pn * pn, 0) : 0;
    // A top-k above the codebook keeps every code: the default says so with the codebook's size.
    this.imageSampling = v ? { ...defaults.image, topK: Math.min(defaults.image.topK, v.codebookSize) } : defaults.image;
    this.defaults = { text: defaults.text, image: v ? this.imageSampling : null };
  }

  // The checkpoint's JSON files and its tensors were read by two loaders; they must agree.
  private checkAgreement(info: NativeVargptV1Info): void {
    const s = this.tokenizer.specialTokens;
    const pairs: Array<[string, number | undefined, number]> = [
      ['bos', s.bos?.id, info.bosId],
      ['eos', s.eos.id, info.eosId],
    ];
    if (info.vision) pairs.push(['image', s.image?.id, info.imageTokenId]);
    if (info.var) pairs.push(['imageGenStart', s.imageGenStart?.id, info.imageGenStartId], ['imageGenEnd', s.imageGenEnd?.id, info.imageGenEndId]);
    for (const [name, tokenizerId, nativeId] of pairs) {
      if (tokenizerId !== nativeId) {
        throw new CheckpointError(`${this.files.dir}: the ${name} token is ${tokenizerId} in the tokenizer files but ${nativeId} in config.json`);
      }
    }
    if (this.tokenizer.size > info.llm.vocabSize) {
      throw new CheckpointError(`${this.files.dir}: the tokenizer has ${this.tokenizer.size} tokens, the embedding only ${info.llm.vocabSize} rows`);
    }
  }

  planChat(what: string, messages: readonly ChatMessage[], options: ChatOptions | undefined): CallPlan {
    const o = (options ?? {}) as ChatOptions;
    if (o.forceImage !== undefined && typeof o.forceImage !== 'boolean') throw new InputError(`${what} options.forceImage must be true or false`);
    return this.plan({
      what,
      messages,
      text: resolveText(options, `${what} options`, this.defaults.text),
      image: resolveImage(o.image, `${what} options.image`, this.imageShape, this.imageSampling),
      forceImage: o.forceImage ?? false,
      trace: o.trace ?? false,
      profile: o.profile ?? false,
    });
  }

  // Drawing from a prompt: the first new token is forced to <|image_gen_start|> (as the fixture's
  // generation case), so text sampling does not apply.
  planImage(what: string, messages: readonly ChatMessage[], options: GenerateImageOptions | undefined): CallPlan {
    const o = (options ?? {}) as GenerateImageOptions;
    const where = `${what} options`;
    checkCallbacks(o as Record<string, unknown>, where, ['onImageProgress']);
    return this.plan({
      what,
      messages,
      text: { maxNewTokens: null, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: resolveSeed(o as Record<string, unknown>, where) },
      image: resolveImage(o, where, this.imageShape, this.imageSampling),
      forceImage: true,
      trace: o.trace ?? false,
      profile: o.profile ?? false,
    });
  }

  planEdit(what: string): CallPlan {
    throw new InputError(`${what}: VARGPT v1 does not edit images (VARGPT-v1.1's -edit checkpoints do)`);
  }

  // LLaVA's order, as upstream's demo: the image, then the question.
  askMessage(image: ImageInput, question: string): ChatMessage {
    return { role: 'user', content: [{ type: 'image', image }, { type: 'text', text: question }] };
  }

  private plan(call: V1Call): CallPlan {
    if (call.forceImage && !this.info.var) {
      throw new InputError(`${call.what}: this model has no image generation weights (vargpt_gen.*, vae_local.*)`);
    }
    return {
      seed: call.text.seed,
      prepare: async (readImage, signal) => {
        const { inputIds, pixelValues } = await this.prompt(call, readImage, signal);
        const maxNewTokens = this.budget(call, inputIds.length);
        return { promptTokens: inputIds.length, request: (hooks) => this.request(call, inputIds, pixelValues, maxNewTokens, hooks) };
      },
    };
  }

  // Template, images and tokens: everything before the native call, checked.
  private async prompt(call: V1Call, readImage: ReadImage, signal: AbortSignal | undefined): Promise<{ inputIds: Int32Array; pixelValues: Float32Array[] }> {
    const { prompt, images } = this.template.render(call.messages);
    const vision = this.info.vision;
    if (images.length > 0 && !vision) {
      throw new InputError(`${call.what}: this model has no vision tower (no vision_tower.* weights), so it cannot read images; send text only`);
    }
    let expanded = prompt;
    const pixelValues: Float32Array[] = [];
    if (vision && images.length > 0) {
      const placeholder = this.tokenizer.specialTokens.image?.text;
      if (!placeholder) throw new CheckpointError(`${this.files.dir}: no image placeholder token`);
      const patch = this.files.processor?.patchSize ?? vision.patchSize;
      const strategy = this.files.processor?.featureSelectStrategy ?? this.files.config.featureSelectStrategy;
      const perImage = imageTokenCount(vision.imageSize, patch, strategy);
      if (perImage !== vision.tokens) {
        throw new CheckpointError(`${this.files.dir}: the processor expands an image to ${perImage} tokens but the vision tower gives ${vision.tokens}`);
      }
      expanded = expandImagePlaceholders(prompt, placeholder, images.length, perImage);
      const pre = this.files.preprocessor;
      if (!pre) throw new CheckpointError(`${this.files.dir}: no preprocessor_config.json`);
      for (const [i, input] of images.entries()) {
        const rgb = await readImage(input, `image ${i + 1}`);
        pixelValues.push(await clipPixelValues(rgb, pre, vision.imageSize));
        throwIfAborted(signal, call.what);
      }
    }
    return { inputIds: Int32Array.from(this.tokenizer.encode(expanded)), pixelValues };
  }

  // New tokens the call may generate: the room max_position_embeddings leaves after the prompt and
  // an image (a forced image needs only its start token).
  private budget(call: V1Call, promptTokens: number): number {
    const { maxPositions } = this.info.llm;
    return turnBudget(call.what, promptTokens, maxPositions, call.forceImage, this.imagePositions, call.text.maxNewTokens, this.defaults.text.maxNewTokens);
  }

  private request(call: V1Call, inputIds: Int32Array, pixelValues: Float32Array[], maxNewTokens: number, hooks: RequestHooks): NativeGenerateRequest {
    const { text, image } = call;
    return {
      ...commonRequestFields(text, [this.tokenizer.specialTokens.eos.id], this.kvCache, call, hooks),
      inputIds,
      pixelValues,
      forceImage: call.forceImage,
      maxNewTokens,
      image: { cfg: image.cfg, topK: image.topK, topP: image.topP, seed: text.seed, replay: image.replay },
    };
  }

  progress(stage: string, step: number, steps: number, preview: GeneratedImage | null): VargptV1ImageProgress {
    if (!preview) throw new Error(`the runtime reported image stage ${JSON.stringify(stage)} without a preview`);
    if (stage !== 'scale') throw new Error(`the runtime reported image stage ${JSON.stringify(stage)}; VARGPT v1 draws by 'scale'`);
    return { stage, step, steps, preview, scale: step, scales: steps };
  }

  imageTokens(what: string, options: Record<string, unknown>): ImageTokenCodec {
    const shape = this.imageShape;
    if (!shape) throw new InputError(`${what}: this model has no VQ-VAE / VAR weights`);
    if (options['scales'] !== undefined) throw new InputError(`${what} options.scales: VARGPT v1's scales are fixed by the checkpoint (info.var.patchNums)`);
    const vq = this.info.vqvae;
    return {
      encoderInput: () => {
        if (!vq) throw new InputError(`${what}: this model has no VQ-VAE weights`);
        if (!vq.hasEncoder) throw new InputError(`${what}: this checkpoint has no VQ-VAE encoder weights (vae_local.encoder.*)`);
        return { width: vq.imageSize, height: vq.imageSize, scales: null };
      },
      checkTokens: (value, where) => ({ tokens: resolveImageIndices(value, where, shape), scales: null }),
    };
  }
}

export const vargptV1: FamilyAdapter = {
  family: FAMILY,
  title: 'VARGPT v1',
  modelTypes: MODEL_TYPES,
  architectures: ARCHITECTURES,
  specDefaults: SPEC_DEFAULTS,
  tokenConfig: (config: JsonObject, file: string): TokenConfig => parseModelConfig(config, file),
  open(json: CheckpointJson): FamilyCheckpoint {
    const files = readFiles(json);
    const defaults = checkpointDefaults(files);
    const tokenSources: SpecialTokenSources = { tokenizerConfig: files.tokenizerConfig, modelConfig: files.config, processorConfig: files.processor };
    return {
      tokenSources,
      bind: (info, tokenizer, options) => new VargptV1Model(files, tokenizer, info, defaults, options.kvCache),
    };
  },
};
