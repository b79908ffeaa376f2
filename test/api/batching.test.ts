// Continuous batching (loadModel maxBatch, lib/queue.ts, the native stepTurns): concurrent calls
// decode together, one forward pass per token, joining and leaving between steps, and each call
// returns exactly what it returns alone (maxBatch 1 runs every call through generate()): the same
// tokens and, bit for bit, the same traced logits, because the GEMM computes each of up to 8 rows as
// it computes one row alone. Checked on every family's fixture, with greedy and seeded sampling,
// calls that join a running batch, a call that draws in the middle of one, an abort, a failure
// and dispose; and calls start in the order they were made, whatever their images cost to decode.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../lib/index.js';
import type { ChatReply, VargptModel } from '../../lib/index.js';
import type { ChatOptions } from '../../lib/options.js';
import { blip3oModelDir, tinyModelDir, v11ModelDir } from '../helpers/paths.js';

const PROMPTS = ['Tell me a story about a cat.', 'What is two plus two?', 'Describe the sea.', 'hello there', 'a b c d e', 'why?', 'List colours.', 'Count to ten.'];

function options(i: number): ChatOptions {
  return { maxNewTokens: 12 + 3 * i, temperature: i % 2 ? 0.9 : 0, topK: i % 3 === 0 ? 0 : 20, seed: 40 + i, trace: true };
}

// Token ids and every traced tensor, exactly.
function expectSame(batched: ChatReply, alone: ChatReply, what: string): void {
  expect(Array.from(batched.tokens), `${what}: tokens`).toEqual(Array.from(alone.tokens));
  expect(batched.stopReason, `${what}: stop reason`).toBe(alone.stopReason);
  const names = Object.keys(alone.trace ?? {});
  expect(Object.keys(batched.trace ?? {}).sort(), `${what}: traced names`).toEqual([...names].sort());
  for (const name of names) {
    const a = alone.trace![name]!, b = batched.trace![name]!;
    expect(b.shape, `${what}: ${name} shape`).toEqual(a.shape);
    expect(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength).equals(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength)), `${what}: ${name} bits`).toBe(true);
  }
}

const FAMILIES = [
  ['vargpt-v1', tinyModelDir],
  ['vargpt-v1.1', v11ModelDir],
  ['blip3o', blip3oModelDir],
] as const;

describe.each(FAMILIES)('continuous batching: %s', (family, dir) => {
  let alone: VargptModel;
  let batched: VargptModel;
  const reference: ChatReply[] = [];

  beforeAll(async () => {
    alone = await loadModel(dir, { device: 'cpu', maxBatch: 1 });
    batched = await loadModel(dir, { device: 'cpu' });
    for (let i = 0; i < PROMPTS.length; i++) reference.push(await alone.chat([{ role: 'user', content: PROMPTS[i]! }], options(i)));
  });

  afterAll(async () => {
    await alone.dispose();
    await batched.dispose();
  });

  it('8 concurrent calls decode together and each returns what it returns alone', async () => {
    expect(batched.maxBatch).toBe(8);
    expect(alone.maxBatch).toBe(1);
    // Each call streams its own tokens, in order, whatever the others do.
    const streamed: string[] = PROMPTS.map(() => '');
    const replies = await Promise.all(
      PROMPTS.map((p, i) => batched.chat([{ role: 'user', content: p }], { ...options(i), onToken: (delta) => (streamed[i] += delta) })),
    );
    replies.forEach((r, i) => {
      expectSame(r, reference[i]!, `${family} call ${i}`);
      expect(streamed[i]).toBe(r.text);
    });
  });

  it('calls join a running batch between steps and leave it when they end', async () => {
    // The first call is decoding when the others arrive, one after its 3rd token, one after its 6th.
    let tokens = 0;
    const late: Array<Promise<ChatReply>> = [];
    const first = batched.chat([{ role: 'user', content: PROMPTS[7]! }], {
      ...options(7),
      onToken: () => {
        tokens++;
        if (tokens === 3) late.push(batched.chat([{ role: 'user', content: PROMPTS[2]! }], options(2)));
        if (tokens === 6) late.push(batched.chat([{ role: 'user', content: PROMPTS[5]! }], options(5)));
      },
    });
    expectSame(await first, reference[7]!, `${family} first`);
    expect(late).toHaveLength(2);
    const [second, third] = await Promise.all(late);
    expectSame(second!, reference[2]!, `${family} joined after 3 tokens`);
    expectSame(third!, reference[5]!, `${family} joined after 6 tokens`);
  });

  it('an aborted call leaves the batch with an AbortError; the others finish unchanged', async () => {
    const controller = new AbortController();
    let seen = 0;
    const calls = PROMPTS.slice(0, 4).map((p, i) =>
      batched.chat([{ role: 'user', content: p }], {
        ...options(i),
        signal: i === 1 ? controller.signal : undefined,
        onToken: i === 1 ? () => (++seen === 2 ? controller.abort() : undefined) : undefined,
      }),
    );
    const settled = await Promise.allSettled(calls);
    expect(settled[1]!.status).toBe('rejected');
    expect((settled[1] as PromiseRejectedResult).reason).toMatchObject({ name: 'AbortError' });
    for (const i of [0, 2, 3]) {
      expect(settled[i]!.status).toBe('fulfilled');
      expectSame((settled[i] as PromiseFulfilledResult<ChatReply>).value, reference[i]!, `${family} call ${i} beside the aborted one`);
    }
  });

  it('a call that fails to start (bad options) fails alone; a callback that throws fails only its own call', async () => {
    // Longer than the model's positions allow: the prompt (VARGPT v1's 4096) or prompt + budget.
    const tooLong = 'word '.repeat(5000);
    const maxPositions = batched.info.llm.maxPositions;
    const calls = [
      batched.chat([{ role: 'user', content: PROMPTS[0]! }], options(0)),
      batched.chat([{ role: 'user', content: tooLong }], { maxNewTokens: maxPositions }),
      batched.chat([{ role: 'user', content: PROMPTS[3]! }], {
        ...options(3),
        onToken: () => {
          throw new Error('callback broke');
        },
      }),
      batched.chat([{ role: 'user', content: PROMPTS[4]! }], options(4)),
    ];
    const settled = await Promise.allSettled(calls);
    expect(settled[1]!.status).toBe('rejected');
    expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/max_position_embeddings|too long|tokens/);
    expect(settled[2]!.status).toBe('rejected');
    expect(String((settled[2] as PromiseRejectedResult).reason)).toMatch(/callback broke/);
    expectSame((settled[0] as PromiseFulfilledResult<ChatReply>).value, reference[0]!, `${family} call 0`);
    expectSame((settled[3] as PromiseFulfilledResult<ChatReply>).value, reference[4]!, `${family} call 4`);
  });
});

describe('continuous batching: drawing, order and dispose', () => {
  it('a drawing started among decoding calls runs on its own between steps; everyone gets what they get alone', async () => {
    const alone = await loadModel(tinyModelDir, { device: 'cpu', maxBatch: 1 });
    const batched = await loadModel(tinyModelDir, { device: 'cpu' });
    try {
      const image = { seed: 5, trace: true } as const;
      const refImage = await alone.generateImage('a red square', image);
      const refChats = [];
      for (const i of [0, 1, 2]) refChats.push(await alone.chat([{ role: 'user', content: PROMPTS[i]! }], options(i)));
      const chats = [0, 1].map((i) => batched.chat([{ role: 'user', content: PROMPTS[i]! }], options(i)));
      const drawn = batched.generateImage('a red square', image);
      const after = batched.chat([{ role: 'user', content: PROMPTS[2]! }], options(2));
      const [c0, c1, img, c2] = await Promise.all([...chats, drawn, after]);
      expectSame(c0!, refChats[0]!, 'chat 0');
      expectSame(c1!, refChats[1]!, 'chat 1');
      expectSame(c2 as ChatReply, refChats[2]!, 'chat 2');
      expect(Buffer.from((img as typeof refImage).image.data).equals(Buffer.from(refImage.image.data))).toBe(true);
    } finally {
      await alone.dispose();
      await batched.dispose();
    }
  });

  it('calls start in the order they were made, even when an earlier call has a larger image to decode', async () => {
    const model = await loadModel(tinyModelDir, { device: 'cpu' });
    try {
      const started: string[] = [];
      const big = { width: 2048, height: 1536, data: new Uint8Array(2048 * 1536 * 3).map((_, i) => (i * 7) % 251) };
      const small = { width: 16, height: 16, data: new Uint8Array(16 * 16 * 3).fill(90) };
      const calls = [
        model.ask(big, 'what is this?', { maxNewTokens: 3, onStart: () => started.push('big image') }),
        model.chat([{ role: 'user', content: 'hi' }], { maxNewTokens: 3, onStart: () => started.push('text') }),
        model.ask(small, 'and this?', { maxNewTokens: 3, onStart: () => started.push('small image') }),
        model.encodeImageTokens(small).then(() => started.push('image tokens')),
        model.chat([{ role: 'user', content: 'bye' }], { maxNewTokens: 3, onStart: () => started.push('last text') }),
      ];
      await Promise.all(calls);
      expect(started).toEqual(['big image', 'text', 'small image', 'image tokens', 'last text']);
    } finally {
      await model.dispose();
    }
  });

  it('dispose() during a batch rejects every call with a DisposedError and frees the model', async () => {
    const model = await loadModel(tinyModelDir, { device: 'cpu' });
    let tokens = 0;
    const calls = PROMPTS.slice(0, 4).map((p) =>
      model.chat([{ role: 'user', content: p }], { maxNewTokens: 200, onToken: () => void tokens++ }),
    );
    const waiting = model.chat([{ role: 'user', content: 'later' }], { maxNewTokens: 200 });
    while (tokens < 4) await new Promise((resolve) => setTimeout(resolve, 1));
    // Handlers go on before dispose(): the calls reject while it runs, and a rejection nobody
    // handles yet is reported as unhandled.
    const settling = Promise.allSettled([...calls, waiting]);
    await model.dispose();
    const settled = await settling;
    for (const s of settled) {
      // A call may have ended on its own before dispose reached it; none is left hanging.
      if (s.status === 'rejected') expect(s.reason).toMatchObject({ name: 'DisposedError' });
    }
    expect(settled.some((s) => s.status === 'rejected')).toBe(true);
    await expect(model.chat([{ role: 'user', content: 'x' }])).rejects.toMatchObject({ name: 'DisposedError' });
  });

  it('maxBatch is checked', async () => {
    await expect(loadModel(tinyModelDir, { maxBatch: 0 })).rejects.toThrow(/maxBatch must be an integer in 1\.\.8/);
    await expect(loadModel(tinyModelDir, { maxBatch: 9 })).rejects.toThrow(/maxBatch/);
    await expect(loadModel(tinyModelDir, { maxBatch: 2.5 })).rejects.toThrow(/maxBatch/);
  });
});
