// What a model family brings to the TypeScript layer. One adapter per family (lib/families/<name>.ts,
// listed in registry.ts) owns, in one place: reading its config.json, its sampling defaults,
// the meaning of its options, prompt rendering and image placeholders, token budgets, and the
// native request. lib/model.ts does the rest -- queueing, abort, dispose, streaming, image I/O --
// the same way for every family.
import type { ChatTemplate } from '../chat-template.js';
import type { CheckpointJson, JsonObject } from '../checkpoint-config.js';
import type { GeneratedImage, RgbImage } from '../image.js';
import type { NativeCancelToken, NativeGenerateRequest, NativeImage, NativeModelInfo } from '../native.js';
import type { ChatOptions, EditImageOptions, GenerateImageOptions, ScaleSchedule } from '../options.js';
import type { SpecialTokenSources, TokenConfig, VargptTokenizer } from '../tokenizer.js';
import type { ChatMessage, ImageInput } from '../types.js';
import type { ImageProgress, ModelInfo } from './registry.js';

export interface TextDefaults {
  // Upper bound on new tokens when the call sets none (shrunk to the room the prompt leaves).
  maxNewTokens: number;
  temperature: number; // 0 = greedy
  topK: number; // 0 = off
  topP: number; // 1 = off
  repetitionPenalty: number; // 1 = off
}

export interface ImageDefaults {
  cfg: number;
  topK: number;
  topP: number;
  // VARGPT-v1.1: the logits temperature and the scale schedule.
  tau?: number;
  scales?: ScaleSchedule;
}

// BLIP3-o's drawing defaults: stage 1 (the DiT's flow sampler) and stage 2 (the UNet's Euler
// sampler). width, height and grid are null in the family's table: they come from the checkpoint.
export interface DiffusionImageDefaults {
  flowSteps: number;
  flowGuidance: number;
  flowShift: number;
  steps: number;
  guidance: number;
  width: number | null;
  height: number | null;
  grid: number | null;
}

// The defaults of every sampling option: the family's table (FamilyAdapter.specDefaults), and per
// checkpoint those overlaid with generation_config.json (model.defaults).
export interface SamplingDefaults {
  text: TextDefaults;
  // null: the family (or this checkpoint) does not draw.
  image: ImageDefaults | DiffusionImageDefaults | null;
}

export function isDiffusionDefaults(d: ImageDefaults | DiffusionImageDefaults | null): d is DiffusionImageDefaults {
  return d !== null && 'flowSteps' in d;
}

// Decodes an image input (file, bytes, raw pixels) under the model's limits: lib/model.ts's image I/O.
export type ReadImage = (input: ImageInput, what: string) => Promise<RgbImage>;

// What lib/model.ts hands the adapter for one native call.
export interface RequestHooks {
  cancel: NativeCancelToken;
  onToken: (id: number) => void;
  onImageProgress?: (stage: string, step: number, steps: number, preview: NativeImage) => void;
}

// A prompt rendered, tokenized and checked against the model's positions.
export interface PreparedCall {
  promptTokens: number;
  request(hooks: RequestHooks): NativeGenerateRequest;
}

// A call whose options are checked; prepare() does the slower part (images, tokenizing).
export interface CallPlan {
  seed: number;
  prepare(readImage: ReadImage, signal: AbortSignal | undefined): Promise<PreparedCall>;
}

// Discrete image tokens (VARGPT v1: VQ-VAE codebook indices; VARGPT-v1.1: BSQ bits), for one call
// with its options (`scales` where the family's schedule varies).
export interface ImageTokenCodec {
  // The pixel size the encoder reads (the image is resized and centre-cropped to it), and the
  // schedule to pass the native call (null: the family's fixed one).
  encoderInput(): { width: number; height: number; scales: Int32Array | null };
  // The token lists checked against the schedule.
  checkTokens(value: unknown, what: string): { tokens: Int32Array[]; scales: Int32Array | null };
}

// A family adapter bound to one loaded model.
export interface FamilyModel {
  readonly info: ModelInfo;
  readonly template: ChatTemplate;
  readonly defaults: SamplingDefaults;
  // The token that starts an image: streamed text stops before it, the reply text is cut there.
  readonly imageStartId: number | null;
  planChat(what: string, messages: readonly ChatMessage[], options: ChatOptions | undefined): CallPlan;
  planImage(what: string, messages: readonly ChatMessage[], options: GenerateImageOptions | undefined): CallPlan;
  // Drawing an edited version of `image` as `instruction` asks; throws an InputError naming `what`
  // when the family does not edit.
  planEdit(what: string, image: ImageInput, instruction: string, options: EditImageOptions | undefined): CallPlan;
  // The user message ask(image, question) sends: the family's own order of image and question.
  askMessage(image: ImageInput, question: string): ChatMessage;
  // The public progress event of native step `step` (already 1-based) of `steps`; `preview` is null
  // for a step that has no pixels yet (BLIP3-o's stage 1).
  progress(stage: string, step: number, steps: number, preview: GeneratedImage | null): ImageProgress;
  // Image-conditioned drawing of `image` as the family's reconstruction prompt asks (BLIP3-o);
  // absent where the family has none.
  planReconstruct?(what: string, image: ImageInput, options: GenerateImageOptions | undefined): CallPlan;
  // Throws an InputError naming `what` when this model has no discrete image tokens.
  // `options` are the caller's (their `scales`, where the family's schedule varies).
  imageTokens(what: string, options: Record<string, unknown>): ImageTokenCodec;
}

// loadModel's options that shape every native request of the model.
export interface BindOptions {
  kvCache: 'f32' | 'bf16';
}

// A checkpoint's files read by its family, before the weights load.
export interface FamilyCheckpoint {
  readonly tokenSources: SpecialTokenSources;
  // After the native load: checks that the runtime read the checkpoint as the files describe it.
  bind(info: NativeModelInfo, tokenizer: VargptTokenizer, options: BindOptions): FamilyModel;
}

export interface FamilyAdapter {
  // The native registry's name of the family (NativeModelInfo.family, ModelInfo.family).
  readonly family: string;
  readonly title: string;
  // The config.json `model_type` values, and `architectures[0]` values, this family reads.
  readonly modelTypes: readonly string[];
  readonly architectures: readonly string[];
  // The family's defaults before any generation_config.json (the CLI's help shows them).
  readonly specDefaults: SamplingDefaults;
  // What the tokenizer needs from config.json (VargptTokenizer.fromDir).
  tokenConfig(config: JsonObject, file: string): TokenConfig;
  open(files: CheckpointJson): FamilyCheckpoint;
}
