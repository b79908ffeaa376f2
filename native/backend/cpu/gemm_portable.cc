// The portable GEMM kernels: plain loops that compilers vectorise for whatever the baseline
// target offers (SSE2 on x86-64, NEON on arm64). The instruction-set kernels live in
// gemm_avx2.cc, gemm_avx512.cc and gemm_amx.cc; the driver that calls them in gemm.cc.
#include <algorithm>
#include <cstdint>

#include "cpu_common.h"
#include "cpu_math.h"
#include "gemm.h"

namespace vargpt::cpu {

namespace {
// ---- portable kernels: plain loops over fixed-size arrays, which compilers vectorise for
// whatever the baseline target offers (SSE2 on x86-64, NEON on arm64). The 4 x 8 register tile
// fits the 16 registers of SSE2 (8 accumulators, 2 B vectors, a broadcast); larger tiles spill.

constexpr int kPortableMR = 4;
constexpr int kPortableNR = 8;

template <int R>
void portable_micro_rows(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int n_valid,
                         bool load_c) {
  float acc[R][kPortableNR];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < kPortableNR; ++j) acc[i][j] = 0.0f;
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = Bp + k * kPortableNR;
    for (int i = 0; i < R; ++i) {
      const float a = Ap[k * R + i];
      for (int j = 0; j < kPortableNR; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < R; ++i) {
    float* c = C + i * ldc;
    for (int j = 0; j < n_valid; ++j) c[j] = (load_c ? c[j] : 0.0f) + acc[i][j];
  }
}

void portable_micro(int rows, int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int n_valid,
                    bool load_c) {
  switch (rows) {
    case 1: return portable_micro_rows<1>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 2: return portable_micro_rows<2>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 3: return portable_micro_rows<3>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    case 4: return portable_micro_rows<4>(kc, Ap, Bp, C, ldc, n_valid, load_c);
    default: fail("gemm: portable micro-kernel called with ", rows, " rows");
  }
}

template <typename Widen>
void pack_b_typed(const GemmB& B, int64_t n0, int64_t n_count, int64_t k0, int64_t kc, float* Bp, int nr,
                  Widen widen) {
  using Src = typename Widen::Src;
  const auto* src = static_cast<const Src*>(B.data);
  const int64_t panels = (n_count + nr - 1) / nr;
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = Bp + p * kc * nr;
    const int64_t cols = std::min<int64_t>(nr, n_count - p * nr);
    if (B.k_major) {
      for (int64_t k = 0; k < kc; ++k) {
        const Src* row = src + (k0 + k) * B.ld + n0 + p * nr;
        float* d = dst + k * nr;
        for (int64_t j = 0; j < cols; ++j) d[j] = widen(row[j]);
        for (int64_t j = cols; j < nr; ++j) d[j] = 0.0f;
      }
    } else {
      for (int64_t j = 0; j < cols; ++j) {
        const Src* row = src + (n0 + p * nr + j) * B.ld + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = widen(row[k]);
      }
      for (int64_t j = cols; j < nr; ++j)
        for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = 0.0f;
    }
  }
}

struct WidenF32 {
  using Src = float;
  float operator()(float v) const { return v; }
};
struct WidenBF16 {
  using Src = uint16_t;
  float operator()(uint16_t v) const { return bf16_to_f32(v); }
};
struct WidenF16 {
  using Src = uint16_t;
  float operator()(uint16_t v) const { return f16_to_f32(v); }
};

void portable_pack_b(const GemmB& B, int64_t n0, int64_t n_count, int64_t k0, int64_t kc, float* Bp, int nr) {
  switch (B.dtype) {
    case DType::F32: return pack_b_typed(B, n0, n_count, k0, kc, Bp, nr, WidenF32{});
    case DType::BF16: return pack_b_typed(B, n0, n_count, k0, kc, Bp, nr, WidenBF16{});
    case DType::F16: return pack_b_typed(B, n0, n_count, k0, kc, Bp, nr, WidenF16{});
    default: fail("gemm: B of type ", dtype_name(B.dtype), " is not a float type");
  }
}

void portable_pack_a(const float* src, int64_t ld, int rows, int64_t kc, float scale, float* dst) {
  // Blocks of 16 k keep both the reads and the writes within a few cache lines.
  for (int64_t k0 = 0; k0 < kc; k0 += 16) {
    const int64_t k1 = std::min<int64_t>(kc, k0 + 16);
    for (int i = 0; i < rows; ++i) {
      const float* s = src + i * ld;
      for (int64_t k = k0; k < k1; ++k) dst[k * rows + i] = s[k] * scale;
    }
  }
}

// Dot of a widened weight row chunk with up to kRowGroup activation rows. Sixteen partial sums
// per row let the compiler vectorise a float reduction it may not reorder on its own.
// The portable row dots read A directly; nothing to re-arrange.
void portable_split_rows(int, int64_t, const float*, int64_t, float*) {}

void portable_row_dots(int rows, int64_t K, const float* A, int64_t lda, const float* /*xs*/, const GemmB& B,
                       int64_t n0, int64_t n1, float* C, int64_t ldc, bool load_c) {
  constexpr int64_t kChunk = 512;
  alignas(64) float wrow[kChunk];
  const size_t item = dtype_size(B.dtype);
  for (int64_t n = n0; n < n1; ++n) {
    const char* wsrc = static_cast<const char*>(B.data) + static_cast<size_t>(n * B.ld) * item;
    float partial[kRowGroup][16] = {};
    float tail[kRowGroup] = {};
    for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
      const int64_t len = std::min(kChunk, K - k0);
      convert_to_f32(B.dtype, wsrc + static_cast<size_t>(k0) * item, wrow, static_cast<size_t>(len));
      const int64_t body = len / 16 * 16;
      for (int m = 0; m < rows; ++m) {
        const float* a = A + m * lda + k0;
        for (int64_t k = 0; k < body; k += 16)
          for (int j = 0; j < 16; ++j) partial[m][j] += a[k + j] * wrow[k + j];
        for (int64_t k = body; k < len; ++k) tail[m] += a[k] * wrow[k];
      }
    }
    for (int m = 0; m < rows; ++m) {
      float sum = tail[m];
      for (int j = 0; j < 16; ++j) sum += partial[m][j];
      float* c = C + m * ldc + n;
      *c = (load_c ? *c : 0.0f) + sum;
    }
  }
}

double portable_fma_loop(int64_t iterations) {
  // Sixteen independent chains of 8 lanes; volatile seeds keep the compiler from folding the loop.
  volatile float seed = 1.0f;
  float acc[16][8];
  for (int c = 0; c < 16; ++c)
    for (int j = 0; j < 8; ++j) acc[c][j] = seed * static_cast<float>(c + j);
  const float a = seed * 0.999999f, b = seed * 1e-7f;
  for (int64_t it = 0; it < iterations; ++it)
    for (int c = 0; c < 16; ++c)
      for (int j = 0; j < 8; ++j) acc[c][j] = acc[c][j] * a + b;
  float sink = 0;
  for (int c = 0; c < 16; ++c)
    for (int j = 0; j < 8; ++j) sink += acc[c][j];
  seed = sink;
  return 2.0 * 16 * 8 * static_cast<double>(iterations);
}

float portable_exp_shift_sum(float* x, int64_t n, float shift) {
  float partial[8] = {};
  const int64_t body = n / 8 * 8;
  for (int64_t i = 0; i < body; i += 8)
    for (int j = 0; j < 8; ++j) {
      x[i + j] = exp_approx(x[i + j] - shift);
      partial[j] += x[i + j];
    }
  float sum = 0.0f;
  for (int64_t i = body; i < n; ++i) {
    x[i] = exp_approx(x[i] - shift);
    sum += x[i];
  }
  for (float v : partial) sum += v;
  return sum;
}

float portable_max_of(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float portable_stream_sum(const float* x, int64_t n) {
  const int64_t quarter = n / 4;
  float partial[4][4] = {};
  for (int64_t i = 0; i < quarter; i += 4)
    for (int s = 0; s < 4; ++s)
      for (int j = 0; j < 4; ++j) partial[s][j] += x[s * quarter + i + j];
  float sum = 0;
  for (auto& p : partial)
    for (float v : p) sum += v;
  return sum;
}

void portable_swiglu(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = silu(gate[i]) * up[i];
}

// Sixteen partial sums: vectorisable without reassociation flags.
float portable_dot(const float* a, const float* b, int64_t n) {
  float partial[16] = {};
  const int64_t body = n / 16 * 16;
  for (int64_t i = 0; i < body; i += 16)
    for (int j = 0; j < 16; ++j) partial[j] += a[i + j] * b[i + j];
  float sum = 0.0f;
  for (int64_t i = body; i < n; ++i) sum += a[i] * b[i];
  for (int j = 0; j < 16; ++j) sum += partial[j];
  return sum;
}

void portable_axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void portable_scale(float alpha, float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

// No mid_rows kernel: with SSE2's 16 registers the packed path is as good.
const GemmKernels kPortable = {"portable",          kPortableMR,       kPortableNR,     portable_micro,
                               portable_pack_b,     portable_pack_a,   portable_split_rows,
                               portable_row_dots,   nullptr,           portable_exp_shift_sum,
                               portable_max_of,     portable_stream_sum, portable_fma_loop,
                               activation_run,      portable_swiglu,    portable_dot,    portable_axpy,
                               portable_scale,      nullptr};

}  // namespace

const GemmKernels& portable_gemm_kernels() { return kPortable; }

}  // namespace vargpt::cpu
