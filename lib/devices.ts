// What each backend can offer on this machine, or exactly why it cannot.
import { native, type NativeCpuInfo, type NativeCudaInfo } from './native.js';

export type CpuDeviceInfo = NativeCpuInfo;
export type CudaDeviceInfo = NativeCudaInfo;

export interface DevicesInfo {
  cpu: CpuDeviceInfo;
  cuda: CudaDeviceInfo;
}

export function devices(): DevicesInfo {
  return native().devices();
}
