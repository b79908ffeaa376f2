#!/usr/bin/env node
// The oldest Linux a .node loads on: the symbol versions it needs from glibc, libstdc++ and
// libgcc_s (readelf, from binutils), checked against the floor the Linux prebuilds promise:
// glibc 2.28 (RHEL 8, Debian 10, Ubuntu 20.04) and nothing from libstdc++ newer than GCC 8's.
//
//   node scripts/check-glibc.mjs [FILE.node ...]    default: every prebuilds/linux-*/*.glibc.node
// Exits 1 when a file needs more than the floor, naming the symbols that do.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// The newest version of each versioned library the floor allows (GCC 8: GLIBCXX_3.4.25,
// CXXABI_1.3.11, GCC_7.0.0 in libgcc_s).
export const FLOOR = { GLIBC: '2.28', GLIBCXX: '3.4.25', CXXABI: '1.3.11', GCC: '7.0.0' };

function compare(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); ++i) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function readelfAvailable() {
  return spawnSync('readelf', ['--version']).status === 0;
}

// { needs: { GLIBC: '2.17', ... } newest version needed per family, tooNew: ['dlopen@GLIBC_2.34', ...] }
export function checkFile(file, floor = FLOOR) {
  const out = spawnSync('readelf', ['-W', '--dyn-syms', file], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`readelf failed on ${file}: ${out.stderr.trim()}`);
  const needs = {};
  const tooNew = [];
  for (const line of out.stdout.split('\n')) {
    const m = / UND (\S+)@(GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)/.exec(line);
    if (!m) continue;
    const [, symbol, family, version] = m;
    if (!needs[family] || compare(version, needs[family]) > 0) needs[family] = version;
    if (compare(version, floor[family]) > 0) tooNew.push(`${symbol}@${family}_${version}`);
  }
  return { needs, tooNew: [...new Set(tooNew)].sort() };
}

export function linuxPrebuilds() {
  const dir = path.join(root, 'prebuilds');
  if (!existsSync(dir)) return [];
  const files = [];
  for (const platform of readdirSync(dir).filter((d) => d.startsWith('linux-')))
    for (const f of readdirSync(path.join(dir, platform)))
      if (f.endsWith('.glibc.node')) files.push(path.join(dir, platform, f));
  return files;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!readelfAvailable()) {
    console.log('check-glibc: skipped, readelf not found (apt-get install binutils)');
    process.exit(0);
  }
  const files = process.argv.length > 2 ? process.argv.slice(2) : linuxPrebuilds();
  if (files.length === 0) {
    console.log('check-glibc: no prebuilds/linux-*/*.glibc.node to check (npm run prebuildify makes one)');
    process.exit(0);
  }
  let ok = true;
  for (const file of files) {
    const { needs, tooNew } = checkFile(file);
    const summary = Object.entries(needs).map(([family, version]) => `${family}_${version}`).join(', ') || 'no versioned symbols';
    const floor = Object.entries(FLOOR).map(([family, version]) => `${family}_${version}`).join(', ');
    if (tooNew.length === 0) console.log(`${path.relative(root, file)}: needs at most ${summary} (floor ${floor}): ok`);
    else {
      ok = false;
      console.log(`${path.relative(root, file)}: needs ${summary}, above the floor (${floor}) for: ${tooNew.join(' ')}`);
    }
  }
  process.exit(ok ? 0 : 1);
}
