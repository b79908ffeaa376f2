// linear_q8 and linear_q4 (backend.h; the weight layouts in core/quantize.h, the CPU twin in
// cpu/gemm_q8.cc). As on the CPU, each row of x is first quantized to int8 (quantize_rows_kernel,
// the bit-exact twin of core/quantize.cc's quantize_q8_row), and the products are integer dot
// products, four int8 products per dp4a:
// - int8: Σ_k xq·q is exact in int32 and the epilogue repeats the CPU's f32 operations one by one
//   (dot · (sx · scale[n]), then the bias), so without an activation the output equals the CPU's
//   bit for bit.
// - q4: an exact int32 dot of the activations with each group's signed nibbles, times the group's
//   f16 scale, summed over the groups in f32, then times sx: the CPU's sums in another order.
// Two kernels per format, split where linear() splits: up to kGemvRows activation rows (decode)
// a warp per weight row streams it once with 16-byte loads and dots it with every activation row,
// bound by the weight reads; more rows (prefill) run 64 x 64 output tiles staged through shared
// memory.
#include <cfloat>

#include "../../core/quantize.h"
#include "linear.cuh"

namespace vargpt::cuda {

namespace {

// The quantized activations' row stride: a multiple of the tiled kernels' 64-byte k step (and so of
// the GEMVs' 16-byte loads), the tail zero.
constexpr int64_t kQuantRowAlign = 64;

// ---- activations: one block per row

constexpr int kQuantizeThreads = 256;

__global__ void __launch_bounds__(kQuantizeThreads)
    quantize_rows_kernel(const float* __restrict__ x, int64_t ldx, int K, int8_t* __restrict__ xq, int64_t ldq,
                         float* __restrict__ sx) {
  __shared__ float shared[32];
  const int m = blockIdx.x;
  const float* row = x + m * ldx;
  float amax = 0.0f, non_finite = 0.0f;
  for (int k = threadIdx.x; k < K; k += blockDim.x) {
    const float a = fabsf(row[k]);
    if (a <= FLT_MAX)
      amax = fmaxf(amax, a);
    else
      non_finite = 1.0f;
  }
  amax = block_max(amax, shared);
  non_finite = block_max(non_finite, shared);
  int8_t* out = xq + m * ldq;
  if (non_finite != 0.0f || !(amax > 0.0f)) {
    // As on the CPU: q all 0, and a NaN scale for a row holding a NaN or an infinity, so that
    // row's outputs are NaN.
    for (int64_t k = threadIdx.x; k < ldq; k += blockDim.x) out[k] = 0;
    if (threadIdx.x == 0) sx[m] = non_finite != 0.0f ? __int_as_float(0x7fc00000) : 0.0f;
    return;
  }
  // The CPU's operations, each rounded once (no contraction): inv = 127 / amax, q = round half
  // to even of x · inv, clamped.
  const float inv = __fdiv_rn(127.0f, amax);
  for (int64_t k = threadIdx.x; k < ldq; k += blockDim.x) {
    float q = 0.0f;
    if (k < K) q = fminf(127.0f, fmaxf(-127.0f, rintf(__fmul_rn(row[k], inv))));
    out[k] = static_cast<int8_t>(q);
  }
  if (threadIdx.x == 0) sx[m] = __fdiv_rn(amax, 127.0f);
}

// dot · (sx · scale), each product rounded once, as the CPU's epilogue computes it.
__device__ __forceinline__ float q8_scaled(int dot, float sx, float sw) {
  return __fmul_rn(__int2float_rn(dot), __fmul_rn(sx, sw));
}

__device__ __forceinline__ float f16_bits_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

// Four 4-bit weights of a packed word as signed bytes: the low nibbles (one group) or the high
// nibbles (the block's other group), which hold q + 8.
__device__ __forceinline__ int low_nibbles(uint32_t p) { return static_cast<int>(__vsub4(p & 0x0f0f0f0fu, 0x08080808u)); }
__device__ __forceinline__ int high_nibbles(uint32_t p) {
  return static_cast<int>(__vsub4((p >> 4) & 0x0f0f0f0fu, 0x08080808u));
}

// ---- GEMV (M <= kGemvRows): a warp per weight row n, all M (<= MT) activation rows at once

constexpr int kGemvWarps = 8;

// int8: each lane takes 16 weights per step (kVector: K % 16 == 0, so every row and load is
// 16-byte aligned) or one.
template <int MT, bool kVector>
__global__ void __launch_bounds__(kGemvWarps * 32)
    q8_gemv_kernel(const int8_t* __restrict__ xq, int64_t ldq, const float* __restrict__ sx,
                   const int8_t* __restrict__ w, const float* __restrict__ sw, LinearRows r) {
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
  if (n >= r.N) return;  // no block-level synchronisation below, so whole warps may leave
  const int K = r.K, M = r.M;
  const int8_t* wr = w + int64_t{n} * K;
  int acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0;
  if (kVector) {
    for (int k = lane * 16; k < K; k += 32 * 16) {
      const int4 wv = *reinterpret_cast<const int4*>(wr + k);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m >= M) break;
        const int4 xv = *reinterpret_cast<const int4*>(xq + m * ldq + k);
        acc[m] = __dp4a(wv.x, xv.x, acc[m]);
        acc[m] = __dp4a(wv.y, xv.y, acc[m]);
        acc[m] = __dp4a(wv.z, xv.z, acc[m]);
        acc[m] = __dp4a(wv.w, xv.w, acc[m]);
      }
    }
  } else {
    for (int k = lane; k < K; k += 32) {
      const int wv = wr[k];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m >= M) break;
        acc[m] += wv * int{xq[m * ldq + k]};
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m >= M) break;
    const int dot = warp_sum(acc[m]);
    if (lane == 0) r.ep.store(r.y, r.ldy, m, n, q8_scaled(dot, sx[m], sw[n]));
  }
}

// q4: a block of 64 weights is 32 bytes; each lane takes half a block per step (16 bytes: 16
// weights of the block's first group in the low nibbles, 16 of its second in the high ones), so a
// warp reads 16 consecutive blocks (512 bytes) per step.
template <int MT>
__global__ void __launch_bounds__(kGemvWarps * 32)
    q4_gemv_kernel(const int8_t* __restrict__ xq, int64_t ldq, const float* __restrict__ sx,
                   const uint8_t* __restrict__ w, const uint16_t* __restrict__ scales, int Kp, LinearRows r) {
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
  if (n >= r.N) return;
  const int M = r.M, blocks = Kp / 64, half = lane & 1;
  const uint8_t* wr = w + int64_t{n} * (Kp / 2);
  const uint16_t* sr = scales + int64_t{n} * (Kp / kQ4Group);
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  for (int b = lane >> 1; b < blocks; b += 16) {
    const uint4 p = *reinterpret_cast<const uint4*>(wr + b * 32 + half * 16);
    const int lo[4] = {low_nibbles(p.x), low_nibbles(p.y), low_nibbles(p.z), low_nibbles(p.w)};
    const int hi[4] = {high_nibbles(p.x), high_nibbles(p.y), high_nibbles(p.z), high_nibbles(p.w)};
    const float d_lo = f16_bits_to_float(sr[2 * b]), d_hi = f16_bits_to_float(sr[2 * b + 1]);
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m >= M) break;
      const int8_t* xr = xq + m * ldq + b * 64 + half * 16;
      const int4 xl = *reinterpret_cast<const int4*>(xr);
      const int4 xh = *reinterpret_cast<const int4*>(xr + 32);
      int dl = __dp4a(lo[0], xl.x, 0);
      dl = __dp4a(lo[1], xl.y, dl);
      dl = __dp4a(lo[2], xl.z, dl);
      dl = __dp4a(lo[3], xl.w, dl);
      int dh = __dp4a(hi[0], xh.x, 0);
      dh = __dp4a(hi[1], xh.y, dh);
      dh = __dp4a(hi[2], xh.z, dh);
      dh = __dp4a(hi[3], xh.w, dh);
      acc[m] = fmaf(d_lo, static_cast<float>(dl), acc[m]);
      acc[m] = fmaf(d_hi, static_cast<float>(dh), acc[m]);
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m >= M) break;
    const float sum = warp_sum(acc[m]);
    if (lane == 0) r.ep.store(r.y, r.ldy, m, n, __fmul_rn(sum, sx[m]));
  }
}

// ---- tiled GEMM (M > kGemvRows): a 64 x 64 output tile per block, 64-byte k steps through shared
// memory as int32 words of four int8 values, 256 threads each owning a 4 x 4 block of outputs.

constexpr int kQTile = 64, kQStep = 64, kQWords = kQStep / 4, kQThreads = 256;

// Weight bytes [k, k + 4) of a row of K bytes as one word, zeros past K. kAligned: K % 4 == 0, so
// every row starts 4-byte aligned and a word starting below K is whole.
template <bool kAligned>
__device__ __forceinline__ int weight_word(const int8_t* row, int k, int K) {
  if (kAligned) return k < K ? *reinterpret_cast<const int*>(row + k) : 0;
  uint32_t v = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i)
    if (k + i < K) v |= static_cast<uint32_t>(static_cast<uint8_t>(row[k + i])) << (8 * i);
  return static_cast<int>(v);
}

// Shared-memory tiles: 64 rows of kQWords words of four int8 values (one word of padding per row
// spreads the rows over the banks).
using QTile = int[kQTile][kQWords + 1];

// The thread's 4 x 4 block: acc[i][j] += Σ over words [W0, W1) of the dot of activation row
// ty·4 + i with weight row tx·4 + j.
template <int W0, int W1>
__device__ __forceinline__ void tile_dots(const QTile& As, const QTile& Bs, int ty, int tx, int (&acc)[4][4]) {
#pragma unroll
  for (int word = W0; word < W1; ++word) {
    int a[4], b[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = As[ty * 4 + i][word];
#pragma unroll
    for (int j = 0; j < 4; ++j) b[j] = Bs[tx * 4 + j][word];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
  }
}

template <bool kAligned>
__global__ void __launch_bounds__(kQThreads)
    q8_gemm_kernel(const int8_t* __restrict__ xq, int64_t ldq, const float* __restrict__ sx,
                   const int8_t* __restrict__ w, const float* __restrict__ sw, LinearRows r) {
  __shared__ QTile As, Bs;
  const int M = r.M, N = r.N, K = r.K;
  const int m0 = blockIdx.y * kQTile, n0 = blockIdx.x * kQTile;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  int acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += kQStep) {
    for (int i = tid; i < kQTile * kQWords; i += kQThreads) {
      const int row = i / kQWords, word = i % kQWords;
      const int m = m0 + row, n = n0 + row, k = k0 + 4 * word;
      // Activation rows are zero-padded to ldq, a multiple of kQStep: whole aligned words.
      As[row][word] = m < M ? *reinterpret_cast<const int*>(xq + m * ldq + k) : 0;
      Bs[row][word] = n < N ? weight_word<kAligned>(w + int64_t{n} * K, k, K) : 0;
    }
    __syncthreads();
    tile_dots<0, kQWords>(As, Bs, ty, tx, acc);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
      if (m < M && n < N) r.ep.store(r.y, r.ldy, m, n, q8_scaled(acc[i][j], sx[m], sw[n]));
    }
}

// q4: a k step is one 64-weight block. Its 32 packed bytes per weight row are staged unpacked:
// words 0-7 the first group's 32 weights (low nibbles), words 8-15 the second's (high nibbles).
__global__ void __launch_bounds__(kQThreads)
    q4_gemm_kernel(const int8_t* __restrict__ xq, int64_t ldq, const float* __restrict__ sx,
                   const uint8_t* __restrict__ w, const uint16_t* __restrict__ scales, int Kp, LinearRows r) {
  __shared__ QTile As, Bs;
  __shared__ float Ds[kQTile][2];
  const int M = r.M, N = r.N, row_bytes = Kp / 2, groups = Kp / kQ4Group;
  const int m0 = blockIdx.y * kQTile, n0 = blockIdx.x * kQTile;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int b = 0; b < Kp / 64; ++b) {
    for (int i = tid; i < kQTile * kQWords; i += kQThreads) {
      const int row = i / kQWords, word = i % kQWords;
      const int m = m0 + row, n = n0 + row;
      As[row][word] = m < M ? *reinterpret_cast<const int*>(xq + m * ldq + b * 64 + 4 * word) : 0;
      int q = 0;
      if (n < N) {
        const uint32_t p = *reinterpret_cast<const uint32_t*>(w + int64_t{n} * row_bytes + b * 32 + 4 * (word % 8));
        q = word < 8 ? low_nibbles(p) : high_nibbles(p);
      }
      Bs[row][word] = q;
    }
    for (int i = tid; i < kQTile * 2; i += kQThreads) {
      const int n = n0 + i / 2;
      Ds[i / 2][i % 2] = n < N ? f16_bits_to_float(scales[int64_t{n} * groups + 2 * b + i % 2]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < 2; ++g) {
      int dot[4][4] = {};
      if (g == 0)
        tile_dots<0, 8>(As, Bs, ty, tx, dot);
      else
        tile_dots<8, 16>(As, Bs, ty, tx, dot);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(Ds[tx * 4 + j][g], static_cast<float>(dot[i][j]), acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
      if (m < M && n < N) r.ep.store(r.y, r.ldy, m, n, __fmul_rn(acc[i][j], sx[m]));
    }
}

// ---- launches

struct QuantizedRows {
  Tensor xq, sx;  // int8 [M, ldq] and f32 [M]
  int64_t ldq = 0;
};

QuantizedRows quantize_rows(const Ctx& ctx, const char* op, const LinearRows& r, int64_t padded_k) {
  QuantizedRows q;
  q.ldq = (padded_k + kQuantRowAlign - 1) / kQuantRowAlign * kQuantRowAlign;
  q.xq = scratch(ctx, DType::I8, {r.M, q.ldq}, op);
  q.sx = scratch(ctx, DType::F32, {r.M}, op);
  quantize_rows_kernel<<<static_cast<unsigned>(r.M), kQuantizeThreads, 0, ctx.stream>>>(
      r.x, r.ldx, r.K, q.xq.data<int8_t>(), q.ldq, q.sx.data<float>());
  VG_CUDA_LAUNCHED(op, "quantize_rows_kernel");
  return q;
}

dim3 tile_grid(const char* op, const LinearRows& r) {
  const int64_t m_tiles = (int64_t{r.M} + kQTile - 1) / kQTile, n_tiles = (int64_t{r.N} + kQTile - 1) / kQTile;
  VG_CHECK(m_tiles <= 65535, op, ": ", r.M, " rows exceed the GEMM grid");
  return dim3(static_cast<unsigned>(n_tiles), static_cast<unsigned>(m_tiles));
}

template <bool kVector>
void launch_q8_gemv(const Ctx& ctx, const QuantizedRows& q, const int8_t* w, const float* sw, const LinearRows& r) {
  const unsigned blocks = static_cast<unsigned>((r.N + kGemvWarps - 1) / kGemvWarps);
  const int threads = kGemvWarps * 32;
  const int8_t* xq = q.xq.data<int8_t>();
  const float* sx = q.sx.data<float>();
  if (r.M <= 1) q8_gemv_kernel<1, kVector><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, sw, r);
  else if (r.M <= 2) q8_gemv_kernel<2, kVector><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, sw, r);
  else if (r.M <= 4) q8_gemv_kernel<4, kVector><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, sw, r);
  else if (r.M <= 8) q8_gemv_kernel<8, kVector><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, sw, r);
  else q8_gemv_kernel<16, kVector><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, sw, r);
  VG_CUDA_LAUNCHED("linear_q8", "q8_gemv_kernel");
}

void launch_q4_gemv(const Ctx& ctx, const QuantizedRows& q, const uint8_t* w, const uint16_t* scales, int Kp,
                    const LinearRows& r) {
  const unsigned blocks = static_cast<unsigned>((r.N + kGemvWarps - 1) / kGemvWarps);
  const int threads = kGemvWarps * 32;
  const int8_t* xq = q.xq.data<int8_t>();
  const float* sx = q.sx.data<float>();
  if (r.M <= 1) q4_gemv_kernel<1><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, scales, Kp, r);
  else if (r.M <= 2) q4_gemv_kernel<2><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, scales, Kp, r);
  else if (r.M <= 4) q4_gemv_kernel<4><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, scales, Kp, r);
  else if (r.M <= 8) q4_gemv_kernel<8><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, scales, Kp, r);
  else q4_gemv_kernel<16><<<blocks, threads, 0, ctx.stream>>>(xq, q.ldq, sx, w, scales, Kp, r);
  VG_CUDA_LAUNCHED("linear_q4", "q4_gemv_kernel");
}

// The dtypes both ops share (x and y f32) and their own (w, and its scales as `params`).
void check_dtypes(const Ctx& ctx, const char* op, const Tensor& x, const Tensor& w, DType w_dtype, const char* params_name,
                  const Tensor& params, DType params_dtype, const Tensor& y) {
  check_dtype(ctx, op, "x", x, DType::F32);
  check_dtype(ctx, op, "w", w, w_dtype);
  check_dtype(ctx, op, params_name, params, params_dtype);
  check_dtype(ctx, op, "y", y, DType::F32);
}

void check_bias_shape(const char* op, const Tensor* bias, int64_t N) {
  if (bias != nullptr)
    VG_CHECK(bias->rank() == 1 && bias->dim(0) == N, op, ": bias ", bias->describe(), " must be [", N, "]");
}

}  // namespace

void linear_q8(const Ctx& ctx, const Tensor& x, const Tensor& w, const Tensor& qparams, const Tensor* bias,
               const Tensor& y, Activation act, bool accumulate) {
  const char* op = "linear_q8";
  check_dtypes(ctx, op, x, w, DType::I8, "qparams", qparams, DType::F32, y);
  const LinearDims dims = check_linear_q8_args(x, w, qparams, y);
  check_bias_shape(op, bias, dims.n);
  const int8_t* wq = static_cast<const int8_t*>(w.raw());
  const float* sw = qparams.data<float>();  // row 0; row 1 (the sums) serves the CPU's VNNI kernel only
  run_linear(ctx, op, x, dims.n, dims.k, bias, y, act, accumulate, [&](const LinearRows& r) {
    const QuantizedRows q = quantize_rows(ctx, op, r, r.K);
    const bool aligned16 = r.K % 16 == 0 && reinterpret_cast<uintptr_t>(wq) % 16 == 0;
    if (r.M <= kGemvRows) {
      if (aligned16) launch_q8_gemv<true>(ctx, q, wq, sw, r);
      else launch_q8_gemv<false>(ctx, q, wq, sw, r);
      return;
    }
    const dim3 grid = tile_grid(op, r);
    if (r.K % 4 == 0 && reinterpret_cast<uintptr_t>(wq) % 4 == 0)
      q8_gemm_kernel<true><<<grid, kQThreads, 0, ctx.stream>>>(q.xq.data<int8_t>(), q.ldq, q.sx.data<float>(), wq, sw, r);
    else
      q8_gemm_kernel<false><<<grid, kQThreads, 0, ctx.stream>>>(q.xq.data<int8_t>(), q.ldq, q.sx.data<float>(), wq, sw, r);
    VG_CUDA_LAUNCHED(op, "q8_gemm_kernel");
  });
}

void linear_q4(const Ctx& ctx, const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor* bias,
               const Tensor& y, Activation act, bool accumulate) {
  const char* op = "linear_q4";
  check_dtypes(ctx, op, x, w, DType::U8, "scales", scales, DType::F16, y);
  const LinearDims dims = check_linear_q4_args(x, w, scales, y);
  check_bias_shape(op, bias, dims.n);
  const uint8_t* packed = static_cast<const uint8_t*>(w.raw());
  const uint16_t* group_scales = static_cast<const uint16_t*>(scales.raw());
  // Rows are q4_padded(K) / 2 bytes, a multiple of 32, so 16-byte loads need only the start aligned.
  VG_CHECK(reinterpret_cast<uintptr_t>(packed) % 16 == 0, op, ": w ", w.describe(),
           " must start at a 16-byte aligned address");
  const int Kp = static_cast<int>(q4_padded(dims.k));
  run_linear(ctx, op, x, dims.n, dims.k, bias, y, act, accumulate, [&](const LinearRows& r) {
    const QuantizedRows q = quantize_rows(ctx, op, r, Kp);
    if (r.M <= kGemvRows) return launch_q4_gemv(ctx, q, packed, group_scales, Kp, r);
    q4_gemm_kernel<<<tile_grid(op, r), kQThreads, 0, ctx.stream>>>(q.xq.data<int8_t>(), q.ldq, q.sx.data<float>(),
                                                                   packed, group_scales, Kp, r);
    VG_CUDA_LAUNCHED(op, "q4_gemm_kernel");
  });
}

}  // namespace vargpt::cuda
