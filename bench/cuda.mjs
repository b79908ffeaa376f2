// npm run bench -- cuda [--device cuda:N] [--quick] [--no-model] [--preset vargpt-v1] [--dtype bf16]
//
// CUDA backend benchmarks, each figure beside the device ceiling it should be read against:
// - mma peak:  register-only mma.sync m16n8k16 bf16 loop (native peak_flops op, kind mma_bf16) ->
//              the ceiling of the tensor-core GEMM. The GEMM multiplies each f32 activation as
//              three exact bf16 terms (accuracy of an f32 GEMM), so its own ceiling is a third of
//              this; both percentages are printed.
// - FFMA peak: register-only f32 FMA loop (kind fma_f32) -> the ceiling of the f32-weight GEMM,
//              conv2d and attention (CUDA cores).
// - read bw:   streaming 16-byte reads of a 1 GiB device buffer -> the ceiling of the GEMV (decode)
//              and other weight-streaming kernels.
// Then the end-to-end model on the device: bench/model.mjs on a synthesized full-size checkpoint
// (`vargpt synth --preset vargpt-v1 --dtype bf16`, made once under bench/out/presets): prefill and
// decode tokens/s of the 7B LLM, one 256x256 text-to-image end to end and per stage, and the
// device memory in use. --no-model skips it (the synthesized checkpoint is ~15 GB).
//
// The default build (node-gyp) has no CUDA library: build with `npm run build:cuda` (or set
// VARGPT_ADDON_PATH to a cmake-js build). Without a usable device this prints why and exits 0.
import { bf16Of, fillF32, loadAddon, median, t32 } from './common.mjs';

const pct = (r) => `${(100 * r).toFixed(0)}%`;

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => (c < 2 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

function parseArgs(args) {
  const opts = { device: 'cuda', quick: false, model: true, preset: 'vargpt-v1', dtype: 'bf16' };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = () => {
      if (i + 1 >= args.length) throw new Error(`${a} needs a value`);
      return args[++i];
    };
    if (a === '--device') opts.device = next();
    else if (a === '--quick') opts.quick = true;
    else if (a === '--no-model') opts.model = false;
    else if (a === '--preset') opts.preset = next();
    else if (a === '--dtype') opts.dtype = next();
    else throw new Error(`unknown option ${a}`);
  }
  return opts;
}

export async function run(args = []) {
  const opts = parseArgs(args);
  let addon;
  try {
    addon = loadAddon();
  } catch (e) {
    console.log(`cuda bench skipped: the native addon could not be loaded (${String(e.message).split('\n')[0]}); build it with \`npm run build:cuda\``);
    return;
  }
  const cuda = addon.devices().cuda;
  const index = opts.device === 'cuda' ? 0 : Number(opts.device.slice(5));
  const dev = cuda.devices.find((d) => d.index === index);
  if (!cuda.available || !dev || Number(dev.computeCapability.split('.')[0]) < 8) {
    const why = !cuda.available ? cuda.reason : !dev ? `no device ${opts.device}` : `${dev.name} has compute capability ${dev.computeCapability} (8.0+ needed)`;
    console.log(`cuda bench skipped: CUDA unavailable: ${why}`);
    return;
  }
  const device = opts.device;
  console.log(`${device}: ${dev.name}, compute capability ${dev.computeCapability}, ${dev.multiprocessors} SMs, ` +
    `${(dev.totalMemory / 2 ** 30).toFixed(1)} GiB; driver ${cuda.driverVersion}, runtime ${cuda.runtimeVersion}`);

  const probe = async (op, attrs) => new Float32Array((await addon.runOp(device, op, [], attrs))[0].data)[0];
  const mmaPeak = await probe('peak_flops', { seconds: 1, kind: 'mma_bf16' });
  const fmaPeak = await probe('peak_flops', { seconds: 1, kind: 'fma_f32' });
  const readBw = await probe('read_bandwidth', { bytes: 1 << 30, iterations: 10 });
  console.log(`ceilings: bf16 mma ${(mmaPeak / 1e3).toFixed(1)} TFLOP/s, FFMA ${(fmaPeak / 1e3).toFixed(1)} TFLOP/s, ` +
    `read bandwidth ${readBw.toFixed(0)} GB/s (1 GiB buffer, best of 10)\n`);

  // Median seconds of an op bound once (inputs uploaded once, then run on the device).
  const time = async (op, inputs, attrs, minSeconds = 0.3) => {
    const [first] = await addon.timeOp(device, op, inputs, attrs, 2);
    const n = Math.max(5, Math.min(200, Math.ceil(minSeconds / Math.max(first, 1e-6))));
    return median(await addon.timeOp(device, op, inputs, attrs, n));
  };

  const rows = [['kernel', 'shape', 'dtype', 'ms', 'TFLOP/s', '% mma', '% mma/3', '% FFMA', 'GB/s', '% bw']];
  const compute = (label, shape, dtype, s, flops) => {
    const tf = flops / s / 1e12;
    // int8 / q4 run dp4a on the CUDA cores, whose peak is not probed: no percentage.
    const quantized = dtype === 'int8' || dtype === 'q4';
    const tc = dtype !== 'f32' && !quantized;
    rows.push([label, shape, dtype, (s * 1e3).toFixed(3), tf.toFixed(2), tc ? pct((tf * 1e3) / mmaPeak) : '', tc ? pct((3 * tf * 1e3) / mmaPeak) : '', tc || quantized ? '' : pct((tf * 1e3) / fmaPeak), '', '']);
  };
  const stream = (label, shape, dtype, s, flops, bytes) => {
    rows.push([label, shape, dtype, (s * 1e3).toFixed(3), (flops / s / 1e12).toFixed(3), '', '', '', (bytes / s / 1e9).toFixed(0), pct(bytes / s / 1e9 / readBw)]);
  };

  // ---- GEMM (linear): LLM shapes from decode (M = 1, 16: weight streaming) to prefill, with
  // bf16, f32, int8 and q4 weights (linear_q8 / linear_q4 quantize the f32 weights once, when bound).
  const shapes = opts.quick ? [[4096, 11008]] : [[4096, 4096], [4096, 11008], [11008, 4096]];
  const Ms = opts.quick ? [1, 256] : [1, 16, 256, 595, 2048];
  for (const [K, N] of shapes) {
    const wf = fillF32(N * K, K + N);
    const weights = { f32: t32([N, K], wf), bf16: { dtype: 'bf16', shape: [N, K], data: bf16Of(wf) } };
    for (const M of Ms) {
      const x = t32([M, K], fillF32(M * K, M));
      for (const dtype of ['bf16', 'f32', 'int8', 'q4']) {
        const op = dtype === 'int8' ? 'linear_q8' : dtype === 'q4' ? 'linear_q4' : 'linear';
        const s = await time(op, [x, weights[dtype] ?? weights.f32], {});
        const flops = 2 * M * N * K;
        // Weight bytes per call: int8 adds an f32 scale per row, q4 an f16 scale per 32 weights.
        const bytes = { f32: 4 * N * K, bf16: 2 * N * K, int8: N * K + 4 * N, q4: N * K / 2 + N * K / 16 }[dtype];
        if (M <= 16) stream('gemv', `M=${M} K=${K} N=${N}`, dtype, s, flops, bytes);
        else compute('gemm', `M=${M} K=${K} N=${N}`, dtype, s, flops);
      }
    }
  }
  // The LM head: 262 MB of bf16 weights, far beyond L2, streamed once per decoded token.
  {
    const K = 4096, N = 32064;
    const w = { dtype: 'bf16', shape: [N, K], data: bf16Of(fillF32(N * K, 5)) };
    const s = await time('linear', [t32([1, K], fillF32(K, 6)), w], {});
    stream('gemv (LM head)', `M=1 K=${K} N=${N}`, 'bf16', s, 2 * N * K, 2 * N * K);
  }

  // ---- attention (CUDA cores)
  const attn = [
    ['attention causal prefill', 1, 595, 595, 32, 32, 128, true],
    ['attention decode', 1, 1, 2048, 32, 32, 128, true],
    ['attention VAR last scale, cfg', 2, 256, 680, 30, 30, 64, false],
    ['attention VQ-VAE mid block', 1, 256, 256, 1, 1, 512, false],
  ];
  for (const [label, B, Lq, Lk, Hq, Hkv, D, causal] of opts.quick ? attn.slice(0, 2) : attn) {
    const q = t32([B, Lq, Hq * D], fillF32(B * Lq * Hq * D, 3));
    const k = t32([B, Lk, Hkv * D], fillF32(B * Lk * Hkv * D, 4));
    const v = t32([B, Lk, Hkv * D], fillF32(B * Lk * Hkv * D, 5));
    const attrs = { qHeads: Hq, kvHeads: Hkv, headDim: D, scale: D ** -0.5, causal };
    let visible = 0;
    for (let i = 0; i < Lq; i++) visible += causal ? Lk - Lq + i + 1 : Lk;
    const s = await time('attention', [q, k, v], attrs);
    const shape = `B=${B} Lq=${Lq} Lk=${Lk} H=${Hq}/${Hkv} D=${D}`;
    if (Lq === 1) stream(label, shape, 'f32', s, 4 * B * Hq * D * visible, 2 * B * Lk * Hkv * D * 4);
    else compute(label, shape, 'f32', s, 4 * B * Hq * D * visible);
  }

  // ---- conv2d (VQ-VAE decoder shapes, implicit GEMM on CUDA cores)
  const convs = [
    ['conv 3x3', 512, 512, 32, 3, 1, 1],
    ['conv 3x3', 128, 128, 256, 3, 1, 1],
    ['conv 1x1', 256, 128, 128, 1, 1, 0],
  ];
  for (const [label, C, O, HW, k, stride, padding] of opts.quick ? convs.slice(0, 1) : convs) {
    const x = t32([1, C, HW, HW], fillF32(C * HW * HW, 6));
    const w = t32([O, C, k, k], fillF32(O * C * k * k, 7));
    const s = await time('conv2d', [x, w], { stride, padding });
    compute(label, `${C}->${O} at ${HW}x${HW}`, 'f32', s, 2 * O * C * k * k * HW * HW);
  }
  table(rows);

  const [mem] = await addon.runOp(device, 'device_memory', [], {});
  const m = new BigInt64Array(mem.data);
  const gib = (v) => (Number(v) / 2 ** 30).toFixed(2);
  console.log(`\nkernel bench backend: ${gib(m[0])} GiB in tensors, ${gib(m[1])} GiB cached, peak ${gib(m[2])} GiB; ` +
    `device ${gib(m[4] - m[3])} of ${gib(m[4])} GiB in use`);

  if (!opts.model) return;
  console.log(`\nend to end: bench/model.mjs --preset ${opts.preset} --dtype ${opts.dtype} --device ${device}\n`);
  const model = await import('./model.mjs');
  await model.run(['--preset', opts.preset, '--dtype', opts.dtype, '--device', device, '--tokens', opts.quick ? '16' : '64']);
}
