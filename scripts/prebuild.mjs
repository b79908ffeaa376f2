#!/usr/bin/env node
// npm run prebuildify (and prepack): a Node-API prebuild in prebuilds/<platform>-<arch>/, which node-gyp-build
// loads before trying to compile. Built against the running Node's headers.
//
// On Linux the prebuild is made to load on glibc 2.28 and later (VARGPT_GLIBC_FLOOR=1: libstdc++
// linked statically, see native/core/glibc_compat.cc); scripts/check-glibc.mjs checks it.
//
//   node scripts/prebuild.mjs                 this machine's platform and architecture
//   node scripts/prebuild.mjs --arch arm64    linux-arm64 from linux-x64 with Debian's cross
//                                             compiler (apt-get install g++-aarch64-linux-gnu)
// Other arguments go to prebuildify.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const prebuildify = require.resolve('prebuildify/bin.js');
const env = { ...process.env };
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'common.gypi'))) env.npm_config_nodedir = prefix;
env.JOBS ??= '2';
if (os.platform() === 'linux') env.VARGPT_GLIBC_FLOOR ??= '1';
// Outside `npm run`, node-gyp is not on PATH: use npm's own, beside this node.
const npmNodeGyp = path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
if (!env.PREBUILD_NODE_GYP && spawnSync('sh', ['-c', 'command -v node-gyp']).status !== 0 && existsSync(npmNodeGyp))
  env.PREBUILD_NODE_GYP = npmNodeGyp;

const args = process.argv.slice(2);
const archIndex = args.indexOf('--arch');
const arch = archIndex >= 0 ? args[archIndex + 1] : os.arch();
const cross = { arm64: 'aarch64-linux-gnu', x64: 'x86_64-linux-gnu' };
const extra = [];
if (os.platform() === 'linux' && arch !== os.arch()) {
  const triple = cross[arch];
  if (!triple) {
    console.error(`prebuild: no cross toolchain known for linux-${arch}`);
    process.exit(1);
  }
  const cxx = `${triple}-g++`;
  if (spawnSync('sh', ['-c', `command -v ${cxx}`]).status !== 0) {
    console.error(`prebuild: ${cxx} not found (Debian: apt-get install g++-${triple.replace(/_/g, '-')})`);
    process.exit(1);
  }
  Object.assign(env, { CC: `${triple}-gcc`, CXX: cxx, LINK: cxx, AR: `${triple}-ar` });
  if (!args.includes('--strip-bin')) extra.push('--strip-bin', `${triple}-strip`);
  console.log(`prebuild: cross-compiling linux-${arch} with ${cxx}`);
}
const result = spawnSync(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', ...extra, ...args], {
  cwd: root,
  stdio: 'inherit',
  env,
});
process.exit(result.status ?? 1);
