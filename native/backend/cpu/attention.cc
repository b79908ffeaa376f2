// Multi-head attention with online softmax (flash-attention style): keys are visited in blocks,
// each query keeps a running maximum, normaliser and output accumulator, so memory stays linear
// in Lk whatever the sequence length. Work is split over (batch, head, query block).
#include <cmath>
#include <limits>

#include "cpu_common.h"
#include "cpu_math.h"
#include "cpu_ops.h"

namespace vargpt::cpu {

namespace {

constexpr int64_t kQueryBlock = 16;  // queries sharing each loaded key block
constexpr int64_t kKeyBlock = 64;    // keys scored per online-softmax step

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

  const View3 qv = view3(q), kv = view3(k), vv = view3(v), ov = view3(out);
  float* out_base = out.data<float>();
  const int64_t group = Hq / Hkv;
  const int64_t q_blocks = (Lq + kQueryBlock - 1) / kQueryBlock;
  const bool causal = p.mask == AttentionMask::Causal;
  const float scale = p.scale;

  static thread_local AlignedBuffer scratch;
  parallel_for(B * Hq * q_blocks, 1, [&](int64_t t0, int64_t t1) {
    const int64_t D_pad = (D + 15) / 16 * 16;
    float* qs = scratch.floats(static_cast<size_t>(kQueryBlock * (2 * D_pad + kKeyBlock + 2)));
    float* acc = qs + kQueryBlock * D_pad;
    float* scores = acc + kQueryBlock * D_pad;
    float* run_max = scores + kQueryBlock * kKeyBlock;
    float* run_sum = run_max + kQueryBlock;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / (Hq * q_blocks), h = t / q_blocks % Hq, qb = t % q_blocks;
      const int64_t hk = h / group;
      const int64_t i0 = qb * kQueryBlock, nq = std::min(kQueryBlock, Lq - i0);
      // Queries scaled once, so the scores come out already multiplied by `scale`.
      for (int64_t i = 0; i < nq; ++i) {
        const float* src = qv.base + b * qv.batch_stride + (i0 + i) * qv.row_stride + h * D;
        for (int64_t d = 0; d < D; ++d) qs[i * D_pad + d] = src[d] * scale;
        std::fill(acc + i * D_pad, acc + i * D_pad + D, 0.0f);
        run_max[i] = -std::numeric_limits<float>::infinity();
        run_sum[i] = 0.0f;
      }
      // Keys visible to the last query of the block; earlier queries stop sooner (causal).
      const int64_t key_end = causal ? Lk - Lq + i0 + nq : Lk;
      const float* kbase = kv.base + b * kv.batch_stride + hk * D;
      const float* vbase = vv.base + b * vv.batch_stride + hk * D;
      for (int64_t j0 = 0; j0 < key_end; j0 += kKeyBlock) {
        const int64_t nk = std::min(kKeyBlock, key_end - j0);
        for (int64_t i = 0; i < nq; ++i) {
          const int64_t visible = causal ? std::min(nk, Lk - Lq + i0 + i + 1 - j0) : nk;
          if (visible <= 0) continue;
          float* s = scores + i * kKeyBlock;
          float block_max = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < visible; ++j) {
            s[j] = dot(qs + i * D_pad, kbase + (j0 + j) * kv.row_stride, D);
            block_max = std::max(block_max, s[j]);
          }
          const float new_max = std::max(run_max[i], block_max);
          const float correction = exp_approx(run_max[i] - new_max);
          float block_sum = 0.0f;
          for (int64_t j = 0; j < visible; ++j) {
            s[j] = exp_approx(s[j] - new_max);
            block_sum += s[j];
          }
          run_sum[i] = run_sum[i] * correction + block_sum;
          run_max[i] = new_max;
          float* a = acc + i * D_pad;
          if (correction != 1.0f)
            for (int64_t d = 0; d < D; ++d) a[d] *= correction;
          for (int64_t j = 0; j < visible; ++j) {
            const float pj = s[j];
            const float* vrow = vbase + (j0 + j) * vv.row_stride;
            for (int64_t d = 0; d < D; ++d) a[d] += pj * vrow[d];
          }
        }
      }
      for (int64_t i = 0; i < nq; ++i) {
        float* dst = out_base + b * ov.batch_stride + (i0 + i) * ov.row_stride + h * D;
        const float inv = 1.0f / run_sum[i];
        for (int64_t d = 0; d < D; ++d) dst[d] = acc[i * D_pad + d] * inv;
      }
    }
  });
}

}  // namespace vargpt::cpu
