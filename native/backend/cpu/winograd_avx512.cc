// Winograd F(4x4, 3x3) transforms on AVX-512 (compiled with -mavx512f and friends; used only when
// the AVX-512 GEMM path is active). Sixteen horizontally adjacent tiles share one vector: lane t
// holds tile tx0 + t. The input rows are split into the six strided phases (x = 4t + j) with
// two-source permutes, the transforms are the scalar code's formulas on vectors, and the output
// tiles are interleaved back into rows with unpacks and 128-bit shuffles.
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../../core/aligned.h"
#include "conv_winograd.h"
#include "simd_avx512.h"

namespace vargpt::cpu {

namespace {

// B^T applied to six vectors (see bt6 in conv_winograd.cc).
inline void bt6v(const __m512 d[6], __m512 o[6]) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
  const __m512 d12 = _mm512_add_ps(d[1], d[2]), d34 = _mm512_add_ps(d[3], d[4]);
  const __m512 m12 = _mm512_sub_ps(d[1], d[2]), m43 = _mm512_sub_ps(d[4], d[3]);
  const __m512 m31 = _mm512_sub_ps(d[3], d[1]), m42 = _mm512_sub_ps(d[4], d[2]);
  o[0] = _mm512_add_ps(_mm512_fnmadd_ps(five, d[2], _mm512_mul_ps(four, d[0])), d[4]);
  o[1] = _mm512_fnmadd_ps(four, d12, d34);
  o[2] = _mm512_fmadd_ps(four, m12, m43);
  o[3] = _mm512_fmadd_ps(two, m31, m42);
  o[4] = _mm512_fnmadd_ps(two, m31, m42);
  o[5] = _mm512_add_ps(_mm512_fnmadd_ps(five, d[3], _mm512_mul_ps(four, d[1])), d[5]);
}

// A^T applied to six vectors (see at6).
inline void at6v(const __m512 m[6], __m512 o[4]) {
  const __m512 p12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
  const __m512 p34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], p12), p34);
  o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
  o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), p34, p12);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m[5]);
}

// The six phases of one input row for 16 tiles: ph[j] lane t = line[4t + j], where line holds
// the 80 values from the tiles' first column (zero outside the plane).
inline void split_phases(const __m512 L[5], __m512 ph[6]) {
  for (int j = 0; j < 4; ++j) {
    const __m512i idx = _mm512_setr_epi32(j, j + 4, j + 8, j + 12, 16 + j, 20 + j, 24 + j, 28 + j, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512 lo = _mm512_permutex2var_ps(L[0], idx, L[1]);  // tiles 0..7 in lanes 0..7
    const __m512 hi = _mm512_permutex2var_ps(L[2], idx, L[3]);  // tiles 8..15 in lanes 0..7
    ph[j] = _mm512_shuffle_f32x4(lo, hi, 0x44);
  }
  // Phases 4 and 5 are phases 0 and 1 of the next tile: shift by one lane, line[64], line[65] last.
  const __m512i l4 = _mm512_castps_si512(L[4]);
  ph[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(l4, _mm512_castps_si512(ph[0]), 1));
  ph[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_alignr_epi32(l4, l4, 1), _mm512_castps_si512(ph[1]), 1));
}

// Where a group of n tiles starting at column t lands in the packed B operand: its first lanes
// at `lo` (within one panel), the rest, if the group crosses a panel boundary, at `hi`.
struct TileSpan {
  int64_t lo = 0, hi = 0;  // offsets from the row start
  __mmask16 lo_mask = 0, hi_lanes = 0, hi_mask = 0;
};

inline TileSpan tile_span(const WinogradPackedB& dst, int64_t t, int64_t n) {
  TileSpan s;
  const int64_t panel = t / dst.nr, off = t % dst.nr;
  const int64_t first = std::min(n, dst.nr - off);
  s.lo = panel * dst.panel_stride + off;
  s.lo_mask = tail_mask16(first);
  if (first < n) {
    s.hi = (panel + 1) * dst.panel_stride;
    s.hi_lanes = static_cast<__mmask16>(tail_mask16(n) & ~tail_mask16(first));
    s.hi_mask = tail_mask16(n - first);
  }
  return s;
}

// Stores the group's lanes into row ξ; the lanes past a panel boundary move down by a compress.
inline void store_tiles(const WinogradPackedB& dst, const TileSpan& s, int64_t xi, __m512 v) {
  float* row = dst.base + xi * dst.xi_stride;
  _mm512_mask_storeu_ps(row + s.lo, s.lo_mask, v);
  if (s.hi_mask != 0) _mm512_mask_storeu_ps(row + s.hi, s.hi_mask, _mm512_maskz_compress_ps(s.hi_lanes, v));
}

// A per-thread scratch that keeps its memory between calls (cpu_common.h's AlignedBuffer is not
// included here: its inline members compiled with AVX-512 could be picked for portable code).
class Scratch {
 public:
  ~Scratch() { aligned_free(data_); }
  float* floats(size_t count) {
    const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    if (bytes > capacity_) {
      aligned_free(data_);
      data_ = aligned_malloc(64, bytes);
      capacity_ = data_ ? bytes : 0;
    }
    return static_cast<float*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

void input_avx512(const float* plane, const WinogradPlane& g, int64_t ty0, int64_t ty1, const WinogradPackedB& dst) {
  // The block's input rows copied once into a zero-padded scratch (column 0 = input column
  // -pad_left, whole 16-tile groups wide), so every tile group reads five plain vectors. Masked
  // loads at the plane's edges instead split pages and cache lines with fault-suppressed lanes,
  // and cost more than the whole copy.
  const int64_t groups = (g.tiles_x + 15) / 16;
  const int64_t width = 64 * groups + 16, rows = 4 * (ty1 - ty0) + 2;
  static thread_local Scratch scratch;
  float* pad = scratch.floats(static_cast<size_t>(width * rows));
  if (pad == nullptr) return portable_winograd_kernels().input(plane, g, ty0, ty1, dst);  // out of memory
  // memset/memcpy rather than std::fill/std::copy: no template instantiated with AVX-512 here.
  const size_t item = sizeof(float);
  for (int64_t i = 0; i < rows; ++i) {
    float* line = pad + i * width;
    const int64_t yy = 4 * ty0 - g.pad_top + i;
    const int64_t lo = std::min(g.pad_left, width), hi = std::min(g.pad_left + g.W, width);
    if (yy < 0 || yy >= g.H || hi <= lo) {
      std::memset(line, 0, static_cast<size_t>(width) * item);
      continue;
    }
    std::memset(line, 0, static_cast<size_t>(lo) * item);
    std::memcpy(line + lo, plane + yy * g.W, static_cast<size_t>(hi - lo) * item);
    std::memset(line + hi, 0, static_cast<size_t>(width - hi) * item);
  }
  for (int64_t ty = ty0; ty < ty1; ++ty)
    for (int64_t tx0 = 0; tx0 < g.tiles_x; tx0 += 16) {
      const int64_t nt = std::min<int64_t>(16, g.tiles_x - tx0);
      __m512 R[6][6];  // row transform of each input row: R[i][β]
      for (int i = 0; i < 6; ++i) {
        const float* line = pad + (4 * (ty - ty0) + i) * width + 4 * tx0;
        __m512 L[5];
        for (int k = 0; k < 5; ++k) L[k] = _mm512_loadu_ps(line + 16 * k);
        __m512 ph[6];
        split_phases(L, ph);
        bt6v(ph, R[i]);
      }
      const TileSpan span = tile_span(dst, (ty - ty0) * g.tiles_x + tx0, nt);
      for (int b = 0; b < 6; ++b) {
        const __m512 col[6] = {R[0][b], R[1][b], R[2][b], R[3][b], R[4][b], R[5][b]};
        __m512 o[6];
        bt6v(col, o);
        for (int a = 0; a < 6; ++a) store_tiles(dst, span, a * 6 + b, o[a]);
      }
    }
}

// Interleaves four vectors (lane t = column 4t + j of 16 tiles, j = 0..3) into 64 row values.
inline void interleave4(const __m512 y[4], __m512 out[4]) {
  const __m512 ab_lo = _mm512_unpacklo_ps(y[0], y[1]), ab_hi = _mm512_unpackhi_ps(y[0], y[1]);
  const __m512 cd_lo = _mm512_unpacklo_ps(y[2], y[3]), cd_hi = _mm512_unpackhi_ps(y[2], y[3]);
  // t_k holds, in 128-bit block q, the four values of tile 4q + k.
  const __m512 t0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab_lo), _mm512_castps_pd(cd_lo)));
  const __m512 t1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab_lo), _mm512_castps_pd(cd_lo)));
  const __m512 t2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab_hi), _mm512_castps_pd(cd_hi)));
  const __m512 t3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab_hi), _mm512_castps_pd(cd_hi)));
  // A 4x4 transpose of 128-bit blocks: out[q] = tiles 4q .. 4q + 3.
  const __m512 x0 = _mm512_shuffle_f32x4(t0, t1, 0x44), x1 = _mm512_shuffle_f32x4(t2, t3, 0x44);
  const __m512 x2 = _mm512_shuffle_f32x4(t0, t1, 0xee), x3 = _mm512_shuffle_f32x4(t2, t3, 0xee);
  out[0] = _mm512_shuffle_f32x4(x0, x1, 0x88);
  out[1] = _mm512_shuffle_f32x4(x0, x1, 0xdd);
  out[2] = _mm512_shuffle_f32x4(x2, x3, 0x88);
  out[3] = _mm512_shuffle_f32x4(x2, x3, 0xdd);
}

void output_avx512(const float* m, int64_t ld, const WinogradPlane& g, int64_t ty0, int64_t ty1, float bias,
                   float* plane) {
  const __m512 b = _mm512_set1_ps(bias);
  for (int64_t ty = ty0; ty < ty1; ++ty)
    for (int64_t tx0 = 0; tx0 < g.tiles_x; tx0 += 16) {
      const int64_t nt = std::min<int64_t>(16, g.tiles_x - tx0);
      const __mmask16 mask = tail_mask16(nt);
      const float* src = m + (ty - ty0) * g.tiles_x + tx0;
      __m512 S[4][6];  // column transform: S[k][β] = Σ_α A^T[k][α] m[α][β]
      for (int bcol = 0; bcol < 6; ++bcol) {
        __m512 col[6];
        for (int a = 0; a < 6; ++a) col[a] = _mm512_maskz_loadu_ps(mask, src + (a * 6 + bcol) * ld);
        __m512 o[4];
        at6v(col, o);
        for (int k = 0; k < 4; ++k) S[k][bcol] = o[k];
      }
      const int64_t ox0 = 4 * tx0;
      const int64_t cols = std::min<int64_t>(64, g.Wo - ox0);
      for (int k = 0; k < 4; ++k) {
        const int64_t oy = 4 * ty + k;
        if (oy >= g.Ho) break;
        __m512 yv[4], out[4];
        at6v(S[k], yv);
        for (int j = 0; j < 4; ++j) yv[j] = _mm512_add_ps(yv[j], b);
        interleave4(yv, out);
        float* dst = plane + oy * g.Wo + ox0;
        for (int q = 0; q < 4 && 16 * q < cols; ++q) _mm512_mask_storeu_ps(dst + 16 * q, tail_mask16(cols - 16 * q), out[q]);
      }
    }
}

// G applied to three vectors (see g3 in conv_winograd.cc).
inline void g3v(const __m512 x[3], __m512 o[6]) {
  const __m512 p02 = _mm512_add_ps(x[0], x[2]), q02 = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), x[2], x[0]);
  const __m512 sixth = _mm512_set1_ps(-1.0f / 6.0f), twenty4th = _mm512_set1_ps(1.0f / 24.0f);
  const __m512 two = _mm512_set1_ps(2.0f);
  o[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), x[0]);
  o[1] = _mm512_mul_ps(_mm512_add_ps(p02, x[1]), sixth);
  o[2] = _mm512_mul_ps(_mm512_sub_ps(p02, x[1]), sixth);
  o[3] = _mm512_mul_ps(_mm512_fmadd_ps(two, x[1], q02), twenty4th);
  o[4] = _mm512_mul_ps(_mm512_fnmadd_ps(two, x[1], q02), twenty4th);
  o[5] = x[2];
}

// Sixteen filters (input channels c .. c + 15 of one output channel) per step: the nine taps
// gathered at stride 9, transformed on vectors, stored as 16 consecutive values of each U[ξ] row.
void filters_avx512(const float* w, int64_t O, int64_t C, int64_t o0, int64_t o1, float* U) {
  const __m512i stride9 = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(9));
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 mask = tail_mask16(C - c);
      const float* base = w + (o * C + c) * 9;
      __m512 gk[9];
      for (int i = 0; i < 9; ++i)
        gk[i] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, stride9, base + i, 4);
      __m512 t[6][3];  // G g
      for (int j = 0; j < 3; ++j) {
        const __m512 colj[3] = {gk[j], gk[3 + j], gk[6 + j]};
        __m512 o6[6];
        g3v(colj, o6);
        for (int a = 0; a < 6; ++a) t[a][j] = o6[a];
      }
      for (int a = 0; a < 6; ++a) {  // (G g) G^T
        __m512 r[6];
        g3v(t[a], r);
        for (int b = 0; b < 6; ++b) _mm512_mask_storeu_ps(U + (a * 6 + b) * O * C + o * C + c, mask, r[b]);
      }
    }
}

}  // namespace

const WinogradKernels& avx512_winograd_kernels() {
  static const WinogradKernels kernels = {input_avx512, output_avx512, filters_avx512};
  return kernels;
}

}  // namespace vargpt::cpu
