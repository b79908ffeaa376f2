// `vargpt quantize` / quantizeCheckpoint(): a checkpoint written with its LLM and image-generator
// linear layers stored as int8 or q4 loads with no float copy of them and computes exactly what
// quantizing on load computes (the same traced logits and the same drawn image, bit for bit); the
// other files, subfolders included, are copied; corrupt quantized tensors are refused on load,
// naming the tensor.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../lib/index.js';
import { isQuantizedTensor, quantizeCheckpoint } from '../../lib/quantize.js';
import { generatorWeights } from '../helpers/generator-weights.js';
import { blip3oModelDir, tinyModelDir, v11ModelDir } from '../helpers/paths.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'vargpt-quantize-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

interface Header {
  offset: number;
  entries: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
}

async function header(file: string): Promise<Header> {
  const bytes = await readFile(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const parsed = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Header['entries'];
  delete (parsed as Record<string, unknown>)['__metadata__'];
  return { offset: 8 + n, entries: parsed };
}

async function traced(dir: string, weights: 'auto' | 'int8' | 'q4') {
  const model = await loadModel(dir, { device: 'cpu', weights });
  try {
    const reply = await model.chat([{ role: 'user', content: 'Describe a small robot.' }], { maxNewTokens: 6, trace: true });
    const logits = reply.trace?.['stepLogits'] ?? reply.trace?.['step_logits'];
    const info = model.info;
    const image = await model.generateImage('a small robot', { seed: 2, ...(info.family === 'blip3o' ? { steps: 4 } : {}) });
    return {
      weights: info.llm.weights,
      generator: generatorWeights(info),
      logits: Buffer.from(logits!.data.buffer, logits!.data.byteOffset, logits!.data.byteLength),
      pixels: Buffer.from(image.image.data),
    };
  } finally {
    await model.dispose();
  }
}

describe('quantizeCheckpoint', () => {
  it.each([
    ['vargpt-v1', 'int8', tinyModelDir],
    ['vargpt-v1', 'q4', tinyModelDir],
    ['vargpt-v1.1', 'q4', v11ModelDir],
    ['blip3o', 'int8', blip3oModelDir],
  ] as const)('%s as %s: loads as written, equal to quantizing on load', async (family, weights, dir) => {
    const out = path.join(work, `${family}-${weights}`);
    const report = await quantizeCheckpoint({ model: dir, out, weights });
    expect(report.llmLayers).toBeGreaterThan(0);
    expect(report.generatorLayers).toBeGreaterThan(0);
    expect(report.quantized).toBe(report.llmLayers + report.generatorLayers);
    expect(report.bytesOut).toBeLessThan(report.bytesIn);
    const h = await header(path.join(out, 'model.safetensors'));
    for (const [name, e] of Object.entries(h.entries)) {
      if (!isQuantizedTensor(name, family)) continue;
      expect(e.dtype).toBe(weights === 'int8' ? 'I8' : 'U8');
      expect(h.entries[`${name}.${weights === 'int8' ? 'q8' : 'q4'}_scale`]).toBeDefined();
    }
    const config = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8')) as { vargpt_quantization?: { weights: string } };
    expect(config.vargpt_quantization?.weights).toBe(weights);
    // Every other file and folder is there (BLIP3-o's diffusion-decoder/ included).
    const want = (await readdir(dir)).filter((f) => !f.endsWith('.safetensors') && f !== 'model.safetensors.index.json');
    expect((await readdir(out)).sort()).toEqual([...want, 'model.safetensors'].sort());
    const written = await traced(out, 'auto');
    const onLoad = await traced(dir, weights);
    expect(written.weights).toBe(weights);
    expect(written.generator).toBe(weights);
    expect(written.logits.equals(onLoad.logits)).toBe(true);
    expect(written.pixels.equals(onLoad.pixels)).toBe(true);
  });

  it('refuses a corrupt scale, an int8 value of -128, another precision and a non-empty output folder', async () => {
    const out = path.join(work, 'corrupt');
    await quantizeCheckpoint({ model: tinyModelDir, out, weights: 'int8' });
    const file = path.join(out, 'model.safetensors');
    const original = await readFile(file);
    const h = await header(file);
    const name = 'language_model.model.layers.0.mlp.up_proj.weight';
    const scale = h.entries[`${name}.q8_scale`]!;
    const q = h.entries[name]!;

    const badScale = Buffer.from(original);
    badScale.writeFloatLE(Number.NaN, h.offset + scale.data_offsets[0] + 4 * 3);
    await writeFile(file, badScale);
    await expect(loadModel(out)).rejects.toThrow(new RegExp(`${name.replace(/\./g, '\\.')}\\.q8_scale\\[3\\] = nan is not a scale`));

    const badValue = Buffer.from(original);
    badValue.writeInt8(-128, h.offset + q.data_offsets[0] + 5);
    await writeFile(file, badValue);
    await expect(loadModel(out)).rejects.toThrow(/-128 is outside the int8 range/);

    await writeFile(file, original);
    await expect(loadModel(out, { weights: 'q4' })).rejects.toThrow(/is stored as int8 .*load it with weights 'auto' or 'int8'/);
    const reloaded = await loadModel(out, { weights: 'int8' });
    expect(reloaded.info.llm.weights).toBe('int8');
    await reloaded.dispose();

    await expect(quantizeCheckpoint({ model: tinyModelDir, out, weights: 'q4' })).rejects.toThrow(/exists and is not empty/);
    await expect(quantizeCheckpoint({ model: out, out: path.join(work, 'again'), weights: 'q4' })).rejects.toThrow(/not a float matrix/);
  });
});
