// Multi-head attention with online softmax (flash-attention style, memory linear in Lk).
//
// One block per (batch, query head, group of kAttnWarps queries); one warp per query. The block
// stages tiles of keys and values of its kv head in shared memory (shared by its queries, GQA
// groups re-read them through L2), and each warp walks the keys visible to its query:
//   s = scale q·k_j (lanes split the head dimension, a warp sum gives the score),
//   m' = max(m, s), l = l e^(m - m') + e^(s - m'), acc = acc e^(m - m') + e^(s - m') v_j.
// The query and the accumulator live in registers, DPL values per lane (head_dim <= 32 DPL,
// up to 640 for the VQ-VAE's single head). Simple by design: one key at a time per warp, no
// tensor cores; the decode case (one query) uses a quarter of each block.
#include <cmath>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

constexpr int kAttnWarps = 4;
constexpr int kAttnTileFloats = 8192;  // 32 KiB: a K tile and a V tile of KT rows each
constexpr int kMaxHeadDim = 640;

struct View3 {  // [B, L, H*D] with dense rows
  const float* base;
  int64_t batch_stride, row_stride;
};

View3 view3(const Tensor& t) {
  if (t.rank() == 2) return {t.data<float>(), 0, t.dim(0) > 1 ? t.stride(0) : t.dim(1)};
  return {t.data<float>(), t.stride(0), t.dim(1) > 1 ? t.stride(1) : t.dim(2)};
}

struct Problem {
  View3 q, k, v;
  float* out;
  int64_t out_batch_stride, out_row_stride;
  int D, Lq, Lk, group, key_tile;
  bool causal;
  float scale;
  // Keys [0, visible_end(i)) are visible to query i (backend.h's Causal: the queries are the last
  // Lq positions).
  __device__ __forceinline__ int visible_end(int i) const { return causal ? Lk - Lq + i + 1 : Lk; }
};

template <int DPL>
__global__ void __launch_bounds__(kAttnWarps * 32) attention_kernel(Problem P) {
  __shared__ float tiles[kAttnTileFloats];
  const int D = P.D, KT = P.key_tile;
  float* Kt = tiles;
  float* Vt = tiles + KT * D;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int b = blockIdx.z, h = blockIdx.y;
  const int i0 = blockIdx.x * kAttnWarps, i = i0 + warp;
  const bool active = i < P.Lq;
  const int hk = h / P.group;

  float qv[DPL], acc[DPL];
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const int d = lane + 32 * t;
    qv[t] = active && d < D ? P.q.base[b * P.q.batch_stride + i * P.q.row_stride + h * D + d] * P.scale : 0.0f;
    acc[t] = 0.0f;
  }
  const int my_end = active ? P.visible_end(i) : 0;
  const int block_end = P.visible_end(min(i0 + kAttnWarps, P.Lq) - 1);  // the last query sees the most
  const float* kbase = P.k.base + b * P.k.batch_stride + hk * D;
  const float* vbase = P.v.base + b * P.v.batch_stride + hk * D;
  float run_max = -INFINITY, run_sum = 0.0f;

  for (int j0 = 0; j0 < block_end; j0 += KT) {
    const int nk = min(KT, block_end - j0);
    __syncthreads();  // the previous tile is no longer read
    for (int e = threadIdx.x; e < nk * D; e += blockDim.x) {
      const int j = e / D, d = e % D;
      Kt[e] = kbase[(j0 + j) * P.k.row_stride + d];
      Vt[e] = vbase[(j0 + j) * P.v.row_stride + d];
    }
    __syncthreads();
    const int mine = min(nk, my_end - j0);
    for (int j = 0; j < mine; ++j) {
      const float* krow = Kt + j * D;
      float partial = 0.0f;
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int d = lane + 32 * t;
        if (d < D) partial = fmaf(qv[t], krow[d], partial);
      }
      const float s = warp_sum(partial);
      const float new_max = fmaxf(run_max, s);
      const float correction = expf(run_max - new_max);  // 0 on the first key (run_max = -inf)
      const float p = expf(s - new_max);
      run_sum = run_sum * correction + p;
      run_max = new_max;
      const float* vrow = Vt + j * D;
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int d = lane + 32 * t;
        if (d < D) acc[t] = fmaf(p, vrow[d], acc[t] * correction);
      }
    }
  }
  if (!active) return;
  const float inv = 1.0f / run_sum;
  float* dst = P.out + b * P.out_batch_stride + i * P.out_row_stride + h * D;
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const int d = lane + 32 * t;
    if (d < D) dst[d] = acc[t] * inv;
  }
}

template <int DPL>
void launch_attention(const Ctx& ctx, const Problem& P, int B, int Hq) {
  const dim3 grid(static_cast<unsigned>((P.Lq + kAttnWarps - 1) / kAttnWarps), static_cast<unsigned>(Hq),
                  static_cast<unsigned>(B));
  attention_kernel<DPL><<<grid, kAttnWarps * 32, 0, ctx.stream>>>(P);
  VG_CUDA_LAUNCHED("attention", "attention_kernel");
}

}  // namespace

void attention(const Ctx& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
               const AttentionParams& p) {
  const char* op = "attention";
  check_dtype(ctx, op, "q", q, DType::F32);
  check_dtype(ctx, op, "k", k, DType::F32);
  check_dtype(ctx, op, "v", v, DType::F32);
  check_dtype(ctx, op, "out", out, DType::F32);
  const AttentionDims dims = check_attention_args(op, q, k, v, out, p);
  const int64_t D = dims.head_dim, Hq = dims.q_heads, Hkv = dims.kv_heads;
  const int64_t B = dims.batch, Lq = dims.q_len, Lk = dims.k_len;
  if (B == 0 || Lq == 0) return;
  VG_CHECK(D <= kMaxHeadDim, op, ": head_dim ", D, " exceeds the CUDA kernel's limit of ", kMaxHeadDim);
  VG_CHECK(B <= 65535 && Hq <= 65535 && Lq < (int64_t{1} << 30) && Lk < (int64_t{1} << 30), op, ": q ", q.describe(),
           " and k ", k.describe(), " exceed the attention grid");

  Problem P;
  P.q = view3(q);
  P.k = view3(k);
  P.v = view3(v);
  const View3 o = view3(out);
  P.out = out.data<float>();
  P.out_batch_stride = o.batch_stride;
  P.out_row_stride = o.row_stride;
  P.D = static_cast<int>(D);
  P.Lq = static_cast<int>(Lq);
  P.Lk = static_cast<int>(Lk);
  P.group = static_cast<int>(Hq / Hkv);
  P.key_tile = static_cast<int>(std::min<int64_t>(64, kAttnTileFloats / (2 * D)));
  P.causal = p.mask == AttentionMask::Causal;
  P.scale = p.scale;
  const int b = static_cast<int>(B), h = static_cast<int>(Hq);
  if (D <= 32) return launch_attention<1>(ctx, P, b, h);
  if (D <= 64) return launch_attention<2>(ctx, P, b, h);
  if (D <= 128) return launch_attention<4>(ctx, P, b, h);
  if (D <= 256) return launch_attention<8>(ctx, P, b, h);
  if (D <= 512) return launch_attention<16>(ctx, P, b, h);
  launch_attention<20>(ctx, P, b, h);
}

}  // namespace vargpt::cuda
