// BLIP3-o (spec/blip3o.md): a frozen Qwen2.5-VL reads images and answers; to draw, 64 learned
// queries after [IMG] condition a flow-matching DiT into CLIP space (stage 1) and an SDXL-layout
// UNet and VAE draw from it (stage 2). This file is the family's TypeScript side: its config.json
// (the transformers-4.51 flat layout), its defaults, the understanding request and the drawing
// prompts upstream's inference code builds (generation, and the image-conditioned reconstruction).
import fs from 'node:fs';
import path from 'node:path';

import type { ChatTemplate } from '../chat-template.js';
import type { CheckpointJson, JsonObject } from '../checkpoint-config.js';
import { CHECKPOINT_FILES } from '../checkpoint-config.js';
import { CheckpointError, InputError, throwIfAborted } from '../errors.js';
import type { GeneratedImage } from '../image.js';
import { resizeImage } from '../image.js';
import type { NativeBlip3oInfo, NativeDiffusionImageRequest, NativeGenerateRequest, NativeModelInfo } from '../native.js';
import type { ChatOptions, EditImageOptions, GenerateImageOptions, ImageSamplingOptions, ResolvedText, Rule } from '../options.js';
import { checkCallbacks, num, optionObject, rejectOptions, resolveSeed, resolveText } from '../options.js';
import type { Qwen2VlImageConfig } from '../qwen2-vl-image.js';
import { parseQwen2VlImageConfig, qwen2VlPixels } from '../qwen2-vl-image.js';
import type { SpecialTokenSources, TokenConfig, VargptTokenizer } from '../tokenizer.js';
import type { ChatMessage, ContentPart, ImageInput } from '../types.js';
import type { Blip3oModelConfig } from './blip3o-config.js';
import { BLIP3O_MODEL_TYPES, BLIP3O_TOKEN_IDS, parseBlip3oConfig } from './blip3o-config.js';
import { chatTemplateFor, commonRequestFields, loadedAs, newTokenBudget } from './common.js';
import { textDefaultsFrom } from './defaults.js';
import type { PreparedImages } from './qwen-vl.js';
import { checkQwenVlAgreement, checkQwenVlProcessor, qwenVlPrompt, qwenVlStopIds } from './qwen-vl.js';
import type { CallPlan, DiffusionImageDefaults, FamilyAdapter, FamilyCheckpoint, FamilyModel, ImageTokenCodec, ReadImage, RequestHooks, SamplingDefaults, TextDefaults } from './types.js';

export const FAMILY = 'blip3o';
const ARCHITECTURES: readonly string[] = ['blip3oQwenForCausalLM', 'blip3oQwenForInferenceLM'];

// Understanding is stock Qwen2.5-VL: greedy, as upstream's generate(do_sample=False); a
// checkpoint's generation_config.json overrides these. maxNewTokens is this package's.
// Drawing: upstream's sample_images defaults (30 flow steps, CFG 3) and its pipeline's (50 Euler
// steps, guidance 3); the flow shift of diffusers' FlowMatchEulerDiscreteScheduler() defaults,
// which the Lumina scheduler config upstream downloads holds. Size and grid come per checkpoint.
const FLOW_SHIFT = 1;
const FLOW_TRAIN_TIMESTEPS = 1000;
export const SPEC_DEFAULTS: SamplingDefaults = {
  text: { maxNewTokens: 512, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
  image: { flowSteps: 30, flowGuidance: 3, flowShift: FLOW_SHIFT, steps: 50, guidance: 3, width: null, height: null, grid: null },
};

// Upstream's inference prompt (spec 2.2: the conv_qwen template, no <|im_end|> after the
// assistant tag), the user text it wraps a caption in, and the reconstruction instruction (1.7).
const SYSTEM_TURN = '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n';
const CAPTION_PREFIX = 'Please generate image based on the following caption: ';
export const RECONSTRUCT_INSTRUCTION = 'Please reconstruct the given image.';
// The negative prompt of stage 2, a bare space (then [IMG] and the queries), cached per model.
const NEGATIVE_PROMPT = ' ';
// The reconstruction path resizes every source to this square (bicubic) before the processor.
const RECONSTRUCT_SIZE = 448;
// Larger sides are refused: at 2048 x 2048 the VAE's last up block already holds several
// 128-channel full-resolution activations (about 2 GB each in f32).
const MAX_SIDE = 2048;

// info() of a BLIP3-o model.
export interface Blip3oModelInfo extends NativeBlip3oInfo {
  // The checkpoint folder.
  dir: string;
}

// The onImageProgress event of BLIP3-o: 'flow' and 'negative' are stage 1's DiT steps for the
// prompt and (when not cached) the " " negative, which have no pixels yet (preview null);
// 'denoise' is stage 2's UNet steps, with a preview: the VAE decode of the step's denoised
// estimate at reduced resolution (latents area-averaged to at most 32 x 32), and the finished
// image at the last step.
export interface Blip3oImageProgress {
  stage: 'flow' | 'negative' | 'denoise';
  step: number;
  steps: number;
  preview: GeneratedImage | null;
}

export interface Blip3oFiles {
  dir: string;
  config: Blip3oModelConfig;
  tokenizerConfig: JsonObject;
  chatTemplate: string;
  imageProcessor: Qwen2VlImageConfig;
  generationConfig: JsonObject | null;
  // The flow scheduler's config (scheduler/scheduler_config.json beside config.json, the layout
  // of the Lumina scheduler upstream downloads), or diffusers' defaults when the folder has none.
  flowScheduler: { shift: number; trainTimesteps: number; file: string | null };
}

function tokenConfig(config: Blip3oModelConfig): TokenConfig {
  // [IMG] starts a generation only through the generation prompt, never in chat.
  return { imageTokenIndex: config.imageTokenId, specialTokens: null, specialTokenIds: null };
}

function readFlowScheduler(dir: string): Blip3oFiles['flowScheduler'] {
  const file = path.join(dir, 'scheduler', 'scheduler_config.json');
  if (!fs.existsSync(file)) return { shift: FLOW_SHIFT, trainTimesteps: FLOW_TRAIN_TIMESTEPS, file: null };
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new CheckpointError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CheckpointError(`${file}: must hold a JSON object`);
  const o = raw as Record<string, unknown>;
  if (o['_class_name'] !== 'FlowMatchEulerDiscreteScheduler') {
    throw new CheckpointError(`${file}: _class_name ${JSON.stringify(o['_class_name'])}; BLIP3-o's DiT samples with FlowMatchEulerDiscreteScheduler`);
  }
  const shift = o['shift'] ?? FLOW_SHIFT;
  const train = o['num_train_timesteps'] ?? FLOW_TRAIN_TIMESTEPS;
  if (typeof shift !== 'number' || !(shift > 0 && shift <= 100)) throw new CheckpointError(`${file}: shift must be a number in (0, 100], got ${JSON.stringify(shift)}`);
  if (typeof train !== 'number' || !Number.isSafeInteger(train) || train < 1 || train > 100000) {
    throw new CheckpointError(`${file}: num_train_timesteps must be an integer in [1, 100000], got ${JSON.stringify(train)}`);
  }
  for (const key of ['use_dynamic_shifting', 'invert_sigmas', 'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas']) {
    if (o[key] === true) throw new CheckpointError(`${file}: ${key} is not supported (BLIP3-o's flow uses fixed sigmas)`);
  }
  return { shift, trainTimesteps: train, file };
}

export function readFiles(json: CheckpointJson): Blip3oFiles {
  const config = parseBlip3oConfig(json.config, json.configFile);
  const preprocessorFile = path.join(json.dir, CHECKPOINT_FILES.preprocessor);
  if (!json.preprocessor) throw new CheckpointError(`${json.dir} has a vision tower but no preprocessor_config.json (pixel limits, mean and std)`);
  const imageProcessor = parseQwen2VlImageConfig(json.preprocessor, preprocessorFile);
  checkQwenVlProcessor(config.vision, imageProcessor, preprocessorFile);
  return {
    dir: json.dir,
    config,
    tokenizerConfig: json.tokenizerConfig,
    chatTemplate: json.chatTemplate,
    imageProcessor,
    generationConfig: json.generationConfig,
    flowScheduler: readFlowScheduler(json.dir),
  };
}

interface Blip3oCall {
  what: string;
  messages: readonly ChatMessage[];
  text: ResolvedText;
  trace: boolean;
  profile: boolean;
}

// The drawing options of one call, checked.
interface Blip3oResolvedImage extends Omit<NativeDiffusionImageRequest, 'seed' | 'negativeIds'> {
  seed: number;
}

// What a drawing reads: a caption, or an image and an instruction (upstream's text+image branch).
type DrawingInput = { caption: string } | { image: ImageInput; instruction: string };

const int = (lo: number, hi: number): Rule => ({ check: (v) => Number.isSafeInteger(v) && v >= lo && v <= hi, rule: `an integer in [${lo}, ${hi}]` });
const GUIDANCE: Rule = { check: (v) => v >= 0 && v <= 100, rule: 'a number in [0, 100]' };
const SHIFT: Rule = { check: (v) => v > 0 && v <= 100, rule: 'a number in (0, 100]' };

function flag(o: Record<string, unknown>, key: string, where: string): boolean {
  const v = o[key];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new InputError(`${where}.${key} must be true or false`);
  return v;
}

class Blip3oModel implements FamilyModel {
  readonly info: Blip3oModelInfo;
  readonly template: ChatTemplate;
  readonly defaults: SamplingDefaults;
  readonly imageStartId = null;
  private readonly stopIds: number[];
  private readonly drawing: DiffusionImageDefaults | null;

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
    this.stopIds = qwenVlStopIds(info, tokenizer, files.generationConfig, files.dir);
    const image = info.image;
    if (image) {
      const img = tokenizer.tokenToId('[IMG]');
      if (img !== BLIP3O_TOKEN_IDS.imageStart) {
        throw new CheckpointError(`${files.dir}: the tokenizer has [IMG] = ${String(img)}; upstream's generate_image appends id ${BLIP3O_TOKEN_IDS.imageStart}`);
      }
      const spec = SPEC_DEFAULTS.image as DiffusionImageDefaults;
      const side = Math.sqrt(info.nQuery);
      this.drawing = {
        ...spec,
        flowShift: files.flowScheduler.shift,
        width: image.defaultSize,
        height: image.defaultSize,
        grid: Number.isInteger(side) ? side : null,
      };
    } else {
      this.drawing = null;
    }
    this.defaults = { text, image: this.drawing };
  }

  planChat(what: string, messages: readonly ChatMessage[], options: ChatOptions | undefined): CallPlan {
    const o = (options ?? {}) as ChatOptions;
    if (o.forceImage !== undefined && typeof o.forceImage !== 'boolean') throw new InputError(`${what} options.forceImage must be true or false`);
    if (o.forceImage) {
      // BLIP3-o never starts a drawing on its own: a forced one draws the last user message (its
      // text as the caption; with an image, the image-conditioned branch).
      const input = this.drawingInputOf(what, messages);
      const image = optionObject(o.image, `${what} options.image`);
      return this.planDrawing(what, input, { ...image, seed: o.seed, trace: o.trace, profile: o.profile, signal: o.signal, onImageProgress: o.onImageProgress } as GenerateImageOptions);
    }
    if (o.image !== undefined) throw new InputError(`${what} options.image: BLIP3-o draws only when asked (forceImage: true)`);
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

  // Text-to-image: upstream's inference prompt around the caption, then [IMG].
  planImage(what: string, messages: readonly ChatMessage[], options: GenerateImageOptions | undefined): CallPlan {
    return this.planDrawing(what, this.drawingInputOf(what, messages), options);
  }

  // Image-conditioned drawing, upstream's pipeline text+image branch: the image resized to 448 x
  // 448, then `instruction` (model.reconstructImage passes "Please reconstruct the given image.",
  // the prompt the model was trained to reconstruct with).
  planEdit(what: string, image: ImageInput, instruction: string, options: EditImageOptions | undefined): CallPlan {
    const o = (options ?? {}) as EditImageOptions;
    // 'auto' and false are what BLIP3-o does anyway; it never needs VARGPT-v1.1's 512x512 shrink.
    if (o.preShrink === true) throw new InputError(`${what} options.preShrink: BLIP3-o always resizes the source to ${RECONSTRUCT_SIZE}x${RECONSTRUCT_SIZE}`);
    const { preShrink: _unused, ...rest } = o;
    return this.planDrawing(what, { image, instruction }, rest);
  }

  planReconstruct(what: string, image: ImageInput, options: GenerateImageOptions | undefined): CallPlan {
    return this.planDrawing(what, { image, instruction: RECONSTRUCT_INSTRUCTION }, options);
  }

  private drawingInputOf(what: string, messages: readonly ChatMessage[]): DrawingInput {
    const last = [...messages].reverse().find((m) => m.role === 'user');
    if (!last) throw new InputError(`${what}: a drawing needs a user message`);
    const parts: readonly ContentPart[] = typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : last.content;
    const texts = parts.filter((p): p is Extract<ContentPart, { type: 'text' }> => p.type === 'text').map((p) => p.text);
    const images = parts.filter((p): p is Extract<ContentPart, { type: 'image' }> => p.type === 'image');
    const text = texts.join('\n');
    if (images.length > 1) throw new InputError(`${what}: BLIP3-o draws from at most one image, the message holds ${images.length}`);
    if (images.length === 1) return { image: images[0]!.image, instruction: text.length > 0 ? text : RECONSTRUCT_INSTRUCTION };
    if (text.trim().length === 0) throw new InputError(`${what}: the caption is empty`);
    return { caption: text };
  }

  private resolveImage(o: Record<string, unknown>, where: string): Blip3oResolvedImage {
    const d = this.drawing;
    const image = this.info.image;
    if (!d || !image) throw new InputError(`${where}: this model cannot draw: ${this.info.imageUnavailable ?? 'no drawing weights'}`);
    rejectOptions(o, where, ['cfg', 'topK', 'topP', 'tau', 'scales'], 'an option of the next-scale families; BLIP3-o samples with guidance and flowGuidance, steps and flowSteps');
    const multiple = image.sizeMultiple;
    const side: Rule = { check: (v) => Number.isSafeInteger(v) && v >= multiple && v <= MAX_SIDE && v % multiple === 0, rule: `a multiple of ${multiple} in [${multiple}, ${MAX_SIDE}]` };
    const grid = num(o, 'grid', where, d.grid ?? 0, int(1, 64));
    if (grid === 0) throw new InputError(`${where}.grid is required: n_query ${this.info.nQuery} is not a square, so the DiT's token grid is not known`);
    const out: Blip3oResolvedImage = {
      seed: resolveSeed(o, where),
      flowSteps: num(o, 'flowSteps', where, d.flowSteps, int(1, 1000)),
      flowGuidance: num(o, 'flowGuidance', where, d.flowGuidance, GUIDANCE),
      flowShift: num(o, 'flowShift', where, d.flowShift, SHIFT),
      flowTrainTimesteps: this.files.flowScheduler.trainTimesteps,
      grid,
      maskLastQuery: flag(o, 'maskLastQuery', where) ? 1 : 0,
      steps: num(o, 'steps', where, d.steps, int(1, 1000)),
      guidance: num(o, 'guidance', where, d.guidance, GUIDANCE),
      width: num(o, 'width', where, d.width ?? image.defaultSize, side),
      height: num(o, 'height', where, d.height ?? image.defaultSize, side),
    };
    if (o['replay'] !== undefined) {
      const r = optionObject(o['replay'], `${where}.replay`);
      const down = image.vae.downsample;
      const sizes: Record<string, number> = {
        'flow.noise': image.clipWidth * grid * grid,
        'neg.flow.noise': image.clipWidth * grid * grid,
        'unet.noise': image.unet.latentChannels * (out.height / down) * (out.width / down),
      };
      const replay: Record<string, Float32Array[]> = {};
      for (const [key, value] of Object.entries(r)) {
        if (value === undefined) continue;
        const n = sizes[key];
        if (n === undefined) throw new InputError(`${where}.replay.${key}: BLIP3-o replays 'flow.noise', 'neg.flow.noise' and 'unet.noise'`);
        const arr = value as ArrayLike<number> | null;
        if (arr === null || typeof arr !== 'object' || typeof arr.length !== 'number') throw new InputError(`${where}.replay.${key} must be an array of numbers`);
        if (arr.length !== n) throw new InputError(`${where}.replay.${key} has ${arr.length} values, expected ${n}`);
        const f = Float32Array.from(arr);
        if (!f.every(Number.isFinite)) throw new InputError(`${where}.replay.${key} must hold finite numbers`);
        replay[key] = [f];
      }
      out.replay = replay;
    }
    return out;
  }

  private planDrawing(what: string, input: DrawingInput, options: GenerateImageOptions | undefined): CallPlan {
    const where = `${what} options`;
    const o = optionObject(options, where);
    checkCallbacks(o, where, ['onImageProgress']);
    const image = this.resolveImage(o as ImageSamplingOptions & Record<string, unknown>, where);
    const flags = { trace: o['trace'] === true, profile: o['profile'] === true };
    const text: ResolvedText = { maxNewTokens: null, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: image.seed };
    return {
      seed: image.seed,
      prepare: async (readImage: ReadImage, signal) => {
        const { inputIds, images } = await this.drawingPrompt(what, input, readImage, signal);
        const room = this.info.llm.maxPositions - this.info.nQuery;
        if (inputIds.length > room) throw new InputError(`${what}: the prompt has ${inputIds.length} tokens; with the ${this.info.nQuery} queries that exceeds the model's ${this.info.llm.maxPositions} positions`);
        const negativeIds = [...this.tokenizer.encode(NEGATIVE_PROMPT, { addSpecialTokens: false }), BLIP3O_TOKEN_IDS.imageStart];
        return {
          promptTokens: inputIds.length,
          request: (hooks): NativeGenerateRequest => ({
            ...commonRequestFields(text, this.stopIds, this.kvCache, flags, hooks),
            inputIds,
            pixelValues: images.pixelValues,
            imageGrids: images.grids,
            forceImage: true,
            maxNewTokens: 0,
            image: { ...image, negativeIds },
          }),
        };
      },
    };
  }

  // Token ids of upstream's drawing prompt, ending with [IMG]; an image becomes
  // <|vision_start|> + its pads + <|vision_end|> before "\n" and the instruction, as the
  // reconstruction prompt's <image>\n expands.
  private async drawingPrompt(what: string, input: DrawingInput, readImage: ReadImage, signal: AbortSignal | undefined): Promise<{ inputIds: Int32Array; images: PreparedImages }> {
    const images: PreparedImages = { pixelValues: [], grids: new Int32Array(0), tokens: [] };
    let user: string;
    if ('caption' in input) {
      user = CAPTION_PREFIX + input.caption;
    } else {
      const vision = this.info.vision;
      if (!vision) throw new InputError(`${what}: this model has no vision tower (no visual.* weights), so it cannot read images`);
      const rgb = await readImage(input.image, 'image');
      const square = await resizeImage(rgb, RECONSTRUCT_SIZE, RECONSTRUCT_SIZE, 'bicubic');
      const px = await qwen2VlPixels(square, this.files.imageProcessor);
      throwIfAborted(signal, what);
      const tokens = (px.grid.t * px.grid.h * px.grid.w) / (vision.mergeSize * vision.mergeSize);
      images.pixelValues.push(px.patches);
      images.grids = Int32Array.from([px.grid.t, px.grid.h, px.grid.w]);
      images.tokens.push(tokens);
      const pad = this.tokenizer.idToToken(this.info.imageTokenId);
      const start = this.tokenizer.idToToken(this.info.visionStartId);
      const end = this.tokenizer.idToToken(this.info.visionEndId);
      if (pad === undefined || start === undefined || end === undefined) throw new CheckpointError(`${this.files.dir}: the tokenizer lacks the vision start, end or pad token`);
      user = `${start}${pad.repeat(tokens)}${end}\n${input.instruction}`;
    }
    const prompt = `${SYSTEM_TURN}<|im_start|>user\n${user}<|im_end|>\n<|im_start|>assistant\n`;
    const ids = this.tokenizer.encode(prompt, { addSpecialTokens: false });
    ids.push(BLIP3O_TOKEN_IDS.imageStart);
    return { inputIds: Int32Array.from(ids), images };
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

  progress(stage: string, step: number, steps: number, preview: GeneratedImage | null): Blip3oImageProgress {
    if (stage !== 'flow' && stage !== 'negative' && stage !== 'denoise') {
      throw new Error(`the runtime reported image stage ${JSON.stringify(stage)}; BLIP3-o draws by 'flow', 'negative' and 'denoise'`);
    }
    return { stage, step, steps, preview: stage === 'denoise' ? preview : null };
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
