#include "var.h"

#include <algorithm>
#include <cmath>

#include "../../core/error.h"
#include "scale_blocks.h"

namespace vargpt {

VarDecoder::VarDecoder(const VarConfig& config, WeightLoader& w, const std::string& prefix)
    : backend_(w.backend()), config_(config) {
  Backend& b = backend_;
  const int64_t C = config.width, L = config.total_tokens, V = config.vocab, F = config.mlp_hidden;
  const int64_t SN = config.scales();
  word_embed_ = w.linear(prefix + "word_embed", C, config.cvae, true);
  const Tensor class_emb = w.matrix(prefix + "class_emb.weight", {config.class_rows, C});
  const Tensor pos_start = w.f32(prefix + "pos_start", {1, 1, C}).view({1, C});
  const Tensor pos_1LC = w.f32(prefix + "pos_1LC", {1, L, C}).view({L, C});
  const Tensor lvl_embed = w.matrix(prefix + "lvl_embed.weight", {SN, C});
  const std::vector<int64_t> lvl64 = w.host_ints(prefix + "lvl_1L", {1, L});
  const std::vector<int32_t> lvl(lvl64.begin(), lvl64.end());

  // lvl_pos = lvl_embed[lvl_1L] + pos_1LC, the per-token additive embedding of every scale.
  lvl_pos_ = b.empty(DType::F32, {L, C});
  b.embedding(b.upload(Tensor::from_host(DType::I32, {L}, lvl.data())), lvl_embed, lvl_pos_);
  b.add(lvl_pos_, pos_1LC, lvl_pos_);

  // Condition rows: both CFG rows use the null class.
  const int32_t null_ids[2] = {config.null_class, config.null_class};
  Tensor cond = b.empty(DType::F32, {2, C});
  b.embedding(b.upload(Tensor::from_host(DType::I32, {2}, null_ids)), class_emb, cond);
  sos_ = b.empty(DType::F32, {1, C});
  b.copy(cond.slice(0, 0, 1), sos_);
  b.add(sos_, pos_start, sos_);
  b.add(sos_, lvl_pos_.slice(0, 0, 1), sos_);
  Tensor cond_act = b.empty(DType::F32, {2, C});
  b.activation(cond, Activation::SiLU, cond_act);

  for (int i = 0; i < config.depth; ++i) {
    const std::string p = prefix + "blocks." + std::to_string(i) + ".";
    Block blk;
    blk.qkv_w = w.quantizable(p + "attn.mat_qkv.weight", {3 * C, C});
    blk.qkv_bias = packed_attention_bias(w, p + "attn.", C, /*with_query=*/true);
    blk.head_scale = cosine_attention_head_scale(w, p + "attn.scale_mul_1H11", config.heads);
    blk.proj = w.quantizable_linear(p + "attn.proj", C, C, true);
    blk.fc1 = w.quantizable_linear(p + "ffn.fc1", F, C, true);
    blk.fc2 = w.quantizable_linear(p + "ffn.fc2", C, F, true);
    // The condition is fixed, so each block's modulation is computed here, once, and the projection
    // (a third of a block's weights) is not kept.
    const Tensor mod = w.apply_once(p + "ada_lin.1", cond_act, 6 * C, C);
    auto chunks = split_chunks(b, mod, 6, C);  // gamma1, gamma2, scale1, scale2, shift1, shift2
    blk.gamma1 = chunks[0];
    blk.gamma2 = chunks[1];
    blk.scale1 = chunks[2];
    blk.scale2 = chunks[3];
    blk.shift1 = chunks[4];
    blk.shift2 = chunks[5];
    blocks_.push_back(std::move(blk));
  }
  const Tensor head_mod = w.apply_once(prefix + "head_nm.ada_lin.1", cond_act, 2 * C, C);
  auto head_chunks = split_chunks(b, head_mod, 2, C);  // scale, shift
  head_scale_ = head_chunks[0];
  head_shift_ = head_chunks[1];
  head_ = w.quantizable_linear(prefix + "head", V, C, true);
}

void VarDecoder::sos(const Tensor& out) { backend_.copy(sos_, out); }

void VarDecoder::embed_scale(int si, const Tensor& map_tokens, const Tensor& out) {
  VG_CHECK(si >= 0 && si < config_.scales(), "VAR: scale ", si, " of ", config_.scales());
  const int begin = config_.begin(si);
  const int pn = config_.patch_nums[si];
  backend_.linear(map_tokens, word_embed_.w, &word_embed_.b, out);
  backend_.add(out, lvl_pos_.slice(0, begin, begin + pn * pn), out);
}

int VarConfig::begin(int si) const {
  int b = 0;
  for (int i = 0; i < si; ++i) b += patch_nums[i] * patch_nums[i];
  return b;
}

void VarDecoder::forward(const Tensor& x, VarScaleCache& cache, const Tensor& logits, const BlockHook& block_hook) {
  Backend& b = backend_;
  const int64_t C = config_.width;
  VG_CHECK(x.rank() == 3 && x.dim(0) == 2 && x.dim(2) == C, "VAR: input ", x.describe(), ", expected [2, l, ", C, "]");
  const int64_t l = x.dim(1);
  const int start = cache.length_;
  VG_CHECK(start + l <= config_.total_tokens, "VAR: ", start, " cached + ", l, " new tokens exceed ",
           config_.total_tokens);
  const int64_t Lk = start + l;
  VG_CHECK(cache.k_.empty() || (cache.k_.size() == blocks_.size() && cache.k_[0].dim(1) == config_.total_tokens &&
                                  cache.k_[0].dim(2) == C),
           "VAR: the scale cache was made for another decoder");
  if (cache.k_.empty())
    for (size_t i = 0; i < blocks_.size(); ++i) {
      cache.k_.push_back(b.empty(DType::F32, {2, config_.total_tokens, C}));
      cache.v_.push_back(b.empty(DType::F32, {2, config_.total_tokens, C}));
    }

  Tensor xn = b.empty(DType::F32, {2, l, C});
  Tensor qkv = b.empty(DType::F32, {2, l, 3 * C});
  Tensor attn = b.empty(DType::F32, {2, l, C});
  Tensor y = b.empty(DType::F32, {2, l, C});
  Tensor mlp = b.empty(DType::F32, {2, l, config_.mlp_hidden});
  AttentionParams ap;
  ap.q_heads = ap.kv_heads = config_.heads;
  ap.head_dim = config_.head_dim;
  ap.scale = 1.0f;  // q and k are L2-normalised; the learnt per-head scale is folded into q
  ap.mask = AttentionMask::None;
  const float eps = 1e-6f;

  for (size_t bi = 0; bi < blocks_.size(); ++bi) {
    const Block& blk = blocks_[bi];
    const Tensor& k_cache = cache.k_[bi];
    const Tensor& v_cache = cache.v_[bi];
    b.norm_modulate(x, NormKind::LayerNorm, nullptr, nullptr, eps, blk.scale1, &blk.shift1, xn);
    linear(b, xn, blk.qkv_w, &blk.qkv_bias, qkv);
    const Tensor q = qkv.slice(2, 0, C);
    const Tensor k = qkv.slice(2, C, 2 * C);
    const Tensor v = qkv.slice(2, 2 * C, 3 * C);
    b.l2_normalize_heads(q, config_.head_dim, &blk.head_scale);
    b.l2_normalize_heads(k, config_.head_dim, nullptr);
    b.copy(k, k_cache.slice(1, start, Lk));
    b.copy(v, v_cache.slice(1, start, Lk));
    b.attention(q, k_cache.slice(1, 0, Lk), v_cache.slice(1, 0, Lk), attn, ap);
    linear(b, attn, blk.proj, y);
    b.gated_add(x, y, blk.gamma1);
    b.norm_modulate(x, NormKind::LayerNorm, nullptr, nullptr, eps, blk.scale2, &blk.shift2, xn);
    linear(b, xn, blk.fc1, mlp, Activation::GeluTanh);
    linear(b, mlp, blk.fc2, y);
    b.gated_add(x, y, blk.gamma2);
    if (block_hook) block_hook(static_cast<int>(bi), x);
  }
  b.norm_modulate(x, NormKind::LayerNorm, nullptr, nullptr, eps, head_scale_, &head_shift_, xn);
  linear(b, xn, head_, logits);
  cache.length_ = static_cast<int>(Lk);
}

}  // namespace vargpt
