// conv2d as GEMM: y[O, Ho*Wo] = W[O, C*kh*kw] · col[C*kh*kw, Ho*Wo]. Stride-1 3x3 layers with
// enough channels and pixels go to the Winograd path (conv_winograd.h) instead. 1x1 stride-1 unpadded
// convolutions use the input itself as `col`; the others build it (im2col) in chunks of output
// pixels so the scratch stays bounded at 256x256. Also nearest-neighbour 2x upsampling.
#include <vector>

#include "cpu_common.h"
#include "conv_winograd.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

namespace {

// Scratch bound for one im2col chunk (8 MB): small enough to still be in cache when the GEMM
// packs it, while keeping the GEMM's N in the thousands for large images.
constexpr int64_t kColBudgetFloats = int64_t{2} << 20;
constexpr int64_t kColMinPixels = 512;

// Row k = (c, ky, kx) of the im2col matrix for output pixels [p0, p0 + np): walks output rows
// as segments so the bounds are settled per segment, and stride-1 segments become copies.
void im2col_row(const float* x, const ImageDims& in, int64_t kh, int64_t kw, const Conv2dParams& p, int64_t Wo,
                int64_t k, int64_t p0, int64_t np, float* dst) {
  const int64_t c = k / (kh * kw), ky = k / kw % kh, kx = k % kw;
  const float* plane = x + c * in.H * in.W;
  for (int64_t i = 0; i < np;) {
    const int64_t oh = (p0 + i) / Wo, ow = (p0 + i) % Wo;
    const int64_t seg = std::min(Wo - ow, np - i);
    const int64_t ih = oh * p.stride - p.pad_top + ky;
    float* out = dst + i;
    if (ih < 0 || ih >= in.H) {
      std::fill(out, out + seg, 0.0f);
    } else {
      const float* row = plane + ih * in.W;
      const int64_t iw0 = ow * p.stride - p.pad_left + kx;  // input column of the segment's first pixel
      if (p.stride == 1) {
        const int64_t lo = std::min(seg, std::max<int64_t>(0, -iw0));
        const int64_t hi = std::max(lo, std::min(seg, in.W - iw0));
        std::fill(out, out + lo, 0.0f);
        std::copy(row + iw0 + lo, row + iw0 + hi, out + lo);
        std::fill(out + hi, out + seg, 0.0f);
      } else {
        for (int64_t j = 0; j < seg; ++j) {
          const int64_t iw = iw0 + j * p.stride;
          out[j] = iw >= 0 && iw < in.W ? row[iw] : 0.0f;
        }
      }
    }
    i += seg;
  }
}

}  // namespace

void conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv2dParams& p, const Tensor& y) {
  const char* op = "conv2d";
  check_dtype(op, "x", x, DType::F32);
  check_float(op, "weight", weight);
  check_dtype(op, "y", y, DType::F32);
  const Conv2dDims dims = check_conv2d_args(op, x, weight, p, y);
  const ImageDims& in = dims.in;
  const int64_t O = dims.out_channels, kh = dims.kh, kw = dims.kw, Ho = dims.out_h, Wo = dims.out_w;
  std::vector<float> bias_f32;
  if (bias != nullptr) bias_f32 = widen_vector(op, "bias", *bias, O);
  if (y.numel() == 0) return;

  if (winograd_applies(in.C, O, kh, kw, p.stride, Ho, Wo)) {
    WinogradPlane g;
    g.H = in.H, g.W = in.W, g.Ho = Ho, g.Wo = Wo, g.pad_top = p.pad_top, g.pad_left = p.pad_left;
    g.tiles_y = (Ho + 3) / 4, g.tiles_x = (Wo + 3) / 4;
    conv2d_winograd(x.data<float>(), in.N, in.C, g, weight.dtype(), weight.raw(), O,
                    bias ? bias_f32.data() : nullptr, y.data<float>());
    return;
  }

  const int64_t K = in.C * kh * kw, P = Ho * Wo;
  // The weights are the GEMM's A operand, which is f32: widen bf16/f16 filters once per call.
  std::vector<float> w_f32;
  const float* A = nullptr;
  if (weight.dtype() == DType::F32) {
    A = weight.data<float>();
  } else {
    w_f32.resize(static_cast<size_t>(O * K));
    convert_to_f32(weight.dtype(), weight.raw(), w_f32.data(), w_f32.size());
    A = w_f32.data();
  }
  const GemmEpilogue ep{nullptr, bias ? bias_f32.data() : nullptr, Activation::None, false};
  const bool pointwise = kh == 1 && kw == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_bottom == 0 &&
                         p.pad_left == 0 && p.pad_right == 0;
  const int64_t chunk =
      pointwise ? P : std::min(P, std::max(kColMinPixels, kColBudgetFloats / std::max<int64_t>(K, 1)));
  std::vector<float> col(pointwise ? 0 : static_cast<size_t>(K * chunk));

  for (int64_t n = 0; n < in.N; ++n) {
    const float* xn = x.data<float>() + n * in.C * in.H * in.W;
    float* yn = y.data<float>() + n * O * P;
    if (pointwise) {
      gemm(O, P, K, A, K, GemmB{xn, DType::F32, P, true}, yn, P, ep);
      continue;
    }
    for (int64_t p0 = 0; p0 < P; p0 += chunk) {
      const int64_t np = std::min(chunk, P - p0);
      parallel_for(K, grain_for(np), [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) im2col_row(xn, in, kh, kw, p, Wo, k, p0, np, col.data() + k * np);
      });
      gemm(O, np, K, A, K, GemmB{col.data(), DType::F32, np, true}, yn + p0, P, ep);
    }
  }
}

void upsample_nearest2x(const Tensor& x, const Tensor& y) {
  const char* op = "upsample_nearest2x";
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  const ImageDims in = check_upsample_nearest2x_args(op, x, y);
  const float* xs = x.data<float>();
  float* ys = y.data<float>();
  const int64_t W2 = 2 * in.W;
  parallel_for(in.N * in.C * in.H, grain_for(4 * in.W), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = xs + r * in.W;
      float* dst = ys + r * 2 * W2;
      for (int64_t i = 0; i < in.W; ++i) dst[2 * i] = dst[2 * i + 1] = src[i];
      std::copy(dst, dst + W2, dst + W2);
    }
  });
}

}  // namespace vargpt::cpu
