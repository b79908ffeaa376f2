// Entry points of libvargpt_cuda.so (see ../cuda_loader.h): device discovery, backend creation
// and the benchmark probes. Every CUDA call is checked; failures come back as reasons, never as
// aborts, and no exception crosses the C boundary.
#include <cuda_runtime.h>

#include <exception>
#include <string>
#include <vector>

#include "../cuda_loader.h"
#include "cuda_backend.cuh"

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
  try {
    return vargpt::cuda::create_cuda_backend(device).release();
  } catch (const std::exception& e) {
    *error = e.what();
  } catch (...) {
    *error = "creating the CUDA backend failed with an unknown exception";
  }
  return nullptr;
}

VARGPT_CUDA_EXPORT int vargpt_cuda_probe(vargpt::Backend* backend, const char* name, const double* args, int nargs,
                                         double* out, int max_out, std::string* error) {
  try {
    const std::vector<double> values =
        vargpt::cuda::cuda_probe(*backend, name, std::vector<double>(args, args + (nargs > 0 ? nargs : 0)));
    if (static_cast<int>(values.size()) > max_out) {
      *error = std::string("cuda probe ") + name + " returns " + std::to_string(values.size()) + " values, room for " +
               std::to_string(max_out);
      return -1;
    }
    for (size_t i = 0; i < values.size(); ++i) out[i] = values[i];
    return static_cast<int>(values.size());
  } catch (const std::exception& e) {
    *error = e.what();
  } catch (...) {
    *error = std::string("cuda probe ") + name + " failed with an unknown exception";
  }
  return -1;
}
