// Bad input never crashes the process and never leaves a model unusable: every failure is a JS
// Error that names the argument, tensor or shape at fault. Also: aborts, throwing callbacks,
// dispose during a call, and serialised concurrent calls.
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NativeModel } from '../../lib/native.js';
import {
  Expected,
  TINY_F32,
  addon,
  baseRequest,
  expectEqualInts,
  expectedJson,
  loadTiny,
  understandingInputs,
} from '../helpers/model-fixture.js';

// A copy of the tiny checkpoint whose safetensors header (and optionally config.json) is edited.
function brokenCheckpoint(
  editHeader: (header: Record<string, any>) => void,
  editConfig?: (config: Record<string, any>) => void,
): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vargpt-broken-'));
  for (const f of readdirSync(TINY_F32)) if (f.endsWith('.json')) copyFileSync(path.join(TINY_F32, f), path.join(dir, f));
  if (editConfig) {
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    editConfig(config);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  }
  const file = readFileSync(path.join(TINY_F32, 'model.safetensors'));
  const n = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8'));
  editHeader(header);
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, Buffer.from(text), file.subarray(8 + n)]));
  return dir;
}

describe('VARGPT v1 bad inputs and lifecycle', () => {
  let model: NativeModel;
  const temps: string[] = [];
  beforeAll(async () => {
    model = await loadTiny();
  });
  afterAll(() => {
    model?.dispose();
    for (const t of temps) rmSync(t, { recursive: true, force: true });
  });

  async function stillWorks(m = model): Promise<void> {
    const { inputIds, pixelValues, ex } = await understandingInputs();
    const r = await m.generate({ ...baseRequest(inputIds), pixelValues: [pixelValues] });
    expectEqualInts('greedy tokens after the error', r.tokens, ex.ints('generated_ids'));
  }

  it('rejects malformed generate requests with errors naming the field', async () => {
    const { inputIds, pixelValues } = await understandingInputs();
    const req = { ...baseRequest(inputIds), pixelValues: [pixelValues] };
    await expect(model.generate({ ...req, pixelValues: [pixelValues.subarray(1)] })).rejects.toThrow(
      /pixelValues\[0\] has 338687 values, expected 3x336x336 = 338688/,
    );
    const badId = inputIds.slice();
    badId[3] = 40000;
    await expect(model.generate({ ...req, inputIds: badId })).rejects.toThrow(/inputIds\[3\] = 40000 is outside the vocabulary \[0, 32064\)/);
    const negative = inputIds.slice();
    negative[0] = -1;
    await expect(model.generate({ ...req, inputIds: negative })).rejects.toThrow(/inputIds\[0\] = -1/);
    // One image token too few.
    const first = inputIds.indexOf(32000);
    const fewer = Int32Array.from([...inputIds.subarray(0, first), ...inputIds.subarray(first + 1)]);
    await expect(model.generate({ ...req, inputIds: fewer })).rejects.toThrow(/run of 575 image tokens .* needs exactly 576/);
    await expect(model.generate({ ...req, pixelValues: [] })).rejects.toThrow(/image tokens for 1 image\(s\) but pixelValues has 0/);
    await expect(model.generate({ ...req, pixelValues: [pixelValues, pixelValues] })).rejects.toThrow(/pixelValues has 2/);
    await expect(model.generate({ ...req, inputIds: new Int32Array(0) })).rejects.toThrow(/inputIds is empty/);
    await expect(model.generate({ ...req, inputIds: Array.from(inputIds) as unknown as Int32Array })).rejects.toThrow(
      /inputIds must be a Int32Array/,
    );
    await expect(model.generate({ ...req, topP: 0 })).rejects.toThrow(/topP must be in \(0, 1\]/);
    await expect(model.generate({ ...req, maxNewTokens: 1.5 })).rejects.toThrow(/maxNewTokens must be an integer/);
    await expect(model.generate({ ...req, temperature: Number.NaN })).rejects.toThrow(/temperature must be finite/);
    await expect(model.generate({ ...req, cancel: { cancel() {}, cancelled: false } })).rejects.toThrow(/createCancelToken/);
    await expect(model.generate(null as never)).rejects.toThrow(/request must be an object/);
    await stillWorks();
  });

  it('rejects prompts longer than the model positions', async () => {
    const max = model.info().llm.maxPositions;
    await expect(model.generate(baseRequest(new Int32Array(max + 1).fill(1)))).rejects.toThrow(
      new RegExp(`prompt has ${max + 1} tokens, more than the model's max_position_embeddings \\(${max}\\)`),
    );
    // A forced image needs 1 + 680 more positions.
    const near = new Int32Array(max - 100).fill(1);
    await expect(model.generate({ ...baseRequest(near), forceImage: true })).rejects.toThrow(/\(\+681 for the image\)/);
    // Text generation stops at the position limit instead of failing.
    const r = await model.generate({ ...baseRequest(new Int32Array(max - 2).fill(1)), maxNewTokens: 10 });
    expect(r.stopReason).toBe('length');
    expect(r.tokens.length).toBe(3);
    await stillWorks();
  });

  it('validates replay arrays', async () => {
    const ex = await Expected.open('generation.safetensors');
    const image = { cfg: 1.5, topK: 900, topP: 0.96, seed: 0 };
    const req = { ...baseRequest(ex.ints('input_ids')), forceImage: true };
    await expect(model.generate({ ...req, image: { ...image, replay: { indices: [], noise: [] } } })).rejects.toThrow(
      /replay needs 10 indices and noise arrays/,
    );
    const indices = Array.from({ length: 10 }, (_, si) => ex.ints(`s${si}.sampled_idx`));
    const noise = Array.from({ length: 10 }, (_, si) => ex.f32(`s${si}.noise`));
    noise[4] = noise[4]!.subarray(1);
    await expect(model.generate({ ...req, image: { ...image, replay: { indices, noise } } })).rejects.toThrow(
      /replay.noise\[4\] has 1599 values, expected 25x64 = 1600/,
    );
  });

  it('names the tensor and shapes of a broken checkpoint, and the path of a missing one', async () => {
    const missing = brokenCheckpoint((h) => {
      h['vargpt_gen.head.biaz'] = h['vargpt_gen.head.bias'];
      delete h['vargpt_gen.head.bias'];
    });
    temps.push(missing);
    await expect(addon.loadModel(missing, { device: 'cpu' })).rejects.toThrow(/no tensor vargpt_gen\.head\.bias \(expected shape \[4096\]\)/);

    const misshaped = brokenCheckpoint((h) => {
      h['language_model.model.norm.weight'].shape = [8, 8];
    });
    temps.push(misshaped);
    await expect(addon.loadModel(misshaped, { device: 'cpu' })).rejects.toThrow(
      /language_model\.model\.norm\.weight has shape \[8, 8\], expected \[64\]/,
    );

    const layers = brokenCheckpoint(() => {}, (c) => {
      c.text_config.num_hidden_layers = 3;
    });
    temps.push(layers);
    await expect(addon.loadModel(layers, { device: 'cpu' })).rejects.toThrow(/config says 3 LLM layers, checkpoint has .*layers\.0\.\.1/);

    await expect(addon.loadModel('/nonexistent/vargpt', { device: 'cpu' })).rejects.toThrow(/\/nonexistent\/vargpt/);
    await expect(addon.loadModel(TINY_F32, { device: 'tpu' })).rejects.toThrow(/unknown device "tpu"/);
    if (!addon.devices().cuda.available) {
      await expect(addon.loadModel(TINY_F32, { device: 'cuda' })).rejects.toThrow(/CUDA is unavailable/);
    }
  });

  it('aborts a load, and rejects with the exception a callback threw', async () => {
    const token = addon.createCancelToken();
    token.cancel();
    await expect(addon.loadModel(TINY_F32, { device: 'cpu', cancel: token })).rejects.toMatchObject({ name: 'AbortError' });
    await expect(
      addon.loadModel(TINY_F32, {
        device: 'cpu',
        onProgress: () => {
          throw new RangeError('progress callback failed');
        },
      }),
    ).rejects.toThrow(RangeError);

    const { inputIds, pixelValues } = await understandingInputs();
    let calls = 0;
    await expect(
      model.generate({
        ...baseRequest(inputIds),
        pixelValues: [pixelValues],
        maxNewTokens: 50,
        onToken: () => {
          calls++;
          throw new TypeError('token callback failed');
        },
      }),
    ).rejects.toThrow(/token callback failed/);
    expect(calls).toBe(1);
    await stillWorks();
  });

  it('serialises concurrent calls and finishes a call running when dispose() comes', async () => {
    const m = await loadTiny();
    const { inputIds, pixelValues, ex } = await understandingInputs();
    const gen = await Expected.open('generation.safetensors');
    const meta = expectedJson('generation.json');
    const imageReq = {
      ...baseRequest(gen.ints('input_ids')),
      forceImage: true,
      image: { cfg: meta.cfg, topK: meta.top_k, topP: meta.top_p, seed: 5 },
    };
    // Two calls in flight at once must not interleave on the shared KV cache.
    const [image, text] = await Promise.all([
      m.generate(imageReq),
      m.generate({ ...baseRequest(inputIds), pixelValues: [pixelValues] }),
    ]);
    expectEqualInts('tokens of the concurrent understanding call', text.tokens, ex.ints('generated_ids'));
    expect(image.stopReason).toBe('image');

    const running = m.generate(imageReq);
    m.dispose();
    const finished = await running;
    expect(Buffer.from(finished.image!.data).equals(Buffer.from(image.image!.data))).toBe(true);
    await expect(m.generate(imageReq)).rejects.toThrow(/model is disposed/);
    await expect(m.decodeImageTokens([])).rejects.toThrow(/model is disposed/);
    expect(() => m.info()).toThrow(/model is disposed/);
    m.dispose(); // twice is harmless
  });
});
