// The CUDA backend lives in a separate shared library (libvargpt_cuda.so, built by
// `npm run build:cuda`) opened at run time, so one install of the addon works on machines with
// no GPU, no driver or no CUDA build at all. This header is the contract between the two.
#pragma once

#include <memory>
#include <string>

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
}

namespace vargpt {

// Loads the CUDA library once; the reason it is unusable otherwise.
struct CudaLibrary {
  vargpt_cuda_query_fn query = nullptr;
  vargpt_cuda_create_fn create = nullptr;
  std::string path;
  std::string error;  // set when the library could not be used
};
const CudaLibrary& cuda_library();

}  // namespace vargpt
