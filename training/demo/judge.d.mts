export interface DrawingVerdict {
  colour: string | null;
  shape: 'circle' | 'square' | 'triangle' | 'diamond' | null;
  /** Pixels in the largest drawn region. */
  area: number;
  /** The region's area over its bounding box's. */
  fill?: number;
  /** The filled share of the box's corner triangles: top-left, top-right, bottom-left, bottom-right. */
  corners?: number[];
  /** Twice the share of the region's area in the box's upper half. */
  top?: number;
  background: number[];
}
export function judgeDrawing(pixels: Uint8Array, width: number, height: number, palette: Record<string, number[]>): DrawingVerdict;
