// Token and codebook lookups: embedding rows by id, and the VQ nearest-codeword search.
//
// embedding's ids live on the device, so a first kernel checks them and records the first bad
// position; the op reads that flag back (one small synchronous copy) and throws before the
// gather runs, so a bad id leaves `out` untouched as on the CPU and nothing is read out of
// bounds.
#include <climits>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

__global__ void check_ids_kernel(const int32_t* __restrict__ ids, int64_t stride, int64_t N, int64_t V,
                                 unsigned long long* __restrict__ first_bad) {
  for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n < N; n += int64_t{gridDim.x} * blockDim.x) {
    const int64_t v = ids[n * stride];
    if (v < 0 || v >= V) atomicMin(first_bad, static_cast<unsigned long long>(n));
  }
}

__global__ void gather_kernel(const int32_t* __restrict__ ids, int64_t id_stride, FloatPtr table, int64_t table_stride,
                              float* out, RowMap outr, int64_t N, int64_t C) {
  const int64_t count = N * C;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t n = i / C, c = i % C;
    out[outr.offset(n) + c] = load_float(table, ids[n * id_stride] * table_stride + c);
  }
}

// ||e_v||^2 summed in codeword order without fused multiply-adds: the CPU twin's f32 loop.
__global__ void codeword_norms_kernel(FloatPtr codebook, int64_t V, int64_t C, float* __restrict__ norms) {
  for (int64_t v = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; v < V; v += int64_t{gridDim.x} * blockDim.x) {
    float s = 0.0f;
    for (int64_t c = 0; c < C; ++c) {
      const float e = load_float(codebook, v * C + c);
      s = __fadd_rn(s, __fmul_rn(e, e));
    }
    norms[v] = s;
  }
}

constexpr int kVqThreads = 256;

// One block per row of z: d = (||z||^2 + ||e||^2) - 2 z·e for every codeword, first minimum.
__global__ void __launch_bounds__(kVqThreads)
    vq_nearest_kernel(const float* __restrict__ z, RowMap zr, FloatPtr codebook, const float* __restrict__ norms,
                      int64_t V, int64_t C, int32_t* __restrict__ idx) {
  extern __shared__ float zs[];  // C values of this row, then its squared norm
  __shared__ float best_d[kVqThreads];
  __shared__ int32_t best_v[kVqThreads];
  const int64_t n = blockIdx.x;
  const float* zi = z + zr.offset(n);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) zs[c] = zi[c];
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.0f;
    for (int64_t c = 0; c < C; ++c) s = __fadd_rn(s, __fmul_rn(zs[c], zs[c]));
    zs[C] = s;
  }
  __syncthreads();
  const float z_norm = zs[C];
  float best = INFINITY;
  int32_t arg = INT_MAX;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    float dot = 0.0f;
    for (int64_t c = 0; c < C; ++c) dot = fmaf(zs[c], load_float(codebook, v * C + c), dot);
    const float d = __fsub_rn(__fadd_rn(z_norm, norms[v]), __fmul_rn(2.0f, dot));
    if (d < best) {  // strict: within a thread's codewords the first of equal distances wins
      best = d;
      arg = static_cast<int32_t>(v);
    }
  }
  best_d[threadIdx.x] = best;
  best_v[threadIdx.x] = arg;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float od = best_d[threadIdx.x + s];
      const int32_t ov = best_v[threadIdx.x + s];
      if (od < best_d[threadIdx.x] || (od == best_d[threadIdx.x] && ov < best_v[threadIdx.x])) {
        best_d[threadIdx.x] = od;
        best_v[threadIdx.x] = ov;
      }
    }
    __syncthreads();
  }
  // No distance below +inf (all NaN or inf): index 0, as the CPU twin's scan leaves it.
  if (threadIdx.x == 0) idx[n] = best_v[0] == INT_MAX ? 0 : best_v[0];
}

}  // namespace

void embedding(const Ctx& ctx, const Tensor& ids, const Tensor& table, const Tensor& out) {
  const char* op = "embedding";
  check_dtype(ctx, op, "ids", ids, DType::I32);
  check_float(ctx, op, "table", table);
  check_dtype(ctx, op, "out", out, DType::F32);
  const EmbeddingDims dims = check_embedding_args(op, ids, table, out);
  const int64_t N = dims.rows, V = dims.vocab, C = dims.channels;
  if (N == 0) return;
  const int64_t id_stride = ids.stride(0);
  Tensor flag = scratch(ctx, DType::I64, {1}, op);
  VG_CUDA(op, cudaMemsetAsync(flag.raw(), 0xff, sizeof(unsigned long long), ctx.stream));
  check_ids_kernel<<<grid_for(N), kThreads, 0, ctx.stream>>>(ids.data<int32_t>(), id_stride, N, V,
                                                             static_cast<unsigned long long*>(flag.raw()));
  VG_CUDA_LAUNCHED(op, "check_ids_kernel");
  unsigned long long first_bad = 0;
  VG_CUDA(op, cudaMemcpyAsync(&first_bad, flag.raw(), sizeof first_bad, cudaMemcpyDeviceToHost, ctx.stream));
  VG_CUDA(op, cudaStreamSynchronize(ctx.stream));
  if (first_bad != ~0ull) {
    int32_t bad = 0;
    const auto* at = ids.data<int32_t>() + static_cast<int64_t>(first_bad) * id_stride;
    VG_CUDA(op, cudaMemcpyAsync(&bad, at, sizeof bad, cudaMemcpyDeviceToHost, ctx.stream));
    VG_CUDA(op, cudaStreamSynchronize(ctx.stream));
    fail(op, ": ids[", first_bad, "] = ", bad, " is outside the table ", table.describe(), " (valid 0..", V - 1, ")");
  }
  if (C == 0) return;
  const int64_t table_stride = V > 1 ? table.stride(0) : C;
  const RowMap outr = row_map(op, "out", out);
  gather_kernel<<<grid_for(N * C), kThreads, 0, ctx.stream>>>(ids.data<int32_t>(), id_stride,
                                                              FloatPtr{table.raw(), table.dtype()}, table_stride,
                                                              out.data<float>(), outr, N, C);
  VG_CUDA_LAUNCHED(op, "gather_kernel");
}

void vq_nearest(const Ctx& ctx, const Tensor& z, const Tensor& codebook, const Tensor& idx) {
  const char* op = "vq_nearest";
  check_dtype(ctx, op, "z", z, DType::F32);
  check_float(ctx, op, "codebook", codebook);
  check_dtype(ctx, op, "idx", idx, DType::I32);
  const VqDims dims = check_vq_nearest_args(op, z, codebook, idx);
  const int64_t N = dims.rows, C = dims.channels, V = dims.codes;
  if (N == 0) return;
  VG_CHECK(V < INT_MAX && N < (int64_t{1} << 31), op, ": codebook ", codebook.describe(), " or z ", z.describe(),
           " is too large");
  const size_t smem = static_cast<size_t>(C + 1) * sizeof(float);
  VG_CHECK(smem <= 40 * 1024, op, ": z ", z.describe(), " has too many channels for the CUDA kernel (at most 10239)");
  Tensor norms = scratch(ctx, DType::F32, {V}, op);
  const FloatPtr cb{codebook.raw(), codebook.dtype()};
  codeword_norms_kernel<<<grid_for(V), kThreads, 0, ctx.stream>>>(cb, V, C, norms.data<float>());
  VG_CUDA_LAUNCHED(op, "codeword_norms_kernel");
  vq_nearest_kernel<<<static_cast<unsigned>(N), kVqThreads, smem, ctx.stream>>>(
      z.data<float>(), row_map(op, "z", z), cb, norms.data<float>(), V, C, idx.data<int32_t>());
  VG_CUDA_LAUNCHED(op, "vq_nearest_kernel");
}

}  // namespace vargpt::cuda
