// Whether the loaded addon can run the CUDA tests, and the one-line reason when it cannot.
//
// The tests run against whatever addon lib/native.ts loads. The default build (node-gyp,
// build/Release) has no CUDA library, so on a GPU machine build it with cmake-js and point the
// tests at it:
//   npm run build:cuda -- --out build-cuda
//   VARGPT_ADDON_PATH=build-cuda/Release/vargpt.node npx vitest run test/ops/cuda.test.ts test/vargpt-v1/model-cuda.test.ts
import { native } from '../../lib/native.js';

const info = native().devices().cuda;
const capable = info.devices.filter((d) => Number(d.computeCapability.split('.')[0]) >= 8);

export const cudaAvailable = info.available && capable.length > 0;

export const cudaSkipReason = cudaAvailable
  ? ''
  : info.available
    ? `no CUDA device of compute capability 8.0 or newer (found ${info.devices.map((d) => `${d.name} ${d.computeCapability}`).join(', ')})`
    : `CUDA unavailable: ${info.reason ?? 'no reason given'}`;

// Appended to describe titles, so a skipped run says why on one line.
export const cudaTitle = (title: string): string => (cudaAvailable ? `${title} [${capable[0]!.name}]` : `${title} [skipped: ${cudaSkipReason}]`);
