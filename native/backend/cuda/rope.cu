// Rotary position embedding from a host-computed cos | sin table, in place on x [L, H*D] or
// [B, L, H*D]: one thread per rotated pair. The table holds the same f32 values the CPU twin reads,
// so both backends rotate with identical coefficients (only the fused multiply-adds may differ).
#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

__global__ void rope_kernel(float* x, RowMap xr, const float* __restrict__ table, int64_t table_stride, int64_t L,
                            int64_t H, int64_t half, int64_t first, int64_t second) {
  const int64_t per_row = H * half, count = xr.rows * per_row;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / per_row, rest = i % per_row;
    const int64_t h = rest / half, j = rest % half;
    const float* cs = table + (r % L) * table_stride;
    const float c = cs[j], s = cs[half + j];
    float* v = x + xr.offset(r) + h * 2 * half;
    const float x1 = v[j * first], x2 = v[j * first + second];
    v[j * first] = x1 * c - x2 * s;
    v[j * first + second] = x2 * c + x1 * s;
  }
}

}  // namespace

void rope(const Ctx& ctx, const Tensor& x, const Tensor& table, int head_dim, RopePairing pairing) {
  const char* op = "rope";
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "table", table, DType::F32);
  const RopeDims d = check_rope_args(op, x, table, head_dim);
  const int64_t first = pairing == RopePairing::RotateHalf ? 1 : 2;
  const int64_t second = pairing == RopePairing::RotateHalf ? d.half : 1;
  const RowMap xr = row_map(op, "x", x);
  const int64_t count = xr.rows * d.heads * d.half;
  if (count == 0) return;
  rope_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(x.data<float>(), xr, table.data<float>(), table.stride(0),
                                                            d.L, d.heads, d.half, first, second);
  VG_CUDA_LAUNCHED(op, "rope_kernel");
}

}  // namespace vargpt::cuda
