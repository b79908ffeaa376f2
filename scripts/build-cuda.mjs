#!/usr/bin/env node
// npm run build:cuda: the CMake build of the addon plus, when nvcc is found, the CUDA backend
// library. In a checkout it runs cmake-js (a devDependency; Node-API headers from the
// node-api-headers package, so nothing is downloaded). In an installed package, where cmake-js is
// absent, it runs cmake itself against the running Node's headers, so the command the addon
// prints when it has no CUDA backend works there too:
//   node <package>/scripts/build-cuda.mjs [--out DIR] [--CDNAME=VALUE ...]
// Needs cmake 3.18+, a C++17 compiler and, for the CUDA backend, nvcc.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const jobs = process.env.JOBS ?? '2';
const extra = process.argv.slice(2);

function resolveCmakeJs() {
  try {
    return require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  } catch {
    return undefined;
  }
}

const cmakeJs = resolveCmakeJs();
if (cmakeJs) {
  const result = spawnSync(process.execPath, [cmakeJs, 'rebuild', '--parallel', jobs, ...extra], { cwd: root, stdio: 'inherit' });
  process.exit(result.status ?? 1);
}

// Plain cmake: what cmake-js would pass on Linux and macOS (headers only; Node resolves the
// Node-API symbols when it loads the addon).
function fail(message) {
  console.error(`vargpt build:cuda: ${message}`);
  process.exit(1);
}
if (spawnSync('cmake', ['--version']).status !== 0) fail('cmake not found (cmake 3.18 or later is needed)');
const nodedir = process.env.npm_config_nodedir || path.resolve(path.dirname(process.execPath), '..');
const nodeInclude = path.join(nodedir, 'include', 'node');
if (!existsSync(path.join(nodeInclude, 'node_api.h')))
  fail(`Node's headers are not in ${nodeInclude} (set npm_config_nodedir to a Node installation with include/node)`);

let out = 'build';
const defines = [];
for (let i = 0; i < extra.length; ++i) {
  if (extra[i] === '--out' || extra[i] === '-O') out = extra[++i];
  else if (extra[i].startsWith('--out=')) out = extra[i].slice(6);
  else if (extra[i].startsWith('--CD')) defines.push(`-D${extra[i].slice(4)}`);
  else fail(`unknown option ${extra[i]} (without cmake-js: --out DIR and --CDNAME=VALUE)`);
}
const buildDir = path.resolve(root, out);
const configure = spawnSync(
  'cmake',
  [
    '-S', root, '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release',
    `-DCMAKE_JS_INC=${nodeInclude}`,
    `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${path.join(buildDir, 'Release')}`,
    ...(process.platform === 'darwin' ? ['-DCMAKE_SHARED_LINKER_FLAGS=-undefined dynamic_lookup'] : []),
    ...defines,
  ],
  { cwd: root, stdio: 'inherit' },
);
if (configure.status !== 0) process.exit(configure.status ?? 1);
const build = spawnSync('cmake', ['--build', buildDir, '--parallel', jobs], { cwd: root, stdio: 'inherit' });
process.exit(build.status ?? 1);
