#!/usr/bin/env node
// npm run fuzz -- [--seconds N] [--only NAME]: builds each libFuzzer harness in test/fuzz/ with
// clang (ASan + UBSan) and runs it on a copy of its seed corpus for N seconds, printing the
// executions it made. Exits non-zero on the first crash or sanitizer report.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const seconds = Number(option('--seconds', '60'));
const only = option('--only', '');
const clang = process.env.CLANGXX ?? 'clang++';

const which = spawnSync(clang, ['--version'], { encoding: 'utf8' });
if (which.status !== 0) {
  console.error(`fuzz: ${clang} not found (install clang and libclang-rt-14-dev, or set CLANGXX)`);
  process.exit(1);
}

const fuzzDir = path.join(root, 'test', 'fuzz');
// Not under build/: node-gyp rebuild wipes that folder, also while a long fuzz run is going.
const outDir = path.join(root, 'build-fuzz');
mkdirSync(outDir, { recursive: true });
const core = readdirSync(path.join(root, 'native', 'core'))
  .filter((f) => f.endsWith('.cc'))
  .map((f) => path.join(root, 'native', 'core', f));
const harnesses = readdirSync(fuzzDir)
  .filter((f) => f.endsWith('_fuzz.cc'))
  .map((f) => f.slice(0, -'_fuzz.cc'.length))
  .filter((name) => !only || name === only);

const results = [];
for (const name of harnesses) {
  const binary = path.join(outDir, `${name}_fuzz`);
  const flags = ['-std=c++17', '-O1', '-g', '-fsanitize=fuzzer,address,undefined', '-fno-sanitize-recover=undefined'];
  const build = spawnSync(clang, [...flags, `-I${path.join(root, 'native')}`, path.join(fuzzDir, `${name}_fuzz.cc`), ...core, '-o', binary], {
    stdio: 'inherit',
  });
  if (build.status !== 0) process.exit(build.status ?? 1);
  // Work on a copy so new inputs found by the run do not pile up in the repository.
  const corpus = path.join(outDir, `${name}_corpus`);
  cpSync(path.join(fuzzDir, 'corpus', name), corpus, { recursive: true });
  console.log(`fuzz: ${name} for ${seconds}s`);
  const run = spawnSync(
    binary,
    [`-max_total_time=${seconds}`, '-print_final_stats=1', '-max_len=65536', '-timeout=10', `-artifact_prefix=${outDir}/${name}-`, corpus],
    { encoding: 'utf8', maxBuffer: 1 << 28 },
  );
  const log = `${run.stdout}\n${run.stderr}`;
  const execs = /stat::number_of_executed_units:\s*(\d+)/.exec(log)?.[1] ?? '?';
  results.push({ name, execs, status: run.status });
  if (run.status !== 0) {
    console.error(log.split('\n').slice(-60).join('\n'));
    console.error(`fuzz: ${name} FAILED (artifacts in ${outDir})`);
    process.exit(1);
  }
  console.log(`fuzz: ${name}: ${execs} executions, no findings`);
}
console.log('\nharness        executions   seconds');
for (const r of results) console.log(`${r.name.padEnd(14)} ${String(r.execs).padStart(10)}   ${seconds}`);
