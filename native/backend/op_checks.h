// Shape and layout contracts of the Backend ops (backend.h), checked once for every backend so the
// CPU and CUDA backends accept and reject exactly the same calls with the same messages. Each
// check throws vargpt::Error naming the op and the tensor. Device and dtype checks stay with each
// backend: they name its device.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.h"
#include "../core/quantize.h"
#include "../core/tensor.h"
#include "backend.h"

namespace vargpt {

inline void check_dense_rows(const char* op, const char* name, const Tensor& t) {
  VG_CHECK(t.has_dense_rows(), op, ": ", name, " ", t.describe(), " needs a dense last axis (stride 1)");
}

inline void check_contiguous(const char* op, const char* name, const Tensor& t) {
  VG_CHECK(t.is_contiguous(), op, ": ", name, " ", t.describe(), " must be contiguous");
}

inline void check_same_shape(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                             const Tensor& b) {
  VG_CHECK(a.shape() == b.shape(), op, ": ", a_name, " ", a.describe(), " and ", b_name, " ", b.describe(),
           " must have the same shape");
}

inline void check_rank(const char* op, const char* name, const Tensor& t, int lo, int hi) {
  VG_CHECK(t.rank() >= lo && t.rank() <= hi, op, ": ", name, " ", t.describe(), " must have rank ", lo,
           lo == hi ? "" : (" to " + std::to_string(hi)));
}

// True when the byte ranges of two tensors in the same storage overlap (ops that may not run in
// place check it). Host and device storages compare the same way: by base pointer and offsets.
inline bool overlaps(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.numel() == 0 || b.numel() == 0) return false;
  if (a.storage()->data() != b.storage()->data()) return false;
  auto span = [](const Tensor& t) {
    int64_t last = 0;
    for (int i = 0; i < t.rank(); ++i) last += (t.shape()[i] - 1) * t.strides()[i];
    const size_t item = dtype_size(t.dtype());
    return std::pair<size_t, size_t>(t.offset(), t.offset() + static_cast<size_t>(last + 1) * item);
  };
  const auto [a0, a1] = span(a);
  const auto [b0, b1] = span(b);
  return a0 < b1 && b0 < a1;
}

inline void check_no_alias(const char* op, const char* in_name, const Tensor& in, const char* out_name,
                           const Tensor& out) {
  VG_CHECK(!overlaps(in, out), op, ": output ", out_name, " ", out.describe(), " overlaps input ", in_name, " ",
           in.describe(), " (this op does not run in place)");
}

// ---- attention(q, k, v, out, params)

struct AttentionDims {
  int64_t batch, q_len, k_len, head_dim, q_heads, kv_heads;
};

// Ranks, head counts, the causal mask's key count, dense rows and no aliasing of the output.
inline AttentionDims check_attention_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                                          const Tensor& out, const AttentionParams& p) {
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
  if (!p.segments.empty()) {
    VG_CHECK(Lq == Lk, op, ": segments need self-attention (as many queries as keys), but q ", q.describe(),
             " and k ", k.describe(), " differ");
    const std::vector<int64_t>& o = p.segments;
    VG_CHECK(o.size() >= 2 && o.front() == 0 && o.back() == Lq, op, ": segments must run from 0 to ", Lq,
             " (cu_seqlens of the ", Lq, " tokens), got ", o.size(), " offsets from ", o.front(), " to ", o.back());
    for (size_t s = 1; s < o.size(); ++s)
      VG_CHECK(o[s] > o[s - 1], op, ": segment offsets must increase strictly, but offset ", s, " = ", o[s],
               " follows ", o[s - 1]);
  }
  return {B, Lq, Lk, D, Hq, Hkv};
}

// ---- rope(x, table, head_dim, pairing)

struct RopeDims {
  int64_t rows, L, heads, half;
};

// x [L, H*D] or [B, L, H*D] with dense rows; table [L, D] (cos | sin halves) with dense rows.
inline RopeDims check_rope_args(const char* op, const Tensor& x, const Tensor& table, int head_dim) {
  check_rank(op, "x", x, 2, 3);
  check_dense_rows(op, "x", x);
  VG_CHECK(head_dim > 0 && head_dim % 2 == 0 && x.dim(-1) % head_dim == 0, op, ": head_dim ", head_dim,
           " must be even and divide the last axis of x ", x.describe());
  const int64_t L = x.dim(-2);
  VG_CHECK(table.rank() == 2 && table.dim(0) == L && table.dim(1) == head_dim, op, ": table ", table.describe(),
           " must be [", L, ", ", head_dim, "] (cos | sin per row of x ", x.describe(), ")");
  check_dense_rows(op, "table", table);
  check_no_alias(op, "table", table, "x", x);
  return {x.numel() / x.dim(-1), L, x.dim(-1) / head_dim, head_dim / 2};
}

// Keys [begin, end) visible to query i of an attention problem: the causal prefix (the queries
// being the last Lq positions) intersected with the query's segment (AttentionParams::segments,
// whose search the caller does: `seg_begin` / `seg_end` are the bounds of i's segment, or 0 / Lk).
struct KeyRange {
  int64_t begin, end;
};
inline KeyRange visible_keys(int64_t i, int64_t Lq, int64_t Lk, bool causal, int64_t seg_begin, int64_t seg_end) {
  const int64_t causal_end = causal ? Lk - Lq + i + 1 : Lk;
  return {seg_begin, std::min(seg_end, causal_end)};
}

// ---- images: [N, C, H, W] or [C, H, W]

struct ImageDims {
  int64_t N, C, H, W;
};

inline ImageDims image_dims(const char* op, const char* name, const Tensor& t) {
  check_rank(op, name, t, 3, 4);
  if (t.rank() == 4) return {t.dim(0), t.dim(1), t.dim(2), t.dim(3)};
  return {1, t.dim(0), t.dim(1), t.dim(2)};
}

// ---- conv2d(x, weight, bias, params, y)

struct Conv2dDims {
  ImageDims in;
  int64_t out_channels, kh, kw, out_h, out_w;
};

// Weight layout, stride and padding, y's shape, contiguity and no aliasing (bias is checked by the
// caller, which also widens or uploads it).
inline Conv2dDims check_conv2d_args(const char* op, const Tensor& x, const Tensor& weight, const Conv2dParams& p,
                                    const Tensor& y) {
  const ImageDims in = image_dims(op, "x", x);
  VG_CHECK(weight.rank() == 4, op, ": weight ", weight.describe(), " must be [O, C, kh, kw]");
  const int64_t O = weight.dim(0), kh = weight.dim(2), kw = weight.dim(3);
  VG_CHECK(weight.dim(1) == in.C, op, ": x ", x.describe(), " has ", in.C, " channels but weight ",
           weight.describe(), " expects ", weight.dim(1));
  VG_CHECK(p.stride >= 1, op, ": stride ", p.stride, " must be at least 1");
  VG_CHECK(p.pad_top >= 0 && p.pad_bottom >= 0 && p.pad_left >= 0 && p.pad_right >= 0, op,
           ": padding must be non-negative");
  const int64_t Hp = in.H + p.pad_top + p.pad_bottom, Wp = in.W + p.pad_left + p.pad_right;
  VG_CHECK(Hp >= kh && Wp >= kw, op, ": kernel ", kh, "x", kw, " is larger than the padded input ", Hp, "x", Wp,
           " of x ", x.describe());
  const int64_t Ho = (Hp - kh) / p.stride + 1, Wo = (Wp - kw) / p.stride + 1;
  const Shape expected = x.rank() == 4 ? Shape{in.N, O, Ho, Wo} : Shape{O, Ho, Wo};
  VG_CHECK(y.shape() == expected, op, ": y ", y.describe(), " must be f32", shape_string(expected), " for x ",
           x.describe(), ", weight ", weight.describe(), ", stride ", p.stride);
  check_contiguous(op, "x", x);
  check_contiguous(op, "weight", weight);
  check_contiguous(op, "y", y);
  check_no_alias(op, "x", x, "y", y);
  return {in, O, kh, kw, Ho, Wo};
}

// ---- upsample_nearest2x(x, y)

inline ImageDims check_upsample_nearest2x_args(const char* op, const Tensor& x, const Tensor& y) {
  const ImageDims in = image_dims(op, "x", x);
  const Shape expected =
      x.rank() == 4 ? Shape{in.N, in.C, 2 * in.H, 2 * in.W} : Shape{in.C, 2 * in.H, 2 * in.W};
  VG_CHECK(y.shape() == expected, op, ": y ", y.describe(), " must be f32", shape_string(expected), " for x ",
           x.describe());
  check_contiguous(op, "x", x);
  check_contiguous(op, "y", y);
  check_no_alias(op, "x", x, "y", y);
  return in;
}

// ---- linear(x, w, bias, y): x [..., K], w [N, K], y [..., N] (bias is checked by the caller)

struct LinearDims {
  int64_t k, n;
};

inline LinearDims check_linear_args(const char* op, const Tensor& x, const Tensor& w, const Tensor& y) {
  VG_CHECK(x.rank() >= 1, op, ": x ", x.describe(), " must have at least one axis");
  VG_CHECK(w.rank() == 2, op, ": w ", w.describe(), " must be [N, K]");
  const int64_t K = x.dim(-1), N = w.dim(0);
  VG_CHECK(w.dim(1) == K, op, ": x ", x.describe(), " and w ", w.describe(), " disagree on K");
  VG_CHECK(y.rank() == x.rank() && y.dim(-1) == N, op, ": y ", y.describe(), " must be [..., ", N, "] for x ",
           x.describe(), " and w ", w.describe());
  for (int i = 0; i + 1 < x.rank(); ++i)
    VG_CHECK(y.dim(i) == x.dim(i), op, ": y ", y.describe(), " and x ", x.describe(), " differ on axis ", i);
  check_dense_rows(op, "x", x);
  check_dense_rows(op, "w", w);
  check_dense_rows(op, "y", y);
  check_no_alias(op, "x", x, "y", y);
  check_no_alias(op, "w", w, "y", y);
  return {K, N};
}

// ---- linear_q8(x, w i8 [N, K], qparams f32 [2, N]) and linear_q4(x, w u8 [N, Kp / 2], scales f16
// [N, Kp / 32]), Kp = q4_padded(K): the layouts of core/quantize.h.

inline LinearDims check_linear_q8_args(const Tensor& x, const Tensor& w, const Tensor& qparams, const Tensor& y) {
  const LinearDims dims = check_linear_args("linear_q8", x, w, y);
  VG_CHECK(dims.k * 127 < (int64_t{1} << 24), "linear_q8: K = ", dims.k, " is too large for exact f32 row sums");
  VG_CHECK(qparams.rank() == 2 && qparams.dim(0) == 2 && qparams.dim(1) == dims.n && qparams.is_contiguous(),
           "linear_q8: qparams ", qparams.describe(), " must be [2, ", dims.n, "] (scales, sums)");
  VG_CHECK(w.is_contiguous(), "linear_q8: w must be contiguous");
  return dims;
}

inline LinearDims check_linear_q4_args(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor& y) {
  VG_CHECK(x.rank() >= 1 && w.rank() == 2 && scales.rank() == 2 && w.is_contiguous() && scales.is_contiguous(),
           "linear_q4: x ", x.describe(), ", w ", w.describe(), ", scales ", scales.describe());
  const int64_t K = x.dim(-1), N = w.dim(0), Kp = q4_padded(K);
  VG_CHECK(w.dim(1) == Kp / 2 && scales.dim(0) == N && scales.dim(1) == Kp / kQ4Group, "linear_q4: w ", w.describe(),
           " and scales ", scales.describe(), " do not hold ", N, " rows of K = ", K, " (", Kp / 2, " bytes and ",
           Kp / kQ4Group, " scales per row)");
  VG_CHECK(y.dim(-1) == N && y.numel() / N == x.numel() / K, "linear_q4: y ", y.describe(), " for x ", x.describe());
  check_dense_rows("linear_q4", "x", x);
  check_dense_rows("linear_q4", "y", y);
  check_no_alias("linear_q4", "x", x, "y", y);
  return {K, N};
}

// ---- vq_nearest(z, codebook, idx): z [N, C], codebook [V, C], idx i32[N]

struct VqDims {
  int64_t rows, channels, codes;
};

inline VqDims check_vq_nearest_args(const char* op, const Tensor& z, const Tensor& codebook, const Tensor& idx) {
  VG_CHECK(z.rank() == 2, op, ": z ", z.describe(), " must be [N, C]");
  VG_CHECK(codebook.rank() == 2 && codebook.dim(1) == z.dim(1), op, ": codebook ", codebook.describe(),
           " must be [V, ", z.dim(1), "] for z ", z.describe());
  const int64_t N = z.dim(0), C = z.dim(1), V = codebook.dim(0);
  VG_CHECK(V > 0, op, ": empty codebook ", codebook.describe());
  VG_CHECK(idx.rank() == 1 && idx.dim(0) == N, op, ": idx ", idx.describe(), " must be i32[", N, "]");
  check_dense_rows(op, "z", z);
  check_contiguous(op, "codebook", codebook);
  check_contiguous(op, "idx", idx);
  return {N, C, V};
}

// ---- transpose(x, y): [R, C] -> [C, R], batched over a leading axis; any dtype, the same on both

struct TransposeDims {
  int64_t batch, rows, cols;
};

inline TransposeDims check_transpose_args(const char* op, const Tensor& x, const Tensor& y) {
  check_rank(op, "x", x, 2, 3);
  VG_CHECK(x.dtype() == y.dtype(), op, ": x ", x.describe(), " and y ", y.describe(), " differ in dtype");
  const bool batched = x.rank() == 3;
  const int64_t B = batched ? x.dim(0) : 1, R = x.dim(-2), C = x.dim(-1);
  const Shape expected = batched ? Shape{B, C, R} : Shape{C, R};
  VG_CHECK(y.shape() == expected, op, ": y ", y.describe(), " must be ", dtype_name(y.dtype()),
           shape_string(expected), " for x ", x.describe());
  check_contiguous(op, "x", x);
  check_contiguous(op, "y", y);
  check_no_alias(op, "x", x, "y", y);
  return {B, R, C};
}

// ---- sample(logits, params, idx, kept): logits [N, V], idx and kept i32[N] (dtypes by the caller)

struct SampleDims {
  int64_t rows, vocab;
};

inline SampleDims check_sample_args(const char* op, const Tensor& logits, const SamplingParams& p, const Tensor& idx,
                                    const Tensor* kept) {
  VG_CHECK(logits.rank() == 2 && logits.dim(1) > 0, op, ": logits ", logits.describe(), " must be [N, V] with V > 0");
  const int64_t N = logits.dim(0), V = logits.dim(1);
  VG_CHECK(idx.rank() == 1 && idx.dim(0) == N, op, ": idx ", idx.describe(), " must be i32[", N, "]");
  if (kept != nullptr)
    VG_CHECK(kept->rank() == 1 && kept->dim(0) == N, op, ": kept ", kept->describe(), " must be i32[", N, "]");
  VG_CHECK(p.top_k >= 0, op, ": top_k ", p.top_k, " must be >= 0 (0 disables)");
  VG_CHECK(p.top_p >= 0.0f && p.top_p <= 1.0f, op, ": top_p ", p.top_p, " must be in [0, 1] (1 disables)");
  VG_CHECK(p.temperature > 0.0f && std::isfinite(p.temperature), op, ": temperature ", p.temperature,
           " must be positive");
  check_dense_rows(op, "logits", logits);
  return {N, V};
}

// ---- embedding(ids, table, out): ids i32[N], table [V, C], out f32[N, C] (ids' values checked by
// the backend before it writes)

struct EmbeddingDims {
  int64_t rows, vocab, channels;
};

inline EmbeddingDims check_embedding_args(const char* op, const Tensor& ids, const Tensor& table, const Tensor& out) {
  VG_CHECK(ids.rank() == 1, op, ": ids ", ids.describe(), " must be i32[N]");
  VG_CHECK(table.rank() == 2, op, ": table ", table.describe(), " must be [V, C]");
  const int64_t N = ids.dim(0), V = table.dim(0), C = table.dim(1);
  VG_CHECK(out.rank() == 2 && out.dim(0) == N && out.dim(1) == C, op, ": out ", out.describe(), " must be f32[", N,
           ", ", C, "] for ids ", ids.describe(), " and table ", table.describe());
  check_dense_rows(op, "table", table);
  check_dense_rows(op, "out", out);
  return {N, V, C};
}

// ---- resize_bicubic / resize_area(x, y): images of equal leading axes, any sizes

struct ResizeDims {
  int64_t planes, H, W, Ho, Wo;  // planes = N * C
};

inline ResizeDims check_resize_args(const char* op, const Tensor& x, const Tensor& y) {
  check_rank(op, "x", x, 3, 4);
  VG_CHECK(y.rank() == x.rank(), op, ": y ", y.describe(), " and x ", x.describe(), " differ in rank");
  for (int i = 0; i + 2 < x.rank(); ++i)
    VG_CHECK(y.dim(i) == x.dim(i), op, ": y ", y.describe(), " and x ", x.describe(), " differ on axis ", i);
  check_contiguous(op, "x", x);
  check_contiguous(op, "y", y);
  check_no_alias(op, "x", x, "y", y);
  VG_CHECK(x.dim(-2) > 0 && x.dim(-1) > 0 && y.dim(-2) > 0 && y.dim(-1) > 0, op, ": empty image x ", x.describe(),
           " or y ", y.describe());
  return {x.numel() / (x.dim(-2) * x.dim(-1)), x.dim(-2), x.dim(-1), y.dim(-2), y.dim(-1)};
}

// ---- add(a, b, y): y = a + b with b broadcast over a's leading axes (b's shape a suffix of a's; a
// scalar b only for rows one wide); y may be a itself but not partly overlap it

inline void check_add_args(const char* op, const Tensor& a, const Tensor& b, const Tensor& y) {
  check_same_shape(op, "a", a, "y", y);
  VG_CHECK(b.rank() <= a.rank() && std::equal(b.shape().begin(), b.shape().end(), a.shape().end() - b.rank()), op,
           ": b ", b.describe(), " is not a suffix of a ", a.describe());
  VG_CHECK(a.rank() >= 1, op, ": a ", a.describe(), " must have at least one axis");
  check_dense_rows(op, "a", a);
  check_dense_rows(op, "y", y);
  check_no_alias(op, "b", b, "y", y);
  VG_CHECK(!overlaps(a, y) || (a.raw() == y.raw() && a.strides() == y.strides()), op, ": y ", y.describe(),
           " partly overlaps a ", a.describe());
  VG_CHECK(b.rank() >= 1 ? b.dim(-1) == a.dim(-1) : a.dim(-1) == 1, op, ": b ", b.describe(),
           " must span a's last axis");
}

// ---- per-batch vectors of norm_modulate and gated_add: [B, C], or [C] / [1, C] when x has one
// batch row. Returns the stride between batch rows (0 when one row serves every batch).

inline int64_t check_batch_vector(const char* op, const char* name, const Tensor& t, const Tensor& x, int64_t batch) {
  const int64_t C = x.dim(-1);
  const bool ok = (t.rank() == 2 && t.dim(0) == batch && t.dim(1) == C) ||
                  (batch == 1 && t.rank() == 1 && t.dim(0) == C);
  VG_CHECK(ok, op, ": ", name, " ", t.describe(), " must be [", batch, ", ", C, "] for x ", x.describe());
  check_dense_rows(op, name, t);
  return t.rank() == 2 && batch > 1 ? t.stride(0) : 0;
}

// ---- same-shape element-wise ops (glu, axpby, activation): a, b and y of one shape
// with dense rows; y may be an input itself (the same view), not a partly overlapping one.

inline bool same_view(const Tensor& s, const Tensor& t) {
  return s.raw() == t.raw() && s.strides() == t.strides() && s.shape() == t.shape();
}

inline void check_elementwise_args(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                                   const Tensor& b, const Tensor& y) {
  check_same_shape(op, a_name, a, b_name, b);
  check_same_shape(op, a_name, a, "y", y);
  check_dense_rows(op, a_name, a);
  check_dense_rows(op, b_name, b);
  check_dense_rows(op, "y", y);
  VG_CHECK(!overlaps(a, y) || same_view(a, y), op, ": y ", y.describe(), " partly overlaps ", a_name, " ",
           a.describe());
  VG_CHECK(!overlaps(b, y) || same_view(b, y), op, ": y ", y.describe(), " partly overlaps ", b_name, " ",
           b.describe());
}

// ---- binary(op, a, b, y): NumPy broadcasting. The plan walks y's elements in row-major order
// over `rank` collapsed axes (size-1 axes dropped, axes merged where all three operands step
// uniformly across them); a broadcast axis has stride 0 in its operand. rank 0 = one element.

constexpr int kMaxBroadcastRank = 8;

struct BroadcastPlan {
  int rank = 0;
  int64_t dims[kMaxBroadcastRank] = {};
  int64_t a_strides[kMaxBroadcastRank] = {}, b_strides[kMaxBroadcastRank] = {}, y_strides[kMaxBroadcastRank] = {};
  int64_t count = 1;  // elements of y
};

// The broadcast shape of a and b; throws where an axis pair differs with neither being 1.
inline Shape broadcast_shape(const char* op, const Tensor& a, const Tensor& b) {
  const int R = std::max(a.rank(), b.rank());
  Shape shape(static_cast<size_t>(R));
  for (int i = 0; i < R; ++i) {
    const int ia = i - (R - a.rank()), ib = i - (R - b.rank());
    const int64_t da = ia >= 0 ? a.shape()[ia] : 1, db = ib >= 0 ? b.shape()[ib] : 1;
    VG_CHECK(da == db || da == 1 || db == 1, op, ": a ", a.describe(), " and b ", b.describe(),
             " do not broadcast (axis ", i - R, ": ", da, " vs ", db, ")");
    shape[i] = da == 1 ? db : da;
  }
  return shape;
}

inline BroadcastPlan check_binary_args(const char* op, const Tensor& a, const Tensor& b, const Tensor& y) {
  const int R = std::max(a.rank(), b.rank());
  VG_CHECK(R <= kMaxBroadcastRank && y.rank() <= kMaxBroadcastRank, op, ": a ", a.describe(), ", b ", b.describe(),
           " and y ", y.describe(), " may have at most ", kMaxBroadcastRank, " axes");
  const Shape expected = broadcast_shape(op, a, b);
  VG_CHECK(y.shape() == expected, op, ": y ", y.describe(), " must have the broadcast shape ", shape_string(expected),
           " of a ", a.describe(), " and b ", b.describe());
  VG_CHECK(!overlaps(a, y) || same_view(a, y), op, ": y ", y.describe(), " partly overlaps a ", a.describe());
  VG_CHECK(!overlaps(b, y) || same_view(b, y), op, ": y ", y.describe(), " partly overlaps b ", b.describe());
  BroadcastPlan plan;
  for (int i = 0; i < R; ++i) {
    const int64_t n = expected[i];
    plan.count *= n;
    if (n == 1) continue;
    const int ia = i - (R - a.rank()), ib = i - (R - b.rank());
    const int64_t sa = ia >= 0 && a.shape()[ia] != 1 ? a.strides()[ia] : 0;
    const int64_t sb = ib >= 0 && b.shape()[ib] != 1 ? b.strides()[ib] : 0;
    const int64_t sy = y.strides()[i];
    const int r = plan.rank - 1;
    // Merge into the previous axis when each operand's stride there is this axis's span.
    if (r >= 0 && plan.a_strides[r] == sa * n && plan.b_strides[r] == sb * n && plan.y_strides[r] == sy * n) {
      plan.dims[r] *= n;
      plan.a_strides[r] = sa;
      plan.b_strides[r] = sb;
      plan.y_strides[r] = sy;
      continue;
    }
    plan.dims[plan.rank] = n;
    plan.a_strides[plan.rank] = sa;
    plan.b_strides[plan.rank] = sb;
    plan.y_strides[plan.rank] = sy;
    ++plan.rank;
  }
  return plan;
}

// ---- norm_modulate(x, norm, weight, bias, eps, scale, shift, y)

struct ModulateDims {
  int64_t batch, len, channels, scale_stride, shift_stride;
};

inline ModulateDims check_modulate_args(const char* op, const Tensor& x, const Tensor& scale, const Tensor* shift,
                                        const Tensor& y) {
  check_rank(op, "x", x, 2, 3);
  check_same_shape(op, "x", x, "y", y);
  check_dense_rows(op, "x", x);
  check_dense_rows(op, "y", y);
  VG_CHECK(!overlaps(x, y) || same_view(x, y), op, ": y ", y.describe(), " partly overlaps x ", x.describe());
  const int64_t B = x.rank() == 3 ? x.dim(0) : 1, L = x.dim(-2), C = x.dim(-1);
  const int64_t scale_stride = check_batch_vector(op, "scale", scale, x, B);
  const int64_t shift_stride = shift != nullptr ? check_batch_vector(op, "shift", *shift, x, B) : 0;
  return {B, L, C, scale_stride, shift_stride};
}

// ---- gated_add(x, y, gate, act): x, y [B, L, C] (or [L, C]), gate [B, C]; y may not overlap x

struct GatedDims {
  int64_t batch, len, channels, gate_stride;
};

inline GatedDims check_gated_add_args(const char* op, const Tensor& x, const Tensor& y, const Tensor& gate) {
  check_rank(op, "x", x, 2, 3);
  check_same_shape(op, "x", x, "y", y);
  check_dense_rows(op, "x", x);
  check_dense_rows(op, "y", y);
  check_no_alias(op, "y", y, "x", x);
  const int64_t B = x.rank() == 3 ? x.dim(0) : 1;
  return {B, x.dim(-2), x.dim(-1), check_batch_vector(op, "gate", gate, x, B)};
}

// ---- mean(x, axis, y): x [outer..., n, inner...] contiguous -> y [outer..., inner...]

struct MeanDims {
  int64_t outer, n, inner;
};

inline MeanDims check_mean_args(const char* op, const Tensor& x, int axis, const Tensor& y) {
  check_rank(op, "x", x, 1, 4);
  const int R = x.rank();
  VG_CHECK(axis >= -R && axis < R, op, ": axis ", axis, " is out of range for x ", x.describe());
  const int ax = axis < 0 ? axis + R : axis;
  Shape dropped, kept = x.shape();
  for (int i = 0; i < R; ++i)
    if (i != ax) dropped.push_back(x.shape()[i]);
  kept[ax] = 1;
  VG_CHECK(y.shape() == dropped || y.shape() == kept, op, ": y ", y.describe(), " must be f32",
           shape_string(dropped), " or f32", shape_string(kept), " (keepdim) for the mean of x ", x.describe(),
           " over axis ", axis);
  VG_CHECK(x.dim(ax) > 0 || y.numel() == 0, op, ": the mean over an empty axis ", axis, " of x ", x.describe(),
           " is undefined");
  check_contiguous(op, "x", x);
  check_contiguous(op, "y", y);
  check_no_alias(op, "x", x, "y", y);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < ax; ++i) outer *= x.shape()[i];
  for (int i = ax + 1; i < R; ++i) inner *= x.shape()[i];
  return {outer, x.dim(ax), inner};
}

}  // namespace vargpt
