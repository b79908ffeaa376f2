// AVX2 + FMA + F16C GEMM kernels (chosen at run time on CPUs without AVX-512).
//
// Micro-kernel: up to 6 rows x 16 columns = 12 ymm accumulators + 2 B vectors + 1 broadcast of
// the 16 registers. Row dots use the same bf16 even/odd widening as the AVX-512 file, 16 values
// of K per 32-byte load.
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

namespace vargpt::cpu {

namespace {

constexpr int kMR = 6;
constexpr int kNR = 16;

inline __m256i tail_mask8(int64_t n) {
  // Lane i is active when i < n (n clamped to 0..8).
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(std::max<int64_t>(n, 0), 8))), lanes);
}

template <int R>
void micro_rows(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int n_valid, bool load_c) {
  __m256 c0[R], c1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp + k * kNR);
    const __m256 b1 = _mm256_load_ps(Bp + k * kNR + 8);
    const float* a = Ap + k * R;
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
  }
  const __m256i m0 = tail_mask8(n_valid), m1 = tail_mask8(n_valid - 8);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    float* c = C + i * ldc;
    __m256 v0 = c0[i], v1 = c1[i];
    if (load_c) {
      v0 = _mm256_add_ps(v0, _mm256_maskload_ps(c, m0));
      v1 = _mm256_add_ps(v1, _mm256_maskload_ps(c + 8, m1));
    }
    _mm256_maskstore_ps(c, m0, v0);
    _mm256_maskstore_ps(c + 8, m1, v1);
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
    default: return;  // the driver never asks for more than kMR rows
  }
}

// ---- packing: 8 x 8 in-register transposes

inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

// 8 values of a row widened to f32, zero beyond `valid` (1..8).
inline __m256 load8(const float* p, int64_t valid) {
  return valid >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask8(valid));
}
inline __m128i load8_u16(const uint16_t* p, int64_t valid) {
  if (valid >= 8) return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  alignas(16) uint16_t tmp[8] = {};
  for (int64_t i = 0; i < valid; ++i) tmp[i] = p[i];
  return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
}
inline __m256 load8_bf16(const uint16_t* p, int64_t valid) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load8_u16(p, valid)), 16));
}
inline __m256 load8_f16(const uint16_t* p, int64_t valid) { return _mm256_cvtph_ps(load8_u16(p, valid)); }

template <typename Src, typename Load>
void pack_nk(const Src* src, int64_t ld, int64_t n0, int64_t n_count, int64_t k0, int64_t kc, float* Bp, Load load) {
  const int64_t panels = (n_count + kNR - 1) / kNR;
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = Bp + p * kc * kNR;
    for (int part = 0; part < kNR / 8; ++part) {
      const int64_t j0 = p * kNR + part * 8;
      const int64_t rows = std::max<int64_t>(0, std::min<int64_t>(8, n_count - j0));
      for (int64_t k = 0; k < kc; k += 8) {
        const int64_t kvalid = std::min<int64_t>(8, kc - k);
        __m256 r[8];
        for (int64_t j = 0; j < 8; ++j)
          r[j] = j < rows ? load(src + (n0 + j0 + j) * ld + k0 + k, kvalid) : _mm256_setzero_ps();
        transpose8(r);
        for (int64_t kk = 0; kk < kvalid; ++kk) _mm256_store_ps(dst + (k + kk) * kNR + part * 8, r[kk]);
      }
    }
  }
}

void pack_b(const GemmB& B, int64_t n0, int64_t n_count, int64_t k0, int64_t kc, float* Bp, int nr) {
  if (B.k_major) {
    if (B.dtype != DType::F32) return portable_gemm_kernels().pack_b(B, n0, n_count, k0, kc, Bp, nr);
    const auto* src = static_cast<const float*>(B.data);
    const int64_t panels = (n_count + kNR - 1) / kNR;
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t cols = std::min<int64_t>(kNR, n_count - p * kNR);
      float* dst = Bp + p * kc * kNR;
      for (int64_t k = 0; k < kc; ++k) {
        const float* row = src + (k0 + k) * B.ld + n0 + p * kNR;
        _mm256_store_ps(dst + k * kNR, cols >= 8 ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, tail_mask8(cols)));
        _mm256_store_ps(dst + k * kNR + 8, cols >= 16 ? _mm256_loadu_ps(row + 8)
                                                      : _mm256_maskload_ps(row + 8, tail_mask8(cols - 8)));
      }
    }
    return;
  }
  switch (B.dtype) {
    case DType::F32: return pack_nk(static_cast<const float*>(B.data), B.ld, n0, n_count, k0, kc, Bp, load8);
    case DType::BF16: return pack_nk(static_cast<const uint16_t*>(B.data), B.ld, n0, n_count, k0, kc, Bp, load8_bf16);
    case DType::F16: return pack_nk(static_cast<const uint16_t*>(B.data), B.ld, n0, n_count, k0, kc, Bp, load8_f16);
    default: return;  // the driver accepts float types only
  }
}

// A micro-panel (rows <= 6): 8 k at a time, transposed in registers, `rows` values stored per k.
void pack_a(const float* src, int64_t ld, int rows, int64_t kc, float scale, float* dst) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256i row_mask = tail_mask8(rows);
  for (int64_t k = 0; k < kc; k += 8) {
    const int64_t kvalid = std::min<int64_t>(8, kc - k);
    __m256 r[8];
    for (int i = 0; i < 8; ++i)
      r[i] = i < rows ? _mm256_mul_ps(load8(src + i * ld + k, kvalid), s) : _mm256_setzero_ps();
    transpose8(r);
    for (int64_t kk = 0; kk < kvalid; ++kk) _mm256_maskstore_ps(dst + (k + kk) * rows, row_mask, r[kk]);
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Weight rows are short next to a 4 KB page (K = 1024 f32 is exactly one), and the hardware
// streamer stops at page edges, so every new row would start cold: each step also asks for the
// same offset in the next group's rows. Past the matrix or the thread's chunk the hint is harmless
// (prefetches do not fault).
inline void prefetch_next_rows(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

// 8 widened weights at w[0..8) for full steps; the K tail is handled by scalar code.
inline __m256 load_w8(const float* w) { return _mm256_loadu_ps(w); }
inline __m256 load_w8(const uint16_t* w) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
}
inline float widen_one(float v) { return v; }

template <int COLS, typename W, typename Widen>
void dots_plain(int rows, int64_t K, const float* A, int64_t lda, const W* w, int64_t ldw, float* out, Widen widen) {
  __m256 acc[kRowGroup][COLS];
  for (int m = 0; m < kRowGroup; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm256_setzero_ps();
  const int64_t body = K / 8 * 8;
  for (int64_t k = 0; k < body; k += 8) {
    __m256 wv[COLS];
    for (int j = 0; j < COLS; ++j) {
      prefetch_next_rows(w + (COLS + j) * ldw + k);
      wv[j] = load_w8(w + j * ldw + k);
    }
    for (int m = 0; m < rows; ++m) {
      const __m256 x = _mm256_loadu_ps(A + m * lda + k);
      for (int j = 0; j < COLS; ++j) acc[m][j] = _mm256_fmadd_ps(x, wv[j], acc[m][j]);
    }
  }
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < COLS; ++j) {
      float s = hsum(acc[m][j]);
      for (int64_t k = body; k < K; ++k) s += A[m * lda + k] * widen(w[j * ldw + k]);
      out[m * COLS + j] = s;
    }
}

// bf16 weights, xs de-interleaved in blocks of 16 ([8 even | 8 odd]) and zero-padded.
template <int COLS>
void dots_bf16(int rows, int64_t K, const float* xs, int64_t ldx, const uint16_t* w, int64_t ldw, float* out) {
  __m256 acc[kRowGroup][COLS];
  for (int m = 0; m < kRowGroup; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm256_setzero_ps();
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  const int64_t body = K / 16 * 16;
  alignas(32) uint16_t tail[COLS][16];
  for (int64_t k = 0; k < ldx; k += 16) {
    __m256 even[COLS], odd[COLS];
    for (int j = 0; j < COLS; ++j) {
      prefetch_next_rows(w + (COLS + j) * ldw + k);
      const uint16_t* src = w + j * ldw + k;
      if (k >= body) {
        // The last partial block: copy the valid weights, zeros after (the padded x is zero too).
        for (int64_t i = 0; i < 16; ++i) tail[j][i] = k + i < K ? src[i] : 0;
        src = tail[j];
      }
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
      even[j] = _mm256_castsi256_ps(_mm256_slli_epi32(raw, 16));
      odd[j] = _mm256_castsi256_ps(_mm256_and_si256(raw, high));
    }
    for (int m = 0; m < rows; ++m) {
      const __m256 xe = _mm256_load_ps(xs + m * ldx + k);
      const __m256 xo = _mm256_load_ps(xs + m * ldx + k + 8);
      for (int j = 0; j < COLS; ++j) {
        acc[m][j] = _mm256_fmadd_ps(xe, even[j], acc[m][j]);
        acc[m][j] = _mm256_fmadd_ps(xo, odd[j], acc[m][j]);
      }
    }
  }
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < COLS; ++j) out[m * COLS + j] = hsum(acc[m][j]);
}

struct F16Widen {
  float operator()(uint16_t v) const { return f16_to_f32(v); }
};
struct F32Widen {
  float operator()(float v) const { return v; }
};

// Activation rows de-interleaved in blocks of 16 ([8 even | 8 odd]) to match the bf16
// widening, zero-padded to row_dots_stride(K).
void split_rows(int rows, int64_t K, const float* A, int64_t lda, float* xs) {
  const int64_t ldx = row_dots_stride(K);
  for (int m = 0; m < rows; ++m) {
    const float* a = A + m * lda;
    float* d = xs + m * ldx;
    for (int64_t k = 0; k < ldx; ++k) {
      const int64_t block = k / 16 * 16, lane = k % 16;
      d[block + (lane & 1) * 8 + lane / 2] = k < K ? a[k] : 0.0f;
    }
  }
}

void row_dots(int rows, int64_t K, const float* A, int64_t lda, const float* xs, const GemmB& B, int64_t n0,
              int64_t n1, float* C, int64_t ldc, bool load_c) {
  constexpr int kCols = 4;
  float out[kRowGroup * kCols];
  const int64_t ldx = row_dots_stride(K);
  auto run = [&](auto cols_tag, int64_t n) {
    constexpr int cols = decltype(cols_tag)::value;
    switch (B.dtype) {
      case DType::F32:
        dots_plain<cols>(rows, K, A, lda, static_cast<const float*>(B.data) + n * B.ld, B.ld, out, F32Widen{});
        break;
      case DType::F16:
        dots_plain<cols>(rows, K, A, lda, static_cast<const uint16_t*>(B.data) + n * B.ld, B.ld, out, F16Widen{});
        break;
      default:
        dots_bf16<cols>(rows, K, xs, ldx, static_cast<const uint16_t*>(B.data) + n * B.ld, B.ld, out);
        break;
    }
    for (int m = 0; m < rows; ++m)
      for (int j = 0; j < cols; ++j) {
        float* c = C + m * ldc + n + j;
        *c = (load_c ? *c : 0.0f) + out[m * cols + j];
      }
  };
  int64_t n = n0;
  for (; n + kCols <= n1; n += kCols) run(std::integral_constant<int, kCols>{}, n);
  for (; n < n1; ++n) run(std::integral_constant<int, 1>{}, n);
}

// exp_approx of cpu_math.h, 8 lanes; 2^n as two exponent-built factors like the scalar code.
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(88.7f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

float exp_shift_sum(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), s));
    _mm256_maskstore_ps(x + i, m, e);
    sum = _mm256_add_ps(sum, _mm256_and_ps(e, _mm256_castsi256_ps(m)));
  }
  return hsum(sum);
}

float max_of(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(x[0]);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; i < n; ++i) r = std::max(r, x[i]);
  return r;
}

float stream_sum(const float* x, int64_t n) {
  const int64_t quarter = n / 4;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < quarter; i += 8) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(x + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(x + quarter + i));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(x + 2 * quarter + i));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(x + 3 * quarter + i));
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

double fma_loop(int64_t iterations) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  }
  __m256 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  volatile float sink = hsum(sum);
  (void)sink;
  return 2.0 * 8 * kChains * static_cast<double>(iterations);
}

// ---- element-wise activations on 8 lanes (formulas of cpu_math.h; one division, see
// simd_avx512.h)

inline __m256 x_sigmoid8(__m256 x, __m256 s) {
  const __m256 e = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), s), x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

inline __m256 gelu_tanh8(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
  const __m256 e = exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), u));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// tanh_approx of cpu_math.h, 8 lanes: both branches, selected per lane.
inline __m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_andnot_ps(sign, x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  const __m256 e = exp8(_mm256_add_ps(a, a));
  __m256 large = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  large = _mm256_or_ps(large, _mm256_and_ps(x, sign));
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

template <typename F>
void map8(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    _mm256_maskstore_ps(y + i, m, f(_mm256_maskload_ps(x + i, m)));
  }
}

void activation(Activation act, const float* x, float* y, int64_t n) {
  switch (act) {
    case Activation::SiLU:
      return map8(x, y, n, [](__m256 v) { return x_sigmoid8(v, _mm256_set1_ps(1.0f)); });
    case Activation::QuickGelu:
      return map8(x, y, n, [](__m256 v) { return x_sigmoid8(v, _mm256_set1_ps(1.702f)); });
    case Activation::GeluTanh:
      return map8(x, y, n, [](__m256 v) { return gelu_tanh8(v); });
    case Activation::Tanh:
      return map8(x, y, n, [](__m256 v) { return tanh8(v); });
    default:  // None (a copy) and the erf GELU, which needs libm's erf
      return portable_gemm_kernels().activation(act, x, y, n);
  }
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(x_sigmoid8(_mm256_loadu_ps(gate + i), one), _mm256_loadu_ps(up + i)));
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    const __m256 g = x_sigmoid8(_mm256_maskload_ps(gate + i, m), one);
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(g, _mm256_maskload_ps(up + i, m)));
  }
}

float dot(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  float sum = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  const __m256 a = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

void scale(float alpha, float* x, int64_t n) {
  const __m256 a = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(a, _mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] *= alpha;
}

}  // namespace

const GemmKernels& avx2_gemm_kernels() {
  static const GemmKernels kernels = {"avx2", kMR,       kNR,      micro,         pack_b, pack_a,
                                      split_rows, row_dots, nullptr, exp_shift_sum, max_of, stream_sum, fma_loop,
                                      activation, swiglu, dot, axpy, scale, nullptr};
  return kernels;
}

}  // namespace vargpt::cpu
