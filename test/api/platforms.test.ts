// Platform support that needs no cross toolchain: the install hook's message on a machine with
// no prebuild and no compiler, and the glibc floor of the Linux prebuilds (symbol versions, read
// with readelf). The cross-compiles are `npm run check:platforms`.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// A copy of the package with no build/ and no prebuilds/: what an unsupported machine installs.
function withBarePackage(run: (dir: string) => void): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'vargpt-install-'));
  try {
    cpSync(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'));
    cpSync(path.join(repoRoot, 'scripts'), path.join(dir, 'scripts'), { recursive: true });
    symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('install without a prebuild', () => {
  it.skipIf(process.platform === 'win32')('names the missing compiler in one line instead of a build log', () => {
    withBarePackage((dir) => {
      for (const env of [{ CXX: path.join(dir, 'missing', 'c++') }, { CXX: '', PATH: path.join(dir, 'empty-path') }]) {
        const result = spawnSync(process.execPath, ['scripts/install.mjs'], {
          cwd: dir,
          encoding: 'utf8',
          env: { ...process.env, ...env },
        });
        expect(result.status).toBe(1);
        expect(result.stdout).toBe('');
        const lines = result.stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^vargpt: .*(does not exist|no C\+\+ compiler).* no prebuilt binary for /);
        expect(existsSync(path.join(dir, 'build'))).toBe(false);
      }
    });
  });
});

function readelfAvailable(): boolean {
  return spawnSync('readelf', ['--version']).status === 0;
}

function linuxPrebuilds(): string[] {
  const dir = path.join(repoRoot, 'prebuilds');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => d.startsWith('linux-'))
    .flatMap((d) => readdirSync(path.join(dir, d)).filter((f) => f.endsWith('.glibc.node')).map((f) => path.join(dir, d, f)));
}

const prebuilds = linuxPrebuilds();
const noFloorCheck = !readelfAvailable()
  ? 'readelf not found'
  : prebuilds.length === 0
    ? 'no prebuilds/linux-*/*.glibc.node (npm run prebuildify)'
    : '';

describe('glibc floor of the Linux prebuilds', () => {
  it.skipIf(noFloorCheck !== '')(`needs nothing newer than glibc 2.28 and GCC 8's libstdc++${noFloorCheck ? ` (skipped: ${noFloorCheck})` : ''}`, () => {
    for (const file of prebuilds) {
      const result = spawnSync(process.execPath, ['scripts/check-glibc.mjs', file], { cwd: repoRoot, encoding: 'utf8' });
      expect(result.status, result.stdout + result.stderr).toBe(0);
    }
  });
});
