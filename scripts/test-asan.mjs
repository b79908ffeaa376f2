#!/usr/bin/env node
// npm run test:asan [-- vitest args]: builds the addon with AddressSanitizer and
// UndefinedBehaviorSanitizer (cmake-js, into build-asan/), then runs the test suite against that
// build with the sanitizer runtime preloaded into node. Any report fails the run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const options = ['--out', 'build-asan', '--CDVARGPT_CUDA=OFF', '--CDVARGPT_SANITIZE=ON'];
// Configure every time: the source list is read at configure time, and configuring is cheap.
const configure = spawnSync(process.execPath, [cmakeJs, 'configure', ...options], { cwd: root, stdio: 'inherit' });
if (configure.status !== 0) process.exit(configure.status ?? 1);
const build = spawnSync(process.execPath, [cmakeJs, 'build', ...options, '--parallel', process.env.JOBS ?? '2'], {
  cwd: root,
  stdio: 'inherit',
});
if (build.status !== 0) process.exit(build.status ?? 1);

const addon = path.join(root, 'build-asan', 'Release', 'vargpt.node');
const symbols = spawnSync('nm', ['-D', addon], { encoding: 'utf8' });
if (!existsSync(addon) || !/__asan_report/.test(symbols.stdout ?? '')) {
  console.error(`test:asan: ${addon} is missing or not instrumented`);
  process.exit(1);
}
const runtime = (name) => execFileSync('g++', [`-print-file-name=${name}`], { encoding: 'utf8' }).trim();
const env = {
  ...process.env,
  VARGPT_ADDON_PATH: addon,
  // Tests whose measurements the sanitizer distorts (resident memory) skip on this.
  VARGPT_SANITIZED: 'asan+ubsan',
  LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so')].join(' '),
  // Node itself does not free everything at exit; leaks are measured by the leak test instead.
  ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:exitcode=87',
};
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const args = process.argv.slice(2);
const run = spawnSync(process.execPath, [vitest, 'run', '--reporter=default', ...(args.length ? args : [])], {
  cwd: root,
  stdio: 'inherit',
  env,
});
process.exit(run.status ?? 1);
