import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { readCheckpointFiles } from '../../lib/families/vargpt-v1.js';
import { clipPixelValues, decodeImage, GeneratedImage, resizeImage, shortestEdgeSize, vqvaePixels } from '../../lib/image.js';
import { asFloat32, fixtureExpected, fixtureModel, readSafetensors, repoRoot } from '../helpers/fixtures.js';
import { fixtureTitle } from '../helpers/fixture-title.js';
import { pattern, pngWithHeader } from '../helpers/images.js';
import { fixturesMissing } from '../helpers/paths.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-image-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function maxAbs(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// The first two compare to the fixture; the resize and decoding tests need no fixtures.
describe('CLIP and VQ-VAE preprocessing against the fixture', () => {
  it.skipIf(fixturesMissing !== null)(fixtureTitle('reproduces pixel_values of expected/input.png (400x300: resize to 448x336, crop 336)'), async () => {
    const { preprocessor, config } = await readCheckpointFiles(fixtureModel);
    const image = await decodeImage(path.join(fixtureExpected, 'input.png'));
    expect([image.width, image.height]).toEqual([400, 300]);
    expect(shortestEdgeSize(400, 300, 336)).toEqual({ width: 448, height: 336 });
    const mine = await clipPixelValues(image, preprocessor!, config.vision!.imageSize);
    const ref = asFloat32(readSafetensors(path.join(fixtureExpected, 'understanding.safetensors')).get('pixel_values')!);
    // Pillow-exact resampling: bit-identical, far inside the 1e-2 budget.
    expect(maxAbs(mine, ref)).toBe(0);
  });

  it.skipIf(fixturesMissing !== null)(fixtureTitle('reproduces the VQ-VAE input of expected/vqvae_input.png (u8 / 127.5 - 1)'), async () => {
    const image = await decodeImage(readFileSync(path.join(fixtureExpected, 'vqvae_input.png')));
    const mine = await vqvaePixels(image, 256);
    const ref = asFloat32(readSafetensors(path.join(fixtureExpected, 'vqvae.safetensors')).get('input')!);
    expect(maxAbs(mine, ref)).toBe(0);
  });

  it('resizes bit-identically to Pillow for every filter, up and down, odd sizes (test/goldens/pil-resize.json)', async () => {
    const goldens = JSON.parse(readFileSync(path.join(repoRoot, 'test/goldens/pil-resize.json'), 'utf8')) as {
      cases: Array<{ in: [number, number]; out: [number, number]; filter: 'lanczos' | 'bilinear' | 'bicubic' | 'box' | 'hamming'; sha256: string }>;
    };
    expect(goldens.cases.length).toBe(50);
    const inputs = new Map<string, Uint8Array>();
    for (const c of goldens.cases) {
      const key = c.in.join('x');
      if (!inputs.has(key)) inputs.set(key, pattern(c.in[0], c.in[1]));
      const out = await resizeImage({ width: c.in[0], height: c.in[1], channels: 3, data: inputs.get(key)! }, c.out[0], c.out[1], c.filter);
      expect([out.width, out.height]).toEqual(c.out);
      expect({ ...c, sha256: createHash('sha256').update(out.data).digest('hex') }).toEqual(c);
    }
  });

  it('resizes a large photo without blocking the event loop', async () => {
    const big = { width: 4000, height: 3000, channels: 3 as const, data: new Uint8Array(4000 * 3000 * 3).fill(90) };
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    const out = await resizeImage(big, 448, 336);
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    expect(out.data.every((v) => v === 90)).toBe(true);
    // The resize ran on a worker: the 1 ms timer kept firing meanwhile.
    expect(ticks).toBeGreaterThan(Math.min(5, elapsed / 4));
  });
});

describe('decodeImage', () => {
  it('reads a file path, a Buffer, an ArrayBuffer and raw RGB / RGBA pixels', async () => {
    const rgb = pattern(7, 5);
    const png = await sharp(rgb, { raw: { width: 7, height: 5, channels: 3 } }).png().toBuffer();
    const file = path.join(work, 'p.png');
    writeFileSync(file, png);
    for (const input of [file, png, png.buffer.slice(png.byteOffset, png.byteOffset + png.length), new Uint8Array(png)]) {
      const img = await decodeImage(input);
      expect([img.width, img.height, img.channels]).toEqual([7, 5, 3]);
      expect(Buffer.from(img.data).equals(Buffer.from(rgb))).toBe(true);
    }
    const raw = await decodeImage({ width: 7, height: 5, data: rgb });
    expect(raw.data).toEqual(rgb);
    const clamped = await decodeImage({ width: 7, height: 5, data: new Uint8ClampedArray(rgb) });
    expect(Array.from(clamped.data)).toEqual(Array.from(rgb));
  });

  it('composites alpha over white (RGBA raw and PNG)', async () => {
    const rgba = new Uint8Array([200, 10, 30, 255, 200, 10, 30, 0, 0, 0, 0, 128]);
    const raw = await decodeImage({ width: 3, height: 1, data: rgba });
    expect(Array.from(raw.data)).toEqual([200, 10, 30, 255, 255, 255, 127, 127, 127]);
    const png = await sharp(Buffer.from(rgba), { raw: { width: 3, height: 1, channels: 4 } }).png().toBuffer();
    expect(Array.from((await decodeImage(png)).data)).toEqual([200, 10, 30, 255, 255, 255, 127, 127, 127]);
  });

  it('turns grey into RGB and 16-bit samples into 8-bit', async () => {
    const grey = await sharp(Buffer.from([0, 128, 255, 64]), { raw: { width: 2, height: 2, channels: 1 } }).png().toBuffer();
    expect(Array.from((await decodeImage(grey)).data)).toEqual([0, 0, 0, 128, 128, 128, 255, 255, 255, 64, 64, 64]);
    const wide = new Uint16Array([65535, 0, 32896, 0, 65535, 257]);
    const png16 = await sharp(wide, { raw: { width: 2, height: 1, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(png16).metadata()).depth).toBe('ushort');
    expect(Array.from((await decodeImage(png16)).data)).toEqual([255, 0, 128, 0, 255, 1]);
  });

  it('applies EXIF orientation', async () => {
    // 2x1 (red, blue) stored with orientation 6 (rotate 90 degrees clockwise to display): 1x2.
    const jpeg = await sharp(Buffer.from([255, 0, 0, 0, 0, 255]), { raw: { width: 2, height: 1, channels: 3 } })
      .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const img = await decodeImage(jpeg);
    expect([img.width, img.height]).toEqual([1, 2]);
    expect(img.data[0]!).toBeGreaterThan(200); // red on top
    expect(img.data[5]!).toBeGreaterThan(200); // blue below
  });

  it('reads JPEG, WebP and the first frame of a GIF', async () => {
    const rgb = pattern(16, 8);
    const base = () => sharp(rgb, { raw: { width: 16, height: 8, channels: 3 } });
    for (const buf of [await base().jpeg().toBuffer(), await base().webp().toBuffer(), await base().gif().toBuffer(), await base().tiff().toBuffer()]) {
      const img = await decodeImage(buf);
      expect([img.width, img.height, img.channels]).toEqual([16, 8, 3]);
    }
  });

  it('fails fast on a PNG whose header claims 100000x100000', async () => {
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    await expect(decodeImage(pngWithHeader(100000, 100000))).rejects.toThrow(/100000x100000 \(10000 megapixels\), above the limit of 134 megapixels/);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 2 ** 20);
  });

  it('enforces maxPixels and maxBytes', async () => {
    const png = await sharp(pattern(20, 10), { raw: { width: 20, height: 10, channels: 3 } }).png().toBuffer();
    await expect(decodeImage(png, { limits: { maxPixels: 199 } })).rejects.toThrow(/20x10 .* above the limit/);
    await expect(decodeImage(png, { limits: { maxBytes: 10 } })).rejects.toThrow(/bytes, above the limit of 10/);
    const file = path.join(work, 'big.png');
    writeFileSync(file, png);
    await expect(decodeImage(file, { limits: { maxBytes: 10 } })).rejects.toThrow(/big\.png is \d+ bytes, above the limit of 10/);
    await expect(decodeImage({ width: 100, height: 100, data: new Uint8Array(30000) }, { limits: { maxPixels: 9999 } })).rejects.toThrow(/above the limit/);
    await expect(decodeImage(png, { limits: { maxPixels: 0 } })).rejects.toThrow(/maxPixels must be a positive integer/);
  });

  it('rejects corrupt, truncated, empty and mistyped inputs with clear errors', async () => {
    await expect(decodeImage(Buffer.from('definitely not an image'))).rejects.toThrow(/not an image sharp can read/);
    const png = await sharp(pattern(64, 64), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    await expect(decodeImage(png.subarray(0, png.length - 40))).rejects.toThrow(/could not be decoded|not an image/);
    await expect(decodeImage(Buffer.alloc(0))).rejects.toThrow(/buffer is empty/);
    await expect(decodeImage(path.join(work, 'nope.png'))).rejects.toThrow(/cannot read .*nope\.png: ENOENT/);
    await expect(decodeImage(work)).rejects.toThrow(/is not a file/);
    await expect(decodeImage('')).rejects.toThrow(/path is empty/);
    await expect(decodeImage({ width: 2, height: 2, data: new Uint8Array(5) })).rejects.toThrow(/has 5 bytes; 2x2 needs 12 \(RGB\) or 16 \(RGBA\)/);
    await expect(decodeImage({ width: 0, height: 2, data: new Uint8Array(0) })).rejects.toThrow(/positive integers/);
    await expect(decodeImage({ width: 1, height: 1, data: [1, 2, 3] as unknown as Uint8Array })).rejects.toThrow(/must be a Uint8Array/);
    await expect(decodeImage(42 as never)).rejects.toThrow(/must be encoded bytes .* got number/);
    await expect(decodeImage(new Float32Array(4) as never)).rejects.toThrow(/got Float32Array/);
  });
});

describe('GeneratedImage', () => {
  it('encodes PNG (lossless), JPEG and WebP, and saves by extension', async () => {
    const rgb = pattern(9, 4);
    const img = new GeneratedImage(9, 4, rgb);
    const back = await sharp(await img.toPNG()).raw().toBuffer();
    expect(back.equals(Buffer.from(rgb))).toBe(true);
    expect((await sharp(await img.toJPEG({ quality: 80 })).metadata()).format).toBe('jpeg');
    expect((await sharp(await img.toWebP({ lossless: true })).metadata()).format).toBe('webp');
    const file = path.join(work, 'out.webp');
    await img.save(file);
    expect((await sharp(file).metadata()).format).toBe('webp');
    await expect(img.save(path.join(work, 'out.bmp'))).rejects.toThrow(/cannot tell the image format/);
    expect(() => new GeneratedImage(2, 2, new Uint8Array(3))).toThrow(/needs 12 bytes/);
    expect(() => img.toJPEG({ quality: 0 })).toThrow(/quality must be an integer 1-100/);
  });
});
