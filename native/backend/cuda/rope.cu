// Rotate-half rotary position embedding, in place on x [L, H*D] or [B, L, H*D], one thread per
// rotated pair. inv_freq is computed on the host exactly as the CPU twin and Hugging Face do
// (theta ** (2j / D) in float) and passed by value: a device powf may differ in the last bit,
// which at position 4000 moves the angle by ~1e-4 radians. The angle p * inv_freq is one f32
// multiply on both sides; only cosf/sinf (within 2 ulp) differ.
#include <cmath>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

constexpr int kMaxHalf = 256;  // head_dim up to 512

struct InvFreq {
  float v[kMaxHalf];
};

__global__ void rope_kernel(float* x, RowMap xr, const int32_t* __restrict__ pos, int64_t pos_stride, int64_t L,
                            int64_t H, int half, InvFreq inv_freq) {
  const int64_t per_row = H * half, count = xr.rows * per_row;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / per_row, rest = i % per_row;
    const int64_t h = rest / half;
    const int j = static_cast<int>(rest % half);
    const float p = static_cast<float>(pos[(r % L) * pos_stride]);
    const float angle = p * inv_freq.v[j];
    const float c = cosf(angle), s = sinf(angle);
    float* v = x + xr.offset(r) + h * 2 * half;
    const float x1 = v[j], x2 = v[j + half];
    v[j] = x1 * c - x2 * s;
    v[j + half] = x2 * c + x1 * s;
  }
}

}  // namespace

void rope(const Ctx& ctx, const Tensor& x, const Tensor& positions, int head_dim, float theta) {
  const char* op = "rope";
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "positions", positions, DType::I32);
  check_rank(op, "x", x, 2, 3);
  check_dense_rows(op, "x", x);
  VG_CHECK(head_dim > 0 && head_dim % 2 == 0 && x.dim(-1) % head_dim == 0, op, ": head_dim ", head_dim,
           " must be even and divide the last axis of x ", x.describe());
  const int64_t L = x.dim(-2), H = x.dim(-1) / head_dim;
  const int half = head_dim / 2;
  VG_CHECK(positions.rank() == 1 && positions.dim(0) == L, op, ": positions ", positions.describe(), " must be i32[",
           L, "] for x ", x.describe());
  VG_CHECK(theta > 0.0f, op, ": theta ", theta, " must be positive");
  VG_CHECK(half <= kMaxHalf, op, ": head_dim ", head_dim, " exceeds the CUDA kernel's limit of ", 2 * kMaxHalf);
  InvFreq inv_freq{};
  for (int j = 0; j < half; ++j)
    inv_freq.v[j] = 1.0f / std::pow(theta, static_cast<float>(2 * j) / static_cast<float>(head_dim));
  const RowMap xr = row_map(op, "x", x);
  const int64_t count = xr.rows * H * half;
  if (count == 0) return;
  rope_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(x.data<float>(), xr, positions.data<int32_t>(),
                                                            positions.stride(0), L, H, half, inv_freq);
  VG_CUDA_LAUNCHED(op, "rope_kernel");
}

}  // namespace vargpt::cuda
