// AVX-512 GEMM kernels (compiled with -mavx512f/bw/vl/dq; chosen at run time only on CPUs that
// report those features).
//
// Micro-kernel: up to 14 rows x 32 columns = 28 zmm accumulators, two B vectors per k and the A
// values broadcast from memory, so each k costs 2 loads + 14 broadcasts for 28 FMAs: the FMA
// ports, not the load ports, are the limit.
//
// bf16 widening trick (row dots): 32 bf16 values loaded as 16 dwords give the odd elements as
// f32 by masking the low half (dword & 0xffff0000) and the even ones by shifting left 16. The
// activation row is de-interleaved once into [even | odd] blocks of 16 to match, so a 64-byte
// load costs two integer ops and two FMAs per activation row.
#include <immintrin.h>

// GCC 12 flags the intentionally undefined pass-through operands of the mask intrinsics
// (_mm512_undefined_ps and friends) as uninitialised: a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <type_traits>

// Only gemm.h: inline functions from shared headers compiled here with wider instruction sets
// could be picked by the linker for the portable code too.
#include "gemm.h"
#include "simd_avx512.h"

namespace vargpt::cpu {

namespace {

constexpr int kMR = 14;
constexpr int kNR = 32;

template <int R>
void micro_rows(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int n_valid, bool load_c) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(Bp + k * kNR);
    const __m512 b1 = _mm512_load_ps(Bp + k * kNR + 16);
    const float* a = Ap + k * R;
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
  }
  const __mmask16 m0 = n_valid >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n_valid) - 1);
  const __mmask16 m1 =
      n_valid >= 32 ? static_cast<__mmask16>(0xffff)
                    : (n_valid <= 16 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << (n_valid - 16)) - 1));
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    float* c = C + i * ldc;
    __m512 v0 = c0[i], v1 = c1[i];
    if (load_c) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
    }
    _mm512_mask_storeu_ps(c, m0, v0);
    _mm512_mask_storeu_ps(c + 16, m1, v1);
  }
}

void micro(int rows, int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int n_valid, bool load_c) {
  switch (rows) {
    case 1: return micro_rows<1>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 2: return micro_rows<2>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 3: return micro_rows<3>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 4: return micro_rows<4>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 5: return micro_rows<5>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 6: return micro_rows<6>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 7: return micro_rows<7>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 8: return micro_rows<8>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 9: return micro_rows<9>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 10: return micro_rows<10>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 11: return micro_rows<11>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 12: return micro_rows<12>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 13: return micro_rows<13>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 14: return micro_rows<14>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    default: return;  // the driver never asks for more than kMR rows
  }
}

// ---- packing B into [k][32] micro-panels, widened to f32

// 16 consecutive values of one weight row widened to f32, zero beyond `valid`.
inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16_bf16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
inline __m512 load16_f16(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

template <typename Src, typename Load>
void pack_nk(const Src* src, int64_t ld, int64_t n0, int64_t n_count, int64_t k0, int64_t kc, float* Bp, Load load) {
  const int64_t panels = (n_count + kNR - 1) / kNR;
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = Bp + p * kc * kNR;
    for (int half = 0; half < 2; ++half) {
      const int64_t j0 = p * kNR + half * 16;
      const int64_t rows = std::max<int64_t>(0, std::min<int64_t>(16, n_count - j0));
      for (int64_t k = 0; k < kc; k += 16) {
        const int64_t kvalid = std::min<int64_t>(16, kc - k);
        const __mmask16 m = tail_mask16(kvalid);
        __m512 r[16];
        for (int64_t j = 0; j < 16; ++j)
          r[j] = j < rows ? load(src + (n0 + j0 + j) * ld + k0 + k, m) : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t kk = 0; kk < kvalid; ++kk) _mm512_store_ps(dst + (k + kk) * kNR + half * 16, r[kk]);
      }
    }
  }
}

void pack_b(const GemmB& B, int64_t n0, int64_t n_count, int64_t k0, int64_t kc, float* Bp, int nr) {
  if (B.k_major) {
    // Rows of B are already along n: a masked copy per k (only f32 reaches here: im2col).
    if (B.dtype != DType::F32) return portable_gemm_kernels().pack_b(B, n0, n_count, k0, kc, Bp, nr);
    const auto* src = static_cast<const float*>(B.data);
    const int64_t panels = (n_count + kNR - 1) / kNR;
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t cols = std::min<int64_t>(kNR, n_count - p * kNR);
      const __mmask16 m0 = tail_mask16(cols), m1 = tail_mask16(std::max<int64_t>(0, cols - 16));
      float* dst = Bp + p * kc * kNR;
      for (int64_t k = 0; k < kc; ++k) {
        const float* row = src + (k0 + k) * B.ld + n0 + p * kNR;
        _mm512_store_ps(dst + k * kNR, _mm512_maskz_loadu_ps(m0, row));
        _mm512_store_ps(dst + k * kNR + 16, _mm512_maskz_loadu_ps(m1, row + 16));
      }
    }
    return;
  }
  switch (B.dtype) {
    case DType::F32: return pack_nk(static_cast<const float*>(B.data), B.ld, n0, n_count, k0, kc, Bp, load16);
    case DType::BF16: return pack_nk(static_cast<const uint16_t*>(B.data), B.ld, n0, n_count, k0, kc, Bp, load16_bf16);
    case DType::F16: return pack_nk(static_cast<const uint16_t*>(B.data), B.ld, n0, n_count, k0, kc, Bp, load16_f16);
    default: return;  // the driver accepts float types only
  }
}

// A micro-panel: 16 k at a time, rows (<= 14) loaded as vectors, transposed in registers and
// stored as columns of `rows` values.
void pack_a(const float* src, int64_t ld, int rows, int64_t kc, float scale, float* dst) {
  const __m512 s = _mm512_set1_ps(scale);
  const __mmask16 row_mask = tail_mask16(rows);
  for (int64_t k = 0; k < kc; k += 16) {
    const int64_t kvalid = std::min<int64_t>(16, kc - k);
    const __mmask16 m = tail_mask16(kvalid);
    __m512 r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + i * ld + k), s) : _mm512_setzero_ps();
    transpose16(r);
    for (int64_t kk = 0; kk < kvalid; ++kk) _mm512_mask_storeu_ps(dst + (k + kk) * rows, row_mask, r[kk]);
  }
}

// ---- mid rows (kMidRowsMin <= M <= kMidRowsMax): vectors along M, weights broadcast

constexpr int64_t kMidKC = 256;  // K block of the widened weights (NB rows x kMidKC floats in L1)

inline void widen16(const float* src, float* dst, __mmask16 m) { _mm512_store_ps(dst, _mm512_maskz_loadu_ps(m, src)); }
inline void widen16(const uint16_t* src, float* dst, __mmask16 m, DType dtype) {
  const __m256i raw = _mm256_maskz_loadu_epi16(m, src);
  _mm512_store_ps(dst, dtype == DType::BF16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16))
                                            : _mm512_cvtph_ps(raw));
}

// One tile: NB weight rows from n against V vectors of 16 rows of A^T (xt, [K][V * 16]).
template <int V, int NB>
void mid_tile(int64_t M, int64_t K, const float* xt, const GemmB& B, int64_t n, int nb, float* wf, float* C,
              int64_t ldc, bool load_c) {
  __m512 acc[NB][V];
  for (int r = 0; r < NB; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  const size_t item = dtype_size(B.dtype);
  for (int64_t k0 = 0; k0 < K; k0 += kMidKC) {
    const int64_t kc = std::min(kMidKC, K - k0);
    // Widen the block of weight rows once; rows beyond nb stay zero and are never stored.
    for (int r = 0; r < NB; ++r) {
      float* dst = wf + r * kMidKC;
      if (r >= nb) {
        for (int64_t k = 0; k < kc; k += 16) _mm512_store_ps(dst + k, _mm512_setzero_ps());
        continue;
      }
      const char* row = static_cast<const char*>(B.data) + static_cast<size_t>((n + r) * B.ld + k0) * item;
      for (int64_t k = 0; k < kc; k += 16) {
        const __mmask16 m = tail_mask16(kc - k);
        if (B.dtype == DType::F32)
          widen16(reinterpret_cast<const float*>(row) + k, dst + k, m);
        else
          widen16(reinterpret_cast<const uint16_t*>(row) + k, dst + k, m, B.dtype);
      }
    }
    const float* x = xt + k0 * V * 16;
    // The next block of weights streams from memory while this one computes: one prefetched
    // line per k step covers the nb rows (at most 14 x 16 lines).
    const int64_t next = k0 + kMidKC;
    const int64_t lines_per_row = kMidKC * static_cast<int64_t>(item) / 64;
    const int64_t next_lines = next < K ? nb * lines_per_row : 0;
    const char* wbase = static_cast<const char*>(B.data) + static_cast<size_t>(n * B.ld + next) * item;
    for (int64_t k = 0; k < kc; ++k) {
      if (k < next_lines)
        _mm_prefetch(wbase + static_cast<size_t>(k / lines_per_row * B.ld) * item + k % lines_per_row * 64,
                     _MM_HINT_T0);
      __m512 xv[V];
      for (int v = 0; v < V; ++v) xv[v] = _mm512_load_ps(x + k * V * 16 + v * 16);
#pragma GCC unroll 16
      for (int r = 0; r < NB; ++r) {
        const __m512 w = _mm512_set1_ps(wf[r * kMidKC + k]);
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(w, xv[v], acc[r][v]);
      }
    }
  }
  // acc[r][v] holds column n + r of rows v*16 .. v*16+15: store it down the column.
  alignas(64) float col[16];
  for (int r = 0; r < nb; ++r)
    for (int v = 0; v < V; ++v) {
      _mm512_store_ps(col, acc[r][v]);
      const int64_t rows = std::min<int64_t>(16, M - v * 16);
      for (int64_t i = 0; i < rows; ++i) {
        float* c = C + (v * 16 + i) * ldc + n + r;
        *c = (load_c ? *c : 0.0f) + col[i];
      }
    }
}

template <int V, int NB>
void mid_rows_v(int64_t M, int64_t K, const float* xt, const GemmB& B, int64_t n0, int64_t n1, float* wf, float* C,
                int64_t ldc, bool load_c) {
  for (int64_t n = n0; n < n1; n += NB)
    mid_tile<V, NB>(M, K, xt, B, n, static_cast<int>(std::min<int64_t>(NB, n1 - n)), wf, C, ldc, load_c);
}

void mid_rows(int64_t M, int64_t K, const float* A, int64_t lda, const GemmB& B, int64_t n0, int64_t n1, float* C,
              int64_t ldc, bool load_c, float* scratch) {
  const int V = static_cast<int>((M + 15) / 16);
  // A^T in vectors of 16 rows, zero rows past M: xt[k][v * 16 + i] = A[v * 16 + i][k].
  float* xt = scratch;
  float* wf = scratch + K * V * 16;
  for (int v = 0; v < V; ++v) {
    const int rows = static_cast<int>(std::min<int64_t>(16, M - v * 16));
    for (int64_t k = 0; k < K; k += 16) {
      const int64_t kvalid = std::min<int64_t>(16, K - k);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(tail_mask16(kvalid), A + (v * 16 + i) * lda + k) : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t kk = 0; kk < kvalid; ++kk) _mm512_store_ps(xt + (k + kk) * V * 16 + v * 16, r[kk]);
    }
  }
  // Register tiles of NB x V accumulators (at most 28 of the 32 zmm registers).
  switch (V) {
    case 1: return mid_rows_v<1, 14>(M, K, xt, B, n0, n1, wf, C, ldc, load_c);
    case 2: return mid_rows_v<2, 14>(M, K, xt, B, n0, n1, wf, C, ldc, load_c);
    case 3: return mid_rows_v<3, 9>(M, K, xt, B, n0, n1, wf, C, ldc, load_c);
    default: return mid_rows_v<4, 7>(M, K, xt, B, n0, n1, wf, C, ldc, load_c);
  }
}

// ---- row dots (M <= kRowGroup)

// Weight rows are short next to a 4 KB page (K = 1024 f32 is exactly one), and the hardware
// streamer stops at page edges, so every new row would start cold: each step also asks for the
// same offset in the next group's rows, keeping twice as many lines in flight. Past the matrix or
// the thread's chunk the hint is harmless (prefetches do not fault).
inline void prefetch_next_rows(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

// Widened weights for the f32 and f16 paths: 16 values at w[k..k+16), masked beyond `valid`.
inline __m512 load_w16(const float* w, int64_t valid) { return _mm512_maskz_loadu_ps(tail_mask16(valid), w); }
inline __m512 load_w16(const uint16_t* w, int64_t valid) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail_mask16(valid), w));
}

// COLS weight rows against `rows` activation rows, 16 values of K per step.
template <int COLS, typename W>
void dots_plain(int rows, int64_t K, const float* A, int64_t lda, const W* w, int64_t ldw,
                float* out /*[rows][COLS]*/) {
  __m512 acc[kRowGroup][COLS];
  for (int m = 0; m < kRowGroup; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const int64_t valid = K - k;
    __m512 wv[COLS];
#pragma GCC unroll 4
    for (int j = 0; j < COLS; ++j) {
      prefetch_next_rows(w + (COLS + j) * ldw + k);
      wv[j] = load_w16(w + j * ldw + k, valid);
    }
    for (int m = 0; m < rows; ++m) {
      const __m512 x = _mm512_maskz_loadu_ps(tail_mask16(valid), A + m * lda + k);
#pragma GCC unroll 4
      for (int j = 0; j < COLS; ++j) acc[m][j] = _mm512_fmadd_ps(x, wv[j], acc[m][j]);
    }
  }
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < COLS; ++j) out[m * COLS + j] = _mm512_reduce_add_ps(acc[m][j]);
}

// bf16 weights with the even/odd trick; xs holds each activation row de-interleaved in blocks of
// 32 ([16 even | 16 odd]), zero-padded to a multiple of 32.
template <int COLS>
void dots_bf16(int rows, int64_t K, const float* xs, int64_t ldx, const uint16_t* w, int64_t ldw, float* out) {
  __m512 acc[kRowGroup][COLS];
  for (int m = 0; m < kRowGroup; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm512_setzero_ps();
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t k = 0; k < K; k += 32) {
    const int64_t valid = K - k;
    const __mmask32 mask = valid >= 32 ? 0xffffffffu : static_cast<__mmask32>((1u << valid) - 1);
    __m512 even[COLS], odd[COLS];
#pragma GCC unroll 4
    for (int j = 0; j < COLS; ++j) {
      prefetch_next_rows(w + (COLS + j) * ldw + k);
      const __m512i raw = _mm512_maskz_loadu_epi16(mask, w + j * ldw + k);
      even[j] = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
      odd[j] = _mm512_castsi512_ps(_mm512_and_si512(raw, high));
    }
    for (int m = 0; m < rows; ++m) {
      const __m512 xe = _mm512_load_ps(xs + m * ldx + k);
      const __m512 xo = _mm512_load_ps(xs + m * ldx + k + 16);
#pragma GCC unroll 4
      for (int j = 0; j < COLS; ++j) {
        acc[m][j] = _mm512_fmadd_ps(xe, even[j], acc[m][j]);
        acc[m][j] = _mm512_fmadd_ps(xo, odd[j], acc[m][j]);
      }
    }
  }
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < COLS; ++j) out[m * COLS + j] = _mm512_reduce_add_ps(acc[m][j]);
}

// Activation rows de-interleaved in blocks of 32 ([16 even | 16 odd]) to match the bf16
// widening, zero-padded to row_dots_stride(K).
void split_rows(int rows, int64_t K, const float* A, int64_t lda, float* xs) {
  const int64_t ldx = row_dots_stride(K);
  for (int m = 0; m < rows; ++m) {
    const float* a = A + m * lda;
    float* d = xs + m * ldx;
    for (int64_t k = 0; k < ldx; ++k) {
      const int64_t block = k / 32 * 32, lane = k % 32;
      d[block + (lane & 1) * 16 + lane / 2] = k < K ? a[k] : 0.0f;
    }
  }
}

void row_dots(int rows, int64_t K, const float* A, int64_t lda, const float* xs, const GemmB& B, int64_t n0,
              int64_t n1, float* C, int64_t ldc, bool load_c) {
  constexpr int kCols = 4;
  float out[kRowGroup * kCols];
  const int64_t ldx = row_dots_stride(K);
  auto store = [&](int64_t n, int cols) {
    for (int m = 0; m < rows; ++m)
      for (int j = 0; j < cols; ++j) {
        float* c = C + m * ldc + n + j;
        *c = (load_c ? *c : 0.0f) + out[m * cols + j];
      }
  };
  int64_t n = n0;
  for (; n + kCols <= n1; n += kCols) {
    switch (B.dtype) {
      case DType::F32:
        dots_plain<kCols>(rows, K, A, lda, static_cast<const float*>(B.data) + n * B.ld, B.ld, out);
        break;
      case DType::F16:
        dots_plain<kCols>(rows, K, A, lda, static_cast<const uint16_t*>(B.data) + n * B.ld, B.ld, out);
        break;
      default:
        dots_bf16<kCols>(rows, K, xs, ldx, static_cast<const uint16_t*>(B.data) + n * B.ld, B.ld, out);
        break;
    }
    store(n, kCols);
  }
  for (; n < n1; ++n) {
    switch (B.dtype) {
      case DType::F32:
        dots_plain<1>(rows, K, A, lda, static_cast<const float*>(B.data) + n * B.ld, B.ld, out);
        break;
      case DType::F16:
        dots_plain<1>(rows, K, A, lda, static_cast<const uint16_t*>(B.data) + n * B.ld, B.ld, out);
        break;
      default:
        dots_bf16<1>(rows, K, xs, ldx, static_cast<const uint16_t*>(B.data) + n * B.ld, B.ld, out);
        break;
    }
    store(n, 1);
  }
}

float exp_shift_sum(float* x, int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(m, e));
  }
  return _mm512_reduce_add_ps(sum);
}

float max_of(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(x[0]);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 valid = tail_mask16(n - i);
    m = _mm512_mask_max_ps(m, valid, m, _mm512_maskz_loadu_ps(valid, x + i));
  }
  return _mm512_reduce_max_ps(m);
}

float stream_sum(const float* x, int64_t n) {
  const int64_t quarter = n / 4;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < quarter; i += 16) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(x + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(x + quarter + i));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(x + 2 * quarter + i));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(x + 3 * quarter + i));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

double fma_loop(int64_t iterations) {
  // Twelve independent chains: FMA latency (4 cycles) x 2 ports needs at least 8 in flight.
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  }
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return 2.0 * 16 * kChains * static_cast<double>(iterations);
}

// ---- element-wise activations on 16 lanes (formulas of cpu_math.h via simd_avx512.h)

template <typename F>
void map16(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = tail_mask16(n - i);
    _mm512_mask_storeu_ps(y + i, m, f(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void activation(Activation act, const float* x, float* y, int64_t n) {
  switch (act) {
    case Activation::SiLU:
      return map16(x, y, n, [](__m512 v) { return x_sigmoid16(v, _mm512_set1_ps(1.0f)); });
    case Activation::QuickGelu:
      return map16(x, y, n, [](__m512 v) { return x_sigmoid16(v, _mm512_set1_ps(1.702f)); });
    case Activation::GeluTanh:
      return map16(x, y, n, [](__m512 v) { return gelu_tanh16(v); });
    case Activation::Tanh:
      return map16(x, y, n, [](__m512 v) { return tanh16(v); });
    default:  // None (a copy) and the erf GELU, which needs libm's erf
      return portable_gemm_kernels().activation(act, x, y, n);
  }
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_mul_ps(x_sigmoid16(_mm512_loadu_ps(gate + i), one), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = tail_mask16(n - i);
    const __m512 g = x_sigmoid16(_mm512_maskz_loadu_ps(m, gate + i), one);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

float dot(const float* a, const float* b, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  const __m512 a = _mm512_set1_ps(alpha);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void scale(float alpha, float* x, int64_t n) {
  const __m512 a = _mm512_set1_ps(alpha);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace

const GemmKernels& avx512_gemm_kernels() {
  static const GemmKernels kernels = {"avx512", kMR,      kNR,      micro,         pack_b, pack_a,     split_rows,
                                      row_dots, mid_rows, exp_shift_sum, max_of, stream_sum, fma_loop,
                                      activation, swiglu, dot, axpy, scale, nullptr};
  return kernels;
}

}  // namespace vargpt::cpu
