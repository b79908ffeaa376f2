// The CUDA backend lives in a separate shared library (libvargpt_cuda.so, built by
// `npm run build:cuda`) opened at run time, so one install of the addon works on machines with
// no GPU, no driver or no CUDA build at all. This header is the contract between the two.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend.h"

// Bumped whenever the Backend interface or these entry points change, so a stale library is
// refused instead of called through a mismatched vtable.
#define VARGPT_CUDA_ABI_VERSION 1

extern "C" {
// Fills `info` (available, reason, versions, devices). Never throws.
typedef void (*vargpt_cuda_query_fn)(vargpt::CudaInfo* info);
// Creates a backend on `device`; on failure returns null and sets *error. Never throws.
typedef vargpt::Backend* (*vargpt_cuda_create_fn)(int device, std::string* error);
typedef int (*vargpt_cuda_abi_fn)();
// Optional (benchmarks): runs the named probe on a backend made by create; writes up to max_out
// values to out and returns how many, or -1 with *error set. Never throws.
typedef int (*vargpt_cuda_probe_fn)(vargpt::Backend* backend, const char* name, const double* args, int nargs,
                                    double* out, int max_out, std::string* error);
}

namespace vargpt {

// Loads the CUDA library once; the reason it is unusable otherwise.
struct CudaLibrary {
  vargpt_cuda_query_fn query = nullptr;
  vargpt_cuda_create_fn create = nullptr;
  vargpt_cuda_probe_fn probe = nullptr;  // null in libraries that have no probes
  std::string path;
  std::string error;  // set when the library could not be used
};
const CudaLibrary& cuda_library();

// Device ceilings for the benchmarks, measured on a CUDA backend ("peak_mma_bf16", "peak_fma_f32",
// "read_bandwidth", "memory"; see cuda/cuda_backend.cuh). Throws when unavailable.
std::vector<double> cuda_device_probe(Backend& backend, const std::string& name, const std::vector<double>& args);

}  // namespace vargpt
