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

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 widened weights at w[0..8) for full steps; the K tail is handled by scalar code.
inline __m256 load_w8(const float* w) { return _mm256_loadu_ps(w); }
inline __m256 load_w8(const uint16_t* w) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
}
inline float widen_one(float v) { return v; }

template <int COLS, typename W, typename Widen>
void dots_plain(int rows, int64_t K, const float* A, int64_t lda, const W* w, int64_t ldw, float* out, Widen widen) {
  __m256 acc[kSmallRows][COLS];
  for (int m = 0; m < kSmallRows; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm256_setzero_ps();
  const int64_t body = K / 8 * 8;
  for (int64_t k = 0; k < body; k += 8) {
    __m256 wv[COLS];
    for (int j = 0; j < COLS; ++j) wv[j] = load_w8(w + j * ldw + k);
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
  __m256 acc[kSmallRows][COLS];
  for (int m = 0; m < kSmallRows; ++m)
    for (int j = 0; j < COLS; ++j) acc[m][j] = _mm256_setzero_ps();
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  const int64_t body = K / 16 * 16;
  alignas(32) uint16_t tail[COLS][16];
  for (int64_t k = 0; k < ldx; k += 16) {
    __m256 even[COLS], odd[COLS];
    for (int j = 0; j < COLS; ++j) {
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

void row_dots(int rows, int64_t K, const float* A, int64_t lda, const GemmB& B, int64_t n0, int64_t n1, float* C,
              int64_t ldc, bool load_c, float* scratch) {
  constexpr int kCols = 4;
  float out[kSmallRows * kCols];
  const float* xs = nullptr;
  int64_t ldx = 0;
  if (B.dtype == DType::BF16) {
    ldx = (K + 15) / 16 * 16;
    float* buf = scratch;
    for (int m = 0; m < rows; ++m) {
      const float* a = A + m * lda;
      float* d = buf + m * ldx;
      for (int64_t k = 0; k < ldx; ++k) {
        const int64_t block = k / 16 * 16, lane = k % 16;
        d[block + (lane & 1) * 8 + lane / 2] = k < K ? a[k] : 0.0f;
      }
    }
    xs = buf;
  }
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

}  // namespace

const GemmKernels& avx2_gemm_kernels() {
  static const GemmKernels kernels = {"avx2", kMR, kNR, micro, portable_gemm_kernels().pack_b, row_dots, fma_loop};
  return kernels;
}

}  // namespace vargpt::cpu
