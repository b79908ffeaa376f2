#!/usr/bin/env node
// npm "install" hook. Loads a prebuild or an existing build when one fits this platform and
// Node-API version; otherwise compiles the CPU addon from binding.gyp with node-gyp against the
// headers of the running Node (no header download), so installs work offline.
//
// A machine with no prebuild and no compiler gets one line saying so, not a build log; a build
// that fails prints its first error and where the whole log is (VARGPT_BUILD_VERBOSE=1 streams
// the log instead).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const force = process.argv.includes('--force');
const verbose = process.env.VARGPT_BUILD_VERBOSE === '1';
const platform = `${process.platform}-${process.arch}`;

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

function explain(problem) {
  console.error(
    `vargpt: ${problem}. There is no prebuilt binary for ${platform}, so the addon must be compiled here ` +
      `(a C++17 compiler, make and Python 3; see "Platforms" in the README).`,
  );
  process.exit(1);
}

// An executable file by that name, on PATH or as given.
function findExecutable(command) {
  const name = command.trim().split(/\s+/)[0];
  if (!name) return undefined;
  const candidates = name.includes('/') || name.includes('\\')
    ? [name]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, name));
  const exts = process.platform === 'win32' ? ['', '.exe', '.cmd', '.bat'] : [''];
  for (const candidate of candidates)
    for (const ext of exts) {
      try {
        accessSync(candidate + ext, constants.X_OK);
        return candidate + ext;
      } catch {
        // next
      }
    }
  return undefined;
}

// Windows: node-gyp finds Visual Studio itself and says clearly when it cannot. macOS: /usr/bin
// has stubs of the compilers even without the Command Line Tools, so ask xcode-select.
function checkToolchain() {
  if (process.platform === 'win32') return;
  if (process.platform === 'darwin' && !process.env.CXX && spawnSync('xcode-select', ['-p']).status !== 0)
    explain('the Xcode Command Line Tools are not installed (xcode-select --install)');
  // Without CXX, the Makefiles node-gyp writes compile with make's default, g++.
  const cxx = process.env.CXX || 'g++';
  if (!findExecutable(cxx))
    explain(process.env.CXX ? `the C++ compiler CXX=${cxx} does not exist` : 'no C++ compiler found (g++ on PATH, or set CXX)');
  if (!findExecutable(process.env.MAKE || 'make')) explain('make not found');
  if (!process.env.npm_config_python && !process.env.PYTHON && !['python3', 'python'].some(findExecutable))
    explain('Python 3 not found (node-gyp runs on it)');
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
    explain('node-gyp not found (npm i -g node-gyp)');
  }
}

checkToolchain();
const nodeGyp = findNodeGyp();
const args = [nodeGyp, 'rebuild', `--jobs=${process.env.JOBS ?? 'max'}`];
const nodedir = process.env.npm_config_nodedir || localNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);
console.log(`vargpt: building the CPU addon for ${platform} with node-gyp${nodedir ? ` (headers from ${nodedir})` : ''}`);
if (verbose) {
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
const result = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20 });
if (result.status === 0) process.exit(0);
const log = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? `\n${result.error.message}` : ''}`;
let logFile = path.join(root, 'build', 'vargpt-build.log');
try {
  mkdirSync(path.dirname(logFile), { recursive: true });
  writeFileSync(logFile, log);
} catch {
  logFile = path.join(os.tmpdir(), `vargpt-build-${process.pid}.log`);
  writeFileSync(logFile, log);
}
const firstError = log.split('\n').find((line) => /\berror\b|not found|No such file/i.test(line) && !/^gyp info/.test(line));
console.error(
  `vargpt: compiling the addon for ${platform} failed${firstError ? `: ${firstError.trim()}` : ''}. ` +
    `Full log: ${logFile} (VARGPT_BUILD_VERBOSE=1 shows it while building).`,
);
process.exit(result.status ?? 1);
