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

// Where one matrix of a group writes: its row count, its output and epilogue.
struct QuantSegment {
  int64_t n = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  GemmEpilogue ep;
};

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

// The loop both integer GEMMs share, over one or more matrices of the same K (a group: the same
// activations through a layer's q/k/v or gate/up projections). Every matrix's rows are cut into
// blocks of kQ8Block and all blocks go out as one parallel job, so a group costs one thread
// hand-off, not one per matrix. Within a block: activation rows in groups of kQ8Rows, kQ8Cols (or
// 1) weight rows per kernel call. `dots(s, m0, rows, n, cols, out)` fills out[m * cols + j] with
// row m0 + m's pre-scale sum for row n + j of matrix s, and `scale(s, sum, m, n)` turns it into the
// output; the bias, the accumulation and the activation follow, as gemm() applies them. A matrix's
// results do not depend on the others in its group: the same kernel calls on the same rows.
//
// `prefetch(s, n0, n1)` requests rows [n0, n1) of matrix s from memory. Before each kernel call on
// the first activation rows, the rows kPrefetchBytes ahead in the task's own stream are requested,
// never past the task's end: a decode step's matrices are small (a few MB, split over the threads),
// so each thread's stream is short and the hardware prefetcher would find it only when it is half
// read. A task's stream runs on from one matrix of the group into the next, and so does the
// prefetch.
template <typename Out, typename Dots, typename Scale, typename Prefetch>
void block_loop(int64_t M, const QuantSegment* segs, int count, int64_t row_bytes, Dots&& dots, Scale&& scale,
                Prefetch&& prefetch) {
  VG_CHECK(count >= 1 && count <= kMaxQuantGroup, "integer GEMM: ", count, " matrices in one group (1 to ",
           kMaxQuantGroup, ")");
  int64_t first_block[kMaxQuantGroup + 1];
  first_block[0] = 0;
  for (int s = 0; s < count; ++s) first_block[s + 1] = first_block[s] + (segs[s].n + kQ8Block - 1) / kQ8Block;
  const int64_t ahead = std::max<int64_t>(kQ8Cols, kPrefetchBytes / std::max<int64_t>(row_bytes, 1));
  parallel_for(first_block[count], 1, [&](int64_t b0, int64_t b1) {
    // The task's rows, matrix by matrix: pieces[i] is rows [lo, hi) of matrix seg, starting at
    // position `at` of the task's stream.
    struct Piece {
      int seg;
      int64_t lo, hi, at;
    };
    Piece pieces[kMaxQuantGroup];
    int count_pieces = 0;
    int64_t stream = 0;
    for (int s = 0; s < count; ++s) {
      const int64_t lb = std::max(b0, first_block[s]), ub = std::min(b1, first_block[s + 1]);
      if (lb >= ub) continue;
      const int64_t lo = (lb - first_block[s]) * kQ8Block, hi = std::min(segs[s].n, (ub - first_block[s]) * kQ8Block);
      pieces[count_pieces++] = {s, lo, hi, stream};
      stream += hi - lo;
    }
    auto prefetch_stream = [&](int64_t p0, int64_t p1) {
      for (int i = 0; i < count_pieces && p0 < p1; ++i) {
        const Piece& pc = pieces[i];
        const int64_t len = pc.hi - pc.lo;
        if (p0 >= pc.at + len) continue;
        const int64_t from = std::max<int64_t>(p0 - pc.at, 0), to = std::min(p1 - pc.at, len);
        if (from < to) prefetch(pc.seg, pc.lo + from, pc.lo + to);
      }
    };
    prefetch_stream(0, std::min(stream, ahead));
    Out out[kQ8Rows * kQ8Cols];
    for (int i = 0; i < count_pieces; ++i) {
      const Piece& pc = pieces[i];
      const QuantSegment& sg = segs[pc.seg];
      const GemmEpilogue& ep = sg.ep;
      for (int64_t n_begin = pc.lo; n_begin < pc.hi; n_begin += kQ8Block) {
        const int64_t n_end = std::min(pc.hi, n_begin + kQ8Block);
        for (int64_t m0 = 0; m0 < M; m0 += kQ8Rows) {
          const int rows = static_cast<int>(std::min<int64_t>(kQ8Rows, M - m0));
          for (int64_t n = n_begin; n < n_end;) {
            const int cols = n + kQ8Cols <= n_end ? kQ8Cols : 1;
            const int64_t next = pc.at + (n - pc.lo) + ahead;
            if (m0 == 0 && next < stream) prefetch_stream(next, std::min(stream, next + cols));
            dots(pc.seg, m0, rows, n, cols, out);
            for (int m = 0; m < rows; ++m) {
              float* c = sg.c + (m0 + m) * sg.ldc + n;
              for (int j = 0; j < cols; ++j) {
                float v = scale(pc.seg, out[m * cols + j], m0 + m, n + j);
                if (ep.bias != nullptr) v += ep.bias[n + j];
                c[j] = ep.accumulate ? c[j] + v : v;
              }
            }
            n += cols;
          }
        }
        if (ep.act != Activation::None)
          for (int64_t m = 0; m < M; ++m)
            active_gemm_kernels().activation(ep.act, sg.c + m * sg.ldc + n_begin, sg.c + m * sg.ldc + n_begin,
                                             n_end - n_begin);
      }
    }
  });
}

}  // namespace

std::string active_q8_kernel() { return use_vnni() ? "avx512-vnni" : use_avx2_int8() ? "avx2" : "portable"; }

void gemm_q8_group(int64_t M, int64_t K, const float* A, int64_t lda, const QuantOutput<Q8Weights>* outs, int count) {
  if (M <= 0 || count <= 0) return;
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
  QuantSegment segs[kMaxQuantGroup];
  VG_CHECK(count <= kMaxQuantGroup, "gemm_q8_group: ", count, " matrices (at most ", kMaxQuantGroup, ")");
  for (int s = 0; s < count; ++s) segs[s] = {outs[s].n, outs[s].c, outs[s].ldc, outs[s].ep};

  block_loop<int32_t>(
      M, segs, count, K,
      [&](int s, int64_t m0, int rows, int64_t n, int cols, int32_t* dots) {
        const Q8Weights& B = outs[s].w;
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
      [&](int s, int32_t dot, int64_t m, int64_t n) { return static_cast<float>(dot) * (sx[m] * outs[s].w.scale[n]); },
      [&](int s, int64_t n0, int64_t n1) { prefetch_lines(outs[s].w.q + n0 * outs[s].w.ld, (n1 - n0) * outs[s].w.ld); });
}

void gemm_q8(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Q8Weights& B, float* C, int64_t ldc,
             const GemmEpilogue& ep) {
  if (N <= 0) return;
  const QuantOutput<Q8Weights> out{B, N, C, ldc, ep};
  gemm_q8_group(M, K, A, lda, &out, 1);
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

void gemm_q4_group(int64_t M, int64_t K, const float* A, int64_t lda, const QuantOutput<Q4Weights>* outs, int count) {
  if (M <= 0 || count <= 0) return;
  VG_CHECK(count <= kMaxQuantGroup, "gemm_q4_group: ", count, " matrices (at most ", kMaxQuantGroup, ")");
  for (int s = 1; s < count; ++s)
    VG_CHECK(outs[s].w.padded_k == outs[0].w.padded_k, "gemm_q4_group: matrices of different K");
  const bool vnni = use_vnni();
  const bool avx2 = !vnni && use_avx2_int8();
  const int64_t Kp = outs[0].w.padded_k, groups = Kp / kQ4Group;
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
  QuantSegment segs[kMaxQuantGroup];
  for (int s = 0; s < count; ++s) segs[s] = {outs[s].n, outs[s].c, outs[s].ldc, outs[s].ep};
  block_loop<float>(
      M, segs, count, row_bytes,
      [&](int s, int64_t m0, int rows, int64_t n, int cols, float* dots) {
        const Q4Weights& B = outs[s].w;
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
      [&](int, float sum, int64_t m, int64_t) { return sum * sx[m]; },
      [&](int s, int64_t n0, int64_t n1) {
        const Q4Weights& B = outs[s].w;
        prefetch_lines(B.packed + n0 * row_bytes, (n1 - n0) * row_bytes);
        prefetch_lines(B.scales + n0 * groups, (n1 - n0) * groups * 2);
      });
}

void gemm_q4(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const Q4Weights& B, float* C, int64_t ldc,
             const GemmEpilogue& ep) {
  if (N <= 0) return;
  const QuantOutput<Q4Weights> out{B, N, C, ldc, ep};
  gemm_q4_group(M, K, A, lda, &out, 1);
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

void linear_quantized_group(const Tensor& x, const std::vector<QuantizedMatrixOut>& outs) {
  const char* op = "linear_quantized_group";
  const int count = static_cast<int>(outs.size());
  const bool int8 = check_quantized_group_kind(op, outs);
  VG_CHECK(count <= kMaxQuantGroup, op, ": ", count, " matrices (at most ", kMaxQuantGroup, " on the CPU)");
  check_dtype(op, "x", x, DType::F32);
  const Rows xr(x);
  const int64_t M = xr.rows(), K = x.rank() >= 1 ? x.dim(-1) : 0;
  VG_CHECK(xr.uniform(), op, ": x needs evenly spaced rows");
  std::vector<std::vector<float>> biases(outs.size());
  std::vector<QuantOutput<Q8Weights>> q8(int8 ? outs.size() : 0);
  std::vector<QuantOutput<Q4Weights>> q4(int8 ? 0 : outs.size());
  for (int i = 0; i < count; ++i) {
    const QuantizedMatrixOut& o = outs[i];
    check_dtype(op, "w", o.w, int8 ? DType::I8 : DType::U8);
    check_dtype(op, "qparams", o.qparams, int8 ? DType::F32 : DType::F16);
    check_dtype(op, "y", o.y, DType::F32);
    const LinearDims dims = int8 ? check_linear_q8_args(x, o.w, o.qparams, o.y) : check_linear_q4_args(x, o.w, o.qparams, o.y);
    if (o.bias != nullptr) {
      check_float(op, "bias", *o.bias);
      VG_CHECK(o.bias->rank() == 1 && o.bias->dim(0) == dims.n, op, ": bias ", o.bias->describe(), " must be [",
               dims.n, "]");
      biases[i] = widen_vector(op, "bias", *o.bias, dims.n);
    }
    const Rows yr(o.y);
    VG_CHECK(yr.uniform(), op, ": y needs evenly spaced rows");
    const GemmEpilogue ep{o.bias ? biases[i].data() : nullptr, nullptr, Activation::None, false};
    float* c = M > 0 ? yr.row<float>(0) : nullptr;
    const int64_t ldc = M > 1 ? yr.row_stride() : dims.n;
    if (int8) {
      const float* qp = o.qparams.data<float>();
      q8[i] = {Q8Weights{static_cast<const int8_t*>(o.w.raw()), K, qp, qp + dims.n}, dims.n, c, ldc, ep};
    } else {
      q4[i] = {Q4Weights{static_cast<const uint8_t*>(o.w.raw()), static_cast<const uint16_t*>(o.qparams.raw()),
                         q4_padded(K)},
               dims.n, c, ldc, ep};
    }
  }
  if (M == 0) return;
  const float* a = xr.row<float>(0);
  const int64_t lda = M > 1 ? xr.row_stride() : K;
  if (int8)
    gemm_q8_group(M, K, a, lda, q8.data(), count);
  else
    gemm_q4_group(M, K, a, lda, q4.data(), count);
}

}  // namespace vargpt::cpu
