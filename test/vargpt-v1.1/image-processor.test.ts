// Qwen2-VL image preprocessing against the VARGPT-v1.1 fixture: the understanding case's input.png
// (410x290) becomes exactly the recorded pixel_values (48 patches of 1176 values, float32-vs-float64
// spread 0 in the manifest) and image_grid_thw; smart_resize follows Python's rounding and limits.
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { decodeImage } from '../../lib/image.js';
import { qwen2VlPixels, smartResize, type Qwen2VlImageConfig } from '../../lib/qwen2-vl-image.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { asFloat32, asNumbers, readJson, readSafetensors } from '../helpers/fixtures.js';
import { fixturesMissing, v11ExpectedDir, v11ModelDir } from '../helpers/paths.js';

interface PreprocessorJson {
  patch_size: number;
  merge_size: number;
  temporal_patch_size: number;
  min_pixels: number;
  max_pixels: number;
  resample: number;
  rescale_factor: number;
  image_mean: [number, number, number];
  image_std: [number, number, number];
}

// Read in a hook, where the fixtures are: without them the fixture test skips and smart_resize
// still runs.
let config: Qwen2VlImageConfig;
beforeAll(() => {
  if (fixturesMissing !== null) return;
  const pre = readJson<PreprocessorJson>(path.join(v11ModelDir, 'preprocessor_config.json'));
  config = {
    patchSize: pre.patch_size,
    mergeSize: pre.merge_size,
    temporalPatchSize: pre.temporal_patch_size,
    minPixels: pre.min_pixels,
    maxPixels: pre.max_pixels,
    resample: pre.resample,
    rescaleFactor: pre.rescale_factor,
    mean: pre.image_mean,
    std: pre.image_std,
  };
});

describe('Qwen2-VL image preprocessing', () => {
  it.skipIf(fixturesMissing !== null)(fixtureTitle('reproduces the fixture pixel_values and image_grid_thw bit for bit'), async () => {
    const expected = readSafetensors(path.join(v11ExpectedDir, 'understanding.safetensors'));
    const image = await decodeImage(path.join(v11ExpectedDir, 'input.png'));
    expect([image.width, image.height]).toEqual([410, 290]);
    const out = await qwen2VlPixels(image, config);
    expect([out.grid.t, out.grid.h, out.grid.w]).toEqual(asNumbers(expected.get('image_grid_thw')!));
    const ref = asFloat32(expected.get('pixel_values')!);
    expect(out.patches.length).toBe(ref.length);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(out.patches[i]! - ref[i]!));
    expect(worst).toBe(0);
  });

  it('smart_resize: multiples of 28, pixel limits, Python rounding, and the upstream errors', () => {
    expect(smartResize(290, 410, 28, 3136, 12544)).toEqual({ height: 84, width: 112 });
    // Within the limits: round(H / 28) with halves to even (42 / 28 = 1.5 -> 2, 70 / 28 = 2.5 -> 2).
    expect(smartResize(42, 70, 28, 0, 1e9)).toEqual({ height: 56, width: 56 });
    expect(smartResize(28, 28, 28, 3136, 12544)).toEqual({ height: 56, width: 56 }); // below min_pixels: scaled up
    expect(() => smartResize(27, 400, 28, 3136, 12544)).toThrow(/at least 28 pixels/);
    expect(() => smartResize(30, 6100, 28, 3136, 1e9)).toThrow(/aspect ratio must be at most 200/);
  });
});
