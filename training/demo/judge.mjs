// Judges a drawing of the demo world from its pixels alone: the background is the border's median
// colour, the shape is every pixel far from it, the colour is the palette entry nearest the shape's
// mean colour, and the shape's kind comes from its mask:
//   fill = mask area / bounding-box area: square ~1.0, circle ~0.79, triangle and diamond ~0.5;
//   triangle vs diamond: a triangle (apex up) has its mass low in the box (centroid at ~2/3 of the
//   height), a diamond in the middle (1/2).

const MIN_DISTANCE = 60; // RGB distance from the background that counts as "drawn"

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
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
  let area = 0;
  let minX = width;
  let maxX = -1;
  let minY = height;
  let maxY = -1;
  let sumY = 0;
  const sum = [0, 0, 0];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const d = Math.hypot(at(x, y, 0) - bg[0], at(x, y, 1) - bg[1], at(x, y, 2) - bg[2]);
      if (d < MIN_DISTANCE) continue;
      area++;
      sumY += y;
      for (let c = 0; c < 3; c++) sum[c] += at(x, y, c);
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
    }
  }
  if (area < 12) return { colour: null, shape: null, area, background: bg };
  const mean = sum.map((s) => s / area);
  let colour = null;
  let best = Infinity;
  for (const [name, rgb] of Object.entries(palette)) {
    const d = Math.hypot(mean[0] - rgb[0], mean[1] - rgb[1], mean[2] - rgb[2]);
    if (d < best) {
      best = d;
      colour = name;
    }
  }
  const boxW = maxX - minX + 1;
  const boxH = maxY - minY + 1;
  const fill = area / (boxW * boxH);
  const centroid = (sumY / area - minY + 0.5) / boxH;
  let shape;
  if (fill > 0.9) shape = 'square';
  else if (fill > 0.66) shape = 'circle';
  else shape = centroid > 0.58 ? 'triangle' : 'diamond';
  return { colour, shape, area, fill, centroid, background: bg };
}
