// The BLIP3-o fixture's Qwen2.5-VL vision tower (RMSNorm, gated MLP, window attention with
// full-attention blocks, 2x2 merger) loaded from the sharded bf16 checkpoint, on the fixture's own
// pixel values: the window layout exactly, then the patch embedding, every block (window order),
// the merger output in window and in original order against upstream; the reconstruction case's
// 448x448 image (a grid that the windows divide, so upstream's padding leaves empty windows).
// Also the image processor on both cases' inputs. Tolerance: 4x each tensor's float32-vs-float64
// spread from the case json, never tighter than 1e-5 of max|ref|.
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { JsonObject } from '../../lib/checkpoint-config.js';
import { decodeImage, type RgbImage } from '../../lib/image.js';
import { native, type NativeTensor, type NativeVisionTower } from '../../lib/native.js';
import { parseQwen2VlImageConfig, qwen2VlPixels } from '../../lib/qwen2-vl-image.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { expectClose, expectEqualInts, reportObserved, toF64, spreadTolerance } from '../helpers/model-fixture.js';
import { blip3oExpectedDir, blip3oModelDir } from '../helpers/paths.js';

type CaseJson = { tensors: Record<string, { f32_vs_f64?: { rel_err_maxnorm?: number } }> };

function fixtureCase(name: string) {
  const tensors = readSafetensors(path.join(blip3oExpectedDir, `${name}.safetensors`));
  const json = readJson<CaseJson>(path.join(blip3oExpectedDir, `${name}.json`));
  return {
    get(tensor: string): StTensor {
      const t = tensors.get(tensor);
      if (!t) throw new Error(`${name}.${tensor} is missing from the fixture`);
      return t;
    },
    tolerance(tensor: string): number {
      return spreadTolerance(json.tensors, tensor, name);
    },
  };
}

const understanding = fixtureCase('understanding');
const reconstruction = fixtureCase('reconstruction');

function f32(t: NativeTensor | undefined): Float32Array {
  expect(t, 'tensor returned').toBeDefined();
  expect(t!.dtype).toBe('f32');
  return new Float32Array(t!.data);
}

function ints(t: NativeTensor | undefined): number[] {
  expect(t, 'tensor returned').toBeDefined();
  return Array.from(toF64(t!));
}

describe('BLIP3-o vision tower (Qwen2.5-VL ViT) against the fixture', () => {
  let vit: NativeVisionTower;
  const pixels = asFloat32(understanding.get('pixel_values'));
  const grid = Int32Array.from(asNumbers(understanding.get('image_grid_thw')));
  const patchValues = understanding.get('pixel_values').shape[1]!;
  const patches = pixels.length / patchValues;
  beforeAll(async () => {
    vit = await native().loadVisionTower(blip3oModelDir, 'cpu');
  });
  afterAll(() => reportObserved('BLIP3-o vision tower'));

  it('understanding: window layout, patch embedding, every block and the merger', async () => {
    const out = await vit.encode(pixels, grid);
    expectEqualInts('vit_window_index', ints(out.windowIndex), asNumbers(understanding.get('vit_window_index')));
    expectEqualInts('vit_cu_window_seqlens', ints(out.cuWindowSeqlens), asNumbers(understanding.get('vit_cu_window_seqlens')));
    expect(out.patchEmbed.shape).toEqual(understanding.get('vit_patch_embed').shape);
    expectClose('vit_patch_embed', f32(out.patchEmbed), asFloat32(understanding.get('vit_patch_embed')), understanding.tolerance('vit_patch_embed'));
    expect(out.blockOut.shape).toEqual(understanding.get('vit_block_out').shape);
    expectClose('vit_block_out', f32(out.blockOut), asFloat32(understanding.get('vit_block_out')), understanding.tolerance('vit_block_out'));
    expectClose('vit_merger_windowed', f32(out.mergerWindowed), asFloat32(understanding.get('vit_merger_windowed')), understanding.tolerance('vit_merger_windowed'));
    expect(out.features.shape).toEqual(understanding.get('vit_out').shape);
    expectClose('vit_out', f32(out.features), asFloat32(understanding.get('vit_out')), understanding.tolerance('vit_out'));
  });

  it('reconstruction: 448x448, a grid the windows divide', async () => {
    const recon = asFloat32(reconstruction.get('pixel_values'));
    const out = await vit.encode(recon, Int32Array.from(asNumbers(reconstruction.get('image_grid_thw'))));
    // Upstream's padding adds a row and a column of empty windows here; their repeated offsets go.
    const offsets = ints(out.cuWindowSeqlens);
    expect(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!), `strictly increasing: ${offsets.join(', ')}`).toBe(true);
    expect(offsets.at(-1)).toBe(recon.length / patchValues);
    expect(out.features.shape).toEqual(reconstruction.get('vit_out').shape);
    expectClose('reconstruction vit_out', f32(out.features), asFloat32(reconstruction.get('vit_out')), reconstruction.tolerance('vit_out'));
  });

  it('gives each image of a call its own windows', async () => {
    const first = await vit.encode(pixels, grid);
    // A second image of another grid: the first image's top patch rows (with the tiny fixture's
    // 20 x 30 grid, 12 x 30: 6 x 15 merged tokens, a partial last window row and column of its
    // own). Patches are stored merged-token-major, so those rows are a prefix of the patches.
    const topGrid = Int32Array.of(1, Math.max(2, grid[1]! - 8), grid[2]!);
    const topPatches = topGrid[1]! * topGrid[2]!;
    const top = pixels.slice(0, topPatches * patchValues);
    const second = await vit.encode(top, topGrid);
    const both = new Float32Array(pixels.length + top.length);
    both.set(pixels);
    both.set(top, pixels.length);
    const joint = await vit.encode(both, Int32Array.of(...grid, ...topGrid));
    expect(ints(joint.windowIndex)).toEqual([...ints(first.windowIndex), ...ints(second.windowIndex).map((i) => i + patches / 4)]);
    expect(ints(joint.cuWindowSeqlens)).toEqual([...ints(first.cuWindowSeqlens), ...ints(second.cuWindowSeqlens).slice(1).map((o) => o + patches)]);
    // Not bit for bit: more rows change the GEMMs' blocking and so the f32 summation order; a
    // window or an attention span crossing the images would move the features by O(max|ref|).
    const firstFeatures = f32(first.features);
    const jointFeatures = f32(joint.features);
    expectClose('first image in a pair', jointFeatures.subarray(0, firstFeatures.length), firstFeatures, 1e-5);
    expectClose('second image in a pair', jointFeatures.subarray(firstFeatures.length), f32(second.features), 1e-5);
  });

  it('rejects patches that do not match the grid, and stays usable', async () => {
    await expect(vit.encode(pixels.subarray(0, pixels.length - 4 * patchValues), grid)).rejects.toThrow(
      new RegExp(`patches f32\\[${patches - 4}, ${patchValues}\\], expected \\[${patches}, ${patchValues}\\] for the grids given`),
    );
    const out = await vit.encode(pixels, grid);
    expect(out.features.shape).toEqual(understanding.get('vit_out').shape);
  });
});

describe('BLIP3-o vision tower: broken vision_config', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  // The fixture's weights (linked, not copied) under an edited config.json.
  function withVisionConfig(edit: (vision: Record<string, unknown>) => void): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vargpt-blip3o-vit-'));
    dirs.push(dir);
    for (const f of readdirSync(blip3oModelDir)) if (f.endsWith('.safetensors') || f.endsWith('.index.json')) symlinkSync(path.join(blip3oModelDir, f), path.join(dir, f));
    const config = readJson<{ vision_config: Record<string, unknown> }>(path.join(blip3oModelDir, 'config.json'));
    edit(config.vision_config);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  }

  it('names the missing or impossible key', async () => {
    const vision = readJson<{ vision_config: { depth: number; hidden_size: number; intermediate_size: number } }>(
      path.join(blip3oModelDir, 'config.json'),
    ).vision_config;
    const { depth, hidden_size: width, intermediate_size: mlp } = vision;
    await expect(native().loadVisionTower(withVisionConfig((v) => delete v['fullatt_block_indexes']), 'cpu')).rejects.toThrow(
      /vision_config: a Qwen2\.5-VL vision tower \(visual\.blocks\.0\.mlp\.gate_proj\) needs fullatt_block_indexes/,
    );
    await expect(native().loadVisionTower(withVisionConfig((v) => (v['fullatt_block_indexes'] = [0, depth])), 'cpu')).rejects.toThrow(
      new RegExp(`fullatt_block_indexes holds ${depth}, past depth ${depth}`),
    );
    await expect(native().loadVisionTower(withVisionConfig((v) => (v['window_size'] = 20)), 'cpu')).rejects.toThrow(
      /window_size 20 is smaller than one merged token \(28 px\)/,
    );
    await expect(native().loadVisionTower(withVisionConfig((v) => (v['intermediate_size'] = mlp + 32)), 'cpu')).rejects.toThrow(
      new RegExp(`tensor visual\\.blocks\\.0\\.mlp\\.gate_proj\\.weight has shape \\[${mlp}, ${width}\\], expected \\[${mlp + 32}, ${width}\\]`),
    );
  });
});

describe('BLIP3-o image processor (Qwen2.5-VL = Qwen2-VL recipe)', () => {
  const config = parseQwen2VlImageConfig(
    readJson<JsonObject>(path.join(blip3oModelDir, 'preprocessor_config.json')),
    'blip3o-tiny preprocessor_config.json',
  );

  function expectExact(name: string, got: Float32Array, ref: Float32Array): void {
    expect(got.length, `${name}: length`).toBe(ref.length);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
    expect(worst, `${name}: max |a-b|`).toBe(0);
  }

  it('understanding: input.png -> pixel_values and image_grid_thw', async () => {
    const image = await decodeImage(path.join(blip3oExpectedDir, 'input.png'));
    const out = await qwen2VlPixels(image, config);
    expect([out.grid.t, out.grid.h, out.grid.w]).toEqual(asNumbers(understanding.get('image_grid_thw')));
    expectExact('understanding pixel_values', out.patches, asFloat32(understanding.get('pixel_values')));
  });

  it('reconstruction: recon_input.png resized to 448x448 (bicubic) -> resized_uint8 -> pixel_values', async () => {
    const source = await decodeImage(path.join(blip3oExpectedDir, 'recon_input.png'));
    const resized = await native().resizeImage(source, { width: 448, height: 448, filter: 3 });
    const refResized = reconstruction.get('resized_uint8');
    expect([resized.height, resized.width, resized.channels]).toEqual(refResized.shape);
    expectEqualInts('resized_uint8', resized.data, new Uint8Array(refResized.bytes));
    const image: RgbImage = { width: 448, height: 448, channels: 3, data: new Uint8Array(refResized.bytes) };
    const out = await qwen2VlPixels(image, config);
    expect([out.grid.t, out.grid.h, out.grid.w]).toEqual(asNumbers(reconstruction.get('image_grid_thw')));
    expectExact('reconstruction pixel_values', out.patches, asFloat32(reconstruction.get('pixel_values')));
  });
});
