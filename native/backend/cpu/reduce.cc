// Reductions: the mean over one axis. x is viewed as [outer, n, inner]; sums run in double, so
// the result is the f32 rounding of the exact mean to within a few ulp whatever n.
#include "cpu_common.h"
#include "cpu_ops.h"

namespace vargpt::cpu {

void mean(const Tensor& x, int axis, const Tensor& y) {
  const char* op = "mean";
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  const MeanDims d = check_mean_args(op, x, axis, y);
  const int64_t outer = d.outer, n = d.n, inner = d.inner;
  if (outer * inner == 0) return;
  const float* xs = x.data<float>();
  float* ys = y.data<float>();
  const double inv_n = 1.0 / static_cast<double>(n);
  if (inner == 1) {
    // Rows of n contiguous values: eight double partial sums per row (vectorisable).
    parallel_for(outer, grain_for(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* row = xs + r * n;
        double partial[8] = {};
        const int64_t body = n / 8 * 8;
        for (int64_t i = 0; i < body; i += 8)
          for (int j = 0; j < 8; ++j) partial[j] += row[i + j];
        double sum = 0.0;
        for (int64_t i = body; i < n; ++i) sum += row[i];
        for (double p : partial) sum += p;
        ys[r] = static_cast<float>(sum * inv_n);
      }
    });
    return;
  }
  // Columns: each task sums the n planes of a block of `inner` for one outer index, the block
  // read as contiguous runs and accumulated in a double buffer.
  constexpr int64_t kBlock = 512;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  parallel_for(outer * blocks, grain_for(n * kBlock), [&](int64_t t0, int64_t t1) {
    double acc[kBlock];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / blocks, c0 = t % blocks * kBlock, len = std::min(kBlock, inner - c0);
      std::fill(acc, acc + len, 0.0);
      const float* base = xs + o * n * inner + c0;
      for (int64_t i = 0; i < n; ++i) {
        const float* plane = base + i * inner;
        for (int64_t c = 0; c < len; ++c) acc[c] += plane[c];
      }
      float* out = ys + o * inner + c0;
      for (int64_t c = 0; c < len; ++c) out[c] = static_cast<float>(acc[c] * inv_n);
    }
  });
}

}  // namespace vargpt::cpu
