// Judges a drawing of the demo world from its pixels alone. The background is the border's median
// colour; the drawn shape is the largest 4-connected region of pixels far from it (a stray speck
// elsewhere neither moves its outline nor its colour); the colour is the palette entry nearest the
// region's per-channel median (its dominant colour: a blurred rim, blended with the background, is
// a minority of the pixels and does not pull it towards a neighbouring colour).
//
// The shape is read from the region's radial profile: the distance from its centroid to its
// farthest pixel along each of 16 directions, divided by their mean so that size drops out. Two of
// the profile's harmonics tell the world's four shapes apart:
//   triangle  sin(3 theta) (y down): three lobes, one pointing up; an ideal apex-up triangle 0.139,
//             the three symmetric shapes 0;
//   c4        cos(4 theta): four lobes; an ideal diamond (lobes on the axes) 0.0905, a square (on
//             the diagonals) -0.0905, a circle 0.
// A softened outline shrinks both towards 0 (towards a circle), so the thresholds are the midpoints
// between the medians of each shape as the demo's own VQ-VAE draws it: its round trips of 400
// fresh true pictures per set (`judge_check.py`, which prints these medians). The ideal shapes'
// midpoints would be 0.070, 0.045 and -0.045. A square whose corners are rounded off rather than
// its sides bowed keeps its lobes short but fills its bounding box: above the midpoint between a
// circle's fill (pi/4) and a square's (1) it is a square too. Judged by that fill alone (the first
// version of this judge), a square with slightly bowed sides read as a circle.

const MIN_DISTANCE = 60; // RGB distance from the background that counts as "drawn"
const DIRECTIONS = 16;
const TRIANGLE_MIN = 0.069; // round-trip medians: circle, diamond, square 0.000-0.003; triangle 0.135
const DIAMOND_MIN = 0.0295; // circle -0.005, diamond 0.064
const SQUARE_MAX = -0.039; // circle -0.005, square -0.073
const SQUARE_FILL = (1 + Math.PI / 4) / 2; // fill of the bounding box: square 1, circle pi/4

const directions = Array.from({ length: DIRECTIONS }, (_, k) => (2 * Math.PI * k) / DIRECTIONS);

// The profile's harmonic m, cos or sin part.
function harmonic(profile, m, part) {
  return profile.reduce((sum, r, k) => sum + r * part(m * directions[k]), 0) / profile.length;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// The largest 4-connected region of `drawn` (Uint8Array, 1 where drawn): its pixel indices.
function largestRegion(drawn, width, height) {
  const seen = new Uint8Array(drawn.length);
  let best = [];
  const stack = [];
  for (let start = 0; start < drawn.length; start++) {
    if (!drawn[start] || seen[start]) continue;
    const region = [];
    seen[start] = 1;
    stack.push(start);
    while (stack.length > 0) {
      const p = stack.pop();
      region.push(p);
      const x = p % width;
      const y = (p - x) / width;
      for (const [nx, ny] of [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1]]) {
        if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
        const q = ny * width + nx;
        if (drawn[q] && !seen[q]) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (region.length > best.length) best = region;
  }
  return best;
}

// pixels: Uint8Array RGB (3 channels), row-major, width x height. palette: { name: [r, g, b] }.
export function judgeDrawing(pixels, width, height, palette) {
  const at = (x, y, c) => pixels[(y * width + x) * 3 + c];
  const border = [[], [], []];
  for (let x = 0; x < width; x++) {
    for (const y of [0, 1, height - 2, height - 1]) for (let c = 0; c < 3; c++) border[c].push(at(x, y, c));
  }
  for (let y = 0; y < height; y++) {
    for (const x of [0, 1, width - 2, width - 1]) for (let c = 0; c < 3; c++) border[c].push(at(x, y, c));
  }
  const bg = border.map(median);
  const drawn = new Uint8Array(width * height);
  for (let p = 0; p < width * height; p++) {
    const d = Math.hypot(pixels[p * 3] - bg[0], pixels[p * 3 + 1] - bg[1], pixels[p * 3 + 2] - bg[2]);
    if (d >= MIN_DISTANCE) drawn[p] = 1;
  }
  const region = largestRegion(drawn, width, height);
  const area = region.length;
  if (area < 12) return { colour: null, shape: null, area, background: bg };

  const dominant = [0, 1, 2].map((c) => median(region.map((p) => pixels[p * 3 + c])));
  let colour = null;
  let best = Infinity;
  for (const [name, rgb] of Object.entries(palette)) {
    const d = Math.hypot(dominant[0] - rgb[0], dominant[1] - rgb[1], dominant[2] - rgb[2]);
    if (d < best) {
      best = d;
      colour = name;
    }
  }

  let cx = 0;
  let cy = 0;
  let [minX, maxX, minY, maxY] = [width, -1, height, -1];
  for (const p of region) {
    const x = p % width;
    const y = (p - x) / width;
    cx += x + 0.5;
    cy += y + 0.5;
    [minX, maxX, minY, maxY] = [Math.min(minX, x), Math.max(maxX, x), Math.min(minY, y), Math.max(maxY, y)];
  }
  cx /= area;
  cy /= area;
  const fill = area / ((maxX - minX + 1) * (maxY - minY + 1));
  const inRegion = new Uint8Array(width * height);
  for (const p of region) inRegion[p] = 1;
  // Along each direction, the farthest point still in the region, marched in quarter pixels to the
  // image's edge (a shape cut off by the edge reads short on that side).
  const profile = directions.map((theta) => {
    const dx = Math.cos(theta);
    const dy = Math.sin(theta);
    let reach = 0;
    for (let t = 0; ; t += 0.25) {
      const x = Math.floor(cx + t * dx);
      const y = Math.floor(cy + t * dy);
      if (x < 0 || y < 0 || x >= width || y >= height) break;
      if (inRegion[y * width + x]) reach = t;
    }
    return reach;
  });
  const mean = profile.reduce((sum, r) => sum + r, 0) / profile.length;
  const measured = profile.map((r) => r / mean);
  // A region that misses its own centroid in some direction (a ring, a crescent) is no shape here.
  if (profile.some((r) => r === 0)) return { colour, shape: null, area, fill, profile: measured, background: bg };
  const triangle = harmonic(measured, 3, Math.sin);
  const c4 = harmonic(measured, 4, Math.cos);
  let shape = 'circle';
  if (triangle > TRIANGLE_MIN) shape = 'triangle';
  else if (c4 > DIAMOND_MIN) shape = 'diamond';
  else if (c4 < SQUARE_MAX || fill > SQUARE_FILL) shape = 'square';
  return { colour, shape, area, fill, profile: measured, triangle, c4, background: bg };
}
