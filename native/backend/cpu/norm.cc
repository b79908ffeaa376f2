// Normalisations and modulation: RMSNorm, LayerNorm, AdaLN and norm + modulate, gated residual, GroupNorm and the
// per-head L2 normalisation of VAR's attention.
#include <cmath>

#include "cpu_common.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

namespace {

// Sixteen partial sums: vectorisable without reassociation flags, and each lane sums only
// n/16 values, which also keeps the rounding error small.
inline float sum_squares(const float* x, int64_t n) {
  float partial[16] = {};
  const int64_t body = n / 16 * 16;
  for (int64_t i = 0; i < body; i += 16)
    for (int j = 0; j < 16; ++j) partial[j] += x[i + j] * x[i + j];
  float sum = 0.0f;
  for (int64_t i = body; i < n; ++i) sum += x[i] * x[i];
  for (int j = 0; j < 16; ++j) sum += partial[j];
  return sum;
}

inline float sum_values(const float* x, int64_t n) {
  float partial[16] = {};
  const int64_t body = n / 16 * 16;
  for (int64_t i = 0; i < body; i += 16)
    for (int j = 0; j < 16; ++j) partial[j] += x[i + j];
  float sum = 0.0f;
  for (int64_t i = body; i < n; ++i) sum += x[i];
  for (int j = 0; j < 16; ++j) sum += partial[j];
  return sum;
}

// Sum of (x - m)^2 over a run, sixteen partial sums like sum_squares.
inline float sum_sq_dev(const float* x, int64_t n, float m) {
  float partial[16] = {};
  const int64_t body = n / 16 * 16;
  for (int64_t i = 0; i < body; i += 16)
    for (int j = 0; j < 16; ++j) partial[j] += (x[i + j] - m) * (x[i + j] - m);
  float sum = 0.0f;
  for (int64_t i = body; i < n; ++i) sum += (x[i] - m) * (x[i] - m);
  for (int j = 0; j < 16; ++j) sum += partial[j];
  return sum;
}

// Mean and 1/sqrt(biased variance + eps) of a row, two passes (no cancellation).
inline void row_moments(const float* x, int64_t n, float eps, float* mean, float* inv_std) {
  const float mu = sum_values(x, n) / static_cast<float>(n);
  float partial[16] = {};
  const int64_t body = n / 16 * 16;
  for (int64_t i = 0; i < body; i += 16)
    for (int j = 0; j < 16; ++j) partial[j] += (x[i + j] - mu) * (x[i + j] - mu);
  float var = 0.0f;
  for (int64_t i = body; i < n; ++i) var += (x[i] - mu) * (x[i] - mu);
  for (int j = 0; j < 16; ++j) var += partial[j];
  *mean = mu;
  *inv_std = 1.0f / std::sqrt(var / static_cast<float>(n) + eps);
}

void check_rows_pair(const char* op, const Tensor& x, const Tensor& y) {
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  VG_CHECK(x.rank() >= 1, op, ": x ", x.describe(), " must have at least one axis");
  check_same_shape(op, "x", x, "y", y);
  check_dense_rows(op, "x", x);
  check_dense_rows(op, "y", y);
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& y) {
  check_rows_pair("rms_norm", x, y);
  const int64_t C = x.dim(-1);
  const std::vector<float> w = widen_vector("rms_norm", "weight", weight, C);
  const Rows xr(x), yr(y);
  parallel_for(xr.rows(), grain_for(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xi = xr.row<float>(r);
      float* yi = yr.row<float>(r);
      const float inv = 1.0f / std::sqrt(sum_squares(xi, C) / static_cast<float>(C) + eps);
      for (int64_t c = 0; c < C; ++c) yi[c] = w[c] * (xi[c] * inv);
    }
  });
}

void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, const Tensor& y) {
  check_rows_pair("layer_norm", x, y);
  const int64_t C = x.dim(-1);
  std::vector<float> w, b;
  if (weight) w = widen_vector("layer_norm", "weight", *weight, C);
  if (bias) b = widen_vector("layer_norm", "bias", *bias, C);
  const Rows xr(x), yr(y);
  parallel_for(xr.rows(), grain_for(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xi = xr.row<float>(r);
      float* yi = yr.row<float>(r);
      float mean, inv;
      row_moments(xi, C, eps, &mean, &inv);
      for (int64_t c = 0; c < C; ++c) {
        float v = (xi[c] - mean) * inv;
        if (weight) v *= w[c];
        if (bias) v += b[c];
        yi[c] = v;
      }
    }
  });
}

namespace {

// norm_modulate (`op` names the caller in messages).
void modulate(const char* op, const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias, float eps,
              const Tensor& scale, const Tensor* shift, const Tensor& y) {
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  check_dtype(op, "scale", scale, DType::F32);
  if (shift != nullptr) check_dtype(op, "shift", *shift, DType::F32);
  const ModulateDims d = check_modulate_args(op, x, scale, shift, y);
  const int64_t L = d.len, C = d.channels;
  std::vector<float> w, b;
  if (weight != nullptr) w = widen_vector(op, "weight", *weight, C);
  if (bias != nullptr) b = widen_vector(op, "bias", *bias, C);
  const float* sc = scale.data<float>();
  const float* sh = shift != nullptr ? shift->data<float>() : nullptr;
  const Rows xr(x), yr(y);
  parallel_for(d.batch * L, grain_for(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t bi = r / L;
      const float* s = sc + bi * d.scale_stride;
      const float* t = sh != nullptr ? sh + bi * d.shift_stride : nullptr;
      const float* xi = xr.row<float>(r);
      float* yi = yr.row<float>(r);
      float mean = 0.0f, inv;
      if (norm == NormKind::LayerNorm) row_moments(xi, C, eps, &mean, &inv);
      else inv = 1.0f / std::sqrt(sum_squares(xi, C) / static_cast<float>(C) + eps);
      for (int64_t c = 0; c < C; ++c) {
        float v = (xi[c] - mean) * inv;
        if (weight != nullptr) v *= w[c];
        if (bias != nullptr) v += b[c];
        v *= 1.0f + s[c];
        yi[c] = t != nullptr ? v + t[c] : v;
      }
    }
  });
}

}  // namespace

void norm_modulate(const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias, float eps,
                   const Tensor& scale, const Tensor* shift, const Tensor& y) {
  modulate("norm_modulate", x, norm, weight, bias, eps, scale, shift, y);
}

void gated_add(const Tensor& x, const Tensor& y, const Tensor& gate, Activation gate_act) {
  const char* op = "gated_add";
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  check_dtype(op, "gate", gate, DType::F32);
  const GatedDims d = check_gated_add_args(op, x, y, gate);
  const int64_t L = d.len, C = d.channels;
  const float* g = gate.data<float>();
  // g(gate) once per batch row (B x C values), not once per token.
  std::vector<float> act;
  if (gate_act != Activation::None) {
    act.resize(static_cast<size_t>(d.batch * C));
    for (int64_t bi = 0; bi < d.batch; ++bi)
      active_gemm_kernels().activation(gate_act, g + bi * d.gate_stride, act.data() + bi * C, C);
  }
  const float* gv = gate_act != Activation::None ? act.data() : g;
  const int64_t gv_stride = gate_act != Activation::None ? C : d.gate_stride;
  const Rows xr(x), yr(y);
  parallel_for(d.batch * L, grain_for(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* gb = gv + r / L * gv_stride;
      float* xi = xr.row<float>(r);
      const float* yi = yr.row<float>(r);
      for (int64_t c = 0; c < C; ++c) xi[c] += yi[c] * gb[c];
    }
  });
}

void group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps, const Tensor& y) {
  const char* op = "group_norm";
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  check_rank(op, "x", x, 3, 4);
  check_same_shape(op, "x", x, "y", y);
  check_contiguous(op, "x", x);
  check_contiguous(op, "y", y);
  const int64_t N = x.rank() == 4 ? x.dim(0) : 1, C = x.dim(-3), HW = x.dim(-2) * x.dim(-1);
  VG_CHECK(groups > 0 && C % groups == 0, op, ": ", groups, " groups do not divide the ", C, " channels of x ",
           x.describe());
  const std::vector<float> w = widen_vector(op, "weight", weight, C);
  const std::vector<float> b = widen_vector(op, "bias", bias, C);
  const int64_t per_group = C / groups;
  const float* xs = x.data<float>();
  float* ys = y.data<float>();
  parallel_for(N * groups, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / groups, g = t % groups;
      const int64_t count = per_group * HW;
      const float* xg = xs + (n * C + g * per_group) * HW;
      float* yg = ys + (n * C + g * per_group) * HW;
      // Groups hold up to ~330k values at 256x256. Moments per chunk of kChunk values (two
      // vectorised float passes while the chunk sits in L1: its mean, then the squared
      // deviations from it), merged across chunks in double with Chan's update, so the data is
      // read from memory once and nothing cancels.
      constexpr int64_t kChunk = 4096;
      double n_acc = 0.0, mean_acc = 0.0, m2_acc = 0.0;
      for (int64_t i0 = 0; i0 < count; i0 += kChunk) {
        const int64_t len = std::min(kChunk, count - i0);
        const float* xc = xg + i0;
        const float m = sum_values(xc, len) / static_cast<float>(len);
        const double m2 = sum_sq_dev(xc, len, m);
        const double n_new = n_acc + static_cast<double>(len), delta = static_cast<double>(m) - mean_acc;
        mean_acc += delta * static_cast<double>(len) / n_new;
        m2_acc += m2 + delta * delta * n_acc * static_cast<double>(len) / n_new;
        n_acc = n_new;
      }
      const double mean = mean_acc;
      const float inv = static_cast<float>(1.0 / std::sqrt(m2_acc / static_cast<double>(count) + eps));
      const float meanf = static_cast<float>(mean);
      for (int64_t c = 0; c < per_group; ++c) {
        const int64_t ch = g * per_group + c;
        const float a = inv * w[ch], shift = b[ch] - meanf * inv * w[ch];
        const float* xc = xg + c * HW;
        float* yc = yg + c * HW;
        for (int64_t i = 0; i < HW; ++i) yc[i] = xc[i] * a + shift;
      }
    }
  });
}

void l2_normalize_heads(const Tensor& x, int head_dim, const Tensor* head_scale) {
  const char* op = "l2_normalize_heads";
  check_dtype(op, "x", x, DType::F32);
  check_dense_rows(op, "x", x);
  VG_CHECK(x.rank() >= 1 && head_dim > 0 && x.dim(-1) % head_dim == 0, op, ": head_dim ", head_dim,
           " does not divide the last axis of x ", x.describe());
  const int64_t H = x.dim(-1) / head_dim, D = head_dim;
  std::vector<float> hs;
  if (head_scale != nullptr) {
    check_dtype(op, "head_scale", *head_scale, DType::F32);
    hs = widen_vector(op, "head_scale", *head_scale, H);
  }
  const Rows xr(x);
  parallel_for(xr.rows(), grain_for(H * D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = xr.row<float>(r);
      for (int64_t h = 0; h < H; ++h) {
        float* v = row + h * D;
        const float norm = std::sqrt(sum_squares(v, D));
        // F.normalize: v / max(||v||, eps), then the learnt per-head scale.
        const float factor = (head_scale ? hs[h] : 1.0f) / std::max(norm, 1e-12f);
        for (int64_t d = 0; d < D; ++d) v[d] *= factor;
      }
    }
  });
}

}  // namespace vargpt::cpu
