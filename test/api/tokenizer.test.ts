import path from 'node:path';

import llama from 'llama-tokenizer-js';
import { beforeAll, describe, expect, it } from 'vitest';

import { VargptTokenizer } from '../../lib/tokenizer.js';
import { asNumbers, fixtureExpected, fixtureModel, readJson, readSafetensors } from '../helpers/fixtures.js';

interface Understanding {
  prompt: string;
  generated_ids: number[];
  generated_text: string;
}

// The reference path: llama-tokenizer-js is a separate BPE implementation (its own merge loop,
// its own byte fallback) carrying the Llama-2 vocabulary and merge list in its own encoding. It
// knows nothing about added tokens, so the reference splits the text on the added-token strings
// first and encodes every other segment with a leading space -- what tokenizer.json's
// Prepend('▁') normalizer does to each segment between added tokens -- then prepends BOS.
// Agreement therefore checks the BPE merges, byte fallback, space handling and the added-token
// split of @huggingface/tokenizers, not a copy of itself.
const ADDED = ['<unk>', '<s>', '</s>', '<image>', '<pad>', '<|image_gen_start|>', '<|image_gen_end|>', '<|image_gen_pad|>'];

function referenceEncode(tok: VargptTokenizer, text: string): number[] {
  const ids = [tok.specialTokens.bos!.id];
  const pattern = new RegExp(`(${ADDED.map((s) => s.replace(/[|]/g, '\\|')).join('|')})`);
  for (const part of text.split(pattern)) {
    if (part === '') continue;
    if (ADDED.includes(part)) ids.push(tok.tokenToId(part) as number);
    else ids.push(...llama.encode(part, false, true));
  }
  return ids;
}

const SAMPLES = [
  '',
  ' ',
  '   ',
  'Hello world',
  'Hello, world! How are you today?',
  '   leading spaces',
  'trailing spaces   ',
  'a  b   c    d',
  'tabs\tand\nnew\nlines\r\nand\r\rreturns',
  '\n\n\n',
  'What is shown in this image?',
  'Please design a drawing of a butterfly on a flower.',
  'Ünïcödé àccénts ñ ß Æ œ',
  'Привет, мир! Как дела?',
  'مرحبا بالعالم',
  '日本語のテキストと中文字符，还有한국어。',
  '龘靐齉 rare CJK that falls back to bytes',
  'emoji 😀 👍🏽 👨‍👩‍👧 🏳️‍🌈 and text',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters',
  'combining e\u0301 vs é, zero\u200bwidth',
  'null \u0000 and bell \u0007 control chars',
  '1234567890 3.14159 -42 1e10',
  'function f(x) { return x * 2; } // code',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'USER: <image>\nWhat is shown in this image? ASSISTANT:',
  '<s>literal bos and eos</s>',
  'x<image><image>y',
  '<image>',
  'before <|image_gen_start|><|image_gen_pad|><|image_gen_end|> after',
  '<unk><pad>',
  'not special: <image  > <|image_gen|> </ s>',
];

describe('tokenizer (fixture tokenizer.json via @huggingface/tokenizers)', () => {
  let tok: VargptTokenizer;
  beforeAll(async () => {
    tok = await VargptTokenizer.fromDir(fixtureModel);
  });

  it('reads every special token and its id from the checkpoint files', () => {
    const s = tok.specialTokens;
    expect([s.bos?.text, s.bos?.id]).toEqual(['<s>', 1]);
    expect([s.eos.text, s.eos.id]).toEqual(['</s>', 2]);
    expect([s.unk?.text, s.unk?.id]).toEqual(['<unk>', 0]);
    expect([s.pad?.text, s.pad?.id]).toEqual(['<pad>', 32001]);
    expect([s.image?.text, s.image?.id]).toEqual(['<image>', 32000]);
    expect([s.imageGenStart?.text, s.imageGenStart?.id]).toEqual(['<|image_gen_start|>', 32002]);
    expect([s.imageGenEnd?.text, s.imageGenEnd?.id]).toEqual(['<|image_gen_end|>', 32003]);
    expect([s.imageGenPad?.text, s.imageGenPad?.id]).toEqual(['<|image_gen_pad|>', 32004]);
    expect(tok.size).toBe(32005);
  });

  it('reproduces the fixture input_ids exactly (595 ids, 29871 after each special token)', () => {
    const u = readJson<Understanding>(path.join(fixtureExpected, 'understanding.json'));
    const expected = asNumbers(readSafetensors(path.join(fixtureExpected, 'understanding.safetensors')).get('input_ids')!);
    const ids = tok.encode(u.prompt.replace('<image>', '<image>'.repeat(576)));
    expect(ids.length).toBe(595);
    expect(ids).toEqual(expected);
    // The verbatim-tokenizer.json detail the fixture README calls out.
    const last = ids.lastIndexOf(32000);
    expect(ids.slice(last, last + 3)).toEqual([32000, 29871, 13]);
  });

  it('decodes the fixture generated ids to the fixture text', () => {
    const u = readJson<Understanding>(path.join(fixtureExpected, 'understanding.json'));
    expect(tok.decode(u.generated_ids)).toBe(u.generated_text);
  });

  it('matches the independent llama-tokenizer-js reference on a varied string set', () => {
    for (const text of SAMPLES) {
      expect({ text, ids: tok.encode(text) }).toEqual({ text, ids: referenceEncode(tok, text) });
    }
  });

  it('round-trips plain text through decode', () => {
    for (const text of SAMPLES) {
      if (ADDED.some((s) => text.includes(s))) continue;
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('skips special tokens when decoding unless asked not to', () => {
    const ids = tok.encode('a<|image_gen_start|>b');
    expect(ids).toEqual([1, 263, 32002, 289]); // "▁b" after the special token
    expect(tok.decode(ids)).toBe('a b');
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe('<s> a<|image_gen_start|> b');
    expect(tok.encode('hi', { addSpecialTokens: false })).toEqual([7251]);
  });

  it('ignores ids past the tokenizer (unused embedding rows) and rejects bad ids', () => {
    expect(tok.decode([22172, 32050, 3186])).toBe('hello world');
    expect(() => tok.decode([1.5])).toThrow(/not a non-negative integer/);
    expect(() => tok.decode([-1])).toThrow(/not a non-negative integer/);
  });

  it('decodes a batch of sequences as decode() does each, with the same checks', () => {
    const sequences = [...SAMPLES.map((text) => tok.encode(text)), [], [22172, 32050, 3186]];
    for (const skipSpecialTokens of [true, false]) {
      expect(tok.decodeBatch(sequences, { skipSpecialTokens })).toEqual(sequences.map((ids) => tok.decode(ids, { skipSpecialTokens })));
    }
    expect(tok.decodeBatch([])).toEqual([]);
    expect(tok.decodeBatch([[], [32050]])).toEqual(['', '']);
    expect(() => tok.decodeBatch([[1], [2.5]])).toThrow(/decodeBatch: token id 2.5 is not a non-negative integer/);
  });

  it('streams text deltas that add up to the full decode, holding back partial UTF-8', () => {
    for (const text of SAMPLES) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      const stream = tok.createStreamDecoder();
      let out = '';
      for (const id of ids) {
        const delta = stream.push(id);
        expect(delta.includes('\uFFFD')).toBe(false);
        out += delta;
      }
      out += stream.flush();
      expect(out).toBe(tok.decode(ids));
    }
  });

  it('emits an emoji only once all its byte tokens arrived', () => {
    const ids = tok.encode('😀', { addSpecialTokens: false });
    expect(ids.length).toBeGreaterThan(2); // '▁' + 4 byte-fallback tokens
    const stream = tok.createStreamDecoder();
    const deltas = ids.map((id) => stream.push(id));
    expect(deltas.slice(0, -1).join('')).toBe('');
    expect(deltas[deltas.length - 1]).toBe('😀');
  });
});
