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

// 4-bit weights in groups of 32 with f16 scales (core/quantize.h: quantize_q4_rows), the
// activations quantized per row to int8 as above: C[m, n] (+)= act(sx[m] · Σ_g d[n, g] ·
// Σ_{k in g} xq[m, k] q[n, k] + bias[n]), the group sums exact in integers, the sum over groups in
// f32 (so the VNNI and portable paths agree to rounding, not bit for bit). 0.5 byte per weight
// plus 2 bytes per 32.
struct Q4Weights {
  const uint8_t* packed = nullptr;  // [N, Kp / 2]
  const uint16_t* scales = nullptr;  // [N, Kp / 32] f16 bits
  int64_t padded_k = 0;              // Kp = q4_padded(K)
};

void gemm_q4(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Q4Weights& B, float* C, int64_t ldc,
             const GemmEpilogue& epilogue);

// The int8 kernel path in use: "avx512-vnni", "avx2" or "portable" (follows VARGPT_CPU_KERNELS
// and set_gemm_kernels: the avx512 and amx paths use VNNI where the CPU has it, else the AVX2
// kernel; the avx2 path uses the AVX2 kernel; the portable path the portable one).
std::string active_q8_kernel();

#if defined(VARGPT_HAVE_X86_KERNELS)
// gemm_q8_avx512.cc. out[m * cols + j] = Σ_k xu[m, k] q[n0 + j, k] (xu: activations + 128 as
// bytes, rows of ldx >= K bytes padded with 128) for m < rows (<= 4), j < cols (4 or 1).
void q8_dots_vnni(int rows, int cols, int64_t K, const uint8_t* xu, int64_t ldx, const int8_t* q, int64_t ldq,
                  int32_t* out);
// out[m * cols + j] = Σ_g d[n0 + j, g] · Σ_{k in g} q[n0 + j, k] · xq[m, k] over Kp values (rows
// of xq padded with 0). The nibbles hold q + 8 (the unsigned operand); corr, 16 int32 per row and
// 64-value block (row stride Kp / 4), starts each block's sums at -8 Σ xq of its two groups (lanes 0
// and 8), which takes the +8 back out.
void q4_dots_vnni(int rows, int cols, int64_t Kp, const int8_t* xq, int64_t ldx, const int32_t* corr,
                  const uint8_t* packed, const uint16_t* scales, float* out);
// gemm_q8_avx2.cc. The same sums from the signed activations (rows of ldx bytes, K <= ldx, any K):
// out[m * cols + j] = Σ_k xq[m, k] q[n0 + j, k].
void q8_dots_avx2(int rows, int cols, int64_t K, const int8_t* xq, int64_t ldx, const int8_t* q, int64_t ldq,
                  int32_t* out);
// As q4_dots_vnni, with xsum (Σ xq per row and group of 32, row stride Kp / 32) in place of the
// start values.
void q4_dots_avx2(int rows, int cols, int64_t Kp, const int8_t* xq, int64_t ldx, const int32_t* xsum,
                  const uint8_t* packed, const uint16_t* scales, float* out);
#endif

}  // namespace vargpt::cpu
