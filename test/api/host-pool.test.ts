// The CPU backend's cache of large host blocks (native/backend/cpu/host_pool.h) is internal to the
// addon, so its unit test is a small C++ program (test/native/host_pool_test.cc), built here with
// AddressSanitizer + UBSan and run: it checks reuse, the size window, eviction on a miss, the cap,
// blocks released after the pool closed, concurrent use, and that op scratch comes from the pool
// of the scope open on its thread; LeakSanitizer checks at exit that every block was freed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// Under `npm run test:asan` node runs with the sanitizer runtimes preloaded; the compiler and the
// test program must not inherit that (the program links its own runtime and checks leaks).
const { LD_PRELOAD: _preload, ASAN_OPTIONS: _asan, UBSAN_OPTIONS: _ubsan, ...cleanEnv } = process.env;
const cxx = process.env.CXX ?? 'g++';

const haveCompiler = spawnSync(cxx, ['--version'], { encoding: 'utf8', env: cleanEnv }).status === 0;
const work = mkdtempSync(path.join(os.tmpdir(), 'vargpt-host-pool-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!haveCompiler)(`host block cache (C++ unit test; needs ${cxx})`, () => {
  it('reuses, bounds and frees its blocks (ASan + LeakSanitizer)', () => {
    const exe = path.join(work, 'host_pool_test');
    const sources = [
      'test/native/host_pool_test.cc',
      'native/backend/cpu/host_pool.cc',
      'native/core/tensor.cc',
      'native/core/dtype.cc',
      'native/core/aligned.cc',
    ];
    const build = spawnSync(
      cxx,
      ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-Inative', ...sources, '-o', exe, '-lpthread'],
      { cwd: root, encoding: 'utf8', env: cleanEnv },
    );
    expect(build.status, build.stderr).toBe(0);
    const run = spawnSync(exe, [], { encoding: 'utf8', env: { ...cleanEnv, ASAN_OPTIONS: 'detect_leaks=1' } });
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain('host_pool_test: all passed');
  }, 120_000);
});
