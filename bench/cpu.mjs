// npm run bench -- cpu [--quick] [--paths]
//
// CPU kernel benchmarks, each figure printed beside the ceiling it should be read against:
// - FMA peak:  all-thread register-only FMA loop (native peak_flops op: independent FMA chains,
//              no memory traffic, every pool thread at once, the dispatched ISA) -> the GFLOP/s
//              ceiling of GEMM, conv and attention.
// - bandwidth: all-thread streaming read of a 1 GiB buffer (native read_bandwidth op) -> the GB/s
//              ceiling of weight streaming (GEMV, M = 1).
// Shared cloud machines drift by tens of percent within minutes (other tenants, frequency), so a
// ceiling measured once at the start says little about a kernel timed five minutes later. Each
// row therefore alternates its kernel with its ceiling for a few rounds and reports the median
// of the per-round ratios, next to the median figures themselves.
// Kernels are timed with timeOp: the op is bound once (inputs uploaded, outputs allocated) and
// run repeatedly on the worker thread; a round's time is the median of its runs after a warm-up.
// - tile peak: on the amx path, the all-thread register-only AMX tile-product loop (peak_flops,
//              kind amx_bf16). A GEMM on tiles multiplies three bf16 terms of every f32
//              activation with bf16 weights (six term products with f32 weights; gemm_amx.cc),
//              so its ceiling in useful f32 FLOP/s is the tile peak / 3 (bf16) or / 6 (f32).
// --paths also times one GEMM on every GEMM path (amx / avx512 / avx2 / portable), each against
// the peak of its own instruction set.
import { bf16Of, fillF32, loadAddon, median, t32 } from './common.mjs';

const addon = loadAddon();

async function peakNow(seconds = 0.25, kind = 'fma_f32') {
  const [t] = await addon.runOp('cpu', 'peak_flops', [], { seconds, kind });
  return new Float32Array(t.data)[0];
}

// The ceiling of one GEMM on the active path: the FMA loop, or on the amx path (bf16 weights
// above 8 rows, f32 weights from 128 rows and K >= 128: gemm.h) the tile peak over the term products.
function gemmCeiling(path, dtype, M, K) {
  const onTiles = path === 'amx' && ((dtype === 'bf16' && M > 8) || (dtype === 'f32' && M >= 128 && K >= 128));
  if (!onTiles) return { label: 'FMA', now: () => peakNow() };
  const terms = dtype === 'bf16' ? 3 : 6;
  return { label: `tiles/${terms}`, now: async () => (await peakNow(0.25, 'amx_bf16')) / terms };
}

async function bandwidthNow(iterations = 1) {
  const [t] = await addon.runOp('cpu', 'read_bandwidth', [], { bytes: 1 << 30, iterations });
  return new Float32Array(t.data)[0];
}

// Median seconds of one op over ~minSeconds of runs after a warm-up run.
async function timeOnce(op, inputs, attrs, minSeconds) {
  const [first] = await addon.timeOp('cpu', op, inputs, attrs, 1);
  const n = Math.max(3, Math.min(50, Math.ceil(minSeconds / Math.max(first, 1e-6))));
  return median(await addon.timeOp('cpu', op, inputs, attrs, n));
}

// Alternates `measure()` (returns seconds) with a ceiling measurement; returns median seconds,
// median ceiling and the median of the per-round (work / seconds) / ceiling ratios.
async function paired(measure, work, ceilingNow, rounds) {
  const secs = [], ceilings = [], ratios = [];
  for (let r = 0; r < rounds; r++) {
    const c = await ceilingNow();
    const s = await measure();
    secs.push(s);
    ceilings.push(c);
    ratios.push(work / s / 1e9 / c);
  }
  return { seconds: median(secs), ceiling: median(ceilings), ratio: median(ratios) };
}

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => (c < 2 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

const pct = (ratio) => `${(100 * ratio).toFixed(0)}%`;

export async function run(args = []) {
  const quick = args.includes('--quick');
  const comparePaths = args.includes('--paths');
  const rounds = quick ? 2 : 3;
  const info = addon.devices().cpu;
  console.log(`cpu: ${info.model}, ${info.threads} threads, kernels ${info.kernels}, features ${info.features.join(' ')}`);
  const startPeak = await peakNow(2);
  const startBw = await bandwidthNow(5);
  const tilePeak = info.kernels === 'amx' ? `, AMX tile peak ${(await peakNow(2, 'amx_bf16')).toFixed(0)} GFLOP/s (bf16 products)` : '';
  console.log(`at start: FMA peak ${startPeak.toFixed(1)} GFLOP/s (2 s)${tilePeak}, read bandwidth ${startBw.toFixed(1)} GB/s (best of 5)`);
  console.log('each row: median of rounds alternating the kernel with its ceiling (FMA peak or read bandwidth)\n');

  const rows = [['kernel', 'shape', 'dtype', 'ms', 'GFLOP/s', 'peak', 'of', '% peak', 'GB/s', 'read bw', '% bw']];
  const compute = async (label, shape, dtype, op, inputs, attrs, flops, minSeconds = 0.6, ceiling = null) => {
    const c = ceiling ?? { label: 'FMA', now: () => peakNow() };
    const r = await paired(() => timeOnce(op, inputs, attrs, minSeconds), flops, c.now, rounds);
    rows.push([label, shape, dtype, (r.seconds * 1e3).toFixed(2), (flops / r.seconds / 1e9).toFixed(1), r.ceiling.toFixed(1), c.label, pct(r.ratio), '', '', '']);
  };
  const stream = async (label, shape, dtype, measure, bytes, flops) => {
    const r = await paired(measure, bytes, () => bandwidthNow(1), rounds);
    rows.push([label, shape, dtype, (r.seconds * 1e3).toFixed(2), (flops / r.seconds / 1e9).toFixed(1), '', '', '', (bytes / r.seconds / 1e9).toFixed(1), r.ceiling.toFixed(1), pct(r.ratio)]);
  };

  // ---- GEMM (linear), compute-bound sizes
  const shapes = quick ? [[4096, 11008]] : [[1920, 1920], [4096, 4096], [4096, 11008], [11008, 4096]];
  const Ms = quick ? [16, 256] : [16, 256, 680];
  for (const [K, N] of shapes) {
    const wf = fillF32(N * K, K + N);
    const weights = { f32: t32([N, K], wf), bf16: { dtype: 'bf16', shape: [N, K], data: bf16Of(wf) } };
    for (const M of Ms) {
      const x = t32([M, K], fillF32(M * K, M));
      for (const dtype of ['f32', 'bf16'])
        await compute('gemm', `M=${M} K=${K} N=${N}`, dtype, 'linear', [x, weights[dtype]], {}, 2 * M * N * K, M >= 256 ? 1 : 0.5,
          gemmCeiling(info.kernels, dtype, M, K));
    }
  }

  // ---- GEMV (M = 1) streaming weights from memory: a decode step reads every weight once, from
  // DRAM, not from cache. Rotate over distinct matrices that together hold 1 GiB (more than the
  // L3 of big server parts), so none is cached when it comes round again.
  {
    const K = 4096, N = 11008;
    const x = t32([1, K], fillF32(K, 11));
    for (const dtype of ['bf16', 'f32']) {
      const copies = dtype === 'bf16' ? 12 : 6; // 1 GiB either way, like the read probe
      const mats = [];
      for (let c = 0; c < copies; c++) {
        const wf = fillF32(N * K, 100 + c);
        mats.push(dtype === 'f32' ? t32([N, K], wf) : { dtype, shape: [N, K], data: bf16Of(wf) });
      }
      for (const w of mats) await addon.timeOp('cpu', 'linear', [x, w], {}, 1);
      const bytesEach = N * K * (dtype === 'f32' ? 4 : 2);
      const measure = async () => {
        let seconds = 0;
        for (const w of mats) seconds += (await addon.timeOp('cpu', 'linear', [x, w], {}, 1))[0];
        return seconds / copies;
      };
      await stream('gemv (weights from DRAM)', `M=1 K=${K} N=${N}, ${copies} matrices`, dtype, measure, bytesEach, 2 * N * K);
    }
  }

  // ---- attention
  const attn = [
    ['attention causal prefill', 1, 595, 595, 32, 32, 128, true],
    ['attention VAR last scale, cfg', 2, 256, 680, 30, 30, 64, false],
    ['attention VQ-VAE mid block', 1, 256, 256, 1, 1, 512, false],
    ['attention decode GQA 32/8', 1, 1, 2048, 32, 8, 128, true],
  ];
  for (const [label, B, Lq, Lk, Hq, Hkv, D, causal] of quick ? attn.slice(0, 2) : attn) {
    const q = t32([B, Lq, Hq * D], fillF32(B * Lq * Hq * D, 3));
    const k = t32([B, Lk, Hkv * D], fillF32(B * Lk * Hkv * D, 4));
    const v = t32([B, Lk, Hkv * D], fillF32(B * Lk * Hkv * D, 5));
    const attrs = { qHeads: Hq, kvHeads: Hkv, headDim: D, scale: D ** -0.5, causal };
    let visible = 0; // two matmuls (q·k and p·v) over the visible keys
    for (let i = 0; i < Lq; i++) visible += causal ? Lk - Lq + i + 1 : Lk;
    const shape = `B=${B} Lq=${Lq} Lk=${Lk} H=${Hq}/${Hkv} D=${D}`;
    if (Lq === 1) {
      // Decode reads the whole K/V cache for one query: a streaming kernel, read against bandwidth.
      const bytes = 2 * B * Lk * Hkv * D * 4;
      await stream(label, shape, 'f32', () => timeOnce('attention', [q, k, v], attrs, 0.5), bytes, 4 * B * Hq * D * visible);
    } else {
      await compute(label, shape, 'f32', 'attention', [q, k, v], attrs, 4 * B * Hq * D * visible);
    }
  }

  // ---- conv (VQ-VAE and ViT shapes). Stride-1 3x3 layers with enough channels and pixels run
  // as Winograd F(4x4, 3x3) (conv_winograd.h): their rate counts the direct convolution's FLOPs,
  // so it is an effective rate and may exceed the FMA peak (the multiplies done are ~4x fewer).
  const convs = [
    ['conv 3x3 (direct)', 640, 640, 16, 3, 1, 1],
    ['conv 3x3 (Winograd, eff.)', 160, 160, 256, 3, 1, 1],
    ['conv 3x3 (Winograd, eff.)', 320, 320, 64, 3, 1, 1],
    ['conv 3x3 stride 2', 160, 160, 256, 3, 2, [0, 1, 0, 1]],
    ['conv 1x1', 640, 320, 32, 1, 1, 0],
    ['conv 14x14 stride 14', 3, 1024, 336, 14, 14, 0],
  ];
  for (const [label, C, O, HW, k, stride, padding] of quick ? convs.slice(0, 1) : convs) {
    const x = t32([1, C, HW, HW], fillF32(C * HW * HW, 6));
    const w = t32([O, C, k, k], fillF32(O * C * k * k, 7));
    const pads = Array.isArray(padding) ? padding : [padding, padding, padding, padding];
    const Ho = Math.floor((HW + pads[0] + pads[1] - k) / stride) + 1;
    const Wo = Math.floor((HW + pads[2] + pads[3] - k) / stride) + 1;
    await compute(label, `${C}->${O} at ${HW}x${HW}`, 'f32', 'conv2d', [x, w], { stride, padding }, 2 * O * C * k * k * Ho * Wo);
  }
  table(rows);

  if (comparePaths) {
    console.log('\nGEMM paths (M=256 K=4096 N=4096), each against the peak of its own instruction set:');
    const pathRows = [['path', 'dtype', 'ms', 'GFLOP/s', 'path peak', 'of', '% path peak']];
    const previous = info.kernels;
    const x = t32([256, 4096], fillF32(256 * 4096, 9));
    const wf = fillF32(4096 * 4096, 8);
    const weights = { f32: t32([4096, 4096], wf), bf16: { dtype: 'bf16', shape: [4096, 4096], data: bf16Of(wf) } };
    const flops = 2 * 256 * 4096 * 4096;
    for (const p of ['amx', 'avx512', 'avx2', 'portable']) {
      if (!info.kernelPaths.includes(p)) continue; // not on this CPU or build
      addon.setCpuKernels(p);
      for (const dtype of p === 'amx' || p === 'avx512' ? ['f32', 'bf16'] : ['f32']) {
        const c = gemmCeiling(p, dtype, 256, 4096);
        const r = await paired(() => timeOnce('linear', [x, weights[dtype]], {}, p === 'portable' ? 0.1 : 0.6), flops, c.now, 2);
        pathRows.push([p, dtype, (r.seconds * 1e3).toFixed(2), (flops / r.seconds / 1e9).toFixed(1), r.ceiling.toFixed(1), c.label, pct(r.ratio)]);
      }
    }
    addon.setCpuKernels(previous);
    table(pathRows);
  }
}
