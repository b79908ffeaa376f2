import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { cacheRoot, defaultModelDir, ensureDefaultModel } from '../../lib/cli/default-model.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-cache-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the CLI default model cache', () => {
  it('lives in $VARGPT_CACHE_DIR, else $XDG_CACHE_HOME/vargpt, else ~/.cache/vargpt', () => {
    expect(cacheRoot({ VARGPT_CACHE_DIR: '/a/b', XDG_CACHE_HOME: '/x' })).toBe('/a/b');
    expect(cacheRoot({ XDG_CACHE_HOME: '/x' })).toBe('/x/vargpt');
    expect(cacheRoot({})).toBe(path.join(homedir(), '.cache', 'vargpt'));
  });

  it('is created once, atomically, even by concurrent first uses', async () => {
    const env = { VARGPT_CACHE_DIR: path.join(work, 'c') };
    const results = await Promise.all([ensureDefaultModel(env), ensureDefaultModel(env), ensureDefaultModel(env)]);
    const dir = defaultModelDir(env);
    expect(results.map((r) => r.dir)).toEqual([dir, dir, dir]);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    // Only the finished model remains: no partial folders left behind.
    expect(readdirSync(env.VARGPT_CACHE_DIR)).toEqual([path.basename(dir)]);
    expect(readdirSync(dir)).toContain('model.safetensors');
    expect((await ensureDefaultModel(env)).created).toBe(false);
  });
});
