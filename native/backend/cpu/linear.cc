// linear(): argument checks and the mapping of [..., K] activations onto the GEMM.
#include <vector>

#include "cpu_common.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, Activation act, bool accumulate) {
  check_dtype("linear", "x", x, DType::F32);
  check_float("linear", "w", w);
  check_dtype("linear", "y", y, DType::F32);
  VG_CHECK(x.rank() >= 1, "linear: x ", x.describe(), " must have at least one axis");
  VG_CHECK(w.rank() == 2, "linear: w ", w.describe(), " must be [N, K]");
  const int64_t K = x.dim(-1), N = w.dim(0);
  VG_CHECK(w.dim(1) == K, "linear: x ", x.describe(), " and w ", w.describe(), " disagree on K");
  VG_CHECK(y.rank() == x.rank() && y.dim(-1) == N, "linear: y ", y.describe(), " must be [..., ", N, "] for x ",
           x.describe(), " and w ", w.describe());
  for (int i = 0; i + 1 < x.rank(); ++i)
    VG_CHECK(y.dim(i) == x.dim(i), "linear: y ", y.describe(), " and x ", x.describe(), " differ on axis ", i);
  check_dense_rows("linear", "x", x);
  check_dense_rows("linear", "w", w);
  check_dense_rows("linear", "y", y);
  check_no_alias("linear", "x", x, "y", y);
  check_no_alias("linear", "w", w, "y", y);
  std::vector<float> bias_f32;
  if (bias != nullptr) {
    check_float("linear", "bias", *bias);
    VG_CHECK(bias->rank() == 1 && bias->dim(0) == N, "linear: bias ", bias->describe(), " must be [", N, "] for w ",
             w.describe());
    bias_f32 = widen_vector("linear", "bias", *bias, N);
  }
  const Rows xr(x), yr(y);
  const int64_t M = xr.rows();
  if (M == 0 || N == 0) return;
  const GemmB B{w.raw(), w.dtype(), N > 1 ? w.stride(0) : K, false};
  const GemmEpilogue ep{bias ? bias_f32.data() : nullptr, nullptr, act, accumulate};
  if (xr.uniform() && yr.uniform()) {
    gemm(M, N, K, xr.row<float>(0), M > 1 ? xr.row_stride() : K, B, yr.row<float>(0), M > 1 ? yr.row_stride() : N,
         ep);
    return;
  }
  // Irregularly spaced rows (a slice of a slice): gather into dense buffers around the GEMM.
  std::vector<float> xd(static_cast<size_t>(M * K)), yd(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m) {
    std::copy(xr.row<float>(m), xr.row<float>(m) + K, xd.begin() + m * K);
    if (accumulate) std::copy(yr.row<float>(m), yr.row<float>(m) + N, yd.begin() + m * N);
  }
  gemm(M, N, K, xd.data(), K, B, yd.data(), N, ep);
  for (int64_t m = 0; m < M; ++m) std::copy(yd.begin() + m * N, yd.begin() + (m + 1) * N, yr.row<float>(m));
}

}  // namespace vargpt::cpu
