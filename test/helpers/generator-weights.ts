// The precision a model's image generator runs its linear layers in, wherever its family's info
// reports it (info.var, info.image, info.image.dit); undefined for a checkpoint that does not draw.
import type { ModelInfo } from '../../lib/index.js';

export function generatorWeights(info: ModelInfo): string | undefined {
  if (info.family === 'vargpt-v1') return info.var?.weights;
  if (info.family === 'vargpt-v1.1') return info.image?.weights;
  return info.image?.dit.weights;
}
