// Data movement on the device: copy and cast between any strides, fill, and a tiled transpose.
// Contiguous copies are plain cudaMemcpyAsync; everything else walks the shape element by element
// (one thread per element, offsets from the merged strides).
#include <algorithm>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

// Both tensors' strides over their common shape, size-1 axes dropped and axes merged where both
// tensors collapse them to one stride.
Strided strided_pair(const char* op, const Tensor& a, const Tensor& b) {
  int64_t dims[64], as[64], bs[64];
  int n = 0;
  VG_CHECK(a.rank() <= 64, op, ": ", a.describe(), " has too many axes");
  for (int i = 0; i < a.rank(); ++i) {
    const int64_t d = a.shape()[i];
    if (d == 1) continue;
    const int64_t sa = a.strides()[i], sb = b.strides()[i];
    if (n > 0 && as[n - 1] == sa * d && bs[n - 1] == sb * d) {
      dims[n - 1] *= d;
      as[n - 1] = sa;
      bs[n - 1] = sb;
      continue;
    }
    dims[n] = d;
    as[n] = sa;
    bs[n] = sb;
    ++n;
  }
  VG_CHECK(n <= kMaxDims, op, ": ", a.describe(), " and ", b.describe(), " have more than ", kMaxDims,
           " non-mergeable axes");
  Strided s;
  s.rank = n;
  for (int i = 0; i < n; ++i) {
    s.dims[i] = dims[i];
    s.a_strides[i] = as[i];
    s.b_strides[i] = bs[i];
  }
  return s;
}

__device__ __forceinline__ void offsets(const Strided& s, int64_t i, int64_t* a, int64_t* b) {
  int64_t oa = 0, ob = 0;
  for (int d = s.rank - 1; d >= 0; --d) {
    const int64_t idx = i % s.dims[d];
    i /= s.dims[d];
    oa += idx * s.a_strides[d];
    ob += idx * s.b_strides[d];
  }
  *a = oa;
  *b = ob;
}

template <typename T>
__global__ void copy_kernel(const T* __restrict__ src, T* __restrict__ dst, Strided s, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    int64_t so, dof;
    offsets(s, i, &so, &dof);
    dst[dof] = src[so];
  }
}

__global__ void cast_kernel(FloatPtr src, void* __restrict__ dst, DType dst_type, Strided s, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    int64_t so, dof;
    offsets(s, i, &so, &dof);
    store_float(dst, dst_type, dof, load_float(src, so));
  }
}

__global__ void fill_kernel(float* __restrict__ dst, Strided s, float value, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    int64_t o, unused;
    offsets(s, i, &o, &unused);
    dst[o] = value;
  }
}

// 32 x 32 tiles through shared memory so both the reads and the writes are coalesced; the +1
// column keeps the transposed reads off a single bank.
template <typename T>
__global__ void transpose_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t R, int64_t C) {
  __shared__ T tile[32][33];
  const int64_t b = blockIdx.z;
  const T* xs = x + b * R * C;
  T* ys = y + b * R * C;
  const int64_t r0 = int64_t{blockIdx.y} * 32, c0 = int64_t{blockIdx.x} * 32;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t r = r0 + i, c = c0 + threadIdx.x;
    if (r < R && c < C) tile[i][threadIdx.x] = xs[r * C + c];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t c = c0 + i, r = r0 + threadIdx.x;
    if (r < R && c < C) ys[c * R + r] = tile[threadIdx.x][i];
  }
}

template <typename T>
void launch_copy(const Ctx& ctx, const void* src, void* dst, const Strided& s, int64_t count) {
  copy_kernel<T><<<grid_for(count), kThreads, 0, ctx.stream>>>(static_cast<const T*>(src), static_cast<T*>(dst), s,
                                                               count);
  VG_CUDA_LAUNCHED("copy", "copy_kernel");
}

template <typename T>
void launch_transpose(const Ctx& ctx, const void* x, void* y, int64_t B, int64_t R, int64_t C) {
  VG_CHECK(B <= 65535 && (R + 31) / 32 <= 65535, "transpose: ", B, " batches of ", R, " rows exceed the grid");
  const dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>((R + 31) / 32), static_cast<unsigned>(B));
  transpose_kernel<T><<<grid, dim3(32, 8), 0, ctx.stream>>>(static_cast<const T*>(x), static_cast<T*>(y), R, C);
  VG_CUDA_LAUNCHED("transpose", "transpose_kernel");
}

}  // namespace

void copy(const Ctx& ctx, const Tensor& src, const Tensor& dst) {
  check_device(ctx, "copy", "src", src);
  check_device(ctx, "copy", "dst", dst);
  check_same_shape("copy", "src", src, "dst", dst);
  VG_CHECK(src.dtype() == dst.dtype(), "copy: src ", src.describe(), " and dst ", dst.describe(),
           " differ in dtype (use cast)");
  if (src.numel() == 0) return;
  check_no_alias("copy", "src", src, "dst", dst);
  if (src.is_contiguous() && dst.is_contiguous()) {
    VG_CUDA("copy", cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream));
    return;
  }
  const Strided s = strided_pair("copy", src, dst);
  switch (dtype_size(src.dtype())) {
    case 1: return launch_copy<uint8_t>(ctx, src.raw(), dst.raw(), s, src.numel());
    case 2: return launch_copy<uint16_t>(ctx, src.raw(), dst.raw(), s, src.numel());
    case 4: return launch_copy<uint32_t>(ctx, src.raw(), dst.raw(), s, src.numel());
    case 8: return launch_copy<uint64_t>(ctx, src.raw(), dst.raw(), s, src.numel());
    default: fail("copy: unsupported element size of ", src.describe());
  }
}

void fill(const Ctx& ctx, const Tensor& dst, float value) {
  check_dtype(ctx, "fill", "dst", dst, DType::F32);
  if (dst.numel() == 0) return;
  const Strided s = strided_pair("fill", dst, dst);
  fill_kernel<<<grid_for(dst.numel()), kThreads, 0, ctx.stream>>>(dst.data<float>(), s, value, dst.numel());
  VG_CUDA_LAUNCHED("fill", "fill_kernel");
}

void cast(const Ctx& ctx, const Tensor& src, const Tensor& dst) {
  check_float(ctx, "cast", "src", src);
  check_float(ctx, "cast", "dst", dst);
  check_same_shape("cast", "src", src, "dst", dst);
  if (src.numel() == 0) return;
  if (src.dtype() == dst.dtype()) return copy(ctx, src, dst);
  check_no_alias("cast", "src", src, "dst", dst);
  const Strided s = strided_pair("cast", src, dst);
  cast_kernel<<<grid_for(src.numel()), kThreads, 0, ctx.stream>>>(FloatPtr{src.raw(), src.dtype()}, dst.raw(),
                                                                  dst.dtype(), s, src.numel());
  VG_CUDA_LAUNCHED("cast", "cast_kernel");
}

void transpose(const Ctx& ctx, const Tensor& x, const Tensor& y) {
  check_device(ctx, "transpose", "x", x);
  check_device(ctx, "transpose", "y", y);
  const TransposeDims dims = check_transpose_args("transpose", x, y);
  const int64_t B = dims.batch, R = dims.rows, C = dims.cols;
  if (x.numel() == 0) return;
  switch (dtype_size(x.dtype())) {
    case 1: return launch_transpose<uint8_t>(ctx, x.raw(), y.raw(), B, R, C);
    case 2: return launch_transpose<uint16_t>(ctx, x.raw(), y.raw(), B, R, C);
    case 4: return launch_transpose<uint32_t>(ctx, x.raw(), y.raw(), B, R, C);
    case 8: return launch_transpose<uint64_t>(ctx, x.raw(), y.raw(), B, R, C);
    default: fail("transpose: unsupported element size of ", x.describe());
  }
}

Tensor contiguous(const Ctx& ctx, const Tensor& t, const char* op) {
  if (t.is_contiguous()) return t;
  Tensor out = scratch(ctx, t.dtype(), t.shape(), op);
  copy(ctx, t, out);
  return out;
}

}  // namespace vargpt::cuda
