// CudaBackend: the Backend interface on one NVIDIA GPU and one stream. Ops are queued on the
// stream and return without waiting; synchronize() and to_host() wait. Each op forwards to the
// kernel family in its own file (cuda_ops.cuh), which validates its arguments.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../backend.h"

namespace vargpt::cuda {

// Creates the backend on `device` (compute capability 8.0 or newer); throws vargpt::Error with
// the reason otherwise.
std::unique_ptr<Backend> create_cuda_backend(int device);

// Device ceilings and memory figures for the benchmarks, measured on `backend`'s device (which
// must come from create_cuda_backend):
//   "peak_mma_bf16" [seconds]           -> [TFLOP/s of a register-only bf16 mma.sync loop]
//   "peak_fma_f32"  [seconds]           -> [TFLOP/s of a register-only FFMA loop]
//   "read_bandwidth" [bytes, iterations] -> [GB/s]
//   "memory" []                         -> [bytes in use, cached, peak, device free, device total]
std::vector<double> cuda_probe(Backend& backend, const std::string& name, const std::vector<double>& args);

}  // namespace vargpt::cuda
