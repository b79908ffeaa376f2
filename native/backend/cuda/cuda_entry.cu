// Entry points of libvargpt_cuda.so (see ../cuda_loader.h): device discovery and backend
// creation. Every CUDA call is checked; failures come back as reasons, never as aborts.
#include <cuda_runtime.h>

#include <string>

#include "../cuda_loader.h"

#define VARGPT_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

std::string describe(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

}  // namespace

VARGPT_CUDA_EXPORT int vargpt_cuda_abi() { return VARGPT_CUDA_ABI_VERSION; }

VARGPT_CUDA_EXPORT void vargpt_cuda_query(vargpt::CudaInfo* info) {
  *info = vargpt::CudaInfo{};
  cudaRuntimeGetVersion(&info->runtime_version);
  cudaError_t status = cudaDriverGetVersion(&info->driver_version);
  if (status != cudaSuccess || info->driver_version == 0) {
    info->reason = "no NVIDIA driver found (libcuda could not be loaded)";
    return;
  }
  if (info->driver_version < info->runtime_version) {
    info->reason = "the NVIDIA driver supports CUDA " + std::to_string(info->driver_version / 1000) + "." +
                   std::to_string(info->driver_version % 1000 / 10) + " but this build needs CUDA " +
                   std::to_string(info->runtime_version / 1000) + "." + std::to_string(info->runtime_version % 1000 / 10);
    return;
  }
  int count = 0;
  status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    info->reason = "cudaGetDeviceCount failed (" + describe(status) + ")";
    return;
  }
  if (count == 0) {
    info->reason = "the driver reports no CUDA devices";
    return;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    status = cudaGetDeviceProperties(&prop, i);
    if (status != cudaSuccess) {
      info->reason = "cudaGetDeviceProperties(" + std::to_string(i) + ") failed (" + describe(status) + ")";
      info->devices.clear();
      return;
    }
    vargpt::CudaDeviceInfo device;
    device.index = i;
    device.name = prop.name;
    device.compute_major = prop.major;
    device.compute_minor = prop.minor;
    device.total_memory = prop.totalGlobalMem;
    device.multiprocessors = prop.multiProcessorCount;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      device.free_memory = free_bytes;
    info->devices.push_back(device);
  }
  info->available = true;
}

VARGPT_CUDA_EXPORT vargpt::Backend* vargpt_cuda_create(int device, std::string* error) {
  vargpt::CudaInfo info;
  vargpt_cuda_query(&info);
  if (!info.available) {
    *error = info.reason;
    return nullptr;
  }
  if (device < 0 || device >= static_cast<int>(info.devices.size())) {
    *error = "no CUDA device " + std::to_string(device) + " (found " + std::to_string(info.devices.size()) + ")";
    return nullptr;
  }
  if (info.devices[device].compute_major < 8) {
    *error = info.devices[device].name + " has compute capability " + std::to_string(info.devices[device].compute_major) +
             "." + std::to_string(info.devices[device].compute_minor) + "; the CUDA backend needs 8.0 or newer";
    return nullptr;
  }
  *error = "this version's CUDA library probes devices only; its operator kernels are not built yet";
  return nullptr;
}
