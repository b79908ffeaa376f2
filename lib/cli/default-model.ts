// The CLI's built-in model when no --model is given: a tiny random-weight checkpoint (the
// fixture's sizes), synthesized once into the user's cache and reused. synthesize() builds it in
// a temporary folder and renames it into place, so a folder that exists is complete, and two
// processes racing to create it both end up using the one that won.
import { access } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';

import { synthesize } from '../synth.js';

// Bump when synthesis changes what the tiny model holds.
const DEFAULT_MODEL_NAME = 'tiny-random-v1-seed0';

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env['VARGPT_CACHE_DIR']) return path.resolve(env['VARGPT_CACHE_DIR']);
  if (env['XDG_CACHE_HOME']) return path.join(path.resolve(env['XDG_CACHE_HOME']), 'vargpt');
  return path.join(homedir(), '.cache', 'vargpt');
}

export function defaultModelDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheRoot(env), DEFAULT_MODEL_NAME);
}

async function complete(dir: string): Promise<boolean> {
  try {
    await access(path.join(dir, 'config.json'));
    await access(path.join(dir, 'model.safetensors'));
    return true;
  } catch {
    return false;
  }
}

export async function ensureDefaultModel(env: NodeJS.ProcessEnv = process.env): Promise<{ dir: string; created: boolean }> {
  const dir = defaultModelDir(env);
  if (await complete(dir)) return { dir, created: false };
  try {
    await synthesize({ preset: 'tiny', out: dir, seed: 0, dtype: 'f32' });
    return { dir, created: true };
  } catch (error) {
    // Another process finished first: its folder is as good as ours.
    if (await complete(dir)) return { dir, created: false };
    throw error;
  }
}
