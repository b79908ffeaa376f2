// Public option types of the model calls and their validation. Everything is checked here, in
// TypeScript, before any native work starts, with messages that name the option at fault.
import { randomInt } from 'node:crypto';

import { InputError } from './errors.js';
import type { GeneratedImage } from './image.js';

export interface ImageProgress {
  // Scale k of K, counting from 1 (VARGPT v1: K = 10, 1x1 up to 16x16 tokens).
  scale: number;
  scales: number;
  // The image so far (a cheap low-resolution decode); the full image at the last scale.
  preview: GeneratedImage;
}

// Recorded sampling to reproduce a run exactly (the fixture's generation case): per scale the
// sampled codebook indices (pn*pn) and the Gaussian rows of the unconditional branch
// (pn*pn*llm hidden size).
export interface ImageReplay {
  indices: ArrayLike<number>[];
  noise: ArrayLike<number>[];
}

export interface ImageSamplingOptions {
  // Classifier-free guidance strength; the per-scale weight ramps from 0 to cfg (default 1.5).
  cfg?: number;
  // Top-k over the codebook (default 900) and top-p (default 0.96), as upstream.
  topK?: number;
  topP?: number;
  replay?: ImageReplay;
}

export interface CallOptions {
  signal?: AbortSignal;
  // Seed of every random draw of the call (text sampling and the image); default: a random seed,
  // reported back in the reply so the call can be repeated.
  seed?: number;
  // Ask the runtime for intermediate tensors (reply.trace); slower, for debugging and parity tests.
  trace?: boolean;
  // Ask the runtime for seconds per stage (reply.profile: prefill, decode, VAR, VQ-VAE...).
  profile?: boolean;
}

export interface TextOptions extends CallOptions {
  // Upper bound on new tokens (default 512; the default shrinks to what max_position_embeddings
  // leaves after the prompt and room for an image).
  maxNewTokens?: number;
  // 0 (the default, as upstream) = greedy.
  temperature?: number;
  // 0 = off (default).
  topK?: number;
  // 1 = off (default).
  topP?: number;
  // 1 = off (default).
  repetitionPenalty?: number;
  // Each decoded text piece as it is generated.
  onToken?: (delta: string, tokenId: number) => void;
}

export interface ChatOptions extends TextOptions {
  // Sampling of an image, should the model start one (<|image_gen_start|>).
  image?: ImageSamplingOptions;
  // Make the first new token <|image_gen_start|>: draw now, in the context of the conversation.
  forceImage?: boolean;
  onImageProgress?: (progress: ImageProgress) => void;
}

export interface GenerateImageOptions extends CallOptions, ImageSamplingOptions {
  onImageProgress?: (progress: ImageProgress) => void;
}

export interface ResolvedText {
  maxNewTokens: number | null; // null = the default
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
}

export interface ResolvedImage {
  cfg: number;
  topK: number;
  topP: number;
  replay?: { indices: Int32Array[]; noise: Float32Array[] };
}

export interface ImageShape {
  patchNums: readonly number[];
  codebookSize: number;
  llmHidden: number;
}

export const DEFAULT_MAX_NEW_TOKENS = 512;

function optionObject(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InputError(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function num(o: Record<string, unknown>, key: string, what: string, fallback: number, check: (v: number) => boolean, rule: string): number {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new InputError(`${what}.${key} must be ${rule}, got ${JSON.stringify(v) ?? String(v)}`);
  return v;
}

const isInt = (v: number) => Number.isSafeInteger(v);

export function resolveSeed(o: Record<string, unknown>, what: string): number {
  // 2^48: exact in a double, and far more seeds than anyone will try.
  return num(o, 'seed', what, randomInt(0, 2 ** 48 - 1), (v) => isInt(v) && v >= 0, 'an integer >= 0');
}

export function checkCallbacks(o: Record<string, unknown>, what: string, keys: readonly string[]): void {
  for (const key of keys) {
    if (o[key] !== undefined && typeof o[key] !== 'function') throw new InputError(`${what}.${key} must be a function`);
  }
  const signal = o['signal'];
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InputError(`${what}.signal must be an AbortSignal`);
  for (const key of ['trace', 'profile']) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw new InputError(`${what}.${key} must be true or false`);
  }
}

export function resolveText(value: unknown, what: string): ResolvedText {
  const o = optionObject(value, what);
  checkCallbacks(o, what, ['onToken', 'onImageProgress']);
  return {
    maxNewTokens: o['maxNewTokens'] === undefined ? null : num(o, 'maxNewTokens', what, 0, (v) => isInt(v) && v >= 1, 'an integer >= 1'),
    temperature: num(o, 'temperature', what, 0, (v) => v >= 0, 'a number >= 0 (0 = greedy)'),
    topK: num(o, 'topK', what, 0, (v) => isInt(v) && v >= 0, 'an integer >= 0 (0 = off)'),
    topP: num(o, 'topP', what, 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    repetitionPenalty: num(o, 'repetitionPenalty', what, 1, (v) => v > 0, 'a number > 0 (1 = off)'),
    seed: resolveSeed(o, what),
  };
}

function toTyped<T extends Int32Array | Float32Array>(
  list: unknown,
  make: (n: number) => T,
  what: string,
  lengths: number[],
  check: (v: number) => boolean,
  rule: string,
): T[] {
  if (!Array.isArray(list) || list.length !== lengths.length) {
    throw new InputError(`${what} must be an array of ${lengths.length} arrays (one per scale)`);
  }
  return list.map((item: unknown, si) => {
    const arr = item as ArrayLike<number> | null;
    if (arr === null || typeof arr !== 'object' || typeof arr.length !== 'number') throw new InputError(`${what}[${si}] must be an array of numbers`);
    if (arr.length !== lengths[si]) throw new InputError(`${what}[${si}] has ${arr.length} values, scale ${si} needs ${lengths[si]}`);
    const out = make(arr.length);
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i] as number;
      if (typeof v !== 'number' || !check(v)) throw new InputError(`${what}[${si}][${i}] = ${String(v)} must be ${rule}`);
      out[i] = v;
    }
    return out;
  });
}

export function resolveImageIndices(value: unknown, what: string, shape: ImageShape): Int32Array[] {
  return toTyped(
    value,
    (n) => new Int32Array(n),
    what,
    shape.patchNums.map((pn) => pn * pn),
    (v) => Number.isInteger(v) && v >= 0 && v < shape.codebookSize,
    `an integer codebook index in [0, ${shape.codebookSize})`,
  );
}

export function resolveImage(value: unknown, what: string, shape: ImageShape | null): ResolvedImage {
  const o = optionObject(value, what);
  const codebook = shape?.codebookSize ?? Number.MAX_SAFE_INTEGER;
  const out: ResolvedImage = {
    cfg: num(o, 'cfg', what, 1.5, (v) => v >= 0, 'a number >= 0'),
    topK: num(o, 'topK', what, Math.min(900, codebook), (v) => isInt(v) && v >= 1 && v <= codebook, `an integer in [1, ${codebook}]`),
    topP: num(o, 'topP', what, 0.96, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
  };
  if (o['replay'] !== undefined) {
    if (!shape) throw new InputError(`${what}.replay: this model has no image decoder`);
    const r = optionObject(o['replay'], `${what}.replay`);
    out.replay = {
      indices: resolveImageIndices(r['indices'], `${what}.replay.indices`, shape),
      noise: toTyped(
        r['noise'],
        (n) => new Float32Array(n),
        `${what}.replay.noise`,
        shape.patchNums.map((pn) => pn * pn * shape.llmHidden),
        (v) => Number.isFinite(v),
        'a finite number',
      ),
    };
  }
  return out;
}
