// Loads the native addon (a prebuild from prebuilds/ or the local build/) and types its surface.
// Everything here is internal: the public API wraps it with validation and friendlier types.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { DType } from './tensor.js';

export interface NativeTensor {
  dtype: DType;
  shape: number[];
  data: ArrayBuffer;
}

export interface NativeTensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
}

export interface NativeCheckpoint {
  list(): NativeTensorInfo[];
  read(name: string): NativeTensor;
  metadata(): Record<string, string>;
}

export interface NativeCpuInfo {
  threads: number;
  model: string;
  features: string[];
  kernels: string;
}

export interface NativeCudaDevice {
  index: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
  freeMemory: number;
  multiprocessors: number;
}

export interface NativeCudaInfo {
  available: boolean;
  reason?: string;
  driverVersion?: number;
  runtimeVersion?: number;
  devices: NativeCudaDevice[];
}

export interface NativeTensorInput {
  dtype: DType;
  shape: readonly number[];
  data: ArrayBufferView | ArrayBuffer;
}

export interface NativeAddon {
  devices(): { cpu: NativeCpuInfo; cuda: NativeCudaInfo };
  openCheckpoint(path: string): Promise<NativeCheckpoint>;
  // Runs one backend operator on host tensors (the operator tests and benchmarks use it).
  // `inputs` may hold null for an optional input; see native/binding/ops.cc for ops and attrs.
  runOp(
    device: string,
    op: string,
    inputs: (NativeTensorInput | null)[],
    attrs: Record<string, unknown>,
  ): Promise<NativeTensor[]>;
  // Binds the op once, then runs it `iterations` times; resolves with the seconds of each run.
  timeOp(
    device: string,
    op: string,
    inputs: (NativeTensorInput | null)[],
    attrs: Record<string, unknown>,
    iterations: number,
  ): Promise<number[]>;
  // Switches the CPU GEMM path ('avx512' | 'avx2' | 'portable') for later ops; returns the previous
  // one. Throws when this CPU or build lacks the path.
  setCpuKernels(path: string): string;
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let cached: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    const load = require('node-gyp-build') as (dir: string) => unknown;
    cached = load(packageRoot) as NativeAddon;
  }
  return cached;
}
