// synthesize({ family: 'vargpt-v1.1' }): the tiny preset written in bf16 (the fixture's dtype) and
// in f32 with a shard limit that splits it, against the vargpt-v1.1-tiny fixture's files; the
// tokenizer rebuilt from the Qwen2 vocabulary against the fixture's; bad input.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native } from '../../lib/native.js';
import { synthesize } from '../../lib/synth.js';
import type { SynthesizeOptions, SynthesizeV11Result } from '../../lib/synth.js';
import { bf16ToF32 } from '../../lib/tensor.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { asFloat32, asNumbers, readJson, readSafetensors, readSafetensorsHeader } from '../helpers/fixtures.js';
import type { StTensor } from '../helpers/fixtures.js';
import { fixturesMissing, v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-synth11-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function allTensors(dir: string): Map<string, StTensor> {
  const out = new Map<string, StTensor>();
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) for (const [k, v] of readSafetensors(path.join(dir, f))) out.set(k, v);
  return out;
}

function described(dir: string): Record<string, string> {
  return Object.fromEntries([...allTensors(dir)].map(([k, v]) => [k, `${v.dtype}${JSON.stringify(v.shape)}`]));
}

function bf16Values(t: StTensor): number[] {
  expect(t.dtype).toBe('BF16');
  const bits = new Uint16Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.length));
  return Array.from(bits, (b) => bf16ToF32(b));
}

const json = (dir: string, file: string) => readJson(path.join(dir, file));

// 130 MB of f32 in shards of at most 40 MB (the embedding tables are 19 MB each), written once for
// both blocks that read it: without the fixtures the first one skips whole, hooks included.
let sharded: Promise<unknown> | undefined;
const synthesizeSharded = () => (sharded ??= synthesize({ family: 'vargpt-v1.1', preset: 'tiny', out: path.join(work, 'tiny-f32-sharded'), seed: 7, maxShardBytes: 40e6 }));

// The comparisons with the fixture checkpoint skip without it; the checkpoints synthesized here
// still load in the runtime below, and bad input is refused, everywhere.
describe('synthesize vargpt-v1.1 tiny (the fixture sizes)', () => {
  const bf16Dir = path.join(work, 'tiny-bf16');
  const shardedDir = path.join(work, 'tiny-f32-sharded');
  let bf16: SynthesizeV11Result;
  beforeAll(async () => {
    bf16 = await synthesize({ family: 'vargpt-v1.1', preset: 'tiny', out: bf16Dir, seed: 7, dtype: 'bf16' });
    await synthesizeSharded();
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("writes exactly the fixture's files, tensor names, shapes and dtypes (bf16, the mask int64)"), () => {
    expect(readdirSync(bf16Dir).sort()).toEqual(readdirSync(v11ModelDir).sort());
    expect(bf16).toMatchObject({ family: 'vargpt-v1.1', tensors: 442, parameters: 32472971, bytes: 64948502 });
    const mine = readSafetensorsHeader(path.join(bf16Dir, 'model.safetensors'));
    const theirs = readSafetensorsHeader(path.join(v11ModelDir, 'model.safetensors'));
    // Same header, offsets included: the writer orders tensors as Python's safetensors does.
    expect(mine).toEqual(theirs);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("writes every JSON file equal to the fixture's"), () => {
    for (const f of readdirSync(v11ModelDir).filter((f) => f.endsWith('.json'))) {
      expect({ f, json: json(bf16Dir, f) }).toEqual({ f, json: json(v11ModelDir, f) });
    }
    const f32Config = json(shardedDir, 'config.json');
    expect(f32Config['torch_dtype']).toBe('float32');
    expect({ ...f32Config, torch_dtype: 'bfloat16' }).toEqual(json(v11ModelDir, 'config.json'));
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("puts the manifest's sizes in config.json and preprocessor_config.json"), () => {
    const { configuration } = readJson<{ configuration: { text: Record<string, unknown>; vision: Record<string, unknown>; image_proc: Record<string, unknown> } }>(
      path.join(v11ExpectedDir, 'manifest.json'),
    );
    const config = json(bf16Dir, 'config.json') as Record<string, unknown> & { rope_scaling: { mrope_section: number[] }; vision_config: Record<string, unknown> };
    for (const [key, value] of Object.entries(configuration.text)) {
      expect({ key, value: key === 'mrope_section' ? config.rope_scaling.mrope_section : config[key] }).toEqual({ key, value });
    }
    for (const [key, value] of Object.entries(configuration.vision)) expect({ key, value: config.vision_config[key] }).toEqual({ key, value });
    const pre = json(bf16Dir, 'preprocessor_config.json');
    for (const [key, value] of Object.entries(configuration.image_proc)) expect({ key, value: pre[key] }).toEqual({ key, value });
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("writes the fixture's buffer values and the shared init scheme"), () => {
    const mine = allTensors(bf16Dir);
    const fixture = readSafetensors(path.join(v11ModelDir, 'model.safetensors'));
    expect(asNumbers(mine.get('vae_local.quantizer.lfq.mask')!)).toEqual(asNumbers(fixture.get('vae_local.quantizer.lfq.mask')!));
    expect(asNumbers(mine.get('vae_local.quantizer.lfq.mask')!).slice(0, 2)).toEqual([2 ** 31, 2 ** 30]);
    for (const name of ['vargpt_gen.block_chunks.1.module.1.sa.zero_k_bias', 'vargpt_gen.block_chunks.0.module.0.ca.zero_k_bias', 'vargpt_gen.text_proj_for_sos.ca.zero_k_bias']) {
      expect(bf16Values(mine.get(name)!).every((v) => v === 0)).toBe(true);
    }
    expect(bf16Values(mine.get('vargpt_gen.block_chunks.1.module.0.sa.scale_mul_1H11')!)).toEqual([1.3828125, 1.3828125]); // bf16(ln 4)
    const f32 = allTensors(shardedDir);
    const std = (name: string) => {
      const v = asFloat32(f32.get(name)!);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    };
    expect(std('model.layers.0.mlp.gate_proj.weight')).toBeCloseTo(1 / Math.sqrt(32), 2);
    expect(std('visual.patch_embed.proj.weight')).toBeCloseTo(1 / Math.sqrt(3 * 2 * 14 * 14), 3);
    expect(std('vargpt_gen.block_chunks.0.module.0.ffn.fc2.weight')).toBeCloseTo(1 / Math.sqrt(512) / Math.sqrt(8), 3); // 1/sqrt(2 * 4 blocks)
    expect(std('sos_embedding.weight')).toBeCloseTo(1, 2);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('shards above maxShardBytes with an index like transformers, and stores bf16 = round(f32) of one seed'), async () => {
    const files = readdirSync(shardedDir);
    const shards = files.filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const index = readJson<{ metadata: { total_size: number }; weight_map: Record<string, string> }>(path.join(shardedDir, 'model.safetensors.index.json'));
    const f32 = allTensors(shardedDir);
    expect(Object.keys(index.weight_map).sort()).toEqual([...f32.keys()].sort());
    const headers = new Map(shards.map((f) => [f, readSafetensorsHeader(path.join(shardedDir, f))]));
    for (const [name, file] of Object.entries(index.weight_map)) expect(headers.get(file)?.[name]).toBeDefined();
    expect(index.metadata.total_size).toBe([...f32.values()].reduce((n, t) => n + t.bytes.length, 0));
    // Each shard within the limit, unless it is one tensor larger than the limit (sos_embedding, 78 MB).
    for (const [f, header] of headers) {
      const names = Object.keys(header);
      if (names.length > 1) expect(statSync(path.join(shardedDir, f)).size).toBeLessThan(40e6 + 1e5);
      else expect(names).toEqual(['sos_embedding.weight']);
    }
    const fixtureF32 = Object.fromEntries(Object.entries(described(v11ModelDir)).map(([k, v]) => [k, v.replace('BF16', 'F32')]));
    expect(described(shardedDir)).toEqual(fixtureF32);
    // The same numbers in both checkpoints, up to bf16 rounding.
    const a = asFloat32(f32.get('vargpt_gen.head.weight')!);
    const b = bf16Values(allTensors(bf16Dir).get('vargpt_gen.head.weight')!);
    let maxRel = 0;
    for (let i = 0; i < a.length; i++) maxRel = Math.max(maxRel, Math.abs(b[i]! - a[i]!) / Math.abs(a[i]!));
    expect(maxRel).toBeGreaterThan(0);
    expect(maxRel).toBeLessThanOrEqual(2 ** -8);
    // The runtime's own reader takes the sharded folder.
    const listed = (await native().openCheckpoint(shardedDir)).list();
    expect(listed).toHaveLength(442);
    expect(listed.find((t) => t.name === 'vae_local.quantizer.lfq.mask')).toMatchObject({ dtype: 'i64', shape: [32] });
  });
});

describe('the synthesized VARGPT-v1.1 checkpoint in the runtime', () => {
  beforeAll(async () => {
    await synthesizeSharded();
  });

  it('loads (sharded f32) through the LLM and vision-tower loaders, sizes from config.json, activations in range', async () => {
    const dir = path.join(work, 'tiny-f32-sharded');
    const llm = await native().loadLanguageModel(dir, 'cpu');
    expect(llm.config()).toMatchObject({ hiddenSize: 32, layers: 2, heads: 2, kvHeads: 1, headDim: 16, vocabSize: 152064, positionAxes: 3, qkvBias: true, tiedEmbeddings: false });
    const rms = (v: Float32Array) => Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
    const out = await llm.forward({ ids: Int32Array.of(151644, 872, 198, 9707, 0, 151645), sequence: llm.newSequence() });
    const hidden = new Float32Array(out.hidden.data);
    expect(hidden.every(Number.isFinite)).toBe(true);
    expect(rms(hidden)).toBeGreaterThan(0.3);
    expect(rms(hidden)).toBeLessThan(3);
    const vit = await native().loadVisionTower(dir, 'cpu');
    const pixels = new Float32Array(16 * 1176).map((_, i) => Math.sin(i * 0.37));
    const features = new Float32Array((await vit.encode(pixels, Int32Array.of(1, 4, 4))).features.data);
    expect(features.length).toBe(4 * 32); // 16 patches merged 2x2, to the LLM width
    expect(features.every(Number.isFinite)).toBe(true);
    expect(rms(features)).toBeGreaterThan(0.1);
  });
});

describe('the synthesized VARGPT-v1.1 tokenizer', () => {
  const dir = path.join(work, 'tiny-bf16');
  const load = (d: string) => new Tokenizer(json(d, 'tokenizer.json'), json(d, 'tokenizer_config.json'));

  it.skipIf(fixturesMissing !== null)(fixtureTitle("encodes text and special tokens to the fixture tokenizer's ids"), () => {
    expect(existsSync(path.join(dir, 'tokenizer.json'))).toBe(true);
    const mine = load(dir);
    const theirs = load(v11ModelDir);
    const manifest = readJson<{ cases: Record<string, { prompt?: string }> }>(path.join(v11ExpectedDir, 'manifest.json'));
    const texts = [
      'Hello, world! The quick brown fox jumps over 13 lazy dogs.',
      "It's 2025; we'll see. x=1+2*3 // code\n\tindented\r\n",
      'Ünïcödé naïve café, Ærøskøbing, São Paulo',
      '日本語のテキスト，中文文本。한국어',
      '😀 🎨🦋 👩‍👩‍👧 flags 🇫🇷',
      '<|image_gen_start|><|image_gen_pad|><|image_gen_pad|><|image_gen_end|>',
      'before<|vision_start|><|image_pad|><|vision_end|>after<|im_end|>',
      '   leading and trailing   \n\n\n',
      '',
      ...Object.values(manifest.cases).flatMap((c) => (c.prompt ? [c.prompt] : [])),
    ];
    for (const text of texts) {
      const ids = mine.encode(text).ids;
      expect({ text, ids }).toEqual({ text, ids: theirs.encode(text).ids });
      if (ids.length > 0) expect(mine.decode(ids)).toBe(text);
    }
    expect(mine.encode('<|image_gen_start|><|image_gen_end|><|image_gen_pad|>').ids).toEqual([151657, 151658, 151659]);
    expect(mine.encode('<|endoftext|><|im_start|><|im_end|>').ids).toEqual([151643, 151644, 151645]);
  });
});

describe('synthesize vargpt-v1.1: bad input', () => {
  it('rejects an unknown family or preset clearly and writes nothing', async () => {
    const out = path.join(work, 'never');
    await expect(synthesize({ family: 'vargpt-v2', preset: 'tiny', out } as unknown as SynthesizeOptions)).rejects.toThrow(
      /family must be vargpt-v1, vargpt-v1\.1 or blip3o, got "vargpt-v2"/,
    );
    await expect(synthesize({ family: 'vargpt-v1.1', preset: 'huge', out } as unknown as SynthesizeOptions)).rejects.toThrow(
      /preset "huge" is not a vargpt-v1\.1 preset \(tiny, small, medium, full\)/,
    );
    await expect(synthesize({ family: 'vargpt-v1.1', preset: 'vargpt-v1', out } as unknown as SynthesizeOptions)).rejects.toThrow(/not a vargpt-v1\.1 preset/);
    await expect(synthesize({ family: 'vargpt-v1', preset: 'full', out })).rejects.toThrow(/preset "full" is neither tiny, small, medium, vargpt-v1 nor the path of a config.json/);
    await expect(synthesize({ family: 'vargpt-v1.1', preset: 'tiny', out, varDepth: 2 } as unknown as SynthesizeOptions)).rejects.toThrow(/varDepth applies to family vargpt-v1 only/);
    await expect(synthesize({ family: 'vargpt-v1.1', preset: 'tiny', out, dtype: 'f64' as never })).rejects.toThrow(/dtype must be f32, bf16 or f16/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((f) => f.startsWith('never'))).toEqual([]);
  });
});
