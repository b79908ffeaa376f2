// The packaging path users get from npm: a prebuild made by prebuildify is found and loaded by
// node-gyp-build from prebuilds/ in a copy of the package that has no build/ folder.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { repoRoot } from '../helpers/paths.js';

const platformDir = path.join(repoRoot, 'prebuilds', `${process.platform}-${process.arch}`);

describe('prebuilds', () => {
  it('node-gyp-build loads the prebuild from prebuilds/ in a clean copy without build/', () => {
    if (!existsSync(platformDir) || readdirSync(platformDir).length === 0) {
      // CI makes the prebuild before the tests; a developer's first run builds it here.
      const made = spawnSync('npm', ['run', 'prebuildify'], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, JOBS: '2' } });
      expect(made.status, `npm run prebuildify failed:\n${made.stdout}\n${made.stderr}`).toBe(0);
    }
    const files = readdirSync(platformDir).filter((f) => f.endsWith('.node'));
    expect(files.length).toBeGreaterThan(0);

    const copy = mkdtempSync(path.join(tmpdir(), 'vargpt-pkg-'));
    try {
      cpSync(path.join(repoRoot, 'package.json'), path.join(copy, 'package.json'));
      cpSync(path.join(repoRoot, 'prebuilds'), path.join(copy, 'prebuilds'), { recursive: true });
      symlinkSync(path.join(repoRoot, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
      expect(existsSync(path.join(copy, 'build'))).toBe(false);
      const script = `
        const load = require('node-gyp-build');
        const file = load.resolve(${JSON.stringify(copy)});
        const addon = load(${JSON.stringify(copy)});
        const info = addon.devices();
        console.log(JSON.stringify({ file, threads: info.cpu.threads, cuda: typeof info.cuda.available }));
      `;
      const out = execFileSync(process.execPath, ['-e', script], { cwd: copy, encoding: 'utf8' });
      const result = JSON.parse(out) as { file: string; threads: number; cuda: string };
      expect(result.file.startsWith(path.join(copy, 'prebuilds'))).toBe(true);
      expect(result.threads).toBeGreaterThanOrEqual(1);
      expect(result.cuda).toBe('boolean');
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  }, 900_000);
});
