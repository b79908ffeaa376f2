// The AVX-512 VNNI dot kernel of the int8 GEMM (gemm_q8.h). Built with the avx512 flags; the VNNI
// instruction is enabled for this function alone and only called where the CPU reports it.
#include <immintrin.h>

#include <algorithm>
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

// 4-bit weights (core/quantize.h): a super-block of 16 groups is 4 lines of 64 bytes whose 32-bit
// lane l holds 8 values of group l, so the low nibbles of every line go through one dpbusd each
// into group-per-lane int32 sums, and the high nibbles (masked in place, 16 times their value,
// which keeps the unsigned operand within a byte) through another into a second set that is
// shifted back at the end: 8 dpbusd, one conversion and one fma per 512 weights. The activations
// come arranged to match (gemm_q4: vector 2·i of a super-block holds, in lane l, values 8·i .. 8·i
// + 3 of group l, vector 2·i + 1 values 8·i + 4 .. 8·i + 7), zero past the row's last group, and
// corr starts each group's sum at -8 Σ xq of the group, which takes the nibbles' +8 back out. A
// last super-block of G < 16 groups has lines of 4·G bytes: masked loads read it as the first G
// lanes. (Masked forms of a few intrinsics: GCC 12 warns on the unmasked ones' undefined lanes.)
// One super-block of G groups for every column and row: kFull (G = 16) with plain loads at
// constant offsets, the last short one with masked loads.
template <int COLS, bool kFull>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c"), always_inline)) inline void q4_super_block(
    int rows, int64_t G, const int8_t* x, int64_t ldx, const int32_t* start, int64_t cstride, const uint8_t* block,
    int64_t row_bytes, const uint16_t* block_scales, int64_t groups, __m512 (&acc)[4][COLS]) {
  const __m512i low4 = _mm512_set1_epi8(0x0f), high4 = _mm512_set1_epi8(static_cast<char>(0xf0));
  const int64_t line = kFull ? 64 : 4 * G;
  const __mmask64 bytes_mask = kFull ? ~__mmask64{0} : (__mmask64{1} << line) - 1;
  const __mmask16 groups_mask = kFull ? __mmask16{0xffff} : static_cast<__mmask16>((uint32_t{1} << G) - 1);
  // Every column's lines are loaded before any sum starts: streaming from memory, the loads then
  // overlap instead of waiting behind each column's dependent dpbusd chain.
  __m512i lo[COLS][4], hi[COLS][4];
  __m512 d[COLS];
  for (int j = 0; j < COLS; ++j) {
    const uint8_t* lines = block + j * row_bytes;
    for (int i = 0; i < 4; ++i) {
      // The next call's rows follow these in memory: fetch them while this one computes (short rows
      // end before the hardware prefetcher has found their streams).
      _mm_prefetch(reinterpret_cast<const char*>(lines + i * line + COLS * row_bytes), _MM_HINT_T0);
      const __m512i bytes =
          kFull ? _mm512_loadu_si512(lines + i * line) : _mm512_maskz_loadu_epi8(bytes_mask, lines + i * line);
      lo[j][i] = _mm512_and_si512(bytes, low4);
      hi[j][i] = _mm512_and_si512(bytes, high4);
    }
    const __m256i half_scales =
        kFull ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block_scales + j * groups))
              : _mm256_maskz_loadu_epi16(groups_mask, block_scales + j * groups);
    d[j] = _mm512_maskz_cvtph_ps(0xffff, half_scales);
  }
  for (int m = 0; m < 4; ++m) {
    if (m >= rows) break;
    const int8_t* xm = x + m * ldx;
    const __m512i first = _mm512_loadu_si512(start + m * cstride);
    for (int j = 0; j < COLS; ++j) {
      __m512i sum_lo = first, sum_hi = _mm512_setzero_si512();
      for (int i = 0; i < 4; ++i) {
        sum_lo = _mm512_dpbusd_epi32(sum_lo, lo[j][i], _mm512_loadu_si512(xm + 128 * i));
        sum_hi = _mm512_dpbusd_epi32(sum_hi, hi[j][i], _mm512_loadu_si512(xm + 128 * i + 64));
      }
      // sum_hi is 16 times the high nibbles' dot, exactly (at most 4 · 4 · 240 · 127 in magnitude).
      const __m512i dot = _mm512_add_epi32(sum_lo, _mm512_maskz_srai_epi32(0xffff, sum_hi, 4));
      acc[m][j] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xffff, dot), d[j], acc[m][j]);
    }
  }
}

template <int COLS>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c"))) void q4_dots(int rows, int64_t Kp,
                                                                                  const int8_t* xq, int64_t ldx,
                                                                                  const int32_t* corr,
                                                                                  const uint8_t* packed,
                                                                                  const uint16_t* scales, float* out) {
  __m512 acc[4][COLS];
  for (int m = 0; m < 4; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm512_setzero_ps();
  const int64_t row_bytes = Kp / 2, groups = Kp / kQ4Group;
  const int64_t full = groups / kQ4SuperGroups, supers = (groups + kQ4SuperGroups - 1) / kQ4SuperGroups;
  const int64_t cstride = supers * kQ4SuperGroups;
  constexpr int64_t kSuperValues = kQ4SuperGroups * kQ4Group;
  for (int64_t s = 0; s < full; ++s)
    q4_super_block<COLS, true>(rows, kQ4SuperGroups, xq + s * kSuperValues, ldx, corr + s * kQ4SuperGroups, cstride,
                               packed + s * (kSuperValues / 2), row_bytes, scales + s * kQ4SuperGroups, groups, acc);
  if (full < supers)
    q4_super_block<COLS, false>(rows, groups - full * kQ4SuperGroups, xq + full * kSuperValues, ldx,
                                corr + full * kQ4SuperGroups, cstride, packed + full * (kSuperValues / 2), row_bytes,
                                scales + full * kQ4SuperGroups, groups, acc);
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
  if (cols == 4)
    q4_dots<4>(rows, Kp, xq, ldx, corr, packed, scales, out);
  else
    q4_dots<1>(rows, Kp, xq, ldx, corr, packed, scales, out);
}

void q8_dots_vnni(int rows, int cols, int64_t K, const uint8_t* xu, int64_t ldx, const int8_t* q, int64_t ldq,
                  int32_t* out) {
  if (cols == 4)
    dots<4>(rows, K, xu, ldx, q, ldq, out);
  else
    dots<1>(rows, K, xu, ldx, q, ldq, out);
}

}  // namespace vargpt::cpu
