// int8 weights: symmetric, one scale per output channel (row n of a Linear weight [N, K]:
// w[n, k] ≈ scale[n] · q[n, k], q in [-127, 127]). The activations are quantized per row on the fly
// (x[m, k] ≈ sx[m] · xq[m, k]), the dot products run in exact 32-bit integer arithmetic, and
// C[m, n] (+)= act(sx[m] · scale[n] · Σ_k xq[m, k] q[n, k] + bias[n]).
//
// Kernels: AVX-512 VNNI (vpdpbusd: unsigned by signed bytes, four products per 32-bit lane; the
// activations are offset by 128 to be unsigned and Σ_k q[n, k], stored with the scales, takes the
// offset back out) where the CPU has it, else portable C++. The integer sums are exact either way,
// so both paths give the same result bit for bit. Memory per weight: 1 byte (bf16: 2, f32: 4),
// which is what a memory-bound decode step reads.
#pragma once

#include <cstdint>
#include <string>

#include "../../core/dtype.h"
#include "../../core/quantize.h"
#include "gemm.h"

namespace vargpt::cpu {

struct Q8Weights {
  const int8_t* q = nullptr;  // [N, K], row stride ld
  int64_t ld = 0;
  const float* scale = nullptr;  // [N]
  const float* sum = nullptr;    // [N]: Σ_k q[n, k] (exact in f32 for K·127 < 2^24)
};

void gemm_q8(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Q8Weights& B, float* C, int64_t ldc,
             const GemmEpilogue& epilogue);

// The int8 kernel path in use: "avx512-vnni" or "portable" (follows VARGPT_CPU_KERNELS and
// set_gemm_kernels: only the avx512 and amx paths use VNNI).
std::string active_q8_kernel();

#if defined(VARGPT_HAVE_X86_KERNELS)
// gemm_q8_avx512.cc. out[m * cols + j] = Σ_k xu[m, k] q[n0 + j, k] (xu: activations + 128 as
// bytes, rows of ldx >= K bytes padded with 128) for m < rows (<= 4), j < cols (4 or 1).
void q8_dots_vnni(int rows, int cols, int64_t K, const uint8_t* xu, int64_t ldx, const int8_t* q, int64_t ldq,
                  int32_t* out);
#endif

}  // namespace vargpt::cpu
