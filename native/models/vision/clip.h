// CLIP ViT vision tower (HF CLIPVisionModel) as LLaVA uses it: patch conv (no bias) + class
// embedding + position embedding, pre_layrnorm, pre-LN encoder layers; features are
// hidden_states[vision_feature_layer] (no post_layernorm), CLS dropped for the "default" strategy.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../common/weights.h"

namespace vargpt {

struct ClipConfig {
  int hidden = 0, layers = 0, heads = 0, intermediate = 0, image_size = 0, patch_size = 0, channels = 3;
  float eps = 1e-5f;
  Activation act = Activation::QuickGelu;
  int run_layers = 0;     // encoder layers to run: hidden_states[vision_feature_layer] is their output
  bool drop_cls = true;   // vision_feature_select_strategy "default"
  int grid() const { return image_size / patch_size; }
  int patches() const { return grid() * grid(); }
  int feature_tokens() const { return patches() + (drop_cls ? 0 : 1); }
};


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

}  // namespace vargpt
