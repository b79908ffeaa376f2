// The CLI's model when no --model is given: the demo checkpoint shipped in the package
// (models/vargpt-v1-demo, trained by training/demo/). A package without it (a source tree whose
// models/ folder was removed) gets a one-line error naming --model, not a loader trace.
import { access } from 'node:fs/promises';
import path from 'node:path';

import { DEMO_MODEL_SUMMARY, demoModelDir } from '../demo-model.js';
import { InputError } from '../errors.js';

export { demoModelDir as defaultModelDir };

export async function defaultModelPresent(dir: string = demoModelDir()): Promise<boolean> {
  try {
    await access(path.join(dir, 'config.json'));
    await access(path.join(dir, 'model.safetensors'));
    return true;
  } catch {
    return false;
  }
}

export async function requireDefaultModel(dir: string = demoModelDir()): Promise<string> {
  if (!(await defaultModelPresent(dir))) {
    throw new InputError(`no --model given and the built-in demo model is missing from this install (${dir}); pass --model DIR`);
  }
  return dir;
}

export function defaultModelNotice(dir: string, serving = false): string {
  return `vargpt: no --model given; ${serving ? 'serving' : 'using'} the built-in demo model (${DEMO_MODEL_SUMMARY}) at ${dir}. ` +
    'For a real checkpoint pass --model DIR (e.g. a download of VARGPT-family/VARGPT_LLaVA-v1)\n';
}
