// The package as npm sees it: scripts that do not run twice, a pack listing made without compiling
// the addon that holds the license, the CommonJS entry and the sources the source maps name; the
// bench lists only runnable suites; the quickstart example leaves no temporary folder behind.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { formatBarValue, formatBytes } from '../../lib/cli/progress.js';
import { repoRoot } from '../helpers/paths.js';

const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { license: string; scripts: Record<string, string>; files: string[] };

describe('package', () => {
  it('no script is an accidental npm pre/post hook of another (npm run build compiles once)', () => {
    const names = Object.keys(pkg.scripts);
    const hooks = names.filter((n) => (n.startsWith('pre') && names.includes(n.slice(3))) || (n.startsWith('post') && names.includes(n.slice(4))));
    expect(hooks).toEqual([]);
    expect(pkg.scripts['prebuildify']).toBe('node scripts/prebuild.mjs');
    expect(readFileSync(path.join(repoRoot, '.ci/run'), 'utf8')).toMatch(/^npm run prebuildify$/m);
  });

  it('npm pack --dry-run lists the package without compiling the addon; LICENSE, lib/ for the source maps, the CommonJS entry', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts=false'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('vargpt prepack: --dry-run, so the prebuild in prebuilds/ is not rebuilt');
    expect(r.stderr).not.toMatch(/prebuildify|node-gyp|gyp info/);
    const listing = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as Array<{ files: Array<{ path: string }> }>;
    const files = new Set(listing[0]!.files.map((f) => f.path));
    for (const f of ['LICENSE', 'package.json', 'dist/index.js', 'dist/require.cjs', 'dist/cli/main.js', 'lib/index.ts', 'models/vargpt-v1-demo/model.safetensors', 'models/vargpt-v1-demo/config.json', 'models/vargpt-v1-demo/tokenizer.json']) expect(files.has(f), f).toBe(true);
    // Every source a shipped map names is shipped too.
    const maps = [...files].filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(10);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(path.join(repoRoot, map), 'utf8')) as { sources: string[] };
      for (const source of sources) expect(files.has(path.posix.join(path.posix.dirname(map), source)), `${map} -> ${source}`).toBe(true);
    }
  });

  it('LICENSE is the MIT license package.json names', () => {
    expect(pkg.license).toBe('MIT');
    expect(readFileSync(path.join(repoRoot, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/);
  });

  it('npm run bench lists only suites that export run() (no helper modules)', () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bench/main.mjs')], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const suites = /usage: npm run bench -- <([^>]+)>/.exec(r.stderr)![1]!.split('|');
    expect(suites.sort()).toEqual(['batch', 'cpu', 'cuda', 'model', 'quant', 'quant-accuracy', 'quant-image', 'quant-kernels', 'self-check']);
    const common = spawnSync(process.execPath, [path.join(repoRoot, 'bench/main.mjs'), 'common'], { encoding: 'utf8' });
    expect(common.status).toBe(1);
    expect(common.stderr).toMatch(/^usage: /);
  });

  it('examples/quickstart.mjs without a folder removes the temporary one it made', () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'vargpt-qs-'));
    try {
      const r = spawnSync(process.execPath, [path.join(repoRoot, 'examples/quickstart.mjs')], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp }, timeout: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^\(removed .*vargpt-example-.*; pass a folder to keep the files\)$/m);
      expect(readdirSync(tmp)).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('progress bars show byte counts in B, KiB, MiB and GiB', () => {
    expect(formatBarValue(5 * 2 ** 20, 'value', true)).toBe('5.0 MiB');
    expect(formatBarValue(3 * 2 ** 30, 'total', true)).toBe('3.00 GiB');
    expect(formatBarValue(7, 'value', false)).toBe('7');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(4096)).toBe('4 KiB');
  });
});
