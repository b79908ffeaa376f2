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
  const LinearDims dims = check_linear_args("linear", x, w, y);
  const int64_t K = dims.k, N = dims.n;
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
