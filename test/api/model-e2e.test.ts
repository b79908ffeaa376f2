// End to end on the real runtime (native model binding) with the reference fixture checkpoint
// ../shared/fixtures/vargpt-v1-tiny and checkpoints synthesized here.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../lib/model.js';
import type { ChatReply, VargptModel } from '../../lib/model.js';
import { synthesize } from '../../lib/synth.js';
import type { ChatEvent } from '../../lib/stream.js';
import { asFloat32, asNumbers, fixtureExpected, fixtureModel, fixtureModelBf16, readJson, readSafetensors } from '../helpers/fixtures.js';
import { pngWithHeader } from '../helpers/images.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-e2e-'));
const inputPng = path.join(fixtureExpected, 'input.png');
const understanding = readJson<{ prompt: string; generated_ids: number[]; generated_text: string }>(path.join(fixtureExpected, 'understanding.json'));
const generation = readJson<{ prompt: string; token_after_start: number; patch_nums: number[] }>(path.join(fixtureExpected, 'generation.json'));
const QUESTION = 'What is shown in this image?';

let model: VargptModel;
beforeAll(async () => {
  model = await loadModel(fixtureModel, { device: 'cpu' });
});
afterAll(async () => {
  await model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

function fixtureReplay() {
  const g = readSafetensors(path.join(fixtureExpected, 'generation.safetensors'));
  return {
    indices: generation.patch_nums.map((_, si) => asNumbers(g.get(`s${si}.sampled_idx`)!)),
    noise: generation.patch_nums.map((_, si) => asFloat32(g.get(`s${si}.noise`)!)),
    image: g.get('image_uint8')!.bytes,
  };
}

function pixelDiff(a: Uint8Array, b: Uint8Array): { max: number; count: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > 0) count++;
    max = Math.max(max, d);
  }
  return { max, count };
}

describe('end to end on the fixture checkpoint', () => {
  it('ask() on expected/input.png gives the fixture 8 greedy tokens', async () => {
    const reply = await model.ask(inputPng, QUESTION, { maxNewTokens: 8 });
    expect(Array.from(reply.tokens)).toEqual(understanding.generated_ids);
    expect(reply.text).toBe(understanding.generated_text);
    expect(reply.promptTokens).toBe(595);
    expect(reply.stopReason).toBe('length');
  });

  it('trace and profile: intermediate tensors as Tensors, seconds per stage', async () => {
    const reply = await model.ask(inputPng, QUESTION, { maxNewTokens: 2, trace: true, profile: true });
    const u = readSafetensors(path.join(fixtureExpected, 'understanding.safetensors'));
    const logits = reply.trace!['prefillLogits']!;
    expect([logits.dtype, logits.shape]).toEqual(['f32', [32064]]);
    const ref = asFloat32(u.get('prefill_last_logits')!);
    let max = 0;
    let scale = 0;
    logits.toFloat32().forEach((v, i) => {
      max = Math.max(max, Math.abs(v - ref[i]!));
      scale = Math.max(scale, Math.abs(ref[i]!));
    });
    expect(max).toBeLessThanOrEqual(1e-5 * scale);
    const pixels = reply.trace!['pixelValues']!.toFloat32();
    const refPixels = asFloat32(u.get('pixel_values')!);
    expect(pixels.length).toBe(refPixels.length);
    expect(pixels.every((v, i) => v === refPixels[i])).toBe(true);
    expect(Object.values(reply.profile!).every((v) => typeof v === 'number' && v >= 0)).toBe(true);
    expect(Object.keys(reply.profile!)).toContain('prefill');
  });

  it('generateImage() replaying the fixture sampling reproduces generation.png', async () => {
    const replay = fixtureReplay();
    const reply = await model.generateImage('Please design a drawing of a butterfly on a flower.', { replay: { indices: replay.indices, noise: replay.noise } });
    expect(reply.tokenAfterImageStart).toBe(generation.token_after_start);
    expect(Array.from(reply.tokens)).toEqual([32002, generation.token_after_start]);
    const diff = pixelDiff(reply.image.data, replay.image);
    // uint8 truncation boundary: +-1 on a few pixels (fixtures README).
    expect(diff.max).toBeLessThanOrEqual(1);
    expect(diff.count).toBeLessThan(200);
    const png = await sharp(path.join(fixtureExpected, 'generation.png')).raw().toBuffer();
    expect(pixelDiff(reply.image.data, png).max).toBeLessThanOrEqual(1);
  });

  it('generateImage() with a seed is reproducible; another seed draws another image', async () => {
    const a = await model.generateImage('a red fox', { seed: 42 });
    const b = await model.generateImage('a red fox', { seed: 42 });
    const c = await model.generateImage('a red fox', { seed: 43 });
    expect(a.seed).toBe(42);
    expect(Buffer.from(a.image.data).equals(Buffer.from(b.image.data))).toBe(true);
    expect(Buffer.from(a.image.data).equals(Buffer.from(c.image.data))).toBe(false);
  });

  it('abort in the middle of an image rejects with AbortError; the model stays usable', async () => {
    const controller = new AbortController();
    const scales: number[] = [];
    await expect(
      model.generateImage('a red fox', {
        seed: 42,
        signal: controller.signal,
        onImageProgress: (p) => {
          if (p.stage !== 'scale') throw new Error(`VARGPT v1 reported stage ${p.stage}`);
          scales.push(p.scale);
          if (p.scale === 3) controller.abort();
        },
      }),
    ).rejects.toMatchObject({ name: 'AbortError' });
    // Stopped within one scale of the abort.
    expect(Math.max(...scales)).toBeLessThanOrEqual(4);
    const again = await model.ask(inputPng, QUESTION, { maxNewTokens: 8 });
    expect(Array.from(again.tokens)).toEqual(understanding.generated_ids);
  });

  it('two concurrent calls on one model are queued and both correct', async () => {
    const expected = await model.generateImage('a red fox', { seed: 7 });
    const [asked, drawn] = await Promise.all([model.ask(inputPng, QUESTION, { maxNewTokens: 8 }), model.generateImage('a red fox', { seed: 7 })]);
    expect(Array.from(asked.tokens)).toEqual(understanding.generated_ids);
    expect(Buffer.from(drawn.image.data).equals(Buffer.from(expected.image.data))).toBe(true);
  });

  it('streams text deltas that add up to the reply', async () => {
    const events: ChatEvent[] = [];
    const messages = [{ role: 'user' as const, content: [{ type: 'image' as const, image: inputPng }, { type: 'text' as const, text: QUESTION }] }];
    for await (const e of model.chatStream(messages, { maxNewTokens: 8 })) events.push(e);
    const end = events[events.length - 1] as { type: 'end'; reply: ChatReply };
    expect(end.type).toBe('end');
    expect(events.filter((e) => e.type === 'text').map((e) => (e as { delta: string }).delta).join('')).toBe(understanding.generated_text);
    expect(end.reply.text).toBe(understanding.generated_text);
  });

  it('onStart reports the prompt length once, before the first token; a throwing onStart rejects the call', async () => {
    const seen: string[] = [];
    const reply = await model.ask(inputPng, QUESTION, { maxNewTokens: 2, onStart: ({ promptTokens }) => seen.push(`start ${promptTokens}`), onToken: () => seen.push('token') });
    expect(seen[0]).toBe(`start ${reply.promptTokens}`);
    expect(seen.filter((s) => s.startsWith('start'))).toHaveLength(1);
    const throwing = () => {
      throw new RangeError('no');
    };
    await expect(model.chat([{ role: 'user', content: 'hi' }], { onStart: throwing })).rejects.toThrow(RangeError);
    await expect(model.chat([{ role: 'user', content: 'hi' }], { onStart: 5 as never })).rejects.toThrow(/onStart must be a function/);
    expect((await model.chat([{ role: 'user', content: 'hi' }], { maxNewTokens: 1 })).tokens).toHaveLength(1);
  });

  it('encodeImageTokens matches the fixture indices; decodeImageTokens matches its decode', async () => {
    const v = readSafetensors(path.join(fixtureExpected, 'vqvae.safetensors'));
    const indices = await model.encodeImageTokens(path.join(fixtureExpected, 'vqvae_input.png'));
    indices.forEach((idx, si) => expect({ si, idx: Array.from(idx) }).toEqual({ si, idx: asNumbers(v.get(`idx_s${si}`)!) }));
    const image = await model.decodeImageTokens(indices);
    const ref = asFloat32(v.get('decode_image')!); // [3, 256, 256] in [-1, 1]
    let max = 0;
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 256 * 256; i++) {
        const want = Math.trunc(((ref[c * 65536 + i]! + 1) / 2) * 255);
        max = Math.max(max, Math.abs(image.data[i * 3 + c]! - want));
      }
    }
    expect(max).toBeLessThanOrEqual(1);
  });

  it('rejects bad input clearly and stays usable: corrupt image, huge PNG header, unknown role', async () => {
    await expect(model.ask(Buffer.from('\x89PNG\r\n\x1a\n garbage'), QUESTION)).rejects.toMatchObject({ name: 'InputError' });
    const t0 = performance.now();
    await expect(model.ask(pngWithHeader(100000, 100000), QUESTION)).rejects.toThrow(/100000x100000 .* above the limit/);
    expect(performance.now() - t0).toBeLessThan(1000);
    await expect(model.chat([{ role: 'narrator' as 'user', content: 'x' }])).rejects.toThrow(/role "narrator" is not a known role/);
    expect(Array.from((await model.ask(inputPng, QUESTION, { maxNewTokens: 8 })).tokens)).toEqual(understanding.generated_ids);
  });

  it('the bf16 sharded fixture loads and answers', async () => {
    await using bf16 = await loadModel(fixtureModelBf16, { device: 'cpu' });
    const reply = await bf16.ask(inputPng, QUESTION, { maxNewTokens: 8 });
    // bf16-rounded weights move logits by ~1e-2 relative; the smallest greedy top-2 gap of this
    // fixture (0.071) survives, so all 8 tokens match the f32 reference.
    expect(Array.from(reply.tokens)).toEqual(understanding.generated_ids);
  });
});

describe('end to end: dispose and models without parts', () => {
  it('dispose during a call rejects it with a DisposedError; later calls reject too', async () => {
    const m = await loadModel(fixtureModel, { device: 'cpu' });
    // Dispose once the first of the ten scales is reported, so nine scales and the VQ-VAE decode
    // are still to run when it lands (a fixed timer raced the tiny model, which can finish in 50 ms).
    let disposing: Promise<void> | undefined;
    const outcome = m
      .generateImage('a red fox', {
        seed: 1,
        onImageProgress: () => {
          disposing ??= m.dispose();
        },
      })
      .catch((e: unknown) => e);
    expect(await outcome).toMatchObject({ name: 'DisposedError' });
    expect(disposing).toBeDefined();
    await disposing;
    await expect(m.ask(inputPng, QUESTION)).rejects.toMatchObject({ name: 'DisposedError' });
  });

  it('a model without a vision tower refuses image parts but chats and draws', async () => {
    const config = JSON.parse(readFileSync(path.join(fixtureModel, 'config.json'), 'utf8')) as Record<string, unknown>;
    delete config['vision_config'];
    const file = path.join(work, 'novision.json');
    writeFileSync(file, JSON.stringify(config));
    const dir = path.join(work, 'novision');
    await synthesize({ preset: file, out: dir, varDepth: 2, vqvae: { ch: 32 }, seed: 1 });
    await using m = await loadModel(dir, { device: 'cpu' });
    expect(m.info.vision).toBeNull();
    await expect(m.ask(inputPng, QUESTION)).rejects.toThrow(/no vision tower .* cannot read images/);
    const reply = await m.chat([{ role: 'user', content: 'hello' }], { maxNewTokens: 4 });
    expect(reply.tokens.length).toBeGreaterThan(0);
    expect((await m.generateImage('a cat', { seed: 1 })).image.width).toBe(256);
  });

  it('a synthesized tiny checkpoint (bf16, sharded) loads and runs', async () => {
    const dir = path.join(work, 'tiny-bf16');
    await synthesize({ preset: 'tiny', out: dir, dtype: 'bf16', seed: 3, maxShardBytes: 16e6 });
    await using m = await loadModel(dir, { device: 'cpu' });
    const reply = await m.ask(inputPng, QUESTION, { maxNewTokens: 4 });
    expect(reply.promptTokens).toBe(595);
    expect(reply.tokens.length).toBeGreaterThan(0);
    const drawn = await m.generateImage('a cat', { seed: 2 });
    expect([drawn.image.width, drawn.image.height]).toEqual([256, 256]);
  });
});
