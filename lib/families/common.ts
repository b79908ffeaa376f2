// Pieces every family adapter shares: the chat template bound to the tokenizer's special tokens,
// and the new-token budget a prompt leaves in the model's positions.
import { ChatTemplate } from '../chat-template.js';
import { InputError } from '../errors.js';
import type { VargptTokenizer } from '../tokenizer.js';

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
