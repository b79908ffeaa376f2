// The demo evaluation's pixel judge (training/demo/judge.mjs) on shapes drawn here, softened the
// ways a decoder softens them: rounded corners, bowed sides, a rim blended into the background, a
// stray speck. Each is still plainly its shape and colour to a person, so the judge must read it so.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { judgeDrawing } from '../../training/demo/judge.mjs';
import { repoRoot } from '../helpers/paths.js';

const SIDE = 64;
// The world's palette, as the evaluation sets record it.
const palette = (JSON.parse(readFileSync(path.join(repoRoot, 'training', 'demo', 'eval-set', 'eval-set.json'), 'utf8')) as { colours: Record<string, [number, number, number]> }).colours;
function rgbOf(name: string): [number, number, number] {
  const rgb = palette[name];
  if (!rgb) throw new Error(`eval-set.json has no colour ${name}`);
  return rgb;
}
const green = rgbOf('green');

type Inside = (x: number, y: number) => boolean; // x, y relative to the shape's centre, in pixels

// Coverage-weighted drawing (4 x 4 samples a pixel), as the world renders its pictures, over a
// plain background or over an earlier drawing.
function draw(inside: Inside, cx: number, cy: number, rgb: readonly number[], under: readonly number[] | Uint8Array): Uint8Array {
  const out = new Uint8Array(SIDE * SIDE * 3);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      let covered = 0;
      for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++) covered += Number(inside(x + (sx + 0.5) / 4 - cx, y + (sy + 0.5) / 4 - cy));
      for (let c = 0; c < 3; c++) {
        const i = (y * SIDE + x) * 3 + c;
        const below = (under.length === 3 ? under[c] : under[i]) ?? 0;
        out[i] = Math.round(below + (((rgb[c] ?? 0) - below) * covered) / 16);
      }
    }
  }
  return out;
}

const disc = (r: number): Inside => (x, y) => x * x + y * y <= r * r;
const roundedSquare = (h: number, r: number): Inside => (x, y) => {
  const dx = Math.max(Math.abs(x) - (h - r), 0);
  const dy = Math.max(Math.abs(y) - (h - r), 0);
  return Math.abs(x) <= h && Math.abs(y) <= h && dx * dx + dy * dy <= r * r;
};
// Sides bowed inwards by `bow` pixels at their middles.
const bowedSquare = (h: number, bow: number): Inside => (x, y) =>
  Math.abs(x) <= h - bow * (1 - (y / h) ** 2) && Math.abs(y) <= h - bow * (1 - (x / h) ** 2);
// A diamond whose four vertices are cut round by a disc of radius `keep` times its half-extent.
const roundedDiamond = (h: number, keep: number): Inside => (x, y) => Math.abs(x) + Math.abs(y) <= h && disc(keep * h)(x, y);
// Apex-up triangle (as world.py draws it, centred on its box), corners cut round by a disc about its centroid.
const roundedTriangle = (h: number, keep: number): Inside => (x, y) =>
  y <= h && Math.abs(x) <= (y + h) / 2 && disc(keep * h)(x, y - h / 3);

const backgrounds = { white: [245, 245, 245], black: [20, 20, 20], gray: [128, 128, 128] };

describe('the demo judge', () => {
  const cases: Array<[string, string, Inside]> = [];
  for (const h of [11, 18]) {
    cases.push(
      ['circle', `circle, half ${h}`, disc(h)],
      ['square', `square, half ${h}`, roundedSquare(h, 0.01)],
      ['square', `square with corners rounded to a quarter of its side, half ${h}`, roundedSquare(h, h / 2)],
      ['square', `square with sides bowed in by a tenth of its side, half ${h}`, bowedSquare(h, h / 5)],
      ['diamond', `diamond, half ${h}`, roundedDiamond(h, 2)],
      ['diamond', `diamond with its vertices cut round (to 0.9 of its half-extent), half ${h}`, roundedDiamond(h, 0.9)],
      ['triangle', `triangle, half ${h}`, roundedTriangle(h, 3)],
      ['triangle', `triangle with its corners cut round, half ${h}`, roundedTriangle(h, 1.05)],
    );
  }

  it.each(cases)('reads a %s: %s, on every background and at every position', (shape, _what, inside) => {
    for (const bg of Object.values(backgrounds)) {
      for (const [cx, cy] of [[32, 32], [20, 24], [44, 40]] as const) {
        const v = judgeDrawing(draw(inside, cx, cy, green, bg), SIDE, SIDE, palette);
        expect([v.colour, v.shape], `centre ${cx},${cy} on ${bg.join(',')}`).toEqual(['green', shape]);
      }
    }
  });

  it('names the dominant colour, not the mean of a rim blended into the background', () => {
    for (const [name, rgb] of Object.entries(palette)) {
      for (const bg of Object.values(backgrounds)) {
        // A disc of radius 9 inside a ring out to radius 12, halfway between the colour and the
        // background: a third of the drawn pixels are rim.
        const ring = draw(disc(12), 32, 32, rgb.map((c, i) => (c + (bg[i] ?? 0)) / 2), bg);
        const pixels = draw(disc(9), 32, 32, rgb, ring);
        expect(judgeDrawing(pixels, SIDE, SIDE, palette).colour, `${name} on ${bg.join(',')}`).toBe(name);
      }
    }
  });

  it('reads the largest shape: a stray speck elsewhere changes neither its shape nor its colour', () => {
    const pixels = draw(roundedSquare(11, 0.01), 32, 32, rgbOf('yellow'), backgrounds.gray);
    for (const [x, y] of [[5, 5], [6, 5], [5, 6]] as const) pixels.set(rgbOf('red'), (y * SIDE + x) * 3);
    const v = judgeDrawing(pixels, SIDE, SIDE, palette);
    expect([v.colour, v.shape]).toEqual(['yellow', 'square']);
  });

  it('reports nothing drawn on a plain picture', () => {
    const v = judgeDrawing(draw(() => false, 32, 32, rgbOf('red'), backgrounds.white), SIDE, SIDE, palette);
    expect([v.colour, v.shape]).toEqual([null, null]);
  });
});
