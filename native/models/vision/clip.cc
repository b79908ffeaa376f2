#include "clip.h"

#include <cmath>

#include "../../core/error.h"

namespace vargpt {

ClipVision::ClipVision(const ClipConfig& config, WeightLoader& w, const std::string& prefix)
    : backend_(w.backend()), config_(config) {
  const int64_t D = config.hidden, F = config.intermediate, P = config.patch_size;
  const std::string e = prefix + "embeddings.";
  patch_w_ = w.f32(e + "patch_embedding.weight", {D, config.channels, P, P});
  class_emb_ = w.f32(e + "class_embedding", {D});
  class_emb_ = class_emb_.view({1, D});
  pos_emb_ = w.f32(e + "position_embedding.weight", {config.patches() + 1, D});
  pre_norm_ = w.norm(prefix + "pre_layrnorm", D, true);
  // Only the layers up to vision_feature_layer are ever run, so only those are loaded.
  for (int i = 0; i < config.run_layers; ++i) {
    const std::string p = prefix + "encoder.layers." + std::to_string(i) + ".";
    Layer l;
    l.ln1 = w.norm(p + "layer_norm1", D, true);
    l.q = w.linear(p + "self_attn.q_proj", D, D, true);
    l.k = w.linear(p + "self_attn.k_proj", D, D, true);
    l.v = w.linear(p + "self_attn.v_proj", D, D, true);
    l.out = w.linear(p + "self_attn.out_proj", D, D, true);
    l.ln2 = w.norm(p + "layer_norm2", D, true);
    l.fc1 = w.linear(p + "mlp.fc1", F, D, true);
    l.fc2 = w.linear(p + "mlp.fc2", D, F, true);
    layers_.push_back(std::move(l));
  }
}

void ClipVision::encode(const Tensor& pixels, const Tensor& features, const HiddenHook& hidden_hook) {
  Backend& b = backend_;
  const ClipConfig& c = config_;
  const int64_t S = c.image_size, D = c.hidden, N = c.patches(), T = N + 1, G = c.grid();
  VG_CHECK(pixels.rank() == 3 && pixels.dim(0) == c.channels && pixels.dim(1) == S && pixels.dim(2) == S,
           "CLIP: pixel values ", pixels.describe(), ", expected f32[", c.channels, ", ", S, ", ", S, "]");
  VG_CHECK(features.rank() == 2 && features.dim(0) == c.feature_tokens() && features.dim(1) == D, "CLIP: features ",
           features.describe(), ", expected [", c.feature_tokens(), ", ", D, "]");

  // Embeddings: [class; patches] + positions.
  Tensor grid = b.empty(DType::F32, {D, G, G});
  Conv2dParams patch;
  patch.stride = c.patch_size;
  b.conv2d(pixels, patch_w_, nullptr, patch, grid);
  Tensor emb = b.empty(DType::F32, {T, D});
  b.copy(class_emb_, emb.slice(0, 0, 1));
  b.transpose(grid.view({D, N}), emb.slice(0, 1, T));
  b.add(emb, pos_emb_, emb);
  Tensor h = b.empty(DType::F32, {T, D});  // residual stream
  b.layer_norm(emb, &pre_norm_.w, &pre_norm_.b, c.eps, h);
  if (hidden_hook) hidden_hook(0, h);

  Tensor xn = b.empty(DType::F32, {T, D});
  Tensor q = b.empty(DType::F32, {T, D});
  Tensor k = b.empty(DType::F32, {T, D});
  Tensor v = b.empty(DType::F32, {T, D});
  Tensor attn = b.empty(DType::F32, {T, D});
  Tensor mlp = b.empty(DType::F32, {T, c.intermediate});
  AttentionParams ap;
  ap.q_heads = ap.kv_heads = c.heads;
  ap.head_dim = c.hidden / c.heads;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(ap.head_dim));
  ap.mask = AttentionMask::None;
  for (int li = 0; li < c.run_layers; ++li) {
    const Layer& l = layers_[li];
    b.layer_norm(h, &l.ln1.w, &l.ln1.b, c.eps, xn);
    b.linear(xn, l.q.w, &l.q.b, q);
    b.linear(xn, l.k.w, &l.k.b, k);
    b.linear(xn, l.v.w, &l.v.b, v);
    b.attention(q.view({1, T, D}), k.view({1, T, D}), v.view({1, T, D}), attn.view({1, T, D}), ap);
    b.linear(attn, l.out.w, &l.out.b, h, Activation::None, /*accumulate=*/true);
    b.layer_norm(h, &l.ln2.w, &l.ln2.b, c.eps, xn);
    b.linear(xn, l.fc1.w, &l.fc1.b, mlp, c.act);
    b.linear(mlp, l.fc2.w, &l.fc2.b, h, Activation::None, /*accumulate=*/true);
    if (hidden_hook) hidden_hook(li + 1, h);
  }
  b.copy(c.drop_cls ? h.slice(0, 1, T) : h, features);
}

}  // namespace vargpt
