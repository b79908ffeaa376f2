export { Tensor, DTYPE_BYTES, bf16ToF32, f16ToF32, f32ToBf16, isDType, shapeSize } from './tensor.js';
export type { DType, TensorData, TensorDataMap } from './tensor.js';
export { Checkpoint } from './checkpoint.js';
export type { TensorEntry } from './checkpoint.js';
export { devices } from './devices.js';
export type { DevicesInfo, CpuDeviceInfo, CudaDeviceInfo } from './devices.js';
