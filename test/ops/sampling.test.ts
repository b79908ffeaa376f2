// Token ops: embedding, the VQ nearest-codeword search, argmax, VAR's top-k/top-p sampler and
// Philox normal noise. The sampler is checked draw by draw: the test re-implements Philox4x32-10
// and the filters in float64, so every kept count and every sampled index must agree exactly.
import { describe, expect, it } from 'vitest';

import { bf16ToF32 } from '../../lib/tensor.js';
import { EPS32, Rng, asF32, asI32, f32Tensor, i32Tensor, runOp, weightTensor } from '../helpers/ops-reference.js';

// ---- Philox4x32-10 as in native/core/rng.h

const M0 = 0xd2511f53n, M1 = 0xcd9e8d57n, MASK = 0xffffffffn;

function philox(seed: bigint, stream: bigint, index: bigint): number[] {
  let c0 = index & MASK, c1 = (index >> 32n) & MASK, c2 = stream & MASK, c3 = (stream >> 32n) & MASK;
  let k0 = seed & MASK, k1 = (seed >> 32n) & MASK;
  for (let round = 0; round < 10; round++) {
    const p0 = M0 * c0, p1 = M1 * c2;
    const n0 = ((p1 >> 32n) ^ c1 ^ k0) & MASK;
    const n2 = ((p0 >> 32n) ^ c3 ^ k1) & MASK;
    c1 = p1 & MASK;
    c3 = p0 & MASK;
    c0 = n0;
    c2 = n2;
    k0 = (k0 + 0x9e3779b9n) & MASK;
    k1 = (k1 + 0xbb67ae85n) & MASK;
  }
  return [c0, c1, c2, c3].map(Number);
}

function uniform01(seed: bigint, stream: bigint, i: number): number {
  const r = philox(seed, stream, BigInt(i) >> 2n);
  return Math.fround((r[i & 3]! >>> 8) * (1 / 16777216));
}

function normal(seed: bigint, stream: bigint, i: number): number {
  const r = philox(seed, stream, BigInt(i) >> 2n);
  const pair = (i >> 1) & 1;
  const u1 = Math.fround(((r[2 * pair]! >>> 8) + 1) * (1 / 16777216));
  const u2 = Math.fround(((r[2 * pair + 1]! >>> 8) + 1) * (1 / 16777216));
  const radius = Math.sqrt(-2 * Math.log(u1));
  const angle = 6.283185307179586 * u2;
  return Math.fround(i & 1 ? radius * Math.sin(angle) : radius * Math.cos(angle));
}

// ---- the sampler's semantics (backend.h / sampling.cc), float64 where the kernel uses double

interface SampleParams {
  topK: number;
  topP: number;
  temperature: number;
}

function sampleRef(row: Float32Array, p: SampleParams, u: number): { idx: number; kept: number } {
  const V = row.length;
  const invT = Math.fround(1 / p.temperature);
  const l = Array.from(row, (x) => (p.temperature === 1 ? x : Math.fround(x * invT)));
  const alive = new Array<boolean>(V).fill(true);
  if (p.topK > 0 && p.topK < V) {
    const thr = [...l].sort((a, b) => b - a)[p.topK - 1]!;
    for (let v = 0; v < V; v++) alive[v] = l[v]! >= thr;
  }
  if (p.topP < 1) {
    const order = [...Array(V).keys()].filter((v) => alive[v]).sort((a, b) => l[a]! - l[b]! || a - b);
    const top = l[order[order.length - 1]!]!;
    const total = order.reduce((s, v) => s + Math.exp(l[v]! - top), 0);
    const cut = 1 - Math.fround(p.topP);
    let cum = 0;
    for (let i = 0; i + 1 < order.length; i++) {
      cum += Math.exp(l[order[i]!]! - top) / total;
      if (cum <= cut) alive[order[i]!] = false;
      else break;
    }
  }
  let top = -Infinity, kept = 0, last = 0;
  for (let v = 0; v < V; v++)
    if (alive[v]) {
      top = Math.max(top, l[v]!);
      kept++;
      last = v;
    }
  let total = 0;
  for (let v = 0; v < V; v++) if (alive[v]) total += Math.exp(l[v]! - top);
  const target = u * total;
  let cum = 0;
  for (let v = 0; v < V; v++) {
    if (!alive[v]) continue;
    cum += Math.exp(l[v]! - top);
    if (cum > target) return { idx: v, kept };
  }
  return { idx: last, kept };
}

function randomLogits(rng: Rng, N: number, V: number, spread: number): Float32Array {
  const a = new Float32Array(N * V);
  for (let i = 0; i < a.length; i++) a[i] = rng.normal() * spread;
  return a;
}

describe('sample (top-k, top-p, temperature, multinomial)', () => {
  const configs: [string, SampleParams, number][] = [
    ['VAR settings: top-k 900, top-p 0.96, V 4096', { topK: 900, topP: 0.96, temperature: 1 }, 4096],
    ['top-k only (k = 50)', { topK: 50, topP: 1, temperature: 1 }, 1000],
    ['top-p only (p = 0.5) with temperature 0.7', { topK: 0, topP: 0.5, temperature: 0.7 }, 1000],
    ['no filter, temperature 1.3', { topK: 0, topP: 1, temperature: 1.3 }, 333],
    ['top-k 1 (greedy)', { topK: 1, topP: 1, temperature: 1 }, 100],
    ['top-p 0 keeps only the largest', { topK: 0, topP: 0, temperature: 1 }, 100],
  ];
  it.each(configs)('%s: kept counts and draws match the float64 re-implementation', async (_label, p, V) => {
    const N = 64;
    const rng = new Rng(V + p.topK);
    const logits = randomLogits(rng, N, V, 3);
    const seed = 1234567890123n, stream = (2n << 32n) | 5n;
    const [idx, kept] = await runOp('sample', [f32Tensor([N, V], logits)], { ...p, seed, stream });
    const gotIdx = asI32(idx!), gotKept = asI32(kept!);
    for (let r = 0; r < N; r++) {
      const ref = sampleRef(logits.subarray(r * V, (r + 1) * V), p, uniform01(seed, stream, r));
      expect(gotKept[r], `row ${r} kept`).toBe(ref.kept);
      expect(gotIdx[r], `row ${r} index`).toBe(ref.idx);
    }
  });

  it('keeps ties at the k-th largest logit', async () => {
    const row = new Float32Array([1, 5, 3, 5, 3, 3, 0.5, 2]);
    const [, kept] = await runOp('sample', [f32Tensor([1, 8], row)], { topK: 3, seed: 1 });
    expect(asI32(kept!)[0]).toBe(5); // the 3rd largest is 3: both 5s and all three 3s stay
  });

  it('is reproducible for a seed and changes with the seed and the stream', async () => {
    const rng = new Rng(77);
    const N = 200, V = 500;
    const logits = f32Tensor([N, V], randomLogits(rng, N, V, 1));
    const run = async (seed: number, stream: number) =>
      asI32((await runOp('sample', [logits], { topK: 100, topP: 0.9, seed, stream }))[0]!);
    const a = await run(5, 0), b = await run(5, 0), c = await run(6, 0), d = await run(5, 1);
    expect(Array.from(b)).toEqual(Array.from(a));
    const differ = (x: Int32Array, y: Int32Array) => x.reduce((n, v, i) => n + (v !== y[i] ? 1 : 0), 0);
    expect(differ(a, c)).toBeGreaterThan(N / 2);
    expect(differ(a, d)).toBeGreaterThan(N / 2);
  });

  it('draws with the softmax probabilities (chi-square over 20000 rows)', async () => {
    const base = [0.3, -1.2, 2.0, 0.9, -0.4, 1.4, 0.0, -2.5];
    const N = 20000, V = base.length;
    const logits = new Float32Array(N * V);
    for (let r = 0; r < N; r++) logits.set(base, r * V);
    const [idx] = await runOp('sample', [f32Tensor([N, V], logits)], { seed: 99, stream: 3 });
    const counts = new Array<number>(V).fill(0);
    for (const i of asI32(idx!)) counts[i]!++;
    const z = base.reduce((s, x) => s + Math.exp(x), 0);
    let chi2 = 0;
    for (let v = 0; v < V; v++) {
      const expected = (N * Math.exp(base[v]!)) / z;
      chi2 += (counts[v]! - expected) ** 2 / expected;
    }
    // 7 degrees of freedom: P(chi2 > 29.9) = 1e-4, so a correct sampler fails about once in 10^4
    // seeds; this seed is fixed, so the test is deterministic.
    expect(chi2).toBeLessThan(29.9);
  });

  it('rejects bad parameters and NaN logits', async () => {
    const logits = f32Tensor([1, 4], new Float32Array([1, 2, 3, 4]));
    await expect(runOp('sample', [logits], { topP: 1.5, seed: 1 })).rejects.toThrow(/sample: top_p 1.5 must be in \[0, 1\]/);
    await expect(runOp('sample', [logits], { temperature: 0, seed: 1 })).rejects.toThrow(/temperature 0 must be positive/);
    await expect(runOp('sample', [logits], {})).rejects.toThrow(/sample: attribute seed is required/);
    await expect(runOp('sample', [f32Tensor([1, 3], new Float32Array([1, NaN, 0]))], { seed: 1 })).rejects.toThrow(
      /sample: logits\[0, 1\] is NaN/,
    );
  });
});

describe('argmax', () => {
  it('returns the first maximum of each row', async () => {
    const rng = new Rng(3);
    const N = 9, V = 1001;
    const x = rng.f32(N * V);
    x[2 * V + 17] = 5;
    x[2 * V + 900] = 5; // tie: the first wins
    x[5 * V + V - 1] = 7;
    const [idx] = await runOp('argmax', [f32Tensor([N, V], x)]);
    const got = asI32(idx!);
    for (let r = 0; r < N; r++) {
      let best = 0;
      for (let v = 1; v < V; v++) if (x[r * V + v]! > x[r * V + best]!) best = v;
      expect(got[r], `row ${r}`).toBe(best);
    }
    expect(got[2]).toBe(17);
    expect(got[5]).toBe(V - 1);
  });
});

describe('randn', () => {
  it('produces philox_normal(seed, stream, i) at flat index i', async () => {
    const seed = 42n, stream = 7n;
    const [out] = await runOp('randn', [], { shape: [3, 37], seed: 42, stream: 7 });
    const got = asF32(out!);
    for (let i = 0; i < got.length; i++) {
      const ref = normal(seed, stream, i);
      // libm and V8 may differ in the last bit of log/sin/cos before the f32 rounding.
      expect(Math.abs(got[i]! - ref), `element ${i}`).toBeLessThanOrEqual(4 * EPS32 * Math.max(1, Math.abs(ref)));
    }
  });

  it('has mean 0 and variance 1 over 10^6 draws, and is deterministic per seed and stream', async () => {
    const n = 1 << 20;
    const [a] = await runOp('randn', [], { shape: [n], seed: 3, stream: 1 });
    const x = asF32(a!);
    let mean = 0;
    for (const v of x) mean += v / n;
    let variance = 0;
    for (const v of x) variance += (v - mean) ** 2 / n;
    // Standard errors: 1/sqrt(n) = 0.001 for the mean, sqrt(2/n) = 0.0014 for the variance; 5 sigma.
    expect(Math.abs(mean)).toBeLessThan(0.005);
    expect(Math.abs(variance - 1)).toBeLessThan(0.007);
    const [b] = await runOp('randn', [], { shape: [n], seed: 3, stream: 1 });
    expect(Buffer.from(b!.data).equals(Buffer.from(a!.data))).toBe(true);
    const [c] = await runOp('randn', [], { shape: [8], seed: 3, stream: 2 });
    expect(Array.from(asF32(c!))).not.toEqual(Array.from(x.subarray(0, 8)));
  });
});

describe('embedding and vq_nearest', () => {
  it.each(['f32', 'bf16', 'f16'] as const)('embedding gathers and widens %s rows exactly', async (dtype) => {
    const rng = new Rng(dtype.length);
    const V = 50, C = 33;
    const table = weightTensor(rng, dtype, [V, C]);
    const ids = [3, 0, 49, 3, 17];
    const [out] = await runOp('embedding', [i32Tensor([ids.length], ids), table.tensor]);
    expect(out!.shape).toEqual([ids.length, C]);
    const got = asF32(out!);
    ids.forEach((id, n) => {
      for (let c = 0; c < C; c++) expect(got[n * C + c]).toBe(table.values[id * C + c]);
    });
  });

  it('embedding rejects an id outside the table, naming it', async () => {
    const table = f32Tensor([4, 2], new Float32Array(8).fill(1));
    await expect(runOp('embedding', [i32Tensor([3], [0, 4, 1]), table])).rejects.toThrow(
      /embedding: ids\[1\] = 4 is outside the table f32\[4, 2\] \(valid 0..3\)/,
    );
    await expect(runOp('embedding', [i32Tensor([1], [-1]), table])).rejects.toThrow(/ids\[0\] = -1 is outside/);
  });

  it.each(['f32', 'bf16'] as const)('vq_nearest finds the nearest codeword (%s codebook), first on ties', async (dtype) => {
    const rng = new Rng(12);
    const N = 300, V = 512, C = 32;
    const book = weightTensor(rng, dtype, [V, C]);
    // Duplicate codeword 9 into 5 and 300 (bit-identical), and aim three rows exactly at it.
    const raw = book.tensor.data as Float32Array | Uint16Array;
    for (const dup of [5, 300])
      for (let c = 0; c < C; c++) {
        raw[dup * C + c] = raw[9 * C + c]!;
        book.values[dup * C + c] = book.values[9 * C + c]!;
      }
    const z = rng.f32(N * C);
    for (const row of [0, 100, 299]) for (let c = 0; c < C; c++) z[row * C + c] = book.values[9 * C + c]!;
    const [idx] = await runOp('vq_nearest', [f32Tensor([N, C], z), book.tensor]);
    const got = asI32(idx!);
    for (const row of [0, 100, 299]) expect(got[row], `row ${row} (tie)`).toBe(5);
    for (let n = 0; n < N; n++) {
      const dist = (v: number) => {
        let d = 0;
        for (let c = 0; c < C; c++) d += (z[n * C + c]! - book.values[v * C + c]!) ** 2;
        return d;
      };
      let best = 0;
      for (let v = 1; v < V; v++) if (dist(v) < dist(best)) best = v;
      // f32 evaluation of ||z||² + ||e||² - 2z·e is off by ~2C·u·(||z||² + ||e||²): the kernel's
      // choice must be nearest within that, and exactly the reference's when the gap is larger.
      let zz = 0, ee = 0;
      for (let c = 0; c < C; c++) {
        zz += z[n * C + c]! ** 2;
        ee += book.values[got[n]! * C + c]! ** 2;
      }
      const slack = 8 * C * EPS32 * (zz + ee);
      expect(dist(got[n]!) - dist(best), `row ${n}`).toBeLessThanOrEqual(slack);
    }
    // bf16ToF32 keeps the import honest: the bf16 codebook values are exact f32 widenings.
    if (dtype === 'bf16') expect(book.values[0]).toBe(bf16ToF32((book.tensor.data as Uint16Array)[0]!));
  });
});
