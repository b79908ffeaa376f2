// synthesize(): writes a random-weight VARGPT v1 checkpoint in the real Hugging Face layout --
// the built-in default model of the CLI, the benchmark presets, and test inputs of any size.
//
// The folder is assembled in a temporary sibling directory and renamed into place at the end, so
// a crash or an abort never leaves a half-written checkpoint under `out`.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { readJsonFile } from './checkpoint-config.js';
import type { JsonObject } from './checkpoint-config.js';
import { InputError, throwIfAborted } from './errors.js';
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
import { planShards, tensorBytes, writeSafetensors } from './synth/safetensors-writer.js';
import { parameterCount, TORCH_DTYPE } from './synth/tensors.js';
import type { SynthDType } from './synth/tensors.js';
import type { ModelSizes, PresetName, VqvaeSizes } from './synth/vargpt-v1.js';
import { checkpointLayout, FULL_VQVAE, PRESET_NAMES, PRESETS, varOfDepth } from './synth/vargpt-v1.js';

export type { ModelSizes, PresetName, SynthDType, VqvaeSizes };
export { PRESET_NAMES, PRESETS };

export interface SynthesizeOptions {
  // A preset name, or the path of a config.json (LLM and vision sizes from it; VAR-d30 and the
  // full VQ-VAE unless overridden, as the released model; no vision_config = no vision tower).
  preset: PresetName | string;
  out: string;
  dtype?: SynthDType; // default 'f32'
  seed?: number; // default 0
  // Overrides of the VAR depth (width 64*depth, heads = depth) and VQ-VAE sizes.
  varDepth?: number;
  vqvae?: Partial<VqvaeSizes>;
  // Shard above this many bytes of tensor data (default 2e9, as "2GB" in transformers).
  maxShardBytes?: number;
  // Replace an existing non-empty `out` (default false: refuse).
  overwrite?: boolean;
  onProgress?: (progress: { bytes: number; totalBytes: number }) => void;
  signal?: AbortSignal;
}

export interface SynthesizeResult {
  dir: string;
  sizes: ModelSizes;
  parameters: number;
  tensors: number;
  bytes: number;
  files: string[];
}

function isPresetName(value: string): value is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(value);
}

async function resolveSizes(options: SynthesizeOptions): Promise<{ sizes: ModelSizes; config: JsonObject | null }> {
  let sizes: ModelSizes;
  let config: JsonObject | null = null;
  if (isPresetName(options.preset)) {
    const p = PRESETS[options.preset];
    sizes = { llm: { ...p.llm }, vision: p.vision ? { ...p.vision } : null, var: { ...p.var, patchNums: [...p.var.patchNums] }, vqvae: { ...p.vqvae } };
  } else {
    if (!options.preset.endsWith('.json')) {
      throw new InputError(`preset "${options.preset}" is neither ${PRESET_NAMES.join(', ')} nor the path of a config.json`);
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

export async function synthesize(options: SynthesizeOptions): Promise<SynthesizeResult> {
  if (typeof options !== 'object' || options === null) throw new InputError('synthesize(options): options must be an object');
  const { out, signal } = options;
  const dtype = options.dtype ?? 'f32';
  const seed = options.seed ?? 0;
  if (typeof out !== 'string' || out.length === 0) throw new InputError('synthesize: out must be a folder path');
  if (!(dtype in TORCH_DTYPE)) throw new InputError(`synthesize: dtype must be f32, bf16 or f16, got "${String(dtype)}"`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new InputError(`synthesize: seed must be a non-negative integer, got ${seed}`);
  const maxShardBytes = options.maxShardBytes ?? 2e9;
  if (!(maxShardBytes > 0)) throw new InputError(`synthesize: maxShardBytes must be positive, got ${maxShardBytes}`);
  if (typeof options.preset !== 'string') throw new InputError(`synthesize: preset must be ${PRESET_NAMES.join(', ')} or a config.json path`);
  throwIfAborted(signal, 'synthesize');

  const target = path.resolve(out);
  await checkOut(target, options.overwrite ?? false);
  const { sizes, config } = await resolveSizes(options);
  const specs = checkpointLayout(sizes);
  const shards = planShards(specs, dtype, maxShardBytes);
  const totalBytes = shards.reduce((n, s) => n + s.bytes, 0);

  await mkdir(path.dirname(target), { recursive: true });
  const temp = `${target}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(temp);
  try {
    const json = (name: string, value: JsonObject) => writeFile(path.join(temp, name), `${JSON.stringify(value, null, 2)}\n`);
    const modelConfig = config ? { ...config, torch_dtype: TORCH_DTYPE[dtype] } : modelConfigJson(sizes, dtype);
    await json('config.json', modelConfig);
    await json('generation_config.json', generationConfigJson());
    await json('tokenizer.json', tokenizerJson());
    await json('tokenizer_config.json', tokenizerConfigJson());
    await json('special_tokens_map.json', specialTokensMapJson());
    await json('chat_template.json', chatTemplateJson());
    await json('processor_config.json', processorConfigJson(sizes.vision?.patchSize ?? 14));
    if (sizes.vision) await json('preprocessor_config.json', preprocessorConfigJson(sizes.vision.imageSize));

    let bytes = 0;
    const onBytes = (n: number) => {
      bytes += n;
      options.onProgress?.({ bytes, totalBytes });
    };
    for (const shard of shards) {
      await writeSafetensors(path.join(temp, shard.file), shard.specs, { dtype, seed, patchNums: sizes.var.patchNums, signal, onBytes });
    }
    if (shards.length > 1) {
      const weightMap: JsonObject = {};
      for (const shard of shards) for (const spec of shard.specs) weightMap[spec.name] = shard.file;
      const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      await json('model.safetensors.index.json', { metadata: { total_size: totalBytes }, weight_map: sorted });
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
    dir: target,
    sizes,
    parameters: parameterCount(specs),
    tensors: specs.length,
    bytes: specs.reduce((n, s) => n + tensorBytes(s, dtype), 0),
    files,
  };
}
