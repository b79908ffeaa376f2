// The VARGPT-v1.1 synthesis layout without writing anything: the tiny preset against the
// vargpt-v1.1-tiny fixture's safetensors header and manifest sizes, sizes read back from shapes,
// and the parameter count of every preset (full against the released model's parts).
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { parameterCount } from '../../lib/synth/tensors.js';
import type { TensorSpec } from '../../lib/synth/tensors.js';
import { copyV11Sizes, sizesFromShapes, v11CheckpointLayout, v11ParameterBreakdown, V11_PRESET_NAMES, V11_PRESETS } from '../../lib/synth/vargpt-v1.1.js';
import type { V11Sizes } from '../../lib/synth/vargpt-v1.1.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { readJson, readSafetensorsHeader } from '../helpers/fixtures.js';
import { fixturesMissing, v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

interface ManifestConfiguration {
  infinity: { depth: number; embed_dim: number; num_heads: number; mlp_ratio: number; block_chunks: number; text_channels: number; text_maxlen: number; head_dim: number };
  vae: { codebook_dim: number; base_ch: number; ch_mult: number[]; patch_size: number; num_res_blocks: number };
}

// Read in a hook, where the fixtures are: without them the tests that use these skip, and the
// release and bad-size tests still run.
let manifest: { configuration: ManifestConfiguration; checkpoint: { num_tensors: number; num_elements: number } };
let fixtureHeader: ReturnType<typeof readSafetensorsHeader>;
beforeAll(() => {
  if (fixturesMissing !== null) return;
  manifest = readJson<typeof manifest>(path.join(v11ExpectedDir, 'manifest.json'));
  fixtureHeader = readSafetensorsHeader(path.join(v11ModelDir, 'model.safetensors'));
});

function described(specs: readonly TensorSpec[], floatDType: string): Record<string, string> {
  return Object.fromEntries(specs.map((s) => [s.name, `${s.type === 'i64' ? 'I64' : floatDType}${JSON.stringify(s.shape)}`]));
}

describe('VARGPT-v1.1 synthesis layout', () => {
  it.skipIf(fixturesMissing !== null)(fixtureTitle("lays out the tiny preset with exactly the fixture's tensor names, shapes and dtypes"), () => {
    const specs = v11CheckpointLayout(V11_PRESETS.tiny);
    expect(specs).toHaveLength(manifest.checkpoint.num_tensors);
    const fixture = Object.fromEntries(Object.entries(fixtureHeader).map(([k, v]) => [k, `${v.dtype}${JSON.stringify(v.shape)}`]));
    expect(described(specs, 'BF16')).toEqual(fixture);
    expect(specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)).toBe(manifest.checkpoint.num_elements);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("gives tiny the manifest's Infinity and VAE sizes, read back from tensor shapes as a loader does"), () => {
    const { infinity, vae } = manifest.configuration;
    const fromFixture = sizesFromShapes(new Map(Object.entries(fixtureHeader).map(([k, v]) => [k, v.shape])));
    const expected = {
      infinity: {
        depth: infinity.depth,
        width: infinity.embed_dim,
        heads: infinity.num_heads,
        mlpRatio: infinity.mlp_ratio,
        blockChunks: infinity.block_chunks,
        textChannels: infinity.text_channels,
        textMaxLen: infinity.text_maxlen,
      },
      vae: { codebookDim: vae.codebook_dim, baseCh: vae.base_ch, chMult: vae.ch_mult, patchSize: vae.patch_size, resBlocks: vae.num_res_blocks },
    };
    expect(fromFixture).toEqual(expected);
    expect({ infinity: V11_PRESETS.tiny.infinity, vae: V11_PRESETS.tiny.vae }).toEqual(expected);
    expect(V11_PRESETS.tiny.infinity.width / V11_PRESETS.tiny.infinity.heads).toBe(infinity.head_dim);
    // Every preset's sizes survive the round trip through its own tensor shapes.
    for (const name of V11_PRESET_NAMES) {
      const sizes = V11_PRESETS[name];
      const shapes = new Map(v11CheckpointLayout(sizes).map((s) => [s.name, s.shape]));
      expect({ name, ...sizesFromShapes(shapes) }).toEqual({ name, infinity: sizes.infinity, vae: sizes.vae });
    }
  });

  it('lays out the released model with the shapes of spec §6.2', () => {
    const specs = new Map(v11CheckpointLayout(V11_PRESETS.full).map((s) => [s.name, s]));
    const shape = (name: string) => specs.get(name)?.shape;
    const names = [...specs.keys()];
    expect(shape('model.embed_tokens.weight')).toEqual([152064, 3584]);
    expect(shape('model.layers.27.self_attn.k_proj.weight')).toEqual([512, 3584]);
    expect(shape('model.layers.27.self_attn.k_proj.bias')).toEqual([512]);
    expect(shape('model.layers.27.mlp.down_proj.weight')).toEqual([3584, 18944]);
    expect(shape('lm_head.weight')).toEqual([152064, 3584]);
    expect(shape('visual.patch_embed.proj.weight')).toEqual([1280, 3, 2, 14, 14]);
    expect(shape('visual.blocks.31.attn.qkv.weight')).toEqual([3840, 1280]);
    expect(shape('visual.blocks.31.mlp.fc1.weight')).toEqual([5120, 1280]);
    expect(shape('visual.merger.mlp.0.weight')).toEqual([5120, 5120]);
    expect(shape('visual.merger.mlp.2.weight')).toEqual([3584, 5120]);
    expect(shape('image_gen_projector.mlp.2.weight')).toEqual([3584, 2048]);
    expect(shape('image_gen_projector_out.mlp.2.weight')).toEqual([2048, 3584]);
    expect(shape('sos_embedding.weight')).toEqual([151658, 2048]);
    expect(shape('vargpt_gen.cfg_uncond')).toEqual([512, 2048]);
    expect(shape('vargpt_gen.text_proj_for_sos.ca.mat_q')).toEqual([1, 16, 128]);
    expect(shape('vargpt_gen.text_proj_for_sos.ca.mat_kv.weight')).toEqual([4096, 2048]);
    expect(shape('vargpt_gen.shared_ada_lin.1.weight')).toEqual([12288, 2048]);
    expect(shape('vargpt_gen.head.weight')).toEqual([64, 2048]);
    expect(shape('vargpt_gen.lvl_embed.weight')).toEqual([15, 2048]);
    expect(shape('vargpt_gen.block_chunks.7.module.3.sa.mat_qkv.weight')).toEqual([6144, 2048]);
    expect(shape('vargpt_gen.block_chunks.7.module.3.sa.scale_mul_1H11')).toEqual([1, 16, 1, 1]);
    expect(shape('vargpt_gen.block_chunks.7.module.3.ffn.fc1.weight')).toEqual([8192, 2048]);
    expect(shape('vargpt_gen.block_chunks.7.module.3.ada_gss')).toEqual([1, 1, 6, 2048]);
    expect(names.filter((n) => n.endsWith('.ffn.fc2.weight') && n.startsWith('vargpt_gen.'))).toHaveLength(32);
    expect(shape('vae_local.decoder.conv_in.conv.weight')).toEqual([512, 32, 3, 3]);
    expect(shape('vae_local.decoder.up.0.block.0.nin_shortcut.conv.weight')).toEqual([128, 256, 1, 1]);
    expect(shape('vae_local.decoder.up.1.block.0.nin_shortcut.conv.weight')).toEqual([256, 512, 1, 1]);
    expect(shape('vae_local.decoder.up.4.upsample.conv.conv.weight')).toEqual([512, 512, 3, 3]);
    expect(shape('vae_local.decoder.norm_out.norm.weight')).toEqual([128]);
    expect(shape('vae_local.decoder.conv_out.conv.weight')).toEqual([3, 128, 3, 3]);
    expect(names.filter((n) => /^vae_local\.decoder\.up\.\d\.upsample\./.test(n)).map((n) => n.split('.')[3])).toEqual(['4', '4', '3', '3', '2', '2', '1', '1']);
    expect(names.some((n) => n.includes('.attn') && n.startsWith('vae_local.'))).toBe(false);
    expect(specs.get('vae_local.quantizer.lfq.mask')).toMatchObject({ shape: [32], type: 'i64', buffer: true });
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('counts the parameters of every preset; full matches the released parts within 2%'), () => {
    const counts = Object.fromEntries(V11_PRESET_NAMES.map((name) => [name, parameterCount(v11CheckpointLayout(V11_PRESETS[name]))]));
    console.log(
      'vargpt-v1.1 presets:',
      V11_PRESET_NAMES.map((name) => `${name} ${(counts[name]! / 1e6).toFixed(1)} M ${JSON.stringify(v11ParameterBreakdown(V11_PRESETS[name]))}`).join('; '),
    );
    // tiny: the fixture's elements less its buffers (9 zero_k_bias of 128 and the 32-entry mask).
    expect(counts['tiny']).toBe(manifest.checkpoint.num_elements - 9 * 128 - 32);
    expect((counts['small']! / 1e6).toFixed(1)).toBe('634.7');
    expect((counts['medium']! / 1e6).toFixed(1)).toBe('2557.6');
    const full = v11ParameterBreakdown(V11_PRESETS.full);
    // Qwen2-VL-7B (text decoder, untied head, ViT and merger) as published: 8,291,375,616.
    expect(full.llm + full.vision).toBe(8_291_375_616);
    // Spec §6.2's parts of the release: Infinity-2B ≈ 2.2 B (≈ 67 M per block), sos_embedding
    // 151658 x 2048, projectors ≈ 32 M, BSQ VAE ≈ 0.1 B.
    const expected = 8_291_375_616 + 2.2e9 + 151658 * 2048 + 32e6 + 0.1e9;
    expect(Math.abs(counts['full']! / expected - 1)).toBeLessThan(0.02);
    expect(Math.abs(full.infinity / 2.2e9 - 1)).toBeLessThan(0.02);
    expect(Math.abs(full.vae / 0.1e9 - 1)).toBeLessThan(0.15);
  });

  it('rejects sizes a VARGPT-v1.1 runtime could not run, naming the field', () => {
    const bad = (change: (s: V11Sizes) => void) => {
      const s = copyV11Sizes(V11_PRESETS.tiny);
      change(s);
      return () => v11CheckpointLayout(s);
    };
    expect(bad((s) => (s.llm.mropeSection = [2, 3, 4]))).toThrow(/mropeSection sums to 9, not head_dim \/ 2 = 8/);
    expect(bad((s) => (s.llm.kvHeads = 3))).toThrow(/heads 2 is not a multiple of kvHeads 3/);
    expect(bad((s) => (s.llm.vocab = 1000))).toThrow(/smaller than the tokenizer \(151660 tokens\)/);
    expect(bad((s) => (s.infinity.textChannels = 64))).toThrow(/textChannels 64 must equal width 128/);
    expect(bad((s) => (s.infinity.blockChunks = 3))).toThrow(/depth 4 is not a multiple of blockChunks 3/);
    expect(bad((s) => (s.infinity.width = 96))).toThrow(/not a multiple of 128/);
    expect(bad((s) => (s.vae.patchSize = 8))).toThrow(/patchSize 8 must be 2\^\(levels - 1\) = 16/);
    expect(bad((s) => (s.vae.baseCh = 48))).toThrow(/multiple of GroupNorm's 32 groups/);
    expect(bad((s) => (s.vision.depth = 0))).toThrow(/vision.depth must be a positive integer, got 0/);
  });
});
