// Multi-head attention with online softmax (flash-attention style, memory linear in Lk).
//
// One block per (batch, query head, group of kAttnWarps queries); one warp per query. The block
// stages tiles of keys and values of its kv head in shared memory (shared by its queries, GQA
// groups re-read them through L2), and each warp walks the keys visible to its query:
//   s = scale q·k_j (lanes split the head dimension, a warp sum gives the score),
//   m' = max(m, s), l = l e^(m - m') + e^(s - m'), acc = acc e^(m - m') + e^(s - m') v_j.
// The query and the accumulator live in registers, DPL values per lane (head_dim <= 32 DPL,
// up to 640 for the VQ-VAE's single head). Simple by design: one key at a time per warp, no
// tensor cores; the decode case (one query) uses a quarter of each block. q, k and v may be f32
// or bf16 (widened as the tiles are staged); with segments (cu_seqlens) each warp walks only its
// query's segment, and a block only the keys its queries' segments span.
#include <cmath>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

constexpr int kAttnWarps = 4;
constexpr int kAttnTileFloats = 8192;  // 32 KiB: a K tile and a V tile of KT rows each
constexpr int kMaxHeadDim = 640;

struct View3 {  // [B, L, H*D] with dense rows, f32 or bf16
  const void* base;
  bool bf16;
  int64_t batch_stride, row_stride;
  __device__ __forceinline__ float load(int64_t b, int64_t row, int64_t col) const {
    const int64_t i = b * batch_stride + row * row_stride + col;
    if (bf16) return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(base)[i]) << 16);
    return static_cast<const float*>(base)[i];
  }
};

View3 view3(const Tensor& t) {
  const bool bf16 = t.dtype() == DType::BF16;
  if (t.rank() == 2) return {t.raw(), bf16, 0, t.dim(0) > 1 ? t.stride(0) : t.dim(1)};
  return {t.raw(), bf16, t.stride(0), t.dim(1) > 1 ? t.stride(1) : t.dim(2)};
}

struct Problem {
  View3 q, k, v;
  float* out;
  int64_t out_batch_stride, out_row_stride;
  int D, Lq, Lk, group, key_tile;
  bool causal;
  float scale;
  const int64_t* segments;  // device copy of AttentionParams::segments, or null (one segment)
  int segment_count;        // offsets in `segments`
  // Keys [begin, end) visible to query i: backend.h's Causal (the queries are the last Lq
  // positions) within i's segment.
  __device__ __forceinline__ int2 keys(int i) const {
    int begin = 0, end = Lk;
    if (segments != nullptr) {
      int lo = 0, hi = segment_count - 1;  // segments[lo] <= i < segments[hi]
      while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (segments[mid] <= i) lo = mid;
        else hi = mid;
      }
      begin = static_cast<int>(segments[lo]);
      end = static_cast<int>(segments[hi]);
    }
    return make_int2(begin, causal ? min(end, Lk - Lq + i + 1) : end);
  }
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
    qv[t] = active && d < D ? P.q.load(b, i, h * D + d) * P.scale : 0.0f;
    acc[t] = 0.0f;
  }
  const int2 mine_range = active ? P.keys(i) : make_int2(0, 0);
  // The first query's segment starts first; the last query's keys reach furthest.
  const int block_begin = P.keys(i0).x, block_end = P.keys(min(i0 + kAttnWarps, P.Lq) - 1).y;
  float run_max = -INFINITY, run_sum = 0.0f;

  for (int j0 = block_begin; j0 < block_end; j0 += KT) {
    const int nk = min(KT, block_end - j0);
    __syncthreads();  // the previous tile is no longer read
    for (int e = threadIdx.x; e < nk * D; e += blockDim.x) {
      const int j = e / D, d = e % D;
      Kt[e] = P.k.load(b, j0 + j, hk * D + d);
      Vt[e] = P.v.load(b, j0 + j, hk * D + d);
    }
    __syncthreads();
    const int first = max(0, mine_range.x - j0), mine = min(nk, mine_range.y - j0);
    for (int j = first; j < mine; ++j) {
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
  check_f32_or_bf16(ctx, op, "q", q);
  check_f32_or_bf16(ctx, op, "k", k);
  check_f32_or_bf16(ctx, op, "v", v);
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
  P.segments = nullptr;
  P.segment_count = 0;
  Tensor segments;  // keeps the device copy alive until the kernel is queued (the stream orders its reuse)
  if (!p.segments.empty()) {
    const int64_t n = static_cast<int64_t>(p.segments.size());
    segments = scratch(ctx, DType::I64, {n}, op);
    VG_CUDA(op, cudaMemcpyAsync(segments.raw(), p.segments.data(), static_cast<size_t>(n) * sizeof(int64_t),
                                cudaMemcpyHostToDevice, ctx.stream));
    // The offsets are pageable host memory the caller may free on return: wait until they are read.
    VG_CUDA(op, cudaStreamSynchronize(ctx.stream));
    P.segments = segments.data<int64_t>();
    P.segment_count = static_cast<int>(n);
  }
  const int b = static_cast<int>(B), h = static_cast<int>(Hq);
  if (D <= 32) return launch_attention<1>(ctx, P, b, h);
  if (D <= 64) return launch_attention<2>(ctx, P, b, h);
  if (D <= 128) return launch_attention<4>(ctx, P, b, h);
  if (D <= 256) return launch_attention<8>(ctx, P, b, h);
  if (D <= 512) return launch_attention<16>(ctx, P, b, h);
  launch_attention<20>(ctx, P, b, h);
}

}  // namespace vargpt::cuda
