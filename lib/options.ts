// Public option types of the model calls and their validation. Everything is checked here, in
// TypeScript, before any native work starts, with messages that name the option at fault.
import { randomInt } from 'node:crypto';

import { CheckpointError, InputError } from './errors.js';
import type { ImageProgress } from './families/registry.js';
import type { ImageDefaults, TextDefaults } from './families/types.js';
import type { GeneratedImage } from './image.js';

export type { ImageProgress };

// Image progress, whatever the family draws with: step `step` of `steps` (counting from 1) of the
// stage `stage`. Each family's event adds its own fields (lib/families/registry.ts: ImageProgress).
export interface ImageProgressBase {
  // What a step is: 'scale' (VARGPT v1: next-scale prediction).
  stage: string;
  step: number;
  steps: number;
  // The image so far (a cheap low-resolution decode); the full image at the last step.
  preview: GeneratedImage;
}

// Recorded sampling to reproduce a run exactly (the fixtures' generation cases), per scale.
// VARGPT v1: the sampled codebook indices (pn*pn) and the Gaussian rows of the unconditional
// branch (pn*pn*llm hidden size). VARGPT-v1.1: the drawn bits (h*w*d values 0 or 1, token-major
// in raster order: bit j of token k at k*d + j, the layout encodeImageTokens returns).
export interface ImageReplay {
  indices?: ArrayLike<number>[];
  noise?: ArrayLike<number>[];
  bits?: ArrayLike<number>[];
  // BLIP3-o: the three Gaussian draws by the names trace: true gives them: the prompt's flow
  // noise [clipWidth x grid x grid], the " " negative's, and the UNet's initial latents
  // [latentChannels x height/8 x width/8].
  'flow.noise'?: ArrayLike<number>;
  'neg.flow.noise'?: ArrayLike<number>;
  'unet.noise'?: ArrayLike<number>;
}

// A scale schedule: the [height, width] token grid of each scale, coarse to fine.
export type ScaleSchedule = ReadonlyArray<readonly [number, number]>;

export interface ImageSamplingOptions {
  // Classifier-free guidance strength (VARGPT v1: the per-scale weight ramps from 0 to cfg;
  // VARGPT-v1.1: cfg on every scale). Defaults of every option: model.defaults.image (the
  // family's values, or the checkpoint's generation_config.json).
  cfg?: number;
  // Top-k and top-p: over the codebook (VARGPT v1) or over each bit's two values (VARGPT-v1.1,
  // where a top-k of 2 or more keeps both).
  topK?: number;
  topP?: number;
  // VARGPT-v1.1: the logits temperature (applied before CFG), and the scale schedule, whose last
  // grid times the VAE's downsampling is the image size (default: 10 scales up to 32x32 tokens,
  // 512x512 pixels).
  tau?: number;
  scales?: ScaleSchedule;
  // BLIP3-o, stage 2: the UNet's Euler steps and classifier-free guidance scale, and the image
  // size in pixels (multiples of info.image.sizeMultiple; default info.image.defaultSize square).
  steps?: number;
  guidance?: number;
  width?: number;
  height?: number;
  // BLIP3-o, stage 1: the DiT's flow-matching steps, guidance scale and timestep shift, and its
  // token grid (grid x grid CLIP features; default the square root of info.nQuery).
  flowSteps?: number;
  flowGuidance?: number;
  flowShift?: number;
  grid?: number;
  // BLIP3-o: hide the last learned query's key from every position in stage 1's LLM pass (default
  // false). Upstream's generate_image passes an attention mask one entry shorter than the
  // sequence (the appended [IMG] is not counted). transformers 4.51, which upstream pins, ignores
  // an all-ones mask under SDPA, so every position attends causally (the default here); later
  // transformers pad the short mask with a zero, which hides the last query's key (its own row
  // then attends only to the earlier positions). The reference fixtures were computed that way.
  maskLastQuery?: boolean;
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
  // Defaults of the sampling options: model.defaults.text (the family's values, seeded from the
  // checkpoint's generation_config.json). Upper bound on new tokens (the default shrinks to what
  // max_position_embeddings leaves after the prompt and room for an image).
  maxNewTokens?: number;
  // 0 = greedy.
  temperature?: number;
  // 0 = off.
  topK?: number;
  // 1 = off.
  topP?: number;
  // 1 = off.
  repetitionPenalty?: number;
  // Each decoded text piece as it is generated.
  onToken?: (delta: string, tokenId: number) => void;
  // Once, when the call leaves the model's queue and starts, with the prompt's length in tokens.
  onStart?: (info: { promptTokens: number }) => void;
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

export interface EditImageOptions extends GenerateImageOptions {
  // LlamaFactory's preparation of the source, as the editing model's training data was made: shrink
  // to at most 512x512 pixels (nearest neighbour, keeping the aspect) and widen sides under 28
  // pixels, before the vision tower's own resize. true: always; false: never (the standalone
  // upstream path, and the reference fixture's); 'auto' (default): only when the prompt would
  // not fit the image decoder's context without it (its unconditional context has a fixed number
  // of rows, info.image.contextRows), so small sources are read exactly as upstream's demo reads
  // them and large photos still edit.
  preShrink?: boolean | 'auto';
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

export function optionObject(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InputError(`${what} must be an object`);
  return value as Record<string, unknown>;
}

// What a numeric option may be: the one check of each option, for what callers pass and for the
// defaults a checkpoint's generation_config.json sets.
export interface Rule {
  check: (v: number) => boolean;
  rule: string;
}

const isInt = (v: number) => Number.isSafeInteger(v);

export const TEXT_RULES: { readonly [K in keyof TextDefaults]: Rule } = {
  maxNewTokens: { check: (v) => isInt(v) && v >= 1, rule: 'an integer >= 1' },
  temperature: { check: (v) => v >= 0, rule: 'a number >= 0 (0 = greedy)' },
  topK: { check: (v) => isInt(v) && v >= 0, rule: 'an integer >= 0 (0 = off)' },
  topP: { check: (v) => v > 0 && v <= 1, rule: 'a number in (0, 1]' },
  repetitionPenalty: { check: (v) => v > 0, rule: 'a number > 0 (1 = off)' },
};

// Image sampling over a codebook of `codebook` codes.
export function imageRules(codebook: number): { readonly [K in keyof ImageDefaults]: Rule } {
  return {
    cfg: { check: (v) => v >= 0, rule: 'a number >= 0' },
    topK: { check: (v) => isInt(v) && v >= 1 && v <= codebook, rule: `an integer in [1, ${codebook}]` },
    topP: { check: (v) => v > 0 && v <= 1, rule: 'a number in (0, 1]' },
  };
}

export function num(o: Record<string, unknown>, key: string, what: string, fallback: number, { check, rule }: Rule): number {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new InputError(`${what}.${key} must be ${rule}, got ${describeValue(v)}`);
  return v;
}

// A default read from a checkpoint file must pass the option's own check.
export function checkDefault(value: number, rule: Rule, where: string): number {
  if (!Number.isFinite(value) || !rule.check(value)) throw new CheckpointError(`${where} must be ${rule.rule}, got ${value}`);
  return value;
}

export function resolveSeed(o: Record<string, unknown>, what: string): number {
  // 2^48: exact in a double, and far more seeds than anyone will try.
  return num(o, 'seed', what, randomInt(0, 2 ** 48 - 1), { check: (v) => isInt(v) && v >= 0, rule: 'an integer >= 0' });
}

// The drawing options of BLIP3-o, which the next-scale families do not have.
export const DIFFUSION_OPTION_KEYS = ['steps', 'guidance', 'width', 'height', 'flowSteps', 'flowGuidance', 'flowShift', 'grid', 'maskLastQuery'] as const;

// Throws for the first of `keys` that `o` sets: an option of another family, never silently ignored.
export function rejectOptions(o: Record<string, unknown>, what: string, keys: readonly string[], why: string): void {
  for (const key of keys) {
    if (o[key] !== undefined) throw new InputError(`${what}.${key}: ${why}`);
  }
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

// Text options over the model's defaults; maxNewTokens stays null when not given (the default
// shrinks to the room the prompt leaves).
export function resolveText(value: unknown, what: string, defaults: TextDefaults): ResolvedText {
  const o = optionObject(value, what);
  checkCallbacks(o, what, ['onToken', 'onImageProgress', 'onStart']);
  return {
    maxNewTokens: o['maxNewTokens'] === undefined ? null : num(o, 'maxNewTokens', what, 0, TEXT_RULES.maxNewTokens),
    temperature: num(o, 'temperature', what, defaults.temperature, TEXT_RULES.temperature),
    topK: num(o, 'topK', what, defaults.topK, TEXT_RULES.topK),
    topP: num(o, 'topP', what, defaults.topP, TEXT_RULES.topP),
    repetitionPenalty: num(o, 'repetitionPenalty', what, defaults.repetitionPenalty, TEXT_RULES.repetitionPenalty),
    seed: resolveSeed(o, what),
  };
}

export function toTyped<T extends Int32Array | Float32Array>(
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

// Image sampling options over the model's defaults; `shape` (the model's scales and codebook)
// checks top-k and the replay.
export function resolveImage(value: unknown, what: string, shape: ImageShape | null, defaults: ImageDefaults): ResolvedImage {
  const o = optionObject(value, what);
  const rules = imageRules(shape?.codebookSize ?? Number.MAX_SAFE_INTEGER);
  const out: ResolvedImage = {
    cfg: num(o, 'cfg', what, defaults.cfg, rules.cfg),
    topK: num(o, 'topK', what, defaults.topK, rules.topK),
    topP: num(o, 'topP', what, defaults.topP, rules.topP),
  };
  for (const key of ['tau', 'scales']) {
    if (o[key] !== undefined) throw new InputError(`${what}.${key}: VARGPT v1 has no ${key === 'tau' ? 'logits temperature' : 'scale schedule'} option (its scales are fixed by the checkpoint)`);
  }
  rejectOptions(o, what, DIFFUSION_OPTION_KEYS, 'a BLIP3-o (diffusion) option; VARGPT v1 draws by next-scale prediction (cfg, topK, topP)');
  if (o['replay'] !== undefined) {
    if (!shape) throw new InputError(`${what}.replay: this model has no image decoder`);
    const r = optionObject(o['replay'], `${what}.replay`);
    if (r['bits'] !== undefined) throw new InputError(`${what}.replay.bits: VARGPT v1 replays indices and noise, not bits`);
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

// A value as a message shows it: numbers as JavaScript writes them (NaN, Infinity, -Infinity,
// which JSON.stringify would turn into null), strings quoted, other values as JSON or their type.
export function describeValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return value.toString();
  if (Array.isArray(value) && value.length <= 16) return `[${value.map(describeValue).join(', ')}]`;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined;
  }
  if (json === undefined) return typeof value;
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

// The option names of each call, checked against the option types at compile time (a name the
// type has and the list lacks is a type error below), so a misspelled option is an error rather
// than silently ignored.
const CALL_KEYS = ['signal', 'seed', 'trace', 'profile'] as const satisfies readonly (keyof CallOptions)[];
const TEXT_KEYS = [...CALL_KEYS, 'maxNewTokens', 'temperature', 'topK', 'topP', 'repetitionPenalty', 'onToken', 'onStart'] as const satisfies readonly (keyof TextOptions)[];
const CHAT_KEYS = [...TEXT_KEYS, 'image', 'forceImage', 'onImageProgress'] as const satisfies readonly (keyof ChatOptions)[];
const IMAGE_SAMPLING_KEYS = [
  'cfg', 'topK', 'topP', 'tau', 'scales', 'steps', 'guidance', 'width', 'height',
  'flowSteps', 'flowGuidance', 'flowShift', 'grid', 'maskLastQuery', 'replay',
] as const satisfies readonly (keyof ImageSamplingOptions)[];
const GENERATE_KEYS = [...CALL_KEYS, ...IMAGE_SAMPLING_KEYS, 'onImageProgress'] as const satisfies readonly (keyof GenerateImageOptions)[];
const EDIT_KEYS = [...GENERATE_KEYS, 'preShrink'] as const satisfies readonly (keyof EditImageOptions)[];
const REPLAY_KEYS = ['indices', 'noise', 'bits', 'flow.noise', 'neg.flow.noise', 'unet.noise'] as const satisfies readonly (keyof ImageReplay)[];

// true when K lists every key of T; otherwise the missing keys (a type error where true is assigned).
export type Covers<T, K extends readonly PropertyKey[]> = [Exclude<keyof T, K[number]>] extends [never] ? true : Exclude<keyof T, K[number]>;
const covered: [
  Covers<TextOptions, typeof TEXT_KEYS>,
  Covers<ChatOptions, typeof CHAT_KEYS>,
  Covers<ImageSamplingOptions, typeof IMAGE_SAMPLING_KEYS>,
  Covers<GenerateImageOptions, typeof GENERATE_KEYS>,
  Covers<EditImageOptions, typeof EDIT_KEYS>,
  Covers<ImageReplay, typeof REPLAY_KEYS>,
] = [true, true, true, true, true, true];
void covered;

// Known keys of an options object; a key mapped to a nested spec is an object checked in turn.
export interface OptionSpec {
  readonly [key: string]: OptionSpec | null;
}

export function optionSpec(keys: readonly string[], nested: { readonly [key: string]: OptionSpec } = {}): OptionSpec {
  return Object.fromEntries(keys.map((k) => [k, nested[k] ?? null]));
}

const REPLAY_SPEC = optionSpec(REPLAY_KEYS);
const IMAGE_SPEC = optionSpec(IMAGE_SAMPLING_KEYS, { replay: REPLAY_SPEC });

export const OPTION_SPECS = {
  ask: optionSpec(TEXT_KEYS),
  chat: optionSpec(CHAT_KEYS, { image: IMAGE_SPEC }),
  generateImage: optionSpec(GENERATE_KEYS, { replay: REPLAY_SPEC }),
  editImage: optionSpec(EDIT_KEYS, { replay: REPLAY_SPEC }),
} as const;

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}

// The known name closest to `key` (case and underscores ignored, so max_new_tokens finds
// maxNewTokens), or null when none is near enough to be a likely misspelling.
export function closestName(key: string, known: readonly string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replaceAll('_', '').replaceAll('-', '');
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const name of known) {
    const d = editDistance(norm(key), norm(name));
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(Math.max(key.length, best.length) / 3)) ? best : null;
}

// Rejects an option the call does not know (`what` names the options object: "chat options").
// Keys whose value is undefined are passed over, as everywhere else in the options.
export function checkOptionKeys(value: unknown, what: string, spec: OptionSpec): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return; // the resolvers report the type
  const known = Object.keys(spec);
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (!Object.hasOwn(spec, key)) {
      const near = closestName(key, known);
      throw new InputError(`${what}.${key}: unknown option; ${near ? `did you mean ${near}?` : `the options are ${known.join(', ')}`}`);
    }
    const nested = spec[key];
    if (nested) checkOptionKeys(v, `${what}.${key}`, nested);
  }
}
