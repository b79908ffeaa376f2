// What this machine offers: CPU threads, SIMD features and the GEMM kernel path chosen, and the
// CUDA devices -- or the exact reason CUDA cannot be used.
import type { NativeCpuInfo, NativeCudaInfo } from './native.js';
import { native } from './native.js';

export type CpuInfo = NativeCpuInfo;
export type CudaInfo = NativeCudaInfo;

export interface DeviceReport {
  cpu: CpuInfo;
  cuda: CudaInfo;
}

export function devices(): DeviceReport {
  const report = native().devices();
  return { cpu: { ...report.cpu, features: [...report.cpu.features] }, cuda: { ...report.cuda, devices: report.cuda.devices.map((d) => ({ ...d })) } };
}
