// Helpers shared by the benchmark scripts.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

// The addon the package would load, or VARGPT_ADDON_PATH's build (a cmake-js CUDA build).
export function loadAddon() {
  const override = process.env.VARGPT_ADDON_PATH;
  return override ? require(path.resolve(override)) : require('node-gyp-build')(root);
}

// Cheap deterministic non-zero data (the values do not affect speed, zeros could).
export function fillF32(n, seed = 1) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * 0.2 + 1e-3;
  }
  return a;
}

// Deterministic values uniform in [lo, hi) (the values do not affect speed; zeros could).
export function pseudo(n, seed, lo, hi) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = lo + ((s >>> 8) / 16777216) * (hi - lo);
  }
  return a;
}

// f32 -> bf16 bits, round to nearest even.
export function bf16Of(f32) {
  const u32 = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < f32.length; i++) out[i] = (u32[i] + 0x7fff + ((u32[i] >>> 16) & 1)) >>> 16;
  return out;
}

export const t32 = (shape, data) => ({ dtype: 'f32', shape, data });
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Prints rows as a table: the first row is the header, the first column left-aligned.
export function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

export const fmt = (x, d = 3) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));

// The package's built entry point (dist/), imported on demand.
export async function importPackage() {
  const dist = path.join(root, 'dist', 'index.js');
  if (!existsSync(dist)) throw new Error('dist/ is missing (npm run build:ts)');
  return import(pathToFileURL(dist).href);
}

// A synthesized preset (random weights, seed 0), made once under bench/out/presets and reused.
export async function syntheticPreset({ family = 'vargpt-v1', preset, dtype }) {
  const out = path.join(root, 'bench', 'out', 'presets', family === 'vargpt-v1' ? `${preset}-${dtype}` : `${family}-${preset}-${dtype}`);
  if (!existsSync(path.join(out, 'config.json'))) {
    const { synthesize } = await importPackage();
    console.error(`synthesizing the ${family} ${preset} preset (${dtype}) into ${out} ...`);
    await synthesize({ family, preset, out, dtype, seed: 0, overwrite: true });
  }
  return out;
}

// PSNR in dB of two 8-bit images of the same size (Infinity when equal).
export function psnr8(a, b) {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255) / (se / a.length));
}
