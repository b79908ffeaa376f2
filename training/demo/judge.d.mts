export interface DrawingVerdict {
  colour: string | null;
  shape: 'circle' | 'square' | 'triangle' | 'diamond' | null;
  area: number;
  fill?: number;
  centroid?: number;
  background: number[];
}
export function judgeDrawing(pixels: Uint8Array, width: number, height: number, palette: Record<string, number[]>): DrawingVerdict;
