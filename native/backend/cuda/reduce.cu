// Reductions: the mean over one axis, x viewed as [outer, n, inner], summed in double like the
// CPU twin (cpu/reduce.cc). Rows (inner = 1): one block per output, a block sum. Columns
// (inner > 1): one thread per output walking the n planes, neighbouring threads reading
// neighbouring values.
#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

constexpr int kRowThreads = 256;

__global__ void __launch_bounds__(kRowThreads)
    mean_rows_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t rows, int64_t n) {
  __shared__ double shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * n;
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += row[i];
    const double total = block_sum(s, shared);
    if (threadIdx.x == 0) y[r] = static_cast<float>(total * (1.0 / static_cast<double>(n)));
  }
}

__global__ void mean_cols_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t outer, int64_t n,
                                 int64_t inner) {
  const int64_t count = outer * inner;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = i / inner, c = i % inner;
    const float* col = x + o * n * inner + c;
    double s = 0.0;
    for (int64_t j = 0; j < n; ++j) s += col[j * inner];
    y[i] = static_cast<float>(s * (1.0 / static_cast<double>(n)));
  }
}

}  // namespace

void mean(const Ctx& ctx, const Tensor& x, int axis, const Tensor& y) {
  const char* op = "mean";
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  const MeanDims d = check_mean_args(op, x, axis, y);
  if (d.outer * d.inner == 0) return;
  if (d.inner == 1) {
    const unsigned blocks = static_cast<unsigned>(d.outer > (1 << 20) ? (1 << 20) : d.outer);
    mean_rows_kernel<<<blocks, kRowThreads, 0, ctx.stream>>>(x.data<float>(), y.data<float>(), d.outer, d.n);
    VG_CUDA_LAUNCHED(op, "mean_rows_kernel");
    return;
  }
  mean_cols_kernel<<<grid_for(d.outer * d.inner), kThreads, 0, ctx.stream>>>(x.data<float>(), y.data<float>(),
                                                                              d.outer, d.n, d.inner);
  VG_CUDA_LAUNCHED(op, "mean_cols_kernel");
}

}  // namespace vargpt::cuda
