// The portable CPU backend: the reference every other backend is tested against, and the
// fallback on machines without a GPU.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../backend.h"

namespace vargpt {

std::shared_ptr<Backend> create_cpu_backend();
// SIMD features detected at run time that the kernels use ("avx2", "fma", "avx512f", ...).
std::vector<std::string> cpu_kernel_features();
// The GEMM path chosen at run time: "avx512", "avx2" or "portable".
std::string cpu_kernel_path();

}  // namespace vargpt
