#include "llama.h"

#include <algorithm>
#include <cmath>

#include "../core/error.h"

namespace vargpt {

Llama::Llama(const LlamaConfig& config, WeightLoader& w, const std::string& prefix)
    : backend_(w.backend()), config_(config) {
  const int64_t H = config.hidden, I = config.intermediate, V = config.vocab;
  const int64_t q_dim = static_cast<int64_t>(config.heads) * config.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(config.kv_heads) * config.head_dim;
  embed_tokens_ = w.matrix(prefix + "model.embed_tokens.weight", {V, H});
  for (int i = 0; i < config.layers; ++i) {
    const std::string p = prefix + "model.layers." + std::to_string(i) + ".";
    Layer l;
    l.input_norm = w.norm(p + "input_layernorm", H, false);
    l.q = w.matrix(p + "self_attn.q_proj.weight", {q_dim, H});
    l.k = w.matrix(p + "self_attn.k_proj.weight", {kv_dim, H});
    l.v = w.matrix(p + "self_attn.v_proj.weight", {kv_dim, H});
    l.o = w.matrix(p + "self_attn.o_proj.weight", {H, q_dim});
    l.post_norm = w.norm(p + "post_attention_layernorm", H, false);
    l.gate = w.matrix(p + "mlp.gate_proj.weight", {I, H});
    l.up = w.matrix(p + "mlp.up_proj.weight", {I, H});
    l.down = w.matrix(p + "mlp.down_proj.weight", {H, I});
    layers_.push_back(std::move(l));
  }
  final_norm_ = w.norm(prefix + "model.norm", H, false);
  lm_head_ = w.matrix(prefix + "lm_head.weight", {V, H});
}

void Llama::truncate(int length) {
  VG_CHECK(length >= 0 && length <= length_, "Llama::truncate(", length, ") with ", length_, " cached tokens");
  length_ = length;
}

size_t Llama::cache_bytes() const { return k_cache_.defined() ? k_cache_.nbytes() + v_cache_.nbytes() : 0; }

void Llama::ensure_capacity(int positions) {
  VG_CHECK(positions <= config_.max_positions, "the sequence needs ", positions,
           " positions, more than the model's max_position_embeddings (", config_.max_positions, ")");
  if (positions <= capacity_) return;
  // Grow geometrically (bounded by max_positions) so decoding does not reallocate every token.
  const int capacity = std::min(config_.max_positions, std::max(positions, std::max(256, capacity_ * 2)));
  const int64_t kv_dim = static_cast<int64_t>(config_.kv_heads) * config_.head_dim;
  Tensor k = backend_.empty(DType::F32, {config_.layers, capacity, kv_dim});
  Tensor v = backend_.empty(DType::F32, {config_.layers, capacity, kv_dim});
  if (length_ > 0) {
    backend_.copy(k_cache_.slice(1, 0, length_), k.slice(1, 0, length_));
    backend_.copy(v_cache_.slice(1, 0, length_), v.slice(1, 0, length_));
  }
  k_cache_ = std::move(k);
  v_cache_ = std::move(v);
  capacity_ = capacity;
}

void Llama::embed(const Tensor& ids, const Tensor& out) { backend_.embedding(ids, embed_tokens_, out); }

void Llama::forward(const Tensor& x, const Tensor& hidden, const LayerHook& layer_hook) {
  Backend& b = backend_;
  const int64_t H = config_.hidden;
  VG_CHECK(x.rank() == 2 && x.dim(1) == H && x.dim(0) > 0, "Llama::forward: input ", x.describe(), ", expected [T, ", H,
           "]");
  VG_CHECK(hidden.rank() == 2 && hidden.dim(0) == x.dim(0) && hidden.dim(1) == H, "Llama::forward: output ",
           hidden.describe(), " does not match input ", x.describe());
  const int T = static_cast<int>(x.dim(0));
  const int start = length_;
  ensure_capacity(start + T);

  std::vector<int32_t> pos(T);
  for (int i = 0; i < T; ++i) pos[i] = start + i;
  const Tensor positions = b.upload(Tensor::from_host(DType::I32, {T}, pos.data()));

  const int64_t q_dim = static_cast<int64_t>(config_.heads) * config_.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(config_.kv_heads) * config_.head_dim;
  Tensor h = b.empty(DType::F32, {T, H});  // residual stream
  b.copy(x, h);
  Tensor xn = b.empty(DType::F32, {T, H});
  Tensor q = b.empty(DType::F32, {T, q_dim});
  Tensor attn = b.empty(DType::F32, {T, q_dim});
  Tensor gate = b.empty(DType::F32, {T, config_.intermediate});
  Tensor up = b.empty(DType::F32, {T, config_.intermediate});
  Tensor act = b.empty(DType::F32, {T, config_.intermediate});

  AttentionParams ap;
  ap.q_heads = config_.heads;
  ap.kv_heads = config_.kv_heads;
  ap.head_dim = config_.head_dim;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  ap.mask = AttentionMask::Causal;

  for (int li = 0; li < config_.layers; ++li) {
    const Layer& l = layers_[li];
    const Tensor k_all = k_cache_.select(li);  // [capacity, kv_dim]
    const Tensor v_all = v_cache_.select(li);
    const Tensor k_new = k_all.slice(0, start, start + T);
    const Tensor v_new = v_all.slice(0, start, start + T);

    b.rms_norm(h, l.input_norm.w, config_.rms_eps, xn);
    b.linear(xn, l.q, nullptr, q);
    b.linear(xn, l.k, nullptr, k_new);
    b.linear(xn, l.v, nullptr, v_new);
    b.rope(q, positions, config_.head_dim, config_.rope_theta);
    b.rope(k_new, positions, config_.head_dim, config_.rope_theta);
    b.attention(q.view({1, T, q_dim}), k_all.slice(0, 0, start + T).view({1, start + T, kv_dim}),
                v_all.slice(0, 0, start + T).view({1, start + T, kv_dim}), attn.view({1, T, q_dim}), ap);
    b.linear(attn, l.o, nullptr, h, Activation::None, /*accumulate=*/true);

    b.rms_norm(h, l.post_norm.w, config_.rms_eps, xn);
    b.linear(xn, l.gate, nullptr, gate);
    b.linear(xn, l.up, nullptr, up);
    b.swiglu(gate, up, act);
    b.linear(act, l.down, nullptr, h, Activation::None, /*accumulate=*/true);
    if (layer_hook) layer_hook(li, h);
  }
  b.rms_norm(h, final_norm_.w, config_.rms_eps, hidden);
  length_ = start + T;
}

void Llama::logits(const Tensor& hidden, const Tensor& logits) { backend_.linear(hidden, lm_head_, nullptr, logits); }

}  // namespace vargpt
