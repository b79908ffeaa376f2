// Element-wise ops (activations, SwiGLU and GLU, suffix and NumPy broadcasting add / mul, axpby)
// and rotary position embedding.
#include <cmath>

#include "cpu_common.h"
#include "cpu_math.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

namespace {

// Calls body(row_of_a, row_of_b, row_of_y, n) over matching dense rows of same-shaped f32 tensors.
template <typename Body>
void for_rows3(const Tensor& a, const Tensor& b, const Tensor& y, Body&& body) {
  const Rows ar(a), br(b), yr(y);
  const int64_t C = ar.cols();
  parallel_for(ar.rows(), grain_for(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) body(ar.row<float>(r), br.row<float>(r), yr.row<float>(r), C);
  });
}

// Same-shape f32 operands with dense rows; `y` may alias an input only exactly (in place).
void check_binary(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b,
                  const Tensor& y) {
  check_dtype(op, a_name, a, DType::F32);
  check_dtype(op, b_name, b, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  check_elementwise_args(op, a_name, a, b_name, b, y);
}

// y = act(gate) * up over one dense run; y may be gate or up. SiLU has its own fused kernel; the
// others go through a stack block of act(gate) so an aliased input is read before it is written.
void glu_run(const GemmKernels& kern, Activation act, const float* gate, const float* up, float* y, int64_t n) {
  if (act == Activation::SiLU) return kern.swiglu(gate, up, y, n);
  constexpr int64_t kBlock = 256;
  float g[kBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t len = std::min(kBlock, n - i0);
    kern.activation(act, gate + i0, g, len);
    for (int64_t i = 0; i < len; ++i) y[i0 + i] = g[i] * up[i0 + i];
  }
}

// The innermost collapsed axis of a broadcast plan, with the contiguous cases split out so they
// vectorise: y[i] = a[i * sa] (op) b[i * sb].
template <typename Op>
void broadcast_run(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t sy, int64_t n, Op f) {
  if (sy == 1 && sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (sy == 1 && sa == 1 && sb == 0) {
    const float bv = *b;
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], bv);
  } else if (sy == 1 && sa == 0 && sb == 1) {
    const float av = *a;
    for (int64_t i = 0; i < n; ++i) y[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i * sy] = f(a[i * sa], b[i * sb]);
  }
}

template <typename Op>
void broadcast_apply(const BroadcastPlan& p, const float* a, const float* b, float* y, Op f) {
  if (p.count == 0) return;
  if (p.rank == 0) {
    *y = f(*a, *b);
    return;
  }
  const int last = p.rank - 1;
  const int64_t n = p.dims[last], runs = p.count / n;
  parallel_for(runs, grain_for(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      // Offsets of run r: its index over the outer axes, innermost outer axis fastest.
      int64_t oa = 0, ob = 0, oy = 0, rem = r;
      for (int i = last - 1; i >= 0; --i) {
        const int64_t idx = rem % p.dims[i];
        rem /= p.dims[i];
        oa += idx * p.a_strides[i];
        ob += idx * p.b_strides[i];
        oy += idx * p.y_strides[i];
      }
      broadcast_run(a + oa, p.a_strides[last], b + ob, p.b_strides[last], y + oy, p.y_strides[last], n, f);
    }
  });
}

}  // namespace

void activation(const Tensor& x, Activation act, const Tensor& y) {
  check_binary("activation", "x", x, "x", x, y);
  const GemmKernels& kern = active_gemm_kernels();
  for_rows3(x, x, y, [&](const float* xi, const float*, float* yi, int64_t n) { kern.activation(act, xi, yi, n); });
}

void swiglu(const Tensor& gate, const Tensor& up, const Tensor& y) {
  check_binary("swiglu", "gate", gate, "up", up, y);
  const GemmKernels& kern = active_gemm_kernels();
  for_rows3(gate, up, y, [&](const float* g, const float* u, float* yi, int64_t n) { kern.swiglu(g, u, yi, n); });
}

void glu(const Tensor& gate, const Tensor& up, Activation act, const Tensor& y) {
  check_binary("glu", "gate", gate, "up", up, y);
  const GemmKernels& kern = active_gemm_kernels();
  for_rows3(gate, up, y, [&](const float* g, const float* u, float* yi, int64_t n) { glu_run(kern, act, g, u, yi, n); });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) {
  const char* name = "binary";
  check_dtype(name, "a", a, DType::F32);
  check_dtype(name, "b", b, DType::F32);
  check_dtype(name, "y", y, DType::F32);
  const BroadcastPlan plan = check_binary_args(name, a, b, y);
  const float* ap = static_cast<const float*>(a.raw());
  const float* bp = static_cast<const float*>(b.raw());
  float* yp = static_cast<float*>(y.raw());
  switch (op) {
    case BinaryOp::Add: return broadcast_apply(plan, ap, bp, yp, [](float u, float v) { return u + v; });
    case BinaryOp::Mul: return broadcast_apply(plan, ap, bp, yp, [](float u, float v) { return u * v; });
  }
  fail(name, ": unknown operation ", static_cast<int>(op));
}

void add(const Tensor& a, const Tensor& b, const Tensor& y) {
  const char* op = "add";
  check_dtype(op, "a", a, DType::F32);
  check_dtype(op, "b", b, DType::F32);
  check_dtype(op, "y", y, DType::F32);
  check_add_args(op, a, b, y);
  // b as rows of the same width as a's rows; a's row r pairs with b's row r mod (rows of b).
  const Tensor bb = b.rank() == 0 ? b.contiguous_copy().view({1}) : b;
  check_dense_rows(op, "b", bb);
  const Rows ar(a), br(bb), yr(y);
  const int64_t C = ar.cols(), b_rows = br.rows();
  parallel_for(ar.rows(), grain_for(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* ai = ar.row<float>(r);
      const float* bi = br.row<float>(r % b_rows);
      float* yi = yr.row<float>(r);
      for (int64_t c = 0; c < C; ++c) yi[c] = ai[c] + bi[c];
    }
  });
}

void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& y) {
  check_binary("axpby", "a", a, "b", b, y);
  for_rows3(a, b, y, [&](const float* ai, const float* bi, float* yi, int64_t n) {
    for (int64_t i = 0; i < n; ++i) yi[i] = alpha * ai[i] + beta * bi[i];
  });
}

void rope(const Tensor& x, const Tensor& positions, int head_dim, float theta) {
  const char* op = "rope";
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "positions", positions, DType::I32);
  check_rank(op, "x", x, 2, 3);
  check_dense_rows(op, "x", x);
  VG_CHECK(head_dim > 0 && head_dim % 2 == 0 && x.dim(-1) % head_dim == 0, op, ": head_dim ", head_dim,
           " must be even and divide the last axis of x ", x.describe());
  const int64_t L = x.dim(-2), H = x.dim(-1) / head_dim, half = head_dim / 2;
  VG_CHECK(positions.rank() == 1 && positions.dim(0) == L, op, ": positions ", positions.describe(), " must be i32[",
           L, "] for x ", x.describe());
  VG_CHECK(theta > 0.0f, op, ": theta ", theta, " must be positive");
  // inv_freq and the angle in f32 as Hugging Face computes them (theta ** (2j / D) in float,
  // position * inv_freq in float), so long positions round the same way as the reference.
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j)
    inv_freq[j] = 1.0f / std::pow(theta, static_cast<float>(2 * j) / static_cast<float>(head_dim));
  const int32_t* pos = positions.data<int32_t>();
  const int64_t pos_stride = positions.stride(0);
  const Rows xr(x);
  parallel_for(xr.rows(), grain_for(x.dim(-1) * 8), [&](int64_t r0, int64_t r1) {
    std::vector<float> cs(static_cast<size_t>(2 * half));
    for (int64_t r = r0; r < r1; ++r) {
      const float p = static_cast<float>(pos[(r % L) * pos_stride]);
      for (int64_t j = 0; j < half; ++j) {
        const float angle = p * inv_freq[j];
        cs[j] = std::cos(angle);
        cs[half + j] = std::sin(angle);
      }
      float* row = xr.row<float>(r);
      for (int64_t h = 0; h < H; ++h) {
        float* v = row + h * head_dim;
        for (int64_t j = 0; j < half; ++j) {
          const float x1 = v[j], x2 = v[j + half];
          v[j] = x1 * cs[j] - x2 * cs[half + j];
          v[j + half] = x2 * cs[j] + x1 * cs[half + j];
        }
      }
    }
  });
}

}  // namespace vargpt::cpu
