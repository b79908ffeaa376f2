// A plain tiled f32 GEMM on the CUDA cores, C[z](m, n) = sum_k A[z](m, k) B[z](k, n), shared by
// linear() for f32 weights and by conv2d() (implicit GEMM: B is the im2col matrix, computed on
// the fly by its loader). The operands come through loader functors so each caller decides the
// layout, the stored type and the padding; the epilogue functor writes C.
//
// 64 x 64 tile per block, 16-deep k steps staged through shared memory, 256 threads each owning a
// 4 x 4 block of C in registers. Deliberately simple (no double buffering, no vector loads):
// correctness first, tuned later against measurements.
#pragma once

#include "cuda_common.cuh"

namespace vargpt::cuda {

constexpr int kSimtBM = 64, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256;

// ALoad: float operator()(int z, int m, int k) const, called only for m < M, k < K.
// BLoad: float operator()(int z, int k, int n) const, called only for k < K, n < N.
// Epi:   void operator()(int z, int m, int n, float acc) const, called once per m < M, n < N.
template <class ALoad, class BLoad, class Epi>
__global__ void __launch_bounds__(kSimtThreads) simt_gemm_kernel(int M, int N, int K, ALoad a, BLoad b, Epi epi) {
  __shared__ float As[kSimtBK][kSimtBM + 4];
  __shared__ float Bs[kSimtBK][kSimtBN + 4];
  const int z = blockIdx.z;
  const int m0 = blockIdx.y * kSimtBM, n0 = blockIdx.x * kSimtBN;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += kSimtBK) {
    // Consecutive threads take consecutive k of one row: the loaders' reads along k coalesce.
    for (int i = tid; i < kSimtBM * kSimtBK; i += kSimtThreads) {
      const int r = i / kSimtBK, c = i % kSimtBK;
      const int m = m0 + r, k = k0 + c;
      As[c][r] = (m < M && k < K) ? a(z, m, k) : 0.0f;
    }
    for (int i = tid; i < kSimtBN * kSimtBK; i += kSimtThreads) {
      const int r = i / kSimtBK, c = i % kSimtBK;
      const int n = n0 + r, k = k0 + c;
      Bs[c][r] = (n < N && k < K) ? b(z, k, n) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kSimtBK; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
      if (m < M && n < N) epi(z, m, n, acc[i][j]);
    }
}

// Launches simt_gemm_kernel over `batch` independent problems; `op` names the caller in errors.
template <class ALoad, class BLoad, class Epi>
void launch_simt_gemm(const Ctx& ctx, const char* op, int M, int N, int K, int batch, const ALoad& a, const BLoad& b,
                      const Epi& epi) {
  const int64_t m_tiles = (int64_t{M} + kSimtBM - 1) / kSimtBM, n_tiles = (int64_t{N} + kSimtBN - 1) / kSimtBN;
  VG_CHECK(m_tiles <= 65535 && batch <= 65535, op, ": ", M, " rows in ", batch, " batches exceed the GEMM grid");
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(m_tiles), static_cast<unsigned>(batch));
  simt_gemm_kernel<<<grid, kSimtThreads, 0, ctx.stream>>>(M, N, K, a, b, epi);
  VG_CUDA_LAUNCHED(op, "simt_gemm_kernel");
}

}  // namespace vargpt::cuda
