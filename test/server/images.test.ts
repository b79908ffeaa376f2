// POST /v1/images/generations and /v1/images/edits through the official openai client: sizes per
// family, n and seeds, streamed partial images, edits for the families that edit.
import OpenAI, { toFile } from 'openai';
import { describe, expect, it } from 'vitest';

import type { VargptModel } from '../../lib/model.js';
import { pngSize, testPng, useFixtureServer } from '../helpers/server.js';

const fx = useFixtureServer();

// BLIP3-o's drawing steps, kept small (extra body fields).
const FAST = { steps: 2, flow_steps: 2 };


type Generate = OpenAI.ImageGenerateParamsNonStreaming;

describe('image generations', () => {
  it('draws b64_json PNGs at the family size, the same image for the same seed, n images with consecutive seeds', async () => {
    const r = await fx.client.images.generate({ model: 'b3', prompt: 'a cat', n: 2, seed: 11, response_format: 'b64_json', ...FAST } as Generate);
    expect(r.data).toHaveLength(2);
    expect((r as unknown as { size: string }).size).toBe('64x64');
    const [a, b] = r.data ?? [];
    expect(await pngSize(a?.b64_json ?? '')).toEqual({ width: 64, height: 64, format: 'png' });
    expect((a as unknown as { seed: number }).seed).toBe(11);
    expect((b as unknown as { seed: number }).seed).toBe(12);
    const direct = await (fx.models['b3'] as VargptModel).generateImage('a cat', { seed: 12, steps: 2, flowSteps: 2 });
    expect(b?.b64_json).toBe((await direct.image.toPNG()).toString('base64'));
    const v1 = await fx.client.images.generate({ model: 'v1', prompt: 'a dog', size: '256x256', seed: 1 } as Generate);
    expect(await pngSize(v1.data?.[0]?.b64_json ?? '')).toMatchObject({ width: 256, height: 256 });
  });

  it('takes the sizes each family draws and refuses the others', async () => {
    const v11 = await fx.client.images.generate({ model: 'v11', prompt: 'a tree', size: '256x256', seed: 2 } as Generate);
    expect(await pngSize(v11.data?.[0]?.b64_json ?? '')).toMatchObject({ width: 256, height: 256 });
    const b3 = await fx.client.images.generate({ model: 'b3', prompt: 'a tree', size: '96x64', ...FAST } as Generate);
    expect(await pngSize(b3.data?.[0]?.b64_json ?? '')).toMatchObject({ width: 96, height: 64 });
    for (const [model, size, says] of [
      ['v1', '512x512', '256x256 only'],
      ['v11', '300x300', 'draws'],
      ['b3', '100x64', 'multiples of 32'],
      ['b3', 'big', 'WIDTHxHEIGHT'],
    ] as const) {
      const error = await fx.client.images.generate({ model, prompt: 'x', size, ...FAST } as Generate).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('size');
      expect((error as Error).message).toContain(says);
    }
    const url = await fx.client.images.generate({ model: 'b3', prompt: 'x', response_format: 'url' }).catch((e: unknown) => e);
    expect((url as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('response_format');
  });

  it('streams partial images per step, then the completed image', async () => {
    const stream = await fx.client.images.generate({ model: 'b3', prompt: 'a boat', stream: true, seed: 4, steps: 4, flow_steps: 2 } as unknown as OpenAI.ImageGenerateParamsStreaming);
    const events: OpenAI.ImageGenStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const partial = events.filter((e): e is OpenAI.ImageGenPartialImageEvent => e.type === 'image_generation.partial_image');
    const done = events.filter((e): e is OpenAI.ImageGenCompletedEvent => e.type === 'image_generation.completed');
    // 4 UNet steps: previews after steps 1-3, the last step is the completed image.
    expect(partial.map((e) => e.partial_image_index)).toEqual([0, 1, 2]);
    expect(done).toHaveLength(1);
    expect(events[events.length - 1]?.type).toBe('image_generation.completed');
    expect(await pngSize(done[0]?.b64_json ?? '')).toMatchObject({ width: 64, height: 64 });
    expect(done[0]).toMatchObject({ size: '64x64', output_format: 'png' });
    const direct = await (fx.models['b3'] as VargptModel).generateImage('a boat', { seed: 4, steps: 4, flowSteps: 2 });
    expect(done[0]?.b64_json).toBe((await direct.image.toPNG()).toString('base64'));
    // partial_images bounds the count; VARGPT-v1.1 previews each scale.
    const few = await fx.client.images.generate({ model: 'v11', prompt: 'a boat', stream: true, partial_images: 2, size: '256x256' } as unknown as OpenAI.ImageGenerateParamsStreaming);
    const kinds: string[] = [];
    for await (const event of few) kinds.push(event.type);
    expect(kinds).toEqual(['image_generation.partial_image', 'image_generation.partial_image', 'image_generation.completed']);
  });
});

describe('image edits', () => {
  it('edits with VARGPT-v1.1 and BLIP3-o (multipart image + prompt)', async () => {
    const png = await testPng(64, 64);
    const v11 = await fx.client.images.edit({ model: 'v11', image: await toFile(png, 'in.png', { type: 'image/png' }), prompt: 'make it blue', size: '256x256', seed: 3 } as OpenAI.ImageEditParamsNonStreaming);
    expect(await pngSize(v11.data?.[0]?.b64_json ?? '')).toMatchObject({ width: 256, height: 256 });
    // 256x256: the default schedule up to its 16x16 grid.
    const scales: Array<[number, number]> = [[1, 1], [2, 2], [4, 4], [6, 6], [8, 8], [12, 12], [16, 16]];
    const direct = await (fx.models['v11'] as VargptModel).editImage(png, 'make it blue', { seed: 3, scales });
    expect(v11.data?.[0]?.b64_json).toBe((await direct.image.toPNG()).toString('base64'));
    const b3 = await fx.client.images.edit({ model: 'b3', image: await toFile(png, 'in.png'), prompt: 'in the snow', ...FAST } as OpenAI.ImageEditParamsNonStreaming);
    expect(await pngSize(b3.data?.[0]?.b64_json ?? '')).toMatchObject({ width: 64, height: 64 });
    const stream = await fx.client.images.edit({ model: 'b3', image: await toFile(png, 'in.png'), prompt: 'at night', stream: true, steps: 3, flow_steps: 2 } as unknown as OpenAI.ImageEditParamsStreaming);
    const kinds: string[] = [];
    for await (const event of stream) kinds.push(event.type);
    expect(kinds).toEqual(['image_edit.partial_image', 'image_edit.partial_image', 'image_edit.completed']);
  });

  it('refuses families that do not edit, masks, and a missing image', async () => {
    const png = await testPng(32, 32);
    const v1 = await fx.client.images.edit({ model: 'v1', image: await toFile(png, 'a.png'), prompt: 'x' }).catch((e: unknown) => e);
    expect(v1).toBeInstanceOf(OpenAI.BadRequestError);
    expect((v1 as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('model_cannot_edit');
    const mask = await fx.client.images.edit({ model: 'v11', image: await toFile(png, 'a.png'), mask: await toFile(png, 'm.png'), prompt: 'x' }).catch((e: unknown) => e);
    expect((mask as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('mask');
    const form = new FormData();
    form.set('model', 'v11');
    form.set('prompt', 'x');
    const none = await fetch(`${fx.server.url}/v1/images/edits`, { method: 'POST', body: form });
    expect(none.status).toBe(400);
    expect(((await none.json()) as { error: { param: string } }).error.param).toBe('image');
    const notImage = new FormData();
    notImage.set('prompt', 'x');
    notImage.set('model', 'b3');
    notImage.set('image', new Blob([Buffer.from('not an image')]), 'a.png');
    const bad = await fetch(`${fx.server.url}/v1/images/edits`, { method: 'POST', body: notImage });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_image');
  });
});
