// Element-wise ops (activations, SwiGLU, broadcast add, axpby) and rotary position embedding.
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
  check_same_shape(op, a_name, a, b_name, b);
  check_same_shape(op, a_name, a, "y", y);
  check_dense_rows(op, a_name, a);
  check_dense_rows(op, b_name, b);
  check_dense_rows(op, "y", y);
  auto same_view = [](const Tensor& s, const Tensor& t) {
    return s.raw() == t.raw() && s.strides() == t.strides();
  };
  VG_CHECK(!overlaps(a, y) || same_view(a, y), op, ": y ", y.describe(), " partly overlaps ", a_name, " ",
           a.describe());
  VG_CHECK(!overlaps(b, y) || same_view(b, y), op, ": y ", y.describe(), " partly overlaps ", b_name, " ",
           b.describe());
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
