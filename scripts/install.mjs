#!/usr/bin/env node
// npm "install" hook. Loads a prebuild or an existing build when one fits this platform and
// Node-API version; otherwise compiles the CPU addon from binding.gyp with node-gyp against the
// headers of the running Node (no header download), so installs work offline.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const force = process.argv.includes('--force');

function loadsAlready() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

function localNodeDir() {
  // <prefix>/bin/node -> <prefix>/include/node holds common.gypi and the headers node-gyp needs.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? prefix : undefined;
}

if (!force && loadsAlready()) {
  process.exit(0);
}

function findNodeGyp() {
  // npm hands its bundled node-gyp to lifecycle scripts; outside npm, look beside the node binary.
  const candidates = [
    process.env.npm_config_node_gyp,
    path.resolve(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
  } catch {
    console.error('vargpt: node-gyp not found; install it (npm i -g node-gyp) or use a prebuild');
    process.exit(1);
  }
}

const nodeGyp = findNodeGyp();
const args = [nodeGyp, 'rebuild', `--jobs=${process.env.JOBS ?? 'max'}`];
const nodedir = process.env.npm_config_nodedir || localNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);
console.log(`vargpt: building the CPU addon with node-gyp${nodedir ? ` (headers from ${nodedir})` : ''}`);
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
