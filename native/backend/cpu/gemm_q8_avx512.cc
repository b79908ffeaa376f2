// The AVX-512 VNNI dot kernel of the int8 GEMM (gemm_q8.h). Built with the avx512 flags; the VNNI
// instruction is enabled for this function alone and only called where the CPU reports it.
#include <immintrin.h>

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
    for (int j = 0; j < COLS; ++j) w[j] = _mm512_maskz_loadu_epi8(mask, q + j * ldq + k);
    for (int m = 0; m < 4; ++m) {
      if (m >= rows) break;
      const __m512i x = _mm512_loadu_si512(xu + m * ldx + k);
      for (int j = 0; j < COLS; ++j) acc[m][j] = _mm512_dpbusd_epi32(acc[m][j], x, w[j]);
    }
  }
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < COLS; ++j) out[m * COLS + j] = lane_sum(acc[m][j]);
}

}  // namespace

void q8_dots_vnni(int rows, int cols, int64_t K, const uint8_t* xu, int64_t ldx, const int8_t* q, int64_t ldq,
                  int32_t* out) {
  if (cols == 4)
    dots<4>(rows, K, xu, ldx, q, ldq, out);
  else
    dots<1>(rows, K, xu, ldx, q, ldq, out);
}

}  // namespace vargpt::cpu
