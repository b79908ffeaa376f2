// linear(): argument checks and the mapping of [..., K] activations (f32, or bf16 widened to f32)
// onto the GEMM.
#include <vector>

#include "cpu_common.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, Activation act, bool accumulate) {
  check_f32_or_bf16("linear", "x", x);
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
  const bool widen_x = x.dtype() != DType::F32;
  if (!widen_x && xr.uniform() && yr.uniform()) {
    gemm(M, N, K, xr.row<float>(0), M > 1 ? xr.row_stride() : K, B, yr.row<float>(0), M > 1 ? yr.row_stride() : N,
         ep);
    return;
  }
  // bf16 activations are widened into a dense f32 copy (exact), the GEMM's A operand.
  std::vector<float> xd(static_cast<size_t>(M * K));
  parallel_for(M, grain_for(K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      float* dst = xd.data() + m * K;
      if (widen_x) {
        const uint16_t* src = xr.row<uint16_t>(m);
        for (int64_t k = 0; k < K; ++k) dst[k] = bf16_to_f32(src[k]);
      } else {
        std::copy(xr.row<float>(m), xr.row<float>(m) + K, dst);
      }
    }
  });
  if (yr.uniform()) {
    gemm(M, N, K, xd.data(), K, B, yr.row<float>(0), M > 1 ? yr.row_stride() : N, ep);
    return;
  }
  // Irregularly spaced rows of y (a slice of a slice): a dense buffer around the GEMM.
  std::vector<float> yd(static_cast<size_t>(M * N));
  if (accumulate)
    for (int64_t m = 0; m < M; ++m) std::copy(yr.row<float>(m), yr.row<float>(m) + N, yd.begin() + m * N);
  gemm(M, N, K, xd.data(), K, B, yd.data(), N, ep);
  for (int64_t m = 0; m < M; ++m) std::copy(yd.begin() + m * N, yd.begin() + (m + 1) * N, yr.row<float>(m));
}

}  // namespace vargpt::cpu
