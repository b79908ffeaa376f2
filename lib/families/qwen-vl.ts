// What the Qwen-VL families (VARGPT-v1.1, BLIP3-o) share on the TypeScript side: a Qwen2-VL /
// Qwen2.5-VL processor step (each image preprocessed at its own resolution, its placeholder
// expanded to its merged-patch count), the stop ids, and the checks that config.json, the
// tokenizer files and the loaded tensors agree.
import path from 'node:path';

import type { ChatTemplate } from '../chat-template.js';
import type { JsonObject } from '../checkpoint-config.js';
import { CHECKPOINT_FILES } from '../checkpoint-config.js';
import { CheckpointError, InputError, throwIfAborted } from '../errors.js';
import type { RgbImage } from '../image.js';
import type { NativeQwen2VlVisionInfo } from '../native.js';
import type { Qwen2VlImageConfig } from '../qwen2-vl-image.js';
import { qwen2VlPixels } from '../qwen2-vl-image.js';
import type { VargptTokenizer } from '../tokenizer.js';
import type { ChatMessage } from '../types.js';
import type { ReadImage } from './types.js';

// The native info a Qwen-VL family reports about its reader.
export interface QwenVlNativeInfo {
  llm: { vocabSize: number };
  vision: NativeQwen2VlVisionInfo | null;
  eosIds: number[];
  imageTokenId: number;
}

// The images of a prompt, preprocessed: one [patches, 1176] block and one (t, h, w) grid each.
export interface PreparedImages {
  pixelValues: Float32Array[];
  grids: Int32Array;
  tokens: number[]; // image-pad tokens per image
}

function ids(value: unknown, where: string): number[] {
  const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw new CheckpointError(`${where} must be a token id or a list of them`);
  }
  return list as number[];
}

// Text ends on every id the checkpoint calls EOS (config.json, generation_config.json, the
// tokenizer's eos_token) and on <|endoftext|>, Qwen's end of document.
export function qwenVlStopIds(info: QwenVlNativeInfo, tokenizer: VargptTokenizer, generationConfig: JsonObject | null, dir: string): number[] {
  const stops = new Set<number>([...info.eosIds, tokenizer.specialTokens.eos.id]);
  if (generationConfig) {
    for (const id of ids(generationConfig['eos_token_id'], `${path.join(dir, CHECKPOINT_FILES.generationConfig)}: "eos_token_id"`)) stops.add(id);
  }
  const endOfText = tokenizer.tokenToId('<|endoftext|>');
  if (endOfText !== undefined) stops.add(endOfText);
  return [...stops].sort((a, b) => a - b);
}

// config.json, the tokenizer files and the tensors were read by separate loaders; they must agree.
// preprocessor_config.json must cut patches as config.json's vision tower reads them.
export function checkQwenVlProcessor(
  vision: { patchSize: number; mergeSize: number; temporalPatchSize: number },
  p: Qwen2VlImageConfig,
  file: string,
): void {
  if (p.patchSize !== vision.patchSize || p.mergeSize !== vision.mergeSize || p.temporalPatchSize !== vision.temporalPatchSize) {
    throw new CheckpointError(
      `${file}: patch ${p.patchSize}, merge ${p.mergeSize}, temporal patch ${p.temporalPatchSize} differ from config.json vision_config (${vision.patchSize}, ${vision.mergeSize}, ${vision.temporalPatchSize})`,
    );
  }
}

export function checkQwenVlAgreement(info: QwenVlNativeInfo, tokenizer: VargptTokenizer, dir: string, hasVisionConfig: boolean): void {
  const s = tokenizer.specialTokens;
  if (!info.eosIds.includes(s.eos.id)) {
    throw new CheckpointError(`${dir}: the tokenizer's eos_token "${s.eos.text}" (${s.eos.id}) is not among config.json's eos_token_id ${JSON.stringify(info.eosIds)}`);
  }
  if (info.vision) {
    if (!s.image) throw new CheckpointError(`${dir}: the checkpoint has a vision tower but the tokenizer has no image token (config.json image_token_id)`);
    if (s.image.id !== info.imageTokenId) throw new CheckpointError(`${dir}: the image token is ${s.image.id} in the tokenizer files but ${info.imageTokenId} in config.json`);
    if (!hasVisionConfig) throw new CheckpointError(`${dir}: the checkpoint has visual.* tensors but config.json has no vision_config`);
  }
  if (tokenizer.size > info.llm.vocabSize) {
    throw new CheckpointError(`${dir}: the tokenizer has ${tokenizer.size} tokens, the embedding only ${info.llm.vocabSize} rows`);
  }
}

// The Qwen2-VL processor step: the i-th placeholder becomes counts[i] placeholders (the image's
// merged patches), after checking the template wrote exactly one per image.
export function expandEachPlaceholder(prompt: string, placeholder: string, counts: readonly number[]): string {
  const pieces = prompt.split(placeholder);
  if (pieces.length - 1 !== counts.length) {
    throw new InputError(`the prompt holds ${pieces.length - 1} image placeholder(s) "${placeholder}" but ${counts.length} image(s) were given`);
  }
  let out = pieces[0]!;
  counts.forEach((n, i) => {
    if (!Number.isSafeInteger(n) || n < 1) throw new InputError(`invalid image token count ${n}`);
    out += placeholder.repeat(n) + pieces[i + 1]!;
  });
  return out;
}

export interface QwenVlPromptRequest {
  what: string;
  messages: readonly ChatMessage[];
  template: ChatTemplate;
  tokenizer: VargptTokenizer;
  vision: NativeQwen2VlVisionInfo | null;
  processor: Qwen2VlImageConfig | null;
  dir: string;
  // Applied to the i-th image after decoding (VARGPT-v1.1's edit-source pre-shrink).
  adjust?: (image: RgbImage, index: number) => Promise<RgbImage>;
}

// Template, images and tokens: everything before the native call, checked.
export async function qwenVlPrompt(
  r: QwenVlPromptRequest,
  readImage: ReadImage,
  signal: AbortSignal | undefined,
): Promise<{ inputIds: Int32Array; images: PreparedImages }> {
  const { prompt, images } = r.template.render(r.messages);
  const prepared: PreparedImages = { pixelValues: [], grids: new Int32Array(3 * images.length), tokens: [] };
  if (images.length > 0 && (!r.vision || !r.processor)) {
    throw new InputError(`${r.what}: this model has no vision tower (no visual.* weights), so it cannot read images; send text only`);
  }
  let expanded = prompt;
  if (r.vision && r.processor && images.length > 0) {
    const merge = r.vision.mergeSize * r.vision.mergeSize;
    for (const [i, input] of images.entries()) {
      let rgb = await readImage(input, `image ${i + 1}`);
      if (r.adjust) rgb = await r.adjust(rgb, i);
      let px;
      try {
        px = await qwen2VlPixels(rgb, r.processor);
      } catch (error) {
        if (error instanceof InputError) throw new InputError(`${r.what}: image ${i + 1}: ${error.message}`);
        throw error;
      }
      prepared.pixelValues.push(px.patches);
      prepared.grids.set([px.grid.t, px.grid.h, px.grid.w], 3 * i);
      prepared.tokens.push((px.grid.t * px.grid.h * px.grid.w) / merge);
      throwIfAborted(signal, r.what);
    }
    const placeholder = r.tokenizer.specialTokens.image?.text;
    if (!placeholder) throw new CheckpointError(`${r.dir}: no image placeholder token`);
    expanded = expandEachPlaceholder(prompt, placeholder, prepared.tokens);
  }
  return { inputIds: Int32Array.from(r.tokenizer.encode(expanded)), images: prepared };
}
