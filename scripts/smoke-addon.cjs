#!/usr/bin/env node
// Loads the addon of a package folder the way an installed package does (node-gyp-build: build/
// first, then prebuilds/<platform>-<arch>/) and runs a little native work: devices(), a threaded
// linear op checked against a float64 reference, and, given a folder, a checkpoint opened by
// memory mapping. Plain CommonJS with no other dependency, so any Node-API 8 runtime can run it,
// such as an arm64 Node under qemu-user (npm run check:platforms -- --target qemu-arm64).
//
//   node scripts/smoke-addon.cjs [PACKAGE_DIR] [CHECKPOINT_DIR]
'use strict';
const path = require('node:path');

const pkg = path.resolve(process.argv[2] || path.join(__dirname, '..'));
const checkpointDir = process.argv[3];
const load = require(require.resolve('node-gyp-build', { paths: [pkg, __dirname] }));

async function main() {
  const file = load.resolve(pkg);
  const addon = load(pkg);
  const info = addon.devices();
  console.log(`${process.platform}-${process.arch} node ${process.version}: ${path.relative(pkg, file)}`);
  console.log(`cpu: ${info.cpu.threads} threads, kernels ${info.cpu.kernels} (${info.cpu.kernelPaths.join(', ')}), features ${info.cpu.features.join(' ') || 'none'}`);

  // y = x . w^T + b on the thread pool, every output against a float64 reference.
  const M = 33, N = 47, K = 129;
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const x = Float32Array.from({ length: M * K }, random);
  const w = Float32Array.from({ length: N * K }, random);
  const b = Float32Array.from({ length: N }, random);
  const [y] = await addon.runOp(
    'cpu',
    'linear',
    [{ dtype: 'f32', shape: [M, K], data: x }, { dtype: 'f32', shape: [N, K], data: w }, { dtype: 'f32', shape: [N], data: b }],
    {},
  );
  const out = new Float32Array(y.data);
  let worst = 0;
  for (let i = 0; i < M; ++i)
    for (let j = 0; j < N; ++j) {
      let ref = b[j];
      for (let k = 0; k < K; ++k) ref += x[i * K + k] * w[j * K + k];
      worst = Math.max(worst, Math.abs(out[i * N + j] - ref));
    }
  if (!(worst < 1e-4)) throw new Error(`linear: max abs error ${worst} against the float64 reference`);
  console.log(`linear ${M}x${K} . ${N}x${K}: max abs error ${worst.toExponential(2)}`);

  if (checkpointDir) {
    const ckpt = await addon.openCheckpoint(checkpointDir);
    const tensors = ckpt.list();
    const first = ckpt.read(tensors[0].name);
    console.log(`checkpoint: ${tensors.length} tensors, ${tensors[0].name} ${first.dtype} [${first.shape.join(', ')}]`);
  }
  console.log('ok');
}

main().catch((error) => {
  console.error(error.stack || error);
  process.exit(1);
});
