// quantizeCheckpoint(): writes a copy of a checkpoint whose LLM and image-generator linear layers
// are stored quantized (`vargpt quantize`), so that it loads with no float copy of them in memory
// and a smaller file.
//
// Layout (one model.safetensors; everything else copied, config.json with a vargpt_quantization
// entry; subfolders such as BLIP3-o's diffusion-decoder/ copied as they are):
// - the quantized tensors are exactly those loadModel's weights option quantizes (isQuantizedTensor
//   below, by family): the LLM's linear layers, `[language_model.]model.layers.N.
//   {self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj}.weight` and an untied
//   `[language_model.]lm_head.weight`, and the generator transformer's; every other tensor is
//   copied unchanged;
// - int8: `<name>` I8 [N, K] (q, symmetric, in [-127, 127]) and `<name>.q8_scale` F32 [N]
//   (w ≈ scale[n] · q[n, k]);
// - q4: `<name>` U8 [N, Kp / 2] and `<name>.q4_scale` F16 [N, Kp / 32]: K padded to Kp, a
//   multiple of 64; each block of 64 values in 32 bytes, byte j holding value j (low nibble) and
//   value 32 + j (high nibble) as q + 8; one scale per group of 32 (w ≈ scale[n, g] · q).
// The quantization is the runtime's own (native/core/quantize.h), so loading the written
// checkpoint gives the same weights as loadModel(dir, { weights }) on the original.
import { copyFile, mkdir, open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { InputError, abortErrorFrom } from './errors.js';
import { native, type NativeCheckpoint, type NativeTensorInfo } from './native.js';
import { DTYPE_BYTES } from './tensor.js';
import { familyFor } from './families/registry.js';
import type { JsonObject } from './checkpoint-config.js';

export type QuantizedWeights = 'int8' | 'q4';

export interface QuantizeOptions {
  model: string;
  out: string;
  weights: QuantizedWeights;
  onProgress?: (progress: { done: number; total: number }) => void; // tensors
  signal?: AbortSignal;
}

export interface QuantizeReport {
  tensors: number;
  quantized: number; // llmLayers + generatorLayers
  llmLayers: number;
  generatorLayers: number;
  bytesIn: number;
  bytesOut: number;
}

const LLM_LINEAR = /^(language_model\.)?(model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)|lm_head)\.weight$/;
// The image generators' linear layers the runtime reads at the loader's precision (native/models/gen):
// VAR's blocks (attention, MLP, AdaLN projection), head and head AdaLN projection (the AdaLN
// projections act once, at load, on a fixed condition, and are then dropped); Infinity's blocks
// (self- and cross-attention, MLP), its shared and head AdaLN projections (applied to each
// prompt's condition) and head; the BLIP3-o DiT's blocks (attention, cross-attention, MLP, AdaLN
// projection). Input embeddings, the text pooling and the DiT's caption, time and patch embedders
// and output layer stay as stored.
const GENERATOR_LINEAR: Readonly<Record<string, RegExp>> = {
  'vargpt-v1': /^vargpt_gen\.(blocks\.\d+\.(attn\.(mat_qkv|proj)|ffn\.fc(1|2)|ada_lin\.1)|head_nm\.ada_lin\.1|head)\.weight$/,
  'vargpt-v1.1': /^vargpt_gen\.(block_chunks\.\d+\.module\.\d+\.(sa\.(mat_qkv|proj)|ca\.(mat_q|mat_kv|proj)|ffn\.fc(1|2))|shared_ada_lin\.1|head_nm\.ada_lin\.1|head)\.weight$/,
  blip3o: /^model\.dit\.model\.layers\.\d+\.(attn1\.to_(q|k|v)|attn2\.to_(q|k|v|out\.0)|feed_forward\.linear_(1|2|3)|norm1\.linear)\.weight$/,
};
const ST_DTYPE: Readonly<Record<string, string>> = { f32: 'F32', bf16: 'BF16', f16: 'F16', i32: 'I32', i64: 'I64', u8: 'U8', i8: 'I8' };

// Whether `name` is one of the LLM linear layers (every family names them alike).
export function isLlmLinear(name: string): boolean {
  return LLM_LINEAR.test(name);
}

// Whether `name` is one of the image generator's linear layers of `family` ('vargpt-v1',
// 'vargpt-v1.1', 'blip3o') that the runtime quantizes.
export function isGeneratorLinear(name: string, family: string): boolean {
  return GENERATOR_LINEAR[family]?.test(name) ?? false;
}

// Whether loadModel's weights option (and so `vargpt quantize`) quantizes tensor `name` of `family`.
export function isQuantizedTensor(name: string, family: string): boolean {
  return isLlmLinear(name) || isGeneratorLinear(name, family);
}

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
  source: NativeTensorInfo;
  part: 'plain' | 'q' | 'scale';
}

// The copied tensors first, widest elements first (so each stays aligned to its element size in
// the mapped file), then each quantized tensor's q and scale side by side.
function plannedEntries(list: readonly NativeTensorInfo[], weights: QuantizedWeights, family: string): Entry[] {
  const out: Entry[] = [];
  const byName = (a: NativeTensorInfo, b: NativeTensorInfo) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const plain = list.filter((t) => !isQuantizedTensor(t.name, family)).sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || byName(a, b));
  for (const t of plain) out.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], bytes: t.byteLength, source: t, part: 'plain' });
  for (const t of list.filter((x) => isQuantizedTensor(x.name, family)).sort(byName)) {
    if (t.shape.length !== 2 || !['f32', 'bf16', 'f16'].includes(t.dtype)) {
      throw new InputError(`quantize: ${t.name} is ${t.dtype} [${t.shape.join(', ')}], not a float matrix (is the checkpoint quantized already?)`);
    }
    const [N, K] = t.shape as [number, number];
    if (weights === 'int8') {
      out.push({ name: t.name, dtype: 'i8', shape: [N, K], bytes: N * K, source: t, part: 'q' });
      out.push({ name: `${t.name}.q8_scale`, dtype: 'f32', shape: [N], bytes: 4 * N, source: t, part: 'scale' });
    } else {
      const Kp = Math.ceil(K / 64) * 64;
      out.push({ name: t.name, dtype: 'u8', shape: [N, Kp / 2], bytes: (N * Kp) / 2, source: t, part: 'q' });
      out.push({ name: `${t.name}.q4_scale`, dtype: 'f16', shape: [N, Kp / 32], bytes: 2 * N * (Kp / 32), source: t, part: 'scale' });
    }
  }
  return out;
}

async function copyTree(from: string, to: string, skip: (name: string) => boolean): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (skip(entry.name)) continue;
    const src = path.join(from, entry.name), dst = path.join(to, entry.name);
    if (entry.isDirectory()) await copyTree(src, dst, () => false);
    else if (entry.isFile()) await copyFile(src, dst);
  }
}

export async function quantizeCheckpoint(options: QuantizeOptions): Promise<QuantizeReport> {
  const { model, out, weights, signal } = options;
  if (weights !== 'int8' && weights !== 'q4') throw new InputError(`quantize: weights must be "int8" or "q4", got ${JSON.stringify(weights)}`);
  const source = path.resolve(model), target = path.resolve(out);
  if (source === target) throw new InputError('quantize: --out must be another folder than --model');
  const config = JSON.parse(await readFile(path.join(source, 'config.json'), 'utf8').catch(() => {
    throw new InputError(`quantize: ${source} has no config.json (not a checkpoint folder)`);
  })) as Record<string, unknown>;
  const existing = await readdir(target).catch(() => null);
  if (existing && existing.length > 0) throw new InputError(`quantize: ${target} exists and is not empty`);
  if (await stat(target).then((s) => !s.isDirectory(), () => false)) throw new InputError(`quantize: ${target} is a file`);

  const addon = native();
  const checkpoint: NativeCheckpoint = await addon.openCheckpoint(source);
  const { family } = familyFor(config as JsonObject, path.join(source, 'config.json'));
  const entries = plannedEntries(checkpoint.list(), weights, family);
  const quantized = entries.filter((e) => e.part === 'q').length;
  if (quantized === 0) throw new InputError(`quantize: ${source} has no linear layers to quantize`);
  const generatorLayers = entries.filter((e) => e.part === 'q' && isGeneratorLinear(e.name, family)).length;

  await copyTree(source, target, (name) => name.endsWith('.safetensors') || name === 'model.safetensors.index.json' || name === 'config.json');
  config['vargpt_quantization'] = {
    weights,
    tensors: `the LLM linear layers ([language_model.]model.layers.N.{self_attn.{q,k,v,o}_proj,mlp.{gate,up,down}_proj}.weight, an untied lm_head.weight) and the image generator's (${GENERATOR_LINEAR[family]?.source ?? 'none'})`,
    layout: weights === 'int8' ? 'I8 q [N, K] + F32 <name>.q8_scale [N]' : 'U8 nibbles [N, Kp/2] + F16 <name>.q4_scale [N, Kp/32], groups of 32',
  };
  await writeFile(path.join(target, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);

  // Header: offsets in entry order; the JSON padded with spaces to a multiple of 8.
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', 'vargpt.weights': weights } };
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: ST_DTYPE[e.dtype], shape: e.shape, data_offsets: [offset, offset + e.bytes] };
    offset += e.bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length % 8 !== 0) json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const file = await open(path.join(target, 'model.safetensors'), 'w');
  let bytesIn = 0;
  try {
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(BigInt(json.length));
    await file.write(size);
    await file.write(json);
    let done = 0;
    for (let i = 0; i < entries.length; i++) {
      if (signal?.aborted) throw abortErrorFrom(signal, 'quantize');
      const e = entries[i]!;
      if (e.part === 'scale') continue; // written right after its q
      const t = checkpoint.read(e.source.name);
      bytesIn += e.source.byteLength;
      if (e.part === 'plain') {
        await file.write(new Uint8Array(t.data));
      } else {
        const { q, scale } = await addon.quantizeTensor(t, weights);
        await file.write(new Uint8Array(q.data));
        await file.write(new Uint8Array(scale.data));
      }
      options.onProgress?.({ done: ++done, total: entries.length - quantized });
    }
  } finally {
    await file.close();
  }
  const bytesOut = 8 + json.length + offset;
  return { tensors: entries.length - quantized, quantized, llmLayers: quantized - generatorLayers, generatorLayers, bytesIn, bytesOut };
}
