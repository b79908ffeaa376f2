// Images in and out of the server: data: URLs and allowed remote URLs into bytes for the model
// (under the server's byte and pixel limits), drawn images out as base64 PNG, and the sizes and
// drawing options each family takes.
import sharp from 'sharp';

import type { GeneratedImage } from '../image.js';
import type { VargptModel } from '../model.js';
import type { ImageSamplingOptions, ScaleSchedule } from '../options.js';
import { HttpError, anySignal, badRequest, tooLarge } from './http.js';
import type { Params } from './params.js';
import { optionalBool, optionalInt, optionalNumber } from './params.js';

export interface ImageInputLimits {
  maxImageBytes: number;
  maxImagePixels: number;
  // Hosts whose http(s) image URLs are fetched; none by default.
  allowRemoteImages: readonly string[];
  remoteTimeoutMs: number;
}

// Checks encoded image bytes against the pixel limit from their header (413 past it, 400 for
// bytes that are no image).
export async function checkImageBytes(bytes: Uint8Array, limits: ImageInputLimits, param: string): Promise<Uint8Array> {
  if (bytes.length > limits.maxImageBytes) throw tooLarge(`${param}: the image is ${bytes.length} bytes; the limit is ${limits.maxImageBytes}`, param);
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch {
    throw badRequest(`${param}: not an image in a format the server reads (PNG, JPEG, WebP, GIF, TIFF, AVIF)`, param, 'invalid_image');
  }
  if (!width || !height) throw badRequest(`${param}: the image has no size`, param, 'invalid_image');
  if (width * height > limits.maxImagePixels) throw tooLarge(`${param}: the image is ${width}x${height} pixels; the limit is ${limits.maxImagePixels} pixels`, param);
  return bytes;
}

const DATA_URL = /^data:([\w.+-]+\/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*)(;base64)?,/i;

// The bytes of an image_url: a data: URL, or an http(s) URL of an allowed host.
export async function imageFromUrl(url: string, limits: ImageInputLimits, param: string, signal: AbortSignal): Promise<Uint8Array> {
  const m = DATA_URL.exec(url);
  if (m) {
    const payload = url.slice(m[0].length);
    // Base64 of the limit, with room for padding: refuse before decoding a huge string.
    if (payload.length > Math.ceil(limits.maxImageBytes / 3) * 4 + 4) throw tooLarge(`${param}: the image is over the limit of ${limits.maxImageBytes} bytes`, param);
    const bytes = m[3] ? Buffer.from(payload, 'base64') : Buffer.from(decodeURIComponent(payload), 'latin1');
    if (bytes.length === 0) throw badRequest(`${param}: the data URL holds no bytes`, param, 'invalid_image');
    return checkImageBytes(bytes, limits, param);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badRequest(`${param}: expected a data: URL (data:image/png;base64,...) or an http(s) URL`, param, 'invalid_image_url');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw badRequest(`${param}: URL scheme "${parsed.protocol}" is not supported; use a data: URL`, param, 'invalid_image_url');
  if (!limits.allowRemoteImages.includes(parsed.hostname.toLowerCase())) {
    throw badRequest(`${param}: remote image URLs are refused (host "${parsed.hostname}" is not allowed by the server); send the image as a data: URL`, param, 'remote_image_refused');
  }
  const timeout = AbortSignal.timeout(limits.remoteTimeoutMs);
  let response: Response;
  try {
    response = await fetch(parsed, { signal: anySignal([signal, timeout]), redirect: 'error' });
  } catch (error) {
    if (signal.aborted) throw error;
    throw badRequest(`${param}: could not fetch ${parsed.origin}${parsed.pathname}: ${(error as Error).message}`, param, 'image_fetch_failed');
  }
  if (!response.ok || !response.body) throw badRequest(`${param}: fetching ${parsed.origin}${parsed.pathname} answered ${response.status}`, param, 'image_fetch_failed');
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > limits.maxImageBytes) {
      await response.body.cancel().catch(() => undefined);
      throw tooLarge(`${param}: the remote image is over the limit of ${limits.maxImageBytes} bytes`, param);
    }
    chunks.push(chunk);
  }
  return checkImageBytes(Buffer.concat(chunks), limits, param);
}

export async function pngBase64(image: GeneratedImage): Promise<string> {
  return (await image.toPNG()).toString('base64');
}

export function canDraw(model: VargptModel): boolean {
  return model.defaults.image !== null;
}

// Families that edit: VARGPT-v1.1 (its -edit checkpoints) and BLIP3-o (image-conditioned).
export function canEdit(model: VargptModel): boolean {
  return canDraw(model) && (model.family === 'vargpt-v1.1' || model.family === 'blip3o');
}

// The image sizes a model draws: its default, and whether another WxH is possible (with the
// options that draw it).
export function defaultSize(model: VargptModel): [number, number] {
  const info = model.info;
  if (info.family === 'vargpt-v1') {
    const side = info.vqvae?.imageSize ?? 256;
    return [side, side];
  }
  if (info.family === 'vargpt-v1.1') {
    const scales = vargptV11Scales(model);
    const last = scales[scales.length - 1] ?? [32, 32];
    const down = info.image?.downsample ?? 16;
    return [last[1] * down, last[0] * down];
  }
  const d = info.image?.defaultSize ?? 1024;
  return [d, d];
}

function vargptV11Scales(model: VargptModel): ScaleSchedule {
  const image = model.defaults.image;
  return image && 'scales' in image && image.scales ? image.scales : [];
}

const MAX_DIFFUSION_SIDE = 2048;

export function sizeOptions(model: VargptModel, size: string | undefined): { width: number; height: number; options: ImageSamplingOptions } {
  const [dw, dh] = defaultSize(model);
  if (size === undefined || size === 'auto') return { width: dw, height: dh, options: {} };
  const m = /^(\d{1,5})x(\d{1,5})$/.exec(size);
  if (!m) throw badRequest(`size must be "WIDTHxHEIGHT" or "auto", got ${JSON.stringify(size)}`, 'size');
  const width = Number(m[1]);
  const height = Number(m[2]);
  const info = model.info;
  if (info.family === 'blip3o') {
    const multiple = info.image?.sizeMultiple ?? 32;
    if (width % multiple !== 0 || height % multiple !== 0 || width < multiple || height < multiple || width > MAX_DIFFUSION_SIDE || height > MAX_DIFFUSION_SIDE) {
      throw badRequest(`size ${size}: this model draws multiples of ${multiple} pixels per side, up to ${MAX_DIFFUSION_SIDE} (default ${dw}x${dh})`, 'size', 'invalid_size');
    }
    return { width, height, options: { width, height } };
  }
  if (info.family === 'vargpt-v1.1') {
    // The default schedule cut at the grid of the requested size.
    const down = info.image?.downsample ?? 16;
    const scales = vargptV11Scales(model);
    const at = scales.findIndex(([h, w]) => h * down === height && w * down === width);
    if (at < 0) {
      const sides = scales.map(([h, w]) => `${w * down}x${h * down}`);
      throw badRequest(`size ${size}: this model draws ${sides.join(', ')} (default ${dw}x${dh})`, 'size', 'invalid_size');
    }
    return { width, height, options: width === dw && height === dh ? {} : { scales: scales.slice(0, at + 1) } };
  }
  if (width !== dw || height !== dh) throw badRequest(`size ${size}: this model draws ${dw}x${dh} only`, 'size', 'invalid_size');
  return { width, height, options: {} };
}

// The family's drawing options, as extra body fields (snake_case): VARGPT cfg, top_k, top_p, tau;
// BLIP3-o steps, guidance, flow_steps, flow_guidance, flow_shift.
export function drawingOptions(o: Params, prefix = ''): ImageSamplingOptions {
  const p = (key: string) => `${prefix}${key}`;
  const pick = (key: string) => (o[key] === undefined || o[key] === null ? undefined : o[key]);
  const out: ImageSamplingOptions = {};
  const n = (key: string, check: (v: number) => boolean, rule: string) => optionalNumber({ [p(key)]: pick(key) }, p(key), check, rule);
  const int = (key: string, min: number, max: number) => optionalInt({ [p(key)]: pick(key) }, p(key), min, max);
  const set = <K extends keyof ImageSamplingOptions>(key: K, value: ImageSamplingOptions[K] | undefined) => {
    if (value !== undefined) out[key] = value;
  };
  set('cfg', n('cfg', (v) => v >= 0, 'a number >= 0'));
  set('topK', int('top_k', 1, 1 << 24));
  set('topP', n('top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]'));
  set('tau', n('tau', (v) => v > 0, 'a number > 0'));
  set('steps', int('steps', 1, 1000));
  set('guidance', n('guidance', (v) => v >= 0, 'a number >= 0'));
  set('flowSteps', int('flow_steps', 1, 1000));
  set('flowGuidance', n('flow_guidance', (v) => v >= 0, 'a number >= 0'));
  set('flowShift', n('flow_shift', (v) => v > 0, 'a number > 0'));
  const mask = optionalBool({ [p('mask_last_query')]: pick('mask_last_query') }, p('mask_last_query'));
  if (mask !== undefined) out.maskLastQuery = mask;
  return out;
}

export function requireDrawing(model: VargptModel, name: string, param: string | null = 'model'): void {
  if (!canDraw(model)) throw new HttpError(400, `model "${name}" does not draw images (its checkpoint has no image generator)`, 'invalid_request_error', param, 'model_cannot_draw');
}
