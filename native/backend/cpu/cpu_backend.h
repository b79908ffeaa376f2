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
// The GEMM path chosen at run time: "amx", "avx512", "avx2" or "portable".
std::string cpu_kernel_path();
// The int8 GEMM's kernel in use ("avx512-vnni" or "portable", backend/cpu/gemm_q8.h).
std::string cpu_int8_kernel_path();
// The GEMM paths this CPU and build can run, best first.
std::vector<std::string> cpu_kernel_paths();
// Why the AMX path cannot run here ("" when it can).
std::string cpu_amx_unavailable_reason();
// Switches the GEMM path ("amx", "avx512", "avx2", "portable") for every later op, so tests and
// benchmarks can compare paths in one process; throws if this CPU or build lacks it.
void set_cpu_kernel_path(const std::string& path);

}  // namespace vargpt
