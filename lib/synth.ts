// synthesize(): writes a random-weight checkpoint of a model family (VARGPT v1, v1.1, BLIP3-o) in
// the real Hugging Face layout -- the benchmark presets and test inputs of any size (the CLI's
// default model is the trained demo, lib/demo-model.ts). Each family has a layout module
// (lib/synth/vargpt-v1.ts, vargpt-v1.1.ts, blip3o.ts) and a files module; this file only picks
// one and writes what it plans.
//
// The folder is assembled in a temporary sibling directory and renamed into place at the end, so
// a crash or an abort never leaves a half-written checkpoint under `out`.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { readJsonFile } from './checkpoint-config.js';
import type { JsonObject } from './checkpoint-config.js';
import { InputError, throwIfAborted } from './errors.js';
import { checkDecoderAgainstConfig, checkDitAgainstConfig, ditSizesFromShapes, parseBlip3oConfig, parseUnetConfig, parseVaeConfig } from './families/blip3o-config.js';
import { parseModelConfig } from './families/vargpt-v1.js';
import {
  chatTemplateJson,
  generationConfigJson,
  modelConfigJson,
  preprocessorConfigJson,
  processorConfigJson,
  specialTokensMapJson,
  tokenizerConfigJson,
  tokenizerJson,
} from './synth/vargpt-v1-files.js';
import type { Blip3oPresetName, Blip3oSizes } from './synth/blip3o.js';
import { BLIP3O_PRESET_NAMES, BLIP3O_PRESETS, blip3oLayouts, copyBlip3oSizes, planHubShards } from './synth/blip3o.js';
import {
  blip3oAddedTokensJson,
  blip3oChatTemplateJson,
  blip3oGenerationConfigJson,
  blip3oModelConfigJson,
  blip3oPreprocessorConfigJson,
  blip3oSlowTokenizerFiles,
  blip3oSpecialTokensMapJson,
  blip3oTokenizerConfigJson,
  blip3oTokenizerJson,
  diffusersWeightsFile,
  eulerSchedulerJson,
  modelIndexJson,
  unetConfigJson,
  vaeConfigJson,
} from './synth/blip3o-files.js';
import type { Shard } from './synth/safetensors-writer.js';
import { planShards, tensorBytes, writeSafetensors } from './synth/safetensors-writer.js';
import { parameterCount, TORCH_DTYPE } from './synth/tensors.js';
import type { SynthDType, TensorSpec } from './synth/tensors.js';
import type { ModelSizes, PresetName, VqvaeSizes } from './synth/vargpt-v1.js';
import { checkpointLayout, FULL_VQVAE, PRESET_NAMES, PRESETS, varOfDepth } from './synth/vargpt-v1.js';
import {
  v11ChatTemplateJson,
  v11GenerationConfigJson,
  v11ModelConfigJson,
  v11PreprocessorConfigJson,
  v11SpecialTokensMapJson,
  v11TokenizerConfigJson,
  v11TokenizerJson,
} from './synth/vargpt-v1.1-files.js';
import type { BsqVaeSizes, ImageProcessorSizes, InfinitySizes, QwenLlmSizes, QwenVisionSizes, V11PresetName, V11Sizes } from './synth/vargpt-v1.1.js';
import { copyV11Sizes, V11_PRESET_NAMES, V11_PRESETS, v11CheckpointLayout } from './synth/vargpt-v1.1.js';

export type { Blip3oPresetName, Blip3oSizes, BsqVaeSizes, ImageProcessorSizes, InfinitySizes, ModelSizes, PresetName, QwenLlmSizes, QwenVisionSizes, SynthDType, V11PresetName, V11Sizes, VqvaeSizes };
export { BLIP3O_PRESET_NAMES, BLIP3O_PRESETS, PRESET_NAMES, PRESETS, V11_PRESET_NAMES, V11_PRESETS };

export type SynthFamily = 'vargpt-v1' | 'vargpt-v1.1' | 'blip3o';
export const SYNTH_FAMILIES: readonly SynthFamily[] = ['vargpt-v1', 'vargpt-v1.1', 'blip3o'];

// Each family's preset names, for help texts and errors.
export const FAMILY_PRESET_NAMES: Readonly<Record<SynthFamily, readonly string[]>> = {
  'vargpt-v1': PRESET_NAMES,
  'vargpt-v1.1': V11_PRESET_NAMES,
  blip3o: BLIP3O_PRESET_NAMES,
};

// Each family's stored dtype when none is asked for: BLIP3-o's release is bfloat16 throughout.
export const FAMILY_DEFAULT_DTYPE: Readonly<Record<SynthFamily, SynthDType>> = { 'vargpt-v1': 'f32', 'vargpt-v1.1': 'f32', blip3o: 'bf16' };

interface CommonSynthesizeOptions {
  out: string;
  dtype?: SynthDType; // default FAMILY_DEFAULT_DTYPE
  seed?: number; // default 0
  // Shard above this many bytes of tensor data (default 2e9, as "2GB" in transformers; BLIP3-o:
  // 5e9, transformers 4.51's "5GB", and 5e6 for the tiny preset, which splits it as the fixture).
  maxShardBytes?: number;
  // Replace an existing non-empty `out` (default false: refuse).
  overwrite?: boolean;
  onProgress?: (progress: { bytes: number; totalBytes: number }) => void;
  signal?: AbortSignal;
}

export interface SynthesizeV1Options extends CommonSynthesizeOptions {
  family?: 'vargpt-v1';
  // A preset name, or the path of a config.json (LLM and vision sizes from it; VAR-d30 and the
  // full VQ-VAE unless overridden, as the released model; no vision_config = no vision tower).
  preset: PresetName | string;
  // Overrides of the VAR depth (width 64*depth, heads = depth) and VQ-VAE sizes.
  varDepth?: number;
  vqvae?: Partial<VqvaeSizes>;
}

export interface SynthesizeV11Options extends CommonSynthesizeOptions {
  family: 'vargpt-v1.1';
  preset: V11PresetName;
}

// The checkpoint folder plus diffusion-decoder/ (unet, vae, scheduler) in diffusers layout.
export interface SynthesizeBlip3oOptions extends CommonSynthesizeOptions {
  family: 'blip3o';
  preset: Blip3oPresetName;
  // Sizes to write instead of the preset's (checked as the presets are): other query counts,
  // GQA in the DiT, an untied head... `preset` still names the result.
  sizes?: Blip3oSizes;
}

export type SynthesizeOptions = SynthesizeV1Options | SynthesizeV11Options | SynthesizeBlip3oOptions;

interface CommonSynthesizeResult {
  dir: string;
  parameters: number;
  tensors: number;
  bytes: number;
  files: string[];
}

export interface SynthesizeV1Result extends CommonSynthesizeResult {
  family: 'vargpt-v1';
  sizes: ModelSizes;
}

export interface SynthesizeV11Result extends CommonSynthesizeResult {
  family: 'vargpt-v1.1';
  sizes: V11Sizes;
}

export interface SynthesizeBlip3oResult extends CommonSynthesizeResult {
  family: 'blip3o';
  sizes: Blip3oSizes;
}

export type SynthesizeResult = SynthesizeV1Result | SynthesizeV11Result | SynthesizeBlip3oResult;

// One file the plan writes, by its path inside the checkpoint: JSON (compact or indented) or text.
type PlanFile = { name: string; json: JsonObject; compact?: boolean } | { name: string; text: string };

// What one family writes: the sharded model tensors (by default split by planShards), further
// single-file tensor groups (diffusers components), and the other files in write order.
interface Plan {
  specs: TensorSpec[];
  shard?: (dtype: SynthDType, maxShardBytes: number) => Shard[];
  defaultMaxShardBytes?: number;
  extraWeights?: Array<{ file: string; specs: TensorSpec[] }>;
  patchNums?: readonly number[];
  files: () => Promise<PlanFile[]>;
}

// A preset of another family is the likely mistake: name that family.
function otherFamilyHint(preset: string, family: SynthFamily): string {
  const other = SYNTH_FAMILIES.find((f) => f !== family && FAMILY_PRESET_NAMES[f].includes(preset));
  return other ? `; "${preset}" is a ${other} preset (family: '${other}', --family ${other})` : '';
}

function isPresetName(value: string): value is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(value);
}

async function resolveSizes(options: SynthesizeV1Options): Promise<{ sizes: ModelSizes; config: JsonObject | null }> {
  let sizes: ModelSizes;
  let config: JsonObject | null = null;
  if (isPresetName(options.preset)) {
    const p = PRESETS[options.preset];
    sizes = { llm: { ...p.llm }, vision: p.vision ? { ...p.vision } : null, var: { ...p.var, patchNums: [...p.var.patchNums] }, vqvae: { ...p.vqvae } };
  } else {
    if (!options.preset.endsWith('.json')) {
      throw new InputError(`preset "${options.preset}" is neither ${PRESET_NAMES.join(', ')} nor the path of a config.json${otherFamilyHint(options.preset, 'vargpt-v1')}`);
    }
    config = await readJsonFile(options.preset, 'preset config');
    const parsed = parseModelConfig(config, options.preset);
    checkTokenIds(parsed.imageTokenIndex, parsed.specialTokenIds, parsed.text.vocabSize, options.preset);
    sizes = {
      llm: {
        hidden: parsed.text.hiddenSize,
        layers: parsed.text.layers,
        heads: parsed.text.heads,
        kvHeads: parsed.text.kvHeads,
        intermediate: parsed.text.intermediateSize,
        vocab: parsed.text.vocabSize,
        maxPositions: parsed.text.maxPositions,
      },
      vision: parsed.vision && {
        hidden: parsed.vision.hiddenSize,
        layers: parsed.vision.layers,
        heads: parsed.vision.heads,
        intermediate: parsed.vision.intermediateSize,
        imageSize: parsed.vision.imageSize,
        patchSize: parsed.vision.patchSize,
      },
      var: varOfDepth(30),
      vqvae: { ...FULL_VQVAE },
    };
  }
  if (options.varDepth !== undefined) {
    if (!Number.isSafeInteger(options.varDepth) || options.varDepth < 1) throw new InputError(`varDepth must be a positive integer, got ${options.varDepth}`);
    sizes.var = varOfDepth(options.varDepth);
  }
  if (options.vqvae) sizes.vqvae = { ...sizes.vqvae, ...options.vqvae };
  return { sizes, config };
}

// The synthesized tokenizer has VARGPT's fixed ids; a custom config must agree with them.
function checkTokenIds(
  image: number,
  gen: { imageGenStart: number; imageGenEnd: number; imageGenPad: number } | null,
  vocab: number,
  file: string,
): void {
  const want = { image: 32000, imageGenStart: 32002, imageGenEnd: 32003, imageGenPad: 32004 };
  const got = { image, ...(gen ?? want) };
  for (const key of Object.keys(want) as Array<keyof typeof want>) {
    if (got[key] !== want[key]) throw new InputError(`${file}: ${key} token id ${got[key]} differs from the synthesized tokenizer's ${want[key]}`);
  }
  if (vocab < 32005) throw new InputError(`${file}: vocab_size ${vocab} is smaller than the tokenizer (32005 tokens)`);
}

async function checkOut(out: string, overwrite: boolean): Promise<void> {
  let entries: string[];
  try {
    const info = await stat(out);
    if (!info.isDirectory()) throw new InputError(`synthesize: ${out} exists and is not a directory`);
    entries = await readdir(out);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (entries.length > 0 && !overwrite) {
    throw new InputError(`synthesize: ${out} is not empty; choose another folder or pass overwrite: true (--force)`);
  }
}

async function planV1(options: SynthesizeV1Options, dtype: SynthDType): Promise<{ plan: Plan; sizes: ModelSizes }> {
  const { sizes, config } = await resolveSizes(options);
  const files = async () => {
    const list = [
      { name: 'config.json', json: config ? { ...config, torch_dtype: TORCH_DTYPE[dtype] } : modelConfigJson(sizes, dtype) },
      { name: 'generation_config.json', json: generationConfigJson() },
      { name: 'tokenizer.json', json: await tokenizerJson() },
      { name: 'tokenizer_config.json', json: tokenizerConfigJson() },
      { name: 'special_tokens_map.json', json: specialTokensMapJson() },
      { name: 'chat_template.json', json: chatTemplateJson() },
      { name: 'processor_config.json', json: processorConfigJson(sizes.vision?.patchSize ?? 14) },
    ];
    if (sizes.vision) list.push({ name: 'preprocessor_config.json', json: preprocessorConfigJson(sizes.vision.imageSize) });
    return list;
  };
  return { plan: { specs: checkpointLayout(sizes), patchNums: sizes.var.patchNums, files }, sizes };
}

function isV11PresetName(value: string): value is V11PresetName {
  return (V11_PRESET_NAMES as readonly string[]).includes(value);
}

function v11Sizes(options: SynthesizeV11Options): V11Sizes {
  const v1Only = options as unknown as { varDepth?: unknown; vqvae?: unknown };
  for (const key of ['varDepth', 'vqvae'] as const) {
    if (v1Only[key] !== undefined) throw new InputError(`synthesize: ${key} applies to family vargpt-v1 only, not vargpt-v1.1`);
  }
  if (typeof options.preset !== 'string' || !isV11PresetName(options.preset)) {
    throw new InputError(`synthesize: preset "${String(options.preset)}" is not a vargpt-v1.1 preset (${V11_PRESET_NAMES.join(', ')})${otherFamilyHint(String(options.preset), 'vargpt-v1.1')}`);
  }
  return copyV11Sizes(V11_PRESETS[options.preset]);
}

function planV11(sizes: V11Sizes, dtype: SynthDType): Plan {
  const files = async () => [
    { name: 'config.json', json: v11ModelConfigJson(sizes, dtype) },
    { name: 'generation_config.json', json: v11GenerationConfigJson() },
    // Compact: indenting 150k vocabulary entries and merge pairs would triple its size.
    { name: 'tokenizer.json', json: await v11TokenizerJson(), compact: true },
    { name: 'tokenizer_config.json', json: v11TokenizerConfigJson() },
    { name: 'special_tokens_map.json', json: v11SpecialTokensMapJson() },
    { name: 'chat_template.json', json: v11ChatTemplateJson() },
    { name: 'preprocessor_config.json', json: v11PreprocessorConfigJson(sizes) },
  ];
  return { specs: v11CheckpointLayout(sizes), files };
}

function blip3oSizes(options: SynthesizeBlip3oOptions): Blip3oSizes {
  const v1Only = options as unknown as { varDepth?: unknown; vqvae?: unknown };
  for (const key of ['varDepth', 'vqvae'] as const) {
    if (v1Only[key] !== undefined) throw new InputError(`synthesize: ${key} applies to family vargpt-v1 only, not blip3o`);
  }
  const preset = String(options.preset);
  if (!(BLIP3O_PRESET_NAMES as readonly string[]).includes(preset)) {
    throw new InputError(`synthesize: preset "${preset}" is not a blip3o preset (${BLIP3O_PRESET_NAMES.join(', ')})${otherFamilyHint(preset, 'blip3o')}`);
  }
  if (options.sizes === undefined) return copyBlip3oSizes(BLIP3O_PRESETS[preset as Blip3oPresetName]);
  return copyBlip3oSizes(options.sizes);
}

function planBlip3o(sizes: Blip3oSizes, preset: Blip3oPresetName, dtype: SynthDType): Plan {
  const layouts = blip3oLayouts(sizes);
  const config = blip3oModelConfigJson(sizes, dtype);
  const unetConfig = unetConfigJson(sizes.unet);
  const vaeConfig = vaeConfigJson(sizes.vae);
  // What is written must be what the family's loader accepts.
  const parsed = parseBlip3oConfig(config, 'synthesize: config.json');
  checkDitAgainstConfig(ditSizesFromShapes(new Map(layouts.model.map((s) => [s.name, s.shape])), 'synthesize'), parsed, 'synthesize');
  checkDecoderAgainstConfig(parseUnetConfig(unetConfig, 'synthesize: unet config'), parseVaeConfig(vaeConfig, 'synthesize: vae config'), parsed, 'synthesize');
  const decoder = 'diffusion-decoder';
  const weights = diffusersWeightsFile(dtype);
  const files = async (): Promise<PlanFile[]> => {
    const slow = await blip3oSlowTokenizerFiles();
    return [
      { name: 'config.json', json: config },
      { name: 'generation_config.json', json: blip3oGenerationConfigJson() },
      { name: 'tokenizer.json', json: await blip3oTokenizerJson(), compact: true },
      { name: 'tokenizer_config.json', json: blip3oTokenizerConfigJson() },
      { name: 'special_tokens_map.json', json: blip3oSpecialTokensMapJson() },
      { name: 'added_tokens.json', json: blip3oAddedTokensJson() },
      { name: 'chat_template.json', json: blip3oChatTemplateJson() },
      { name: 'vocab.json', text: slow.vocab },
      { name: 'merges.txt', text: slow.merges },
      { name: 'preprocessor_config.json', json: blip3oPreprocessorConfigJson(sizes) },
      { name: `${decoder}/model_index.json`, json: modelIndexJson() },
      { name: `${decoder}/scheduler/scheduler_config.json`, json: eulerSchedulerJson() },
      { name: `${decoder}/unet/config.json`, json: unetConfig },
      { name: `${decoder}/vae/config.json`, json: vaeConfig },
    ];
  };
  return {
    specs: layouts.model,
    shard: (d, maxBytes) => {
      const groups = planHubShards(layouts.model.map((spec) => ({ spec, bytes: tensorBytes(spec, d) })), maxBytes);
      if (groups.length === 1) return [{ file: 'model.safetensors', specs: [...layouts.model], bytes: groups[0]!.reduce((n, g) => n + g.bytes, 0) }];
      const count = String(groups.length).padStart(5, '0');
      return groups.map((g, i) => ({
        file: `model-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`,
        specs: g.map((x) => x.spec),
        bytes: g.reduce((n, x) => n + x.bytes, 0),
      }));
    },
    defaultMaxShardBytes: preset === 'tiny' ? 5e6 : 5e9,
    extraWeights: [
      { file: `${decoder}/unet/${weights}`, specs: layouts.unet },
      { file: `${decoder}/vae/${weights}`, specs: layouts.vae },
    ],
    files,
  };
}

export function synthesize(options: SynthesizeV1Options): Promise<SynthesizeV1Result>;
export function synthesize(options: SynthesizeV11Options): Promise<SynthesizeV11Result>;
export function synthesize(options: SynthesizeBlip3oOptions): Promise<SynthesizeBlip3oResult>;
export function synthesize(options: SynthesizeOptions): Promise<SynthesizeResult>;
export async function synthesize(options: SynthesizeOptions): Promise<SynthesizeResult> {
  if (typeof options !== 'object' || options === null) throw new InputError('synthesize(options): options must be an object');
  const family: unknown = options.family ?? 'vargpt-v1';
  if (typeof family !== 'string' || !(SYNTH_FAMILIES as readonly string[]).includes(family)) {
    throw new InputError(`synthesize: family must be ${SYNTH_FAMILIES.slice(0, -1).join(', ')} or ${SYNTH_FAMILIES.at(-1)}, got "${String(family)}"`);
  }
  const { out, signal } = options;
  const dtype = options.dtype ?? FAMILY_DEFAULT_DTYPE[family as SynthFamily];
  const seed = options.seed ?? 0;
  if (typeof out !== 'string' || out.length === 0) throw new InputError('synthesize: out must be a folder path');
  if (!(dtype in TORCH_DTYPE)) throw new InputError(`synthesize: dtype must be f32, bf16 or f16, got "${String(dtype)}"`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new InputError(`synthesize: seed must be a non-negative integer, got ${seed}`);
  if (options.maxShardBytes !== undefined && !(options.maxShardBytes > 0)) throw new InputError(`synthesize: maxShardBytes must be positive, got ${options.maxShardBytes}`);
  if (typeof options.preset !== 'string') {
    throw new InputError(`synthesize: preset must be ${family === 'vargpt-v1' ? `${PRESET_NAMES.join(', ')} or a config.json path` : FAMILY_PRESET_NAMES[family as SynthFamily].join(', ')}`);
  }
  const v11 = options.family === 'vargpt-v1.1' ? v11Sizes(options) : null;
  const blip3o = options.family === 'blip3o' ? blip3oSizes(options) : null;
  throwIfAborted(signal, 'synthesize');

  const target = path.resolve(out);
  await checkOut(target, options.overwrite ?? false);
  let plan: Plan;
  let result: { family: 'vargpt-v1'; sizes: ModelSizes } | { family: 'vargpt-v1.1'; sizes: V11Sizes } | { family: 'blip3o'; sizes: Blip3oSizes };
  if (v11) {
    plan = planV11(v11, dtype);
    result = { family: 'vargpt-v1.1', sizes: v11 };
  } else if (blip3o) {
    plan = planBlip3o(blip3o, options.preset as Blip3oPresetName, dtype);
    result = { family: 'blip3o', sizes: blip3o };
  } else {
    const v1 = await planV1(options as SynthesizeV1Options, dtype);
    plan = v1.plan;
    result = { family: 'vargpt-v1', sizes: v1.sizes };
  }
  const { specs } = plan;
  const maxShardBytes = options.maxShardBytes ?? plan.defaultMaxShardBytes ?? 2e9;
  const shards = plan.shard ? plan.shard(dtype, maxShardBytes) : planShards(specs, dtype, maxShardBytes);
  const modelBytes = shards.reduce((n, s) => n + s.bytes, 0);
  const extra = plan.extraWeights ?? [];
  const allSpecs = [...specs, ...extra.flatMap((w) => w.specs)];
  const totalBytes = allSpecs.reduce((n, s) => n + tensorBytes(s, dtype), 0);

  await mkdir(path.dirname(target), { recursive: true });
  const temp = `${target}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(temp);
  try {
    const write = async (name: string, text: string) => {
      await mkdir(path.dirname(path.join(temp, name)), { recursive: true });
      await writeFile(path.join(temp, name), text);
    };
    const json = (name: string, value: JsonObject, compact = false) => write(name, compact ? JSON.stringify(value) : `${JSON.stringify(value, null, 2)}\n`);
    for (const file of await plan.files()) await ('text' in file ? write(file.name, file.text) : json(file.name, file.json, file.compact));

    let bytes = 0;
    const onBytes = (n: number) => {
      bytes += n;
      options.onProgress?.({ bytes, totalBytes });
    };
    for (const shard of [...shards, ...extra]) {
      await mkdir(path.dirname(path.join(temp, shard.file)), { recursive: true });
      await writeSafetensors(path.join(temp, shard.file), shard.specs, { dtype, seed, patchNums: plan.patchNums, signal, onBytes });
    }
    if (shards.length > 1) {
      const weightMap: JsonObject = {};
      for (const shard of shards) for (const spec of shard.specs) weightMap[spec.name] = shard.file;
      const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      await json('model.safetensors.index.json', { metadata: { total_size: modelBytes }, weight_map: sorted });
    }
    throwIfAborted(signal, 'synthesize');
    if (options.overwrite) await rm(target, { recursive: true, force: true });
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  const files = (await readdir(target)).sort();
  return {
    ...result,
    dir: target,
    parameters: parameterCount(allSpecs),
    tensors: allSpecs.length,
    bytes: totalBytes,
    files,
  };
}
