// Normalisations and modulation: RMSNorm, LayerNorm, AdaLN and norm + modulate, gated residual, GroupNorm and the
// per-head L2 normalisation of VAR's attention. Row statistics use one block per row (two
// passes over the row, as the CPU twin: mean first, then the centred squares, no cancellation);
// GroupNorm accumulates in double like its twin, its groups hold up to ~330k values.
#include <cmath>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

constexpr int kRowThreads = 256;

// Rows-of-x launches: one block per row, grid-strided beyond the grid limit.
inline unsigned row_blocks(int64_t rows) {
  return static_cast<unsigned>(rows < 1 ? 1 : (rows > (1 << 20) ? (1 << 20) : rows));
}

__device__ __forceinline__ void row_moments(const float* x, int64_t C, float eps, float* shared, float* mean,
                                            float* inv_std) {
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += x[c];
  const float mu = block_sum(s, shared) / static_cast<float>(C);
  float v = 0.0f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) v += (x[c] - mu) * (x[c] - mu);
  const float var = block_sum(v, shared);
  *mean = mu;
  *inv_std = 1.0f / sqrtf(var / static_cast<float>(C) + eps);
}

__global__ void __launch_bounds__(kRowThreads)
    rms_norm_kernel(const float* __restrict__ x, RowMap xr, float* y, RowMap yr, FloatPtr w, float eps) {
  __shared__ float shared[32];
  const int64_t C = xr.cols;
  for (int64_t r = blockIdx.x; r < xr.rows; r += gridDim.x) {
    const float* xi = x + xr.offset(r);
    float* yi = y + yr.offset(r);
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += xi[c] * xi[c];
    const float inv = 1.0f / sqrtf(block_sum(s, shared) / static_cast<float>(C) + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yi[c] = load_float(w, c) * (xi[c] * inv);
  }
}

__global__ void __launch_bounds__(kRowThreads) layer_norm_kernel(const float* __restrict__ x, RowMap xr, float* y,
                                                                 RowMap yr, FloatPtr w, FloatPtr bias, float eps) {
  __shared__ float shared[32];
  const int64_t C = xr.cols;
  for (int64_t r = blockIdx.x; r < xr.rows; r += gridDim.x) {
    const float* xi = x + xr.offset(r);
    float* yi = y + yr.offset(r);
    float mean, inv;
    row_moments(xi, C, eps, shared, &mean, &inv);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      float v = (xi[c] - mean) * inv;
      if (w.data != nullptr) v *= load_float(w, c);
      if (bias.data != nullptr) v += load_float(bias, c);
      yi[c] = v;
    }
  }
}

// norm_modulate: y = norm(x) [* w + b] * (1 + scale[b]) [+ shift[b]].
__global__ void __launch_bounds__(kRowThreads)
    modulate_kernel(const float* __restrict__ x, RowMap xr, float* y, RowMap yr, bool rms, FloatPtr w, FloatPtr bias,
                    const float* __restrict__ scale, int64_t scale_stride, const float* __restrict__ shift,
                    int64_t shift_stride, int64_t L, float eps) {
  __shared__ float shared[32];
  const int64_t C = xr.cols;
  for (int64_t r = blockIdx.x; r < xr.rows; r += gridDim.x) {
    const int64_t b = r / L;
    const float* s = scale + b * scale_stride;
    const float* t = shift != nullptr ? shift + b * shift_stride : nullptr;
    const float* xi = x + xr.offset(r);
    float* yi = y + yr.offset(r);
    float mean = 0.0f, inv;
    if (rms) {
      float ss = 0.0f;
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) ss += xi[c] * xi[c];
      inv = 1.0f / sqrtf(block_sum(ss, shared) / static_cast<float>(C) + eps);
    } else {
      row_moments(xi, C, eps, shared, &mean, &inv);
    }
    // Every thread has read its values of the row (the block sums above synchronise), so y may
    // be x itself.
    __syncthreads();
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      float v = (xi[c] - mean) * inv;
      if (w.data != nullptr) v *= load_float(w, c);
      if (bias.data != nullptr) v += load_float(bias, c);
      v *= 1.0f + s[c];
      yi[c] = t != nullptr ? v + t[c] : v;
    }
  }
}

__global__ void gated_add_kernel(float* x, RowMap xr, const float* __restrict__ y, RowMap yr,
                                 const float* __restrict__ gate, int64_t gate_stride, int64_t L, Activation act) {
  const int64_t C = xr.cols, count = xr.rows * C;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    x[xr.offset(r) + c] += y[yr.offset(r) + c] * apply_activation(act, gate[r / L * gate_stride + c]);
  }
}

__global__ void __launch_bounds__(kRowThreads)
    group_norm_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t C, int64_t HW, int groups,
                      FloatPtr w, FloatPtr bias, float eps) {
  __shared__ double shared[32];
  const int64_t n = blockIdx.x / groups, g = blockIdx.x % groups;
  const int64_t per_group = C / groups, count = per_group * HW;
  const float* xg = x + (n * C + g * per_group) * HW;
  float* yg = y + (n * C + g * per_group) * HW;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += xg[i];
  const double mean = block_sum(s, shared) / static_cast<double>(count);
  double v = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const double d = xg[i] - mean;
    v += d * d;
  }
  const double var = block_sum(v, shared);
  const float inv = static_cast<float>(1.0 / sqrt(var / static_cast<double>(count) + eps));
  const float meanf = static_cast<float>(mean);
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t ch = g * per_group + i / HW;
    const float wc = load_float(w, ch);
    // The CPU twin's per-channel affine form: x * a + shift.
    const float a = inv * wc, sh = load_float(bias, ch) - meanf * inv * wc;
    yg[i] = xg[i] * a + sh;
  }
}

// One warp per (row, head).
__global__ void l2_heads_kernel(float* x, RowMap xr, int64_t H, int D, const float* __restrict__ head_scale) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / 32);
  for (int64_t item = blockIdx.x * int64_t{blockDim.x / 32} + (threadIdx.x >> 5); item < xr.rows * H; item += warps) {
    const int64_t r = item / H, h = item % H;
    float* v = x + xr.offset(r) + h * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s += v[d] * v[d];
    const float norm = sqrtf(warp_sum(s));
    // F.normalize: v / max(||v||, eps), then the learnt per-head scale.
    const float factor = (head_scale != nullptr ? head_scale[h] : 1.0f) / fmaxf(norm, 1e-12f);
    for (int d = lane; d < D; d += 32) v[d] *= factor;
  }
}

void check_rows_pair(const Ctx& ctx, const char* op, const Tensor& x, const Tensor& y) {
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  VG_CHECK(x.rank() >= 1, op, ": x ", x.describe(), " must have at least one axis");
  check_same_shape(op, "x", x, "y", y);
  check_dense_rows(op, "x", x);
  check_dense_rows(op, "y", y);
}

// norm_modulate (`op` names the caller in messages).
void modulate(const Ctx& ctx, const char* op, const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias,
              float eps, const Tensor& scale, const Tensor* shift, const Tensor& y) {
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  check_dtype(ctx, op, "scale", scale, DType::F32);
  if (shift != nullptr) check_dtype(ctx, op, "shift", *shift, DType::F32);
  const ModulateDims d = check_modulate_args(op, x, scale, shift, y);
  if (weight != nullptr) check_vector(ctx, op, "weight", *weight, d.channels);
  if (bias != nullptr) check_vector(ctx, op, "bias", *bias, d.channels);
  const RowMap xr = row_map(op, "x", x), yr = row_map(op, "y", y);
  if (xr.rows == 0 || d.channels == 0) return;
  const FloatPtr w = weight ? FloatPtr{weight->raw(), weight->dtype()} : FloatPtr{};
  const FloatPtr b = bias ? FloatPtr{bias->raw(), bias->dtype()} : FloatPtr{};
  modulate_kernel<<<row_blocks(xr.rows), kRowThreads, 0, ctx.stream>>>(
      x.data<float>(), xr, y.data<float>(), yr, norm == NormKind::RMSNorm, w, b, scale.data<float>(), d.scale_stride,
      shift != nullptr ? shift->data<float>() : nullptr, d.shift_stride, d.len, eps);
  VG_CUDA_LAUNCHED(op, "modulate_kernel");
}

}  // namespace

void rms_norm(const Ctx& ctx, const Tensor& x, const Tensor& weight, float eps, const Tensor& y) {
  check_rows_pair(ctx, "rms_norm", x, y);
  const int64_t C = x.dim(-1);
  check_vector(ctx, "rms_norm", "weight", weight, C);
  const RowMap xr = row_map("rms_norm", "x", x), yr = row_map("rms_norm", "y", y);
  if (xr.rows == 0 || C == 0) return;
  rms_norm_kernel<<<row_blocks(xr.rows), kRowThreads, 0, ctx.stream>>>(x.data<float>(), xr, y.data<float>(), yr,
                                                                      FloatPtr{weight.raw(), weight.dtype()}, eps);
  VG_CUDA_LAUNCHED("rms_norm", "rms_norm_kernel");
}

void layer_norm(const Ctx& ctx, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, const Tensor& y) {
  check_rows_pair(ctx, "layer_norm", x, y);
  const int64_t C = x.dim(-1);
  if (weight) check_vector(ctx, "layer_norm", "weight", *weight, C);
  if (bias) check_vector(ctx, "layer_norm", "bias", *bias, C);
  const RowMap xr = row_map("layer_norm", "x", x), yr = row_map("layer_norm", "y", y);
  if (xr.rows == 0 || C == 0) return;
  const FloatPtr w = weight ? FloatPtr{weight->raw(), weight->dtype()} : FloatPtr{};
  const FloatPtr b = bias ? FloatPtr{bias->raw(), bias->dtype()} : FloatPtr{};
  layer_norm_kernel<<<row_blocks(xr.rows), kRowThreads, 0, ctx.stream>>>(x.data<float>(), xr, y.data<float>(), yr, w,
                                                                        b, eps);
  VG_CUDA_LAUNCHED("layer_norm", "layer_norm_kernel");
}

void norm_modulate(const Ctx& ctx, const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias, float eps,
                   const Tensor& scale, const Tensor* shift, const Tensor& y) {
  modulate(ctx, "norm_modulate", x, norm, weight, bias, eps, scale, shift, y);
}

void gated_add(const Ctx& ctx, const Tensor& x, const Tensor& y, const Tensor& gate, Activation gate_act) {
  const char* op = "gated_add";
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  check_dtype(ctx, op, "gate", gate, DType::F32);
  const GatedDims d = check_gated_add_args(op, x, y, gate);
  const RowMap xr = row_map(op, "x", x), yr = row_map(op, "y", y);
  const int64_t count = xr.rows * xr.cols;
  if (count == 0) return;
  gated_add_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(x.data<float>(), xr, y.data<float>(), yr,
                                                                 gate.data<float>(), d.gate_stride, d.len, gate_act);
  VG_CUDA_LAUNCHED(op, "gated_add_kernel");
}

void group_norm(const Ctx& ctx, const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps,
                const Tensor& y) {
  const char* op = "group_norm";
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  check_rank(op, "x", x, 3, 4);
  check_same_shape(op, "x", x, "y", y);
  check_contiguous(op, "x", x);
  check_contiguous(op, "y", y);
  const int64_t N = x.rank() == 4 ? x.dim(0) : 1, C = x.dim(-3), HW = x.dim(-2) * x.dim(-1);
  VG_CHECK(groups > 0 && C % groups == 0, op, ": ", groups, " groups do not divide the ", C, " channels of x ",
           x.describe());
  check_vector(ctx, op, "weight", weight, C);
  check_vector(ctx, op, "bias", bias, C);
  if (x.numel() == 0) return;
  VG_CHECK(N * groups < (int64_t{1} << 31), op, ": x ", x.describe(), " has too many groups for the grid");
  group_norm_kernel<<<static_cast<unsigned>(N * groups), kRowThreads, 0, ctx.stream>>>(
      x.data<float>(), y.data<float>(), C, HW, groups, FloatPtr{weight.raw(), weight.dtype()},
      FloatPtr{bias.raw(), bias.dtype()}, eps);
  VG_CUDA_LAUNCHED(op, "group_norm_kernel");
}

void l2_normalize_heads(const Ctx& ctx, const Tensor& x, int head_dim, const Tensor* head_scale) {
  const char* op = "l2_normalize_heads";
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dense_rows(op, "x", x);
  VG_CHECK(x.rank() >= 1 && head_dim > 0 && x.dim(-1) % head_dim == 0, op, ": head_dim ", head_dim,
           " does not divide the last axis of x ", x.describe());
  const int64_t H = x.dim(-1) / head_dim;
  if (head_scale != nullptr) {
    check_dtype(ctx, op, "head_scale", *head_scale, DType::F32);
    check_vector(ctx, op, "head_scale", *head_scale, H);
  }
  const RowMap xr = row_map(op, "x", x);
  const int64_t items = xr.rows * H;
  if (items == 0) return;
  l2_heads_kernel<<<grid_for(items * 32), kThreads, 0, ctx.stream>>>(
      x.data<float>(), xr, H, head_dim, head_scale ? head_scale->data<float>() : nullptr);
  VG_CUDA_LAUNCHED(op, "l2_heads_kernel");
}

}  // namespace vargpt::cuda
