// The TypeScript model layer over a TEST DOUBLE of the native model (test/helpers/fake-native.ts):
// prompts, tokens, pixels, options, streaming, queueing, abort and dispose. The end-to-end tests
// on the real runtime are in model-e2e.test.ts.
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { loadModelWith } from '../../lib/model.js';
import type { VargptModel } from '../../lib/model.js';
import type { ChatEvent } from '../../lib/stream.js';
import { VargptTokenizer } from '../../lib/tokenizer.js';
import { FIXTURE_INFO, fakeAddon } from '../helpers/fake-native.js';
import type { FakeAddon, Script } from '../helpers/fake-native.js';
import { asFloat32, asNumbers, fixtureExpected, fixtureModel, readJson, readSafetensors } from '../helpers/fixtures.js';
import { pngWithHeader } from '../helpers/images.js';

const understanding = readSafetensors(path.join(fixtureExpected, 'understanding.safetensors'));
const inputPng = path.join(fixtureExpected, 'input.png');
const tok = await VargptTokenizer.fromDir(fixtureModel);
const said = (ids: Int32Array, text: string) => tok.decode(ids).includes(text);
const GENERATED = readJson<{ generated_ids: number[]; generated_text: string }>(path.join(fixtureExpected, 'understanding.json'));

async function setup(script?: (r: Parameters<FakeAddon['model']['script']>[0]) => Script, info = FIXTURE_INFO): Promise<{ addon: FakeAddon; model: VargptModel }> {
  const addon = fakeAddon(info, script);
  const model = await loadModelWith(addon, fixtureModel);
  return { addon, model };
}

describe('model over a native test double', () => {
  it('ask(): the fixture input_ids and pixel_values reach the runtime; text streams and decodes', async () => {
    const { addon, model } = await setup(() => ({ tokens: [...GENERATED.generated_ids] }));
    let streamed = '';
    const reply = await model.ask(inputPng, 'What is shown in this image?', { maxNewTokens: 8, onToken: (d) => (streamed += d) });
    const req = addon.model.requests[0]!;
    expect(Array.from(req.inputIds)).toEqual(asNumbers(understanding.get('input_ids')!));
    expect(req.pixelValues).toHaveLength(1);
    const ref = asFloat32(understanding.get('pixel_values')!);
    expect(req.pixelValues![0]!.length).toBe(ref.length);
    expect(req.pixelValues![0]!.every((v, i) => v === ref[i])).toBe(true);
    expect([req.temperature, req.maxNewTokens, req.stopIds, req.forceImage]).toEqual([0, 8, [2], false]);
    expect(reply.text).toBe(GENERATED.generated_text);
    expect(streamed).toBe(reply.text);
    expect(Array.from(reply.tokens)).toEqual(GENERATED.generated_ids);
    expect(reply.stopReason).toBe('length');
    expect(reply.promptTokens).toBe(595);
    expect(reply.message).toEqual({ role: 'assistant', content: [{ type: 'text', text: reply.text }] });
  });

  it('chat(): renders with the checkpoint template and passes sampling options through', async () => {
    const { addon, model } = await setup(() => ({ tokens: [15043, 2] }));
    const reply = await model.chat([{ role: 'user', content: 'hi' }], { temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1.1, seed: 99 });
    const req = addon.model.requests[0]!;
    expect(Array.from(req.inputIds)).toEqual(tok.encode('USER: hi ASSISTANT:'));
    expect([req.temperature, req.topK, req.topP, req.repetitionPenalty, req.seed]).toEqual([0.7, 40, 0.9, 1.1, 99]);
    expect(req.maxNewTokens).toBe(512);
    expect(req.image).toMatchObject({ cfg: 1.5, topK: 900, topP: 0.96, seed: 99 });
    expect([reply.text, reply.stopReason, reply.seed]).toEqual(['Hello', 'eos', 99]);
  });

  it('generateImage(): forces the start token, reports scales 1..10 and returns the image', async () => {
    const { addon, model } = await setup();
    const progress: string[] = [];
    const reply = await model.generateImage('a butterfly', { seed: 1234, cfg: 2, topK: 100, topP: 0.9, onImageProgress: (p) => progress.push(`${p.step}/${p.steps}:${p.preview?.width}`) });
    const req = addon.model.requests[0]!;
    expect(req.forceImage).toBe(true);
    expect(req.image).toMatchObject({ cfg: 2, topK: 100, topP: 0.9, seed: 1234 });
    expect(progress).toEqual(['1/10:16', '2/10:16', '3/10:16', '4/10:16', '5/10:16', '6/10:16', '7/10:16', '8/10:16', '9/10:16', '10/10:256']);
    expect([reply.image.width, reply.image.height, reply.stopReason, reply.text, reply.tokenAfterImageStart]).toEqual([256, 256, 'image', '', 2717]);
    expect(Array.from(reply.tokens)).toEqual([32002, 2717]);
    expect(reply.images).toEqual([reply.image]);
    expect((await reply.image.toPNG()).subarray(1, 4).toString()).toBe('PNG');
  });

  it('chat({ forceImage }) draws right away in the context of the conversation', async () => {
    const { addon, model } = await setup(() => ({ tokens: [263, 2] }));
    const reply = await model.chat([{ role: 'user', content: 'Draw a fox.' }], { forceImage: true, seed: 5 });
    expect(addon.model.requests[0]!.forceImage).toBe(true);
    expect([reply.stopReason, reply.images.length, reply.seed]).toEqual(['image', 1, 5]);
    await expect(model.chat([{ role: 'user', content: 'x' }], { forceImage: 'yes' as unknown as boolean })).rejects.toThrow(/forceImage must be true or false/);
  });

  it('continues a conversation after an image was drawn (the drawn image is not fed back)', async () => {
    const { addon, model } = await setup((r) => (said(r.inputIds, 'Nice') ? { tokens: [3869, 2] } : { tokens: [306, 32002] }));
    const messages = [{ role: 'user' as const, content: 'Draw a cat.' }];
    const first = await model.chat(messages);
    expect(first.stopReason).toBe('image');
    expect(first.images).toHaveLength(1);
    expect(first.text).toBe('I');
    const second = await model.chat([...messages, first.message, { role: 'user', content: 'Nice.' }]);
    const req = addon.model.requests[1]!;
    expect(Array.from(req.inputIds)).toEqual(tok.encode('USER: Draw a cat. ASSISTANT: I<|image_gen_start|><|image_gen_end|> USER: Nice. ASSISTANT:'));
    expect(req.pixelValues).toEqual([]);
    expect(second.text).toBe('Yes');
  });

  it('queues concurrent calls: never interleaved, each gets its own result', async () => {
    const { addon, model } = await setup((r) => ({ tokens: said(r.inputIds, 'long') ? [263, 263, 2] : [289, 2], delayMs: 5 }));
    const [a, b, c] = await Promise.all([
      model.chat([{ role: 'user', content: 'a long question here' }]),
      model.chat([{ role: 'user', content: 'b' }]),
      model.generateImage('c'),
    ]);
    expect(addon.model.maxActive).toBe(1);
    expect([a.text, b.text, c.stopReason]).toEqual(['a a', 'b', 'image']);
    expect(addon.model.requests.map((r) => r.forceImage)).toEqual([false, false, true]);
  });

  it('abort stops a running call within a step, rejects with AbortError, and the model stays usable', async () => {
    const { addon, model } = await setup(() => ({ tokens: Array(50).fill(263), delayMs: 5 }));
    const controller = new AbortController();
    let seen = 0;
    const run = model.chat([{ role: 'user', content: 'x' }], { signal: controller.signal, onToken: () => ++seen === 3 && controller.abort() });
    await expect(run).rejects.toMatchObject({ name: 'AbortError', message: 'chat was aborted' });
    expect(seen).toBe(3);
    expect(addon.model.cancelsSeen).toBe(1);
    addon.model.script = () => ({ tokens: [289, 2] });
    expect((await model.chat([{ role: 'user', content: 'again' }])).text).toBe('b');
  });

  it('abort in the middle of an image stops at the next scale', async () => {
    const { addon, model } = await setup();
    const controller = new AbortController();
    const scales: number[] = [];
    const run = model.generateImage('x', { signal: controller.signal, onImageProgress: (p) => { scales.push(p.step); if (p.step === 4) controller.abort(); } });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(scales).toEqual([1, 2, 3, 4]);
    expect(addon.model.cancelsSeen).toBe(1);
  });

  it('a queued call aborts at once, without waiting for the running one', async () => {
    const { addon, model } = await setup(() => ({ tokens: Array(40).fill(263), delayMs: 5 }));
    const first = model.chat([{ role: 'user', content: 'long' }]);
    const controller = new AbortController();
    const second = model.chat([{ role: 'user', content: 'queued' }], { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 20));
    controller.abort(new Error('user gave up'));
    const t0 = Date.now();
    await expect(second).rejects.toMatchObject({ name: 'AbortError', cause: new Error('user gave up') });
    expect(Date.now() - t0).toBeLessThan(50);
    await first;
    expect(addon.model.requests).toHaveLength(1);
    const pre = new AbortController();
    pre.abort();
    await expect(model.chat([{ role: 'user', content: 'x' }], { signal: pre.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(addon.model.requests).toHaveLength(1);
  });

  it('dispose during a call: running and queued calls reject clearly, later calls too, native freed once', async () => {
    const { addon, model } = await setup(() => ({ tokens: Array(100).fill(263), delayMs: 5 }));
    const running = model.chat([{ role: 'user', content: 'x' }]);
    const queued = model.generateImage('y');
    const outcomes = [running.catch((e: unknown) => e), queued.catch((e: unknown) => e)];
    await new Promise((r) => setTimeout(r, 15));
    await model.dispose();
    await Promise.all(outcomes);
    await expect(running).rejects.toMatchObject({ name: 'DisposedError', message: 'chat: the model was disposed during the call' });
    await expect(queued).rejects.toMatchObject({ name: 'DisposedError', message: 'generateImage: the model was disposed before the call started' });
    expect(addon.model.disposeCalls).toBe(1);
    expect(addon.model.active).toBe(0);
    await expect(model.chat([{ role: 'user', content: 'z' }])).rejects.toMatchObject({ name: 'DisposedError', message: 'chat: the model has been disposed' });
    await expect(model.encodeImageTokens(inputPng)).rejects.toThrow(/disposed/);
    await model.dispose();
    expect(addon.model.disposeCalls).toBe(1);
    expect(model.disposed).toBe(true);
  });

  it('await using disposes at the end of the scope', async () => {
    const addon = fakeAddon();
    {
      await using model = await loadModelWith(addon, fixtureModel);
      expect((await model.chat([{ role: 'user', content: 'x' }])).stopReason).toBe('eos');
    }
    expect(addon.model.disposeCalls).toBe(1);
  });

  it('a throwing callback stops the call with that error; the model stays usable', async () => {
    const { model } = await setup(() => ({ tokens: [263, 263, 263, 2], delayMs: 2 }));
    const boom = new Error('callback failed');
    await expect(model.chat([{ role: 'user', content: 'x' }], { onToken: () => { throw boom; } })).rejects.toBe(boom);
    expect((await model.chat([{ role: 'user', content: 'x' }])).text).toBe('a a a');
  });

  it('chatStream(): text deltas then end; with an image: progress, image, end', async () => {
    const { model } = await setup((r) => ({ tokens: said(r.inputIds, 'draw') ? [306, 32002] : [15043, 3186, 2] }));
    const events: ChatEvent[] = [];
    for await (const e of model.chatStream([{ role: 'user', content: 'hi' }])) events.push(e);
    expect(events.map((e) => e.type)).toEqual(['text', 'text', 'end']);
    expect(events.filter((e) => e.type === 'text').map((e) => (e as { delta: string }).delta).join('')).toBe('Hello world');
    const drawn: string[] = [];
    for await (const e of model.chatStream([{ role: 'user', content: 'draw me a cat please' }])) drawn.push(e.type === 'image-progress' ? `p${e.step}` : e.type);
    expect(drawn).toEqual(['text', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9', 'p10', 'image', 'end']);
  });

  it('chatStream(): leaving the loop early aborts the call and frees the model', async () => {
    const { addon, model } = await setup(() => ({ tokens: Array(100).fill(263), delayMs: 3 }));
    let n = 0;
    for await (const e of model.chatStream([{ role: 'user', content: 'x' }])) {
      if (e.type === 'text' && ++n === 2) break;
    }
    expect(addon.model.cancelsSeen).toBe(1);
    expect(addon.model.active).toBe(0);
    addon.model.script = () => ({ tokens: [289, 2] });
    expect((await model.chat([{ role: 'user', content: 'x' }])).text).toBe('b');
    // Errors surface from the iterator.
    const it = model.chatStream([{ role: 'bot' as 'user', content: 'x' }]);
    await expect(it.next()).rejects.toThrow(/role "bot"/);
  });

  it('encodeImageTokens / decodeImageTokens: VQ-VAE input and index validation', async () => {
    const { addon, model } = await setup();
    const spy: Float32Array[] = [];
    const original = addon.model.encodeImageTokens.bind(addon.model);
    addon.model.encodeImageTokens = async (pixels, h, w) => {
      spy.push(pixels);
      expect([h, w]).toEqual([256, 256]);
      return original(pixels, h, w);
    };
    const indices = await model.encodeImageTokens(path.join(fixtureExpected, 'vqvae_input.png'));
    const ref = asFloat32(readSafetensors(path.join(fixtureExpected, 'vqvae.safetensors')).get('input')!);
    expect(spy[0]!.every((v, i) => v === ref[i])).toBe(true);
    expect(indices.map((a) => a.length)).toEqual([1, 4, 9, 16, 25, 36, 64, 100, 169, 256]);
    const image = await model.decodeImageTokens(indices.map((a) => Array.from(a)));
    expect([image.width, image.height]).toEqual([256, 256]);
    await expect(model.decodeImageTokens(indices.slice(0, 9))).rejects.toThrow(/must be an array of 10 arrays/);
    const bad = indices.map((a) => Array.from(a));
    bad[3]![2] = 4096;
    await expect(model.decodeImageTokens(bad)).rejects.toThrow(/tokens\[3\]\[2\] = 4096 must be an integer codebook index in \[0, 4096\)/);
    bad[3]![2] = 0;
    bad[9] = bad[9]!.slice(1);
    await expect(model.decodeImageTokens(bad)).rejects.toThrow(/tokens\[9\] has 255 values, scale 9 needs 256/);
  });
});

describe('input validation before native work', () => {
  it('rejects bad options with the option named', async () => {
    const { addon, model } = await setup();
    const chat = (o: object) => model.chat([{ role: 'user', content: 'x' }], o);
    await expect(chat({ temperature: -1 })).rejects.toThrow(/chat options\.temperature must be a number >= 0/);
    await expect(chat({ topP: 0 })).rejects.toThrow(/topP must be a number in \(0, 1\]/);
    await expect(chat({ maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens must be an integer >= 1/);
    await expect(chat({ maxNewTokens: 1.5 })).rejects.toThrow(/maxNewTokens must be an integer/);
    await expect(chat({ seed: -3 })).rejects.toThrow(/seed must be an integer >= 0/);
    await expect(chat({ topK: 'all' })).rejects.toThrow(/topK must be an integer >= 0/);
    await expect(chat({ onToken: 'yes' })).rejects.toThrow(/onToken must be a function/);
    await expect(chat({ signal: {} })).rejects.toThrow(/signal must be an AbortSignal/);
    await expect(chat({ image: { topK: 5000 } })).rejects.toThrow(/options\.image\.topK must be an integer in \[1, 4096\]/);
    await expect(chat({ image: { cfg: Number.NaN } })).rejects.toThrow(/cfg must be a number >= 0/);
    await expect(model.generateImage('x', { replay: { indices: [], noise: [] } })).rejects.toThrow(/replay\.indices must be an array of 10 arrays/);
    await expect(model.generateImage('')).rejects.toThrow(/prompt must be a non-empty string/);
    await expect(model.ask(inputPng, 42 as unknown as string)).rejects.toThrow(/question must be a string/);
    await expect(chat({ maxNewTokens: 5000 })).rejects.toThrow(/maxNewTokens 5000 does not fit: the prompt has 10 tokens and the model 4096 positions, so at most 3405/);
    expect(addon.model.requests).toHaveLength(0);
  });

  it('rejects unknown roles, corrupt images and oversized image headers', async () => {
    const { addon, model } = await setup();
    await expect(model.chat([{ role: 'robot' as 'user', content: 'x' }])).rejects.toThrow(/messages\[0\]\.role "robot" is not a known role/);
    await expect(model.ask(Buffer.from('garbage bytes'), 'what?')).rejects.toThrow(/image 1 is not an image sharp can read/);
    await expect(model.ask(pngWithHeader(100000, 100000), 'what?')).rejects.toThrow(/image 1 is 100000x100000 \(10000 megapixels\), above the limit/);
    await expect(model.ask({ width: 2, height: 2, data: new Uint8Array(7) }, 'what?')).rejects.toThrow(/has 7 bytes/);
    expect(addon.model.requests).toHaveLength(0);
  });

  it('uses the model imageLimits', async () => {
    const addon = fakeAddon();
    const model = await loadModelWith(addon, fixtureModel, { imageLimits: { maxPixels: 1000 } });
    await expect(model.ask(inputPng, 'what?')).rejects.toThrow(/400x300 .* above the limit/);
  });

  it('refuses image parts for a model without a vision tower, and images for one without VAR', async () => {
    const { addon, model } = await setup(undefined, { ...FIXTURE_INFO, vision: null });
    await expect(model.ask(inputPng, 'what?')).rejects.toThrow(/cannot read images/);
    const noVar = await setup(undefined, { ...FIXTURE_INFO, var: null, vqvae: null });
    await expect(noVar.model.generateImage('x')).rejects.toThrow(/no image generation weights/);
    await expect(noVar.model.encodeImageTokens(inputPng)).rejects.toThrow(/no VQ-VAE/);
    expect(addon.model.requests).toHaveLength(0);
  });

  it('checks the prompt length against max positions', async () => {
    const { model } = await setup(undefined, { ...FIXTURE_INFO, llm: { ...FIXTURE_INFO.llm, maxPositions: 700 } });
    // 595 prompt tokens + 681 for an image > 700.
    await expect(model.ask(inputPng, 'What is shown in this image?')).rejects.toThrow(/prompt has 595 tokens, which leaves no room in the model's 700 positions \(an image needs 681\)/);
    await expect(model.generateImage('x'.repeat(10))).resolves.toMatchObject({ stopReason: 'image' });
  });
});

describe('loadModel', () => {
  it('reports progress, picks the CPU when CUDA is unavailable, and checks devices', async () => {
    const addon = fakeAddon();
    const seen: string[] = [];
    const model = await loadModelWith(addon, fixtureModel, { device: 'auto', onLoadProgress: (p) => seen.push(`${p.loaded}/${p.total}`) });
    expect(seen).toEqual(['25/100', '50/100', '75/100', '100/100']);
    expect(model.info.dir).toBe(fixtureModel);
    await expect(loadModelWith(addon, fixtureModel, { device: 'cuda' })).rejects.toThrow(/CUDA is not available \(fake: no CUDA here\)/);
    await expect(loadModelWith(addon, fixtureModel, { device: 'tpu' as 'cpu' })).rejects.toThrow(/device must be "auto", "cpu", "cuda" or "cuda:N"/);
    await expect(loadModelWith(addon, '')).rejects.toThrow(/dir must be the path/);
    await expect(loadModelWith(addon, path.join(fixtureModel, 'nope'))).rejects.toThrow(/model folder .*nope does not exist/);
  });

  it('aborts a load in progress', async () => {
    const addon = fakeAddon();
    const controller = new AbortController();
    const run = loadModelWith(addon, fixtureModel, { signal: controller.signal, onLoadProgress: (p) => p.loaded === 50 && controller.abort() });
    await expect(run).rejects.toMatchObject({ name: 'AbortError', message: 'loadModel was aborted' });
  });

  it('refuses a runtime whose special ids disagree with the tokenizer files', async () => {
    const addon = fakeAddon({ ...FIXTURE_INFO, eosId: 5 });
    await expect(loadModelWith(addon, fixtureModel)).rejects.toThrow(/the eos token is 2 in the tokenizer files but 5 in config\.json/);
    expect(addon.model.disposeCalls).toBe(1);
  });
});
