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
// (rounded to f16, then used as rounded), q = clamp(round(w / d), -8, 7), stored as the unsigned
// nibble q + 8 (so the VNNI kernel can take it as its unsigned operand). Rows are padded to a
// multiple of 64 values (the padding is q = 0).
//
// A row's groups are stored in super-blocks of 16 (the last one may hold fewer, G, always even).
// A super-block of G groups is 4 lines of 4·G bytes; byte 4·l + b of line i holds value 8·i + b
// of the super-block's group l in its low nibble and value 8·i + 4 + b in its high one. So 4 bytes
// of a line carry 8 values of one group, a line carries every group of its super-block, and a
// 64-byte line of a full super-block puts group l in 32-bit lane l: a SIMD kernel accumulates 16
// groups' exact integer dots across the 4 lines and converts and scales them once, with one
// vector of 16 scales (backend/cpu/gemm_q8_avx512.cc).
constexpr int64_t kQ4Group = 32;
constexpr int64_t kQ4SuperGroups = 16;
// The safetensors metadata value `vargpt.q4_layout` of a checkpoint written in this layout (a
// file without it predates the layout and is refused rather than misread).
constexpr const char* kQ4LayoutKey = "vargpt.q4_layout";
constexpr const char* kQ4LayoutName = "groups32-superblocks16";
inline int64_t q4_padded(int64_t K) { return (K + 63) / 64 * 64; }

#if defined(__CUDACC__)
#define VARGPT_Q4_HOST_DEVICE __host__ __device__
#else
#define VARGPT_Q4_HOST_DEVICE
#endif
// Byte offset, within a row of `groups` groups, of the 4 bytes holding values 8·i .. 8·i + 7 of
// group g (0 <= i < 4): values 8·i + b in the low nibbles, 8·i + 4 + b in the high ones.
VARGPT_Q4_HOST_DEVICE inline int64_t q4_word_offset(int64_t groups, int64_t g, int64_t i) {
  const int64_t sb = g / kQ4SuperGroups, l = g % kQ4SuperGroups;
  const int64_t rest = groups - sb * kQ4SuperGroups;
  const int64_t G = rest < kQ4SuperGroups ? rest : kQ4SuperGroups;
  return sb * (kQ4SuperGroups * kQ4Group / 2) + i * 4 * G + 4 * l;
}
// Where value k of a row of Kp values lives: its byte and whether it is that byte's high nibble.
struct Q4Position {
  int64_t byte;
  bool high;
};
VARGPT_Q4_HOST_DEVICE inline Q4Position q4_position(int64_t Kp, int64_t k) {
  const int64_t t = k % kQ4Group;
  return {q4_word_offset(Kp / kQ4Group, k / kQ4Group, t / 8) + t % 4, t % 8 >= 4};
}
#undef VARGPT_Q4_HOST_DEVICE
// packed [N, q4_padded(K) / 2] bytes, scales [N, q4_padded(K) / 32] f16 bits.
void quantize_q4_rows(DType dtype, const void* src, int64_t N, int64_t K, int64_t ld, uint8_t* packed,
                      uint16_t* scales);

}  // namespace vargpt
