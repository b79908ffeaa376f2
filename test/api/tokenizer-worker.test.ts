// loadModel builds the tokenizer in a worker thread (lib/tokenizer-engine.ts) and answers its
// synchronous calls by round trips to it. Checked here, with the worker and without it
// (VARGPT_TOKENIZER_WORKER=0, the path taken where no worker can run): every call gives what the
// same tokenizer built by fromDir gives (Qwen2's 151k-token vocabulary, the VARGPT-v1.1 fixture), a
// broken tokenizer.json is reported the same way, calls after dispose throw; and with the worker,
// the event loop keeps turning while the model loads.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

import { CheckpointError, loadModel } from '../../lib/index.js';
import { VargptTokenizer } from '../../lib/tokenizer.js';
import { v11ModelDir } from '../helpers/paths.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'vargpt-tokenizer-worker-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const TEXTS = [
  'Please draw a red circle on a white background.',
  'Describe this image.\nWhat colour is the square?  Multiple   spaces, tabs\tand "quotes".',
  'Unicode: café, naïve, 東京, emoji 🦋🌸, and combining e\u0301.',
  '<|im_start|>user\nhello<|im_end|>\n<|image_gen_start|>',
  '',
];

// The longest time between two turns of a 1 ms timer while `work` runs.
async function longestGap(work: () => Promise<void>): Promise<number> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(worst, performance.now() - last);
}

describe.each([
  ['a worker thread', undefined],
  ['the calling thread (VARGPT_TOKENIZER_WORKER=0)', '0'],
] as const)('the tokenizer of a loaded model, built in %s', (_where, setting) => {
  const saved = process.env['VARGPT_TOKENIZER_WORKER'];
  beforeEach(() => {
    if (setting === undefined) delete process.env['VARGPT_TOKENIZER_WORKER'];
    else process.env['VARGPT_TOKENIZER_WORKER'] = setting;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env['VARGPT_TOKENIZER_WORKER'];
    else process.env['VARGPT_TOKENIZER_WORKER'] = saved;
  });

  it('answers every call as the same tokenizer built on this thread does', async () => {
    const local = await VargptTokenizer.fromDir(v11ModelDir);
    const model = await loadModel(v11ModelDir);
    try {
      const tok = model.tokenizer;
      expect(tok.size).toBe(local.size);
      expect(tok.specialTokens).toEqual(local.specialTokens);
      for (const text of TEXTS) {
        for (const addSpecialTokens of [true, false]) {
          const ids = tok.encode(text, { addSpecialTokens });
          expect(ids).toEqual(local.encode(text, { addSpecialTokens }));
          expect(tok.tokenize(text, { addSpecialTokens })).toEqual(local.tokenize(text, { addSpecialTokens }));
          for (const skipSpecialTokens of [true, false]) expect(tok.decode(ids, { skipSpecialTokens })).toBe(local.decode(ids, { skipSpecialTokens }));
        }
      }
      const sequences = TEXTS.map((text) => local.encode(text));
      expect(tok.decodeBatch(sequences)).toEqual(sequences.map((ids) => local.decode(ids)));
      expect(tok.decodeBatch(sequences, { skipSpecialTokens: false })).toEqual(local.decodeBatch(sequences, { skipSpecialTokens: false }));
      for (const id of [0, 1, 100, 151643, 151644, 151659, local.size - 1, local.size + 5]) {
        expect(tok.idToToken(id)).toBe(local.idToToken(id));
        expect(tok.isSpecial(id)).toBe(local.isSpecial(id));
      }
      for (const token of ['hello', 'Ġworld', '<|im_end|>', 'no-such-token-here']) expect(tok.tokenToId(token)).toBe(local.tokenToId(token));
      // Streaming decode goes through the same calls, token by token.
      const ids = local.encode(TEXTS[2]!, { addSpecialTokens: false });
      const stream = tok.createStreamDecoder();
      let text = '';
      for (const id of ids) text += stream.push(id);
      text += stream.flush();
      expect(text).toBe(local.decode(ids));
      expect(local.decode(ids)).toContain('🦋');
    } finally {
      await model.dispose();
    }
    expect(() => model.tokenizer.encode('after dispose')).toThrow(/disposed/);
  });

  it('reports a tokenizer.json that is not JSON, not an object or not a tokenizer, as a CheckpointError naming it', async () => {
    const cases: [string, RegExp][] = [
      ['{"model": {"type": "BPE", "vocab": {', /tokenizer .*tokenizer\.json is not valid JSON/],
      ['[1, 2, 3]', /tokenizer .*tokenizer\.json must hold a JSON object/],
      ['{"model": {"type": "NoSuchModel"}}', /tokenizer\.json could not be loaded/],
    ];
    for (const [i, [content, message]] of cases.entries()) {
      const dir = path.join(scratch, `broken-${setting ?? 'worker'}-${i}`);
      cpSync(v11ModelDir, dir, { recursive: true });
      writeFileSync(path.join(dir, 'tokenizer.json'), content);
      const error = await loadModel(dir).catch((e: unknown) => e);
      expect(error, content).toBeInstanceOf(CheckpointError);
      expect((error as Error).message).toMatch(message);
    }
  });
});

describe('loading a model', () => {
  // Before the worker, parsing tokenizer.json and building the tables held the event loop for
  // 293 ms on a quiet 2-core EPYC (980 ms with a second job running); with it, about 10 ms.
  // The bound sits between the two with room for a slow or busy machine.
  it('keeps the event loop turning while a model with a 151k-token vocabulary loads', async () => {
    let model: Awaited<ReturnType<typeof loadModel>> | undefined;
    const gap = await longestGap(async () => {
      model = await loadModel(v11ModelDir);
    });
    await model!.dispose();
    expect(gap).toBeLessThan(200);
  });
});
