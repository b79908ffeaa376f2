// BLIP3-o (spec/blip3o.md): a frozen Qwen2.5-VL reads images and answers; in the release, 64
// learned queries after [IMG] condition a flow-matching DiT into CLIP space and an SDXL-layout
// UNet and VAE draw from it. This file is the family's TypeScript side: its config.json (the
// transformers-4.51 flat layout), its defaults and the understanding request. This runtime reads
// images with BLIP3-o but does not draw with it yet: drawing options are refused, not ignored.
import path from 'node:path';

import type { ChatTemplate } from '../chat-template.js';
import type { CheckpointJson, JsonObject } from '../checkpoint-config.js';
import { CHECKPOINT_FILES } from '../checkpoint-config.js';
import { CheckpointError, InputError } from '../errors.js';
import type { GeneratedImage } from '../image.js';
import type { NativeBlip3oInfo, NativeGenerateRequest, NativeModelInfo } from '../native.js';
import type { ChatOptions, ResolvedText } from '../options.js';
import { resolveText } from '../options.js';
import type { Qwen2VlImageConfig } from '../qwen2-vl-image.js';
import { parseQwen2VlImageConfig } from '../qwen2-vl-image.js';
import type { SpecialTokenSources, TokenConfig, VargptTokenizer } from '../tokenizer.js';
import type { ChatMessage, ImageInput } from '../types.js';
import type { Blip3oModelConfig } from './blip3o-config.js';
import { BLIP3O_MODEL_TYPES, parseBlip3oConfig } from './blip3o-config.js';
import { chatTemplateFor, commonRequestFields, loadedAs, newTokenBudget } from './common.js';
import { textDefaultsFrom } from './defaults.js';
import type { PreparedImages } from './qwen-vl.js';
import { checkQwenVlAgreement, qwenVlPrompt, qwenVlStopIds } from './qwen-vl.js';
import type { CallPlan, FamilyAdapter, FamilyCheckpoint, FamilyModel, ImageTokenCodec, ReadImage, RequestHooks, SamplingDefaults, TextDefaults } from './types.js';

export const FAMILY = 'blip3o';
const ARCHITECTURES: readonly string[] = ['blip3oQwenForCausalLM', 'blip3oQwenForInferenceLM'];

// Understanding is stock Qwen2.5-VL: greedy, as upstream's generate(do_sample=False); a
// checkpoint's generation_config.json overrides these. maxNewTokens is this package's.
export const SPEC_DEFAULTS: SamplingDefaults = {
  text: { maxNewTokens: 512, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
  image: null,
};

const NO_DRAWING = 'this runtime reads images with BLIP3-o checkpoints but does not draw with them yet';

// info() of a BLIP3-o model.
export interface Blip3oModelInfo extends NativeBlip3oInfo {
  // The checkpoint folder.
  dir: string;
}

export interface Blip3oFiles {
  dir: string;
  config: Blip3oModelConfig;
  tokenizerConfig: JsonObject;
  chatTemplate: string;
  imageProcessor: Qwen2VlImageConfig;
  generationConfig: JsonObject | null;
}

function tokenConfig(config: Blip3oModelConfig): TokenConfig {
  // [IMG] starts a generation only through the generation prompt, never in chat.
  return { imageTokenIndex: config.imageTokenId, specialTokens: null, specialTokenIds: null };
}

export function readFiles(json: CheckpointJson): Blip3oFiles {
  const config = parseBlip3oConfig(json.config, json.configFile);
  const preprocessorFile = path.join(json.dir, CHECKPOINT_FILES.preprocessor);
  if (!json.preprocessor) throw new CheckpointError(`${json.dir} has a vision tower but no preprocessor_config.json (pixel limits, mean and std)`);
  const imageProcessor = parseQwen2VlImageConfig(json.preprocessor, preprocessorFile);
  const v = config.vision;
  const p = imageProcessor;
  if (p.patchSize !== v.patchSize || p.mergeSize !== v.mergeSize || p.temporalPatchSize !== v.temporalPatchSize) {
    throw new CheckpointError(
      `${preprocessorFile}: patch ${p.patchSize}, merge ${p.mergeSize}, temporal patch ${p.temporalPatchSize} differ from config.json vision_config (${v.patchSize}, ${v.mergeSize}, ${v.temporalPatchSize})`,
    );
  }
  return { dir: json.dir, config, tokenizerConfig: json.tokenizerConfig, chatTemplate: json.chatTemplate, imageProcessor, generationConfig: json.generationConfig };
}

interface Blip3oCall {
  what: string;
  messages: readonly ChatMessage[];
  text: ResolvedText;
  trace: boolean;
  profile: boolean;
}

class Blip3oModel implements FamilyModel {
  readonly info: Blip3oModelInfo;
  readonly template: ChatTemplate;
  readonly defaults: SamplingDefaults;
  readonly imageStartId = null;
  private readonly stopIds: number[];

  constructor(
    private readonly files: Blip3oFiles,
    private readonly tokenizer: VargptTokenizer,
    nativeInfo: NativeModelInfo,
    text: TextDefaults,
    private readonly kvCache: 'f32' | 'bf16',
  ) {
    const info = loadedAs(nativeInfo, FAMILY, files.dir);
    this.info = { ...info, dir: files.dir };
    checkQwenVlAgreement(info, tokenizer, files.dir, true);
    if (info.nQuery !== files.config.nQuery) throw new CheckpointError(`${files.dir}: the runtime read n_query ${info.nQuery}, config.json says ${files.config.nQuery}`);
    this.template = chatTemplateFor(files.chatTemplate, tokenizer);
    this.defaults = { text, image: null };
    this.stopIds = qwenVlStopIds(info, tokenizer, files.generationConfig, files.dir);
  }

  planChat(what: string, messages: readonly ChatMessage[], options: ChatOptions | undefined): CallPlan {
    const o = (options ?? {}) as ChatOptions;
    if (o.forceImage) throw new InputError(`${what} options.forceImage: ${NO_DRAWING}`);
    if (o.image !== undefined) throw new InputError(`${what} options.image: ${NO_DRAWING}`);
    const call: Blip3oCall = { what, messages, text: resolveText(options, `${what} options`, this.defaults.text), trace: o.trace ?? false, profile: o.profile ?? false };
    return {
      seed: call.text.seed,
      prepare: async (readImage: ReadImage, signal) => {
        const { inputIds, images } = await qwenVlPrompt(
          { what, messages, template: this.template, tokenizer: this.tokenizer, vision: this.info.vision, processor: this.files.imageProcessor, dir: this.files.dir },
          readImage,
          signal,
        );
        const maxNewTokens = newTokenBudget(what, inputIds.length, this.info.llm.maxPositions, call.text.maxNewTokens, this.defaults.text.maxNewTokens);
        return { promptTokens: inputIds.length, request: (hooks) => this.request(call, inputIds, images, maxNewTokens, hooks) };
      },
    };
  }

  planImage(what: string): CallPlan {
    throw new InputError(`${what}: ${NO_DRAWING}`);
  }

  planEdit(what: string): CallPlan {
    throw new InputError(`${what}: BLIP3-o does not edit images`);
  }

  // As the fixture's understanding case (and Qwen2.5-VL's examples): the image, then the question.
  askMessage(image: ImageInput, question: string): ChatMessage {
    return { role: 'user', content: [{ type: 'image', image }, { type: 'text', text: question }] };
  }

  private request(call: Blip3oCall, inputIds: Int32Array, images: PreparedImages, maxNewTokens: number, hooks: RequestHooks): NativeGenerateRequest {
    return {
      ...commonRequestFields(call.text, this.stopIds, this.kvCache, call, hooks),
      inputIds,
      pixelValues: images.pixelValues,
      imageGrids: images.grids,
      maxNewTokens,
    };
  }

  progress(stage: string, _step: number, _steps: number, _preview: GeneratedImage): never {
    throw new Error(`the runtime reported image stage ${JSON.stringify(stage)}, but BLIP3-o does not draw in this runtime`);
  }

  imageTokens(what: string): ImageTokenCodec {
    throw new InputError(`${what}: BLIP3-o has no discrete image tokens`);
  }
}

export const blip3o: FamilyAdapter = {
  family: FAMILY,
  title: 'BLIP3-o',
  modelTypes: BLIP3O_MODEL_TYPES,
  architectures: ARCHITECTURES,
  specDefaults: SPEC_DEFAULTS,
  tokenConfig: (config: JsonObject, file: string): TokenConfig => tokenConfig(parseBlip3oConfig(config, file)),
  open(json: CheckpointJson): FamilyCheckpoint {
    const files = readFiles(json);
    const text = textDefaultsFrom(SPEC_DEFAULTS.text, files.generationConfig, path.join(files.dir, CHECKPOINT_FILES.generationConfig));
    const tokenSources: SpecialTokenSources = { tokenizerConfig: files.tokenizerConfig, modelConfig: tokenConfig(files.config), processorConfig: null };
    return { tokenSources, bind: (info, tokenizer, options) => new Blip3oModel(files, tokenizer, info, text, options.kvCache) };
  },
};
