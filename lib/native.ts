// Loads the native addon (a prebuild from prebuilds/ or the local build/) and types its surface.
// Everything here is internal: the public API wraps it with validation and friendlier types.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { DType } from './tensor.js';

export interface NativeTensor {
  dtype: DType;
  shape: number[];
  data: ArrayBuffer;
}

export interface NativeTensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
}

export interface NativeCheckpoint {
  list(): NativeTensorInfo[];
  read(name: string): NativeTensor;
  metadata(): Record<string, string>;
}

export interface NativeCpuInfo {
  threads: number;
  model: string;
  features: string[];
  // The GEMM path in use ('amx' | 'avx512' | 'avx2' | 'portable').
  kernels: string;
  // The int8 and 4-bit GEMMs' kernel: 'avx512-vnni' (on the avx512 and amx paths of a CPU with
  // AVX-512 VNNI), 'avx2' (on the other x86 paths but the portable one) or 'portable'.
  int8Kernels: string;
  // Every GEMM path this CPU and build can run, best first.
  kernelPaths: string[];
  // Why the AMX path cannot run here (absent when it can).
  amxUnavailable?: string;
}

export interface NativeCudaDevice {
  index: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
  freeMemory: number;
  multiprocessors: number;
}

export interface NativeCudaInfo {
  available: boolean;
  reason?: string;
  driverVersion?: number;
  runtimeVersion?: number;
  devices: NativeCudaDevice[];
}

export interface NativeTensorInput {
  dtype: DType;
  shape: readonly number[];
  data: ArrayBufferView | ArrayBuffer;
}

// 8-bit pixels, row-major, interleaved channels.
export interface NativePixels {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

export interface NativePreprocessSpec {
  // Pillow filter id: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming.
  resize?: { width: number; height: number; filter: number };
  crop?: { left: number; top: number; width: number; height: number };
  normalize: 'meanstd' | 'symmetric';
  scale?: number;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
}

export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

// What the native runtime reports as info().vqvae (sizes derived from the checkpoint's shapes).
export interface NativeVqvaeInfo {
  ch: number;
  chMult: number[];
  numResBlocks: number;
  zChannels: number;
  codebookSize: number;
  imageSize: number;
  downsample: number;
  hasEncoder: boolean;
  phiCount: number;
  phiIndex: number[]; // scale -> phi conv
}

// The precision a model's linear layers run in: a float dtype (as stored or converted on load) or
// quantized (loadModel's weights option).
export type LinearWeightsPrecision = 'f32' | 'bf16' | 'f16' | 'int8' | 'q4';

interface NativeLlmInfo {
  hiddenSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim?: number;
  intermediateSize?: number;
  vocabSize: number;
  maxPositions: number;
  weights: LinearWeightsPrecision; // the precision the linear layers run in (loadModel weights)
}

// info() of a VARGPT v1 model (native/models/pipelines/vargpt_v1.cc).
export interface NativeVargptV1Info {
  family: 'vargpt-v1';
  device: string;
  llm: NativeLlmInfo;
  vision: { hiddenSize: number; layers: number; imageSize: number; patchSize: number; tokens: number } | null;
  var: { depth: number; width: number; heads: number; patchNums: number[]; codebookSize: number; cvae: number; weights: LinearWeightsPrecision } | null;
  vqvae: NativeVqvaeInfo | null;
  imageTokenId: number;
  imageGenStartId: number;
  imageGenEndId: number;
  eosId: number;
  bosId: number;
}

// The Qwen2-VL vision tower of a VARGPT-v1.1 model.
export interface NativeQwen2VlVisionInfo {
  embedDim: number;
  depth: number;
  heads: number;
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  channels: number;
  // Values per patch: channels x temporalPatchSize x patchSize^2 (1176).
  patchValues: number;
  // The merger's output width (the LLM's hidden size).
  outHidden: number;
  // Qwen2.5-VL: window attention with full-attention blocks.
  windowed: boolean;
}

// info() of a VARGPT-v1.1 model (native/models/pipelines/vargpt_v1_1.cc). Token ids are -1 where
// config.json has none.
export interface NativeVargptV11Info {
  family: 'vargpt-v1.1';
  device: string;
  llm: NativeLlmInfo & { ropeTheta: number; mropeSection: number[] };
  vision: NativeQwen2VlVisionInfo | null;
  // The Infinity decoder and BSQ VAE (vargpt_gen.*, vae_local.*), sizes from their tensors; null
  // when the checkpoint cannot draw.
  image: {
    bits: number; // d: bits per token
    depth: number;
    width: number;
    heads: number;
    levels: number; // lvl_embed rows: the most scales a schedule may have
    contextRows: number; // cfg_uncond rows: the longest cross-attention context (tokens before the image)
    downsample: number; // pixels per token along each axis
    imageChannels: number;
    hasEncoder: boolean; // vae_local.encoder.* (encodeImageTokens)
    weights: LinearWeightsPrecision; // the precision the Infinity transformer's linear layers run in
  } | null;
  bosId: number;
  eosIds: number[];
  imageTokenId: number;
  visionStartId: number;
  visionEndId: number;
  imageGenStartId: number;
  imageGenEndId: number;
}

// info() of a BLIP3-o model (native/models/pipelines/blip3o.cc). Token ids are -1 where config.json
// has none.
export interface NativeBlip3oInfo {
  family: 'blip3o';
  device: string;
  llm: NativeLlmInfo & { ropeTheta: number; mropeSection: number[] };
  vision: NativeQwen2VlVisionInfo | null;
  bosId: number;
  eosIds: number[];
  imageTokenId: number;
  visionStartId: number;
  visionEndId: number;
  // config.json n_query: the learned queries after [IMG].
  nQuery: number;
  // The drawing half (the DiT, the UNet, the VAE), or null with imageUnavailable saying what the
  // checkpoint lacks.
  image: NativeBlip3oImageInfo | null;
  imageUnavailable?: string;
}

export interface NativeBlip3oImageInfo {
  // Width of the CLIP features stage 1 generates (the DiT's channels, the UNet's cross-attention).
  clipWidth: number;
  // Pixel side at the UNet's trained sample_size (1024 in the release), and what sizes must divide by.
  defaultSize: number;
  sizeMultiple: number;
  dit: { dim: number; layers: number; heads: number; kvHeads: number; captionDim: number; weights: LinearWeightsPrecision };
  unet: { blockOutChannels: number[]; latentChannels: number; sampleSize: number; crossAttentionDim: number; downsample: number };
  vae: { downsample: number; latentChannels: number; scalingFactor: number };
}

// info() of a loaded model; `family` tells the kinds apart.
export type NativeModelInfo = NativeVargptV1Info | NativeVargptV11Info | NativeBlip3oInfo;

export interface NativeImage {
  width: number;
  height: number;
  data: Uint8Array; // RGB
}

// The drawing options of VARGPT v1 and v1.1 (next-scale prediction).
export interface NativeVarImageRequest {
  cfg: number;
  topK: number;
  topP: number;
  seed: number;
  // VARGPT-v1.1: logits temperature and the scale schedule, one [h, w] token grid per scale.
  tau?: number;
  scales?: number[][];
  // Replaces the sampler (indices[si], pn*pn ids) and the CFG noise (noise[si], pn*pn*hidden) per
  // scale; VARGPT-v1.1: bits[si], h*w*bits values 0/1, token-major.
  replay?: { indices?: Int32Array[]; noise?: Float32Array[]; bits?: Int32Array[] };
}

// BLIP3-o's drawing options: stage 1 (the DiT's flow sampler over a grid x grid token grid),
// stage 2 (the UNet's Euler sampler and the image size), and the negative prompt's ids (ending
// with [IMG]). replay holds the fixture's draws by name, one array each: 'flow.noise',
// 'neg.flow.noise', 'unet.noise'.
export interface NativeDiffusionImageRequest {
  seed: number;
  flowSteps: number;
  flowGuidance: number;
  flowShift: number;
  flowTrainTimesteps: number;
  grid: number;
  // 1: the last query's key is hidden from every position (a short attention mask padded with zeros).
  maskLastQuery: number;
  steps: number;
  guidance: number;
  width: number;
  height: number;
  negativeIds: number[];
  replay?: Record<string, Float32Array[]>;
}

export interface NativeGenerateRequest {
  inputIds: Int32Array; // rendered prompt, every <image> already expanded to vision.tokens ids
  // One per image, in prompt order. VARGPT v1: f32 [3, S, S] CLIP-normalised. VARGPT-v1.1:
  // f32 [patches, 1176] in the Qwen2-VL processor's window-major order.
  pixelValues?: Float32Array[];
  // VARGPT-v1.1: (t, h, w) patch counts per image, 3 values each (image_grid_thw).
  imageGrids?: Int32Array;
  forceImage?: boolean; // append <|image_gen_start|> right after the prompt
  maxNewTokens: number;
  temperature: number; // 0 = greedy
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
  stopIds: number[];
  ignoreEos?: boolean; // EOS does not stop (stopIds and maxNewTokens still do), and VARGPT v1 decodes a sampled image-start token as text: for benchmarks
  // Precision of the call's attention caches (the LLM's and the image decoder's); default f32.
  kvCache?: 'f32' | 'bf16';
  image?: NativeVarImageRequest | NativeDiffusionImageRequest;
  // result.trace: host tensors by name. Understanding: pixelValues [n,3,S,S], visionFeatures [n,N,Cv]
  // (hidden_states[vision_feature_layer], CLS dropped), imageFeatures [n,N,H] (projected),
  // prefillEmbeds [T,H], prefillHidden [T,H] (after the final norm), prefillLogits [V], stepLogits
  // [steps,V] (the raw logits each sampled/greedy token was chosen from). Image: startTokenLogits [V],
  // sos [1,C], then per scale s{si}.varTokenEmbed [l,C] (si > 0), .llmInput [l,H], .llmHidden [l,H],
  // .noise [l,H], .varInput [2,l,C], .varBlockOut [depth,2,l,C], .logitsCond / .logitsUncond /
  // .logits (CFG-combined, before filtering) [l,Vq], .kept [l] (codes surviving top-k/top-p),
  // .indices [l], .fHat [Cvae,P,P], .nextMap [Cvae,pn',pn']; finally fHat and image [3,S,S] in [-1,1].
  trace?: boolean;
  profile?: boolean; // result.profile: seconds per stage (synchronises the device at stage edges)
  cancel?: NativeCancelToken;
  onToken?: (id: number) => void;
  // Step `step` (0-based) of `steps` of the drawing stage `stage`. VARGPT v1: stage 'scale', one
  // call per scale; previews before the last scale are a small decode of the current f-hat (at
  // most 4x4 latents, 64x64 pixels); the last call carries the final image.
  onImageProgress?: (stage: string, step: number, steps: number, preview: NativeImage) => void;
}

export interface NativeGenerateResult {
  tokens: Int32Array; // generated ids, incl. <|image_gen_start|> and X when an image was drawn
  stopReason: 'eos' | 'length' | 'image';
  tokenAfterImageStart?: number;
  image?: NativeImage;
  trace?: Record<string, NativeTensor>;
  profile?: Record<string, number>;
}

// An assistant turn in progress, for continuous batching (lib/queue.ts): startTurn() checks the
// request and runs its prefill; stepTurns() advances several turns of one model together, one
// forward pass per token; finishTurn() draws (when the turn left to draw) and returns what
// generate() returns. dispose() frees its caches early (a finished turn has freed them already).
export interface NativeTurn {
  dispose(): void;
}

export interface NativeTurnStep {
  // ready: it continues; draw: it emitted its image-start token (finishTurn draws); done: its
  // text ended; cancelled: its cancel token fired; failed: error says why.
  state: 'ready' | 'draw' | 'done' | 'cancelled' | 'failed';
  error?: string;
}

export interface NativeModel {
  info(): NativeModelInfo;
  generate(request: NativeGenerateRequest): Promise<NativeGenerateResult>;
  // The request's cancel token stays the turn's; its callbacks are not used here.
  startTurn(request: NativeGenerateRequest): Promise<NativeTurn>;
  // Steps until a turn leaves or `interrupt` fires (checked after every step); onToken(token, i)
  // streams the token turn i emitted. Resolves with one state per turn.
  stepTurns(turns: NativeTurn[], interrupt: NativeCancelToken | null, onToken: (token: number, index: number) => void): Promise<NativeTurnStep[]>;
  finishTurn(
    turn: NativeTurn,
    callbacks: Pick<NativeGenerateRequest, 'onToken' | 'onImageProgress'>,
  ): Promise<NativeGenerateResult>;
  // pixels: [3, height, width] in [-1, 1]; one Int32Array of tokens per scale (VARGPT v1: codebook
  // indices; VARGPT-v1.1: bits, h*w*d per scale, token-major). scales: (h, w) pairs, the schedule
  // of families whose schedule varies (VARGPT-v1.1).
  encodeImageTokens(pixels: Float32Array, height: number, width: number, scales?: Int32Array): Promise<Int32Array[]>;
  // trace adds f32 tensors to the result: VARGPT v1 { fHat, image }, VARGPT-v1.1
  // { decode_summed_codes, decode_image } (the image clamped to [-1, 1]).
  decodeImageTokens(
    indices: Int32Array[],
    options?: { trace?: boolean; scales?: Int32Array },
  ): Promise<NativeImage & { trace?: Record<string, NativeTensor> }>;
  // Frees the weights once no call is running; later calls reject with "model is disposed".
  dispose(): void;
}

export interface NativeLoadOptions {
  device: string; // 'cpu' | 'cuda' | 'cuda:N'
  onProgress?: (loaded: number, total: number) => void; // bytes
  cancel?: NativeCancelToken;
  weights?: 'auto' | 'f32' | 'bf16' | 'int8' | 'q4'; // the LLM's linear layers: as stored, converted or quantized on load
  generatorWeights?: 'auto' | 'f32' | 'bf16' | 'int8' | 'q4'; // the image generator's transformer linear layers, the same
  mmap?: boolean; // false: weights read in place from the mapped files are copied on load (CPU)
}

export interface NativeAddon {
  devices(): { cpu: NativeCpuInfo; cuda: NativeCudaInfo };
  // C-heap bytes held by live allocations (glibc only); `trim` first returns free pages to the
  // kernel (malloc_trim). Used by scripts/leak-check.mjs.
  allocatorStats(trim?: boolean): { available: boolean; inUseBytes?: number; trimmed?: boolean };
  openCheckpoint(path: string): Promise<NativeCheckpoint>;
  // One Linear weight [N, K] quantized as loadModel's weights option does it: int8 -> q i8 [N, K],
  // scale f32 [N]; q4 -> q u8 [N, Kp / 2], scale f16 [N, Kp / 32] (native/core/quantize.h).
  quantizeTensor(tensor: NativeTensorInput, precision: 'int8' | 'q4'): Promise<{ q: NativeTensor; scale: NativeTensor }>;
  // Runs one backend operator on host tensors (the operator tests and benchmarks use it).
  // `inputs` may hold null for an optional input; see native/binding/ops.cc for ops and attrs.
  runOp(
    device: string,
    op: string,
    inputs: (NativeTensorInput | null)[],
    attrs: Record<string, unknown>,
  ): Promise<NativeTensor[]>;
  // Binds the op once, then runs it `iterations` times; resolves with the seconds of each run.
  timeOp(
    device: string,
    op: string,
    inputs: (NativeTensorInput | null)[],
    attrs: Record<string, unknown>,
    iterations: number,
  ): Promise<number[]>;
  // Switches the CPU GEMM path ('amx' | 'avx512' | 'avx2' | 'portable') for later ops; returns the previous
  // one. Throws when this CPU or build lacks the path.
  setCpuKernels(path: string): string;
  // Pillow-exact resampling (native/image/pil_resize.h), on a worker thread.
  resizeImage(pixels: NativePixels, options: { width: number; height: number; filter: number }): Promise<NativePixels>;
  // Resize + crop + normalise RGB pixels to float32 CHW planes (native/image/preprocess.h).
  preprocessImage(pixels: NativePixels, spec: NativePreprocessSpec): Promise<{ width: number; height: number; data: Float32Array }>;
  loadModel(dir: string, options: NativeLoadOptions): Promise<NativeModel>;
  createCancelToken(): NativeCancelToken;
  // A checkpoint's decoder LLM alone (native/binding/language_model.cc): parity checks of a
  // family's LLM and interleaved sequences on one set of weights.
  loadLanguageModel(dir: string, device?: string): Promise<NativeLanguageModel>;
  // A checkpoint's Qwen2-VL or Qwen2.5-VL vision tower alone (native/binding/vision_tower.cc).
  loadVisionTower(dir: string, device?: string): Promise<NativeVisionTower>;
  // A VARGPT-v1.1 checkpoint's BSQ VAE alone (native/binding/bsq_vae.cc, tensors under vae_local.).
  loadBsqVae(dir: string, device?: string): Promise<NativeBsqVae>;
  // A VARGPT-v1.1 checkpoint's Infinity decoder alone (native/binding/infinity.cc).
  loadInfinity(dir: string, device?: string): Promise<NativeInfinity>;
}

export interface NativeVisionTower {
  // patches [N x patch_values] of every image, window-major; grids (t, h, w) per image.
  encode(patches: Float32Array, grids: Int32Array): Promise<NativeVisionEncoding>;
}

export interface NativeVisionEncoding {
  patchEmbed: NativeTensor; // [N, width], the patches' order
  blockOut: NativeTensor; // [depth, N, width], in window order for Qwen2.5-VL
  features: NativeTensor; // [N / merge^2, out width], the patches' order
  // Qwen2.5-VL only: the merger output in window order, the window permutation of the merged
  // tokens (i32) and the windows' patch offsets (i64, empty windows dropped).
  mergerWindowed?: NativeTensor;
  windowIndex?: NativeTensor;
  cuWindowSeqlens?: NativeTensor;
}

export interface NativeConvTowerInfo {
  ch: number;
  chMult: number[];
  blocks: number; // res blocks per level
  scaleFactor: number; // the tower's total down- or upsampling
}

export interface NativeBsqVae {
  config(): {
    device: string;
    bits: number; // d: bits per token = latent channels
    imageChannels: number;
    downsample: number; // image pixels per latent position along each axis
    decoder: NativeConvTowerInfo;
    encoder: NativeConvTowerInfo | null;
  };
  // pixels [C, H, W] in [-1, 1]; scales: (h, w) pairs that never shrink, the last one the latent
  // size (H / downsample, W / downsample). bits[s] holds h * w * d values, bit j of token k (raster
  // order) at k * d + j; nextInputs[s] is the running code sum area-resampled to scale s + 1.
  encode(
    pixels: Float32Array,
    height: number,
    width: number,
    scales: Int32Array,
  ): Promise<{ encoderOut: NativeTensor; bits: Int32Array[]; nextInputs: NativeTensor[]; quantizedSum: NativeTensor }>;
  // bits per scale (0 / 1, layout of encode's) -> the codes summed on the last scale's grid and the
  // decoded image [C, h * downsample, w * downsample] clamped to [-1, 1].
  decode(bits: ReadonlyArray<Uint8Array | Int32Array>, scales: Int32Array): Promise<{ summedCodes: NativeTensor; image: NativeTensor }>;
}

// One image being drawn by an Infinity decoder: its AdaLN condition, the cross-attention keys and
// values of its two contexts and the self-attention keys and values of the scales run so far.
export interface NativeInfinityCache {
  readonly length: number; // tokens of the scales already run
}

export interface NativeInfinityConfig {
  device: string;
  depth: number;
  width: number; // C
  heads: number;
  headDim: number;
  mlpHidden: number;
  bits: number; // d: bits per token; the head gives 2*d logits
  contextDim: number; // columns of the cross-attention context rows
  textDim: number; // columns of the condition rows (text_norm, attentive pool)
  uncondRows: number; // cfg_uncond rows: the longest default unconditional context
  levels: number; // lvl_embed rows: the most scales
}

export interface NativeInfinity {
  config(): NativeInfinityConfig;
  // The AdaLN condition of both CFG rows: the attentive pool of text_norm(rows). rowsCond
  // [L x textDim]; rowsUncond defaults to cfg_uncond[0:L]. gss = shared_ada_lin(cond);
  // startInput = cond + pos_start (the scale-0 token before the bridge).
  condition(
    rowsCond: Float32Array,
    rowsUncond?: Float32Array,
  ): Promise<{ cond: NativeTensor; gss: NativeTensor; startInput: NativeTensor }>;
  // cfg_uncond[0:L] [L, contextDim]: the default unconditional rows.
  uncondRows(L: number): Promise<NativeTensor>;
  // word_embed(codes) [n, C] of a scale's codes [n x bits] (tokens in raster order): the next
  // scale's tokens before the bridge into the LLM.
  embedCodes(codes: Float32Array): Promise<NativeTensor>;
  // cond [2 x C] from condition(); context [L x contextDim] of the conditional row;
  // contextUncond defaults to cfg_uncond[0:L].
  newCache(options: {
    cond: Float32Array;
    context: Float32Array;
    contextUncond?: Float32Array;
    kvDtype?: 'f32' | 'bf16';
  }): Promise<NativeInfinityCache>;
  // One scale of h x w tokens (raster order) for both CFG rows: x [2 x h*w x C]. With `scale`,
  // lvl_embed[scale] is added first (x is the scale's input before the level embedding);
  // without it x is the first block's input. Appends the scale to the cache.
  forward(request: {
    x: Float32Array;
    h: number;
    w: number;
    cache: NativeInfinityCache;
    scale?: number;
    blockOutputs?: boolean;
  }): Promise<{ blockOut?: NativeTensor; logitsCond: NativeTensor; logitsUncond: NativeTensor }>;
}

// A KV cache owned by the caller; opaque.
export interface NativeLanguageSequence {
  readonly __languageSequence: never;
}

export interface NativeLanguageModel {
  config(): {
    device: string;
    hiddenSize: number;
    layers: number;
    heads: number;
    kvHeads: number;
    headDim: number;
    vocabSize: number;
    maxPositions: number;
    positionAxes: number; // 1 for 1D RoPE, 3 for M-RoPE (t, h, w)
    qkvBias: boolean;
    tiedEmbeddings: boolean;
    ropeTheta: number;
  };
  newSequence(options?: { kvDtype?: 'f32' | 'bf16' }): NativeLanguageSequence;
  // ids or embeds (T x hidden); positions axis-major (axes x T), default: the sequence's next
  // positions (0.. without a sequence); logits of the last row by default.
  forward(request: {
    ids?: Int32Array;
    embeds?: Float32Array;
    positions?: Int32Array;
    sequence?: NativeLanguageSequence;
    logits?: 'last' | 'all' | 'none';
  }): Promise<{ hidden: NativeTensor; logits?: NativeTensor }>;
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let cached: NativeAddon | undefined;

// VARGPT_ADDON_PATH selects a specific build (the sanitizer build of `npm run test:asan`).
export function native(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    const override = process.env.VARGPT_ADDON_PATH;
    if (override) {
      cached = require(path.resolve(override)) as NativeAddon;
    } else {
      const load = require('node-gyp-build') as (dir: string) => unknown;
      cached = load(packageRoot) as NativeAddon;
    }
  }
  return cached;
}

// BLIP3-o's Lumina-Next DiT alone (native/binding/dit.cc, tensors under model.dit.model.), sizes
// from its tensors.
export interface NativeBlip3oDitConfig {
  device: string;
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffnHidden: number;
  inChannels: number;
  outChannels: number;
  captionDim: number;
  tembDim: number;
}

export interface NativeBlip3oDit {
  config(): NativeBlip3oDitConfig;
  // One call on a batch of B rows: x [B, inChannels, g, g], context [B, Q, captionDim], B integer
  // timesteps. trace returns the intermediate tensors under the fixture's dit_step names.
  forward(request: {
    x: Float32Array;
    timestep: number[] | Int32Array | BigInt64Array;
    context: Float32Array;
    trace?: boolean;
  }): Promise<{ v: NativeTensor; trace?: Record<string, NativeTensor> }>;
  // The guided flow loop from `noise` [inChannels, g, g], guidance batch [zero context,
  // queryHidden [Q, captionDim]]; clipFeatures [g*g, inChannels]. shift and trainTimesteps are the
  // scheduler config's; trace returns the flow.* tensors (every step) and clip_features.
  sample(request: {
    queryHidden: Float32Array;
    noise: Float32Array;
    steps: number;
    guidance: number;
    shift: number;
    trainTimesteps: number;
    trace?: boolean;
  }): Promise<{ clipFeatures: NativeTensor; trace?: Record<string, NativeTensor> }>;
}

export interface NativeAddon {
  // A BLIP3-o checkpoint's DiT alone (native/binding/dit.cc).
  loadBlip3oDit(dir: string, device?: string): Promise<NativeBlip3oDit>;
}

// A diffusers decoder folder (BLIP3-o's diffusion-decoder/: SDXL-layout UNet, EulerDiscrete
// scheduler, AutoencoderKL decoder) alone (native/binding/diffusion_decoder.cc).
export interface NativeAddon {
  loadDiffusionDecoder(dir: string, device?: string): Promise<NativeDiffusionDecoder>;
}

export interface NativeDiffusionDecoderConfig {
  device: string;
  unet: {
    inChannels: number;
    outChannels: number;
    blockOutChannels: number[];
    heads: number[]; // attention heads per down block (up blocks in reverse)
    crossAttentionDim: number;
    timeEmbedDim: number;
    textEmbedsDim: number; // pooled text embedding width of the text_time conditioning (0 without it)
    timeIds: number; // time ids per batch row (0 without text_time)
    additionTimeEmbedDim: number;
  };
  vae: {
    latentChannels: number;
    imageChannels: number;
    scalingFactor: number;
    downsample: number;
    blockOutChannels: number[];
    resnetsPerUpBlock: number;
  };
  scheduler: { numTrainTimesteps: number; betaSchedule: string; timestepSpacing: string; stepsOffset: number };
}

export interface NativeDiffusionDecoder {
  config(): NativeDiffusionDecoderConfig;
  // The Euler tables of set_timesteps(steps): timesteps [steps], sigmas [steps + 1].
  schedule(steps: number): { timesteps: Float32Array; sigmas: Float32Array; initNoiseSigma: number };
  // One UNet evaluation: sample [B, C, h, w], encoderHiddenStates [B, L, X], textEmbeds [B, T],
  // timeIds B x ids (row-major); eps [B, C, h, w].
  unetStep(request: {
    sample: NativeTensorInput;
    timestep: number | ArrayLike<number>;
    encoderHiddenStates: NativeTensorInput;
    textEmbeds?: NativeTensorInput;
    timeIds?: ArrayLike<number | bigint>;
    trace?: boolean;
  }): Promise<{ eps: NativeTensor; trace?: Record<string, NativeTensor> }>;
  // latents [C, h, w] in the pipeline's latent space -> sample [3, H, W], image01 [H, W, 3] and
  // imageUint8 [H, W, 3].
  vaeDecode(request: {
    latents: NativeTensorInput;
    trace?: boolean;
  }): Promise<{ sample: NativeTensor; image01: NativeTensor; imageUint8: NativeTensor; trace?: Record<string, NativeTensor> }>;
  // The guided Euler loop (encoderHiddenStates rows: cond, uncond) from noise [C, h, w], then the
  // VAE unless decode is false.
  sample(request: {
    encoderHiddenStates: NativeTensorInput;
    textEmbeds?: NativeTensorInput;
    timeIds?: ArrayLike<number | bigint>;
    noise: NativeTensorInput;
    steps?: number;
    guidance?: number;
    decode?: boolean;
    trace?: boolean;
  }): Promise<{
    latents: NativeTensor;
    sample?: NativeTensor;
    image01?: NativeTensor;
    imageUint8?: NativeTensor;
    trace?: Record<string, NativeTensor>;
  }>;
}
