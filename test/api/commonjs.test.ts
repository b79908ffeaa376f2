// require('vargpt') from CommonJS, as a dependency: a project with the package in node_modules
// (a link to this checkout, which has dist/ built) and `node -e "require('vargpt')"`.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { repoRoot } from '../helpers/paths.js';

const project = mkdtempSync(path.join(tmpdir(), 'vargpt-cjs-'));
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const requireEsm = (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 23;

function node(args: string[]) {
  const r = spawnSync(process.execPath, args, { cwd: project, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  execFileSync(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', path.join(repoRoot, 'tsconfig.json')], { stdio: 'inherit' });
  mkdirSync(path.join(project, 'node_modules'));
  symlinkSync(repoRoot, path.join(project, 'node_modules', 'vargpt'), 'dir');
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'cjs-user', private: true, type: 'commonjs' }));
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

describe('CommonJS', () => {
  it.skipIf(!requireEsm)("require('vargpt') gives the same API as import (no top-level await in the graph)", () => {
    const script = `
      const vargpt = require('vargpt');
      const { loadModel, synthesize, devices, CheckpointError } = vargpt;
      if (typeof loadModel !== 'function' || typeof synthesize !== 'function') throw new Error('missing exports');
      import('vargpt').then((esm) => {
        const same = Object.keys(esm).every((k) => esm[k] === vargpt[k]);
        console.log(JSON.stringify({ same, threads: devices().cpu.threads, error: new CheckpointError('x') instanceof Error }));
      });`;
    const r = node(['-e', script]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { same: boolean; threads: number; error: boolean };
    expect(out).toMatchObject({ same: true, error: true });
    expect(out.threads).toBeGreaterThan(0);
  });

  it.skipIf(!requireEsm)('without require(esm) (older Node), the error says which Node versions can and what to use', () => {
    const r = node(['--no-experimental-require-module', '-e', "require('vargpt')"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("vargpt is an ES module; require('vargpt') needs Node >= 20.19 or >= 22.12");
    expect(r.stderr).toContain("import('vargpt')");
  });
});
