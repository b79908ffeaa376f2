// The public model: loadModel() and VargptModel (chat, ask, generateImage, streaming, the VQ-VAE
// token round trip). What a model family means -- its config, defaults, options, prompt, token
// budget and native request -- is its adapter's (lib/families/); this layer does the rest the same
// way for every family: the tokenizer, image I/O, text streaming, queueing, cancellation and
// disposal. The native model receives only checked, plain values.
import type { ChatTemplate } from './chat-template.js';
import { DisposedError, InputError, abortErrorFrom, checkpointErrorFrom, throwIfAborted } from './errors.js';
import type { CallPlan, FamilyModel, ReadImage, SamplingDefaults } from './families/types.js';
import type { ImageProgress, ModelInfo } from './families/registry.js';
import { openCheckpoint } from './families/registry.js';
import type { ImageLimits } from './image.js';
import { DEFAULT_IMAGE_LIMITS, GeneratedImage, decodeImage, vqvaePixels } from './image.js';
import type { NativeAddon, NativeImage, NativeModel } from './native.js';
import { native } from './native.js';
import type { ChatOptions, Covers, EditImageOptions, GenerateImageOptions, ScaleSchedule, TextOptions } from './options.js';
import { checkCallbacks, checkOptionKeys, describeValue, OPTION_SPECS, optionSpec } from './options.js';
import { CallQueue, MAX_BATCH } from './queue.js';
import { Tensor } from './tensor.js';
import { ChatStream } from './stream.js';
import type { ChatEvent } from './stream.js';
import { VargptTokenizer } from './tokenizer.js';
import type { ChatMessage, ContentPart, ImageInput } from './types.js';

export type { ModelInfo };

export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

export interface LoadProgress {
  loaded: number;
  total: number;
}

export interface LoadModelOptions {
  // 'auto' (default): the first CUDA device when one is usable, else the CPU.
  device?: Device;
  onLoadProgress?: (progress: LoadProgress) => void;
  signal?: AbortSignal;
  // Limits on every image this model is given (defaults: DEFAULT_IMAGE_LIMITS).
  imageLimits?: Partial<ImageLimits>;
  // Precision of the attention caches of every call: the LLM's keys and values and, while drawing,
  // the image decoder's keys and values of the scales drawn so far. 'f32' (default) computes as
  // the float32 reference does; 'bf16' halves that memory (VARGPT-v1.1 at full size: about 1.3 GB
  // less for one 512x512 image) at about 3 significant digits in the cached keys and values.
  kvCache?: 'f32' | 'bf16';
  // How many assistant turns (chat, ask, chatStream) may decode together, one forward pass per
  // token for all of them (continuous batching: a call made while others decode joins them at the
  // next step). 1 runs every call alone. Default and maximum 8: up to 8 rows the CPU GEMM reads
  // each weight once per step for the whole batch and computes each row exactly as alone, so a
  // batched call returns what it returns alone. Calls still start in the order they were made.
  maxBatch?: number;
  // The precision of the linear layers: those of the LLM (and an untied lm_head) and of the image
  // generator's transformer (VARGPT v1's VAR: every block's attention and MLP, and the head;
  // VARGPT-v1.1's Infinity: those, the cross-attention and the AdaLN projections of each prompt's
  // condition; BLIP3-o's DiT: every block's attention, MLP and AdaLN projection). 'auto' (default)
  // as stored; 'f32' or 'bf16' converted on load; 'int8' symmetric per output channel (1 byte per
  // weight), 'q4' 4-bit in groups of 32 with an f16 scale each (0.5625 byte per weight), quantized
  // on load with the activations quantized per row on the fly and the dot products in integers
  // (AVX-512 VNNI where the CPU has it). One precision applies to both; { llm, generator } sets
  // each (an omitted one is 'auto'). Embeddings, norms, codebooks, vision towers, projectors and
  // the image decoders' convolutions always stay as stored. The CUDA backend has the same int8/q4
  // kernels (not yet run on a GPU). README "Quantized weights".
  weights?: WeightsPrecision | { llm?: WeightsPrecision; generator?: WeightsPrecision };
  // true (default): weights are read in place from the memory-mapped checkpoint files: loading
  // copies nothing, the operating system shares the pages between processes that load the same
  // files and may drop and re-read them under memory pressure. false: on the CPU every weight read
  // in place is copied into the process's own memory as it loads (on Linux on transparent huge
  // pages), which makes decoding faster (bf16: 1.06-1.19x on the small preset, 1.6x at 7B size;
  // bench/RESULTS.md) at the cost of the copy and of private, unshared memory in which every
  // weight is resident. Quantized weights are the process's own memory either way. (llama.cpp's
  // --no-mmap is the same choice.)
  mmap?: boolean;
}

// Options of the image-token calls.
export interface ImageTokenOptions {
  signal?: AbortSignal;
  // VARGPT-v1.1: the scale schedule of the tokens (default: model.defaults.image.scales); its last
  // grid times the VAE's downsampling is the image size.
  scales?: ScaleSchedule;
}

export interface DecodeImageTokenOptions extends ImageTokenOptions {
  // Adds intermediate tensors to the image (image.trace): VARGPT v1 fHat and image, VARGPT-v1.1
  // decode_summed_codes and decode_image (the clamped image in [-1, 1]).
  trace?: boolean;
}

// The option names of loadModel and the image-token calls (misspelled ones are rejected).
const IMAGE_LIMIT_KEYS = ['maxPixels', 'maxBytes'] as const satisfies readonly (keyof ImageLimits)[];
export type WeightsPrecision = 'auto' | 'f32' | 'bf16' | 'int8' | 'q4';
const WEIGHTS_PRECISIONS: readonly WeightsPrecision[] = ['auto', 'f32', 'bf16', 'int8', 'q4'];
const PRECISION_LIST = WEIGHTS_PRECISIONS.map((p) => `"${p}"`).join(', ');

function precision(value: unknown, what: string): WeightsPrecision {
  if (value === undefined) return 'auto';
  if (typeof value === 'string' && (WEIGHTS_PRECISIONS as readonly string[]).includes(value)) return value as WeightsPrecision;
  throw new InputError(`loadModel ${what} must be one of ${PRECISION_LIST}, got ${describeValue(value)}`);
}

// loadModel's weights option as the precisions of the two groups of linear layers.
function weightsOption(value: unknown): { llm: WeightsPrecision; generator: WeightsPrecision } {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const unknown = Object.keys(o).filter((k) => k !== 'llm' && k !== 'generator');
    if (unknown.length > 0) throw new InputError(`loadModel options.weights has unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}; it takes llm and generator`);
    return { llm: precision(o['llm'], 'options.weights.llm'), generator: precision(o['generator'], 'options.weights.generator') };
  }
  const both = precision(value, 'options.weights (a precision or { llm, generator })');
  return { llm: both, generator: both };
}

const LOAD_KEYS = ['device', 'onLoadProgress', 'signal', 'imageLimits', 'kvCache', 'maxBatch', 'weights', 'mmap'] as const satisfies readonly (keyof LoadModelOptions)[];
const DECODE_TOKEN_KEYS = ['signal', 'scales', 'trace'] as const satisfies readonly (keyof DecodeImageTokenOptions)[];
const covered: [Covers<ImageLimits, typeof IMAGE_LIMIT_KEYS>, Covers<LoadModelOptions, typeof LOAD_KEYS>, Covers<DecodeImageTokenOptions, typeof DECODE_TOKEN_KEYS>] = [true, true, true];
void covered;
const LOAD_SPEC = optionSpec(LOAD_KEYS, { imageLimits: optionSpec(IMAGE_LIMIT_KEYS) });
const IMAGE_TOKEN_SPEC = optionSpec(['signal', 'scales'] as const satisfies readonly (keyof ImageTokenOptions)[]);
const DECODE_TOKEN_SPEC = optionSpec(DECODE_TOKEN_KEYS);

export type StopReason = 'eos' | 'length' | 'image';

export interface ChatReply {
  // The assistant's text, special tokens removed (for a drawn image: the text written before it).
  text: string;
  // Every new token id, as upstream returns them (ending in <|image_gen_start|>, X when an image
  // was drawn; X is the untrained prediction after the start token, never fed back).
  tokens: Int32Array;
  stopReason: StopReason;
  // The images drawn in this turn (VARGPT v1 draws at most one per call).
  images: GeneratedImage[];
  // This turn as a message, to append to the conversation and keep chatting.
  message: ChatMessage;
  promptTokens: number;
  seed: number;
  tokenAfterImageStart: number | null;
  // With options.trace: intermediate tensors by name (see native/models/vargpt_v1_*.cc).
  trace?: Record<string, Tensor>;
  // With options.profile: seconds per stage.
  profile?: Record<string, number>;
}

export interface ImageReply extends ChatReply {
  image: GeneratedImage;
}

function toImage(img: NativeImage): GeneratedImage {
  return new GeneratedImage(img.width, img.height, img.data);
}

function resolveDevice(addon: Pick<NativeAddon, 'devices'>, device: unknown): string {
  if (device === undefined || device === 'auto') {
    const { cuda } = addon.devices();
    return cuda.available && cuda.devices.length > 0 ? 'cuda:0' : 'cpu';
  }
  if (device === 'cpu') return 'cpu';
  if (typeof device === 'string' && /^cuda(:\d+)?$/.test(device)) {
    const { cuda } = addon.devices();
    if (!cuda.available) throw new InputError(`device "${device}": CUDA is not available (${cuda.reason ?? 'no reason given'})`);
    const index = device === 'cuda' ? 0 : Number(device.slice(5));
    if (!cuda.devices.some((d) => d.index === index)) {
      throw new InputError(`device "${device}": there are ${cuda.devices.length} CUDA device(s) (${cuda.devices.map((d) => `cuda:${d.index}`).join(', ')})`);
    }
    return `cuda:${index}`;
  }
  throw new InputError(`device must be "auto", "cpu", "cuda" or "cuda:N", got ${describeValue(device)}`);
}

export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<VargptModel> {
  return loadModelWith(native(), dir, options);
}

// loadModel with an explicit addon (the tests pass a test double for the native model).
export async function loadModelWith(
  addon: Pick<NativeAddon, 'devices' | 'loadModel' | 'createCancelToken'>,
  dir: string,
  options: LoadModelOptions = {},
): Promise<VargptModel> {
  if (typeof dir !== 'string' || dir.length === 0) throw new InputError('loadModel(dir): dir must be the path of a checkpoint folder');
  if (typeof options !== 'object' || options === null) throw new InputError('loadModel: options must be an object');
  checkOptionKeys(options, 'loadModel options', LOAD_SPEC);
  checkCallbacks(options as Record<string, unknown>, 'loadModel options', ['onLoadProgress']);
  const { signal, onLoadProgress } = options;
  throwIfAborted(signal, 'loadModel');
  if (typeof addon.loadModel !== 'function') {
    throw new Error('this build of the vargpt addon has no model runtime (loadModel is missing); rebuild it with `npm run build:native`');
  }
  const device = resolveDevice(addon, options.device);
  const kvCache = options.kvCache ?? 'f32';
  if (kvCache !== 'f32' && kvCache !== 'bf16') throw new InputError(`loadModel options.kvCache must be "f32" or "bf16", got ${describeValue(options.kvCache)}`);
  const maxBatch = options.maxBatch ?? MAX_BATCH;
  if (typeof maxBatch !== 'number' || !Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_BATCH) {
    throw new InputError(`loadModel options.maxBatch must be an integer in 1..${MAX_BATCH}, got ${describeValue(options.maxBatch)}`);
  }
  const { llm: weights, generator: generatorWeights } = weightsOption(options.weights);
  const mmap = options.mmap ?? true;
  if (typeof mmap !== 'boolean') throw new InputError(`loadModel options.mmap must be true or false, got ${describeValue(options.mmap)}`);
  const limits = { ...DEFAULT_IMAGE_LIMITS, ...options.imageLimits };
  const { json, checkpoint } = await openCheckpoint(dir);
  // Built in a worker thread: parsing tokenizer.json and filling the tokenizer's tables take
  // 100-300 ms for a 151k-token vocabulary, which would stall this thread's event loop.
  const tokenizer = await VargptTokenizer.load(json.tokenizerFile, json.tokenizerBytes, checkpoint.tokenSources);
  try {
    throwIfAborted(signal, 'loadModel');
  } catch (error) {
    tokenizer.close();
    throw error;
  }
  const cancel = addon.createCancelToken();
  const onAbort = () => cancel.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let nativeModel: NativeModel;
  try {
    nativeModel = await addon.loadModel(dir, {
      device,
      cancel,
      weights,
      generatorWeights,
      mmap,
      onProgress: onLoadProgress ? (loaded, total) => onLoadProgress({ loaded, total }) : undefined,
    });
  } catch (error) {
    tokenizer.close();
    if (signal?.aborted) throw abortErrorFrom(signal, 'loadModel');
    throw checkpointErrorFrom(error, dir);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  try {
    return new VargptModel(addon, nativeModel, checkpoint.bind(nativeModel.info(), tokenizer, { kvCache }), tokenizer, limits, maxBatch);
  } catch (error) {
    nativeModel.dispose();
    tokenizer.close();
    throw error;
  }
}

interface GenerateArgs {
  what: string;
  plan: CallPlan;
  signal?: AbortSignal;
  onToken?: (delta: string, tokenId: number) => void;
  onStart?: (info: { promptTokens: number }) => void;
  onImageProgress?: (progress: ImageProgress) => void;
}

function tokenOptions(options: unknown, what: string): Record<string, unknown> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new InputError(`${what}: options must be an object`);
  const o = options as Record<string, unknown>;
  checkCallbacks(o, `${what} options`, []);
  return o;
}

export class VargptModel {
  readonly info: ModelInfo;
  readonly tokenizer: VargptTokenizer;
  readonly template: ChatTemplate;
  // The defaults of every sampling option for this checkpoint (the family's values, seeded from
  // its generation_config.json); image is null when the model cannot draw.
  readonly defaults: SamplingDefaults;
  private readonly queue: CallQueue;
  private readonly readImage: ReadImage;
  private disposePromise: Promise<void> | null = null;

  constructor(
    addon: Pick<NativeAddon, 'createCancelToken'>,
    private readonly model: NativeModel,
    private readonly adapter: FamilyModel,
    tokenizer: VargptTokenizer,
    limits: ImageLimits,
    maxBatch = MAX_BATCH,
  ) {
    this.info = adapter.info;
    this.tokenizer = tokenizer;
    this.template = adapter.template;
    this.defaults = adapter.defaults;
    this.readImage = (input, what) => decodeImage(input, { limits, what });
    this.queue = new CallQueue(() => addon.createCancelToken(), model, maxBatch);
  }

  // How many assistant turns decode together (loadModel options.maxBatch).
  get maxBatch(): number {
    return this.queue.maxBatch;
  }

  // The family the checkpoint loaded as ('vargpt-v1', 'vargpt-v1.1'); the same as info.family.
  get family(): ModelInfo['family'] {
    return this.info.family;
  }

  get disposed(): boolean {
    return this.queue.closed;
  }

  private checkUsable(what: string): void {
    if (this.queue.closed) throw new DisposedError(`${what}: the model has been disposed`);
  }

  private async generate(args: GenerateArgs): Promise<ChatReply> {
    this.checkUsable(args.what);
    throwIfAborted(args.signal, args.what);
    // The call takes its place in the line now; its images decode while it waits.
    const preparing = args.plan.prepare(this.readImage, args.signal);
    return this.queue.runTurn(args.what, args.signal, preparing, async (cancel, execute) => {
      const prepared = await preparing;
      let callbackError: unknown = null;
      // A throwing user callback stops the call and becomes its error (never an uncaught
      // exception inside a native callback).
      const guard = <A extends unknown[]>(fn: ((...a: A) => void) | undefined) =>
        fn &&
        ((...a: A) => {
          if (callbackError !== null) return;
          try {
            fn(...a);
          } catch (error) {
            callbackError = error;
            cancel.cancel();
          }
        });
      const onToken = guard(args.onToken);
      guard(args.onStart)?.({ promptTokens: prepared.promptTokens });
      if (callbackError !== null) throw callbackError;
      const userProgress = args.onImageProgress;
      // Native steps count from 0, the public ones from 1.
      const onImageProgress = guard(
        userProgress &&
          ((stage: string, step: number, steps: number, preview: NativeImage) =>
            userProgress(this.adapter.progress(stage, step + 1, steps, preview.width > 0 ? toImage(preview) : null))),
      );
      const startId = this.adapter.imageStartId ?? -1;
      const stream = this.tokenizer.createStreamDecoder();
      let imageStarted = false;
      const request = prepared.request({
        cancel,
        onToken: (id) => {
          if (imageStarted || id === startId) {
            if (!imageStarted) {
              imageStarted = true;
              const rest = stream.flush();
              if (rest) onToken?.(rest, id);
            }
            return;
          }
          const delta = stream.push(id);
          if (delta) onToken?.(delta, id);
        },
        onImageProgress,
      });
      let result;
      try {
        result = await execute(request);
      } catch (error) {
        if (callbackError !== null) throw callbackError;
        throw error;
      }
      if (callbackError !== null) throw callbackError;
      if (!imageStarted) {
        const rest = stream.flush();
        if (rest) onToken?.(rest, result.tokens[result.tokens.length - 1] ?? -1);
      }
      const tokens = result.tokens;
      const cut = tokens.indexOf(startId);
      const text = this.tokenizer.decode(cut >= 0 ? tokens.subarray(0, cut) : tokens);
      const images = result.image ? [toImage(result.image)] : [];
      const content: ContentPart[] = [{ type: 'text', text }, ...images.map((image) => ({ type: 'image' as const, image }))];
      const reply: ChatReply = {
        text,
        tokens,
        stopReason: result.stopReason,
        images,
        message: { role: 'assistant', content },
        promptTokens: prepared.promptTokens,
        seed: args.plan.seed,
        tokenAfterImageStart: result.tokenAfterImageStart ?? null,
      };
      if (result.trace) {
        reply.trace = Object.fromEntries(Object.entries(result.trace).map(([name, t]) => [name, Tensor.fromBuffer(t.dtype, t.shape, t.data)]));
      }
      if (result.profile) reply.profile = { ...result.profile };
      return reply;
    });
  }

  private chatArgs(what: string, messages: readonly ChatMessage[], options: ChatOptions | undefined): GenerateArgs {
    checkOptionKeys(options, `${what} options`, what === 'ask' ? OPTION_SPECS.ask : OPTION_SPECS.chat);
    const plan = this.adapter.planChat(what, messages, options);
    return { what, plan, signal: options?.signal, onToken: options?.onToken, onStart: options?.onStart, onImageProgress: options?.onImageProgress };
  }

  // One assistant turn for a conversation. Images in user messages are read by the vision tower;
  // the model may answer with text, or start drawing (reply.images).
  async chat(messages: readonly ChatMessage[], options?: ChatOptions): Promise<ChatReply> {
    this.checkUsable('chat');
    return this.generate(this.chatArgs('chat', messages, options));
  }

  // chat() as an async iterator of events: text deltas, image progress, the image, then 'end'
  // with the reply. Breaking out of the loop aborts the call.
  chatStream(messages: readonly ChatMessage[], options?: ChatOptions): AsyncGenerator<ChatEvent, void, undefined> {
    return new ChatStream((hooks) => {
      const args = this.chatArgs('chatStream', messages, { ...options, signal: hooks.signal });
      const userToken = options?.onToken;
      const userProgress = options?.onImageProgress;
      args.onToken = (delta, tokenId) => {
        userToken?.(delta, tokenId);
        hooks.push({ type: 'text', delta, tokenId });
      };
      args.onImageProgress = (p) => {
        userProgress?.(p);
        hooks.push({ type: 'image-progress', ...p });
      };
      return this.generate(args);
    }, options?.signal).iterate();
  }

  // A question about one image.
  async ask(image: ImageInput, question: string, options?: TextOptions): Promise<ChatReply> {
    this.checkUsable('ask');
    if (typeof question !== 'string') throw new InputError(`ask: question must be a string, got ${typeof question}`);
    if (image === undefined || image === null) throw new InputError('ask: image is missing');
    return this.generate(this.chatArgs('ask', [this.adapter.askMessage(image, question)], options));
  }

  // Draws an image for a prompt, as the family draws: VARGPT v1 and v1.1 force
  // <|image_gen_start|> as the first new token, then the scales run with the LLM in the loop (v1:
  // VAR into the VQ-VAE; v1.1: Infinity's bitwise head into the BSQ VAE, 512x512 by default);
  // BLIP3-o runs its learned queries through the LLM, the DiT's flow into CLIP features, then the
  // UNet's Euler loop and the VAE (1024x1024 by default).
  async generateImage(prompt: string, options?: GenerateImageOptions): Promise<ImageReply> {
    this.checkUsable('generateImage');
    if (typeof prompt !== 'string' || prompt.trim().length === 0) throw new InputError('generateImage: prompt must be a non-empty string');
    checkOptionKeys(options, 'generateImage options', OPTION_SPECS.generateImage);
    const plan = this.adapter.planImage('generateImage', [{ role: 'user', content: prompt }], options);
    return this.drawn('generateImage', plan, options);
  }

  // Draws `image` changed as `instruction` asks (VARGPT-v1.1, with an -edit checkpoint): the image
  // and then the instruction in one user turn, the image read by the vision tower only, and the
  // drawing forced as in generateImage.
  async editImage(image: ImageInput, instruction: string, options?: EditImageOptions): Promise<ImageReply> {
    this.checkUsable('editImage');
    if (image === undefined || image === null) throw new InputError('editImage: image is missing');
    if (typeof instruction !== 'string' || instruction.trim().length === 0) throw new InputError('editImage: instruction must be a non-empty string');
    checkOptionKeys(options, 'editImage options', OPTION_SPECS.editImage);
    const plan = this.adapter.planEdit('editImage', image, instruction, options);
    return this.drawn('editImage', plan, options);
  }

  // Draws from `image` as the family's reconstruction prompt asks (BLIP3-o: the image resized to
  // 448x448 and read by the vision tower, then "Please reconstruct the given image.", both
  // stages as in generateImage). model.editImage(image, instruction) takes another instruction.
  async reconstructImage(image: ImageInput, options?: GenerateImageOptions): Promise<ImageReply> {
    this.checkUsable('reconstructImage');
    if (image === undefined || image === null) throw new InputError('reconstructImage: image is missing');
    if (!this.adapter.planReconstruct) throw new InputError(`reconstructImage: ${this.info.family} has no reconstruction prompt`);
    checkOptionKeys(options, 'reconstructImage options', OPTION_SPECS.generateImage);
    const plan = this.adapter.planReconstruct('reconstructImage', image, options);
    return this.drawn('reconstructImage', plan, options);
  }

  private async drawn(what: string, plan: CallPlan, options: GenerateImageOptions | undefined): Promise<ImageReply> {
    const reply = await this.generate({ what, plan, signal: options?.signal, onImageProgress: options?.onImageProgress });
    const image = reply.images[0];
    if (!image) throw new Error(`${what}: the runtime returned no image`);
    return { ...reply, image };
  }

  // The image's discrete tokens, one Int32Array per scale. VARGPT v1: multi-scale VQ-VAE codebook
  // indices (pn*pn per scale) of the image resized (shortest edge, Lanczos) and centre-cropped to
  // the VQ-VAE's size. VARGPT-v1.1: BSQ bits (h*w*d values 0 or 1 per scale, bit j of token k at
  // k*d + j, the layout of replay.bits) of the image resized to cover and centre-cropped to the
  // schedule's last grid times the VAE's downsampling (512x512 by default). Pixels map to [-1, 1].
  async encodeImageTokens(image: ImageInput, options: ImageTokenOptions = {}): Promise<Int32Array[]> {
    this.checkUsable('encodeImageTokens');
    checkOptionKeys(options, 'encodeImageTokens options', IMAGE_TOKEN_SPEC);
    const input = this.adapter.imageTokens('encodeImageTokens', tokenOptions(options, 'encodeImageTokens')).encoderInput();
    const preparing = this.readImage(image, 'encodeImageTokens: image').then((rgb) => vqvaePixels(rgb, input.width, input.height));
    return this.queue.run(
      'encodeImageTokens',
      options.signal,
      async () => this.model.encodeImageTokens(await preparing, input.height, input.width, input.scales ?? undefined),
      preparing,
    );
  }

  // The image of a full token list (as encodeImageTokens returns; options.scales as given there).
  async decodeImageTokens(tokens: ArrayLike<number>[], options: DecodeImageTokenOptions = {}): Promise<GeneratedImage & { trace?: Record<string, Tensor> }> {
    this.checkUsable('decodeImageTokens');
    checkOptionKeys(options, 'decodeImageTokens options', DECODE_TOKEN_SPEC);
    const o = tokenOptions(options, 'decodeImageTokens');
    if (o['trace'] !== undefined && typeof o['trace'] !== 'boolean') throw new InputError('decodeImageTokens options.trace must be true or false');
    const checked = this.adapter.imageTokens('decodeImageTokens', o).checkTokens(tokens, 'decodeImageTokens: tokens');
    return this.queue.run('decodeImageTokens', options.signal, async () => {
      const out = await this.model.decodeImageTokens(checked.tokens, { trace: options.trace ?? false, scales: checked.scales ?? undefined });
      const image: GeneratedImage & { trace?: Record<string, Tensor> } = toImage(out);
      if (out.trace) image.trace = Object.fromEntries(Object.entries(out.trace).map(([name, t]) => [name, Tensor.fromBuffer(t.dtype, t.shape, t.data)]));
      return image;
    });
  }

  // Stops the running call (it rejects with a DisposedError), rejects queued ones, frees the
  // native model. Safe to call more than once.
  dispose(): Promise<void> {
    if (!this.disposePromise) {
      this.disposePromise = this.queue.close().then(() => {
        this.model.dispose();
        this.tokenizer.close();
      });
    }
    return this.disposePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
