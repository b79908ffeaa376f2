// synthesize({ family: 'blip3o' }): the tiny preset written against the blip3o-tiny fixture's
// files (the folder tree, every JSON file, the slow tokenizer files byte for byte, safetensors
// headers and metadata, the shard index), the tokenizer's ids, seeded reproducibility, the CLI
// command, and bad input.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { synthCommand } from '../../lib/cli/commands.js';
import type { JsonObject } from '../../lib/checkpoint-config.js';
import { ditSizesFromShapes, parseBlip3oConfig } from '../../lib/families/blip3o-config.js';
import { native } from '../../lib/native.js';
import { synthesize } from '../../lib/synth.js';
import type { SynthesizeBlip3oResult, SynthesizeOptions } from '../../lib/synth.js';
import { BLIP3O_PRESETS, blip3oDitSizes } from '../../lib/synth/blip3o.js';
import { bf16ToF32 } from '../../lib/tensor.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { asFloat32, readJson, readSafetensors, readSafetensorsHeader } from '../helpers/fixtures.js';
import { blip3oExpectedDir, blip3oModelDir, fixturesMissing } from '../helpers/paths.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-synth3o-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Every file under `dir`, as paths relative to it.
function tree(dir: string, prefix = ''): string[] {
  return readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? tree(dir, path.join(prefix, e.name)) : [path.join(prefix, e.name)]))
    .sort();
}

function metadata(file: string): unknown {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return (JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>)['__metadata__'];
}

const weightFiles = (dir: string) => tree(dir).filter((f) => f.endsWith('.safetensors'));
const json = (dir: string, file: string) => readJson<JsonObject>(path.join(dir, file));
const UNET = 'diffusion-decoder/unet/diffusion_pytorch_model.bf16.safetensors';
const VAE = 'diffusion-decoder/vae/diffusion_pytorch_model.bf16.safetensors';

// The comparisons with the fixture checkpoint skip without it; the checks of what was written, and
// the seed, dtype and bad-input tests, run everywhere.
describe('synthesize blip3o tiny (the fixture sizes)', () => {
  const dir = path.join(work, 'tiny');
  let result: SynthesizeBlip3oResult;
  beforeAll(async () => {
    // bf16 is the family's default dtype, as released.
    result = await synthesize({ family: 'blip3o', preset: 'tiny', out: dir, seed: 3 });
  }, 120_000);

  it.skipIf(fixturesMissing !== null)(fixtureTitle("writes exactly the fixture's folder tree"), () => {
    expect(tree(dir)).toEqual(tree(blip3oModelDir));
    expect(result).toMatchObject({ family: 'blip3o', dir, files: readdirSync(blip3oModelDir).sort() });
    expect(result.sizes).toEqual(BLIP3O_PRESETS.tiny);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("writes every JSON file equal to the fixture's (config, tokenizer, processor, generation, diffusers components)"), () => {
    const files = tree(blip3oModelDir).filter((f) => f.endsWith('.json'));
    expect(files).toEqual(
      expect.arrayContaining(['config.json', 'tokenizer.json', 'tokenizer_config.json', 'added_tokens.json', 'diffusion-decoder/model_index.json', 'diffusion-decoder/unet/config.json', 'diffusion-decoder/vae/config.json', 'diffusion-decoder/scheduler/scheduler_config.json']),
    );
    for (const f of files) expect({ f, json: json(dir, f) }).toEqual({ f, json: json(blip3oModelDir, f) });
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("writes vocab.json and merges.txt byte for byte as the fixture's"), () => {
    for (const f of ['vocab.json', 'merges.txt']) {
      expect({ f, equal: readFileSync(path.join(dir, f)).equals(readFileSync(path.join(blip3oModelDir, f))) }).toEqual({ f, equal: true });
    }
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("writes the fixture's safetensors headers (names, shapes, dtypes, offsets) with {format: pt} metadata, and its index"), () => {
    for (const f of weightFiles(blip3oModelDir)) {
      expect({ f, header: readSafetensorsHeader(path.join(dir, f)) }).toEqual({ f, header: readSafetensorsHeader(path.join(blip3oModelDir, f)) });
      expect({ f, metadata: metadata(path.join(dir, f)) }).toEqual({ f, metadata: { format: 'pt' } });
      expect({ f, size: statSync(path.join(dir, f)).size }).toEqual({ f, size: statSync(path.join(blip3oModelDir, f)).size });
    }
    expect(json(dir, 'model.safetensors.index.json')).toEqual(json(blip3oModelDir, 'model.safetensors.index.json'));
    const manifest = readJson<{ checkpoint: { num_tensors: number; num_elements: number } }>(path.join(blip3oExpectedDir, 'manifest.json'));
    const top = weightFiles(dir).filter((f) => !f.startsWith('diffusion-decoder'));
    expect(top.reduce((n, f) => n + Object.keys(readSafetensorsHeader(path.join(dir, f))).length, 0)).toBe(manifest.checkpoint.num_tensors);
    const count = (f: string) => Object.keys(readSafetensorsHeader(path.join(dir, f))).length;
    expect(result.tensors).toBe(manifest.checkpoint.num_tensors + count(UNET) + count(VAE));
    expect(result.bytes).toBe(weightFiles(dir).reduce((n, f) => n + Object.values(readSafetensorsHeader(path.join(dir, f))).reduce((m, t) => m + t.data_offsets[1] - t.data_offsets[0], 0), 0));
    expect(result.parameters * 2).toBe(result.bytes);
  });

  it('writes what the config parser accepts, with the DiT sizes of the preset read back from the written shapes', () => {
    const config = parseBlip3oConfig(json(dir, 'config.json'));
    expect(config.text.hiddenSize).toBe(48);
    const shapes = new Map<string, number[]>();
    for (const f of weightFiles(dir).filter((f) => !f.startsWith('diffusion-decoder'))) for (const [k, v] of Object.entries(readSafetensorsHeader(path.join(dir, f)))) shapes.set(k, v.shape);
    expect(ditSizesFromShapes(shapes)).toEqual(blip3oDitSizes(BLIP3O_PRESETS.tiny));
  });

  it('stores finite bf16 weights in the shared init scheme, and the runtime reads the sharded folder', async () => {
    const top = readSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'));
    const values = (name: string) => {
      const t = top.get(name)!;
      expect(t.dtype).toBe('BF16');
      return Array.from(new Uint16Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.length)), (b) => bf16ToF32(b));
    };
    const std = (v: number[]) => Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
    const patch = values('model.dit.model.patch_embedder.proj.weight');
    expect(patch.every(Number.isFinite)).toBe(true);
    expect(std(patch)).toBeCloseTo(1 / Math.sqrt(1792), 3);
    expect(std(values('model.latent_queries'))).toBeGreaterThan(0.8);
    const norm = values('model.dit.model.layers.0.norm2.weight');
    expect(norm.every((v) => Math.abs(v - 1) < 0.2)).toBe(true);
    expect(norm.some((v) => v !== 1)).toBe(true);
    const listed = (await native().openCheckpoint(dir)).list();
    expect(listed).toHaveLength(151);
    expect(listed.find((t) => t.name === 'model.latent_queries')).toMatchObject({ dtype: 'bf16', shape: [1, 16, 48] });
  });
});

describe('the synthesized BLIP3-o tokenizer', () => {
  it.skipIf(fixturesMissing !== null)(fixtureTitle("encodes text and BLIP3-o's special tokens to the fixture tokenizer's ids"), () => {
    const load = (d: string) => new Tokenizer(json(d, 'tokenizer.json'), json(d, 'tokenizer_config.json'));
    const mine = load(path.join(work, 'tiny'));
    const theirs = load(blip3oModelDir);
    expect(mine.encode('[IMG][/IMG]<image>').ids).toEqual([151665, 151666, 151667]);
    expect(mine.encode(' ').ids).toEqual([220]);
    expect(mine.encode('<|im_start|><|im_end|><|endoftext|><|image_pad|>').ids).toEqual([151644, 151645, 151643, 151655]);
    const texts = [
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nPlease generate image based on the following caption: A photo of cute cat<|im_end|>\n<|im_start|>assistant\n',
      '<image>\nPlease reconstruct the given image.',
      'Hello, world! 13 lazy dogs; Ünïcödé, 日本語, 😀 <tool_call>x</tool_call><|fim_prefix|>',
    ];
    for (const text of texts) {
      const ids = mine.encode(text).ids;
      expect({ text, ids }).toEqual({ text, ids: theirs.encode(text).ids });
    }
  });
});

describe('synthesize blip3o: seeds and dtypes', () => {
  it('writes the same bytes for the same seed and other weights for another seed', async () => {
    const again = path.join(work, 'tiny-again');
    const other = path.join(work, 'tiny-seed4');
    await synthesize({ family: 'blip3o', preset: 'tiny', out: again, seed: 3, dtype: 'bf16' });
    await synthesize({ family: 'blip3o', preset: 'tiny', out: other, seed: 4 });
    for (const f of weightFiles(again)) {
      const a = readFileSync(path.join(work, 'tiny', f));
      expect({ f, same: a.equals(readFileSync(path.join(again, f))) }).toEqual({ f, same: true });
      expect({ f, same: a.equals(readFileSync(path.join(other, f))) }).toEqual({ f, same: false });
    }
    rmSync(other, { recursive: true, force: true });
  }, 120_000);

  it("writes f32 with diffusers' unvariant file names and torch_dtype float32, the numbers of the bf16 checkpoint", async () => {
    const out = path.join(work, 'tiny-f32');
    const r = await synthesize({ family: 'blip3o', preset: 'tiny', out, seed: 3, dtype: 'f32', maxShardBytes: 1e9 });
    expect(tree(out).filter((f) => f.endsWith('.safetensors'))).toEqual(['diffusion-decoder/unet/diffusion_pytorch_model.safetensors', 'diffusion-decoder/vae/diffusion_pytorch_model.safetensors', 'model.safetensors']);
    expect(existsSync(path.join(out, 'model.safetensors.index.json'))).toBe(false);
    expect(json(out, 'config.json')).toMatchObject({ torch_dtype: 'float32', vision_config: { torch_dtype: 'float32' } });
    expect(r.bytes).toBe(r.parameters * 4);
    const f32 = asFloat32(readSafetensors(path.join(out, 'diffusion-decoder/vae/diffusion_pytorch_model.safetensors')).get('decoder.conv_in.weight')!);
    const t = readSafetensors(path.join(work, 'tiny', VAE)).get('decoder.conv_in.weight')!;
    const bf16 = Array.from(new Uint16Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.length)), (b) => bf16ToF32(b));
    let maxRel = 0;
    for (let i = 0; i < f32.length; i++) maxRel = Math.max(maxRel, Math.abs(bf16[i]! - f32[i]!) / Math.abs(f32[i]!));
    expect(maxRel).toBeGreaterThan(0);
    expect(maxRel).toBeLessThanOrEqual(2 ** -8);
    rmSync(out, { recursive: true, force: true });
  }, 120_000);
});

describe('vargpt synth --family blip3o', () => {
  it.skipIf(fixturesMissing !== null)(fixtureTitle('writes the checkpoint and reports it as JSON, bf16 unless asked otherwise'), async () => {
    const out = path.join(work, 'cli');
    let stdout = '';
    await synthCommand({ family: 'blip3o', preset: 'tiny', out, json: true }, { out: (t) => (stdout += t), err: () => {}, signal: new AbortController().signal });
    const report = JSON.parse(stdout) as { family: string; dtype: string; tensors: number; dir: string };
    expect(report).toMatchObject({ family: 'blip3o', dtype: 'bf16', dir: out });
    expect(tree(out)).toEqual(tree(blip3oModelDir));
    rmSync(out, { recursive: true, force: true });
  }, 120_000);
});

describe('synthesize blip3o: bad input', () => {
  it('rejects an unknown family or preset clearly and writes nothing', async () => {
    const out = path.join(work, 'never');
    await expect(synthesize({ family: 'blip3', preset: 'tiny', out } as unknown as SynthesizeOptions)).rejects.toThrow(/family must be vargpt-v1, vargpt-v1\.1 or blip3o, got "blip3"/);
    await expect(synthesize({ family: 'blip3o', preset: '7b', out } as unknown as SynthesizeOptions)).rejects.toThrow(/preset "7b" is not a blip3o preset \(tiny, small, 4b, 8b\)$/);
    await expect(synthesize({ family: 'blip3o', preset: 'full', out } as unknown as SynthesizeOptions)).rejects.toThrow(/preset "full" is not a blip3o preset \(tiny, small, 4b, 8b\); "full" is a vargpt-v1\.1 preset/);
    await expect(synthesize({ family: 'vargpt-v1.1', preset: '8b', out } as unknown as SynthesizeOptions)).rejects.toThrow(/"8b" is a blip3o preset \(family: 'blip3o', --family blip3o\)/);
    await expect(synthesize({ family: 'blip3o', preset: 'tiny', out, varDepth: 2 } as unknown as SynthesizeOptions)).rejects.toThrow(/varDepth applies to family vargpt-v1 only, not blip3o/);
    await expect(synthesize({ family: 'blip3o', preset: 'tiny', out, maxShardBytes: 0 })).rejects.toThrow(/maxShardBytes must be positive, got 0/);
    await expect(synthesize({ family: 'blip3o', preset: 4 as never, out })).rejects.toThrow(/preset must be tiny, small, 4b, 8b/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((f) => f.startsWith('never'))).toEqual([]);
  });
});
