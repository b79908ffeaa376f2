// npm run bench -- cpu [--quick] [--paths] [--threads-note]
//
// CPU kernel benchmarks, each figure printed beside the ceiling it should be read against:
// - peak:      all-thread register-only FMA loop (native peak_flops op: independent FMA chains,
//              no memory traffic, every pool thread at once) -> GFLOP/s ceiling for GEMM, conv,
//              attention.
// - bandwidth: all-thread streaming read of a 1 GiB buffer (native read_bandwidth op, best of 5)
//              -> GB/s ceiling for weight streaming (GEMV with M = 1).
// Kernels are timed with timeOp: the op is bound once (inputs uploaded, outputs allocated) and
// run repeatedly on the worker thread; each figure is the median of the runs after a warm-up.
// --paths also times the big GEMMs on every GEMM path (avx512 / avx2 / portable).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const addon = require('node-gyp-build')(root);

// Cheap deterministic non-zero data (the values do not affect speed, zeros could).
function fillF32(n, seed = 1) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * 0.2 + 1e-3;
  }
  return a;
}

function bf16Of(f32) {
  const u32 = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < f32.length; i++) out[i] = (u32[i] + 0x7fff + ((u32[i] >>> 16) & 1)) >>> 16;
  return out;
}

const t32 = (shape, data) => ({ dtype: 'f32', shape, data });

async function time(op, inputs, attrs, { iterations = 5, minSeconds = 1.0 } = {}) {
  // One warm-up run, then enough runs for ~minSeconds (at least `iterations`, at most 50).
  const [first] = await addon.timeOp('cpu', op, inputs, attrs, 1);
  const n = Math.max(iterations, Math.min(50, Math.ceil(minSeconds / Math.max(first, 1e-6))));
  const runs = await addon.timeOp('cpu', op, inputs, attrs, n);
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)];
}

function pct(x, ceiling) {
  return `${((100 * x) / ceiling).toFixed(0)}%`;
}

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

export async function run(args = []) {
  const quick = args.includes('--quick');
  const comparePaths = args.includes('--paths');
  const info = addon.devices().cpu;
  console.log(`cpu: ${info.model}, ${info.threads} threads, kernels ${info.kernels}, features ${info.features.join(' ')}`);

  // Shared cloud machines drift (other tenants, frequency): the ceilings are measured before and
  // after the kernels and the higher value is used, which can only lower the percentages.
  const ceilings = async () => {
    const [peakT] = await addon.runOp('cpu', 'peak_flops', [], { seconds: 2 });
    const [bwT] = await addon.runOp('cpu', 'read_bandwidth', [], { bytes: 1 << 30, iterations: 5 });
    return { peak: new Float32Array(peakT.data)[0], bandwidth: new Float32Array(bwT.data)[0] };
  };
  const before = await ceilings();
  let peak = before.peak;
  let bandwidth = before.bandwidth;
  console.log(`\nceilings before: FMA peak ${peak.toFixed(1)} GFLOP/s, read bandwidth ${bandwidth.toFixed(1)} GB/s`);

  const results = [['kernel', 'shape', 'dtype', 'ms', 'GFLOP/s', '% peak', 'GB/s', '% bw']];

  // ---- GEMM / GEMV (linear)
  const shapes = quick
    ? [
        [4096, 4096],
        [4096, 11008],
      ]
    : [
        [1920, 1920],
        [4096, 4096],
        [4096, 11008],
        [11008, 4096],
      ];
  const Ms = quick ? [1, 256] : [1, 16, 256, 680];
  const weights = new Map();
  for (const [K, N] of shapes) {
    const wf = fillF32(N * K, K + N);
    weights.set(`${K}x${N}`, { f32: t32([N, K], wf), bf16: { dtype: 'bf16', shape: [N, K], data: bf16Of(wf) } });
  }
  for (const [K, N] of shapes) {
    for (const M of Ms) {
      const x = t32([M, K], fillF32(M * K, M));
      for (const dtype of ['f32', 'bf16']) {
        const w = weights.get(`${K}x${N}`)[dtype];
        const s = await time('linear', [x, w], {}, { minSeconds: M >= 256 ? 2 : 1 });
        const flops = (2 * M * N * K) / s / 1e9;
        const bytes = (N * K * (dtype === 'f32' ? 4 : 2)) / s / 1e9;
        results.push([
          M === 1 ? 'gemv' : 'gemm',
          `M=${M} K=${K} N=${N}`,
          dtype,
          (s * 1e3).toFixed(2),
          flops.toFixed(1),
          '',
          M <= 16 ? bytes.toFixed(1) : '',
          '',
        ]);
      }
    }
  }

  // ---- attention
  const attn = [
    ['causal prefill', 1, 595, 595, 32, 32, 128, true],
    ['VAR last scale (cfg batch 2)', 2, 256, 680, 30, 30, 64, false],
    ['decode GQA 32/8 over 2048', 1, 1, 2048, 32, 8, 128, true],
    ['VQ-VAE mid attention', 1, 256, 256, 1, 1, 512, false],
  ];
  for (const [label, B, Lq, Lk, Hq, Hkv, D, causal] of quick ? attn.slice(0, 2) : attn) {
    const q = t32([B, Lq, Hq * D], fillF32(B * Lq * Hq * D, 3));
    const k = t32([B, Lk, Hkv * D], fillF32(B * Lk * Hkv * D, 4));
    const v = t32([B, Lk, Hkv * D], fillF32(B * Lk * Hkv * D, 5));
    const s = await time('attention', [q, k, v], { qHeads: Hq, kvHeads: Hkv, headDim: D, scale: D ** -0.5, causal });
    // Two matmuls (q·k and p·v) over the visible keys.
    let visible = 0;
    for (let i = 0; i < Lq; i++) visible += causal ? Lk - Lq + i + 1 : Lk;
    const flops = (4 * B * Hq * D * visible) / s / 1e9;
    results.push([`attention ${label}`, `B=${B} Lq=${Lq} Lk=${Lk} H=${Hq}/${Hkv} D=${D}`, 'f32', (s * 1e3).toFixed(2), flops.toFixed(1), '', '', '']);
  }

  // ---- conv (VQ-VAE decoder shapes)
  const convs = [
    ['conv 3x3', 640, 640, 16, 3, 1, 1],
    ['conv 3x3', 160, 160, 256, 3, 1, 1],
    ['conv 3x3 stride 2', 160, 160, 256, 3, 2, [0, 1, 0, 1]],
    ['conv 1x1', 640, 320, 32, 1, 1, 0],
    ['conv 14x14 stride 14 (ViT patches)', 3, 1024, 336, 14, 14, 0],
  ];
  for (const [label, C, O, HW, k, stride, padding] of quick ? convs.slice(0, 1) : convs) {
    const x = t32([1, C, HW, HW], fillF32(C * HW * HW, 6));
    const w = t32([O, C, k, k], fillF32(O * C * k * k, 7));
    const s = await time('conv2d', [x, w], { stride, padding });
    const pads = Array.isArray(padding) ? padding : [padding, padding, padding, padding];
    const Ho = Math.floor((HW + pads[0] + pads[1] - k) / stride) + 1;
    const Wo = Math.floor((HW + pads[2] + pads[3] - k) / stride) + 1;
    const flops = (2 * O * C * k * k * Ho * Wo) / s / 1e9;
    results.push([label, `${C}->${O} at ${HW}x${HW}`, 'f32', (s * 1e3).toFixed(2), flops.toFixed(1), '', '', '']);
  }

  // ---- GEMV streaming from DRAM: a decode step reads every weight once, from memory, not from
  // cache. Rotate over enough distinct bf16 matrices (> the L3 of big server parts) that none
  // is cached when it is used again.
  {
    const K = 4096, N = 11008, copies = quick ? 6 : 8;
    const x = t32([1, K], fillF32(K, 11));
    for (const dtype of ['bf16', 'f32']) {
      const mats = [];
      for (let c = 0; c < copies; c++) {
        const wf = fillF32(N * K, 100 + c);
        mats.push(dtype === 'f32' ? t32([N, K], wf) : { dtype, shape: [N, K], data: bf16Of(wf) });
      }
      const bytesEach = N * K * (dtype === 'f32' ? 4 : 2);
      let seconds = 0;
      for (let round = 0; round < 3; round++)
        for (const w of mats) seconds += (await addon.timeOp('cpu', 'linear', [x, w], {}, 1))[0];
      const gbs = (3 * copies * bytesEach) / seconds / 1e9;
      const flops = (3 * copies * 2 * N * K) / seconds / 1e9;
      results.push([
        'gemv streaming',
        `M=1 K=${K} N=${N}, ${copies} matrices (${((copies * bytesEach) / 2 ** 20).toFixed(0)} MiB)`,
        dtype,
        ((seconds / (3 * copies)) * 1e3).toFixed(2),
        flops.toFixed(1),
        '',
        gbs.toFixed(1),
        '',
      ]);
      mats.length = 0;
    }
  }

  const after = await ceilings();
  console.log(`ceilings after:  FMA peak ${after.peak.toFixed(1)} GFLOP/s, read bandwidth ${after.bandwidth.toFixed(1)} GB/s`);
  peak = Math.max(peak, after.peak);
  bandwidth = Math.max(bandwidth, after.bandwidth);
  console.log(`ceilings used:   FMA peak ${peak.toFixed(1)} GFLOP/s (all threads, register-only FMA loop, ${info.kernels} path)`);
  console.log(`                 read bandwidth ${bandwidth.toFixed(1)} GB/s (all threads, streaming read of 1 GiB, best of 5)\n`);
  for (const row of results.slice(1)) {
    if (row[4] !== '') row[5] = pct(Number(row[4]), peak);
    if (row[6] !== '') row[7] = pct(Number(row[6]), bandwidth);
  }
  table(results);
  console.log('\ngemv rows: one matrix re-read each run (it may sit in the L3 cache); "gemv streaming" rotates');
  console.log('over matrices larger than the cache together, the case of a real decode step.');

  if (comparePaths) {
    // Each path against its own FMA loop (same ISA) and against the machine ceiling above.
    console.log('\nGEMM paths (f32 weights, M=256 K=4096 N=4096):');
    const rows = [['path', 'ms', 'GFLOP/s', 'path FMA peak', '% path peak', '% machine peak']];
    const previous = info.kernels;
    const x = t32([256, 4096], fillF32(256 * 4096, 9));
    const w = weights.get('4096x4096')?.f32 ?? t32([4096, 4096], fillF32(4096 * 4096, 8));
    for (const p of ['avx512', 'avx2', 'portable']) {
      try {
        addon.setCpuKernels(p);
      } catch {
        continue;
      }
      const [pk] = await addon.runOp('cpu', 'peak_flops', [], { seconds: 1 });
      const pathPeak = new Float32Array(pk.data)[0];
      const s = await time('linear', [x, w], {}, { iterations: p === 'portable' ? 1 : 5 });
      const flops = (2 * 256 * 4096 * 4096) / s / 1e9;
      rows.push([p, (s * 1e3).toFixed(2), flops.toFixed(1), pathPeak.toFixed(1), pct(flops, pathPeak), pct(flops, peak)]);
    }
    addon.setCpuKernels(previous);
    table(rows);
  }
}
