// int8 weight quantization: symmetric, one scale per output channel. Row n of a Linear weight
// [N, K] becomes q[n, k] = round(w[n, k] · 127 / max_k |w[n, k]|) in [-127, 127] with
// scale[n] = max_k |w[n, k]| / 127 (w ≈ scale · q), plus sum[n] = Σ_k q[n, k], which the VNNI
// kernel needs (backend/cpu/gemm_q8.h). Round half to even; an all-zero row has scale 0.
#pragma once

#include <cstdint>

#include "dtype.h"

namespace vargpt {

// One row of K f32 values as int8: q = round(x · 127 / max|x|) in [-127, 127], returning the scale
// max|x| / 127 (0 for a zero row; NaN, with q all 0, for a row holding a NaN or an infinity). The
// weights below and the activations of the integer GEMMs (backend/cpu/gemm_q8.cc) both use it.
float quantize_q8_row(const float* x, int64_t K, int8_t* q);

// Quantizes N rows of K values (f32, bf16 or f16; row stride ld elements) into q [N, K] and the
// rows' scales and sums. Throws for a row holding a NaN or an infinity.
void quantize_q8_rows(DType dtype, const void* src, int64_t N, int64_t K, int64_t ld, int8_t* q, float* scale,
                      float* sum);

// 4-bit weights in groups of 32 along K, one f16 scale per group: d = max|w| / 7 over the group
// (rounded to f16, then used as rounded), q = clamp(round(w / d), -8, 7). Rows are padded to a
// multiple of 64 values (the padding is q = 0). Stored per row as blocks of 64 values in 32 bytes,
// byte j of a block holding value j + 8 in its low nibble and value 32 + j, + 8, in its high one
// (unsigned nibbles, so the VNNI kernel can take them as its unsigned operand).
constexpr int64_t kQ4Group = 32;
inline int64_t q4_padded(int64_t K) { return (K + 63) / 64 * 64; }
// packed [N, q4_padded(K) / 2] bytes, scales [N, q4_padded(K) / 32] f16 bits.
void quantize_q4_rows(DType dtype, const void* src, int64_t N, int64_t K, int64_t ld, uint8_t* packed,
                      uint16_t* scales);

}  // namespace vargpt
