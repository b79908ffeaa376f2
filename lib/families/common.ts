// Pieces every family adapter shares: the chat template bound to the tokenizer's special tokens,
// and the new-token budget a prompt leaves in the model's positions.
import { ChatTemplate } from '../chat-template.js';
import { CheckpointError, InputError } from '../errors.js';
import type { NativeGenerateRequest, NativeModelInfo } from '../native.js';
import type { ResolvedText } from '../options.js';
import type { VargptTokenizer } from '../tokenizer.js';
import type { RequestHooks } from './types.js';

// The native info of a model the runtime loaded as `family`; config.json and the native registry
// name the family separately, so they must agree.
export function loadedAs<F extends NativeModelInfo['family']>(info: NativeModelInfo, family: F, dir: string): Extract<NativeModelInfo, { family: F }> {
  if (info.family !== family) {
    throw new CheckpointError(`${dir}: config.json is a ${family} checkpoint, but the runtime loaded it as "${String(info.family)}"`);
  }
  return info as Extract<NativeModelInfo, { family: F }>;
}

export function chatTemplateFor(source: string, tokenizer: VargptTokenizer): ChatTemplate {
  const s = tokenizer.specialTokens;
  return new ChatTemplate(source, {
    image: s.image?.text ?? null,
    imageGenStart: s.imageGenStart?.text ?? null,
    imageGenEnd: s.imageGenEnd?.text ?? null,
  });
}

// New tokens a call may generate: what the caller asked for (null: the default, shrunk to fit), in
// the room `maxPositions` leaves after the prompt and `reserved` positions (an image to draw).
export function newTokenBudget(what: string, promptTokens: number, maxPositions: number, requested: number | null, defaultMax: number, reserved = 0): number {
  const room = maxPositions - promptTokens - reserved;
  if (room < 1) {
    throw new InputError(
      `${what}: the prompt has ${promptTokens} tokens, which leaves no room in the model's ${maxPositions} positions` +
        (reserved ? ` (an image needs ${reserved})` : ''),
    );
  }
  if (requested === null) return Math.min(defaultMax, room);
  if (requested > room) {
    throw new InputError(`${what}: maxNewTokens ${requested} does not fit: the prompt has ${promptTokens} tokens and the model ${maxPositions} positions, so at most ${room}`);
  }
  return requested;
}

// The new-token budget of a turn that may draw: a forced image needs only its start token (and
// `imagePositions` for the image itself); otherwise newTokenBudget with the image's room reserved.
export function turnBudget(
  what: string,
  promptTokens: number,
  maxPositions: number,
  forceImage: boolean,
  imagePositions: number,
  requested: number | null,
  defaultMax: number,
): number {
  if (forceImage) {
    if (promptTokens + imagePositions > maxPositions) {
      throw new InputError(`${what}: the prompt has ${promptTokens} tokens; with the ${imagePositions} positions an image takes, that exceeds the model's ${maxPositions}`);
    }
    return 1;
  }
  return newTokenBudget(what, promptTokens, maxPositions, requested, defaultMax, imagePositions);
}

// The fields of a native request every family fills the same way: text sampling, stops, cache
// precision, trace and profile flags, and the call's hooks.
export function commonRequestFields(
  text: ResolvedText,
  stopIds: number[],
  kvCache: 'f32' | 'bf16',
  flags: { trace: boolean; profile: boolean },
  hooks: RequestHooks,
): Omit<NativeGenerateRequest, 'inputIds' | 'maxNewTokens'> {
  return {
    temperature: text.temperature,
    topK: text.topK,
    topP: text.topP,
    repetitionPenalty: text.repetitionPenalty,
    seed: text.seed,
    stopIds,
    kvCache,
    trace: flags.trace,
    profile: flags.profile,
    cancel: hooks.cancel,
    onToken: hooks.onToken,
    onImageProgress: hooks.onImageProgress,
  };
}
