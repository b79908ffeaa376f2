// The checkpoint's own tokenizer: tokenizer.json (+ tokenizer_config.json) run by
// @huggingface/tokenizers, which applies the normalizer, pre-tokenizer and post-processor exactly
// as written in the file. That matters for Llama: tokenizer.json prepends '▁' to every text
// segment between added tokens, so '▁' (29871) follows each special token ("<image>\n" ->
// 32000, 29871, 13). transformers' "legacy: false" LlamaTokenizer re-derives a different
// pre-tokenizer and drops that id; upstream VARGPT (transformers 4.46, LlamaTokenizerFast) kept it,
// and so do we, by never re-deriving anything from tokenizer_config.json's "legacy" flag.
import path from 'node:path';

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

import type { JsonObject, ProcessorConfig } from './checkpoint-config.js';
import { invalidJsonError, isObject, parseJsonObject, parseProcessorConfig, readJsonFile, readOptionalJsonFile, readTextFile } from './checkpoint-config.js';
import { CheckpointError, InputError } from './errors.js';
import { familyFor } from './families/registry.js';
import { LocalEngine, type TokenizerEngine, TokenizerBuildError, type TokenizerTables, WorkerEngine } from './tokenizer-engine.js';

function unusableTokenizer(message: string): CheckpointError {
  return new CheckpointError(`tokenizer.json could not be loaded: ${message}`);
}

export interface SpecialToken {
  text: string;
  id: number;
}

export interface SpecialTokens {
  // null where the tokenizer has none (Qwen2: prompts start without a BOS token).
  bos: SpecialToken | null;
  eos: SpecialToken;
  unk: SpecialToken | null;
  pad: SpecialToken | null;
  // The understanding placeholder ("<image>"), expanded by the processor to one id per patch.
  image: SpecialToken | null;
  imageGenStart: SpecialToken | null;
  imageGenEnd: SpecialToken | null;
  imageGenPad: SpecialToken | null;
}

export interface EncodeOptions {
  // Adds what the post-processor adds (BOS for Llama). Default true, as the upstream processor.
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  // Default true: generated text never shows "</s>" or "<|image_gen_start|>".
  skipSpecialTokens?: boolean;
}

// What config.json says about special tokens (each family's adapter reads it: tokenConfig()).
export interface TokenConfig {
  // The id of the understanding placeholder; null when config.json has none.
  imageTokenIndex: number | null;
  // The strings of the image-generation special tokens, keyed as in config.special_tokens.
  specialTokens: { imageGenStart: string; imageGenEnd: string; imageGenPad: string } | null;
  specialTokenIds: { imageGenStart: number; imageGenEnd: number; imageGenPad: number } | null;
}

// Where the special-token strings come from; each is looked up in tokenizer.json for its id.
export interface SpecialTokenSources {
  tokenizerConfig: JsonObject;
  modelConfig?: TokenConfig | null;
  processorConfig?: ProcessorConfig | null;
}

function tokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value['content'] === 'string') return value['content'];
  return null;
}

// Largest id + 1 over tokenizer.json's vocabulary (an object of ids, or Unigram's [piece, score]
// list, ids by position) and its added tokens: the length of the tokenizer library's id -> token
// table, read from the parsed file. (Its get_vocab() gives the same answer by building a Map of the
// whole vocabulary, 151k entries for Qwen2, on the thread that serves requests.) Null for another
// layout.
function vocabularySize(json: JsonObject): number | null {
  const model = json['model'];
  if (!isObject(model)) return null;
  const vocab = model['vocab'];
  let size = 0;
  if (Array.isArray(vocab)) {
    size = vocab.length;
  } else if (isObject(vocab)) {
    let entries = 0;
    for (const token in vocab) {
      const id = vocab[token];
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) return null;
      if (id >= size) size = id + 1;
      entries++;
    }
    size = Math.max(size, entries);
  } else {
    return null;
  }
  const added = json['added_tokens'];
  if (Array.isArray(added)) {
    for (const token of added) {
      const id = isObject(token) ? token['id'] : undefined;
      if (typeof id === 'number' && Number.isInteger(id) && id >= size) size = id + 1;
    }
  }
  return size;
}

export class VargptTokenizer {
  readonly specialTokens: SpecialTokens;
  // Largest id + 1 over the vocabulary and the added tokens (32005 for VARGPT v1; the embedding
  // matrix has more rows, 32064, which the tokenizer never produces).
  readonly size: number;
  private readonly engine: TokenizerEngine;
  private readonly specialIds: ReadonlySet<number>;

  private constructor(engine: TokenizerEngine, specialTokens: SpecialTokens, size: number, specialIds: ReadonlySet<number>) {
    this.engine = engine;
    this.specialTokens = specialTokens;
    this.size = size;
    this.specialIds = specialIds;
  }

  static async fromDir(dir: string): Promise<VargptTokenizer> {
    const [tokenizerJson, tokenizerConfig, modelConfig, processorConfig] = await Promise.all([
      readJsonFile(path.join(dir, 'tokenizer.json'), 'tokenizer'),
      readJsonFile(path.join(dir, 'tokenizer_config.json'), 'tokenizer config'),
      readOptionalJsonFile(path.join(dir, 'config.json'), 'model config'),
      readOptionalJsonFile(path.join(dir, 'processor_config.json'), 'processor config'),
    ]);
    const configFile = path.join(dir, 'config.json');
    return VargptTokenizer.fromJSON(tokenizerJson, {
      tokenizerConfig,
      modelConfig: modelConfig ? familyFor(modelConfig, configFile).tokenConfig(modelConfig, configFile) : null,
      processorConfig: processorConfig ? parseProcessorConfig(processorConfig, path.join(dir, 'processor_config.json')) : null,
    });
  }

  // Builds the tokenizer on this thread.
  static fromJSON(tokenizerJson: JsonObject, sources: SpecialTokenSources): VargptTokenizer {
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson, sources.tokenizerConfig);
    } catch (error) {
      throw unusableTokenizer((error as Error).message);
    }
    let size = vocabularySize(tokenizerJson) ?? 0;
    if (size === 0) for (const id of hf.get_vocab(true).values()) size = Math.max(size, id + 1);
    const specialIds: number[] = [];
    for (const [id, added] of hf.get_added_tokens_decoder()) if (added.special) specialIds.push(id);
    return VargptTokenizer.fromEngine(new LocalEngine(hf), { size, specialIds }, sources);
  }

  // Decodes and parses tokenizer.json (`bytes`, read from `file`; their buffer is handed to the
  // worker) and builds the tokenizer in a worker thread of its own, so the calling thread's event
  // loop keeps running (tokenizer-engine.ts); where no worker can run, on this thread. close()
  // ends the worker; loadModel's models call it when they are disposed.
  // VARGPT_TOKENIZER_WORKER=0 builds on the calling thread.
  static async load(file: string, bytes: Uint8Array, sources: SpecialTokenSources): Promise<VargptTokenizer> {
    let built: { engine: TokenizerEngine; tables: TokenizerTables };
    try {
      if (process.env['VARGPT_TOKENIZER_WORKER'] === '0') throw new Error('tokenizer worker disabled');
      built = await WorkerEngine.create(bytes, sources.tokenizerConfig);
    } catch (error) {
      if (error instanceof TokenizerBuildError) {
        if (error.kind === 'build') throw unusableTokenizer(error.message);
        throw invalidJsonError('tokenizer', file, error.kind === 'json' ? error.message : null);
      }
      // No worker. The bytes are still here unless they moved to a worker that then failed; then
      // the file is read again.
      const text = bytes.byteLength > 0 ? new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes) : await readTextFile(file, 'tokenizer');
      return VargptTokenizer.fromJSON(parseJsonObject(text, 'tokenizer', file), sources);
    }
    try {
      return VargptTokenizer.fromEngine(built.engine, built.tables, sources);
    } catch (error) {
      built.engine.close();
      throw error;
    }
  }

  private static fromEngine(engine: TokenizerEngine, tables: TokenizerTables, sources: SpecialTokenSources): VargptTokenizer {
    const lookup = (text: string | null, what: string): SpecialToken | null => {
      if (text === null) return null;
      const id = engine.tokenToId(text);
      if (id === undefined) throw new CheckpointError(`${what} "${text}" is not in tokenizer.json`);
      return { text, id };
    };
    const required = (text: string | null, what: string): SpecialToken => {
      const token = lookup(text, what);
      if (!token) throw new CheckpointError(`tokenizer_config.json names no ${what}`);
      return token;
    };
    const tc = sources.tokenizerConfig;
    const model = sources.modelConfig ?? null;

    // The image placeholder: the processor's string, else the token at config.image_token_index.
    let imageText = sources.processorConfig?.imageToken ?? null;
    const imageIndex = model?.imageTokenIndex ?? null;
    if (imageText === null && imageIndex !== null) imageText = engine.idToToken(imageIndex) ?? null;
    const image = lookup(imageText, 'image token');
    if (image && model && imageIndex !== null && image.id !== imageIndex) {
      throw new CheckpointError(`image token "${image.text}" has id ${image.id} in tokenizer.json but config.json says image_token_index ${model.imageTokenIndex}`);
    }

    const gen = model?.specialTokens ?? null;
    const genIds = model?.specialTokenIds ?? null;
    const genToken = (key: 'imageGenStart' | 'imageGenEnd' | 'imageGenPad'): SpecialToken | null => {
      const token = lookup(gen ? gen[key] : null, `config.json special token ${key}`);
      if (token && genIds && token.id !== genIds[key]) {
        throw new CheckpointError(`"${token.text}" has id ${token.id} in tokenizer.json but config.json special_tokens says ${genIds[key]}`);
      }
      return token;
    };

    const specialTokens: SpecialTokens = {
      bos: lookup(tokenText(tc['bos_token']), 'bos_token'),
      eos: required(tokenText(tc['eos_token']), 'eos_token'),
      unk: lookup(tokenText(tc['unk_token']), 'unk_token'),
      pad: lookup(tokenText(tc['pad_token']), 'pad_token'),
      image,
      imageGenStart: genToken('imageGenStart'),
      imageGenEnd: genToken('imageGenEnd'),
      imageGenPad: genToken('imageGenPad'),
    };
    return new VargptTokenizer(engine, specialTokens, tables.size, new Set(tables.specialIds));
  }

  // Frees the tokenizer's tables (and its worker thread, where it has one); later calls throw.
  close(): void {
    this.engine.close();
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new InputError(`encode: text must be a string, got ${typeof text}`);
    return this.engine.encode(text, options.addSpecialTokens ?? true);
  }

  // Token strings, for debugging and tests ("▁US", "ER", ...).
  tokenize(text: string, options: EncodeOptions = {}): string[] {
    return this.engine.tokenize(text, options.addSpecialTokens ?? true);
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const known = this.knownIds(ids, 'decode');
    if (known.length === 0) return '';
    return this.engine.decode(known, options.skipSpecialTokens ?? true);
  }

  // decode() of each sequence, in one call to the tokenizer's thread.
  decodeBatch(sequences: ReadonlyArray<ArrayLike<number>>, options: DecodeOptions = {}): string[] {
    if (!Array.isArray(sequences)) throw new InputError('decodeBatch: sequences must be an array of token id arrays');
    const known = sequences.map((ids) => this.knownIds(ids, 'decodeBatch'));
    // The library refuses an empty sequence; its text is ''.
    const texts = known.map(() => '');
    const nonEmpty = known.flatMap((ids, i) => (ids.length > 0 ? [i] : []));
    if (nonEmpty.length === 0) return texts;
    const decoded = this.engine.decodeBatch(nonEmpty.map((i) => known[i]!), options.skipSpecialTokens ?? true);
    nonEmpty.forEach((i, k) => (texts[i] = decoded[k]!));
    return texts;
  }

  // The ids that have text; ids past the tokenizer (rows 32005..32063 of the embedding) have none.
  private knownIds(ids: ArrayLike<number>, what: string): number[] {
    const list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0) throw new InputError(`${what}: token id ${id} is not a non-negative integer`);
    }
    return list.filter((id) => id < this.size);
  }

  tokenToId(token: string): number | undefined {
    return this.engine.tokenToId(token);
  }

  idToToken(id: number): string | undefined {
    return this.engine.idToToken(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  createStreamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder(this, options);
  }
}

// Turns a stream of token ids into text deltas. Decoding one token alone is wrong for Llama
// (the decoder strips a leading space; byte-fallback tokens carry partial UTF-8), so each step
// decodes a short window and emits what grew, holding back an incomplete character (U+FFFD at
// the end) until its last byte arrives -- the prefix/read-offset scheme of text-generation-inference.
export class StreamDecoder {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  private emitted = '';

  constructor(
    private readonly tokenizer: VargptTokenizer,
    private readonly options: DecodeOptions,
  ) {}

  push(id: number): string {
    this.ids.push(id);
    const [prefix, full] = this.tokenizer.decodeBatch(
      [this.ids.slice(this.prefixOffset, this.readOffset), this.ids.slice(this.prefixOffset)],
      this.options,
    ) as [string, string];
    if (full.length > prefix.length && !full.endsWith('\uFFFD') && full.startsWith(prefix)) {
      const delta = full.slice(prefix.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      this.emitted += delta;
      return delta;
    }
    return '';
  }

  // The rest of the text (a held-back partial character at the end), so that the deltas add up
  // to decode(all ids).
  flush(): string {
    const all = this.text();
    if (!all.startsWith(this.emitted)) return '';
    const rest = all.slice(this.emitted.length);
    this.emitted = all;
    return rest;
  }

  text(): string {
    return this.tokenizer.decode(this.ids, this.options);
  }
}
