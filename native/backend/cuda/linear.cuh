// What linear() (gemm.cu) and its quantized twins linear_q8 / linear_q4 (gemm_quant.cu) share: the
// fused epilogue and the host-side preparation of a call, which widens the bias to f32 on the
// device and lays x and y out as evenly spaced f32 rows for the kernels.
#pragma once

#include <functional>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

// Weight rows up to which linear() and the quantized twins run a GEMV (a warp per weight row,
// every activation row at once) instead of a tiled GEMM.
constexpr int kGemvRows = 16;

// v = acc + bias[n]; v = act(v); y = accumulate ? y + v : v.
struct Epilogue {
  const float* bias;  // f32 [N] or null (widened on the device beforehand)
  Activation act;
  bool accumulate;
  __device__ __forceinline__ void store(float* y, int64_t ldy, int m, int n, float acc) const {
    float v = bias != nullptr ? acc + bias[n] : acc;
    v = apply_activation(act, v);
    float* out = y + m * ldy + n;
    *out = accumulate ? *out + v : v;
  }
};

// One call as the kernels see it: M rows of K f32 activations at x (row stride ldx) and M rows of
// N outputs at y (row stride ldy), written through ep.
struct LinearRows {
  int M = 0, N = 0, K = 0;
  const float* x = nullptr;
  int64_t ldx = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  Epilogue ep{};
};

// Checks the bias ([N], any float type) and the 32-bit size limits, widens the bias, gives the
// kernels x (f32 or bf16, widened once) and y as evenly spaced rows (through dense copies when
// they are not) and calls gemm(rows); y is copied back afterwards where it had to be. The caller
// has checked the shapes of x, its weights and y.
void run_linear(const Ctx& ctx, const char* op, const Tensor& x, int64_t N, int64_t K, const Tensor* bias,
                const Tensor& y, Activation act, bool accumulate, const std::function<void(const LinearRows&)>& gemm);

}  // namespace vargpt::cuda
