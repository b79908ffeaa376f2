// Bad input to a VARGPT-v1.1 model: each call fails with a clear error naming what is wrong, and
// the model answers the next good call exactly as before.
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InputError, loadModel, type VargptModel } from '../../lib/index.js';
import { native, type NativeGenerateRequest, type NativeModel } from '../../lib/native.js';
import { filteredCheckpoint, removeJsonCheckpoints } from '../helpers/checkpoint-copy.js';
import { readJson } from '../helpers/fixtures.js';
import { v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

const caseJson = readJson<{ generated_ids: number[] }>(path.join(v11ExpectedDir, 'understanding.json'));
const imagePath = path.join(v11ExpectedDir, 'input.png');
const QUESTION = 'What is shown in this image?';

// A solid-colour-free test image: a gradient with noise, so no preprocessing step sees zeros.
function rawImage(width: number, height: number): { width: number; height: number; data: Uint8Array } {
  const data = new Uint8Array(width * height * 3);
  let state = 12345;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    data[i] = ((i * 7) % 200) + (state >>> 27);
  }
  return { width, height, data };
}

afterAll(removeJsonCheckpoints);

describe('VARGPT-v1.1 bad input through the public API', () => {
  let model: VargptModel;
  beforeAll(async () => {
    model = await loadModel(v11ModelDir, { device: 'cpu' });
  });
  afterAll(() => model?.dispose());

  const stillAnswers = async () => {
    const reply = await model.ask(imagePath, QUESTION, { maxNewTokens: caseJson.generated_ids.length });
    expect(Array.from(reply.tokens)).toEqual(caseJson.generated_ids);
  };

  it('refuses an image with a side below 28 pixels', async () => {
    await expect(model.ask(rawImage(27, 300), QUESTION)).rejects.toThrow(InputError);
    await expect(model.ask(rawImage(300, 20), QUESTION)).rejects.toThrow(/image 1: image 300x20: both sides must be at least 28 pixels/);
    await stillAnswers();
  });

  it('refuses an aspect ratio past 200, and takes one just inside it', async () => {
    await expect(model.ask(rawImage(28 * 201 + 14, 28), QUESTION)).rejects.toThrow(/aspect ratio must be at most 200/);
    const reply = await model.ask(rawImage(28 * 200, 28), QUESTION, { maxNewTokens: 2 });
    expect(reply.tokens.length).toBe(2);
    await stillAnswers();
  });

  it('refuses bad drawing options before any native work, and still answers', async () => {
    await expect(model.generateImage('a red fox', { cfg: -1 })).rejects.toThrow(/generateImage options.cfg must be a number >= 0/);
    await expect(model.chat([{ role: 'user', content: 'draw a fox' }], { forceImage: 1 as never })).rejects.toThrow(/forceImage must be true or false/);
    await expect(model.chat([{ role: 'user', content: 'draw a fox' }], { image: { scales: [] } })).rejects.toThrow(/options.image.scales must be a non-empty array/);
    await expect(model.encodeImageTokens(imagePath, { scales: 'big' as never })).rejects.toThrow(/encodeImageTokens options.scales must be a non-empty array/);
    await expect(model.decodeImageTokens([new Int32Array(32)], { scales: [[1, 1]], trace: 'yes' as never })).rejects.toThrow(/trace must be true or false/);
    await stillAnswers();
  });

  it('stops between tokens on abort, and two concurrent calls both answer as alone', async () => {
    const controller = new AbortController();
    let seen = 0;
    const aborted = model.ask(imagePath, QUESTION, {
      maxNewTokens: 8,
      signal: controller.signal,
      onToken: () => {
        if (++seen === 2) controller.abort();
      },
    });
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    // Token callbacks reach JS asynchronously, so one already decoded may still arrive.
    expect(seen).toBeLessThan(caseJson.generated_ids.length);
    const [a, b] = await Promise.all([model.ask(imagePath, QUESTION, { maxNewTokens: 8 }), model.ask(imagePath, QUESTION, { maxNewTokens: 8 })]);
    expect(Array.from(a.tokens)).toEqual(caseJson.generated_ids);
    expect(Array.from(b.tokens)).toEqual(caseJson.generated_ids);
  });

  it('refuses image placeholder text typed into a message', async () => {
    await expect(model.chat([{ role: 'user', content: 'look: <|image_pad|>' }])).rejects.toThrow(/image placeholder "<\|image_pad\|>"/);
  });

  it('reads several images of different sizes in one message, each with its own token count', async () => {
    const reply = await model.chat(
      [{ role: 'user', content: [{ type: 'image', image: rawImage(56, 56) }, { type: 'text', text: 'and' }, { type: 'image', image: rawImage(112, 84) }, { type: 'text', text: QUESTION }] }],
      { maxNewTokens: 2, trace: true },
    );
    // 56x56 -> 4x4 patches -> 4 tokens (min_pixels lifts nothing: 3136 = 56^2); 112x84 -> 8x6 -> 12 tokens.
    expect(Array.from(reply.trace!['image_grid_thw']!.data as Int32Array)).toEqual([1, 4, 4, 1, 6, 8]);
    const ids = Array.from(reply.trace!['input_ids']!.data as Int32Array);
    const imageToken = model.tokenizer.tokenToId('<|image_pad|>');
    expect(ids.filter((id) => id === imageToken).length).toBe(4 + 12);
    expect(reply.trace!['merger_out']!.shape).toEqual([16, 32]);
  });
});

describe('VARGPT-v1.1 bad requests to the native model', () => {
  let model: NativeModel;
  let good: NativeGenerateRequest;
  beforeAll(async () => {
    model = await native().loadModel(v11ModelDir, { device: 'cpu' });
    const api = await loadModel(v11ModelDir, { device: 'cpu' });
    const reply = await api.ask(imagePath, QUESTION, { maxNewTokens: 1, trace: true });
    await api.dispose();
    const t = reply.trace!;
    const grid = Int32Array.from(t['image_grid_thw']!.data as Int32Array);
    good = {
      inputIds: Int32Array.from(t['input_ids']!.data as Int32Array),
      pixelValues: [Float32Array.from(t['pixel_values']!.data as Float32Array)],
      imageGrids: grid,
      maxNewTokens: caseJson.generated_ids.length,
      temperature: 0,
      topK: 0,
      topP: 1,
      repetitionPenalty: 1,
      seed: 0,
      stopIds: [],
    };
  });
  afterAll(() => model?.dispose());

  const stillAnswers = async () => {
    expect(Array.from((await model.generate(good)).tokens)).toEqual(caseJson.generated_ids);
  };

  it('refuses more images than placeholders, and fewer', async () => {
    const g = good.imageGrids!;
    const more = { ...good, pixelValues: [...good.pixelValues!, good.pixelValues![0]!], imageGrids: Int32Array.from([...g, ...g]) };
    await expect(model.generate(more)).rejects.toThrow(/image tokens for 1 image\(s\) but 2 image grid\(s\) were given/);
    const ids = Array.from(good.inputIds);
    const imageToken = ids.find((id) => id === 151655)!;
    const first = ids.indexOf(imageToken);
    const count = ids.filter((id) => id === imageToken).length;
    const twice = Int32Array.from([...ids.slice(0, first + count), ...ids.slice(first, first + count), ...ids.slice(first + count)]);
    await expect(model.generate({ ...good, inputIds: twice })).rejects.toThrow(/more image tokens .* than the 1 image grid\(s\)/);
    await stillAnswers();
  });

  it('refuses pixel values that do not match their grid, and grids that are not triples', async () => {
    await expect(model.generate({ ...good, pixelValues: [good.pixelValues![0]!.subarray(1176)] })).rejects.toThrow(/pixelValues\[0\] has \d+ values, expected/);
    await expect(model.generate({ ...good, imageGrids: good.imageGrids!.subarray(0, 2) })).rejects.toThrow(/triples/);
    await expect(model.generate({ ...good, imageGrids: Int32Array.of(1, 5, 8) })).rejects.toThrow(/multiples of the merge size 2/);
    await expect(model.generate({ ...good, imageGrids: undefined })).rejects.toThrow(/imageGrids describes 0 image\(s\) but pixelValues holds 1/);
    await stillAnswers();
  });
});

describe('a VARGPT-v1.1 checkpoint without a vision tower', () => {
  let model: VargptModel;
  beforeAll(async () => {
    const dir = filteredCheckpoint(v11ModelDir, (name) => !name.startsWith('visual.'), (config) => void delete config['vision_config']);
    model = await loadModel(dir, { device: 'cpu' });
  });
  afterAll(() => model?.dispose());

  it('loads, reports no vision tower, refuses an image part and still chats', async () => {
    expect(model.info.family === 'vargpt-v1.1' && model.info.vision).toBeNull();
    await expect(model.ask(imagePath, QUESTION)).rejects.toThrow(/no vision tower \(no visual\.\* weights\)/);
    const reply = await model.chat([{ role: 'user', content: 'Hello' }], { maxNewTokens: 3 });
    expect(reply.tokens.length).toBeGreaterThan(0);
  });
});

describe('VARGPT-v1.1 without the image generator (no vargpt_gen.*, vae_local.*)', () => {
  let model: VargptModel;
  beforeAll(async () => {
    const generator = ['vargpt_gen.', 'vae_local.', 'image_gen_projector', 'sos_embedding.'];
    const dir = filteredCheckpoint(v11ModelDir, (name) => !generator.some((p) => name.startsWith(p)));
    model = await loadModel(dir, { device: 'cpu' });
  });
  afterAll(() => model?.dispose());

  it('reports no generator, refuses to draw or tokenize images, and still answers', async () => {
    expect(model.info.family === 'vargpt-v1.1' && model.info.image).toBeNull();
    expect(model.defaults.image).toBeNull();
    await expect(model.generateImage('a red fox')).rejects.toThrow(/no image generation weights \(vargpt_gen\.\*, vae_local\.\*\)/);
    await expect(model.editImage(imagePath, 'make it red')).rejects.toThrow(/no image generation weights/);
    await expect(model.chat([{ role: 'user', content: 'draw' }], { forceImage: true })).rejects.toThrow(/no image generation weights/);
    await expect(model.encodeImageTokens(imagePath)).rejects.toThrow(/no BSQ image tokens/);
    const reply = await model.ask(imagePath, QUESTION, { maxNewTokens: caseJson.generated_ids.length });
    expect(Array.from(reply.tokens)).toEqual(caseJson.generated_ids);
  });
});
