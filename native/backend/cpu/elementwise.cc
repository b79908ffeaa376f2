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

void rope(const Tensor& x, const Tensor& table, int head_dim, RopePairing pairing) {
  const char* op = "rope";
  check_dtype(op, "x", x, DType::F32);
  check_dtype(op, "table", table, DType::F32);
  const RopeDims d = check_rope_args(op, x, table, head_dim);
  // Element strides of angle j's pair inside a head: (j, j + half) or (2j, 2j + 1).
  const int64_t first = pairing == RopePairing::RotateHalf ? 1 : 2;
  const int64_t second = pairing == RopePairing::RotateHalf ? d.half : 1;
  const Rows xr(x);
  const int64_t table_stride = table.stride(0);
  const float* tab = table.data<float>();
  parallel_for(d.rows, grain_for(x.dim(-1) * 8), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* cs = tab + (r % d.L) * table_stride;
      float* row = xr.row<float>(r);
      for (int64_t h = 0; h < d.heads; ++h) {
        float* v = row + h * 2 * d.half;
        for (int64_t j = 0; j < d.half; ++j) {
          const float c = cs[j], s = cs[d.half + j];
          float& a = v[j * first];
          float& b = v[j * first + second];
          const float x1 = a, x2 = b;
          a = x1 * c - x2 * s;
          b = x2 * c + x1 * s;
        }
      }
    }
  });
}

}  // namespace vargpt::cpu
