// Every Backend op has a CUDA-vs-CPU case. Reads the pure virtual methods of `class Backend` in
// native/backend/backend.h and the case titles of test/ops/cuda.test.ts, and fails naming each op
// without a case. Runs everywhere (no GPU needed): it checks the source, not the device.
//
// Marker convention: a case in cuda.test.ts covers the Backend ops named in brackets at the start
// of its title, e.g. it('[norm_modulate, gated_add] over [B, L, C]', ...) or
// it.each(cases)('[attention] %s', ...). Every name in a marker must be a Backend op (no stale
// markers).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// Backend methods without a kernel: naming, allocation, host transfers and waiting. Every other
// pure virtual method must have a case.
const NO_KERNEL = ['name', 'device', 'empty', 'upload', 'to_host', 'synchronize'];

// Names of the pure virtual methods (`virtual ... name(...) ... = 0;`) of `class Backend`.
export function backendOps(header: string): string[] {
  const start = header.indexOf('class Backend {');
  expect(start, 'class Backend in backend.h').toBeGreaterThanOrEqual(0);
  const end = header.indexOf('\n};', start);
  const body = header
    .slice(start, end)
    .replace(/\/\/[^\n]*/g, '') // comments
    .replace(/\s+/g, ' ');
  const names: string[] = [];
  for (const m of body.matchAll(/virtual [^;{}]*?\b([a-z_][a-z0-9_]*)\s*\(([^;{}]*?)\)\s*(?:const\s*)?=\s*0\s*;/g)) names.push(m[1]!);
  return names;
}

// Backend op names in the leading [..] markers of the string literals that start with one.
export function coveredOps(tests: string): Set<string> {
  const ops = new Set<string>();
  for (const m of tests.matchAll(/['"`]\[([a-z][a-z0-9_]*(?:, *[a-z][a-z0-9_]*)*)\] /g))
    for (const name of m[1]!.split(',')) ops.add(name.trim());
  return ops;
}

describe('CUDA-vs-CPU coverage of the Backend interface', () => {
  const header = readFileSync(path.join(root, 'native/backend/backend.h'), 'utf8');
  const tests = readFileSync(path.join(root, 'test/ops/cuda.test.ts'), 'utf8');
  const ops = backendOps(header);

  it('finds the Backend ops (the parser still reads backend.h)', () => {
    expect(ops.length).toBeGreaterThan(30);
    for (const known of ['linear', 'attention', 'copy', 'sample', 'synchronize']) expect(ops).toContain(known);
    for (const excluded of NO_KERNEL) expect(ops, `excluded op ${excluded} is still a Backend method`).toContain(excluded);
  });

  it('every Backend op with a kernel has a case in test/ops/cuda.test.ts', () => {
    const covered = coveredOps(tests);
    const missing = ops.filter((op) => !NO_KERNEL.includes(op) && !covered.has(op));
    expect(missing, 'Backend ops without a [op] case in test/ops/cuda.test.ts').toEqual([]);
  });

  it('every [op] marker names a Backend op', () => {
    const stale = [...coveredOps(tests)].filter((op) => !ops.includes(op));
    expect(stale, 'markers in test/ops/cuda.test.ts that are not Backend ops').toEqual([]);
  });

  it('the parsers see through overloads, defaults and multi-line declarations', () => {
    const sample = `class Backend {
 public:
  virtual std::string name() const = 0;  // "cpu"
  virtual void gated_add(const Tensor& x, const Tensor& y, const Tensor& gate,
                         Activation gate_act = Activation::None) = 0;
  // virtual void commented(int) = 0;
  void helper(int);
  virtual void linear(const Tensor& x, const Tensor* bias, Activation act = Activation::None) = 0;
};
class Other { virtual void other() = 0; };`;
    expect(backendOps(sample)).toEqual(['name', 'gated_add', 'linear']);
    expect([...coveredOps(`it('[a_b, c] x', f); it.each(x)('[d] %s', g); '[29] no'; 'add [e] no'`)]).toEqual(['a_b', 'c', 'd']);
  });
});
