// linear(): y[M, N] = act(x[M, K] · w[N, K]^T + bias) (or y += that), three kernels:
// - M <= kGemvRows (decode): one warp per weight row streams it once (16-byte loads where the
//   layout allows) and dots it with every activation row; bound by the weight reads.
// - bf16 / f16 weights, larger M: tensor cores (WMMA 16x16x16, f32 accumulation). The activations
//   are f32, and rounding them to 16 bits would cost ~3 significant digits against the CPU twin,
//   so each activation is split into three 16-bit terms (hi + mid + lo carry all 24 bits of an f32
//   significand) and each term is multiplied with the weights: products are exact and only the
//   accumulation order differs from an f32 GEMM. The bf16 split is exact. f16 has a narrow
//   exponent range, so for f16 weights every row of x is first scaled by a power of two (exact)
//   that brings its largest value just below 1, and the result is scaled back in the epilogue;
//   the f16 split is then exact to within 2^-25 of the row's largest |x| (the f16 subnormal floor
//   of the last term), below the f32 rounding of that largest value.
// - f32 weights, larger M: the tiled CUDA-core GEMM of gemm_simt.cuh.
// Epilogue everywhere: v = acc + bias[n]; v = act(v); y = accumulate ? y + v : v.
#include <mma.h>

#include "gemm_simt.cuh"
#include "linear.cuh"

namespace vargpt::cuda {

namespace {

template <typename W>
__device__ __forceinline__ float widen(W v);
template <>
__device__ __forceinline__ float widen<float>(float v) { return v; }
template <>
__device__ __forceinline__ float widen<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ __forceinline__ float widen<__half>(__half v) { return __half2float(v); }

// ---- GEMV: warp per weight row n, all M (<= MT) activation rows at once.

constexpr int kGemvWarps = 8;

template <int MT, typename W, bool kVector>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(const float* __restrict__ x, int64_t ldx, const W* __restrict__ w, int64_t ldw, float* y,
                int64_t ldy, int M, int N, int K, Epilogue ep) {
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
  if (n >= N) return;  // no block-level synchronisation below, so whole warps may leave
  const W* wr = w + n * ldw;
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;
  if (kVector) {
    // 16 bytes of weights per lane per step: 8 bf16/f16 or 4 f32 values.
    constexpr int V = 16 / sizeof(W);
    for (int k = lane * V; k < K; k += 32 * V) {
      alignas(16) W wv[V];
      *reinterpret_cast<uint4*>(wv) = *reinterpret_cast<const uint4*>(wr + k);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m >= M) break;
        const float* xr = x + m * ldx + k;
#pragma unroll
        for (int v = 0; v < V; v += 4) {
          const float4 xv = *reinterpret_cast<const float4*>(xr + v);
          acc[m] = fmaf(xv.x, widen(wv[v]), acc[m]);
          acc[m] = fmaf(xv.y, widen(wv[v + 1]), acc[m]);
          acc[m] = fmaf(xv.z, widen(wv[v + 2]), acc[m]);
          acc[m] = fmaf(xv.w, widen(wv[v + 3]), acc[m]);
        }
      }
    }
  } else {
    for (int k = lane; k < K; k += 32) {
      const float wv = widen(wr[k]);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m >= M) break;
        acc[m] = fmaf(x[m * ldx + k], wv, acc[m]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m >= M) break;
    const float sum = warp_sum(acc[m]);
    if (lane == 0) ep.store(y, ldy, m, n, sum);
  }
}

template <typename W, bool kVector>
void launch_gemv_rows(const Ctx& ctx, const float* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy,
                      int M, int N, int K, const Epilogue& ep) {
  const unsigned blocks = static_cast<unsigned>((N + kGemvWarps - 1) / kGemvWarps);
  const int threads = kGemvWarps * 32;
  if (M <= 1) gemv_kernel<1, W, kVector><<<blocks, threads, 0, ctx.stream>>>(x, ldx, w, ldw, y, ldy, M, N, K, ep);
  else if (M <= 2) gemv_kernel<2, W, kVector><<<blocks, threads, 0, ctx.stream>>>(x, ldx, w, ldw, y, ldy, M, N, K, ep);
  else if (M <= 4) gemv_kernel<4, W, kVector><<<blocks, threads, 0, ctx.stream>>>(x, ldx, w, ldw, y, ldy, M, N, K, ep);
  else if (M <= 8) gemv_kernel<8, W, kVector><<<blocks, threads, 0, ctx.stream>>>(x, ldx, w, ldw, y, ldy, M, N, K, ep);
  else gemv_kernel<16, W, kVector><<<blocks, threads, 0, ctx.stream>>>(x, ldx, w, ldw, y, ldy, M, N, K, ep);
  VG_CUDA_LAUNCHED("linear", "gemv_kernel");
}

template <typename W>
void launch_gemv(const Ctx& ctx, const float* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, int M,
                 int N, int K, const Epilogue& ep) {
  constexpr int V = 16 / sizeof(W);
  // The 16-byte path needs every row start 16-byte aligned on both sides and whole vectors.
  const bool vector = K % V == 0 && ldw % V == 0 && (M <= 1 || ldx % 4 == 0) &&
                      reinterpret_cast<uintptr_t>(w) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  if (vector) launch_gemv_rows<W, true>(ctx, x, ldx, w, ldw, y, ldy, M, N, K, ep);
  else launch_gemv_rows<W, false>(ctx, x, ldx, w, ldw, y, ldy, M, N, K, ep);
}

// ---- tensor cores (WMMA), 16-bit weights

constexpr int kTcBM = 64, kTcBN = 64, kTcBK = 32, kTcLd = kTcBK + 8, kTcLdC = kTcBN + 4, kTcThreads = 128;

template <typename W>
__device__ __forceinline__ W narrow(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half narrow<__half>(float v) { return __float2half_rn(v); }

// Per row of x: the exponent e with max|x| = f 2^e, f in [0.5, 1) (0 for zero or non-finite rows).
__global__ void row_exponent_kernel(const float* __restrict__ x, int64_t ldx, int M, int K, int* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int m = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (m >= M) return;
  float mx = 0.0f;
  for (int k = lane; k < K; k += 32) mx = fmaxf(mx, fabsf(x[m * ldx + k]));
  mx = warp_max(mx);
  int e = 0;
  if (mx > 0.0f && isfinite(mx)) frexpf(mx, &e);
  if (lane == 0) out[m] = e;
}

template <typename W, bool kRowScale>
__global__ void __launch_bounds__(kTcThreads)
    gemm_tc_kernel(const float* __restrict__ x, int64_t ldx, const W* __restrict__ w, int64_t ldw,
                   const int* __restrict__ row_exp, float* y, int64_t ldy, int M, int N, int K, Epilogue ep) {
  using namespace nvcuda;
  // Three exact 16-bit terms of each activation, the weight tile, and the accumulator tile for
  // the epilogue. WMMA wants 32-byte aligned fragment pointers and ldm a multiple of 8 (16-bit)
  // or 4 (f32): 40 and 68 satisfy both and spread rows over the banks.
  __shared__ __align__(128) W As[3][kTcBM][kTcLd];
  __shared__ __align__(128) W Bs[kTcBN][kTcLd];
  __shared__ __align__(128) float Cs[kTcBM][kTcLdC];
  const int m0 = blockIdx.y * kTcBM, n0 = blockIdx.x * kTcBN;
  const int tid = threadIdx.x, warp = tid >> 5;
  const int wm = warp >> 1, wn = warp & 1;  // each warp owns a 32 x 32 quarter of the tile

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int k0 = 0; k0 < K; k0 += kTcBK) {
    for (int i = tid; i < kTcBM * kTcBK; i += kTcThreads) {
      const int r = i / kTcBK, c = i % kTcBK;
      const int m = m0 + r, k = k0 + c;
      float v = (m < M && k < K) ? x[m * ldx + k] : 0.0f;
      if (kRowScale && m < M) v = ldexpf(v, -row_exp[m]);
      const W hi = narrow<W>(v);
      const float r1 = v - widen(hi);
      const W mid = narrow<W>(r1);
      const W lo = narrow<W>(r1 - widen(mid));
      As[0][r][c] = lo;
      As[1][r][c] = mid;
      As[2][r][c] = hi;
    }
    for (int i = tid; i < kTcBN * kTcBK; i += kTcThreads) {
      const int r = i / kTcBK, c = i % kTcBK;
      const int n = n0 + r, k = k0 + c;
      Bs[r][c] = (n < N && k < K) ? w[n * ldw + k] : narrow<W>(0.0f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTcBK; kk += 16) {
      // B(k, n) = Bs[n][k]: the weight tile read as a column-major K x N operand.
      wmma::fragment<wmma::matrix_b, 16, 16, 16, W, wmma::col_major> bf[2];
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(bf[j], &Bs[wn * 32 + j * 16][kk], kTcLd);
      // Smallest term first, so the large products are added to an accumulator that already
      // holds the small ones.
#pragma unroll
      for (int t = 0; t < 3; ++t) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, W, wmma::row_major> af;
          wmma::load_matrix_sync(af, &As[t][wm * 32 + i * 16][kk], kTcLd);
#pragma unroll
          for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], af, bf[j], acc[i][j]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&Cs[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], kTcLdC, wmma::mem_row_major);
  __syncthreads();
  for (int i = tid; i < kTcBM * kTcBN; i += kTcThreads) {
    const int r = i / kTcBN, c = i % kTcBN;
    const int m = m0 + r, n = n0 + c;
    if (m >= M || n >= N) continue;
    float v = Cs[r][c];
    if (kRowScale) v = ldexpf(v, row_exp[m]);
    ep.store(y, ldy, m, n, v);
  }
}

template <typename W, bool kRowScale>
void launch_tc(const Ctx& ctx, const float* x, int64_t ldx, const W* w, int64_t ldw, const int* row_exp, float* y,
               int64_t ldy, int M, int N, int K, const Epilogue& ep) {
  const int64_t m_tiles = (int64_t{M} + kTcBM - 1) / kTcBM, n_tiles = (int64_t{N} + kTcBN - 1) / kTcBN;
  VG_CHECK(m_tiles <= 65535, "linear: ", M, " rows exceed the GEMM grid");
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(m_tiles));
  gemm_tc_kernel<W, kRowScale><<<grid, kTcThreads, 0, ctx.stream>>>(x, ldx, w, ldw, row_exp, y, ldy, M, N, K, ep);
  VG_CUDA_LAUNCHED("linear", "gemm_tc_kernel");
}

// ---- f32 weights on the CUDA cores

struct RowsA {  // A(m, k) = x[m * ldx + k]
  const float* x;
  int64_t ldx;
  __device__ __forceinline__ float operator()(int, int m, int k) const { return x[m * ldx + k]; }
};
struct WeightB {  // B(k, n) = w[n * ldw + k]
  const float* w;
  int64_t ldw;
  __device__ __forceinline__ float operator()(int, int k, int n) const { return w[n * ldw + k]; }
};
struct LinearEpi {
  float* y;
  int64_t ldy;
  Epilogue ep;
  __device__ __forceinline__ void operator()(int, int m, int n, float acc) const { ep.store(y, ldy, m, n, acc); }
};

// ---- bias widening (bias may be stored in any float type)

__global__ void widen_kernel(FloatPtr src, float* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = load_float(src, i);
}

void run_gemm(const Ctx& ctx, int M, int N, int K, const float* x, int64_t ldx, const Tensor& w, float* y, int64_t ldy,
              const Epilogue& ep) {
  const int64_t ldw = N > 1 ? w.stride(0) : K;
  if (M <= kGemvRows) {
    switch (w.dtype()) {
      case DType::BF16:
        return launch_gemv(ctx, x, ldx, static_cast<const __nv_bfloat16*>(w.raw()), ldw, y, ldy, M, N, K, ep);
      case DType::F16: return launch_gemv(ctx, x, ldx, static_cast<const __half*>(w.raw()), ldw, y, ldy, M, N, K, ep);
      default: return launch_gemv(ctx, x, ldx, static_cast<const float*>(w.raw()), ldw, y, ldy, M, N, K, ep);
    }
  }
  if (w.dtype() == DType::BF16)
    return launch_tc<__nv_bfloat16, false>(ctx, x, ldx, static_cast<const __nv_bfloat16*>(w.raw()), ldw, nullptr, y,
                                           ldy, M, N, K, ep);
  if (w.dtype() == DType::F16) {
    Tensor row_exp = scratch(ctx, DType::I32, {M}, "linear");
    row_exponent_kernel<<<(M + 7) / 8, 256, 0, ctx.stream>>>(x, ldx, M, K, row_exp.data<int>());
    VG_CUDA_LAUNCHED("linear", "row_exponent_kernel");
    return launch_tc<__half, true>(ctx, x, ldx, static_cast<const __half*>(w.raw()), ldw, row_exp.data<int>(), y, ldy,
                                   M, N, K, ep);
  }
  launch_simt_gemm(ctx, "linear", M, N, K, 1, RowsA{x, ldx}, WeightB{static_cast<const float*>(w.raw()), ldw},
                   LinearEpi{y, ldy, ep});
}

}  // namespace

void run_linear(const Ctx& ctx, const char* op, const Tensor& x, int64_t N, int64_t K, const Tensor* bias,
                const Tensor& y, Activation act, bool accumulate, const std::function<void(const LinearRows&)>& gemm) {
  if (bias != nullptr) check_vector(ctx, op, "bias", *bias, N);
  const RowMap xr = row_map(op, "x", x), yr = row_map(op, "y", y);
  const int64_t M = xr.rows;
  if (M == 0 || N == 0) return;
  VG_CHECK(M < (int64_t{1} << 31) && N < (int64_t{1} << 31) && K < (int64_t{1} << 31), op, ": x ", x.describe(),
           " and ", N, " outputs exceed the 32-bit sizes of the GEMM kernels");

  Tensor bias_f32;
  if (bias != nullptr) {
    if (bias->dtype() == DType::F32) {
      bias_f32 = *bias;
    } else {
      bias_f32 = scratch(ctx, DType::F32, {N}, op);
      widen_kernel<<<grid_for(N), kThreads, 0, ctx.stream>>>(FloatPtr{bias->raw(), bias->dtype()},
                                                             bias_f32.data<float>(), N);
      VG_CUDA_LAUNCHED(op, "widen_kernel");
    }
  }

  // Rows evenly spaced (one stride) run in place; other layouts (a slice of a slice) go through
  // dense copies around the GEMM.
  // bf16 activations are widened once into a dense f32 copy (exact), the kernels' x.
  const bool x_uniform = xr.lead <= 1 && x.dtype() == DType::F32, y_uniform = yr.lead <= 1;
  Tensor xd = x;
  if (x.dtype() != DType::F32) {
    xd = scratch(ctx, DType::F32, x.shape(), op);
    cast(ctx, x, xd);
  } else if (!x_uniform) {
    xd = contiguous(ctx, x, op);
  }
  Tensor yd = y;
  if (!y_uniform) {
    yd = scratch(ctx, DType::F32, y.shape(), op);
    if (accumulate) copy(ctx, y, yd);
  }
  auto row_stride = [](const RowMap& r, int64_t cols, bool uniform) {
    return uniform && r.lead == 1 ? r.strides[0] : cols;
  };
  LinearRows rows;
  rows.M = static_cast<int>(M);
  rows.N = static_cast<int>(N);
  rows.K = static_cast<int>(K);
  rows.x = xd.data<float>();
  rows.ldx = row_stride(x_uniform ? xr : RowMap{}, K, x_uniform);
  rows.y = yd.data<float>();
  rows.ldy = row_stride(y_uniform ? yr : RowMap{}, N, y_uniform);
  rows.ep = Epilogue{bias != nullptr ? bias_f32.data<float>() : nullptr, act, accumulate};
  gemm(rows);
  if (!y_uniform) copy(ctx, yd, y);
}

void linear(const Ctx& ctx, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, Activation act,
            bool accumulate) {
  const char* op = "linear";
  check_f32_or_bf16(ctx, op, "x", x);
  check_float(ctx, op, "w", w);
  check_dtype(ctx, op, "y", y, DType::F32);
  const LinearDims dims = check_linear_args("linear", x, w, y);
  const int64_t K = dims.k, N = dims.n;
  if (bias != nullptr)
    VG_CHECK(bias->rank() == 1 && bias->dim(0) == N, "linear: bias ", bias->describe(), " must be [", N, "] for w ",
             w.describe());
  run_linear(ctx, op, x, N, K, bias, y, act, accumulate, [&](const LinearRows& r) {
    run_gemm(ctx, r.M, r.N, r.K, r.x, r.ldx, w, r.y, r.ldy, r.ep);
  });
}

}  // namespace vargpt::cuda
