// Image resizing exactly as the CPU twin (cpu/resize.cc), itself PyTorch's F.interpolate:
// bilinear and bicubic (align_corners=False; bicubic A = -0.75, unclamped) and area (adaptive
// average pooling). One thread per output pixel. Every float operation is written with the _rn intrinsics, which the
// compiler may not fuse into FMAs, in the CPU twin's order: the results are bit-identical to the
// CPU's wherever the CPU build does not contract either (x86-64 builds without -mfma do not).
#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }

constexpr float kCubicA = -0.75f;
// ((A + 2) t - (A + 3)) t t + 1
__device__ __forceinline__ float cubic1(float t) {
  return add(mul(mul(sub(mul(kCubicA + 2.0f, t), kCubicA + 3.0f), t), t), 1.0f);
}
// ((A t - 5A) t + 8A) t - 4A
__device__ __forceinline__ float cubic2(float t) {
  return sub(mul(add(mul(sub(mul(kCubicA, t), 5.0f * kCubicA), t), 8.0f * kCubicA), t), 4.0f * kCubicA);
}

struct Taps {
  int64_t index[4];
  float weight[4];
};

// ATen's HelperInterpCubic: src = scale (d + 0.5) - 0.5, not clamped below; the index capped at
// in - 1 and t clamped to [0, 1]; taps clamped into the image.
__device__ __forceinline__ Taps cubic_taps(int64_t d, int64_t in, int64_t out) {
  const float scale = __fdiv_rn(static_cast<float>(in), static_cast<float>(out));
  const float src = sub(mul(scale, add(static_cast<float>(d), 0.5f)), 0.5f);
  const int64_t i0 = min(static_cast<int64_t>(floorf(src)), in - 1);
  const float t = fminf(fmaxf(sub(src, static_cast<float>(i0)), 0.0f), 1.0f);
  const float t2 = sub(1.0f, t);
  Taps c;
  c.weight[0] = cubic2(add(t, 1.0f));
  c.weight[1] = cubic1(t);
  c.weight[2] = cubic1(t2);
  c.weight[3] = cubic2(add(t2, 1.0f));
  for (int j = 0; j < 4; ++j) c.index[j] = min(max(i0 - 1 + j, int64_t{0}), in - 1);
  return c;
}

__global__ void bicubic_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t H,
                               int64_t W, int64_t Ho, int64_t Wo) {
  const int64_t count = planes * Ho * Wo;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % Wo, oy = i / Wo % Ho, plane = i / (Wo * Ho);
    const float* src = x + plane * H * W;
    const Taps cx = cubic_taps(ox, W, Wo), cy = cubic_taps(oy, H, Ho);
    float rows[4];
    for (int j = 0; j < 4; ++j) {
      const float* line = src + cy.index[j] * W;
      rows[j] = add(add(add(mul(line[cx.index[0]], cx.weight[0]), mul(line[cx.index[1]], cx.weight[1])),
                        mul(line[cx.index[2]], cx.weight[2])),
                    mul(line[cx.index[3]], cx.weight[3]));
    }
    y[i] = add(add(add(mul(rows[0], cy.weight[0]), mul(rows[1], cy.weight[1])), mul(rows[2], cy.weight[2])),
               mul(rows[3], cy.weight[3]));
  }
}

// ATen adaptive pooling windows [floor(a in / out), ceil((a + 1) in / out)), summed in window
// order, then divided twice (sum / kh / kw) as ATen does.
__global__ void area_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t H, int64_t W,
                            int64_t Ho, int64_t Wo) {
  const int64_t count = planes * Ho * Wo;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % Wo, oy = i / Wo % Ho, plane = i / (Wo * Ho);
    const float* src = x + plane * H * W;
    const int64_t y0 = oy * H / Ho, y1 = ((oy + 1) * H + Ho - 1) / Ho;
    const int64_t x0 = ox * W / Wo, x1 = ((ox + 1) * W + Wo - 1) / Wo;
    float sum = 0.0f;
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) sum = add(sum, src[iy * W + ix]);
    y[i] = __fdiv_rn(__fdiv_rn(sum, static_cast<float>(y1 - y0)), static_cast<float>(x1 - x0));
  }
}

// ATen's compute_indices_weights_linear: src = scale (d + 0.5) - 0.5 clamped below at 0, index
// min(floor(src), in - 1), the second tap one further unless at the edge, lambda in [0, 1].
struct LinearTaps {
  int64_t index[2];
  float weight[2];
};

__device__ __forceinline__ LinearTaps linear_taps(int64_t d, int64_t in, int64_t out) {
  const float scale = __fdiv_rn(static_cast<float>(in), static_cast<float>(out));
  const float src = fmaxf(sub(mul(scale, add(static_cast<float>(d), 0.5f)), 0.5f), 0.0f);
  const int64_t i0 = min(static_cast<int64_t>(floorf(src)), in - 1);
  const float lambda = fminf(fmaxf(sub(src, static_cast<float>(i0)), 0.0f), 1.0f);
  return {{i0, i0 + (i0 < in - 1 ? 1 : 0)}, {sub(1.0f, lambda), lambda}};
}

__global__ void bilinear_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t H,
                                int64_t W, int64_t Ho, int64_t Wo) {
  const int64_t count = planes * Ho * Wo;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % Wo, oy = i / Wo % Ho, plane = i / (Wo * Ho);
    const float* src = x + plane * H * W;
    const LinearTaps cx = linear_taps(ox, W, Wo), cy = linear_taps(oy, H, Ho);
    const float* line0 = src + cy.index[0] * W;
    const float* line1 = src + cy.index[1] * W;
    const float row0 = add(mul(line0[cx.index[0]], cx.weight[0]), mul(line0[cx.index[1]], cx.weight[1]));
    const float row1 = add(mul(line1[cx.index[0]], cx.weight[0]), mul(line1[cx.index[1]], cx.weight[1]));
    y[i] = add(mul(row0, cy.weight[0]), mul(row1, cy.weight[1]));
  }
}

struct Planes {
  int64_t planes, H, W, Ho, Wo;
};

Planes check_resize(const Ctx& ctx, const char* op, const Tensor& x, const Tensor& y) {
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  const ResizeDims d = check_resize_args(op, x, y);
  return {d.planes, d.H, d.W, d.Ho, d.Wo};
}

}  // namespace

void resize_bicubic(const Ctx& ctx, const Tensor& x, const Tensor& y) {
  const Planes p = check_resize(ctx, "resize_bicubic", x, y);
  if (y.numel() == 0) return;
  bicubic_kernel<<<grid_for(y.numel()), kThreads, 0, ctx.stream>>>(x.data<float>(), y.data<float>(), p.planes, p.H,
                                                                   p.W, p.Ho, p.Wo);
  VG_CUDA_LAUNCHED("resize_bicubic", "bicubic_kernel");
}

void resize_bilinear(const Ctx& ctx, const Tensor& x, const Tensor& y) {
  const Planes p = check_resize(ctx, "resize_bilinear", x, y);
  if (y.numel() == 0) return;
  bilinear_kernel<<<grid_for(y.numel()), kThreads, 0, ctx.stream>>>(x.data<float>(), y.data<float>(), p.planes, p.H,
                                                                    p.W, p.Ho, p.Wo);
  VG_CUDA_LAUNCHED("resize_bilinear", "bilinear_kernel");
}

void resize_area(const Ctx& ctx, const Tensor& x, const Tensor& y) {
  const Planes p = check_resize(ctx, "resize_area", x, y);
  if (y.numel() == 0) return;
  area_kernel<<<grid_for(y.numel()), kThreads, 0, ctx.stream>>>(x.data<float>(), y.data<float>(), p.planes, p.H, p.W,
                                                                 p.Ho, p.Wo);
  VG_CUDA_LAUNCHED("resize_area", "area_kernel");
}

}  // namespace vargpt::cuda
