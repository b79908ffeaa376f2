// conv2d as an implicit GEMM on the tiled f32 kernel of gemm_simt.cuh, one problem per image:
// y[O, Ho*Wo] = W[O, C*kh*kw] · col[C*kh*kw, Ho*Wo] + bias, where the loader computes each im2col
// element from the input on the fly (zero outside the padded image), so no column buffer is
// materialised. Weights are read in their stored type. Also nearest-neighbour 2x upsampling.
#include "cuda_ops.cuh"
#include "gemm_simt.cuh"

namespace vargpt::cuda {

namespace {

struct ConvGeom {
  int C, H, W, kh, kw, stride, pad_top, pad_left, Ho, Wo;
};

struct FilterA {  // A(o, k) = weight[o][k], k = (c, ky, kx)
  FloatPtr w;
  int K;
  __device__ __forceinline__ float operator()(int, int o, int k) const { return load_float(w, int64_t{o} * K + k); }
};

struct Im2colB {  // B(k, p) = x[z][c][oh * stride - pad_top + ky][ow * stride - pad_left + kx]
  const float* x;
  ConvGeom g;
  __device__ __forceinline__ float operator()(int z, int k, int p) const {
    const int c = k / (g.kh * g.kw), ky = k / g.kw % g.kh, kx = k % g.kw;
    const int oh = p / g.Wo, ow = p % g.Wo;
    const int ih = oh * g.stride - g.pad_top + ky, iw = ow * g.stride - g.pad_left + kx;
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return 0.0f;
    return x[((int64_t{z} * g.C + c) * g.H + ih) * g.W + iw];
  }
};

struct ConvEpi {  // y[z][o][p] = acc + bias[o]
  float* y;
  FloatPtr bias;
  int O, P;
  __device__ __forceinline__ void operator()(int z, int o, int p, float acc) const {
    const float v = bias.data != nullptr ? acc + load_float(bias, o) : acc;
    y[(int64_t{z} * O + o) * P + p] = v;
  }
};

__global__ void upsample2x_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t H,
                                  int64_t W) {
  const int64_t W2 = 2 * W, count = planes * 2 * H * W2;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ox = i % W2, oy = i / W2 % (2 * H), plane = i / (W2 * 2 * H);
    y[i] = x[(plane * H + oy / 2) * W + ox / 2];
  }
}

}  // namespace

void conv2d(const Ctx& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv2dParams& p,
            const Tensor& y) {
  const char* op = "conv2d";
  check_dtype(ctx, op, "x", x, DType::F32);
  check_float(ctx, op, "weight", weight);
  check_dtype(ctx, op, "y", y, DType::F32);
  const Conv2dDims dims = check_conv2d_args(op, x, weight, p, y);
  const ImageDims& in = dims.in;
  const int64_t O = dims.out_channels, kh = dims.kh, kw = dims.kw, Ho = dims.out_h, Wo = dims.out_w;
  if (bias != nullptr) check_vector(ctx, op, "bias", *bias, O);
  if (y.numel() == 0) return;
  const int64_t K = in.C * kh * kw, P = Ho * Wo;
  VG_CHECK(x.numel() < (int64_t{1} << 31) && O * K < (int64_t{1} << 31) && P < (int64_t{1} << 31) &&
               in.N <= 65535,
           op, ": x ", x.describe(), " or weight ", weight.describe(), " exceeds the 32-bit sizes of the conv kernel");
  ConvGeom g;
  g.C = static_cast<int>(in.C);
  g.H = static_cast<int>(in.H);
  g.W = static_cast<int>(in.W);
  g.kh = static_cast<int>(kh);
  g.kw = static_cast<int>(kw);
  g.stride = p.stride;
  g.pad_top = p.pad_top;
  g.pad_left = p.pad_left;
  g.Ho = static_cast<int>(Ho);
  g.Wo = static_cast<int>(Wo);
  const FloatPtr bias_ptr = bias ? FloatPtr{bias->raw(), bias->dtype()} : FloatPtr{};
  launch_simt_gemm(ctx, op, static_cast<int>(O), static_cast<int>(P), static_cast<int>(K), static_cast<int>(in.N),
                   FilterA{FloatPtr{weight.raw(), weight.dtype()}, static_cast<int>(K)}, Im2colB{x.data<float>(), g},
                   ConvEpi{y.data<float>(), bias_ptr, static_cast<int>(O), static_cast<int>(P)});
}

void upsample_nearest2x(const Ctx& ctx, const Tensor& x, const Tensor& y) {
  const char* op = "upsample_nearest2x";
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  const ImageDims in = check_upsample_nearest2x_args(op, x, y);
  if (y.numel() == 0) return;
  upsample2x_kernel<<<grid_for(y.numel()), kThreads, 0, ctx.stream>>>(x.data<float>(), y.data<float>(), in.N * in.C,
                                                                      in.H, in.W);
  VG_CUDA_LAUNCHED(op, "upsample2x_kernel");
}

}  // namespace vargpt::cuda
