#include "lumina_dit.h"

#include <atomic>
#include <cmath>

#include "../../core/error.h"
#include "../common/rope.h"
#include "scale_blocks.h"

namespace vargpt {

namespace {

// Distinguishes DiTs so a context prepared by one is never run through another.
std::atomic<uint64_t> next_dit_id{1};

// Diffusers' Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0) in f32 as upstream computes it:
// row b = [cos(t_b f_i) | sin(t_b f_i)], f_i = exp(-ln(10000) i / half).
Tensor timestep_sinusoid(const std::vector<int64_t>& t, int width) {
  const int half = width / 2;
  Tensor out = Tensor::empty_host(DType::F32, {static_cast<int64_t>(t.size()), width});
  float* o = out.data<float>();
  const float log_period = static_cast<float>(-std::log(10000.0));
  for (size_t b = 0; b < t.size(); ++b) {
    const float tb = static_cast<float>(t[b]);
    for (int i = 0; i < half; ++i) {
      const float exponent = (log_period * static_cast<float>(i)) / static_cast<float>(half);
      const float angle = tb * std::exp(exponent);
      o[b * width + i] = std::cos(angle);
      o[b * width + half + i] = std::sin(angle);
    }
  }
  return out;
}

}  // namespace

LuminaDitConfig parse_lumina_dit_config(const WeightLoader& w, const std::string& prefix) {
  LuminaDitConfig c;
  c.dim = w.dim(prefix + "patch_embedder.proj.weight", 0, 2);
  c.in_channels = w.dim(prefix + "patch_embedder.proj.weight", 1, 2);
  c.layers = w.count_indexed(prefix + "layers.");
  VG_CHECK(c.layers > 0, "Lumina DiT: the checkpoint has no blocks under ", prefix, "layers.{i}");
  const std::string b0 = prefix + "layers.0.";
  c.heads = w.dim(b0 + "gate", 0, 1);
  VG_CHECK(c.dim % c.heads == 0, "Lumina DiT: dim ", c.dim, " is not a multiple of ", c.heads, " heads (",
           b0, "gate)");
  c.head_dim = c.dim / c.heads;
  // Half of each head's pairs turn by the row, half by the column.
  VG_CHECK(c.head_dim % 4 == 0, "Lumina DiT: head_dim ", c.head_dim, " must be a multiple of 4 for the 2D RoPE");
  const int kv_width = w.dim(b0 + "attn1.to_k.weight", 0, 2);
  VG_CHECK(kv_width % c.head_dim == 0, "Lumina DiT: ", b0, "attn1.to_k.weight gives ", kv_width,
           " key columns, not a multiple of head_dim ", c.head_dim);
  c.kv_heads = kv_width / c.head_dim;
  VG_CHECK(c.heads % c.kv_heads == 0, "Lumina DiT: ", c.heads, " heads do not share ", c.kv_heads, " kv heads evenly");
  c.ffn_hidden = w.dim(b0 + "feed_forward.linear_1.weight", 0, 2);
  c.caption_dim = w.dim(prefix + "caption_projection.linear_1.weight", 1, 2);
  c.temb_dim = w.dim(prefix + "time_caption_embed.timestep_embedder.linear_1.weight", 0, 2);
  c.freq_dim = w.dim(prefix + "time_caption_embed.timestep_embedder.linear_1.weight", 1, 2);
  VG_CHECK(c.freq_dim % 2 == 0, "Lumina DiT: timestep sinusoid width ", c.freq_dim, " is odd");
  c.out_channels = w.dim(prefix + "norm_out.linear_2.weight", 0, 2);
  return c;
}

LuminaDit::LuminaDit(const LuminaDitConfig& c, WeightLoader& w, const std::string& prefix)
    : backend_(w.backend()), config_(c), id_(next_dit_id++) {
  const int64_t D = c.dim, T = c.temb_dim, KV = int64_t{c.kv_heads} * c.head_dim, F = c.ffn_hidden;
  patch_ = w.linear(prefix + "patch_embedder.proj", D, c.in_channels, true);
  cap1_ = w.linear(prefix + "caption_projection.linear_1", D, c.caption_dim, true);
  cap2_ = w.linear(prefix + "caption_projection.linear_2", D, D, true);
  const std::string te = prefix + "time_caption_embed.";
  t1_ = w.linear(te + "timestep_embedder.linear_1", T, c.freq_dim, true);
  t2_ = w.linear(te + "timestep_embedder.linear_2", T, T, true);
  cap_norm_ = w.norm(te + "caption_embedder.0", D, true);
  cap_embed_ = w.linear(te + "caption_embedder.1", T, D, true);
  out_ada_ = w.linear(prefix + "norm_out.linear_1", D, T, true);
  out_proj_ = w.linear(prefix + "norm_out.linear_2", c.out_channels, D, true);
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = prefix + "layers." + std::to_string(i) + ".";
    Block blk;
    blk.ada = w.quantizable_linear(p + "norm1.linear", 4 * D, T, true);
    blk.norm1_w = w.f32(p + "norm1.norm.weight", {D});
    blk.ffn_norm1_w = w.f32(p + "ffn_norm1.weight", {D});
    blk.norm2_w = w.f32(p + "norm2.weight", {D});
    blk.ffn_norm2_w = w.f32(p + "ffn_norm2.weight", {D});
    blk.context_norm_w = w.f32(p + "norm1_context.weight", {D});
    blk.q1 = w.quantizable(p + "attn1.to_q.weight", {D, D});
    blk.k1 = w.quantizable(p + "attn1.to_k.weight", {KV, D});
    blk.v1 = w.quantizable(p + "attn1.to_v.weight", {KV, D});
    blk.q2 = w.quantizable(p + "attn2.to_q.weight", {D, D});
    blk.k2 = w.quantizable(p + "attn2.to_k.weight", {KV, D});
    blk.v2 = w.quantizable(p + "attn2.to_v.weight", {KV, D});
    blk.out = w.quantizable(p + "attn2.to_out.0.weight", {D, D});
    blk.q1_norm = w.norm(p + "attn1.norm_q", D, true);
    blk.k1_norm = w.norm(p + "attn1.norm_k", KV, true);
    blk.q2_norm = w.norm(p + "attn2.norm_q", D, true);
    blk.k2_norm = w.norm(p + "attn2.norm_k", KV, true);
    const Tensor gate = w.host_f32(p + "gate", {c.heads});
    Tensor gt = Tensor::empty_host(DType::F32, {c.heads, 1});
    for (int h = 0; h < c.heads; ++h) gt.data<float>()[h] = std::tanh(gate.data<float>()[h]);
    blk.gate_tanh = backend_.upload(gt);
    blk.w1 = w.quantizable(p + "feed_forward.linear_1.weight", {F, D});
    blk.w3 = w.quantizable(p + "feed_forward.linear_3.weight", {F, D});
    blk.w2 = w.quantizable(p + "feed_forward.linear_2.weight", {D, F});
    blocks_.push_back(std::move(blk));
  }
}

Tensor LuminaDit::rope_table(int grid) const {
  VG_CHECK(grid >= 1 && grid <= (1 << 12), "Lumina DiT: bad grid ", grid);
  // get_2d_rotary_pos_embed_lumina: a 1D table of head_dim/2 dimensions per axis, so theta_k =
  // theta^(-2k / (head_dim/2)) for k < head_dim/4, the row and column angles interleaved pair by pair.
  const std::vector<float> f = rope_inv_freq(config_.rope_theta, config_.head_dim / 2);
  const int pairs = config_.head_dim / 2;
  std::vector<float> freq(static_cast<size_t>(pairs));
  std::vector<int> axes(static_cast<size_t>(pairs));
  for (int j = 0; j < pairs; ++j) {
    freq[j] = f[j / 2];
    axes[j] = j % 2;
  }
  const int64_t n = int64_t{grid} * grid;
  std::vector<int32_t> pos(static_cast<size_t>(2 * n));
  for (int r = 0; r < grid; ++r)
    for (int col = 0; col < grid; ++col) {
      pos[r * grid + col] = r;
      pos[n + r * grid + col] = col;
    }
  return vargpt::rope_table(freq, axes, pos.data(), 2, n);
}

LuminaDitContext LuminaDit::prepare(const Tensor& context, TraceSink* trace) {
  Backend& b = backend_;
  const LuminaDitConfig& c = config_;
  const int64_t D = c.dim, KV = int64_t{c.kv_heads} * c.head_dim;
  VG_CHECK(context.defined() && context.rank() == 3 && context.dim(0) >= 1 && context.dim(1) >= 1 &&
               context.dim(2) == c.caption_dim && context.dtype() == DType::F32 && context.is_contiguous(),
           "Lumina DiT: context ", context.defined() ? context.describe() : std::string("(none)"),
           ", expected contiguous f32 [B, Q, ", c.caption_dim, "] (caption_projection.linear_1 reads ", c.caption_dim,
           " columns)");
  const int64_t B = context.dim(0), Q = context.dim(1);
  LuminaDitContext ctx;
  ctx.owner_ = id_;
  ctx.batch_ = B;
  ctx.length_ = Q;

  Tensor hidden = b.empty(DType::F32, {B, Q, D});
  Tensor cap = b.empty(DType::F32, {B, Q, D});
  b.linear(context, cap1_.w, &cap1_.b, hidden, Activation::GeluTanh);
  b.linear(hidden, cap2_.w, &cap2_.b, cap);
  if (trace) trace->add("caption_projection", cap);

  // The caption mask is all ones, so its masked mean is the plain mean over the Q rows.
  Tensor pooled = b.empty(DType::F32, {B, D});
  b.mean(cap, 1, pooled);
  Tensor pooled_norm = b.empty(DType::F32, {B, D});
  b.layer_norm(pooled, &cap_norm_.w, &cap_norm_.b, c.norm_eps, pooled_norm);
  ctx.caption_temb_ = b.empty(DType::F32, {B, c.temb_dim});
  b.linear(pooled_norm, cap_embed_.w, &cap_embed_.b, ctx.caption_temb_);
  if (trace) trace->add("caption_embedder", ctx.caption_temb_);

  Tensor normed = b.empty(DType::F32, {B, Q, D});
  Tensor k_raw = b.empty(DType::F32, {B, Q, KV});
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& blk = blocks_[i];
    b.rms_norm(cap, blk.context_norm_w, c.norm_eps, normed);
    if (trace && i == 0) trace->add("b0.norm1_context", normed);
    Tensor k = b.empty(DType::F32, {B, Q, KV});
    Tensor v = b.empty(DType::F32, {B, Q, KV});
    linear(b, normed, blk.k2, nullptr, k_raw);
    b.layer_norm(k_raw, &blk.k2_norm.w, &blk.k2_norm.b, c.norm_eps, k);
    linear(b, normed, blk.v2, nullptr, v);
    ctx.k_.push_back(k);
    ctx.v_.push_back(v);
  }
  return ctx;
}

void LuminaDit::forward(const Tensor& x, const std::vector<int64_t>& timesteps, const LuminaDitContext& context,
                        const Tensor& v, TraceSink* trace) {
  Backend& b = backend_;
  const LuminaDitConfig& c = config_;
  const int64_t D = c.dim, KV = int64_t{c.kv_heads} * c.head_dim, F = c.ffn_hidden, T = c.temb_dim;
  VG_CHECK(context.owner_ == id_, "Lumina DiT: the context was prepared by another DiT (or not by prepare())");
  const int64_t B = context.batch_;
  VG_CHECK(x.defined() && x.rank() == 4 && x.dim(0) == B && x.dim(1) == c.in_channels && x.dim(2) == x.dim(3) &&
               x.dim(2) >= 1 && x.dim(2) <= (1 << 12) && x.dtype() == DType::F32 && x.is_contiguous(),
           "Lumina DiT: x ", x.defined() ? x.describe() : std::string("(none)"), ", expected contiguous f32 [", B, ", ",
           c.in_channels, ", g, g] (the context holds ", B, " rows)");
  const int g = static_cast<int>(x.dim(2));
  const int64_t L = int64_t{g} * g;
  VG_CHECK(static_cast<int64_t>(timesteps.size()) == B, "Lumina DiT: ", timesteps.size(), " timesteps for a batch of ",
           B);
  VG_CHECK(v.defined() && v.dtype() == DType::F32 && v.is_contiguous() &&
               v.shape() == Shape({B, c.out_channels, g, g}),
           "Lumina DiT: v ", v.defined() ? v.describe() : std::string("(none)"), ", expected contiguous f32 [", B,
           ", ", c.out_channels, ", ", g, ", ", g, "]");

  // Patch size 1: the [C, g, g] map read as g*g row-major tokens of C channels.
  Tensor tokens = b.empty(DType::F32, {B, L, c.in_channels});
  b.transpose(x.view({B, c.in_channels, L}), tokens);
  Tensor h = b.empty(DType::F32, {B, L, D});
  b.linear(tokens, patch_.w, &patch_.b, h);
  if (trace) trace->add("patch_embed", h);

  const Tensor sinusoid = b.upload(timestep_sinusoid(timesteps, c.freq_dim));
  if (trace) trace->add("time_proj", sinusoid);
  Tensor t_hidden = b.empty(DType::F32, {B, T});
  Tensor temb = b.empty(DType::F32, {B, T});
  b.linear(sinusoid, t1_.w, &t1_.b, t_hidden, Activation::SiLU);
  b.linear(t_hidden, t2_.w, &t2_.b, temb);
  if (trace) trace->add("timestep_embedder", temb);
  b.add(temb, context.caption_temb_, temb);
  if (trace) trace->add("temb", temb);
  Tensor temb_act = b.empty(DType::F32, {B, T});
  b.activation(temb, Activation::SiLU, temb_act);

  const Tensor host_table = rope_table(g);
  if (trace) {
    // The reference's layout: [g*g, head_dim/2, (cos, sin)].
    const int64_t half = c.head_dim / 2;
    Tensor freqs = Tensor::empty_host(DType::F32, {L, half, 2});
    const float* src = host_table.data<float>();
    float* dst = freqs.data<float>();
    for (int64_t t = 0; t < L; ++t)
      for (int64_t j = 0; j < half; ++j) {
        dst[(t * half + j) * 2] = src[t * 2 * half + j];
        dst[(t * half + j) * 2 + 1] = src[t * 2 * half + half + j];
      }
    trace->add("rope_freqs", freqs);
  }
  const Tensor table = b.upload(host_table);
  AttentionParams self_p;
  self_p.q_heads = c.heads;
  self_p.kv_heads = c.kv_heads;
  self_p.head_dim = c.head_dim;
  self_p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  self_p.mask = AttentionMask::None;
  const AttentionParams cross_p = self_p;

  Tensor mod = b.empty(DType::F32, {B, 4 * D});
  Tensor xn = b.empty(DType::F32, {B, L, D});
  Tensor q_raw = b.empty(DType::F32, {B, L, D});
  Tensor q = b.empty(DType::F32, {B, L, D});
  Tensor k_raw = b.empty(DType::F32, {B, L, KV});
  Tensor k = b.empty(DType::F32, {B, L, KV});
  Tensor vv = b.empty(DType::F32, {B, L, KV});
  Tensor sa = b.empty(DType::F32, {B, L, D});
  Tensor ca = b.empty(DType::F32, {B, L, D});
  Tensor o = b.empty(DType::F32, {B, L, D});
  Tensor on = b.empty(DType::F32, {B, L, D});
  Tensor f1 = b.empty(DType::F32, {B, L, F});
  Tensor f3 = b.empty(DType::F32, {B, L, F});
  const Shape head_shape = {B, L, c.heads, c.head_dim};
  std::vector<Tensor> block_out;

  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& blk = blocks_[i];
    const bool tr = trace && i == 0;
    linear(b, temb_act, blk.ada, mod);
    const auto ch = split_chunks(b, mod, 4, D);  // scale_msa, gate_msa, scale_mlp, gate_mlp
    b.norm_modulate(h, NormKind::RMSNorm, &blk.norm1_w, nullptr, c.norm_eps, ch[0], nullptr, xn);
    if (tr) {
      trace->add("b0.norm1_x", xn);
      trace->add("b0.gate_msa", ch[1]);
      trace->add("b0.scale_mlp", ch[2]);
      trace->add("b0.gate_mlp", ch[3]);
    }

    // Self-attention: q/k LayerNorm over all heads, then RoPE on both; no output projection of its own.
    linear(b, xn, blk.q1, nullptr, q_raw);
    b.layer_norm(q_raw, &blk.q1_norm.w, &blk.q1_norm.b, c.norm_eps, q);
    linear(b, xn, blk.k1, nullptr, k_raw);
    b.layer_norm(k_raw, &blk.k1_norm.w, &blk.k1_norm.b, c.norm_eps, k);
    linear(b, xn, blk.v1, nullptr, vv);
    b.rope(q, table, c.head_dim, RopePairing::Interleaved);
    b.rope(k, table, c.head_dim, RopePairing::Interleaved);
    b.attention(q, k, vv, sa, self_p);
    if (tr) trace->add("b0.attn1", sa.view(head_shape));

    // Cross-attention to the cached caption keys: RoPE on the queries only.
    linear(b, xn, blk.q2, nullptr, q_raw);
    b.layer_norm(q_raw, &blk.q2_norm.w, &blk.q2_norm.b, c.norm_eps, q);
    b.rope(q, table, c.head_dim, RopePairing::Interleaved);
    b.attention(q, context.k_[i], context.v_[i], ca, cross_p);
    if (tr) trace->add("b0.attn2", ca.view(head_shape));
    const Tensor ca_heads = ca.view(head_shape);
    b.binary(BinaryOp::Mul, ca_heads, blk.gate_tanh, ca_heads);
    b.add(sa, ca, sa);
    linear(b, sa, blk.out, nullptr, o);
    if (tr) trace->add("b0.attn_out", o);
    b.rms_norm(o, blk.norm2_w, c.norm_eps, on);
    b.gated_add(h, on, ch[1], Activation::Tanh);

    b.norm_modulate(h, NormKind::RMSNorm, &blk.ffn_norm1_w, nullptr, c.norm_eps, ch[2], nullptr, xn);
    linear(b, xn, blk.w1, nullptr, f1);
    linear(b, xn, blk.w3, nullptr, f3);
    b.glu(f1, f3, Activation::SiLU, f1);
    linear(b, f1, blk.w2, nullptr, o);
    if (tr) trace->add("b0.feed_forward", o);
    b.rms_norm(o, blk.ffn_norm2_w, c.norm_eps, on);
    b.gated_add(h, on, ch[3], Activation::Tanh);
    if (trace) block_out.push_back(b.to_host(h));
  }
  if (trace) trace->stack("block_out", block_out);

  Tensor scale = b.empty(DType::F32, {B, D});
  b.linear(temb_act, out_ada_.w, &out_ada_.b, scale);
  b.norm_modulate(h, NormKind::LayerNorm, nullptr, nullptr, c.out_eps, scale, nullptr, xn);
  Tensor out = b.empty(DType::F32, {B, L, c.out_channels});
  b.linear(xn, out_proj_.w, &out_proj_.b, out);
  if (trace) trace->add("norm_out", out);
  b.transpose(out, v.view({B, c.out_channels, L}));
  if (trace) trace->add("v", v);
}

}  // namespace vargpt
