#!/usr/bin/env node
// npm run prebuildify (and prepack): a Node-API prebuild for this platform in prebuilds/<platform>-<arch>/, which
// node-gyp-build loads before trying to compile. Built against the running Node's headers.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const prebuildify = require.resolve('prebuildify/bin.js');
const env = { ...process.env };
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'common.gypi'))) env.npm_config_nodedir = prefix;
env.JOBS ??= '2';
const result = spawnSync(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env,
});
process.exit(result.status ?? 1);
