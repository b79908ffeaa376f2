// npm run bench -- quant-kernels [--k 4096] [--n 16384] [--prefill 128] [--seconds 1]
// The quantized GEMMs alone, on every GEMM path this CPU and build can run (each path runs the
// int8/q4 kernel it selects: AVX-512 VNNI, AVX2 or portable; `int8 kernel` names it), beside the
// bf16 linear on the same path:
// - decode (one row, M = 1): weights [N, K] far larger than the caches, so the time is the time to
//   stream them: effective GB/s of weight bytes (int8: 1 byte and its scale per row; q4: 0.5625
//   byte per weight with the f16 group scales; bf16: 2 bytes) beside the all-thread read
//   bandwidth measured in the same round;
// - prefill (--prefill rows): GOP/s (2 M N K per call), compute-bound.
// Each op is bound once (weights quantized and uploaded, outputs allocated) and timed with timeOp;
// medians after a warm-up run.
import { bf16Of, fmt, loadAddon, median, pseudo, table } from './common.mjs';

const addon = loadAddon();

function parse(args) {
  const o = { k: 4096, n: 16384, prefill: 128, seconds: 1 };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => Number(args[++i]);
    if (a === '--k') o.k = next();
    else if (a === '--n') o.n = next();
    else if (a === '--prefill') o.prefill = next();
    else if (a === '--seconds') o.seconds = next();
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

async function timeOp(op, inputs, seconds) {
  const [first] = await addon.timeOp('cpu', op, inputs, {}, 1);
  const n = Math.max(3, Math.min(100, Math.ceil(seconds / Math.max(first, 1e-6))));
  return median(await addon.timeOp('cpu', op, inputs, {}, n));
}

async function bandwidthNow() {
  const [t] = await addon.runOp('cpu', 'read_bandwidth', [], { bytes: 1 << 30, iterations: 1 });
  return new Float32Array(t.data)[0];
}

export async function run(args) {
  const o = parse(args);
  const { k: K, n: N, prefill: M } = o;
  const weights = { dtype: 'bf16', shape: [N, K], data: bf16Of(pseudo(N * K, 11, -0.05, 0.05)) };
  const x1 = { dtype: 'f32', shape: [1, K], data: pseudo(K, 12, -1, 1) };
  const xM = { dtype: 'f32', shape: [M, K], data: pseudo(M * K, 13, -1, 1) };
  const bytes = { linear: 2 * N * K, linear_q8: N * K + 8 * N, linear_q4: N * (Math.ceil(K / 64) * 32) + N * (Math.ceil(K / 64) * 2) * 2 };
  const cpu = addon.devices().cpu;
  console.log(`cpu ${cpu.model}, ${cpu.threads} threads; weights [${N}, ${K}] (bf16 ${fmt(bytes.linear / 1e6, 0)} MB, int8 ${fmt(bytes.linear_q8 / 1e6, 0)} MB, q4 ${fmt(bytes.linear_q4 / 1e6, 0)} MB); prefill ${M} rows`);
  const initial = cpu.kernels;
  const rows = [['path', 'op', 'int8 kernel', 'decode ms', 'decode GB/s', 'read GB/s', 'of bandwidth', `prefill ms (${M} rows)`, 'prefill GOP/s']];
  try {
    for (const path of cpu.kernelPaths) {
      addon.setCpuKernels(path);
      const kernel = addon.devices().cpu.int8Kernels;
      for (const op of ['linear', 'linear_q8', 'linear_q4']) {
        const bw = await bandwidthNow();
        const t1 = await timeOp(op, [x1, weights, null], o.seconds);
        const tM = await timeOp(op, [xM, weights, null], o.seconds);
        const gbs = bytes[op] / t1 / 1e9;
        rows.push([path, op === 'linear' ? 'bf16 linear' : op, op === 'linear' ? '-' : kernel, fmt(t1 * 1e3, 2), fmt(gbs, 1), fmt(bw, 1), `${Math.round((100 * gbs) / bw)}%`, fmt(tM * 1e3, 1), fmt((2 * M * N * K) / tM / 1e9, 0)]);
      }
    }
  } finally {
    addon.setCpuKernels(initial);
  }
  table(rows);
}
