// The VARGPT-v1.1 fixture's Qwen2-VL vision tower (patch projection, 2D RoPE, pre-norm blocks with
// attention inside each image, 2x2 PatchMerger) on the fixture's own pixel values: the patch
// embedding, every block's output and the merger's features against upstream. Tolerance: 4x each
// tensor's float32-vs-float64 spread from the manifest, never tighter than 1e-5 of max|ref|.
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeTensor, type NativeVisionTower } from '../../lib/native.js';
import { asFloat32, asNumbers, readJson, readSafetensors, type StTensor } from '../helpers/fixtures.js';
import { expectClose, spreadTolerance } from '../helpers/model-fixture.js';
import { v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

const understanding = readSafetensors(path.join(v11ExpectedDir, 'understanding.safetensors'));
const manifest = readJson<{ tensors: Record<string, { f32_vs_f64?: { rel_err_maxnorm?: number } }> }>(
  path.join(v11ExpectedDir, 'understanding.json'),
);

function tolerance(tensor: string): number {
  return spreadTolerance(manifest.tensors, tensor, 'understanding');
}

function get(name: string): StTensor {
  const t = understanding.get(name);
  if (!t) throw new Error(`fixture tensor ${name} is missing`);
  return t;
}

function f32(t: NativeTensor): Float32Array {
  expect(t.dtype).toBe('f32');
  return new Float32Array(t.data);
}

describe('VARGPT-v1.1 vision tower (Qwen2-VL ViT) against the fixture', () => {
  let vit: NativeVisionTower;
  const pixels = asFloat32(get('pixel_values'));
  const grid = Int32Array.from(asNumbers(get('image_grid_thw')));
  beforeAll(async () => {
    vit = await native().loadVisionTower(v11ModelDir, 'cpu');
  });

  it('patch embedding, every block and the merger', async () => {
    expect(Array.from(grid)).toEqual([1, 6, 8]); // 48 patches, not square: rows and columns differ in the RoPE
    const out = await vit.encode(pixels, grid);
    expectClose('vit_patch_embed', f32(out.patchEmbed), asFloat32(get('vit_patch_embed')), tolerance('vit_patch_embed'));
    expect(out.blockOut.shape).toEqual(get('vit_block_out').shape);
    expectClose('vit_block_out', f32(out.blockOut), asFloat32(get('vit_block_out')), tolerance('vit_block_out'));
    expectClose('merger_out', f32(out.features), asFloat32(get('merger_out')), tolerance('merger_out'));
  });

  it('keeps attention inside each image: two images in one call give each image alone', async () => {
    const alone = f32((await vit.encode(pixels, grid)).features);
    // The second image: the same patches reversed window by window (a different image of the same grid).
    const P = pixels.length / 48;
    const other = new Float32Array(pixels.length);
    for (let i = 0; i < 48; i++) other.set(pixels.subarray((47 - i) * P, (48 - i) * P), i * P);
    const otherAlone = f32((await vit.encode(other, grid)).features);
    const both = new Float32Array(2 * pixels.length);
    both.set(pixels);
    both.set(other, pixels.length);
    const joint = f32((await vit.encode(both, Int32Array.of(1, 6, 8, 1, 6, 8))).features);
    // Not bit for bit: twice the rows change the GEMMs' blocking and so the f32 summation order
    // (~1e-6 seen). Attention leaking across the images would move the features by O(max|ref|).
    expectClose('first image in a pair', joint.subarray(0, alone.length), alone, 1e-5);
    expectClose('second image in a pair', joint.subarray(alone.length), otherAlone, 1e-5);
    let moved = 0;
    for (let i = 0; i < alone.length; i++) moved = Math.max(moved, Math.abs(alone[i]! - otherAlone[i]!));
    expect(moved, 'the two images give different features').toBeGreaterThan(1e-2);
  });

  it('rejects patches that do not match the grids, and stays usable', async () => {
    await expect(vit.encode(pixels.subarray(0, pixels.length - 4 * 1176), grid)).rejects.toThrow(
      /patches f32\[44, 1176\], expected \[48, 1176\] for the grids given/,
    );
    await expect(vit.encode(pixels.subarray(0, pixels.length - 1176), grid)).rejects.toThrow(/47 patches do not fill 2x2 windows/);
    await expect(vit.encode(pixels, Int32Array.of(1, 5, 8))).rejects.toThrow(/rows and columns multiples of 2/);
    await expect(vit.encode(pixels, Int32Array.of(1, 6))).rejects.toThrow(/\(t, h, w\) triples/);
    const out = await vit.encode(pixels, grid);
    expect(out.features.shape).toEqual([12, 32]);
  });
});
