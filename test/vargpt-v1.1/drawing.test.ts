// VARGPT-v1.1 drawing and editing through the public API, against the fixture's generation and
// editing cases: generateImage / editImage with the fixture's sampling options, scale schedule and
// replayed bits, trace: true. Every tensor the fixture records is compared with the trace's
// tensor of the same name: floats within 4x the tensor's float32-vs-float64 spread (never tighter
// than 1e-5 of max|ref|), integers and bits exactly, the image within 2/255 per channel. Then what
// replay cannot show: seeded runs repeat, the model emitting <|image_gen_start|> itself draws the
// same image as the forced start, progress and abort, the bf16 cache, the BSQ image tokens, and
// bad options.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isAbortError } from '../../lib/errors.js';
import { preShrinkEditSource } from '../../lib/families/vargpt-v1.1.js';
import { decodeImage } from '../../lib/image.js';
import { loadModel, type ImageReply, type VargptModel } from '../../lib/model.js';
import { bf16ToF32, f32ToBf16, type Tensor } from '../../lib/tensor.js';
import type { ImageProgress } from '../../lib/options.js';
import { removeJsonCheckpoints, filteredCheckpoint } from '../helpers/checkpoint-copy.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { expectClose, expectEqualInts, spreadTolerance } from '../helpers/model-fixture.js';
import { tinyModelDir, v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

interface CaseJson {
  scale_schedule: [number, number, number][];
  cfg: number;
  tau: number;
  top_k: number;
  top_p: number;
  seed: number;
  prompt: string;
  conversation: Array<{ role: string; content: Array<{ type: string; text?: string }> }>;
  image?: string;
  token_after_start: number;
  tensors: Record<string, { shape: number[]; dtype: string; f32_vs_f64?: { rel_err_maxnorm?: number } }>;
}

interface FixtureCase {
  name: string;
  json: CaseJson;
  tensors: Map<string, StTensor>;
  scales: Array<[number, number]>;
}

function fixtureCase(name: string): FixtureCase {
  const json = readJson<CaseJson>(path.join(v11ExpectedDir, `${name}.json`));
  return { name, json, tensors: readSafetensors(path.join(v11ExpectedDir, `${name}.safetensors`)), scales: json.scale_schedule.map(([, h, w]) => [h, w]) };
}

const generation = fixtureCase('generation');
const editing = fixtureCase('editing');
const sourceImage = path.join(v11ExpectedDir, editing.json.image ?? 'input.png');

function ref(c: FixtureCase, name: string): StTensor {
  const t = c.tensors.get(name);
  if (!t) throw new Error(`fixture tensor ${name} is missing`);
  return t;
}

function textOf(c: FixtureCase): string {
  const text = c.json.conversation[0]!.content.find((p) => p.type === 'text')?.text;
  if (!text) throw new Error('the fixture case has no text');
  return text;
}

function replayBits(c: FixtureCase): Int32Array[] {
  return c.scales.map((_, si) => Int32Array.from(asNumbers(ref(c, `s${si}.bits`))));
}

function sampling(c: FixtureCase) {
  return { cfg: c.json.cfg, tau: c.json.tau, topK: c.json.top_k, topP: c.json.top_p, scales: c.scales };
}

function tolerance(c: FixtureCase, name: string): number {
  return spreadTolerance(c.json.tensors, name, c.name);
}

function traced(reply: ImageReply, name: string): Tensor {
  const t = reply.trace?.[name];
  if (!t) throw new Error(`the trace has no ${name} (it has ${Object.keys(reply.trace ?? {}).join(', ')})`);
  return t;
}

function maxPixelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

// Every fixture tensor against the trace's tensor of the same name.
function compareCase(c: FixtureCase, reply: ImageReply): void {
  const names = Object.keys(c.json.tensors);
  // The names the public trace must carry (anything the fixture records).
  expect(names.filter((n) => !(n in (reply.trace ?? {})))).toEqual([]);
  for (const name of names) {
    const want = ref(c, name);
    const got = traced(reply, name);
    const count = want.shape.reduce((a, b) => a * b, 1);
    expect(got.size, `${name}: element count`).toBe(count);
    if (name === 'image_uint8') {
      expect(got.shape, name).toEqual(want.shape);
      expect(maxPixelDiff(got.data as Uint8Array, want.bytes), name).toBeLessThanOrEqual(2);
    } else if (want.dtype === 'F32') {
      expect(got.dtype, name).toBe('f32');
      expectClose(`${c.name}.${name}`, got.data as Float32Array, asFloat32(want), tolerance(c, name));
    } else if (want.dtype === 'BOOL' || want.dtype === 'U8') {
      expectEqualInts(name, Array.from(got.data as ArrayLike<number>, (v) => (v ? 1 : 0)), Array.from(want.bytes, (b) => (b ? 1 : 0)));
    } else {
      expectEqualInts(name, got.data as ArrayLike<number>, asNumbers(want));
    }
  }
}

describe('VARGPT-v1.1 drawing through the public API (fixture vargpt-v1.1-tiny)', () => {
  let model: VargptModel;
  let generated: ImageReply;
  let edited: ImageReply;

  beforeAll(async () => {
    model = await loadModel(v11ModelDir, { device: 'cpu' });
    generated = await model.generateImage(textOf(generation), {
      ...sampling(generation),
      seed: generation.json.seed,
      replay: { bits: replayBits(generation) },
      trace: true,
    });
    edited = await model.editImage(sourceImage, textOf(editing), {
      ...sampling(editing),
      seed: editing.json.seed,
      replay: { bits: replayBits(editing) },
      trace: true,
    });
  });
  afterAll(async () => {
    await model?.dispose();
    removeJsonCheckpoints();
  });

  it('has the spec defaults: cfg 3, tau 0.5, top-k 900, top-p 0.97, the 10-scale 512x512 schedule', () => {
    expect(model.defaults.image).toMatchObject({ cfg: 3, tau: 0.5, topK: 900, topP: 0.97 });
    const image = model.defaults.image;
    expect(image !== null && 'scales' in image ? image.scales?.map(([h]) => h) : null).toEqual([1, 2, 4, 6, 8, 12, 16, 20, 24, 32]);
    expect(model.info.family === 'vargpt-v1.1' && model.info.image).toMatchObject({ bits: 32, downsample: 16, hasEncoder: true });
  });

  it('generateImage: the fixture prompt, every recorded tensor, the image', () => {
    expect(model.template.render(generation.json.conversation as never).prompt).toBe(generation.json.prompt);
    compareCase(generation, generated);
    const promptLength = generation.json.tensors['input_ids']!.shape[0]!;
    expect(Array.from(generated.tokens)).toEqual(asNumbers(ref(generation, 'output_ids')).slice(promptLength));
    expect(generated.tokenAfterImageStart).toBe(generation.json.token_after_start);
    expect(generated.stopReason).toBe('image');
    expect(generated.text).toBe('');
    expect([generated.image.width, generated.image.height]).toEqual([128, 128]);
    expect(Array.from(generated.image.data)).toEqual(Array.from(traced(generated, 'image_uint8').data as Uint8Array));
  });

  it('editImage: the source image then the instruction, every recorded tensor, the image', () => {
    compareCase(editing, edited);
    const promptLength = editing.json.tensors['input_ids']!.shape[0]!;
    expect(edited.promptTokens).toBe(promptLength);
    expect(Array.from(edited.tokens)).toEqual(asNumbers(ref(editing, 'output_ids')).slice(promptLength));
    expect(edited.tokenAfterImageStart).toBe(editing.json.token_after_start);
    expect(edited.message.content).toEqual([{ type: 'text', text: '' }, { type: 'image', image: edited.image }]);
  });

  it('seeded generation and editing repeat run to run; another seed draws other bits', async () => {
    const bits = (r: ImageReply) => generation.scales.flatMap((_, si) => Array.from(traced(r, `s${si}.bits`).data as Int32Array));
    const opts = { ...sampling(generation), seed: 11, trace: true };
    const a = await model.generateImage(textOf(generation), opts);
    const b = await model.generateImage(textOf(generation), opts);
    const c = await model.generateImage(textOf(generation), { ...opts, seed: 12 });
    expect(bits(a)).toEqual(bits(b));
    expect(Array.from(a.image.data)).toEqual(Array.from(b.image.data));
    expect(bits(a)).not.toEqual(bits(c));
    const e1 = await model.editImage(sourceImage, textOf(editing), { ...opts, seed: 5 });
    const e2 = await model.editImage(sourceImage, textOf(editing), { ...opts, seed: 5 });
    expect(bits(e1)).toEqual(bits(e2));
    expect(Array.from(e1.image.data)).toEqual(Array.from(e2.image.data));
    // The source image conditions the drawing: same seed, no image, other bits.
    expect(bits(e1)).not.toEqual(bits(await model.generateImage(textOf(editing), { ...opts, seed: 5 })));
  });

  it('reports one progress event per scale, previews first and the image last, in chat streams too', async () => {
    const events: ImageProgress[] = [];
    const reply = await model.generateImage(textOf(generation), { ...sampling(generation), seed: 3, onImageProgress: (p) => events.push(p) });
    expect(events.map((e) => [e.stage, e.step, e.steps])).toEqual(generation.scales.map((_, i) => ['scale', i + 1, generation.scales.length]));
    expect(events[0]!.preview!.width).toBe(16);
    expect(Array.from(events.at(-1)!.preview!.data)).toEqual(Array.from(reply.image.data));
    const kinds: string[] = [];
    for await (const event of model.chatStream([{ role: 'user', content: textOf(generation) }], { forceImage: true, seed: 3, image: sampling(generation) })) {
      kinds.push(event.type);
      if (event.type === 'end') expect(Array.from(event.reply.images[0]!.data)).toEqual(Array.from(reply.image.data));
    }
    expect(kinds.filter((k) => k === 'image-progress')).toHaveLength(generation.scales.length);
    expect(kinds.at(-1)).toBe('end');
  });

  it('aborting between scales rejects with an AbortError and leaves the model usable', async () => {
    const controller = new AbortController();
    const steps: number[] = [];
    const call = model.generateImage(textOf(generation), {
      ...sampling(generation),
      seed: 1,
      signal: controller.signal,
      onImageProgress: (p) => {
        steps.push(p.step);
        if (p.step === 2) controller.abort();
      },
    });
    const error = await call.then(
      () => null,
      (e: unknown) => e,
    );
    expect(isAbortError(error)).toBe(true);
    expect(steps.length).toBeLessThan(generation.scales.length);
    const again = await model.generateImage(textOf(generation), { ...sampling(generation), seed: 1, replay: { bits: replayBits(generation) } });
    expect(Array.from(again.image.data)).toEqual(Array.from(generated.image.data));
  });

  it('a conversation goes text -> image -> text: the drawn image stays in it as a marker, not pixels', async () => {
    const first = await model.chat([{ role: 'user', content: textOf(generation) }], { forceImage: true, seed: 2, image: sampling(generation) });
    expect(first.images).toHaveLength(1);
    const follow = await model.chat(
      [{ role: 'user', content: textOf(generation) }, first.message, { role: 'user', content: 'What did you draw?' }],
      { maxNewTokens: 3, image: sampling(generation), trace: true },
    );
    const ids = Array.from(follow.trace!['input_ids']!.data as Int32Array);
    const start = model.tokenizer.specialTokens.imageGenStart!.id;
    expect(ids.filter((id) => id === start)).toHaveLength(1);
    expect(follow.promptTokens).toBeLessThan(first.promptTokens + 40);
  });

  it('refuses bad drawing options with errors that name them, and stays usable', async () => {
    const p = textOf(generation);
    const bits = replayBits(generation);
    await expect(model.generateImage(p, { scales: [[2, 2], [1, 1]] })).rejects.toThrow(/scales\[1\] = \[1, 1\] is smaller than the scale before it/);
    await expect(model.generateImage(p, { scales: Array.from({ length: 16 }, () => [1, 1] as const) })).rejects.toThrow(/16 scales; .* level embeddings for 15/);
    await expect(model.generateImage(p, { scales: [[1, 0]] as never })).rejects.toThrow(/scales\[0\] must be \[height, width\]/);
    await expect(model.generateImage(p, { tau: 0 })).rejects.toThrow(/tau must be a number > 0/);
    await expect(model.generateImage(p, { topP: 1.5 })).rejects.toThrow(/topP must be a number in \(0, 1\]/);
    await expect(model.generateImage(p, { ...sampling(generation), replay: { bits: bits.slice(1) } })).rejects.toThrow(/replay.bits must be an array of 5 arrays/);
    await expect(model.generateImage(p, { ...sampling(generation), replay: { bits: bits.map((b, i) => (i === 2 ? b.subarray(1) : b)) } })).rejects.toThrow(
      /replay.bits\[2\] has 511 values, scale 2 needs 512/,
    );
    await expect(model.generateImage(p, { ...sampling(generation), replay: { bits: bits.map((b) => b.map(() => 2)) } })).rejects.toThrow(/must be a bit \(0 or 1\)/);
    await expect(model.generateImage(p, { ...sampling(generation), replay: { indices: [] } })).rejects.toThrow(/replays drawn bits \(replay.bits\), not indices/);
    await expect(model.editImage(sourceImage, '  ')).rejects.toThrow(/instruction must be a non-empty string/);
    await expect(model.editImage(sourceImage, 'x', { preShrink: 'yes' as never })).rejects.toThrow(/preShrink must be true, false or "auto"/);
    await expect(model.encodeImageTokens(sourceImage, { scales: [[1, 1], [3, 3]] })).resolves.toHaveLength(2);
    const again = await model.generateImage(p, { ...sampling(generation), replay: { bits } });
    expect(Array.from(again.image.data)).toEqual(Array.from(generated.image.data));
  });

  it('encodeImageTokens / decodeImageTokens: the fixture bsq_vae case through the public API', async () => {
    const bsq = readJson<{ scale_schedule: [number, number, number][]; tensors: Record<string, { f32_vs_f64?: { rel_err_maxnorm?: number } }> }>(
      path.join(v11ExpectedDir, 'bsq_vae.json'),
    );
    const tensors = readSafetensors(path.join(v11ExpectedDir, 'bsq_vae.safetensors'));
    const scales = bsq.scale_schedule.map(([, h, w]) => [h, w] as const);
    const bits = await model.encodeImageTokens(path.join(v11ExpectedDir, 'bsq_vae_input.png'), { scales });
    expect(bits).toHaveLength(scales.length);
    bits.forEach((b, si) => expectEqualInts(`bits_s${si}`, b, asNumbers(tensors.get(`bits_s${si}`)!)));
    const image = await model.decodeImageTokens(bits, { scales, trace: true });
    expect([image.width, image.height]).toEqual([128, 128]);
    for (const name of ['decode_summed_codes', 'decode_image']) {
      expectClose(`bsq_vae.${name}`, image.trace![name]!.data as Float32Array, asFloat32(tensors.get(name)!), spreadTolerance(bsq.tensors, name, 'bsq_vae'));
    }
    // The same image, as uint8, as the drawing path truncates it.
    const fromFixture = asFloat32(tensors.get('decode_image')!);
    const hw = 128 * 128;
    let worst = 0;
    for (let i = 0; i < hw * 3; i++) {
      const c = Math.floor(i / hw), at = i % hw;
      const want = Math.trunc(((Math.min(1, Math.max(-1, fromFixture[i]!)) + 1) / 2) * 255);
      worst = Math.max(worst, Math.abs(image.data[at * 3 + c]! - want));
    }
    expect(worst).toBeLessThanOrEqual(1);
    // Tokens of the default schedule: a 512x512 image, 10 scales of h*w*32 bits.
    const full = await model.encodeImageTokens(sourceImage);
    expect(full.map((b) => b.length)).toEqual([1, 2, 4, 6, 8, 12, 16, 20, 24, 32].map((n) => n * n * 32));
    const decoded = await model.decodeImageTokens(full);
    expect([decoded.width, decoded.height]).toEqual([512, 512]);
    await expect(model.decodeImageTokens(full, { scales })).rejects.toThrow(/must be an array of 5 arrays/);
    await expect(model.encodeImageTokens(sourceImage, { scales: [[2, 2], [1, 1]] })).rejects.toThrow(/smaller than the scale before it/);
  });

  it("preShrink: LlamaFactory's edit-source preparation (at most 512x512 pixels, nearest; sides >= 28)", async () => {
    const big = { width: 1024, height: 768, channels: 3 as const, data: new Uint8Array(1024 * 768 * 3).map((_, i) => (i * 7) % 251) };
    const shrunk = await preShrinkEditSource(big);
    // sqrt(262144 / 786432) = 0.57735: int(591.2), int(443.4)
    expect([shrunk.width, shrunk.height]).toEqual([591, 443]);
    const thin = await preShrinkEditSource({ width: 100, height: 20, channels: 3 as const, data: new Uint8Array(100 * 20 * 3).fill(9) });
    expect([thin.width, thin.height]).toEqual([100, 28]);
    const small = await decodeImage(sourceImage);
    expect(await preShrinkEditSource(small)).toBe(small);
  });
});

describe("VARGPT-v1.1 editImage preShrink with the release's pixel limits", () => {
  it("'auto' shrinks a source only when the prompt would not fit the decoder's context", async () => {
    const dir = filteredCheckpoint(v11ModelDir, () => true);
    const pre = path.join(dir, 'preprocessor_config.json');
    // The release's limits (Qwen2-VL-7B-Instruct): a 1024x768 photo is about 1000 tokens.
    writeFileSync(pre, JSON.stringify({ ...(JSON.parse(readFileSync(pre, 'utf8')) as object), min_pixels: 3136, max_pixels: 12845056 }));
    const model = await loadModel(dir, { device: 'cpu' });
    try {
      const photo = { width: 1024, height: 768, channels: 3 as const, data: new Uint8Array(1024 * 768 * 3).map((_, i) => (i * 13) % 241) };
      const opts = { ...sampling(editing), seed: 3 };
      await expect(model.editImage(photo, 'make it blue', { ...opts, preShrink: false })).rejects.toThrow(/the prompt has \d+ tokens; the image decoder attends to at most 512/);
      const auto = await model.editImage(photo, 'make it blue', opts);
      const always = await model.editImage(photo, 'make it blue', { ...opts, preShrink: true });
      // 591x443 -> smart_resize 588x448 -> 21x16 merged tokens.
      expect(auto.promptTokens).toBe(always.promptTokens);
      expect(auto.promptTokens).toBeLessThan(512);
      expect(Array.from(auto.image.data)).toEqual(Array.from(always.image.data));
      // A small source is read as it is under 'auto': the same prompt as preShrink false.
      const small = await model.editImage(sourceImage, 'make it blue', { ...opts, trace: true });
      const plain = await model.editImage(sourceImage, 'make it blue', { ...opts, trace: true, preShrink: false });
      expect(Array.from(small.trace!['pixel_values']!.data as Float32Array)).toEqual(Array.from(plain.trace!['pixel_values']!.data as Float32Array));
    } finally {
      await model.dispose();
    }
  });
});

describe('VARGPT-v1.1: the model emitting <|image_gen_start|> itself draws in chat', () => {
  let model: VargptModel;

  // A copy of the fixture whose lm_head row of <|image_gen_start|> is twice the row of the token
  // the prompt's greedy step picks, so that the start token wins the first argmax.
  beforeAll(async () => {
    const probe = await loadModel(v11ModelDir, { device: 'cpu' });
    const first = (await probe.chat([{ role: 'user', content: textOf(generation) }], { maxNewTokens: 1 })).tokens[0]!;
    const start = probe.tokenizer.specialTokens.imageGenStart!.id;
    const hidden = probe.info.llm.hiddenSize;
    await probe.dispose();
    const dir = filteredCheckpoint(v11ModelDir, () => true, undefined, (name, data) => {
      if (name !== 'lm_head.weight') return data;
      const out = Buffer.from(data);
      for (let j = 0; j < hidden; j++) out.writeUInt16LE(f32ToBf16(2 * bf16ToF32(data.readUInt16LE(2 * (first * hidden + j)))), 2 * (start * hidden + j));
      return out;
    });
    model = await loadModel(dir, { device: 'cpu' });
  });
  afterAll(async () => {
    await model?.dispose();
    removeJsonCheckpoints();
  });

  it('chat draws when the model emits the start token, the same image as the forced start', async () => {
    const messages = [{ role: 'user' as const, content: textOf(generation) }];
    const options = { seed: 21, image: sampling(generation) };
    const chat = await model.chat(messages, options);
    expect(chat.stopReason).toBe('image');
    expect(chat.images).toHaveLength(1);
    expect(chat.tokens[0]).toBe(model.tokenizer.specialTokens.imageGenStart!.id);
    const forced = await model.generateImage(textOf(generation), { ...sampling(generation), seed: 21 });
    expect(Array.from(chat.images[0]!.data)).toEqual(Array.from(forced.image.data));
  });
});

describe('VARGPT-v1.1 with kvCache bf16', () => {
  it('draws the fixture image from the replayed bits; logits within bf16 rounding of the keys and values', async () => {
    const model = await loadModel(v11ModelDir, { device: 'cpu', kvCache: 'bf16' });
    try {
      const reply = await model.generateImage(textOf(generation), {
        ...sampling(generation),
        seed: generation.json.seed,
        replay: { bits: replayBits(generation) },
        trace: true,
      });
      expect(maxPixelDiff(reply.image.data, ref(generation, 'image_uint8').bytes)).toBeLessThanOrEqual(2);
      // bf16 keeps 8 significant bits (relative rounding 2^-9 = 2e-3 per cached value); through
      // the softmax and the remaining blocks the logits move by up to 4.1e-3 of max|logit| here
      // (f32: 3e-4), so 1e-2 separates the two.
      for (const [si] of generation.scales.entries()) {
        const name = `s${si}.logits_cond`;
        expectClose(`bf16.${name}`, traced(reply, name).data as Float32Array, asFloat32(ref(generation, name)), 1e-2);
      }
    } finally {
      await model.dispose();
    }
  });
});

describe('VARGPT v1 and the v1.1 options', () => {
  it('refuses editImage, scales, tau and bits on a VARGPT v1 model', async () => {
    const model = await loadModel(tinyModelDir, { device: 'cpu' });
    try {
      await expect(model.editImage(sourceImage, 'make it blue')).rejects.toThrow(/VARGPT v1 does not edit images/);
      await expect(model.generateImage('a cat', { scales: [[1, 1]] })).rejects.toThrow(/VARGPT v1 has no scale schedule option/);
      await expect(model.generateImage('a cat', { tau: 1 })).rejects.toThrow(/VARGPT v1 has no logits temperature option/);
      await expect(model.decodeImageTokens([], { scales: [[1, 1]] })).rejects.toThrow(/VARGPT v1's scales are fixed/);
      expect(readFileSync(sourceImage).length).toBeGreaterThan(0);
    } finally {
      await model.dispose();
    }
  });
});
