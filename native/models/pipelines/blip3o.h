// BLIP3-o (model_type "blip3o_qwen", spec/blip3o.md): a frozen Qwen2.5-VL reads images and answers,
// and (in the release) 64 learned queries after [IMG] condition a flow-matching DiT into CLIP
// space, decoded to pixels by an SDXL-layout UNet and VAE. This pipeline runs the understanding
// half: the Qwen2.5-VL vision tower and the Qwen2.5 decoder with multimodal RoPE through a
// Qwen-VL turn. The DiT (gen/lumina_dit.h), the flow sampler (gen/flow_match.h) and the pixel
// decoder (diffusion/) are not wired into it yet: requests to draw are refused.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "../common/model.h"
#include "qwen_vl_turn.h"

namespace vargpt {

class Blip3o final : public Model {
 public:
  static std::unique_ptr<Model> load(const std::string& dir, std::shared_ptr<Backend> backend,
                                     const LoadProgress& progress, const std::function<bool()>& cancelled);

  const char* family() const override { return "blip3o"; }
  const std::string& device() const override { return device_; }
  Info info() const override;
  GenerateResult generate(const GenerateRequest& request) override;

 private:
  Blip3o() = default;

  std::shared_ptr<Backend> backend_;
  std::string device_;
  QwenVlConfig config_;
  int n_query_ = 0;  // config.json n_query: the learned queries after [IMG]
  std::unique_ptr<DecoderLlm> llm_;
  std::unique_ptr<Qwen2VlVision> vision_;
};

}  // namespace vargpt
