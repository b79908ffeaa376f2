// Shared by the CUDA kernels: error checks that turn every CUDA failure into a vargpt::Error
// naming the op, argument checks that name the op and the tensors (the CPU twin's messages),
// dtype conversions on the device, row maps for tensors whose rows are dense but spaced
// arbitrarily (slices of KV caches), and block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "../../core/error.h"
#include "../../core/tensor.h"
#include "../backend.h"
#include "../op_checks.h"

namespace vargpt::cuda {

// ---- errors

std::string describe_cuda(cudaError_t status);

// Throws vargpt::Error "<op>: <what> failed (<cudaErrorName>: <description>)".
[[noreturn]] void fail_cuda(const char* op, const char* what, cudaError_t status);

}  // namespace vargpt::cuda

// Every CUDA runtime call goes through this: `op` names the Backend op in the message.
#define VG_CUDA(op, call)                                                  \
  do {                                                                     \
    const cudaError_t vg_status_ = (call);                                 \
    if (vg_status_ != cudaSuccess) ::vargpt::cuda::fail_cuda(op, #call, vg_status_); \
  } while (0)

// After every kernel launch: a bad configuration is reported here, an asynchronous fault by the
// next synchronising call.
#define VG_CUDA_LAUNCHED(op, kernel_name)                                                  \
  do {                                                                                     \
    const cudaError_t vg_status_ = cudaGetLastError();                                     \
    if (vg_status_ != cudaSuccess) ::vargpt::cuda::fail_cuda(op, "launch of " kernel_name, vg_status_); \
  } while (0)

namespace vargpt::cuda {

// ---- the execution context every op receives: one device, one stream.

class DeviceAllocator;

struct Ctx {
  int device = 0;
  cudaStream_t stream = nullptr;
  int multiprocessors = 1;
  DeviceAllocator* allocator = nullptr;
};

// A device scratch tensor from the backend's caching allocator (freed back to the cache when the
// last view dies; the stream orders its reuse after the kernels that used it).
Tensor scratch(const Ctx& ctx, DType dtype, Shape shape, const char* op);

// ---- argument checks (each throws vargpt::Error naming the op and the tensor); the device-independent
// ones and the per-op shape contracts are in ../op_checks.h, shared with the CPU backend.

void check_device(const Ctx& ctx, const char* op, const char* name, const Tensor& t);
void check_dtype(const Ctx& ctx, const char* op, const char* name, const Tensor& t, DType dtype);
void check_float(const Ctx& ctx, const char* op, const char* name, const Tensor& t);
// Activations that may be kept in bf16 (linear's x, attention's q, k, v: backend.h).
void check_f32_or_bf16(const Ctx& ctx, const char* op, const char* name, const Tensor& t);
// A small float vector (bias, norm weight) of `expected` elements on one axis, any float dtype.
void check_vector(const Ctx& ctx, const char* op, const char* name, const Tensor& t, int64_t expected);

// ---- launch geometry

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over `count` items, capped: the loops cover the rest.
inline unsigned grid_for(int64_t count, int threads = kThreads) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}

// ---- element access in a tensor's stored float type

struct FloatPtr {
  const void* data = nullptr;
  DType dtype = DType::F32;
};

__device__ __forceinline__ float load_float(FloatPtr p, int64_t i) {
  switch (p.dtype) {
    case DType::BF16: return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(p.data)[i]) << 16);
    case DType::F16: return __half2float(static_cast<const __half*>(p.data)[i]);
    default: return static_cast<const float*>(p.data)[i];
  }
}

// Round to nearest even, NaN kept quiet: the bit-exact twin of core/dtype.h's f32_to_bf16.
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float value) {
  const uint32_t bits = __float_as_uint(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

__device__ __forceinline__ void store_float(void* data, DType dtype, int64_t i, float v) {
  switch (dtype) {
    case DType::BF16: static_cast<uint16_t*>(data)[i] = f32_to_bf16_bits(v); break;
    case DType::F16: static_cast<__half*>(data)[i] = __float2half_rn(v); break;
    default: static_cast<float*>(data)[i] = v; break;
  }
}

// ---- rows of a tensor whose last axis is dense: row r of the flattened leading axes -> element
// offset. The device twin of cpu::Rows; size-1 axes are dropped and runs of axes that collapse to
// one stride are merged, so the common cases cost one multiply.
constexpr int kMaxLead = 7;

struct RowMap {
  int lead = 0;
  int64_t dims[kMaxLead] = {};
  int64_t strides[kMaxLead] = {};
  int64_t rows = 0, cols = 0;

  __host__ __device__ __forceinline__ int64_t offset(int64_t r) const {
    int64_t off = 0;
    for (int i = lead - 1; i > 0; --i) {
      off += (r % dims[i]) * strides[i];
      r /= dims[i];
    }
    return lead > 0 ? off + r * strides[0] : off;
  }
};

RowMap row_map(const char* op, const char* name, const Tensor& t);

// ---- general strided index (copy and cast with any strides)

constexpr int kMaxDims = 8;

struct Strided {
  int rank = 0;
  int64_t dims[kMaxDims] = {};
  int64_t a_strides[kMaxDims] = {};
  int64_t b_strides[kMaxDims] = {};
};

// ---- reductions (blockDim.x a multiple of 32, at most 1024)

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block; every thread gets the result. `shared` holds 32 values of T. Starts with a
// barrier so the same buffer can serve consecutive reductions.
template <typename T>
__device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = lane < warps ? shared[lane] : T(0);
  return warp_sum(total);
}

__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float m = lane < warps ? shared[lane] : -INFINITY;
  return warp_max(m);
}

// ---- activations (the formulas of cpu_math.h with full-precision expf/erff)

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float apply_activation(Activation act, float x) {
  switch (act) {
    case Activation::SiLU: return x * sigmoidf_(x);
    case Activation::GeluErf: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case Activation::GeluTanh: {
      const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
      return x * sigmoidf_(2.0f * u);
    }
    case Activation::QuickGelu: return x * sigmoidf_(1.702f * x);
    case Activation::Tanh: return tanhf(x);
    default: return x;
  }
}

}  // namespace vargpt::cuda
