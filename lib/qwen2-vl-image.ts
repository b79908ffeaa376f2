// Qwen2-VL image preprocessing (transformers Qwen2VLImageProcessor, which VARGPT-v1.1 copies;
// spec vargpt-v1.1 §3.3): smart_resize to multiples of patch x merge within [min_pixels,
// max_pixels], Pillow's bicubic, rescale and normalise (the same float32 steps as the CLIP path),
// the still image repeated over the temporal patch, and patches of channels x temporal x patch x
// patch values in window-major order (each merge x merge window's patches consecutive, as the
// vision tower's PatchMerger reads them).
import { InputError } from './errors.js';
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
// below `factor` or an aspect ratio past 200, as upstream does.
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
    h = Math.floor(height / beta / factor) * factor;
    w = Math.floor(width / beta / factor) * factor;
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
