// Grouped-query attention in the model, checked by equivalence: a GQA checkpoint (4 query heads
// sharing 2 KV heads) must compute exactly what the MHA checkpoint computes whose k_proj/v_proj
// rows repeat each KV head for the query heads of its group. No upstream fixture uses GQA, so
// the MHA path (itself checked against the upstream fixture) is the reference here.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Checkpoint } from '../../lib/checkpoint.js';
import { PRESETS, synthesize } from '../../lib/synth.js';
import type { NativeModel } from '../../lib/native.js';
import { addon, baseRequest, expectClose, traceValues, understandingInputs, TINY_F32 } from '../helpers/model-fixture.js';
import { safetensorsBytes } from '../helpers/safetensors-writer.js';

const HEADS = 4;
const KV_HEADS = 2;
const work = mkdtempSync(path.join(tmpdir(), 'vargpt-gqa-'));
const gqaDir = path.join(work, 'gqa');
const mhaDir = path.join(work, 'mha');

// Writes every tensor of `ckpt` into dir/model.safetensors, k_proj/v_proj expanded to MHA.
async function writeExpandedMha(ckpt: Checkpoint, dir: string, headDim: number): Promise<void> {
  const header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const entry of ckpt.tensors) {
    const t = ckpt.read(entry.name);
    let shape = [...t.shape];
    let bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (/^language_model\.model\.layers\.\d+\.self_attn\.(k|v)_proj\.weight$/.test(entry.name)) {
      expect(t.dtype).toBe('f32');
      const hidden = shape[1]!;
      const src = t.data as Float32Array;
      const out = new Float32Array(HEADS * headDim * hidden);
      for (let h = 0; h < HEADS; h++) {
        const g = Math.floor(h / (HEADS / KV_HEADS));
        out.set(src.subarray(g * headDim * hidden, (g + 1) * headDim * hidden), h * headDim * hidden);
      }
      shape = [HEADS * headDim, hidden];
      bytes = Buffer.from(out.buffer);
    }
    const dtype = { f32: 'F32', bf16: 'BF16', f16: 'F16', i64: 'I64', i32: 'I32', u8: 'U8', i8: 'I8' }[t.dtype];
    header[entry.name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(Buffer.from(bytes));
    offset += bytes.length;
  }
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsBytes(header, Buffer.concat(chunks)));
}

describe('grouped-query attention in the LLM', () => {
  let gqa: NativeModel;
  let mha: NativeModel;

  beforeAll(async () => {
    const config = JSON.parse(readFileSync(path.join(TINY_F32, 'config.json'), 'utf8')) as { text_config: Record<string, number> };
    expect(config.text_config['num_attention_heads']).toBe(HEADS);
    config.text_config['num_key_value_heads'] = KV_HEADS;
    const configPath = path.join(work, 'config.json');
    writeFileSync(configPath, JSON.stringify(config));
    await synthesize({ preset: configPath, out: gqaDir, seed: 11, varDepth: 2, vqvae: PRESETS.tiny.vqvae });

    // The MHA twin: same files, num_key_value_heads = heads, expanded k/v projections.
    const { mkdirSync } = await import('node:fs');
    mkdirSync(mhaDir);
    for (const file of readdirSync(gqaDir)) if (file.endsWith('.json') && !file.startsWith('model.safetensors')) copyFileSync(path.join(gqaDir, file), path.join(mhaDir, file));
    const mhaConfig = JSON.parse(readFileSync(path.join(gqaDir, 'config.json'), 'utf8')) as { text_config: Record<string, number> };
    mhaConfig.text_config['num_key_value_heads'] = HEADS;
    writeFileSync(path.join(mhaDir, 'config.json'), JSON.stringify(mhaConfig));
    const headDim = config.text_config['hidden_size']! / HEADS;
    await writeExpandedMha(await Checkpoint.open(gqaDir), mhaDir, headDim);

    gqa = await addon.loadModel(gqaDir, { device: 'cpu' });
    mha = await addon.loadModel(mhaDir, { device: 'cpu' });
  }, 300_000);

  afterAll(() => {
    gqa?.dispose();
    mha?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it('loads as GQA and matches its MHA expansion: prefill logits, greedy tokens, step logits', async () => {
    expect(gqa.info().llm.kvHeads).toBe(KV_HEADS);
    expect(mha.info().llm.kvHeads).toBe(HEADS);
    const { inputIds, pixelValues } = await understandingInputs();
    const request = { ...baseRequest(inputIds), pixelValues: [pixelValues], trace: true };
    const a = await gqa.generate(request);
    const b = await mha.generate(request);
    // The same arithmetic in a different head grouping: only summation order could differ, so
    // the float32 bound of the fixture README for LLM tensors (1e-5 of max|ref|) applies.
    expectClose('prefillLogits', traceValues(a.trace, 'prefillLogits'), traceValues(b.trace, 'prefillLogits'), 1e-5);
    expectClose('stepLogits', traceValues(a.trace, 'stepLogits'), traceValues(b.trace, 'stepLogits'), 1e-5);
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    expect(a.tokens.length).toBe(8);
  });
});
