// Qwen2-VL image preprocessing (transformers Qwen2VLImageProcessor, which VARGPT-v1.1 copies;
// spec vargpt-v1.1 §3.3): smart_resize to multiples of patch x merge within [min_pixels,
// max_pixels], Pillow's bicubic, rescale and normalise (the same float32 steps as the CLIP path),
// the still image repeated over the temporal patch, and patches of channels x temporal x patch x
// patch values in window-major order (each merge x merge window's patches consecutive, as the
// vision tower's PatchMerger reads them).
import type { JsonObject } from './checkpoint-config.js';
import { Reader } from './checkpoint-config.js';
import { CheckpointError, InputError } from './errors.js';
import type { RgbImage } from './image.js';
import { native } from './native.js';

export interface Qwen2VlImageConfig {
  patchSize: number; // 14
  mergeSize: number; // 2
  temporalPatchSize: number; // 2
  minPixels: number;
  maxPixels: number;
  resample: number; // Pillow filter id (3 = bicubic)
  rescaleFactor: number;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

// transformers' Qwen2VLImageProcessor defaults, for keys a preprocessor_config.json leaves out.
const QWEN2_VL_DEFAULTS = { minPixels: 56 * 56, maxPixels: 28 * 28 * 1280 } as const;
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

// preprocessor_config.json of a Qwen2-VL processor. Pixel limits are read where transformers
// reads them: min_pixels / max_pixels, else size.min_pixels / size.max_pixels, else
// size.shortest_edge / size.longest_edge (the newer spelling of the same two limits).
export function parseQwen2VlImageConfig(raw: JsonObject, file = 'preprocessor_config.json'): Qwen2VlImageConfig {
  const r = new Reader(file, raw);
  for (const key of ['do_resize', 'do_rescale', 'do_normalize', 'do_convert_rgb']) {
    if (!r.bool(key, true)) throw new CheckpointError(`${file}: "${key}" is false; this runtime preprocesses Qwen2-VL images only as the model was trained (resize, rescale, normalise)`);
  }
  const size = r.optionalChild('size');
  const limit = (key: 'min_pixels' | 'max_pixels', edge: string, fallback: number): number => {
    if (r.has(key)) return r.int(key, { min: 1 });
    if (size?.has(key)) return size.int(key, { min: 1 });
    if (size?.has(edge)) return size.int(edge, { min: 1 });
    return fallback;
  };
  const minPixels = limit('min_pixels', 'shortest_edge', QWEN2_VL_DEFAULTS.minPixels);
  const maxPixels = limit('max_pixels', 'longest_edge', QWEN2_VL_DEFAULTS.maxPixels);
  if (minPixels > maxPixels) throw new CheckpointError(`${file}: min_pixels ${minPixels} is above max_pixels ${maxPixels}`);
  const resample = r.int('resample', { fallback: 3 });
  if (resample < 0 || resample > 5) throw new CheckpointError(`${file}: "resample" ${resample} is not a PIL filter id (0-5)`);
  const std = r.has('image_std') ? r.triple('image_std') : CLIP_STD;
  if (std.some((x) => x <= 0)) throw new CheckpointError(`${file}: "image_std" values must be positive`);
  return {
    patchSize: r.int('patch_size', { min: 1, fallback: 14 }),
    mergeSize: r.int('merge_size', { min: 1, fallback: 2 }),
    temporalPatchSize: r.int('temporal_patch_size', { min: 1, fallback: 2 }),
    minPixels,
    maxPixels,
    resample,
    rescaleFactor: r.number('rescale_factor', 1 / 255),
    mean: r.has('image_mean') ? r.triple('image_mean') : CLIP_MEAN,
    std,
  };
}

export interface Qwen2VlPixels {
  patches: Float32Array; // [gridT * gridH * gridW, 3 * temporal * patch * patch]
  grid: { t: number; h: number; w: number };
  width: number; // the resized image
  height: number;
}

// Python's round(): halves go to the even neighbour.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// transformers' smart_resize, in double as Python computes it. Throws an InputError for a side
// below `factor` (as the transformers 4.46 VARGPT-v1.1 pins) or an aspect ratio past 200. Shrinking
// to max_pixels keeps each side at least `factor`, as later transformers do: without that, a long
// thin image would shrink to zero rows.
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): { height: number; width: number } {
  if (height < factor || width < factor) {
    throw new InputError(`image ${width}x${height}: both sides must be at least ${factor} pixels (Qwen2-VL patches and merges ${factor}x${factor})`);
  }
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new InputError(`image ${width}x${height}: the aspect ratio must be at most 200, got ${(Math.max(height, width) / Math.min(height, width)).toFixed(1)}`);
  }
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return { height: h, width: w };
}

export async function qwen2VlPixels(image: RgbImage, c: Qwen2VlImageConfig): Promise<Qwen2VlPixels> {
  const factor = c.patchSize * c.mergeSize;
  const { height, width } = smartResize(image.height, image.width, factor, c.minPixels, c.maxPixels);
  const planes = await native().preprocessImage(image, {
    resize: { width, height, filter: c.resample },
    normalize: 'meanstd',
    scale: c.rescaleFactor,
    mean: c.mean,
    std: c.std,
  });
  const P = c.patchSize, M = c.mergeSize, T = c.temporalPatchSize;
  const gh = height / P, gw = width / P;
  const patchValues = 3 * T * P * P;
  const patches = new Float32Array(gh * gw * patchValues);
  let at = 0;
  // Window-major: windows (bh, bw) in raster order, inside each the M x M patches in raster
  // order; a patch holds [channel][frame][row][column], every frame the same still image.
  for (let bh = 0; bh < gh / M; bh++)
    for (let bw = 0; bw < gw / M; bw++)
      for (let mh = 0; mh < M; mh++)
        for (let mw = 0; mw < M; mw++) {
          const y0 = (bh * M + mh) * P, x0 = (bw * M + mw) * P;
          for (let ch = 0; ch < 3; ch++) {
            const plane = ch * height * width;
            for (let t = 0; t < T; t++)
              for (let y = 0; y < P; y++) {
                const row = plane + (y0 + y) * width + x0;
                patches.set(planes.data.subarray(row, row + P), at);
                at += P;
              }
          }
        }
  return { patches, grid: { t: 1, h: gh, w: gw }, width, height };
}
