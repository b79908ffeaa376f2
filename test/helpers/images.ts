// Test images built in code: synthetic patterns, and PNG files written byte by byte (for headers
// that lie about their size).
import { crc32, deflateSync } from 'node:zlib';

// The pattern test/goldens/pil-resize.py feeds Pillow (keep the two in step).
export function pattern(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const v = (x * 7919 + y * 104729 + c * 1299709) ^ (x * y * (c + 3)) ^ (Math.floor(x / 7) * 255 * (Math.floor(y / 5) % 2));
        out[(y * width + x) * 3 + c] = v & 255;
      }
    }
  }
  return out;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

// A valid-looking 8-bit RGB PNG whose IHDR claims width x height, with a tiny IDAT.
export function pngWithHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(16))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
