// Image resizing exactly as PyTorch's F.interpolate: bilinear and bicubic (align_corners=False;
// bicubic with A = -0.75, unclamped output) and area (= adaptive average pooling). The
// arithmetic follows ATen's CPU kernels step by step (f32 source coordinates, x pass then y pass, float sums in window order)
// so the results agree with the reference to rounding.
#include <cmath>
#include <vector>

#include "cpu_common.h"
#include "cpu_ops.h"

namespace vargpt::cpu {

namespace {

struct Planes {
  int64_t planes, H, W;  // planes = N * C
};

Planes check_resize(const char* op, const Tensor& x, const Tensor& y, Planes* out) {
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  const ResizeDims d = check_resize_args(op, x, y);
  *out = {d.planes, d.Ho, d.Wo};
  return {d.planes, d.H, d.W};
}

// Calls row(src_plane, dst_row, oy) for every output row of every plane, on the thread pool.
template <typename Row>
void each_output_row(const Planes& in, const Planes& out, const Tensor& x, const Tensor& y, int64_t cost, Row row) {
  const float* xs = x.data<float>();
  float* ys = y.data<float>();
  parallel_for(in.planes * out.H, grain_for(out.W * cost), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t plane = r / out.H, oy = r % out.H;
      row(xs + plane * in.H * in.W, ys + plane * out.H * out.W + oy * out.W, oy);
    }
  });
}

constexpr float kCubicA = -0.75f;
inline float cubic1(float t) { return ((kCubicA + 2.0f) * t - (kCubicA + 3.0f)) * t * t + 1.0f; }
inline float cubic2(float t) { return ((kCubicA * t - 5.0f * kCubicA) * t + 8.0f * kCubicA) * t - 4.0f * kCubicA; }

struct CubicTaps {
  int64_t index[4];
  float weight[4];
};

// ATen (HelperInterpCubic): scale = in / out in float; src = scale * (d + 0.5) - 0.5, not
// clamped below for cubic; guard_index_and_lambda caps the index at in - 1 and t to [0, 1].
std::vector<CubicTaps> cubic_taps(int64_t in, int64_t out) {
  std::vector<CubicTaps> taps(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t d = 0; d < out; ++d) {
    const float src = scale * (static_cast<float>(d) + 0.5f) - 0.5f;
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
    const float t = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    const float t2 = 1.0f - t;
    CubicTaps& c = taps[d];
    c.weight[0] = cubic2(t + 1.0f);
    c.weight[1] = cubic1(t);
    c.weight[2] = cubic1(t2);
    c.weight[3] = cubic2(t2 + 1.0f);
    for (int j = 0; j < 4; ++j) c.index[j] = std::min(std::max<int64_t>(i0 - 1 + j, 0), in - 1);
  }
  return taps;
}

struct LinearTaps {
  int64_t index[2];
  float weight[2];
};

// ATen (compute_indices_weights_linear): scale = in / out in float; src = scale (d + 0.5) - 0.5,
// clamped below at 0; index = min(floor(src), in - 1), the second tap one further unless at the
// edge; lambda = src - index clamped to [0, 1].
std::vector<LinearTaps> linear_taps(int64_t in, int64_t out) {
  std::vector<LinearTaps> taps(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t d = 0; d < out; ++d) {
    const float src = std::max(scale * (static_cast<float>(d) + 0.5f) - 0.5f, 0.0f);
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
    const float lambda = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    taps[d] = {{i0, i0 + (i0 < in - 1 ? 1 : 0)}, {1.0f - lambda, lambda}};
  }
  return taps;
}

}  // namespace

void resize_bilinear(const Tensor& x, const Tensor& y) {
  Planes out;
  const Planes in = check_resize("resize_bilinear", x, y, &out);
  const std::vector<LinearTaps> tx = linear_taps(in.W, out.W), ty = linear_taps(in.H, out.H);
  each_output_row(in, out, x, y, 8, [&](const float* src, float* dst, int64_t oy) {
    const LinearTaps& cy = ty[oy];
    const float* line0 = src + cy.index[0] * in.W;
    const float* line1 = src + cy.index[1] * in.W;
    for (int64_t ox = 0; ox < out.W; ++ox) {
      const LinearTaps& cx = tx[ox];
      // ATen's order: each row's taps, then the rows.
      const float row0 = line0[cx.index[0]] * cx.weight[0] + line0[cx.index[1]] * cx.weight[1];
      const float row1 = line1[cx.index[0]] * cx.weight[0] + line1[cx.index[1]] * cx.weight[1];
      dst[ox] = row0 * cy.weight[0] + row1 * cy.weight[1];
    }
  });
}

void resize_bicubic(const Tensor& x, const Tensor& y) {
  Planes out;
  const Planes in = check_resize("resize_bicubic", x, y, &out);
  const std::vector<CubicTaps> tx = cubic_taps(in.W, out.W), ty = cubic_taps(in.H, out.H);
  each_output_row(in, out, x, y, 16, [&](const float* src, float* dst, int64_t oy) {
    const CubicTaps& cy = ty[oy];
    for (int64_t ox = 0; ox < out.W; ++ox) {
      const CubicTaps& cx = tx[ox];
      float rows[4];
      for (int j = 0; j < 4; ++j) {
        const float* line = src + cy.index[j] * in.W;
        rows[j] = line[cx.index[0]] * cx.weight[0] + line[cx.index[1]] * cx.weight[1] +
                  line[cx.index[2]] * cx.weight[2] + line[cx.index[3]] * cx.weight[3];
      }
      dst[ox] = rows[0] * cy.weight[0] + rows[1] * cy.weight[1] + rows[2] * cy.weight[2] + rows[3] * cy.weight[3];
    }
  });
}

void resize_area(const Tensor& x, const Tensor& y) {
  Planes out;
  const Planes in = check_resize("resize_area", x, y, &out);
  // ATen adaptive pooling windows: [floor(a * in / out), ceil((a + 1) * in / out)).
  auto start = [](int64_t a, int64_t o, int64_t i) { return a * i / o; };
  auto end = [](int64_t a, int64_t o, int64_t i) { return ((a + 1) * i + o - 1) / o; };
  each_output_row(in, out, x, y, 16, [&](const float* src, float* dst, int64_t oy) {
    const int64_t y0 = start(oy, out.H, in.H), y1 = end(oy, out.H, in.H);
    for (int64_t ox = 0; ox < out.W; ++ox) {
      const int64_t x0 = start(ox, out.W, in.W), x1 = end(ox, out.W, in.W);
      float sum = 0.0f;
      for (int64_t iy = y0; iy < y1; ++iy)
        for (int64_t ix = x0; ix < x1; ++ix) sum += src[iy * in.W + ix];
      // ATen divides twice (sum / kh / kw); one division by kh * kw can differ in the last bit.
      dst[ox] = sum / static_cast<float>(y1 - y0) / static_cast<float>(x1 - x0);
    }
  });
}

}  // namespace vargpt::cpu
