export interface DrawingVerdict {
  colour: string | null;
  shape: 'circle' | 'square' | 'triangle' | 'diamond' | null;
  /** Pixels in the largest drawn region. */
  area: number;
  /** The region's area over its bounding box's. */
  fill?: number;
  /** The region's reach from its centroid in 16 directions (from +x, turning towards +y, y down), over their mean. */
  profile?: number[];
  /** The profile's sin(3 theta) harmonic: about 0.14 for an apex-up triangle, 0 for the symmetric shapes. */
  triangle?: number;
  /** The profile's cos(4 theta) harmonic: + for a diamond, - for a square, 0 for a circle. */
  c4?: number;
  background: number[];
}
export function judgeDrawing(pixels: Uint8Array, width: number, height: number, palette: Record<string, number[]>): DrawingVerdict;
