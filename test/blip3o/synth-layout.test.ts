// The BLIP3-o synthesis layout without writing anything: the tiny preset against the blip3o-tiny
// fixture's safetensors headers (top folder, UNet, VAE) and manifest, the config parser on the
// fixture's config.json, DiT sizes read back from shapes, and the released presets' tensor plans
// and byte counts against spec §1.1.
import { readdirSync } from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import type { JsonObject } from '../../lib/checkpoint-config.js';
import { checkDecoderAgainstConfig, checkDitAgainstConfig, ditSizesFromShapes, parseBlip3oConfig, parseUnetConfig, parseVaeConfig } from '../../lib/families/blip3o-config.js';
import { blip3oModelConfigJson, unetConfigJson, vaeConfigJson } from '../../lib/synth/blip3o-files.js';
import {
  BLIP3O_PRESET_NAMES,
  BLIP3O_PRESETS,
  blip3oDitSizes,
  blip3oLayouts,
  blip3oParameterBreakdown,
  copyBlip3oSizes,
  ditFfnDim,
  planHubShards,
  unetLayout,
} from '../../lib/synth/blip3o.js';
import type { Blip3oSizes } from '../../lib/synth/blip3o.js';
import { tensorBytes } from '../../lib/synth/safetensors-writer.js';
import type { TensorSpec } from '../../lib/synth/tensors.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { readJson, readSafetensorsHeader } from '../helpers/fixtures.js';
import { blip3oExpectedDir, blip3oModelDir, fixturesMissing } from '../helpers/paths.js';

interface Manifest {
  configuration: {
    llm: Record<string, unknown> & { hidden_size: number; num_hidden_layers: number; num_attention_heads: number; num_key_value_heads: number; intermediate_size: number; head_dim: number; vocab_rows: number; mrope_section: number[]; tie_word_embeddings: boolean };
    vit: { depth: number; hidden_size: number; num_heads: number; intermediate_size: number; fullatt_block_indexes: number[]; window_size: number; patch_size: number; spatial_merge_size: number; temporal_patch_size: number; out_hidden_size: number };
    n_query: number;
    dit: { in_channels: number; dim: number; n_layers: number; n_heads: number; n_kv_heads: number; head_dim: number; ffn_hidden: number; temb_dim: number; caption_dim: number };
    dit_release_defaults: { dim: number; n_layers: number; n_heads: number; n_kv_heads: number; in_channels: number };
    unet: JsonObject & { block_out_channels: number[]; layers_per_block: number; transformer_layers_per_block: number[]; attention_head_dim: number[]; cross_attention_dim: number; addition_time_embed_dim: number; projection_class_embeddings_input_dim: number; in_channels: number; out_channels: number; sample_size: number; norm_num_groups: number; norm_eps: number };
    vae: JsonObject & { block_out_channels: number[]; layers_per_block: number; latent_channels: number; out_channels: number; norm_num_groups: number; scaling_factor: number };
  };
  checkpoint: { num_tensors: number; num_elements: number; key_groups: Record<string, number> };
}

const decoderDir = path.join(blip3oModelDir, 'diffusion-decoder');
// Read in a hook, where the fixtures are: without them the tests that use these skip, and the
// released byte counts and bad sizes are still checked.
let manifest: Manifest;
let fixtureTop: ReturnType<typeof readSafetensorsHeader>;
let fixtureUnet: ReturnType<typeof readSafetensorsHeader>;
let fixtureVae: ReturnType<typeof readSafetensorsHeader>;
let fixtureConfig: JsonObject;
beforeAll(() => {
  if (fixturesMissing !== null) return;
  manifest = readJson<Manifest>(path.join(blip3oExpectedDir, 'manifest.json'));
  fixtureTop = Object.assign(
    {},
    ...readdirSync(blip3oModelDir)
      .filter((f) => f.endsWith('.safetensors'))
      .map((f) => readSafetensorsHeader(path.join(blip3oModelDir, f))),
  ) as ReturnType<typeof readSafetensorsHeader>;
  fixtureUnet = readSafetensorsHeader(path.join(decoderDir, 'unet', 'diffusion_pytorch_model.bf16.safetensors'));
  fixtureVae = readSafetensorsHeader(path.join(decoderDir, 'vae', 'diffusion_pytorch_model.bf16.safetensors'));
  fixtureConfig = readJson<JsonObject>(path.join(blip3oModelDir, 'config.json'));
});

const described = (specs: readonly TensorSpec[]) => Object.fromEntries(specs.map((s) => [s.name, `BF16${JSON.stringify(s.shape)}`]));
const fixtureDescribed = (header: ReturnType<typeof readSafetensorsHeader>) => Object.fromEntries(Object.entries(header).map(([k, v]) => [k, `${v.dtype}${JSON.stringify(v.shape)}`]));
const shapesOf = (header: ReturnType<typeof readSafetensorsHeader>) => new Map(Object.entries(header).map(([k, v]) => [k, v.shape]));
const elements = (specs: readonly TensorSpec[]) => specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
const bf16Bytes = (specs: readonly TensorSpec[]) => specs.reduce((n, s) => n + tensorBytes(s, 'bf16'), 0);

describe('BLIP3-o synthesis layout', () => {
  it.skipIf(fixturesMissing !== null)(fixtureTitle("lays out the tiny preset with exactly the fixture's tensor names, shapes and dtypes (top folder, UNet, VAE)"), () => {
    const { model, unet, vae } = blip3oLayouts(BLIP3O_PRESETS.tiny);
    expect(described(model)).toEqual(fixtureDescribed(fixtureTop));
    expect(described(unet)).toEqual(fixtureDescribed(fixtureUnet));
    expect(described(vae)).toEqual(fixtureDescribed(fixtureVae));
    expect(model).toHaveLength(manifest.checkpoint.num_tensors);
    expect(elements(model)).toBe(manifest.checkpoint.num_elements);
    // Tied: no lm_head.
    expect(model.some((s) => s.name.startsWith('lm_head'))).toBe(false);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("counts the manifest's key groups"), () => {
    const { model } = blip3oLayouts(BLIP3O_PRESETS.tiny);
    const groups: Record<string, number> = {};
    for (const group of Object.keys(manifest.checkpoint.key_groups)) groups[group] = model.filter((s) => s.name === group || s.name.startsWith(`${group}.`)).length;
    expect(groups).toEqual(manifest.checkpoint.key_groups);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("parses the fixture's config.json to the manifest's LLM, ViT and query sizes"), () => {
    const config = parseBlip3oConfig(fixtureConfig, 'fixture config.json');
    const { llm, vit } = manifest.configuration;
    expect(config.modelType).toBe('blip3o_qwen');
    expect(config.text).toEqual({
      hiddenSize: llm.hidden_size,
      layers: llm.num_hidden_layers,
      heads: llm.num_attention_heads,
      kvHeads: llm.num_key_value_heads,
      headDim: llm.head_dim,
      intermediateSize: llm.intermediate_size,
      vocabSize: llm.vocab_rows,
      maxPositions: 128000,
      rmsNormEps: llm['rms_norm_eps'],
      ropeTheta: llm['rope_theta'],
      mropeSection: llm.mrope_section,
      tiedEmbeddings: llm.tie_word_embeddings,
    });
    expect(config.vision).toEqual({
      depth: vit.depth,
      hiddenSize: vit.hidden_size,
      heads: vit.num_heads,
      intermediateSize: vit.intermediate_size,
      outHiddenSize: vit.out_hidden_size,
      fullAttentionBlocks: vit.fullatt_block_indexes,
      windowSize: vit.window_size,
      patchSize: vit.patch_size,
      mergeSize: vit.spatial_merge_size,
      temporalPatchSize: vit.temporal_patch_size,
    });
    expect(config).toMatchObject({
      nQuery: manifest.configuration.n_query,
      genHiddenSize: 1792,
      genPooling: 'early_pool2d_4',
      genVisionTower: 'eva-clip-E-14-plus',
      imageTokenId: 151655,
      visionStartTokenId: 151652,
      visionEndTokenId: 151653,
      tokenizerMaxLength: 512,
    });
    // The preset is the fixture's configuration.
    const tiny = BLIP3O_PRESETS.tiny;
    expect({ ...tiny.llm }).toMatchObject({ hidden: llm.hidden_size, layers: llm.num_hidden_layers, heads: llm.num_attention_heads, kvHeads: llm.num_key_value_heads, intermediate: llm.intermediate_size, vocab: llm.vocab_rows, tied: true });
    expect(tiny.nQuery).toBe(manifest.configuration.n_query);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("reads the manifest's DiT sizes back from the fixture's tensor shapes, and each preset's from its own"), () => {
    const { dit } = manifest.configuration;
    const fromFixture = ditSizesFromShapes(shapesOf(fixtureTop), 'fixture');
    const expected = {
      dim: dit.dim,
      inChannels: dit.in_channels,
      outChannels: dit.in_channels,
      layers: dit.n_layers,
      heads: dit.n_heads,
      headDim: dit.head_dim,
      kvHeads: dit.n_kv_heads,
      captionDim: dit.caption_dim,
      tembDim: dit.temb_dim,
      ffnDim: dit.ffn_hidden,
      timestepChannels: 256,
    };
    expect(fromFixture).toEqual(expected);
    expect(blip3oDitSizes(BLIP3O_PRESETS.tiny)).toEqual(expected);
    checkDitAgainstConfig(fromFixture, parseBlip3oConfig(fixtureConfig));
    for (const name of BLIP3O_PRESET_NAMES) {
      const sizes = BLIP3O_PRESETS[name];
      const shapes = new Map(blip3oLayouts(sizes).model.map((s) => [s.name, s.shape]));
      expect({ name, dit: ditSizesFromShapes(shapes) }).toEqual({ name, dit: blip3oDitSizes(sizes) });
    }
    // README: the FFN rule gives 4864 at the release's width 1792 (not 4 * 1792).
    expect(ditFfnDim(1792)).toBe(4864);
    expect(ditFfnDim(dit.dim)).toBe(dit.ffn_hidden);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('names the tensor at fault when DiT shapes are missing or inconsistent'), () => {
    const shapes = shapesOf(fixtureTop);
    const without = new Map(shapes);
    without.delete('model.dit.model.patch_embedder.proj.weight');
    expect(() => ditSizesFromShapes(without, 'ckpt')).toThrow(/ckpt: missing tensor model\.dit\.model\.patch_embedder\.proj\.weight/);
    const badKv = new Map(shapes).set('model.dit.model.layers.0.attn1.to_k.weight', [40, 64]);
    expect(() => ditSizesFromShapes(badKv, 'ckpt')).toThrow(/attn1\.to_k\.weight has 40 rows/);
    expect(() => ditSizesFromShapes(new Map(), 'ckpt')).toThrow(/no DiT layers/);
    const config = parseBlip3oConfig({ ...fixtureConfig, hidden_size: 96, num_attention_heads: 8, vision_config: { ...(fixtureConfig['vision_config'] as JsonObject), out_hidden_size: 96 } });
    expect(() => checkDitAgainstConfig(ditSizesFromShapes(shapes), config)).toThrow(/caption projection takes width 48, but the LLM's hidden_size is 96/);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("parses the fixture's UNet and VAE configs to the manifest's sizes, and each preset's configs back to the preset"), () => {
    const unetRaw = readJson<JsonObject>(path.join(decoderDir, 'unet', 'config.json'));
    const vaeRaw = readJson<JsonObject>(path.join(decoderDir, 'vae', 'config.json'));
    const { unet, vae } = manifest.configuration;
    const parsedUnet = parseUnetConfig(unetRaw);
    expect(parsedUnet).toEqual({
      inChannels: unet.in_channels,
      outChannels: unet.out_channels,
      sampleSize: unet.sample_size,
      blockOutChannels: unet.block_out_channels,
      downBlockTypes: unet['down_block_types'],
      upBlockTypes: unet['up_block_types'],
      layersPerBlock: unet.layers_per_block,
      transformerLayersPerBlock: unet.transformer_layers_per_block,
      heads: unet.attention_head_dim,
      crossAttentionDim: unet.cross_attention_dim,
      additionTimeEmbedDim: unet.addition_time_embed_dim,
      projectionInputDim: unet.projection_class_embeddings_input_dim,
      normGroups: unet.norm_num_groups,
      normEps: unet.norm_eps,
      flipSinToCos: unet['flip_sin_to_cos'],
      freqShift: unet['freq_shift'],
    });
    const parsedVae = parseVaeConfig(vaeRaw);
    expect(parsedVae).toEqual({
      blockOutChannels: vae.block_out_channels,
      layersPerBlock: vae.layers_per_block,
      latentChannels: vae.latent_channels,
      outChannels: vae.out_channels,
      normGroups: vae.norm_num_groups,
      scalingFactor: vae.scaling_factor,
      shiftFactor: null,
      usePostQuantConv: true,
      midBlockAttention: true,
    });
    checkDecoderAgainstConfig(parsedUnet, parsedVae, parseBlip3oConfig(fixtureConfig));
    for (const name of BLIP3O_PRESET_NAMES) {
      const sizes = BLIP3O_PRESETS[name];
      const config = parseBlip3oConfig(blip3oModelConfigJson(sizes, 'bf16'));
      const u = parseUnetConfig(unetConfigJson(sizes.unet));
      const v = parseVaeConfig(vaeConfigJson(sizes.vae));
      expect({ name, llm: config.text, vit: config.vision, nQuery: config.nQuery }).toEqual({
        name,
        llm: {
          hiddenSize: sizes.llm.hidden,
          layers: sizes.llm.layers,
          heads: sizes.llm.heads,
          kvHeads: sizes.llm.kvHeads,
          headDim: sizes.llm.hidden / sizes.llm.heads,
          intermediateSize: sizes.llm.intermediate,
          vocabSize: sizes.llm.vocab,
          maxPositions: sizes.llm.maxPositions,
          rmsNormEps: 1e-6,
          ropeTheta: 1e6,
          mropeSection: sizes.llm.mropeSection,
          tiedEmbeddings: sizes.llm.tied,
        },
        vit: {
          depth: sizes.vision.depth,
          hiddenSize: sizes.vision.hidden,
          heads: sizes.vision.heads,
          intermediateSize: sizes.vision.intermediate,
          outHiddenSize: sizes.llm.hidden,
          fullAttentionBlocks: sizes.vision.fullAttentionBlocks,
          windowSize: sizes.vision.windowSize,
          patchSize: sizes.vision.patchSize,
          mergeSize: sizes.vision.mergeSize,
          temporalPatchSize: sizes.vision.temporalPatchSize,
        },
        nQuery: sizes.nQuery,
      });
      expect({ name, u: { ...u, downBlockTypes: undefined, upBlockTypes: undefined, normEps: undefined, flipSinToCos: undefined, freqShift: undefined } }).toEqual({
        name,
        u: {
          inChannels: sizes.unet.inChannels,
          outChannels: sizes.unet.inChannels,
          sampleSize: sizes.unet.sampleSize,
          blockOutChannels: sizes.unet.blockOutChannels,
          layersPerBlock: sizes.unet.layersPerBlock,
          transformerLayersPerBlock: sizes.unet.transformerLayersPerBlock,
          heads: sizes.unet.attentionHeads,
          crossAttentionDim: 1792,
          additionTimeEmbedDim: sizes.unet.additionTimeEmbedDim,
          projectionInputDim: 1792 + 6 * sizes.unet.additionTimeEmbedDim,
          normGroups: 32,
        },
      });
      expect({ name, v }).toMatchObject({ name, v: { blockOutChannels: sizes.vae.blockOutChannels, layersPerBlock: sizes.vae.layersPerBlock, latentChannels: sizes.vae.latentChannels, scalingFactor: sizes.vae.scalingFactor } });
    }
    // The releases' decoder: SDXL's head_dim 64 at every level.
    const sdxl = parseUnetConfig(unetConfigJson(BLIP3O_PRESETS['8b'].unet));
    expect(sdxl.blockOutChannels.map((c, i) => c / sdxl.heads[i]!)).toEqual([64, 64, 64]);
    expect(sdxl.projectionInputDim).toBe(3328);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('rejects decoder configs the runtime could not run, naming the field'), () => {
    const unetRaw = readJson<JsonObject>(path.join(decoderDir, 'unet', 'config.json'));
    const vaeRaw = readJson<JsonObject>(path.join(decoderDir, 'vae', 'config.json'));
    const unet = (change: JsonObject) => () => parseUnetConfig({ ...unetRaw, ...change }, 'u.json');
    expect(unet({ addition_embed_type: null })).toThrow(/u\.json: addition_embed_type is null; BLIP3-o's decoder uses "text_time"/);
    expect(unet({ projection_class_embeddings_input_dim: 2816 })).toThrow(/2816 is not cross_attention_dim \+ 6 \* addition_time_embed_dim = 1888/);
    expect(unet({ attention_head_dim: [2, 4] })).toThrow(/"attention_head_dim" lists 2 entries for 3 blocks/);
    expect(unet({ attention_head_dim: [2, 5, 4] })).toThrow(/block 1 has 64 channels, not a multiple of its 5 heads/);
    expect(unet({ up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'] })).toThrow(/up block 0 \(UpBlock2D\) does not mirror down block 2 \(CrossAttnDownBlock2D\)/);
    expect(unet({ down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'AttnDownBlock2D'] })).toThrow(/"down_block_types" must list 3 of DownBlock2D, CrossAttnDownBlock2D/);
    expect(unet({ use_linear_projection: false })).toThrow(/use_linear_projection is false/);
    expect(unet({ class_embed_type: 'timestep' })).toThrow(/"class_embed_type" is set/);
    expect(unet({ _class_name: 'UNet2DModel' })).toThrow(/_class_name is "UNet2DModel", expected "UNet2DConditionModel"/);
    // A single number stands for every level.
    expect(parseUnetConfig({ ...unetRaw, transformer_layers_per_block: 1 }).transformerLayersPerBlock).toEqual([1, 1, 1]);
    const vae = (change: JsonObject) => () => parseVaeConfig({ ...vaeRaw, ...change }, 'v.json');
    expect(vae({ scaling_factor: 0 })).toThrow(/v\.json: scaling_factor must be positive, got 0/);
    expect(vae({ block_out_channels: [32, 48] })).toThrow(/48 channels are not a multiple of norm_num_groups 32/);
    const config = parseBlip3oConfig(fixtureConfig);
    expect(() => checkDecoderAgainstConfig(parseUnetConfig({ ...unetRaw, cross_attention_dim: 2048, projection_class_embeddings_input_dim: 2144 }), parseVaeConfig(vaeRaw), config)).toThrow(
      /cross_attention_dim 2048 differs from gen_hidden_size 1792/,
    );
    expect(() => checkDecoderAgainstConfig(parseUnetConfig(unetRaw), parseVaeConfig({ ...vaeRaw, latent_channels: 16 }), config)).toThrow(/maps 4 to 4 channels, but the VAE's latents have 16/);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('rejects config.json files a BLIP3-o runtime could not run, naming the field'), () => {
    const vision = fixtureConfig['vision_config'] as JsonObject;
    const bad = (change: JsonObject) => () => parseBlip3oConfig({ ...fixtureConfig, ...change }, 'c.json');
    expect(bad({ model_type: 'qwen2_5_vl' })).toThrow(/c\.json: model_type is "qwen2_5_vl"; BLIP3-o checkpoints have "blip3o_qwen"/);
    expect(bad({ text_config: {} })).toThrow(/nested "text_config"/);
    expect(bad({ rope_scaling: { mrope_section: [2, 2, 3] } })).toThrow(/mrope_section sums to 7, not head_dim \/ 2 = 6/);
    expect(bad({ num_key_value_heads: 3 })).toThrow(/num_attention_heads 4 is not a multiple of num_key_value_heads 3/);
    expect(bad({ vocab_size: 151665 })).toThrow(/vocab_size 151665 has no row for \[IMG\]/);
    expect(bad({ n_query: 0 })).toThrow(/"n_query" must be >= 1, got 0/);
    expect(bad({ gen_hidden_size: undefined as never })).toThrow(/"gen_hidden_size" must be an integer/);
    expect(bad({ vision_config: { ...vision, out_hidden_size: 64 } })).toThrow(/out_hidden_size 64 differs from hidden_size 48/);
    expect(bad({ vision_config: { ...vision, fullatt_block_indexes: [1, 4] } })).toThrow(/fullatt_block_indexes names block 4, but depth is 4/);
    expect(bad({ vision_config: { ...vision, window_size: 100 } })).toThrow(/window_size 100 is not a multiple of patch_size \* spatial_merge_size = 28/);
    expect(bad({ vision_config: null })).toThrow(/"vision_config" must be an object/);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('lays out the releases with the shapes of spec §1.1 (8B untied, 4B tied)'), () => {
    const shapes = (name: '4b' | '8b') => new Map(blip3oLayouts(BLIP3O_PRESETS[name]).model.map((s) => [s.name, s.shape]));
    const b8 = shapes('8b');
    const b4 = shapes('4b');
    expect(b8.get('model.embed_tokens.weight')).toEqual([151668, 3584]);
    expect(b8.get('lm_head.weight')).toEqual([151668, 3584]);
    expect(b4.get('lm_head.weight')).toBeUndefined();
    expect(b8.get('model.layers.27.self_attn.k_proj.weight')).toEqual([512, 3584]);
    expect(b8.get('model.layers.27.mlp.down_proj.weight')).toEqual([3584, 18944]);
    expect(b4.get('model.layers.35.self_attn.k_proj.weight')).toEqual([256, 2048]);
    expect(b4.get('model.layers.35.mlp.gate_proj.weight')).toEqual([11008, 2048]);
    expect(b8.get('model.latent_queries')).toEqual([1, 64, 3584]);
    expect(b4.get('model.latent_queries')).toEqual([1, 64, 2048]);
    expect(b8.get('visual.patch_embed.proj.weight')).toEqual([1280, 3, 2, 14, 14]);
    expect(b8.get('visual.blocks.31.mlp.gate_proj.weight')).toEqual([3420, 1280]);
    expect(b8.get('visual.merger.mlp.2.weight')).toEqual([3584, 5120]);
    expect(b8.get('model.dit.model.layers.23.feed_forward.linear_1.weight')).toEqual([4864, 1792]);
    expect(b8.get('model.dit.model.layers.23.gate')).toEqual([28]);
    expect(b8.get('model.dit.model.layers.23.norm1.linear.weight')).toEqual([4 * 1792, 1024]);
    expect(b8.get('model.dit.model.caption_projection.linear_1.weight')).toEqual([1792, 3584]);
    expect(b4.get('model.dit.model.caption_projection.linear_1.weight')).toEqual([1792, 2048]);
    expect(b8.get('model.dit.model.time_caption_embed.timestep_embedder.linear_1.weight')).toEqual([1024, 256]);
    const release = manifest.configuration.dit_release_defaults;
    expect(ditSizesFromShapes(b8)).toMatchObject({ dim: release.dim, layers: release.n_layers, heads: release.n_heads, kvHeads: release.n_kv_heads, inChannels: release.in_channels, tembDim: 1024 });
    const unet = new Map(unetLayout(BLIP3O_PRESETS['8b'].unet).map((s) => [s.name, s.shape]));
    expect(unet.get('add_embedding.linear_1.weight')).toEqual([1280, 3328]);
    expect(unet.get('down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k.weight')).toEqual([1280, 1792]);
    expect(unet.has('down_blocks.2.attentions.1.transformer_blocks.10.norm1.weight')).toBe(false);
    expect(unet.get('mid_block.attentions.0.transformer_blocks.9.ff.net.0.proj.weight')).toEqual([10240, 1280]);
    expect(unet.get('up_blocks.0.attentions.2.transformer_blocks.9.ff.net.2.weight')).toEqual([1280, 5120]);
    expect(unet.get('up_blocks.1.attentions.2.transformer_blocks.1.attn1.to_q.weight')).toEqual([640, 640]);
    expect(unet.has('up_blocks.1.attentions.2.transformer_blocks.2.attn1.to_q.weight')).toBe(false);
    expect(unet.get('up_blocks.2.resnets.0.conv1.weight')).toEqual([320, 960, 3, 3]);
  });

  it('plans the released byte counts of spec §1.1 in bf16 (DiT 1.365 B / 1.362 B, UNet 5.05 GB, VAE 167 MB)', () => {
    const parts = Object.fromEntries(BLIP3O_PRESET_NAMES.map((name) => [name, blip3oParameterBreakdown(BLIP3O_PRESETS[name])]));
    const gb = (name: string) => {
      const { model, unet, vae } = blip3oLayouts(BLIP3O_PRESETS[name as keyof typeof BLIP3O_PRESETS]);
      return `model ${(bf16Bytes(model) / 1e9).toFixed(2)} GB, unet ${(bf16Bytes(unet) / 1e9).toFixed(2)} GB, vae ${(bf16Bytes(vae) / 1e6).toFixed(1)} MB`;
    };
    console.log('blip3o presets:', BLIP3O_PRESET_NAMES.map((n) => `${n} ${JSON.stringify(parts[n])} (${gb(n)})`).join('; '));
    const near = (got: number, want: number, rel: number) => expect(Math.abs(got / want - 1)).toBeLessThan(rel);
    // Spec §1.1: DiT 1.365 B (8B) and 1.362 B (4B), differing only in the caption input width.
    near(parts['8b']!.dit, 1.365e9, 0.001);
    near(parts['4b']!.dit, 1.362e9, 0.001);
    expect(parts['8b']!.dit - parts['4b']!.dit).toBe((3584 - 2048) * 1792);
    // UNet 5.05 GB and VAE 167 MB of bf16, the same in both. Exactly: SDXL-base's UNet
    // (2,567,463,684 parameters) with the 70 cross-attention to_k / to_v reading 1792 instead of
    // 2048 channels (10 blocks of 640, 60 of 1280) and add_embedding reading 1792 + 6 * 256
    // instead of 2816; SDXL's VAE (83,653,863).
    const sdxlUnet = 2_567_463_684 - 2 * (2048 - 1792) * (10 * 640 + 60 * 1280) + (3328 - 2816) * 1280;
    for (const name of ['4b', '8b'] as const) {
      const { unet, vae } = blip3oLayouts(BLIP3O_PRESETS[name]);
      near(bf16Bytes(unet), 5.05e9, 0.01);
      near(bf16Bytes(vae), 167e6, 0.01);
      expect(parts[name]!.unet).toBe(sdxlUnet);
      expect(parts[name]!.vae).toBe(83_653_863);
    }
    // Qwen2.5-VL-7B (8,292,166,656 parameters as published, untied) with both tables cut from
    // 152064 to 151668 rows; Qwen2.5-VL-3B (3.75 B, tied) likewise from 151936.
    expect(parts['8b']!.llm + parts['8b']!.vision).toBe(8_292_166_656 - 2 * (152064 - 151668) * 3584);
    near(parts['4b']!.llm + parts['4b']!.vision, 3.75e9, 0.002);
    expect(parts['tiny']).toMatchObject({ queries: 16 * 48 });
    // Written shards of the release at transformers' 5 GB: none above the limit, all tensors once.
    for (const name of ['4b', '8b'] as const) {
      const { model } = blip3oLayouts(BLIP3O_PRESETS[name]);
      const shards = planHubShards(model.map((spec) => ({ spec, bytes: tensorBytes(spec, 'bf16') })), 5e9);
      for (const shard of shards) expect(shard.reduce((n, x) => n + x.bytes, 0)).toBeLessThanOrEqual(5e9);
      expect(shards.flat().map((x) => x.spec.name)).toEqual(model.map((s) => s.name));
      expect(shards.length).toBeGreaterThanOrEqual(Math.ceil(bf16Bytes(model) / 5e9));
    }
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle("splits shards as huggingface_hub does: the fixture's embedding alone first, the rest after"), () => {
    const { model } = blip3oLayouts(BLIP3O_PRESETS.tiny);
    const shards = planHubShards(model.map((spec) => ({ spec, bytes: tensorBytes(spec, 'bf16') })), 5e6);
    const index = readJson<{ weight_map: Record<string, string> }>(path.join(blip3oModelDir, 'model.safetensors.index.json'));
    const planned: Record<string, string> = {};
    shards.forEach((shard, i) => {
      for (const { spec } of shard) planned[spec.name] = `model-0000${i + 1}-of-0000${shards.length}.safetensors`;
    });
    expect(planned).toEqual(index.weight_map);
  });

  it('rejects sizes the runtime could not run, naming the field', () => {
    const bad = (change: (s: Blip3oSizes) => void) => {
      const s = copyBlip3oSizes(BLIP3O_PRESETS.tiny);
      change(s);
      return () => blip3oLayouts(s);
    };
    expect(bad((s) => (s.llm.mropeSection = [2, 2, 3]))).toThrow(/mropeSection sums to 7, not head_dim \/ 2 = 6/);
    expect(bad((s) => (s.llm.vocab = 151000))).toThrow(/smaller than the tokenizer \(151668 tokens\)/);
    expect(bad((s) => (s.dit.heads = 3))).toThrow(/dit.dim 64 is not a multiple of heads 3/);
    expect(bad((s) => (s.dit.kvHeads = 3))).toThrow(/dit.heads 4 is not a multiple of kvHeads 3/);
    expect(bad((s) => (s.unet.blockOutChannels = [32, 48, 64]))).toThrow(/unet.blockOutChannels 48 is not a multiple of GroupNorm's 32 groups/);
    expect(bad((s) => (s.unet.attentionHeads = [2, 4]))).toThrow(/one entry per level \(3\)/);
    expect(bad((s) => (s.unet.inChannels = 8))).toThrow(/unet.inChannels 8 differs from vae.latentChannels 4/);
    expect(bad((s) => (s.vision.fullAttentionBlocks = [4]))).toThrow(/fullAttentionBlocks names block 4, but depth is 4/);
    expect(bad((s) => (s.nQuery = 0))).toThrow(/nQuery must be a positive integer, got 0/);
  });
});
