// Multi-head attention with online softmax (flash-attention style): keys are visited in blocks,
// each query keeps a running maximum, normaliser and output accumulator, so memory stays linear
// in Lk whatever the sequence length.
//
// Two paths:
// - blocked (Lq >= 8: prefill, VAR scales, ViT, VQ-VAE), work split over (batch, head, block of
//   128 queries): both products run on the GEMM micro-kernels. S = Q K^T for the queries x 128
//   keys, softmax update of S in place (vectorised exp), then O += P V; K and V tiles are packed
//   like GEMM B operands.
// - rows (Lq < 8: decode), work split over (batch, kv head): one query at a time with plain dot
//   products and axpys over all query heads of the GQA group, so each K/V row is loaded once;
//   this is bound by the K/V reads, which are prefetched by hand.
#include <cmath>
#include <limits>

#include "cpu_common.h"
#include "cpu_math.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

namespace {

constexpr int64_t kTileQueries = 128;  // queries per work item on the blocked path
constexpr int64_t kTileKeys = 128;     // keys per online-softmax step (a multiple of every nr)
constexpr int64_t kBlockedFrom = 8;    // queries from which the blocked path pays for its packing

struct View3 {  // [B, L, H*D] with dense rows
  const float* base;
  int64_t batch_stride, row_stride;
};

View3 view3(const Tensor& t) {
  if (t.rank() == 2) return {t.data<float>(), 0, t.dim(0) > 1 ? t.stride(0) : t.dim(1)};
  return {t.data<float>(), t.stride(0), t.dim(1) > 1 ? t.stride(1) : t.dim(2)};
}

inline float dot(const float* a, const float* b, int64_t n) {
  float partial[16] = {};
  const int64_t body = n / 16 * 16;
  for (int64_t i = 0; i < body; i += 16)
    for (int j = 0; j < 16; ++j) partial[j] += a[i + j] * b[i + j];
  float sum = 0.0f;
  for (int64_t i = body; i < n; ++i) sum += a[i] * b[i];
  for (int j = 0; j < 16; ++j) sum += partial[j];
  return sum;
}

constexpr int64_t kPrefetchRows = 4;

inline void prefetch_row(const float* row, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(row + i);
}

struct Problem {
  View3 q, k, v, out;
  float* out_base;
  int64_t D, Lq, Lk, group;
  bool causal;
  float scale;
  // Keys [0, visible_end(i)) are visible to query i.
  int64_t visible_end(int64_t i) const { return causal ? Lk - Lq + i + 1 : Lk; }
};

// Queries i0 .. i0 + nq of all query heads that share kv head hk (GQA group), one query at a
// time; each key and value row is loaded once for the whole group.
void attend_rows(const Problem& P, int64_t b, int64_t hk, int64_t i0, int64_t nq, AlignedBuffer& scratch) {
  const int64_t D = P.D, G = P.group;
  float* qs = scratch.floats(static_cast<size_t>(G * (2 * D + kTileKeys + 2)));
  float* acc = qs + G * D;
  float* s = acc + G * D;
  float* run_max = s + G * kTileKeys;
  float* run_sum = run_max + G;
  const float* kbase = P.k.base + b * P.k.batch_stride + hk * D;
  const float* vbase = P.v.base + b * P.v.batch_stride + hk * D;
  for (int64_t i = i0; i < i0 + nq; ++i) {
    // Queries scaled once, so the scores come out already multiplied by `scale`.
    for (int64_t g = 0; g < G; ++g) {
      const float* src = P.q.base + b * P.q.batch_stride + i * P.q.row_stride + (hk * G + g) * D;
      for (int64_t d = 0; d < D; ++d) qs[g * D + d] = src[d] * P.scale;
      run_max[g] = -std::numeric_limits<float>::infinity();
      run_sum[g] = 0.0f;
    }
    std::fill(acc, acc + G * D, 0.0f);
    const int64_t end = P.visible_end(i);
    for (int64_t j0 = 0; j0 < end; j0 += kTileKeys) {
      const int64_t nk = std::min(kTileKeys, end - j0);
      for (int64_t j = 0; j < nk; ++j) {
        // Cache rows sit one head-row apart in different pages, where hardware prefetchers do
        // not follow: fetch a few keys ahead by hand (decode is bound by these loads).
        if (j0 + j + kPrefetchRows < end) prefetch_row(kbase + (j0 + j + kPrefetchRows) * P.k.row_stride, D);
        const float* krow = kbase + (j0 + j) * P.k.row_stride;
        for (int64_t g = 0; g < G; ++g) s[g * kTileKeys + j] = dot(qs + g * D, krow, D);
      }
      for (int64_t g = 0; g < G; ++g) {
        float* sg = s + g * kTileKeys;
        float block_max = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < nk; ++j) block_max = std::max(block_max, sg[j]);
        const float new_max = std::max(run_max[g], block_max);
        const float correction = exp_approx(run_max[g] - new_max);
        float block_sum = 0.0f;
        for (int64_t j = 0; j < nk; ++j) {
          sg[j] = exp_approx(sg[j] - new_max);
          block_sum += sg[j];
        }
        run_sum[g] = run_sum[g] * correction + block_sum;
        run_max[g] = new_max;
        if (correction != 1.0f)
          for (int64_t d = 0; d < D; ++d) acc[g * D + d] *= correction;
      }
      for (int64_t j = 0; j < nk; ++j) {
        if (j + kPrefetchRows < nk) prefetch_row(vbase + (j0 + j + kPrefetchRows) * P.v.row_stride, D);
        const float* vrow = vbase + (j0 + j) * P.v.row_stride;
        for (int64_t g = 0; g < G; ++g) {
          const float pj = s[g * kTileKeys + j];
          float* a = acc + g * D;
          for (int64_t d = 0; d < D; ++d) a[d] += pj * vrow[d];
        }
      }
    }
    for (int64_t g = 0; g < G; ++g) {
      float* dst = P.out_base + b * P.out.batch_stride + i * P.out.row_stride + (hk * G + g) * D;
      const float inv = 1.0f / run_sum[g];
      for (int64_t d = 0; d < D; ++d) dst[d] = acc[g * D + d] * inv;
    }
  }
}

// Queries i0 .. i0 + nq (nq <= kTileQueries) of head h in batch b on the GEMM micro-kernels.
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
  const int64_t sizes[] = {nq * D, kTileKeys * Dp, kTileKeys * Dp, nq * ldS, nq * kTileKeys, nq * ldO, nq, nq};
  int64_t total = 0;
  for (int64_t n : sizes) total += round16(n);
  float* part = scratch.floats(static_cast<size_t>(total));
  float* parts[8];
  for (int i = 0; i < 8; ++i) {
    parts[i] = part;
    part += round16(sizes[i]);
  }
  float *Aq = parts[0], *Bk = parts[1], *Bv = parts[2], *S = parts[3], *Ap = parts[4], *O = parts[5];
  float *run_max = parts[6], *run_sum = parts[7];

  // Queries scaled once, so the scores come out already multiplied by `scale`.
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
    kern.pack_a(P.q.base + b * P.q.batch_stride + (i0 + r0) * P.q.row_stride + h * D, P.q.row_stride,
                static_cast<int>(rows), D, P.scale, Aq + r0 * D);
  }
  std::fill(O, O + nq * ldO, 0.0f);
  std::fill(run_max, run_max + nq, -std::numeric_limits<float>::infinity());
  std::fill(run_sum, run_sum + nq, 0.0f);

  const float* kbase = P.k.base + b * P.k.batch_stride + hk * D;
  const float* vbase = P.v.base + b * P.v.batch_stride + hk * D;
  const int64_t key_end = P.visible_end(i0 + nq - 1);
  for (int64_t j0 = 0; j0 < key_end; j0 += kTileKeys) {
    const int64_t nk = std::min(kTileKeys, key_end - j0);
    const int64_t key_panels = (nk + nr - 1) / nr;
    // S = (scale Q) K^T for this tile of keys.
    kern.pack_b(GemmB{kbase + j0 * P.k.row_stride, DType::F32, P.k.row_stride, false}, 0, nk, 0, D, Bk,
                static_cast<int>(nr));
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
      for (int64_t jp = 0; jp < key_panels; ++jp)
        kern.micro(static_cast<int>(rows), D, Aq + r0 * D, Bk + jp * D * nr, S + r0 * ldS + jp * nr, ldS,
                   static_cast<int>(std::min(nr, nk - jp * nr)), false);
    }
    // Online softmax update, row by row; masked keys get probability 0.
    for (int64_t i = 0; i < nq; ++i) {
      float* s = S + i * ldS;
      const int64_t visible = std::max<int64_t>(0, std::min(nk, P.visible_end(i0 + i) - j0));
      if (visible == 0) {
        std::fill(s, s + nk, 0.0f);
        continue;
      }
      const float block_max = kern.max_of(s, visible);
      const float new_max = std::max(run_max[i], block_max);
      const float correction = exp_approx(run_max[i] - new_max);
      const float block_sum = kern.exp_shift_sum(s, visible, new_max);
      std::fill(s + visible, s + nk, 0.0f);
      run_sum[i] = run_sum[i] * correction + block_sum;
      run_max[i] = new_max;
      if (correction != 1.0f) {
        float* o = O + i * ldO;
        for (int64_t d = 0; d < D; ++d) o[d] *= correction;
      }
    }
    // O += P V: P packed like an A operand, the V tile like a k-major B operand.
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t r0 = panel_row[p], rows = panel_row[p + 1] - r0;
      kern.pack_a(S + r0 * ldS, ldS, static_cast<int>(rows), nk, 1.0f, Ap + r0 * kTileKeys);
    }
    kern.pack_b(GemmB{vbase + j0 * P.v.row_stride, DType::F32, P.v.row_stride, true}, 0, D, 0, nk, Bv,
                static_cast<int>(nr));
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
  check_dtype(op, "q", q, DType::F32);
  check_dtype(op, "k", k, DType::F32);
  check_dtype(op, "v", v, DType::F32);
  check_dtype(op, "out", out, DType::F32);
  check_rank(op, "q", q, 2, 3);
  VG_CHECK(k.rank() == q.rank() && v.rank() == q.rank() && out.rank() == q.rank(), op, ": q ", q.describe(), ", k ",
           k.describe(), ", v ", v.describe(), " and out ", out.describe(), " must all be [B, L, H*D] or [L, H*D]");
  VG_CHECK(p.head_dim > 0 && p.q_heads > 0 && p.kv_heads > 0, op, ": head_dim ", p.head_dim, ", q_heads ", p.q_heads,
           " and kv_heads ", p.kv_heads, " must be positive");
  VG_CHECK(p.q_heads % p.kv_heads == 0, op, ": q_heads ", p.q_heads, " is not a multiple of kv_heads ", p.kv_heads);
  const int64_t D = p.head_dim, Hq = p.q_heads, Hkv = p.kv_heads;
  const bool batched = q.rank() == 3;
  const int64_t B = batched ? q.dim(0) : 1, Lq = q.dim(-2), Lk = k.dim(-2);
  VG_CHECK(q.dim(-1) == Hq * D, op, ": q ", q.describe(), " must have q_heads * head_dim = ", Hq * D, " columns");
  VG_CHECK(out.shape() == q.shape(), op, ": out ", out.describe(), " must match q ", q.describe());
  VG_CHECK(k.dim(-1) == Hkv * D, op, ": k ", k.describe(), " must have kv_heads * head_dim = ", Hkv * D, " columns");
  VG_CHECK(v.shape() == k.shape(), op, ": v ", v.describe(), " must match k ", k.describe());
  if (batched)
    VG_CHECK(k.dim(0) == B, op, ": k ", k.describe(), " and q ", q.describe(), " disagree on the batch size");
  if (p.mask == AttentionMask::Causal)
    VG_CHECK(Lk >= Lq, op, ": causal mask needs at least as many keys as queries (k ", k.describe(), ", q ",
             q.describe(), ")");
  VG_CHECK(Lk > 0 || Lq == 0, op, ": no keys (k ", k.describe(), ") for ", Lq, " queries");
  check_dense_rows(op, "q", q);
  check_dense_rows(op, "k", k);
  check_dense_rows(op, "v", v);
  check_dense_rows(op, "out", out);
  check_no_alias(op, "q", q, "out", out);
  check_no_alias(op, "k", k, "out", out);
  check_no_alias(op, "v", v, "out", out);
  if (B == 0 || Lq == 0) return;

  const Problem prob{view3(q), view3(k),        view3(v), view3(out), out.data<float>(), D, Lq, Lk, Hq / Hkv,
                     p.mask == AttentionMask::Causal, p.scale};
  const GemmKernels& kern = active_gemm_kernels();
  static thread_local AlignedBuffer scratch;
  if (Lq >= kBlockedFrom) {
    const int64_t q_blocks = (Lq + kTileQueries - 1) / kTileQueries;
    parallel_for(B * Hq * q_blocks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / (Hq * q_blocks), h = t / q_blocks % Hq, i0 = t % q_blocks * kTileQueries;
        attend_blocked(prob, kern, b, h, i0, std::min(kTileQueries, Lq - i0), scratch);
      }
    });
    return;
  }
  // Few queries (decode): one item per (batch, kv head), all its query heads together.
  parallel_for(B * Hkv, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) attend_rows(prob, t / Hkv, t % Hkv, 0, Lq, scratch);
  });
}

}  // namespace vargpt::cpu
