// Multi-head attention with online softmax (flash-attention style): keys are visited in blocks,
// each query keeps a running maximum, normaliser and output accumulator, so memory stays linear
// in Lk whatever the sequence length. q, k and v may be f32 or bf16 (widened as they are read);
// with segments (cu_seqlens) each query visits only its segment's keys.
//
// Two paths:
// - blocked (Lq >= 8: prefill, VAR scales, ViT, VQ-VAE), work split over (batch, head, block of
//   128 queries): both products run on the GEMM micro-kernels. S = Q K^T for the queries x 128
//   keys, softmax update of S in place (vectorised exp), then O += P V; K and V tiles are packed
//   like GEMM B operands.
// - decode (Lq < 8), flash-decoding: work split over (batch, query, chunk of keys); each item
//   reads its chunk's whole cache rows (every head) in order with the path's vector dot and axpy
//   kernels, and per-chunk partial softmax results are merged at the end (attention_decode).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_common.h"
#include "cpu_math.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

namespace {

constexpr int64_t kTileQueries = 128;  // queries per work item on the blocked path
constexpr int64_t kTileKeys = 128;     // keys per online-softmax step (a multiple of every nr)
constexpr int64_t kBlockedFrom = 8;    // queries from which the blocked path pays for its packing

struct View3 {  // [B, L, H*D] with dense rows, f32 or bf16; strides in elements
  const char* base;
  DType dtype;
  int64_t batch_stride, row_stride;
  size_t item() const { return dtype_size(dtype); }
  // Element (b, row, col) as a typed pointer.
  const void* at(int64_t b, int64_t row, int64_t col) const {
    return base + static_cast<size_t>(b * batch_stride + row * row_stride + col) * item();
  }
  // n elements from (b, row, col) as f32: in place when stored as f32, else widened into buf.
  const float* f32(int64_t b, int64_t row, int64_t col, int64_t n, float* buf) const {
    const void* p = at(b, row, col);
    if (dtype == DType::F32) return static_cast<const float*>(p);
    const uint16_t* src = static_cast<const uint16_t*>(p);
    for (int64_t e = 0; e < n; ++e) buf[e] = bf16_to_f32(src[e]);
    return buf;
  }
  GemmB gemm_b(int64_t b, int64_t row, int64_t col, bool k_major) const {
    return GemmB{at(b, row, col), dtype, row_stride, k_major};
  }
};

View3 view3(const Tensor& t) {
  const char* base = static_cast<const char*>(t.raw());
  if (t.rank() == 2) return {base, t.dtype(), 0, t.dim(0) > 1 ? t.stride(0) : t.dim(1)};
  return {base, t.dtype(), t.stride(0), t.dim(1) > 1 ? t.stride(1) : t.dim(2)};
}

struct Problem {
  View3 q, k, v, out;
  float* out_base;
  int64_t D, Lq, Lk, group;
  bool causal;
  float scale;
  const std::vector<int64_t>* segments;  // AttentionParams::segments (empty: one segment)
  // Keys [begin, end) visible to query i: the causal prefix within i's segment.
  KeyRange keys(int64_t i) const {
    if (segments->empty()) return visible_keys(i, Lq, Lk, causal, 0, Lk);
    const auto it = std::upper_bound(segments->begin(), segments->end(), i);
    return visible_keys(i, Lq, Lk, causal, *(it - 1), *it);
  }
};

// ---- few queries (decode): flash-decoding over chunks of contiguous cache rows.
//
// An item handles one query and one chunk of its keys for every head at once. A cache row holds
// all kv heads side by side, so the item reads whole rows in order and the loads stream (one head
// at a time instead visits a 256-512 byte piece of each row, a page apart, which the prefetchers
// do not follow). Each item leaves per head its chunk's score maximum, exp-sum and unnormalised
// output; merge_partials rescales and combines them (the online softmax, split over chunks).

constexpr int64_t kMinChunkKeys = 32, kMaxChunkKeys = 512;

// part[h * (D + 2)] = max, [+1] = sum of exp(s - max), [+2 ..] = sum of exp(s - max) v.
void attend_chunk(const Problem& P, const GemmKernels& kern, int64_t Hq, int64_t b, int64_t i, int64_t j0, int64_t j1,
                  float* part, AlignedBuffer& scratch) {
  const int64_t D = P.D, G = P.group, nk = j1 - j0, stride = D + 2;
  const int64_t row_floats = Hq / G * D;
  float* qs = scratch.floats(static_cast<size_t>(Hq * (2 * D + nk) + row_floats));
  float* s = qs + Hq * D;
  float* wide = s + Hq * nk;  // a widened bf16 row (query, key or value)
  // Queries scaled once, so the scores come out already multiplied by `scale`.
  const float* qrow = P.q.f32(b, i, 0, Hq * D, wide);
  for (int64_t e = 0; e < Hq * D; ++e) qs[e] = qrow[e] * P.scale;
  const int64_t item_k = static_cast<int64_t>(P.k.item()), item_v = static_cast<int64_t>(P.v.item());
  for (int64_t j = j0; j < j1; ++j) {
    if (j + 2 < j1) {
      const char* ahead = static_cast<const char*>(P.k.at(b, j + 2, 0));
      for (int64_t e = 0; e < row_floats * item_k; e += 64) __builtin_prefetch(ahead + e);
    }
    const float* krow = P.k.f32(b, j, 0, row_floats, wide);
    for (int64_t h = 0; h < Hq; ++h) s[h * nk + (j - j0)] = kern.dot(qs + h * D, krow + h / G * D, D);
  }
  for (int64_t h = 0; h < Hq; ++h) {
    float* sh = s + h * nk;
    const float m = kern.max_of(sh, nk);
    part[h * stride] = m;
    part[h * stride + 1] = kern.exp_shift_sum(sh, nk, m);
    std::fill(part + h * stride + 2, part + (h + 1) * stride, 0.0f);
  }
  for (int64_t j = j0; j < j1; ++j) {
    if (j + 2 < j1) {
      const char* ahead = static_cast<const char*>(P.v.at(b, j + 2, 0));
      for (int64_t e = 0; e < row_floats * item_v; e += 64) __builtin_prefetch(ahead + e);
    }
    const float* vrow = P.v.f32(b, j, 0, row_floats, wide);
    for (int64_t h = 0; h < Hq; ++h) kern.axpy(s[h * nk + (j - j0)], vrow + h / G * D, part + h * stride + 2, D);
  }
}

void attention_decode(const Problem& P, const GemmKernels& kern, int64_t B, int64_t Hq) {
  const int64_t D = P.D, stride = D + 2, Lq = P.Lq, Lk = P.Lk;
  // Enough chunks for every thread to have two, each between kMinChunkKeys and kMaxChunkKeys keys.
  const int64_t per_query = std::max<int64_t>(1, (2 * num_threads() + B * Lq - 1) / (B * Lq));
  const int64_t chunk = std::clamp((Lk + per_query - 1) / per_query, kMinChunkKeys, kMaxChunkKeys);
  const int64_t chunks = (Lk + chunk - 1) / chunk;
  std::vector<float> partials(static_cast<size_t>(B * Lq * chunks * Hq * stride));
  static thread_local AlignedBuffer scratch;
  parallel_for(B * Lq * chunks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c = t % chunks, i = t / chunks % Lq, b = t / (chunks * Lq);
      const KeyRange keys = P.keys(i);
      const int64_t j0 = std::max(keys.begin, c * chunk), j1 = std::min(keys.end, c * chunk + chunk);
      float* part = partials.data() + t * Hq * stride;
      if (j0 >= j1) {  // masked out for this query: contributes nothing
        for (int64_t h = 0; h < Hq; ++h) {
          part[h * stride] = -std::numeric_limits<float>::infinity();
          part[h * stride + 1] = 0.0f;
        }
        continue;
      }
      attend_chunk(P, kern, Hq, b, i, j0, j1, part, scratch);
    }
  });
  // Merge: out = Σ_c e^(m_c - M) acc_c / Σ_c e^(m_c - M) sum_c, M the largest chunk maximum.
  parallel_for(B * Lq * Hq, grain_for(chunks * D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t h = r % Hq, bi = r / Hq, i = bi % Lq, b = bi / Lq;
      const float* first = partials.data() + bi * chunks * Hq * stride + h * stride;
      float M = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < chunks; ++c) M = std::max(M, first[c * Hq * stride]);
      float* dst = P.out_base + b * P.out.batch_stride + i * P.out.row_stride + h * D;
      std::fill(dst, dst + D, 0.0f);
      float denom = 0.0f;
      for (int64_t c = 0; c < chunks; ++c) {
        const float* part = first + c * Hq * stride;
        if (part[1] == 0.0f) continue;  // an empty chunk
        const float w = exp_approx(part[0] - M);
        denom += w * part[1];
        kern.axpy(w, part + 2, dst, D);
      }
      const float inv = 1.0f / denom;
      for (int64_t d = 0; d < D; ++d) dst[d] *= inv;
    }
  });
}

// Queries i0 .. i0 + nq (nq <= kTileQueries, all in one segment) of head h in batch b on the GEMM
// micro-kernels.
void attend_blocked(const Problem& P, const GemmKernels& kern, int64_t b, int64_t h, int64_t i0, int64_t nq,
                    AlignedBuffer& scratch) {
  const int64_t D = P.D, hk = h / P.group, nr = kern.nr;
  const int64_t Dp = (D + nr - 1) / nr * nr;
  const int64_t panels = (nq + kern.mr - 1) / kern.mr;
  int64_t panel_row[kTileQueries + 1];
  for (int64_t p = 0; p <= panels; ++p) panel_row[p] = p * nq / panels;

  // Scratch: packed Q, packed K tile, scores, packed P, packed V tile, O, running max and sum.
  // Each part starts on a 64-byte boundary: the micro-kernels load packed panels aligned.
  const int64_t ldS = kTileKeys, ldO = Dp;
  auto round16 = [](int64_t n) { return (n + 15) / 16 * 16; };
  const int64_t sizes[] = {nq * D, kTileKeys * Dp, kTileKeys * Dp, nq * ldS, nq * kTileKeys, nq * ldO, nq, nq, D};
  int64_t total = 0;
  for (int64_t n : sizes) total += round16(n);
  float* part = scratch.floats(static_cast<size_t>(total));
  float* parts[9];
  for (int i = 0; i < 9; ++i) {
    parts[i] = part;
    part += round16(sizes[i]);
  }
  float *Aq = parts[0], *Bk = parts[1], *Bv = parts[2], *S = parts[3], *Ap = parts[4], *O = parts[5];
  float *run_max = parts[6], *run_sum = parts[7], *wide = parts[8];

  // Queries scaled once, so the scores come out already multiplied by `scale`. bf16 queries are
  // widened a row at a time and written in the packed panel layout (pack_a's [k][rows]).
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
    if (P.q.dtype == DType::F32) {
      kern.pack_a(static_cast<const float*>(P.q.at(b, i0 + r0, h * D)), P.q.row_stride, static_cast<int>(rows), D,
                  P.scale, Aq + r0 * D);
      continue;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = P.q.f32(b, i0 + r0 + r, h * D, D, wide);
      for (int64_t d = 0; d < D; ++d) Aq[r0 * D + d * rows + r] = row[d] * P.scale;
    }
  }
  std::fill(O, O + nq * ldO, 0.0f);
  std::fill(run_max, run_max + nq, -std::numeric_limits<float>::infinity());
  std::fill(run_sum, run_sum + nq, 0.0f);

  // The queries share a segment: the keys of the first query start where any starts, and the
  // last query's causal prefix reaches furthest.
  const int64_t key_begin = P.keys(i0).begin, key_end = P.keys(i0 + nq - 1).end;
  for (int64_t j0 = key_begin; j0 < key_end; j0 += kTileKeys) {
    const int64_t nk = std::min(kTileKeys, key_end - j0);
    const int64_t key_panels = (nk + nr - 1) / nr;
    // S = (scale Q) K^T for this tile of keys (pack_b widens bf16 keys).
    kern.pack_b(P.k.gemm_b(b, j0, hk * D, false), 0, nk, 0, D, Bk, static_cast<int>(nr));
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
      for (int64_t jp = 0; jp < key_panels; ++jp)
        kern.micro(static_cast<int>(rows), D, Aq + r0 * D, Bk + jp * D * nr, S + r0 * ldS + jp * nr, ldS,
                   static_cast<int>(std::min(nr, nk - jp * nr)), false);
    }
    // Online softmax update, row by row; masked keys get probability 0.
    for (int64_t i = 0; i < nq; ++i) {
      float* s = S + i * ldS;
      const KeyRange keys = P.keys(i0 + i);
      const int64_t lo = std::max<int64_t>(0, keys.begin - j0), hi = std::min(nk, keys.end - j0);
      if (hi <= lo) {
        std::fill(s, s + nk, 0.0f);
        continue;
      }
      const float block_max = kern.max_of(s + lo, hi - lo);
      const float new_max = std::max(run_max[i], block_max);
      const float correction = exp_approx(run_max[i] - new_max);
      const float block_sum = kern.exp_shift_sum(s + lo, hi - lo, new_max);
      std::fill(s, s + lo, 0.0f);
      std::fill(s + hi, s + nk, 0.0f);
      run_sum[i] = run_sum[i] * correction + block_sum;
      run_max[i] = new_max;
      if (correction != 1.0f) kern.scale(correction, O + i * ldO, D);
    }
    // O += P V: P packed like an A operand, the V tile like a k-major B operand.
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
      kern.pack_a(S + r0 * ldS, ldS, static_cast<int>(rows), nk, 1.0f, Ap + r0 * kTileKeys);
    }
    kern.pack_b(P.v.gemm_b(b, j0, hk * D, true), 0, D, 0, nk, Bv, static_cast<int>(nr));
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
      for (int64_t dp = 0; dp < Dp / nr; ++dp)
        kern.micro(static_cast<int>(rows), nk, Ap + r0 * kTileKeys, Bv + dp * nk * nr, O + r0 * ldO + dp * nr, ldO,
                   static_cast<int>(std::min(nr, D - dp * nr)), true);
    }
  }
  for (int64_t i = 0; i < nq; ++i) {
    float* dst = P.out_base + b * P.out.batch_stride + (i0 + i) * P.out.row_stride + h * D;
    const float inv = 1.0f / run_sum[i];
    for (int64_t d = 0; d < D; ++d) dst[d] = O[i * ldO + d] * inv;
  }
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const AttentionParams& p) {
  const char* op = "attention";
  check_f32_or_bf16(op, "q", q);
  check_f32_or_bf16(op, "k", k);
  check_f32_or_bf16(op, "v", v);
  check_dtype(op, "out", out, DType::F32);
  const AttentionDims dims = check_attention_args(op, q, k, v, out, p);
  const int64_t D = dims.head_dim, Hq = dims.q_heads, Hkv = dims.kv_heads;
  const int64_t B = dims.batch, Lq = dims.q_len, Lk = dims.k_len;
  if (B == 0 || Lq == 0) return;

  const Problem prob{view3(q), view3(k), view3(v), view3(out), out.data<float>(), D, Lq, Lk, Hq / Hkv,
                     p.mask == AttentionMask::Causal, p.scale, &p.segments};
  const GemmKernels& kern = active_gemm_kernels();
  static thread_local AlignedBuffer scratch;
  if (Lq >= kBlockedFrom) {
    // Blocks of up to kTileQueries queries, each within one segment.
    std::vector<std::pair<int64_t, int64_t>> blocks;  // (first query, count)
    const std::vector<int64_t> whole{0, Lq};
    const std::vector<int64_t>& seg = p.segments.empty() ? whole : p.segments;
    for (size_t s = 0; s + 1 < seg.size(); ++s)
      for (int64_t i0 = seg[s]; i0 < seg[s + 1]; i0 += kTileQueries)
        blocks.emplace_back(i0, std::min(kTileQueries, seg[s + 1] - i0));
    const int64_t q_blocks = static_cast<int64_t>(blocks.size());
    parallel_for(B * Hq * q_blocks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / (Hq * q_blocks), h = t / q_blocks % Hq;
        const auto [i0, nq] = blocks[static_cast<size_t>(t % q_blocks)];
        attend_blocked(prob, kern, b, h, i0, nq, scratch);
      }
    });
    return;
  }
  attention_decode(prob, kern, B, Hq);
}

}  // namespace vargpt::cpu
