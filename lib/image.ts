// Image I/O and model-input preprocessing.
//
// Decoding goes through sharp (libvips): every format it reads, EXIF orientation applied, colour
// converted to 8-bit sRGB (16-bit samples scaled, grey replicated, CMYK converted), the first frame
// of an animation. Alpha is composited over white -- what a person sees in a viewer -- where
// upstream's PIL convert("RGB") would drop it and expose whatever colour transparent pixels hold;
// opaque images are unaffected. Dimensions are checked from the header before any pixel is
// decoded, so a file claiming 100000x100000 fails at once.
//
// Preprocessing is native (native/image/): Pillow-exact bicubic for CLIP (shortest edge, centre
// crop, mean/std) and Lanczos for the VQ-VAE's [-1, 1] input, on a worker thread.
import { stat, writeFile } from 'node:fs/promises';

import sharp, { type Metadata, type Sharp, type SharpOptions } from 'sharp';

import type { PreprocessorConfig } from './checkpoint-config.js';
import { InputError } from './errors.js';
import { native } from './native.js';
import type { ImageInput, RawImage } from './types.js';

export interface ImageLimits {
  // Largest width x height accepted (checked from the header, before decoding).
  maxPixels: number;
  // Largest encoded input (file or buffer) in bytes.
  maxBytes: number;
}

// 128 megapixels holds every phone photo (108 MP); decoded RGB is then at most 384 MiB.
export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({ maxPixels: 2 ** 27, maxBytes: 256 * 2 ** 20 });

// Decoded 8-bit RGB.
export interface RgbImage {
  width: number;
  height: number;
  channels: 3;
  data: Uint8Array;
}

export type ImageFormat = 'png' | 'jpeg' | 'webp';

export interface EncodeOptions {
  // JPEG / WebP quality 1-100 (default 90); ignored for PNG.
  quality?: number;
  // WebP only.
  lossless?: boolean;
}

// An image the model drew (or any 8-bit RGB image): raw pixels plus encoders.
export class GeneratedImage implements RgbImage {
  readonly channels = 3 as const;

  constructor(
    readonly width: number,
    readonly height: number,
    readonly data: Uint8Array,
  ) {
    if (data.length !== width * height * 3) {
      throw new InputError(`GeneratedImage: ${width}x${height} RGB needs ${width * height * 3} bytes, got ${data.length}`);
    }
  }

  private pipeline(): Sharp {
    return sharp(this.data, { raw: { width: this.width, height: this.height, channels: 3 } });
  }

  toPNG(): Promise<Buffer> {
    return this.encode('png');
  }

  toJPEG(options: EncodeOptions = {}): Promise<Buffer> {
    return this.encode('jpeg', options);
  }

  toWebP(options: EncodeOptions = {}): Promise<Buffer> {
    return this.encode('webp', options);
  }

  encode(format: ImageFormat, options: EncodeOptions = {}): Promise<Buffer> {
    const quality = options.quality ?? 90;
    if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw new InputError(`quality must be an integer 1-100, got ${quality}`);
    switch (format) {
      case 'png':
        return this.pipeline().png().toBuffer();
      case 'jpeg':
        return this.pipeline().jpeg({ quality }).toBuffer();
      case 'webp':
        return this.pipeline().webp({ quality, lossless: options.lossless ?? false }).toBuffer();
    }
    throw new InputError(`unknown image format "${String(format)}"; use png, jpeg or webp`);
  }

  // Writes the image; the format follows the extension (.png, .jpg/.jpeg, .webp).
  async save(file: string, options: EncodeOptions = {}): Promise<void> {
    const format = formatFromPath(file);
    await writeFile(file, await this.encode(format, options));
  }
}

export function formatFromPath(file: string): ImageFormat {
  const ext = file.toLowerCase().split('.').pop() ?? '';
  if (ext === 'png') return 'png';
  if (ext === 'jpg' || ext === 'jpeg') return 'jpeg';
  if (ext === 'webp') return 'webp';
  throw new InputError(`cannot tell the image format of "${file}"; use a .png, .jpg or .webp name`);
}

function checkLimits(limits: Partial<ImageLimits> | undefined): ImageLimits {
  const merged = { ...DEFAULT_IMAGE_LIMITS, ...limits };
  for (const key of ['maxPixels', 'maxBytes'] as const) {
    const v = merged[key];
    if (!Number.isSafeInteger(v) || v < 1) throw new InputError(`image limit ${key} must be a positive integer, got ${v}`);
  }
  return merged;
}

function megapixels(n: number): string {
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} megapixels`;
}

function isRawImage(value: unknown): value is RawImage {
  return typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !(value instanceof ArrayBuffer) && 'width' in value;
}

function describeInput(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'an array';
  if (ArrayBuffer.isView(input)) return input.constructor.name;
  return typeof input === 'object' ? `an object with keys ${Object.keys(input).join(', ') || '(none)'}` : typeof input;
}

const WHITE = { r: 255, g: 255, b: 255 };

async function decodeWithSharp(input: Buffer | string, what: string, limits: ImageLimits): Promise<RgbImage> {
  const options: SharpOptions = { limitInputPixels: limits.maxPixels, failOn: 'error', autoOrient: true };
  let meta: Metadata;
  try {
    // Header only; the pixel limit is checked below with a clearer message than sharp's.
    meta = await sharp(input, { ...options, limitInputPixels: false }).metadata();
  } catch (error) {
    throw new InputError(`${what} is not an image sharp can read: ${(error as Error).message}`);
  }
  const { width, height } = meta;
  if (!width || !height) throw new InputError(`${what} has no dimensions in its header`);
  if (width * height > limits.maxPixels) {
    throw new InputError(
      `${what} is ${width}x${height} (${megapixels(width * height)}), above the limit of ${megapixels(limits.maxPixels)} (imageLimits.maxPixels)`,
    );
  }
  try {
    const { data, info } = await sharp(input, options)
      .flatten({ background: WHITE })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (error) {
    throw new InputError(`${what} could not be decoded: ${(error as Error).message}`);
  }
}

async function fromRaw(raw: RawImage, what: string, limits: ImageLimits): Promise<RgbImage> {
  const { width, height, data } = raw;
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw new InputError(`${what}: width and height must be positive integers, got ${String(width)}x${String(height)}`);
  }
  if (width * height > limits.maxPixels) {
    throw new InputError(`${what} is ${width}x${height} (${megapixels(width * height)}), above the limit of ${megapixels(limits.maxPixels)} (imageLimits.maxPixels)`);
  }
  if (!(data instanceof Uint8Array) && !(data instanceof Uint8ClampedArray)) {
    throw new InputError(`${what}.data must be a Uint8Array of RGB or RGBA bytes, got ${describeInput(data)}`);
  }
  const channels = raw.channels ?? (data.length === width * height * 4 ? 4 : 3);
  if (channels !== 3 && channels !== 4) throw new InputError(`${what}.channels must be 3 (RGB) or 4 (RGBA), got ${String(channels)}`);
  if (data.length !== width * height * channels) {
    throw new InputError(
      `${what}.data has ${data.length} bytes; ${width}x${height} needs ${width * height * 3} (RGB) or ${width * height * 4} (RGBA)`,
    );
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (channels === 3) return { width, height, channels: 3, data: bytes };
  // RGBA: composite over white on the libuv pool, like decoded files.
  const { data: flat } = await sharp(bytes, { raw: { width, height, channels: 4 } })
    .flatten({ background: WHITE })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width, height, channels: 3, data: new Uint8Array(flat.buffer, flat.byteOffset, flat.byteLength) };
}

// Decodes any accepted image input to 8-bit RGB.
export async function decodeImage(input: ImageInput, options: { limits?: Partial<ImageLimits>; what?: string } = {}): Promise<RgbImage> {
  const limits = checkLimits(options.limits);
  const what = options.what ?? 'image';
  if (typeof input === 'string') {
    if (input.length === 0) throw new InputError(`${what}: the file path is empty`);
    let size: number;
    try {
      const info = await stat(input);
      if (!info.isFile()) throw new InputError(`${what}: ${input} is not a file`);
      size = info.size;
    } catch (error) {
      if (error instanceof InputError) throw error;
      throw new InputError(`${what}: cannot read ${input}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if (size > limits.maxBytes) throw new InputError(`${what}: ${input} is ${size} bytes, above the limit of ${limits.maxBytes} (imageLimits.maxBytes)`);
    return decodeWithSharp(input, `${what} (${input})`, limits);
  }
  if (input instanceof ArrayBuffer || (ArrayBuffer.isView(input) && input instanceof Uint8Array)) {
    const bytes = input instanceof ArrayBuffer ? Buffer.from(input) : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    if (bytes.length === 0) throw new InputError(`${what}: the buffer is empty`);
    if (bytes.length > limits.maxBytes) throw new InputError(`${what}: ${bytes.length} bytes, above the limit of ${limits.maxBytes} (imageLimits.maxBytes)`);
    return decodeWithSharp(bytes, what, limits);
  }
  if (isRawImage(input)) return fromRaw(input, what, limits);
  throw new InputError(`${what} must be encoded bytes (Buffer/Uint8Array), a file path, or raw pixels { width, height, data }; got ${describeInput(input)}`);
}

// transformers' get_resize_output_image_size(default_to_square=False): the short side becomes
// `size`, the long side int(size * long / short) (truncated, as Python's int()).
export function shortestEdgeSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}

function centerCrop(width: number, height: number, cropWidth: number, cropHeight: number) {
  return { left: Math.floor((width - cropWidth) / 2), top: Math.floor((height - cropHeight) / 2), width: cropWidth, height: cropHeight };
}

// CLIPImageProcessor: resize (shortest edge, Pillow filter from the config), centre crop, rescale,
// normalise; returns [3, H, W] float32 (H = W = the vision tower's image_size).
export async function clipPixelValues(image: RgbImage, pre: PreprocessorConfig, imageSize: number): Promise<Float32Array> {
  let { width, height } = image;
  let resize: { width: number; height: number; filter: number } | undefined;
  if (pre.doResize) {
    ({ width, height } = shortestEdgeSize(width, height, pre.shortestEdge));
    resize = { width, height, filter: pre.resample };
  }
  const crop = pre.doCenterCrop && pre.crop ? centerCrop(width, height, pre.crop.width, pre.crop.height) : undefined;
  const out = await native().preprocessImage(image, {
    resize,
    crop,
    normalize: 'meanstd',
    scale: pre.doRescale ? pre.rescaleFactor : 1,
    mean: pre.doNormalize ? pre.mean : [0, 0, 0],
    std: pre.doNormalize ? pre.std : [1, 1, 1],
  });
  if (out.width !== imageSize || out.height !== imageSize) {
    throw new InputError(
      `preprocessing gives ${out.width}x${out.height} pixels but the vision tower takes ${imageSize}x${imageSize}; preprocessor_config.json and config.json disagree`,
    );
  }
  return out.data;
}

// An image tokenizer's input (the VQ-VAE of VARGPT v1, the BSQ VAE of VARGPT-v1.1): resized with
// Pillow Lanczos (the filter of upstream's generation-data pipeline) until it covers width x
// height (for a square, the shortest edge becomes the side), centre-cropped, u8 / 127.5 - 1. An
// image already of that size is used as it is. Returns [3, height, width] float32.
export async function vqvaePixels(image: RgbImage, width: number, height: number = width): Promise<Float32Array> {
  let resized: { width: number; height: number };
  if (image.width * height <= image.height * width) resized = { width, height: Math.trunc((width * image.height) / image.width) };
  else resized = { width: Math.trunc((height * image.width) / image.height), height };
  const same = image.width === width && image.height === height;
  const out = await native().preprocessImage(image, {
    resize: same ? undefined : { ...resized, filter: 1 },
    crop: same ? undefined : centerCrop(resized.width, resized.height, width, height),
    normalize: 'symmetric',
  });
  return out.data;
}

// Pillow-exact resize of 8-bit pixels (filter: 'bicubic' by default), on a worker thread.
export async function resizeImage(
  image: RgbImage,
  width: number,
  height: number,
  filter: 'nearest' | 'lanczos' | 'bilinear' | 'bicubic' | 'box' | 'hamming' = 'bicubic',
): Promise<GeneratedImage> {
  const ids = { nearest: 0, lanczos: 1, bilinear: 2, bicubic: 3, box: 4, hamming: 5 } as const;
  if (!(filter in ids)) throw new InputError(`unknown filter "${filter}"`);
  for (const [k, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isSafeInteger(v) || v < 1 || v > 65536) throw new InputError(`resize ${k} must be an integer in 1..65536, got ${v}`);
  }
  const out = await native().resizeImage(image, { width, height, filter: ids[filter] });
  return new GeneratedImage(out.width, out.height, out.data);
}
