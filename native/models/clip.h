// CLIP ViT vision tower (HF CLIPVisionModel) as LLaVA uses it: patch conv (no bias) + class
// embedding + position embedding, pre_layrnorm, pre-LN encoder layers; features are
// hidden_states[vision_feature_layer] (no post_layernorm), CLS dropped for the "default" strategy.
// Also the LLaVA multi_modal_projector (linear, GELU, linear).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model_config.h"
#include "weights.h"

namespace vargpt {

class ClipVision {
 public:
  ClipVision(const ClipConfig& config, WeightLoader& weights, const std::string& prefix);

  const ClipConfig& config() const { return config_; }

  // pixels f32 [channels, S, S] (CLIP-normalised) -> features [feature_tokens, hidden].
  // `hidden_hook(i, h)` sees hidden_states[i] ([tokens + 1, hidden]) for i = 0 .. run_layers.
  using HiddenHook = std::function<void(int index, const Tensor& h)>;
  void encode(const Tensor& pixels, const Tensor& features, const HiddenHook& hidden_hook = nullptr);

 private:
  struct Layer {
    NormWeights ln1, ln2;
    LinearWeights q, k, v, out, fc1, fc2;
  };

  Backend& backend_;
  ClipConfig config_;
  Tensor patch_w_;    // [hidden, channels, patch, patch] f32
  Tensor class_emb_;  // [1, hidden] f32
  Tensor pos_emb_;    // [patches + 1, hidden] f32
  NormWeights pre_norm_;
  std::vector<Layer> layers_;
};

// LLaVA multi_modal_projector: y = linear_2(act(linear_1(x))).
class MultiModalProjector {
 public:
  MultiModalProjector(int in, int out, Activation act, WeightLoader& weights, const std::string& prefix);
  // x [N, in] -> y [N, out]
  void run(const Tensor& x, const Tensor& y);

 private:
  Backend& backend_;
  Activation act_;
  LinearWeights l1_, l2_;
};

}  // namespace vargpt
