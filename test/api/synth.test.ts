import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readCheckpointFiles } from '../../lib/families/vargpt-v1.js';
import { synthesize } from '../../lib/synth.js';
import { checkpointLayout, parameterCount, PRESETS } from '../../lib/synth/vargpt-v1.js';
import { VargptTokenizer } from '../../lib/tokenizer.js';
import { native } from '../../lib/native.js';
import { bf16ToF32, f16ToF32 } from '../../lib/tensor.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { asFloat32, asNumbers, fixtureModel, fixtureModelBf16, readSafetensors, readSafetensorsHeader } from '../helpers/fixtures.js';
import { fixturesMissing } from '../helpers/paths.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-synth-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function shapes(header: Record<string, { dtype: string; shape: number[] }>): Record<string, string> {
  return Object.fromEntries(Object.entries(header).map(([k, v]) => [k, `${v.dtype}${JSON.stringify(v.shape)}`]));
}

function allTensors(dir: string): Map<string, { dtype: string; shape: number[]; bytes: Buffer }> {
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) for (const [k, v] of readSafetensors(path.join(dir, f))) out.set(k, v);
  return out;
}

// The tests that compare with the fixture checkpoint skip without it; the synthesized checkpoints'
// own checks run everywhere.
describe('synthesize tiny (the fixture sizes)', () => {
  const f32Dir = path.join(work, 'tiny-f32');
  const bf16Dir = path.join(work, 'tiny-bf16');
  beforeAll(async () => {
    await synthesize({ preset: 'tiny', out: f32Dir, seed: 7 });
    // A small shard limit forces the sharded layout, as the fixture's model-bf16-sharded.
    await synthesize({ preset: 'tiny', out: bf16Dir, seed: 7, dtype: 'bf16', maxShardBytes: 16e6 });
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('writes exactly the fixture checkpoint tensor names and shapes (f32, lvl_1L int64)'), () => {
    const fixture = readSafetensorsHeader(path.join(fixtureModel, 'model.safetensors'));
    const mine = readSafetensorsHeader(path.join(f32Dir, 'model.safetensors'));
    expect(Object.keys(mine).length).toBe(438);
    expect(shapes(mine)).toEqual(shapes(fixture));
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('writes the same JSON files as the fixture'), () => {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.json', 'generation_config.json', 'preprocessor_config.json', 'processor_config.json', 'config.json']) {
      const mine = JSON.parse(readFileSync(path.join(f32Dir, f), 'utf8')) as Record<string, unknown>;
      const theirs = JSON.parse(readFileSync(path.join(fixtureModel, f), 'utf8')) as Record<string, unknown>;
      if (f === 'config.json') {
        expect(mine['transformers_version']).toBe('4.46.1');
        delete mine['transformers_version'];
        delete theirs['transformers_version'];
      }
      expect({ f, json: mine }).toEqual({ f, json: theirs });
    }
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('builds a tokenizer.json that tokenizes exactly like the fixture one'), async () => {
    const mine = await VargptTokenizer.fromDir(f32Dir);
    const theirs = await VargptTokenizer.fromDir(fixtureModel);
    const texts = ['USER: <image>\nWhat is shown in this image? ASSISTANT:', 'Ünïcödé 日本語 😀  spaces\t\n', '<|image_gen_start|>x<|image_gen_pad|>', '', 'a  b'];
    for (const t of texts) expect(mine.encode(t)).toEqual(theirs.encode(t));
    expect(mine.specialTokens).toEqual(theirs.specialTokens);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('writes buffers as upstream computes them'), () => {
    const mine = allTensors(f32Dir);
    const fixture = readSafetensors(path.join(fixtureModel, 'model.safetensors'));
    expect(asNumbers(mine.get('vargpt_gen.lvl_1L')!)).toEqual(asNumbers(fixture.get('vargpt_gen.lvl_1L')!));
    expect(Array.from(asFloat32(mine.get('vargpt_gen.attn_bias_for_masking')!))).toEqual(Array.from(asFloat32(fixture.get('vargpt_gen.attn_bias_for_masking')!)));
    expect(asFloat32(mine.get('vargpt_gen.blocks.0.attn.zero_k_bias')!).every((v) => v === 0)).toBe(true);
    expect(asFloat32(mine.get('vae_local.quantize.ema_vocab_hit_SV')!).every((v) => v === 0)).toBe(true);
    expect(Array.from(asFloat32(mine.get('vargpt_gen.blocks.1.attn.scale_mul_1H11')!))).toEqual([Math.fround(Math.log(4)), Math.fround(Math.log(4))]);
  });

  it('scales weights to keep activations sane', () => {
    const mine = allTensors(f32Dir);
    const std = (name: string) => {
      const v = asFloat32(mine.get(name)!);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    };
    const mean = (name: string) => asFloat32(mine.get(name)!).reduce((a, b) => a + b, 0) / asFloat32(mine.get(name)!).length;
    expect(std('language_model.model.layers.0.mlp.gate_proj.weight')).toBeCloseTo(1 / Math.sqrt(64), 2);
    expect(std('language_model.model.layers.0.mlp.down_proj.weight')).toBeCloseTo(1 / Math.sqrt(172) / 2, 2); // 1/sqrt(2*2 layers)
    expect(std('vae_local.decoder.mid.block_1.conv1.weight')).toBeCloseTo(1 / Math.sqrt(128 * 9), 3);
    expect(std('language_model.model.embed_tokens.weight')).toBeCloseTo(1, 2);
    expect(mean('language_model.model.norm.weight')).toBeCloseTo(1, 1);
    expect(std('language_model.model.norm.weight')).toBeGreaterThan(0.005);
    expect(std('language_model.model.norm.weight')).toBeLessThan(0.05);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('shards with an index like transformers, and stores bf16 = round(f32) of the same seed'), () => {
    const files = readdirSync(bf16Dir);
    expect(files).toContain('model.safetensors.index.json');
    const index = JSON.parse(readFileSync(path.join(bf16Dir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const bf16 = allTensors(bf16Dir);
    expect(Object.keys(index.weight_map).sort()).toEqual([...bf16.keys()].sort());
    for (const [name, file] of Object.entries(index.weight_map)) expect(readSafetensorsHeader(path.join(bf16Dir, file))[name]).toBeDefined();
    expect(index.metadata.total_size).toBe([...bf16.values()].reduce((n, t) => n + t.bytes.length, 0));
    // Same names/shapes/dtypes as the fixture's bf16 sharded checkpoint.
    const fixtureBf16 = new Map<string, string>();
    for (const f of readdirSync(fixtureModelBf16).filter((f) => f.endsWith('.safetensors'))) {
      for (const [k, v] of Object.entries(readSafetensorsHeader(path.join(fixtureModelBf16, f)))) fixtureBf16.set(k, `${v.dtype}${JSON.stringify(v.shape)}`);
    }
    expect(Object.fromEntries([...bf16].map(([k, v]) => [k, `${v.dtype}${JSON.stringify(v.shape)}`]))).toEqual(Object.fromEntries(fixtureBf16));
    const f32 = allTensors(f32Dir);
    const a = asFloat32(f32.get('vargpt_gen.head.weight')!);
    const b = new Uint16Array(bf16.get('vargpt_gen.head.weight')!.bytes.buffer.slice(bf16.get('vargpt_gen.head.weight')!.bytes.byteOffset, bf16.get('vargpt_gen.head.weight')!.bytes.byteOffset + bf16.get('vargpt_gen.head.weight')!.bytes.length));
    let maxRel = 0;
    for (let i = 0; i < a.length; i++) maxRel = Math.max(maxRel, Math.abs(bf16ToF32(b[i]!) - a[i]!) / Math.max(Math.abs(a[i]!), 1e-30));
    expect(maxRel).toBeLessThanOrEqual(2 ** -8);
    expect(maxRel).toBeGreaterThan(0);
    const bias = bf16.get('vargpt_gen.attn_bias_for_masking')!;
    const bits = new Uint16Array(bias.bytes.buffer.slice(bias.bytes.byteOffset, bias.bytes.byteOffset + bias.bytes.length));
    expect(new Set(Array.from(bits, (x) => bf16ToF32(x)))).toEqual(new Set([0, -Infinity]));
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("lists, through the addon's openCheckpoint, exactly the fixture's tensors (dtype as requested, lvl_1L int64)"), async () => {
    const describe = async (dir: string) =>
      Object.fromEntries((await native().openCheckpoint(dir)).list().map((t) => [t.name, `${t.dtype}${JSON.stringify(t.shape)}`]));
    const fixture = await describe(fixtureModel);
    const f32 = await describe(f32Dir);
    expect(Object.keys(f32)).toHaveLength(438);
    expect(f32).toEqual(fixture);
    const bf16 = await describe(bf16Dir);
    expect(bf16).toEqual(await describe(fixtureModelBf16));
    expect(bf16['vargpt_gen.lvl_1L']).toBe('i64[1,680]');
    expect(bf16['vargpt_gen.head.weight']).toBe('bf16[4096,128]');
    // Values read back through the mapped files equal what was written.
    const ckpt = await native().openCheckpoint(f32Dir);
    const lvl = ckpt.read('vargpt_gen.lvl_1L');
    expect(Array.from(new BigInt64Array(lvl.data), Number).slice(0, 6)).toEqual([0, 1, 1, 1, 1, 2]);
  });

  it('parses as a checkpoint folder', async () => {
    const files = await readCheckpointFiles(bf16Dir);
    expect(files.config.text.hiddenSize).toBe(64);
    expect(files.config.vision?.imageSize).toBe(336);
    expect(files.preprocessor?.shortestEdge).toBe(336);
    expect(files.chatTemplate).toContain('ASSISTANT:');
  });
});

describe('synthesize options', () => {
  it('is deterministic in the seed and writes f16 as rounded f32', async () => {
    const a = path.join(work, 'det-a');
    const b = path.join(work, 'det-b');
    const c = path.join(work, 'det-c');
    const h = path.join(work, 'det-f16');
    await synthesize({ preset: 'tiny', out: a, seed: 3 });
    await synthesize({ preset: 'tiny', out: b, seed: 3 });
    await synthesize({ preset: 'tiny', out: c, seed: 4 });
    await synthesize({ preset: 'tiny', out: h, seed: 3, dtype: 'f16' });
    const read = (d: string) => readFileSync(path.join(d, 'model.safetensors'));
    expect(read(a).equals(read(b))).toBe(true);
    expect(read(a).equals(read(c))).toBe(false);
    const x = asFloat32(readSafetensors(path.join(a, 'model.safetensors')).get('language_model.model.layers.1.self_attn.q_proj.weight')!);
    const t = readSafetensors(path.join(h, 'model.safetensors')).get('language_model.model.layers.1.self_attn.q_proj.weight')!;
    expect(t.dtype).toBe('F16');
    const y = new Uint16Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.length));
    for (let i = 0; i < x.length; i++) {
      const back = f16ToF32(y[i]!);
      // Round to nearest: no other half is closer to the f32 value.
      expect(Math.abs(back - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -11 + 2 ** -25);
    }
    expect(JSON.parse(readFileSync(path.join(h, 'config.json'), 'utf8')).torch_dtype).toBe('float16');
  });

  it('gives the benchmark presets exactly the parameter counts of shared/bench/README.md', () => {
    expect((parameterCount(checkpointLayout(PRESETS.tiny)) / 1e6).toFixed(1)).toBe('14.3');
    expect((parameterCount(checkpointLayout(PRESETS.small)) / 1e6).toFixed(1)).toBe('341.7');
    expect((parameterCount(checkpointLayout(PRESETS.medium)) / 1e6).toFixed(1)).toBe('1711.1');
    // Spec §1: LLM 6.739 B + CLIP 0.304 B + projector 20,979,712 + VAR 2,069,546,116 + VQ-VAE 108,948,355 + gen projectors.
    expect((parameterCount(checkpointLayout(PRESETS['vargpt-v1'])) / 1e9).toFixed(2)).toBe('9.28');
  });

  it('lays out the full-size model with the shapes of spec §11', () => {
    const specs = new Map(checkpointLayout(PRESETS['vargpt-v1']).map((s) => [s.name, s.shape]));
    const prefixes = (p: string) => [...specs.keys()].filter((k) => k.startsWith(p));
    expect(specs.get('language_model.model.embed_tokens.weight')).toEqual([32064, 4096]);
    expect(specs.get('language_model.model.layers.31.mlp.down_proj.weight')).toEqual([4096, 11008]);
    expect(specs.get('vision_tower.vision_model.embeddings.position_embedding.weight')).toEqual([577, 1024]);
    expect(specs.get('vision_tower.vision_model.encoder.layers.23.mlp.fc1.weight')).toEqual([4096, 1024]);
    expect(specs.get('multi_modal_projector.linear_1.weight')).toEqual([4096, 1024]);
    expect(specs.get('image_gen_projector.mlp.2.weight')).toEqual([4096, 1920]);
    expect(specs.get('image_gen_projector_out.ln_q.weight')).toEqual([4096]);
    expect(specs.get('vargpt_gen.class_emb.weight')).toEqual([32004, 1920]);
    expect(specs.get('vargpt_gen.blocks.29.attn.mat_qkv.weight')).toEqual([5760, 1920]);
    expect(specs.get('vargpt_gen.blocks.29.attn.scale_mul_1H11')).toEqual([1, 30, 1, 1]);
    expect(specs.get('vargpt_gen.blocks.0.ada_lin.1.weight')).toEqual([11520, 1920]);
    expect(specs.get('vargpt_gen.attn_bias_for_masking')).toEqual([1, 1, 680, 680]);
    expect(specs.get('vargpt_gen.head.weight')).toEqual([4096, 1920]);
    expect(specs.get('vae_local.encoder.conv_in.weight')).toEqual([160, 3, 3, 3]);
    expect(specs.get('vae_local.encoder.down.2.block.0.nin_shortcut.weight')).toEqual([320, 160, 1, 1]);
    expect(specs.get('vae_local.encoder.down.4.attn.1.qkv.weight')).toEqual([1920, 640, 1, 1]);
    expect(specs.get('vae_local.encoder.conv_out.weight')).toEqual([32, 640, 3, 3]);
    expect(specs.get('vae_local.decoder.conv_in.weight')).toEqual([640, 32, 3, 3]);
    expect(specs.get('vae_local.decoder.up.1.block.0.nin_shortcut.weight')).toEqual([160, 320, 1, 1]);
    expect(specs.get('vae_local.decoder.up.4.upsample.conv.weight')).toEqual([640, 640, 3, 3]);
    expect(specs.get('vae_local.decoder.conv_out.weight')).toEqual([3, 160, 3, 3]);
    expect(specs.get('vae_local.quantize.embedding.weight')).toEqual([4096, 32]);
    expect(specs.get('vae_local.quantize.ema_vocab_hit_SV')).toEqual([10, 4096]);
    expect(prefixes('vargpt_gen.blocks.').filter((k) => k.endsWith('.ffn.fc1.weight'))).toHaveLength(30);
    expect(prefixes('vae_local.decoder.up.4.attn.')).toHaveLength(3 * 6);
    expect(prefixes('vae_local.decoder.up.0.upsample')).toHaveLength(0);
    expect(prefixes('vae_local.encoder.down.4.downsample')).toHaveLength(0);
    expect(prefixes('vae_local.quantize.quant_resi.qresi_ls.')).toHaveLength(8);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('takes a config.json path; no vision_config means no vision tower'), async () => {
    const fixtureConfig = JSON.parse(readFileSync(path.join(fixtureModel, 'config.json'), 'utf8')) as Record<string, unknown>;
    delete fixtureConfig['vision_config'];
    const cfg = path.join(work, 'novision-config.json');
    writeFileSync(cfg, JSON.stringify(fixtureConfig));
    const out = path.join(work, 'novision');
    const result = await synthesize({ preset: cfg, out, varDepth: 2, vqvae: { ch: 32 }, dtype: 'bf16' });
    const names = Object.keys(readSafetensorsHeader(path.join(out, 'model.safetensors')));
    expect(names.some((n) => n.startsWith('vision_tower.') || n.startsWith('multi_modal_projector.'))).toBe(false);
    expect(names).toContain('vargpt_gen.blocks.1.ffn.fc2.weight');
    expect(existsSync(path.join(out, 'preprocessor_config.json'))).toBe(false);
    expect(result.sizes.vision).toBeNull();
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config['torch_dtype']).toBe('bfloat16');
    expect((await readCheckpointFiles(out)).config.vision).toBeNull();
  });

  it('refuses a non-empty folder unless told to overwrite, and rejects bad options clearly', async () => {
    const out = path.join(work, 'busy');
    mkdirSync(out);
    writeFileSync(path.join(out, 'keep.txt'), 'x');
    await expect(synthesize({ preset: 'tiny', out })).rejects.toThrow(/is not empty/);
    await synthesize({ preset: 'tiny', out, overwrite: true });
    expect(existsSync(path.join(out, 'keep.txt'))).toBe(false);
    expect(existsSync(path.join(out, 'model.safetensors'))).toBe(true);
    await expect(synthesize({ preset: 'huge', out: path.join(work, 'x') })).rejects.toThrow(/neither tiny, small, medium, vargpt-v1 nor the path of a config.json/);
    await expect(synthesize({ preset: 'tiny', out: path.join(work, 'x'), dtype: 'f64' as never })).rejects.toThrow(/dtype must be f32, bf16 or f16/);
    await expect(synthesize({ preset: 'tiny', out: path.join(work, 'x'), seed: -1 })).rejects.toThrow(/seed must be a non-negative integer/);
    await expect(synthesize({ preset: path.join(work, 'missing.json'), out: path.join(work, 'x') })).rejects.toThrow(/not found/);
  });

  it('stops on abort and leaves nothing behind', async () => {
    const out = path.join(work, 'aborted');
    const controller = new AbortController();
    const run = synthesize({
      preset: 'tiny',
      out,
      signal: controller.signal,
      onProgress: ({ bytes, totalBytes }) => {
        if (bytes > totalBytes / 3) controller.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((f) => f.startsWith('aborted'))).toEqual([]);
  });
});
