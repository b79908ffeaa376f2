// The AVX-512 VNNI dot kernel of the int8 GEMM (gemm_q8.h). Built with the avx512 flags; the VNNI
// instruction is enabled for this function alone and only called where the CPU reports it.
#include <immintrin.h>

#include <cstring>

#include "gemm_q8.h"

namespace vargpt::cpu {

namespace {

// Sum of the 16 lanes, once per output (GCC 12's reduce and extract intrinsics trip
// -Wmaybe-uninitialized).
__attribute__((target("avx512f"))) inline int32_t lane_sum(__m512i v) {
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, v);
  int32_t s = 0;
  for (int32_t x : lanes) s += x;
  return s;
}

template <int COLS>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void dots(int rows, int64_t K, const uint8_t* xu, int64_t ldx,
                                                                const int8_t* q, int64_t ldq, int32_t* out) {
  __m512i acc[4][COLS];
  for (int m = 0; m < 4; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 64) {
    // Weight bytes past K read as 0, so the activations' padding adds nothing.
    const __mmask64 mask = K - k >= 64 ? ~__mmask64{0} : ((__mmask64{1} << (K - k)) - 1);
    __m512i w[COLS];
    for (int j = 0; j < COLS; ++j) {
      w[j] = _mm512_maskz_loadu_epi8(mask, q + j * ldq + k);
      // The next call's rows follow these in memory: fetch them while this one computes (short rows
      // end before the hardware prefetcher has found their streams).
      _mm_prefetch(reinterpret_cast<const char*>(q + (COLS + j) * ldq + k), _MM_HINT_T0);
    }
    for (int m = 0; m < 4; ++m) {
      if (m >= rows) break;
      const __m512i x = _mm512_loadu_si512(xu + m * ldx + k);
      for (int j = 0; j < COLS; ++j) acc[m][j] = _mm512_dpbusd_epi32(acc[m][j], x, w[j]);
    }
  }
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < COLS; ++j) out[m * COLS + j] = lane_sum(acc[m][j]);
}

// 4-bit weights, two 64-value blocks (one 64-byte line per weight row) per step. A line's low
// nibbles are the first 32 values of both blocks and its high nibbles their last 32, so the
// activations come permuted to match (gemm_q4: per 128 values, x[0..31], x[64..95], x[32..63],
// x[96..127]); each of the two dpbusd then covers one group of each block (lanes 0-7 and 8-15),
// starting from corr's -8 Σ xq of those groups. A last lone block (Kp not a multiple of 128) is
// read as 32 bytes, both nibble halves side by side, with the activations in natural order.
// MAX_ROWS 1 is decode's instance: with 4 possible rows the 16 accumulators, 8 weight vectors and
// 8 scale vectors of a 4-column step outnumber the 32 vector registers, and the compiler spills.
template <int MAX_ROWS, int COLS>
__attribute__((target("avx512f,avx512bw,avx512vnni,f16c"))) void q4_dots(int rows, int64_t Kp, const int8_t* xq,
                                                                         int64_t ldx, const int32_t* corr,
                                                                         const uint8_t* packed,
                                                                         const uint16_t* scales, float* out) {
  __m512 acc[MAX_ROWS][COLS];
  for (int m = 0; m < MAX_ROWS; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm512_setzero_ps();
  const int64_t row_bytes = Kp / 2, groups = Kp / 32, pairs_end = Kp / 128 * 128;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // The four f16 scales of a step are groups (block 0: g0, g1; block 1: g0, g1); lanes 0-7 of the
  // low-nibble sums are block 0's first group and lanes 8-15 block 1's, likewise for the high.
  const __m512i pick_low = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i pick_high = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
  const int64_t cstride = Kp / 4;
  for (int64_t k = 0; k < pairs_end; k += 128) {
    __m512i lo[COLS], hi[COLS];
    __m512 dlo[COLS], dhi[COLS];
    for (int j = 0; j < COLS; ++j) {
      const uint8_t* line = packed + j * row_bytes + k / 2;
      // The next call's rows follow these in memory: fetch them while this one computes (short rows
      // end before the hardware prefetcher has found their streams).
      _mm_prefetch(reinterpret_cast<const char*>(line + COLS * row_bytes), _MM_HINT_T0);
      const __m512i bytes = _mm512_loadu_si512(line);
      lo[j] = _mm512_and_si512(bytes, low4);
      hi[j] = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4);
      const __m512 d = _mm512_zextps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64(
          reinterpret_cast<const __m128i*>(scales + j * groups + k / 32))));
      dlo[j] = _mm512_maskz_permutexvar_ps(0xffff, pick_low, d);
      dhi[j] = _mm512_maskz_permutexvar_ps(0xffff, pick_high, d);
    }
    for (int m = 0; m < MAX_ROWS; ++m) {
      if (m >= rows) break;
      const __m512i xlo = _mm512_loadu_si512(xq + m * ldx + k);
      const __m512i xhi = _mm512_loadu_si512(xq + m * ldx + k + 64);
      const __m512i clo = _mm512_loadu_si512(corr + m * cstride + k / 4);
      const __m512i chi = _mm512_loadu_si512(corr + m * cstride + k / 4 + 16);
      for (int j = 0; j < COLS; ++j) {
        acc[m][j] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xffff, _mm512_dpbusd_epi32(clo, lo[j], xlo)), dlo[j], acc[m][j]);
        acc[m][j] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xffff, _mm512_dpbusd_epi32(chi, hi[j], xhi)), dhi[j], acc[m][j]);
      }
    }
  }
  if (pairs_end < Kp) {
    const int64_t k = pairs_end;
    const __m512i pick = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512i w[COLS];
    __m512 d[COLS];
    for (int j = 0; j < COLS; ++j) {
      // Both halves get the 32 bytes; the upper half takes the high nibbles. (Masked forms: GCC 12
      // warns on the unmasked ones' undefined lanes.)
      const auto* src = reinterpret_cast<const __m256i*>(packed + j * row_bytes + k / 2);
      const __m512i both = _mm512_maskz_broadcast_i64x4(0xff, _mm256_loadu_si256(src));
      w[j] = _mm512_and_si512(_mm512_mask_blend_epi64(0xf0, both, _mm512_srli_epi16(both, 4)), low4);
      int32_t two;  // the block's two f16 scales
      std::memcpy(&two, scales + j * groups + k / 32, sizeof two);
      d[j] = _mm512_maskz_permutexvar_ps(0xffff, pick, _mm512_zextps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(two))));
    }
    for (int m = 0; m < MAX_ROWS; ++m) {
      if (m >= rows) break;
      const __m512i x = _mm512_loadu_si512(xq + m * ldx + k);
      const __m512i start = _mm512_loadu_si512(corr + m * cstride + k / 4);
      for (int j = 0; j < COLS; ++j)
        acc[m][j] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xffff, _mm512_dpbusd_epi32(start, w[j], x)), d[j], acc[m][j]);
    }
  }
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < COLS; ++j) {
      alignas(64) float lanes[16];
      _mm512_store_ps(lanes, acc[m][j]);
      float s = 0;
      for (float v : lanes) s += v;
      out[m * COLS + j] = s;
    }
}

}  // namespace

void q4_dots_vnni(int rows, int cols, int64_t Kp, const int8_t* xq, int64_t ldx, const int32_t* corr,
                  const uint8_t* packed, const uint16_t* scales, float* out) {
  if (rows == 1) {
    if (cols == 4)
      q4_dots<1, 4>(rows, Kp, xq, ldx, corr, packed, scales, out);
    else
      q4_dots<1, 1>(rows, Kp, xq, ldx, corr, packed, scales, out);
  } else if (cols == 4) {
    q4_dots<4, 4>(rows, Kp, xq, ldx, corr, packed, scales, out);
  } else {
    q4_dots<4, 1>(rows, Kp, xq, ldx, corr, packed, scales, out);
  }
}

void q8_dots_vnni(int rows, int cols, int64_t K, const uint8_t* xu, int64_t ldx, const int8_t* q, int64_t ldq,
                  int32_t* out) {
  if (cols == 4)
    dots<4>(rows, K, xu, ldx, q, ldq, out);
  else
    dots<1>(rows, K, xu, ldx, q, ldq, out);
}

}  // namespace vargpt::cpu
