// int8 weight quantization: symmetric, one scale per output channel. Row n of a Linear weight
// [N, K] becomes q[n, k] = round(w[n, k] · 127 / max_k |w[n, k]|) in [-127, 127] with
// scale[n] = max_k |w[n, k]| / 127 (w ≈ scale · q), plus sum[n] = Σ_k q[n, k], which the VNNI
// kernel needs (backend/cpu/gemm_q8.h). Round half to even; an all-zero row has scale 0.
#pragma once

#include <cstdint>

#include "dtype.h"

namespace vargpt {

// Quantizes N rows of K values (f32, bf16 or f16; row stride ld elements) into q [N, K] and the
// rows' scales and sums. Throws for a row holding a NaN or an infinity.
void quantize_q8_rows(DType dtype, const void* src, int64_t N, int64_t K, int64_t ld, int8_t* q, float* scale,
                      float* sum);

}  // namespace vargpt
