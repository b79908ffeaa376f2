// The AVX2 dot kernels of the int8 and 4-bit GEMMs (gemm_q8.h), for CPUs without AVX-512 VNNI.
// Built with the avx2 flags; called only where the CPU reports AVX2.
//
// AVX2 has no signed x signed byte product, only maddubs (unsigned x signed, pairs summed into
// saturating int16). The operands are made |x| (unsigned) and sign(x) · w (signed): each product
// is then x · w exactly, and a pair sums to at most 2 · 127 · 127 = 32258, inside int16, so the
// saturation never happens (activations and int8 weights stay within [-127, 127]). The 4-bit
// kernel needs no such trick: its nibbles are unsigned already.
#include <immintrin.h>

#include <algorithm>
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

// 4-bit weights (core/quantize.h), each half of a super-block's 64-byte lines at a time: 32-bit
// lane l of half h holds 8 values of group 8·h + l. The nibbles are maddubs's unsigned operand as
// they are (pairs sum to at most 2 · 15 · 128); the activations come arranged to match (gemm_q4)
// and each group's sum starts at corr's -8 Σ xq, which takes the nibbles' +8 back out, so a half
// is 8 maddubs into 8 group-per-lane sums, one conversion and one fma. A last super-block of fewer
// than 16 groups (lines of 4·G bytes) is copied into a zeroed full one first.
template <int COLS>
void q4_dots(int rows, int64_t Kp, const int8_t* xq, int64_t ldx, const int32_t* corr, const uint8_t* packed,
             const uint16_t* scales, float* out) {
  const int64_t row_bytes = Kp / 2, groups = Kp / kQ4Group;
  const int64_t supers = (groups + kQ4SuperGroups - 1) / kQ4SuperGroups, cstride = supers * kQ4SuperGroups;
  const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  constexpr int64_t kSuperBytes = kQ4SuperGroups * kQ4Group / 2;
  alignas(32) uint8_t staged[COLS][kSuperBytes];
  alignas(32) uint16_t staged_scales[COLS][kQ4SuperGroups];
  for (int m = 0; m < rows; ++m) {
    __m256 acc[COLS];
    for (int j = 0; j < COLS; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t s = 0; s < supers; ++s) {
      const int64_t g0 = s * kQ4SuperGroups, G = std::min(kQ4SuperGroups, groups - g0);
      const int8_t* x = xq + m * ldx + s * (kQ4SuperGroups * kQ4Group);
      const uint8_t* block[COLS];
      const uint16_t* block_scales[COLS];
      for (int j = 0; j < COLS; ++j) {
        block[j] = packed + j * row_bytes + g0 * (kQ4Group / 2);
        block_scales[j] = scales + j * groups + g0;
        if (G == kQ4SuperGroups) continue;
        std::memset(staged[j], 0, sizeof staged[j]);
        std::memset(staged_scales[j], 0, sizeof staged_scales[j]);
        for (int64_t i = 0; i < 4; ++i) std::memcpy(staged[j] + 64 * i, block[j] + 4 * G * i, static_cast<size_t>(4 * G));
        std::memcpy(staged_scales[j], block_scales[j], static_cast<size_t>(2 * G));
        block[j] = staged[j];
        block_scales[j] = staged_scales[j];
      }
      for (int64_t h = 0; h < 2 && 8 * h < G; ++h) {
        const __m256i start = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr + m * cstride + g0 + 8 * h));
        __m256i xs[8];
        for (int i = 0; i < 8; ++i) xs[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 64 * i + 32 * h));
        for (int j = 0; j < COLS; ++j) {
          __m256i sum = start;
          for (int i = 0; i < 4; ++i) {
            const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block[j] + 64 * i + 32 * h));
            const __m256i lo = _mm256_and_si256(bytes, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, xs[2 * i]), ones));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, xs[2 * i + 1]), ones));
          }
          const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block_scales[j] + 8 * h)));
          acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), d, acc[j]);
        }
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

void q4_dots_avx2(int rows, int cols, int64_t Kp, const int8_t* xq, int64_t ldx, const int32_t* corr,
                  const uint8_t* packed, const uint16_t* scales, float* out) {
  if (cols == 4)
    q4_dots<4>(rows, Kp, xq, ldx, corr, packed, scales, out);
  else
    q4_dots<1>(rows, Kp, xq, ldx, corr, packed, scales, out);
}

}  // namespace vargpt::cpu
