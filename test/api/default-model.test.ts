// The CLI's model when no --model is given is the demo checkpoint shipped in the package.
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { defaultModelDir, defaultModelNotice, defaultModelPresent, requireDefaultModel } from '../../lib/cli/default-model.js';
import { DEMO_MODEL_NAME, demoModelDir } from '../../lib/demo-model.js';
import { InputError } from '../../lib/errors.js';
import { repoRoot } from '../helpers/paths.js';

const work = mkdtempSync(path.join(tmpdir(), 'vargpt-default-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the CLI default model', () => {
  it('is the shipped demo checkpoint, inside the package', async () => {
    expect(defaultModelDir()).toBe(path.join(repoRoot, 'models', DEMO_MODEL_NAME));
    expect(demoModelDir()).toBe(defaultModelDir());
    expect(await defaultModelPresent()).toBe(true);
    expect(await requireDefaultModel()).toBe(defaultModelDir());
  });

  it('missing from an install: a one-line error naming --model', async () => {
    const partial = path.join(work, 'partial');
    mkdirSync(partial);
    cpSync(path.join(defaultModelDir(), 'config.json'), path.join(partial, 'config.json'));
    expect(await defaultModelPresent(partial)).toBe(false);
    await expect(requireDefaultModel(partial)).rejects.toThrow(InputError);
    await expect(requireDefaultModel(partial)).rejects.toThrow(`the built-in demo model is missing from this install (${partial}); pass --model DIR`);
  });

  it('the notice says what the demo is and how to use a real checkpoint', () => {
    const notice = defaultModelNotice('/x');
    expect(notice).toMatch(/^vargpt: no --model given; using the built-in demo model \(a small VARGPT v1 trained on synthetic shapes/);
    expect(notice).toContain('at /x.');
    expect(notice).toContain('pass --model DIR');
    expect(notice.endsWith('\n')).toBe(true);
    expect(notice.split('\n')).toHaveLength(2);
    expect(defaultModelNotice('/x', true)).toContain('serving the built-in demo model');
  });
});
