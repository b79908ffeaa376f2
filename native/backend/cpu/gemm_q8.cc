// The int8 GEMM's driver, its portable kernel, the row quantizers and linear_q8 (gemm_q8.h).
#include "gemm_q8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../../core/error.h"
#include "cpu_common.h"
#include "cpu_features.h"
#include "cpu_ops.h"

namespace vargpt::cpu {

namespace {

// Rows of activations quantized together, and weight rows per kernel call.
constexpr int kQ8Rows = 4;
constexpr int kQ8Cols = 4;
// Weight rows per parallel task: 64 rows of K bytes stay in L2 while every row group reads them.
constexpr int64_t kQ8Block = 64;
// How far ahead of the kernel the driver requests weight bytes (8 KB measured best of 0, 8, 16 and
// 32 KB for the small preset's int8 and q4 decode on an AVX-512 EPYC; 5-10% over none).
constexpr int64_t kPrefetchBytes = 8192;

bool use_vnni() {
#if defined(VARGPT_HAVE_X86_KERNELS)
  static const bool cpu = x86_supports("avx512vnni") && x86_supports("avx512bw");
  const std::string path = active_gemm_kernels().name;
  return cpu && (path == "avx512" || path == "amx");
#else
  return false;
#endif
}

// The AVX2 kernel: every x86 path but the portable one, where VNNI is not used.
bool use_avx2_int8() {
#if defined(VARGPT_HAVE_X86_KERNELS)
  static const bool cpu = x86_supports("avx2");
  const std::string path = active_gemm_kernels().name;
  return cpu && path != "portable" && !use_vnni();
#else
  return false;
#endif
}

void dots_portable(int rows, int cols, int64_t K, const int8_t* xq, int64_t ldx, const int8_t* q, int64_t ldq,
                   int32_t* out) {
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < cols; ++j) {
      const int8_t* a = xq + m * ldx;
      const int8_t* b = q + j * ldq;
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += int32_t{a[k]} * int32_t{b[k]};
      out[m * cols + j] = s;
    }
}

void q4_dots_portable(int rows, int cols, int64_t Kp, const int8_t* xq, int64_t ldx, const int32_t* xsum,
                      const uint8_t* packed, const uint16_t* scales, float* out) {
  const int64_t row_bytes = Kp / 2, groups = Kp / kQ4Group;
  for (int m = 0; m < rows; ++m)
    for (int j = 0; j < cols; ++j) {
      const uint8_t* p = packed + j * row_bytes;
      const int8_t* x = xq + m * ldx;
      float acc = 0;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t dot = -8 * xsum[m * groups + g];  // the nibbles hold q + 8
        for (int64_t k = g * kQ4Group; k < (g + 1) * kQ4Group; ++k) {
          const int64_t block = k / 64, lane = k % 64;
          const uint8_t byte = p[block * 32 + lane % 32];
          dot += int32_t{lane < 32 ? byte & 0x0f : byte >> 4} * int32_t{x[k]};
        }
        acc += f16_to_f32(scales[j * groups + g]) * static_cast<float>(dot);
      }
      out[m * cols + j] = acc;
    }
}

// Asks for the cache lines of [p, p + bytes) ahead of their use.
inline void prefetch_lines(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 3);
}

// The loop both integer GEMMs share: weight rows in blocks of kQ8Block per task, activation rows
// in groups of kQ8Rows, kQ8Cols (or 1) weight rows per kernel call. `dots(m0, rows, n, cols, out)`
// fills out[m * cols + j] with row m0 + m's pre-scale sum for weight row n + j, and `scale(m, n)`
// turns it into the output; the bias, the accumulation and the activation follow, as gemm() applies
// them.
//
// `prefetch(n0, n1)` requests weight rows [n0, n1) from memory. Before each kernel call on the first
// activation rows, the rows kPrefetchBytes ahead are requested, never past the task's own rows: a
// decode step's matrices are small (a few MB, split over the threads), so each thread's stream is
// short and the hardware prefetcher would find it only when it is half read.
template <typename Out, typename Dots, typename Scale, typename Prefetch>
void block_loop(int64_t M, int64_t N, int64_t row_bytes, float* C, int64_t ldc, const GemmEpilogue& ep, Dots&& dots,
                Scale&& scale, Prefetch&& prefetch) {
  const int64_t blocks = (N + kQ8Block - 1) / kQ8Block;
  const int64_t ahead = std::max<int64_t>(kQ8Cols, kPrefetchBytes / std::max<int64_t>(row_bytes, 1));
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    Out out[kQ8Rows * kQ8Cols];
    const int64_t task_end = std::min(N, b1 * kQ8Block);
    prefetch(b0 * kQ8Block, std::min(task_end, b0 * kQ8Block + ahead));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n_begin = blk * kQ8Block, n_end = std::min(N, n_begin + kQ8Block);
      for (int64_t m0 = 0; m0 < M; m0 += kQ8Rows) {
        const int rows = static_cast<int>(std::min<int64_t>(kQ8Rows, M - m0));
        for (int64_t n = n_begin; n < n_end;) {
          const int cols = n + kQ8Cols <= n_end ? kQ8Cols : 1;
          if (m0 == 0 && n + ahead < task_end) prefetch(n + ahead, std::min(task_end, n + ahead + cols));
          dots(m0, rows, n, cols, out);
          for (int m = 0; m < rows; ++m) {
            float* c = C + (m0 + m) * ldc + n;
            for (int j = 0; j < cols; ++j) {
              float v = scale(out[m * cols + j], m0 + m, n + j);
              if (ep.bias != nullptr) v += ep.bias[n + j];
              c[j] = ep.accumulate ? c[j] + v : v;
            }
          }
          n += cols;
        }
      }
      if (ep.act != Activation::None)
        for (int64_t m = 0; m < M; ++m)
          active_gemm_kernels().activation(ep.act, C + m * ldc + n_begin, C + m * ldc + n_begin, n_end - n_begin);
    }
  });
}

}  // namespace

std::string active_q8_kernel() { return use_vnni() ? "avx512-vnni" : use_avx2_int8() ? "avx2" : "portable"; }

void gemm_q8(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Q8Weights& B, float* C, int64_t ldc,
             const GemmEpilogue& ep) {
  if (M <= 0 || N <= 0) return;
  const bool vnni = use_vnni();
  const bool avx2 = !vnni && use_avx2_int8();
  // Quantized activations: xq (signed) for the portable kernel, xq + 128 (unsigned, rows padded
  // to 64 bytes with 128 = zero) for VNNI.
  const int64_t ldx = (K + 63) / 64 * 64;
  std::vector<int8_t> xq(static_cast<size_t>(M * ldx), 0);
  std::vector<uint8_t> xu(vnni ? static_cast<size_t>(M * ldx) : 0, 128);
  std::vector<float> sx(static_cast<size_t>(M));
  parallel_for(M, grain_for(K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      int8_t* row = xq.data() + m * ldx;
      sx[m] = quantize_q8_row(A + m * lda, K, row);
      if (vnni)
        for (int64_t k = 0; k < K; ++k) xu[m * ldx + k] = static_cast<uint8_t>(int32_t{row[k]} + 128);
    }
  });

  block_loop<int32_t>(
      M, N, B.ld, C, ldc, ep,
      [&](int64_t m0, int rows, int64_t n, int cols, int32_t* dots) {
        const int8_t* q = B.q + n * B.ld;
#if defined(VARGPT_HAVE_X86_KERNELS)
        if (vnni) {
          q8_dots_vnni(rows, cols, K, xu.data() + m0 * ldx, ldx, q, B.ld, dots);
          // The +128 offset of the activations added 128 · Σ_k q[n, k] to every sum.
          for (int m = 0; m < rows; ++m)
            for (int j = 0; j < cols; ++j) dots[m * cols + j] -= 128 * static_cast<int32_t>(B.sum[n + j]);
          return;
        }
        if (avx2) {
          q8_dots_avx2(rows, cols, K, xq.data() + m0 * ldx, ldx, q, B.ld, dots);
          return;
        }
#endif
        dots_portable(rows, cols, K, xq.data() + m0 * ldx, ldx, q, B.ld, dots);
      },
      [&](int32_t dot, int64_t m, int64_t n) { return static_cast<float>(dot) * (sx[m] * B.scale[n]); },
      [&](int64_t n0, int64_t n1) { prefetch_lines(B.q + n0 * B.ld, (n1 - n0) * B.ld); });
}

void linear_q8(const Tensor& x, const Tensor& w, const Tensor& qparams, const Tensor* bias, const Tensor& y,
               Activation act, bool accumulate) {
  check_dtype("linear_q8", "x", x, DType::F32);
  check_dtype("linear_q8", "w", w, DType::I8);
  check_dtype("linear_q8", "qparams", qparams, DType::F32);
  check_dtype("linear_q8", "y", y, DType::F32);
  const LinearDims dims = check_linear_q8_args(x, w, qparams, y);
  const int64_t K = dims.k, N = dims.n;
  std::vector<float> bias_f32;
  if (bias != nullptr) {
    check_float("linear_q8", "bias", *bias);
    VG_CHECK(bias->rank() == 1 && bias->dim(0) == N, "linear_q8: bias ", bias->describe(), " must be [", N, "]");
    bias_f32 = widen_vector("linear_q8", "bias", *bias, N);
  }
  const Rows xr(x), yr(y);
  const int64_t M = xr.rows();
  if (M == 0 || N == 0) return;
  VG_CHECK(xr.uniform() && yr.uniform(), "linear_q8: x and y need evenly spaced rows");
  const float* qp = qparams.data<float>();
  const Q8Weights B{static_cast<const int8_t*>(w.raw()), K, qp, qp + N};
  const GemmEpilogue ep{bias ? bias_f32.data() : nullptr, nullptr, act, accumulate};
  gemm_q8(M, N, K, xr.row<float>(0), M > 1 ? xr.row_stride() : K, B, yr.row<float>(0), M > 1 ? yr.row_stride() : N, ep);
}

void gemm_q4(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Q4Weights& B, float* C, int64_t ldc,
             const GemmEpilogue& ep) {
  if (M <= 0 || N <= 0) return;
  const bool vnni = use_vnni();
  const bool avx2 = !vnni && use_avx2_int8();
  const int64_t Kp = B.padded_k, groups = Kp / kQ4Group;
  std::vector<int8_t> xq(static_cast<size_t>(M * Kp), 0);
  // Σ xq per group (portable) or the VNNI kernel's start values (16 per block, -8 Σ xq of the
  // block's groups in lanes 0 and 8): the nibbles hold q + 8.
  std::vector<int32_t> xsum(static_cast<size_t>(M * groups), 0);
  std::vector<int32_t> corr(vnni ? static_cast<size_t>(M * (Kp / 4)) : 0, 0);
  // The VNNI kernel's activations: permuted within each 128 values to match its two-block steps
  // (q4_dots_vnni), a last lone block of 64 in natural order.
  std::vector<int8_t> xperm(vnni ? static_cast<size_t>(M * Kp) : 0, 0);
  std::vector<float> sx(static_cast<size_t>(M));
  const int64_t pairs_end = Kp / 128 * 128;
  parallel_for(M, grain_for(K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      int8_t* row = xq.data() + m * Kp;
      sx[m] = quantize_q8_row(A + m * lda, K, row);
      for (int64_t k = 0; k < K; ++k) xsum[m * groups + k / kQ4Group] += row[k];
      if (!vnni) continue;
      int32_t* c = corr.data() + m * (Kp / 4);
      int8_t* xp = xperm.data() + m * Kp;
      for (int64_t k = 0; k < pairs_end; k += 128) {
        std::memcpy(xp + k, row + k, 32);
        std::memcpy(xp + k + 32, row + k + 64, 32);
        std::memcpy(xp + k + 64, row + k + 32, 32);
        std::memcpy(xp + k + 96, row + k + 96, 32);
      }
      std::memcpy(xp + pairs_end, row + pairs_end, static_cast<size_t>(Kp - pairs_end));
      for (int64_t g = 0; g < groups; ++g) {
        // Two-block steps: 32 values per step, the low-nibble sums' start then the high's, each
        // with block 0's group in lane 0 and block 1's in lane 8. A lone last block: 16 values,
        // its first group in lane 0 and its second in lane 8.
        const int64_t r = g % 4;
        const int64_t at = g * kQ4Group < pairs_end ? g / 4 * 32 + r % 2 * 16 + r / 2 * 8 : g / 2 * 16 + g % 2 * 8;
        c[at] = -8 * xsum[m * groups + g];
      }
    }
  });
  const int64_t row_bytes = Kp / 2;
  block_loop<float>(
      M, N, row_bytes, C, ldc, ep,
      [&](int64_t m0, int rows, int64_t n, int cols, float* dots) {
        const uint8_t* p = B.packed + n * row_bytes;
        const uint16_t* sc = B.scales + n * groups;
#if defined(VARGPT_HAVE_X86_KERNELS)
        if (vnni) {
          q4_dots_vnni(rows, cols, Kp, xperm.data() + m0 * Kp, Kp, corr.data() + m0 * (Kp / 4), p, sc, dots);
          return;
        }
        if (avx2) {
          q4_dots_avx2(rows, cols, Kp, xq.data() + m0 * Kp, Kp, xsum.data() + m0 * groups, p, sc, dots);
          return;
        }
#endif
        q4_dots_portable(rows, cols, Kp, xq.data() + m0 * Kp, Kp, xsum.data() + m0 * groups, p, sc, dots);
      },
      [&](float sum, int64_t m, int64_t) { return sum * sx[m]; },
      [&](int64_t n0, int64_t n1) {
        prefetch_lines(B.packed + n0 * row_bytes, (n1 - n0) * row_bytes);
        prefetch_lines(B.scales + n0 * groups, (n1 - n0) * groups * 2);
      });
}

void linear_q4(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor* bias, const Tensor& y,
               Activation act, bool accumulate) {
  check_dtype("linear_q4", "x", x, DType::F32);
  check_dtype("linear_q4", "w", w, DType::U8);
  check_dtype("linear_q4", "scales", scales, DType::F16);
  check_dtype("linear_q4", "y", y, DType::F32);
  const LinearDims dims = check_linear_q4_args(x, w, scales, y);
  const int64_t K = dims.k, N = dims.n, Kp = q4_padded(K);
  std::vector<float> bias_f32;
  if (bias != nullptr) bias_f32 = widen_vector("linear_q4", "bias", *bias, N);
  const Rows xr(x), yr(y);
  const int64_t M = xr.rows();
  if (M == 0 || N == 0) return;
  VG_CHECK(xr.uniform() && yr.uniform(), "linear_q4: x and y need evenly spaced rows");
  const Q4Weights B{static_cast<const uint8_t*>(w.raw()), static_cast<const uint16_t*>(scales.raw()), Kp};
  const GemmEpilogue ep{bias ? bias_f32.data() : nullptr, nullptr, act, accumulate};
  gemm_q4(M, N, K, xr.row<float>(0), M > 1 ? xr.row_stride() : K, B, yr.row<float>(0), M > 1 ? yr.row_stride() : N, ep);
}

}  // namespace vargpt::cpu
