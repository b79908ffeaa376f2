// The public model: loadModel() and VargptModel (chat, ask, generateImage, streaming, the VQ-VAE
// token round trip). This layer owns everything the native model should not: the chat template,
// the tokenizer, image decoding and preprocessing, input validation, text streaming, queueing,
// cancellation and disposal. The native model receives only checked, plain values.
import { ChatTemplate, expandImagePlaceholders, imageTokenCount } from './chat-template.js';
import type { CheckpointFiles } from './checkpoint-config.js';
import { readCheckpointFiles } from './checkpoint-config.js';
import { CheckpointError, DisposedError, InputError, abortErrorFrom, throwIfAborted } from './errors.js';
import type { ImageLimits } from './image.js';
import { DEFAULT_IMAGE_LIMITS, GeneratedImage, clipPixelValues, decodeImage, vqvaePixels } from './image.js';
import type { NativeAddon, NativeGenerateRequest, NativeImage, NativeModel, NativeModelInfo } from './native.js';
import { native } from './native.js';
import type { ChatOptions, GenerateImageOptions, ImageProgress, ImageShape, ResolvedImage, ResolvedText, TextOptions } from './options.js';
import { DEFAULT_MAX_NEW_TOKENS, checkCallbacks, resolveImage, resolveImageIndices, resolveSeed, resolveText } from './options.js';
import { CallQueue } from './queue.js';
import { Tensor } from './tensor.js';
import { ChatStream } from './stream.js';
import type { ChatEvent } from './stream.js';
import { VargptTokenizer } from './tokenizer.js';
import type { ChatMessage, ContentPart, ImageInput } from './types.js';

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
}

export interface ModelInfo extends NativeModelInfo {
  dir: string;
}

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
  throw new InputError(`device must be "auto", "cpu", "cuda" or "cuda:N", got ${JSON.stringify(device)}`);
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
  checkCallbacks(options as Record<string, unknown>, 'loadModel options', ['onLoadProgress']);
  const { signal, onLoadProgress } = options;
  throwIfAborted(signal, 'loadModel');
  if (typeof addon.loadModel !== 'function') {
    throw new Error('this build of the vargpt addon has no model runtime (loadModel is missing); rebuild it with `npm run build:native`');
  }
  const device = resolveDevice(addon, options.device);
  const limits = { ...DEFAULT_IMAGE_LIMITS, ...options.imageLimits };
  const files = await readCheckpointFiles(dir);
  const tokenizer = VargptTokenizer.fromJSON(files.tokenizerJson, {
    tokenizerConfig: files.tokenizerConfig,
    modelConfig: files.config,
    processorConfig: files.processor,
  });
  throwIfAborted(signal, 'loadModel');
  const cancel = addon.createCancelToken();
  const onAbort = () => cancel.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let nativeModel: NativeModel;
  try {
    nativeModel = await addon.loadModel(dir, {
      device,
      cancel,
      onProgress: onLoadProgress ? (loaded, total) => onLoadProgress({ loaded, total }) : undefined,
    });
  } catch (error) {
    if (signal?.aborted) throw abortErrorFrom(signal, 'loadModel');
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  try {
    return new VargptModel(addon, nativeModel, files, tokenizer, limits);
  } catch (error) {
    nativeModel.dispose();
    throw error;
  }
}

interface GenerateArgs {
  what: string;
  messages: readonly ChatMessage[];
  text: ResolvedText;
  image: ResolvedImage;
  forceImage: boolean;
  signal?: AbortSignal;
  trace: boolean;
  profile: boolean;
  onToken?: (delta: string, tokenId: number) => void;
  onImageProgress?: (progress: ImageProgress) => void;
}

export class VargptModel {
  readonly info: ModelInfo;
  readonly tokenizer: VargptTokenizer;
  readonly template: ChatTemplate;
  private readonly queue: CallQueue;
  private readonly imageShape: ImageShape | null;
  private disposePromise: Promise<void> | null = null;

  constructor(
    addon: Pick<NativeAddon, 'createCancelToken'>,
    private readonly model: NativeModel,
    private readonly files: CheckpointFiles,
    tokenizer: VargptTokenizer,
    private readonly limits: ImageLimits,
  ) {
    const info = model.info();
    this.info = { ...info, dir: files.dir };
    this.tokenizer = tokenizer;
    this.checkAgreement(info);
    const s = tokenizer.specialTokens;
    this.template = new ChatTemplate(files.chatTemplate, {
      image: s.image?.text ?? null,
      imageGenStart: s.imageGenStart?.text ?? null,
      imageGenEnd: s.imageGenEnd?.text ?? null,
    });
    this.imageShape = info.var ? { patchNums: info.var.patchNums, codebookSize: info.var.codebookSize, llmHidden: info.llm.hiddenSize } : null;
    this.queue = new CallQueue(() => addon.createCancelToken());
  }

  // The checkpoint's JSON files and its tensors were read by two loaders; they must agree.
  private checkAgreement(info: NativeModelInfo): void {
    const s = this.tokenizer.specialTokens;
    const pairs: Array<[string, number | undefined, number]> = [
      ['bos', s.bos.id, info.bosId],
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

  get disposed(): boolean {
    return this.queue.closed;
  }

  private checkUsable(what: string): void {
    if (this.queue.closed) throw new DisposedError(`${what}: the model has been disposed`);
  }

  // Template, images and tokens: everything before the native call, checked.
  private async prepare(args: GenerateArgs): Promise<{ inputIds: Int32Array; pixelValues: Float32Array[] }> {
    const { prompt, images } = this.template.render(args.messages);
    const vision = this.info.vision;
    if (images.length > 0 && !vision) {
      throw new InputError(`${args.what}: this model has no vision tower (no vision_tower.* weights), so it cannot read images; send text only`);
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
        const rgb = await decodeImage(input, { limits: this.limits, what: `image ${i + 1}` });
        pixelValues.push(await clipPixelValues(rgb, pre, vision.imageSize));
        throwIfAborted(args.signal, args.what);
      }
    }
    const ids = this.tokenizer.encode(expanded);
    return { inputIds: Int32Array.from(ids), pixelValues };
  }

  private budget(args: GenerateArgs, promptTokens: number): number {
    const max = this.info.llm.maxPositions;
    const imageTokens = this.info.var ? 1 + this.info.var.patchNums.reduce((a, pn) => a + pn * pn, 0) : 0;
    if (args.forceImage) {
      if (promptTokens + imageTokens > max) {
        throw new InputError(`${args.what}: the prompt has ${promptTokens} tokens; with the ${imageTokens} positions an image takes, that exceeds the model's ${max}`);
      }
      return 1;
    }
    const room = max - promptTokens - imageTokens;
    if (room < 1) {
      throw new InputError(
        `${args.what}: the prompt has ${promptTokens} tokens, which leaves no room in the model's ${max} positions` +
          (imageTokens ? ` (an image needs ${imageTokens})` : ''),
      );
    }
    const requested = args.text.maxNewTokens;
    if (requested === null) return Math.min(DEFAULT_MAX_NEW_TOKENS, room);
    if (requested > room) {
      throw new InputError(`${args.what}: maxNewTokens ${requested} does not fit: the prompt has ${promptTokens} tokens and the model ${max} positions, so at most ${room}`);
    }
    return requested;
  }

  private async generate(args: GenerateArgs): Promise<ChatReply> {
    this.checkUsable(args.what);
    throwIfAborted(args.signal, args.what);
    if (args.forceImage && !this.info.var) {
      throw new InputError(`${args.what}: this model has no image generation weights (vargpt_gen.*, vae_local.*)`);
    }
    const { inputIds, pixelValues } = await this.prepare(args);
    const maxNewTokens = this.budget(args, inputIds.length);
    return this.queue.run(args.what, args.signal, async (cancel) => {
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
      const onImageProgress = guard(args.onImageProgress);
      const startId = this.tokenizer.specialTokens.imageGenStart?.id ?? -1;
      const stream = this.tokenizer.createStreamDecoder();
      let imageStarted = false;
      const request: NativeGenerateRequest = {
        inputIds,
        pixelValues,
        forceImage: args.forceImage,
        maxNewTokens,
        temperature: args.text.temperature,
        topK: args.text.topK,
        topP: args.text.topP,
        repetitionPenalty: args.text.repetitionPenalty,
        seed: args.text.seed,
        stopIds: [this.tokenizer.specialTokens.eos.id],
        image: { cfg: args.image.cfg, topK: args.image.topK, topP: args.image.topP, seed: args.text.seed, replay: args.image.replay },
        trace: args.trace,
        profile: args.profile,
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
        onImageProgress: onImageProgress && ((scale, scales, preview) => onImageProgress({ scale: scale + 1, scales, preview: toImage(preview) })),
      };
      let result;
      try {
        result = await this.model.generate(request);
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
        promptTokens: inputIds.length,
        seed: args.text.seed,
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
    const o = (options ?? {}) as ChatOptions;
    if (o.forceImage !== undefined && typeof o.forceImage !== 'boolean') throw new InputError(`${what} options.forceImage must be true or false`);
    return {
      what,
      messages,
      text: resolveText(options, `${what} options`),
      image: resolveImage(o.image, `${what} options.image`, this.imageShape),
      forceImage: o.forceImage ?? false,
      signal: o.signal,
      trace: o.trace ?? false,
      profile: o.profile ?? false,
      onToken: o.onToken,
      onImageProgress: o.onImageProgress,
    };
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
    const messages: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text: question }] }];
    return this.generate(this.chatArgs('ask', messages, options));
  }

  // Draws an image for a prompt: the first new token is forced to <|image_gen_start|> (as the
  // fixture's generation case), then the VAR scales run with the LLM in the loop.
  async generateImage(prompt: string, options?: GenerateImageOptions): Promise<ImageReply> {
    this.checkUsable('generateImage');
    if (typeof prompt !== 'string' || prompt.trim().length === 0) throw new InputError('generateImage: prompt must be a non-empty string');
    const o = (options ?? {}) as GenerateImageOptions;
    const what = 'generateImage options';
    checkCallbacks(o as Record<string, unknown>, what, ['onImageProgress']);
    const reply = await this.generate({
      what: 'generateImage',
      messages: [{ role: 'user', content: prompt }],
      text: { maxNewTokens: null, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: resolveSeed(o as Record<string, unknown>, what) },
      image: resolveImage(o, what, this.imageShape),
      forceImage: true,
      signal: o.signal,
      trace: o.trace ?? false,
      profile: o.profile ?? false,
      onImageProgress: o.onImageProgress,
    });
    const image = reply.images[0];
    if (!image) throw new Error('generateImage: the runtime returned no image');
    return { ...reply, image };
  }

  // Multi-scale VQ-VAE token indices of an image (one Int32Array per scale, pn*pn each): the image
  // is resized (shortest edge, Lanczos) and centre-cropped to the VQ-VAE's size, mapped to [-1, 1].
  async encodeImageTokens(image: ImageInput, options: { signal?: AbortSignal } = {}): Promise<Int32Array[]> {
    this.checkUsable('encodeImageTokens');
    this.requireImageShape('encodeImageTokens');
    const size = this.vqvaeSize('encodeImageTokens');
    const rgb = await decodeImage(image, { limits: this.limits, what: 'encodeImageTokens: image' });
    const pixels = await vqvaePixels(rgb, size);
    return this.queue.run('encodeImageTokens', options.signal, () => this.model.encodeImageTokens(pixels, size, size));
  }

  // The image of a full multi-scale index list (as encodeImageTokens returns).
  async decodeImageTokens(indices: ArrayLike<number>[], options: { signal?: AbortSignal } = {}): Promise<GeneratedImage> {
    this.checkUsable('decodeImageTokens');
    const shape = this.requireImageShape('decodeImageTokens');
    const checked = resolveImageIndices(indices, 'decodeImageTokens: indices', shape);
    return this.queue.run('decodeImageTokens', options.signal, async () => toImage(await this.model.decodeImageTokens(checked)));
  }

  private requireImageShape(what: string): ImageShape {
    if (!this.imageShape) throw new InputError(`${what}: this model has no VQ-VAE / VAR weights`);
    return this.imageShape;
  }

  private vqvaeSize(what: string): number {
    const vq = this.info.vqvae;
    if (!vq) throw new InputError(`${what}: this model has no VQ-VAE weights`);
    if (!vq.hasEncoder) throw new InputError(`${what}: this checkpoint has no VQ-VAE encoder weights (vae_local.encoder.*)`);
    return vq.imageSize;
  }

  // Stops the running call (it rejects with a DisposedError), rejects queued ones, frees the
  // native model. Safe to call more than once.
  dispose(): Promise<void> {
    if (!this.disposePromise) {
      this.disposePromise = this.queue.close().then(() => this.model.dispose());
    }
    return this.disposePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
