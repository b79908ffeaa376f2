#!/usr/bin/env node
// npm run check:platforms: compiles every native source for the platforms this machine has a
// cross toolchain for, so code that only builds on Linux is caught here. Each target says which
// compiler it found; a target whose compiler is missing is skipped (and named), never failed.
//
//   windows-x64  x86_64-w64-mingw32-g++ (Debian: g++-mingw-w64-x86-64-posix): what binding.gyp
//                builds on Windows (the portable sources, no x86 kernels) compiled to objects and
//                linked into a DLL against an import library of node.exe made from node_api.h
//                (so a missing Win32 or Node-API symbol shows); then the x86 kernel files,
//                -fsyntax-only. MSVC itself and running are not checked.
//   linux-arm64  aarch64-linux-gnu-g++ (Debian: g++-aarch64-linux-gnu), the portable sources
//                without the x86 kernels, -fsyntax-only (npm run prebuildify:linux-arm64 builds the
//                .node itself).
//   clang        the host's clang, every source with the same flags as the addon: the compiler
//                macOS builds with (Apple clang), on Linux headers; no macOS SDK here.
//   glibc        the symbol versions of every prebuilds/linux-*/*.glibc.node against the glibc
//                2.28 floor (scripts/check-glibc.mjs; readelf from binutils).
//   qemu-arm64   prebuilds/linux-arm64 loaded and run (scripts/smoke-addon.cjs) by an arm64 Node
//                under qemu-aarch64 (Debian: qemu-user). The arm64 Node is a folder named by
//                VARGPT_ARM64_ROOT holding Debian's arm64 nodejs unpacked, made without installing
//                it: dpkg --add-architecture arm64 && apt-get update, then in an empty folder
//                apt-get download nodejs:arm64 libnode108:arm64 libc6:arm64 libstdc++6:arm64
//                libgcc-s1:arm64 libuv1:arm64 libicu72:arm64 libssl3:arm64 libc-ares2:arm64
//                libnghttp2-14:arm64 libbrotli1:arm64 zlib1g:arm64 node-cjs-module-lexer node-acorn
//                node-undici && for d in *.deb; do dpkg -x $d root; done (VARGPT_ARM64_ROOT=$PWD/root).
//
// Usage: node scripts/check-platforms.mjs [--target windows-x64,linux-arm64,clang,glibc,qemu-arm64]
//          [--jobs N] [--checkpoint DIR (a model folder the qemu run opens)]
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { FLOOR, checkFile, linuxPrebuilds, readelfAvailable } from './check-glibc.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function option(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function sources(group) {
  const out = spawnSync(process.execPath, [path.join(root, 'scripts/sources.cjs'), group], { encoding: 'utf8' });
  return out.stdout.split(' ').filter(Boolean);
}

function which(...names) {
  for (const name of names) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  return undefined;
}

// node_api.h and friends: the running Node's headers (the same on every platform).
function nodeIncludeDir() {
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
  ];
  return candidates.find((dir) => dir && existsSync(path.join(dir, 'node_api.h')));
}

const warnings = ['-std=c++17', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror=return-type'];
const syntaxOnly = ['-fsyntax-only'];
const addonDefines = ['-DNAPI_VERSION=8', '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DNAPI_CPP_EXCEPTIONS'];
const isaFlags = {
  avx2: ['-mavx2', '-mfma', '-mf16c'],
  avx512: ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512bf16', '-mfma', '-mf16c'],
  amx: ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512bf16', '-mamx-tile', '-mamx-bf16', '-mfma', '-mf16c'],
};

// Each unit: [file, extra flags]. x86 targets compile every group with its ISA flags.
function kernelUnits() {
  const units = [];
  for (const [group, flags] of Object.entries(isaFlags))
    for (const f of sources(group)) units.push([f, [...flags, '-DVARGPT_HAVE_X86_KERNELS=1']]);
  return units;
}
function x86Units() {
  return [...sources('portable').map((f) => [f, ['-DVARGPT_HAVE_X86_KERNELS=1']]), ...kernelUnits()];
}

// Windows: node.exe exports Node-API; an import library for it from the functions node_api.h and
// js_native_api.h declare lets the DLL link as it would against node.lib.
function linkWindowsDll(compiler, objects, dir) {
  const names = new Set();
  for (const header of ['js_native_api.h', 'node_api.h'])
    for (const m of readFileSync(path.join(nodeInclude, header), 'utf8').matchAll(/\b((?:napi|node_api)_[a-z0-9_]+)\s*\(/g)) names.add(m[1]);
  writeFileSync(path.join(dir, 'node.def'), `LIBRARY node.exe\nEXPORTS\n${[...names].map((n) => `  ${n}`).join('\n')}\n`);
  const dlltool = compiler.replace(/g\+\+(-posix)?$/, 'dlltool');
  const lib = path.join(dir, 'libnode.a');
  const made = spawnSync(dlltool, ['-d', path.join(dir, 'node.def'), '-l', lib], { encoding: 'utf8' });
  if (made.status !== 0) return `${dlltool} failed: ${made.stderr}`;
  const out = path.join(dir, 'vargpt.node');
  const linked = spawnSync(compiler, ['-shared', '-o', out, ...objects, lib, '-static-libgcc', '-static-libstdc++', '-static'], { encoding: 'utf8' });
  if (linked.status !== 0) return `link failed:\n${linked.stdout}${linked.stderr}`;
  const dlls = spawnSync(compiler.replace(/g\+\+(-posix)?$/, 'objdump'), ['-p', out], { encoding: 'utf8' }).stdout.match(/DLL Name: \S+/g) ?? [];
  console.log(`  linked ${path.basename(out)} (${dlls.map((d) => d.slice(10)).join(', ')})`);
  return '';
}

const targets = {
  'windows-x64': {
    compiler: () => which('x86_64-w64-mingw32-g++-posix', 'x86_64-w64-mingw32-g++'),
    install: 'apt-get install g++-mingw-w64-x86-64-posix',
    flags: [],
    // binding.gyp on Windows: portable sources only, compiled to objects and linked.
    units: () => [...sources('portable').map((f) => [f, [], 'object']), ...kernelUnits()],
    link: linkWindowsDll,
    unchecked: 'MSVC (what node-gyp uses on Windows), loading and running',
  },
  'linux-arm64': {
    compiler: () => which('aarch64-linux-gnu-g++'),
    install: 'apt-get install g++-aarch64-linux-gnu',
    flags: ['-fPIC'],
    units: () => sources('portable').map((f) => [f, []]),
    unchecked: 'linking and running (npm run prebuildify:linux-arm64 builds the .node)',
  },
  clang: {
    compiler: () => which('clang++', 'clang'),
    install: 'apt-get install clang',
    flags: ['-x', 'c++'],
    units: () => (os.arch() === 'x64' ? x86Units() : sources('portable').map((f) => [f, []])),
    unchecked: 'the macOS SDK and libc++ (Apple headers are not available here), linking, running',
  },
};

function checkGlibc() {
  if (!readelfAvailable()) {
    console.log('glibc: skipped, readelf not found (apt-get install binutils)');
    return true;
  }
  const files = linuxPrebuilds();
  if (files.length === 0) {
    console.log('glibc: skipped, no prebuilds/linux-*/*.glibc.node (npm run prebuildify, npm run prebuildify:linux-arm64)');
    return true;
  }
  let ok = true;
  for (const file of files) {
    const { needs, tooNew } = checkFile(file);
    const summary = Object.entries(needs).map(([family, version]) => `${family}_${version}`).join(', ');
    console.log(`glibc: ${path.relative(root, file)} needs ${summary || 'no versioned symbols'}` +
      (tooNew.length ? `; above the floor (GLIBC_${FLOOR.GLIBC}): ${tooNew.join(' ')}` : ' (floor GLIBC_' + FLOOR.GLIBC + '): ok'));
    ok &&= tooNew.length === 0;
  }
  return ok;
}

// The arm64 prebuild in a package copy (no build/), run by an arm64 Node under qemu-user.
function runArm64() {
  const qemu = which('qemu-aarch64');
  const sysroot = process.env.VARGPT_ARM64_ROOT;
  const prebuild = path.join(root, 'prebuilds', 'linux-arm64');
  const node = sysroot && path.join(sysroot, 'usr', 'bin', 'node');
  const missing = !qemu
    ? 'qemu-aarch64 not found (apt-get install qemu-user)'
    : !node || !existsSync(node)
      ? 'no arm64 Node (set VARGPT_ARM64_ROOT, see the top of this script)'
      : !existsSync(prebuild)
        ? 'no prebuilds/linux-arm64 (npm run prebuildify:linux-arm64)'
        : '';
  if (missing) {
    console.log(`qemu-arm64: skipped, ${missing}`);
    return true;
  }
  const copy = mkdtempSync(path.join(os.tmpdir(), 'vargpt-arm64-'));
  try {
    cpSync(path.join(root, 'package.json'), path.join(copy, 'package.json'));
    cpSync(prebuild, path.join(copy, 'prebuilds', 'linux-arm64'), { recursive: true });
    symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
    const libs = ['usr/lib/aarch64-linux-gnu', 'lib/aarch64-linux-gnu'].map((d) => path.join(sysroot, d)).join(':');
    const args = ['-L', sysroot, '-E', `LD_LIBRARY_PATH=${libs}`, node, path.join(root, 'scripts', 'smoke-addon.cjs'), copy];
    const checkpoint = option('--checkpoint');
    if (checkpoint) args.push(checkpoint);
    console.log(`qemu-arm64: ${qemu}, ${node}`);
    const run = spawnSync(qemu, args, { encoding: 'utf8' });
    console.log(indent(`${run.stdout}${run.stderr}`));
    console.log(`qemu-arm64: ${run.status === 0 ? 'ok' : 'FAILED'}; not checked: arm64 hardware, the TypeScript API (sharp has no arm64 binary installed here)`);
    return run.status === 0;
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

const wanted = (option('--target') ?? [...Object.keys(targets), 'glibc', 'qemu-arm64'].join(',')).split(',');
const jobs = Math.max(1, Number(option('--jobs') ?? process.env.JOBS ?? 2));
const nodeInclude = nodeIncludeDir();
if (!nodeInclude) {
  console.error('check-platforms: no Node headers (include/node/node_api.h) beside this node; set npm_config_nodedir');
  process.exit(1);
}
const includes = ['-I', path.join(root, 'native'), '-I', require('node-addon-api').include_dir.replace(/"/g, ''), '-I', nodeInclude];

function compile(compiler, args) {
  return new Promise((resolve) => {
    const child = spawn(compiler, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => resolve({ code, output }));
  });
}

async function runTarget(name) {
  if (name === 'glibc') return checkGlibc();
  if (name === 'qemu-arm64') return runArm64();
  const target = targets[name];
  if (!target) {
    console.log(`${name}: unknown target (known: ${Object.keys(targets).join(', ')})`);
    return false;
  }
  const compiler = target.compiler();
  if (!compiler) {
    console.log(`${name}: skipped, no compiler found (${target.install})`);
    return true;
  }
  const version = spawnSync(compiler, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  const units = target.units();
  console.log(`${name}: ${compiler} (${version}), ${units.length} files`);
  const failures = [];
  const objects = [];
  const work = mkdtempSync(path.join(os.tmpdir(), `vargpt-${name}-`));
  let next = 0;
  const worker = async () => {
    while (next < units.length) {
      const [file, extra, kind] = units[next++];
      const object = path.join(work, `${file.replace(/[/\\]/g, '_')}.o`);
      const mode = kind === 'object' ? ['-c', '-O0', '-o', object] : syntaxOnly;
      const { code, output } = await compile(compiler, [...target.flags, ...warnings, ...mode, ...addonDefines, ...extra, ...includes, file]);
      if (code !== 0) failures.push({ file, output });
      else if (/warning:/.test(output)) console.log(`  ${file}: warnings\n${indent(output)}`);
      if (kind === 'object') objects.push(object);
    }
  };
  try {
    await Promise.all(Array.from({ length: jobs }, worker));
    for (const { file, output } of failures) console.log(`  FAILED ${file}\n${indent(output)}`);
    let linkError = '';
    if (target.link && failures.length === 0) linkError = target.link(compiler, objects.sort(), work);
    if (linkError) console.log(`  ${indent(linkError).trim()}`);
    console.log(`${name}: ${units.length - failures.length}/${units.length} compile${target.link ? (linkError ? ', link FAILED' : ', links') : ''}; not checked: ${target.unchecked}`);
    return failures.length === 0 && !linkError;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function indent(text) {
  const lines = text.trim().split('\n');
  const shown = lines.slice(0, 30).map((l) => `    ${l}`);
  if (lines.length > 30) shown.push(`    ... ${lines.length - 30} more lines`);
  return shown.join('\n');
}

let ok = true;
for (const name of wanted) ok = (await runTarget(name)) && ok;
process.exit(ok ? 0 : 1);
