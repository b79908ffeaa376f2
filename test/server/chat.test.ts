// POST /v1/chat/completions and GET /v1/models through the official openai client: text with and
// without streaming, stop sequences, an image in, an image out and back into the conversation.
import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';

import type { VargptModel } from '../../lib/model.js';
import { dataUrl, pngSize, testPng, useFixtureServer } from '../helpers/server.js';

const fx = useFixtureServer();


type Part = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } };

describe('chat completions', () => {
  it('lists the served models with their families and what they do', async () => {
    const list = await fx.client.models.list();
    const ids = list.data.map((m) => m.id);
    expect(ids).toEqual(['v1', 'v11', 'b3']);
    const v11 = (await fx.client.models.retrieve('v11')) as unknown as { family: string; capabilities: Record<string, boolean>; default_image_size: string };
    expect(v11).toMatchObject({ family: 'vargpt-v1.1', capabilities: { image_generation: true, image_edits: true }, default_image_size: '512x512' });
  });

  it('answers as the model does, with usage, finish_reason and seeds', async () => {
    const messages = [{ role: 'user' as const, content: 'Hello there' }];
    const direct = await (fx.models['v1'] as VargptModel).chat(messages, { maxNewTokens: 6, seed: 3 });
    const r = await fx.client.chat.completions.create({ model: 'v1', messages, max_tokens: 6, seed: 3 });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe('v1');
    expect(r.choices[0]?.message.content).toBe(direct.text);
    expect(r.choices[0]?.finish_reason).toBe('length');
    expect(r.usage).toEqual({ prompt_tokens: direct.promptTokens, completion_tokens: 6, total_tokens: direct.promptTokens + 6 });
    const again = await fx.client.chat.completions.create({ model: 'v1', messages, max_completion_tokens: 6, seed: 3, temperature: 0.8, top_p: 0.9 });
    const twice = await fx.client.chat.completions.create({ model: 'v1', messages, max_completion_tokens: 6, seed: 3, temperature: 0.8, top_p: 0.9 });
    expect(again.choices[0]?.message.content).toBe(twice.choices[0]?.message.content);
  });

  it('streams deltas that add up to the whole reply, then usage and [DONE]', async () => {
    const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Count to five.' }];
    const whole = await fx.client.chat.completions.create({ model: 'v11', messages, max_tokens: 12 });
    const stream = await fx.client.chat.completions.create({ model: 'v11', messages, max_tokens: 12, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      expect(chunk.object).toBe('chat.completion.chunk');
      const choice = chunk.choices[0];
      if (choice?.delta.role) role = choice.delta.role;
      if (typeof choice?.delta.content === 'string') text += choice.delta.content;
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThan(3);
    expect(role).toBe('assistant');
    expect(text).toBe(whole.choices[0]?.message.content);
    expect(finish).toBe('length');
    expect(usage).toEqual(whole.usage);
  });

  it('stops at a stop sequence, with and without streaming', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
    const full = (await fx.client.chat.completions.create({ model: 'v1', messages, max_tokens: 16 })).choices[0]?.message.content ?? '';
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
    expect(stop.length).toBe(2);
    const cut = full.slice(0, full.indexOf(stop));
    const r = await fx.client.chat.completions.create({ model: 'v1', messages, max_tokens: 16, stop: [stop, 'never-appears'] });
    expect(r.choices[0]?.message.content).toBe(cut);
    expect(r.choices[0]?.finish_reason).toBe('stop');
    expect(r.usage?.completion_tokens).toBeLessThanOrEqual(16);
    const full16 = await (fx.models['v1'] as VargptModel).chat(messages, { maxNewTokens: 16 });
    expect(r.usage?.prompt_tokens).toBe(full16.promptTokens);
    let streamed = '';
    for await (const chunk of await fx.client.chat.completions.create({ model: 'v1', messages, max_tokens: 16, stop, stream: true })) {
      const c = chunk.choices[0]?.delta.content;
      if (typeof c === 'string') streamed += c;
    }
    expect(streamed).toBe(cut);
  });

  it('reads an image sent as a data: URL', async () => {
    const png = await testPng(56, 56);
    const text = await fx.client.chat.completions.create({ model: 'v11', messages: [{ role: 'user', content: 'What is this?' }], max_tokens: 2 });
    const withImage = await fx.client.chat.completions.create({
      model: 'v11',
      max_tokens: 2,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(png) } }, { type: 'text', text: 'What is this?' }] }],
    });
    expect(withImage.usage?.prompt_tokens).toBeGreaterThan(text.usage?.prompt_tokens ?? 0);
    const direct = await (fx.models['v11'] as VargptModel).chat([{ role: 'user', content: [{ type: 'image', image: png }, { type: 'text', text: 'What is this?' }] }], { maxNewTokens: 2 });
    expect(withImage.choices[0]?.message.content).toBe(direct.text);
  });

  it('draws in a chat (force_image): the image comes back as a PNG content part, and the turn goes back into the conversation', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Draw a red fox.' }];
    const drawn = await fx.client.chat.completions.create({ model: 'v1', messages, seed: 5, force_image: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const content = drawn.choices[0]?.message.content as unknown as Part[];
    expect(Array.isArray(content)).toBe(true);
    const image = content.find((p): p is Extract<Part, { type: 'image_url' }> => p.type === 'image_url');
    expect(image?.image_url.url.startsWith('data:image/png;base64,')).toBe(true);
    expect(await pngSize(image?.image_url.url.split(',')[1] ?? '')).toMatchObject({ width: 256, height: 256, format: 'png' });
    expect(drawn.usage?.completion_tokens).toBeGreaterThan(0);
    messages.push(drawn.choices[0]?.message as OpenAI.ChatCompletionMessageParam, { role: 'user', content: 'Describe what you drew.' });
    const next = await fx.client.chat.completions.create({ model: 'v1', messages, max_tokens: 4 });
    expect(typeof next.choices[0]?.message.content).toBe('string');
    expect(next.choices[0]?.finish_reason).toBe('length');
  });

  it('streams a drawing chat turn: the image arrives as a content-part delta', async () => {
    const stream = await fx.client.chat.completions.create({
      model: 'b3',
      messages: [{ role: 'user', content: 'A red bicycle' }],
      stream: true,
      force_image: true,
      image: { steps: 2, flow_steps: 2 },
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    const images: string[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0]?.delta.content as unknown;
      if (Array.isArray(c)) for (const p of c as Part[]) if (p.type === 'image_url') images.push(p.image_url.url);
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
    }
    expect(images).toHaveLength(1);
    expect(await pngSize(images[0]?.split(',')[1] ?? '')).toMatchObject({ width: 64, height: 64 });
    expect(finish).toBe('stop');
  });

  it('n choices decode together; choice i is the call with seed + i, streamed under its index', async () => {
    const messages = [{ role: 'user' as const, content: 'Name a colour.' }];
    const model = fx.models['v11'] as VargptModel;
    const direct = await Promise.all([0, 1, 2].map((i) => model.chat(messages, { maxNewTokens: 8, seed: 20 + i, temperature: 1 })));
    const r = await fx.client.chat.completions.create({ model: 'v11', messages, max_tokens: 8, seed: 20, temperature: 1, n: 3 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(r.choices.map((c) => c.message.content)).toEqual(direct.map((d) => d.text));
    expect(r.usage?.completion_tokens).toBe(direct.reduce((a, d) => a + d.tokens.length, 0));
    const stream = await fx.client.chat.completions.create({ model: 'v11', messages, max_tokens: 8, seed: 20, temperature: 1, n: 3, stream: true });
    const texts = ['', '', ''];
    const finished = [false, false, false];
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        if (typeof c.delta.content === 'string') texts[c.index] += c.delta.content;
        if (c.finish_reason) finished[c.index] = true;
      }
    }
    expect(texts).toEqual(direct.map((d) => d.text));
    expect(finished).toEqual([true, true, true]);
  });

  it('concurrent streaming requests decode together and each gets what it gets alone', async () => {
    const prompts = ['Count to five.', 'Say hello.', 'Describe the sea.', 'What is 2+2?', 'Name a fruit.', 'Why?'];
    const model = fx.models['b3'] as VargptModel;
    const alone: string[] = [];
    for (const [i, p] of prompts.entries()) alone.push((await model.chat([{ role: 'user', content: p }], { maxNewTokens: 10, seed: i, temperature: i % 2 ? 0.9 : 0 })).text);
    const streamed = await Promise.all(
      prompts.map(async (p, i) => {
        const stream = await fx.client.chat.completions.create({ model: 'b3', messages: [{ role: 'user', content: p }], max_tokens: 10, seed: i, temperature: i % 2 ? 0.9 : 0, stream: true });
        let text = '';
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
        return text;
      }),
    );
    expect(streamed).toEqual(alone);
  });
});
