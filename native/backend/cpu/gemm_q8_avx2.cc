// The AVX2 dot kernels of the int8 and 4-bit GEMMs (gemm_q8.h), for CPUs without AVX-512 VNNI.
// Built with the avx2 flags; called only where the CPU reports AVX2.
//
// AVX2 has no signed x signed byte product, only maddubs (unsigned x signed, pairs summed into
// saturating int16). The operands are made |x| (unsigned) and sign(x) · w (signed): each product
// is then x · w exactly, and a pair sums to at most 2 · 127 · 127 = 32258, inside int16, so the
// saturation never happens (activations and int8 weights stay within [-127, 127]). The 4-bit
// kernel needs no such trick: its nibbles are unsigned already.
#include <immintrin.h>

#include <cstring>

#include "gemm_q8.h"

namespace vargpt::cpu {

namespace {

inline int32_t lane_sum(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i t = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1)));
}

inline float lane_sum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// Eight int32 sums of x[k] · w[k] over 32 byte pairs.
inline __m256i dot32(__m256i x, __m256i w) {
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x));
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

// One activation row at a time against COLS weight rows: COLS accumulators stay in registers, and
// the COLS weight rows (a few KB) stay in L1 for the next activation row.
template <int COLS>
void q8_dots(int rows, int64_t K, const int8_t* xq, int64_t ldx, const int8_t* q, int64_t ldq, int32_t* out) {
  for (int m = 0; m < rows; ++m) {
    const int8_t* x = xq + m * ldx;
    __m256i acc[COLS];
    for (int j = 0; j < COLS; ++j) acc[j] = _mm256_setzero_si256();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k));
      for (int j = 0; j < COLS; ++j) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j * ldq + k));
        acc[j] = _mm256_add_epi32(acc[j], dot32(xv, wv));
      }
    }
    for (int j = 0; j < COLS; ++j) {
      int32_t s = lane_sum(acc[j]);
      for (int64_t t = k; t < K; ++t) s += int32_t{x[t]} * int32_t{q[j * ldq + t]};
      out[m * COLS + j] = s;
    }
  }
}

// 64-value blocks: 32 bytes whose low nibbles are the block's first group and high nibbles its
// second, each holding q + 8. The nibbles are maddubs's unsigned operand as they are (pairs sum to
// at most 2 · 15 · 127); each group's sum starts at -8 Σ xq (its lane 0; the lanes are summed at
// the end) to take the +8 back out, so no sign or offset work runs per weight byte.
template <int COLS>
void q4_dots(int rows, int64_t Kp, const int8_t* xq, int64_t ldx, const int32_t* xsum, const uint8_t* packed,
             const uint16_t* scales, float* out) {
  const int64_t row_bytes = Kp / 2, groups = Kp / 32;
  const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  for (int m = 0; m < rows; ++m) {
    const int8_t* x = xq + m * ldx;
    const int32_t* sums = xsum + m * groups;
    __m256 acc[COLS];
    for (int j = 0; j < COLS; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < Kp; k += 64) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k + 32));
      const __m256i c0 = _mm256_setr_epi32(-8 * sums[k / 32], 0, 0, 0, 0, 0, 0, 0);
      const __m256i c1 = _mm256_setr_epi32(-8 * sums[k / 32 + 1], 0, 0, 0, 0, 0, 0, 0);
      for (int j = 0; j < COLS; ++j) {
        const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + j * row_bytes + k / 2));
        const __m256i w0 = _mm256_and_si256(bytes, low4);
        const __m256i w1 = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
        const __m256i s0 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w0, x0), ones), c0);
        const __m256i s1 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w1, x1), ones), c1);
        int32_t two;  // the block's two f16 scales
        std::memcpy(&two, scales + j * groups + k / 32, sizeof two);
        const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(two));
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_broadcastss_ps(d), acc[j]);
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_broadcastss_ps(_mm_movehdup_ps(d)), acc[j]);
      }
    }
    for (int j = 0; j < COLS; ++j) out[m * COLS + j] = lane_sum(acc[j]);
  }
}

}  // namespace

void q8_dots_avx2(int rows, int cols, int64_t K, const int8_t* xq, int64_t ldx, const int8_t* q, int64_t ldq,
                  int32_t* out) {
  if (cols == 4)
    q8_dots<4>(rows, K, xq, ldx, q, ldq, out);
  else
    q8_dots<1>(rows, K, xq, ldx, q, ldq, out);
}

void q4_dots_avx2(int rows, int cols, int64_t Kp, const int8_t* xq, int64_t ldx, const int32_t* xsum,
                  const uint8_t* packed, const uint16_t* scales, float* out) {
  if (cols == 4)
    q4_dots<4>(rows, Kp, xq, ldx, xsum, packed, scales, out);
  else
    q4_dots<1>(rows, Kp, xq, ldx, xsum, packed, scales, out);
}

}  // namespace vargpt::cpu
