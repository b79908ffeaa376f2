// The model families this package runs, keyed by config.json `model_type` (or, when a config has
// none, `architectures[0]`). A new family is an addition: its adapter file, an entry in FAMILIES,
// and a member in each union below.
import path from 'node:path';

import type { CheckpointJson, JsonObject } from '../checkpoint-config.js';
import { CHECKPOINT_FILES, readCheckpointJson, readModelConfigJson } from '../checkpoint-config.js';
import { CheckpointError } from '../errors.js';
import type { Blip3oImageProgress, Blip3oModelInfo } from './blip3o.js';
import { blip3o } from './blip3o.js';
import type { FamilyAdapter, FamilyCheckpoint } from './types.js';
import type { VargptV1ImageProgress, VargptV1ModelInfo } from './vargpt-v1.js';
import { vargptV1 } from './vargpt-v1.js';
import type { VargptV11ImageProgress, VargptV11ModelInfo } from './vargpt-v1.1.js';
import { vargptV11 } from './vargpt-v1.1.js';

export const FAMILIES: readonly FamilyAdapter[] = [vargptV1, vargptV11, blip3o];

// model.info, by family (`family` tells them apart).
export type ModelInfo = VargptV1ModelInfo | VargptV11ModelInfo | Blip3oModelInfo;

// The onImageProgress event, by family (model.family tells them apart: the VARGPT families draw
// by 'scale', BLIP3-o by 'flow', 'negative' and 'denoise').
export type ImageProgress = VargptV1ImageProgress | VargptV11ImageProgress | Blip3oImageProgress;

// "vargpt_llava (VARGPT v1, VARGPTLlavaForConditionalGeneration), ..."
export function supportedFamilies(): string {
  return FAMILIES.map((f) => `${f.modelTypes.join(' / ')} (${f.title}, ${f.architectures.join(' / ')})`).join(', ');
}

export function familyFor(config: JsonObject, file: string): FamilyAdapter {
  const modelType = config['model_type'];
  if (modelType !== undefined && modelType !== null) {
    const family = typeof modelType === 'string' ? FAMILIES.find((f) => f.modelTypes.includes(modelType)) : undefined;
    if (!family) {
      throw new CheckpointError(`${file}: model_type ${JSON.stringify(modelType)} is not a model family this runtime supports; it supports ${supportedFamilies()}`);
    }
    return family;
  }
  const architectures = config['architectures'];
  const architecture = Array.isArray(architectures) ? architectures[0] : undefined;
  const family = typeof architecture === 'string' ? FAMILIES.find((f) => f.architectures.includes(architecture)) : undefined;
  if (!family) {
    const found = architecture === undefined ? 'neither model_type nor architectures' : `no model_type and architectures[0] ${JSON.stringify(architecture)}`;
    throw new CheckpointError(`${file} has ${found}, so its model family is unknown; this runtime supports ${supportedFamilies()}`);
  }
  return family;
}

// Reads a checkpoint folder's JSON files and hands them to the family config.json names (before
// reading the rest, so an unsupported checkpoint fails on that first).
export async function openCheckpoint(dir: string): Promise<{ family: FamilyAdapter; json: CheckpointJson; checkpoint: FamilyCheckpoint }> {
  const config = await readModelConfigJson(dir);
  const family = familyFor(config, path.join(dir, CHECKPOINT_FILES.config));
  const json = await readCheckpointJson(dir, config);
  return { family, json, checkpoint: family.open(json) };
}
