// Element-wise ops: activations, SwiGLU and GLU, suffix and NumPy broadcasting add / mul, axpby. One thread per element over the
// rows of each operand (RowMap), so slices with spaced rows work and in-place calls (y the same
// view as an input) read each element before writing it.
#include <algorithm>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

enum class Binary : uint8_t { Glu, Axpby };

__global__ void activation_kernel(const float* x, RowMap xr, float* y, RowMap yr, Activation act) {
  const int64_t C = xr.cols, count = xr.rows * C;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    y[yr.offset(r) + c] = apply_activation(act, x[xr.offset(r) + c]);
  }
}

// Glu: y = act(a) * b; Axpby: y = alpha a + beta b.
__global__ void binary_kernel(const float* a, RowMap ar, const float* b, RowMap br, float* y, RowMap yr, Binary kind,
                              Activation act, float alpha, float beta) {
  const int64_t C = ar.cols, count = ar.rows * C;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    const float av = a[ar.offset(r) + c], bv = b[br.offset(r) + c];
    y[yr.offset(r) + c] = kind == Binary::Glu ? apply_activation(act, av) * bv : alpha * av + beta * bv;
  }
}

// a's row r pairs with b's row r mod (rows of b): b's shape is a suffix of a's.
__global__ void add_kernel(const float* a, RowMap ar, const float* b, RowMap br, float* y, RowMap yr) {
  const int64_t C = ar.cols, count = ar.rows * C;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    y[yr.offset(r) + c] = a[ar.offset(r) + c] + b[br.offset(r % br.rows) + c];
  }
}

// NumPy broadcasting over a collapsed plan (op_checks.h): one thread per element of y.
template <BinaryOp kOp>
__global__ void broadcast_kernel(const float* a, const float* b, float* y, BroadcastPlan p) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < p.count; i += int64_t{gridDim.x} * blockDim.x) {
    int64_t oa = 0, ob = 0, oy = 0, rem = i;
    for (int d = p.rank - 1; d >= 0; --d) {
      const int64_t idx = rem % p.dims[d];
      rem /= p.dims[d];
      oa += idx * p.a_strides[d];
      ob += idx * p.b_strides[d];
      oy += idx * p.y_strides[d];
    }
    y[oy] = kOp == BinaryOp::Mul ? __fmul_rn(a[oa], b[ob]) : __fadd_rn(a[oa], b[ob]);
  }
}

// Same-shape f32 operands with dense rows; `y` may alias an input only exactly (in place).
void check_binary(const Ctx& ctx, const char* op, const char* a_name, const Tensor& a, const char* b_name,
                  const Tensor& b, const Tensor& y) {
  check_dtype(ctx, op, a_name, a, DType::F32);
  check_dtype(ctx, op, b_name, b, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  check_elementwise_args(op, a_name, a, b_name, b, y);
}

void launch_binary(const Ctx& ctx, const char* op, const Tensor& a, const Tensor& b, const Tensor& y, Binary kind,
                   Activation act, float alpha, float beta) {
  const RowMap ar = row_map(op, "a", a), br = row_map(op, "b", b), yr = row_map(op, "y", y);
  const int64_t count = ar.rows * ar.cols;
  if (count == 0) return;
  binary_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(a.data<float>(), ar, b.data<float>(), br,
                                                              y.data<float>(), yr, kind, act, alpha, beta);
  VG_CUDA_LAUNCHED(op, "binary_kernel");
}

}  // namespace

void activation(const Ctx& ctx, const Tensor& x, Activation act, const Tensor& y) {
  check_binary(ctx, "activation", "x", x, "x", x, y);
  const RowMap xr = row_map("activation", "x", x), yr = row_map("activation", "y", y);
  const int64_t count = xr.rows * xr.cols;
  if (count == 0) return;
  activation_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(x.data<float>(), xr, y.data<float>(), yr, act);
  VG_CUDA_LAUNCHED("activation", "activation_kernel");
}

void glu(const Ctx& ctx, const Tensor& gate, const Tensor& up, Activation act, const Tensor& y) {
  check_binary(ctx, "glu", "gate", gate, "up", up, y);
  launch_binary(ctx, "glu", gate, up, y, Binary::Glu, act, 0.0f, 0.0f);
}

void binary(const Ctx& ctx, BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) {
  const char* name = "binary";
  check_dtype(ctx, name, "a", a, DType::F32);
  check_dtype(ctx, name, "b", b, DType::F32);
  check_dtype(ctx, name, "y", y, DType::F32);
  const BroadcastPlan plan = check_binary_args(name, a, b, y);
  if (plan.count == 0) return;
  const float* ap = static_cast<const float*>(a.raw());
  const float* bp = static_cast<const float*>(b.raw());
  float* yp = static_cast<float*>(y.raw());
  if (op == BinaryOp::Mul) broadcast_kernel<BinaryOp::Mul><<<grid_for(plan.count), kThreads, 0, ctx.stream>>>(ap, bp, yp, plan);
  else broadcast_kernel<BinaryOp::Add><<<grid_for(plan.count), kThreads, 0, ctx.stream>>>(ap, bp, yp, plan);
  VG_CUDA_LAUNCHED(name, "broadcast_kernel");
}

void axpby(const Ctx& ctx, float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& y) {
  check_binary(ctx, "axpby", "a", a, "b", b, y);
  launch_binary(ctx, "axpby", a, b, y, Binary::Axpby, Activation::None, alpha, beta);
}

void add(const Ctx& ctx, const Tensor& a, const Tensor& b, const Tensor& y) {
  const char* op = "add";
  check_dtype(ctx, op, "a", a, DType::F32);
  check_dtype(ctx, op, "b", b, DType::F32);
  check_dtype(ctx, op, "y", y, DType::F32);
  check_add_args(op, a, b, y);
  check_dense_rows(op, "b", b);
  const RowMap ar = row_map(op, "a", a), br = row_map(op, "b", b), yr = row_map(op, "y", y);
  const int64_t count = ar.rows * ar.cols;
  if (count == 0 || br.rows == 0) return;
  add_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(a.data<float>(), ar, b.data<float>(), br, y.data<float>(),
                                                           yr);
  VG_CUDA_LAUNCHED(op, "add_kernel");
}

}  // namespace vargpt::cuda
