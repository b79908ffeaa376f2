// BLIP3-o (model_type "blip3o_qwen", spec/blip3o.md): a frozen Qwen2.5-VL reads images and answers;
// to draw, the learned queries after [IMG] give the LLM's final-norm hidden states, which
// condition a Lumina-Next DiT sampled by flow matching into a grid of CLIP features (stage 1); an
// SDXL-layout UNet sampled with EulerDiscrete and the SDXL VAE decoder turn those into pixels
// (stage 2, the checkpoint's diffusion-decoder/ folder).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../common/model.h"
#include "../diffusion/diffusion_decoder.h"
#include "../gen/lumina_dit.h"
#include "qwen_vl_turn.h"

namespace vargpt {

class Blip3o final : public Model {
 public:
  static std::unique_ptr<Model> load(const std::string& dir, std::shared_ptr<Backend> backend,
                                     const LoadProgress& progress, const std::function<bool()>& cancelled,
                                     const LoadOptions& options);

  const char* family() const override { return "blip3o"; }
  const std::string& device() const override { return device_; }
  Info info() const override;
  std::unique_ptr<Turn> start_turn(GenerateRequest request) override;
  DecoderLlm& text_decoder() override { return *llm_; }

  // The drawing options of one request, checked (blip3o_draw.cc).
  struct DrawOptions {
    int flow_steps = 0;
    float flow_guidance = 0;
    double flow_shift = 0;
    int flow_train_timesteps = 0;
    int grid = 0;  // the DiT's token grid: grid x grid CLIP features
    int steps = 0;
    float guidance = 0;
    int width = 0, height = 0;
    std::vector<int32_t> negative_ids;  // the negative prompt, ending with [IMG]
    // No query sees the last one's key: generate_image's attention mask is one entry short (it
    // does not count the appended [IMG]); transformers 4.51 under SDPA ignores an all-ones mask,
    // later versions pad it with a zero.
    bool mask_last_query = false;
  };

 private:
  Blip3o() = default;
  class Draw;      // one drawing (blip3o_draw.cc)
  class TextTurn;  // a turn that answers (blip3o.cc)
  class DrawTurn;  // a turn that draws (blip3o_draw.cc)
  std::unique_ptr<Turn> draw_turn(GenerateRequest request);  // blip3o_draw.cc

  QwenVlParts turn_parts();
  bool draws() const { return dit_ != nullptr && decoder_ != nullptr; }
  // Pixel sizes must be multiples of this: the VAE's downsampling times the UNet's.
  int size_multiple() const;

  std::shared_ptr<Backend> backend_;
  std::string device_;
  QwenVlConfig config_;
  int n_query_ = 0;  // config.json n_query: the learned queries after [IMG]
  std::unique_ptr<DecoderLlm> llm_;
  std::unique_ptr<Qwen2VlVision> vision_;
  Tensor latent_queries_;  // [n_query, hidden] f32: model.latent_queries
  std::unique_ptr<LuminaDit> dit_;
  std::unique_ptr<DiffusionDecoder> decoder_;
  std::string missing_for_drawing_;  // why this checkpoint cannot draw (empty when it can)

  // The " " negative's CLIP features, computed once per loaded model as upstream's pipeline caches
  // them, for the stage-1 settings they were computed with.
  struct NegativeCache {
    int flow_steps = 0, grid = 0, flow_train_timesteps = 0;
    bool mask_last_query = false;
    float flow_guidance = 0;
    double flow_shift = 0;
    std::vector<int32_t> ids;
    Tensor clip_features;  // [grid², clip width] on the backend
    bool matches(const DrawOptions& o) const;
  };
  std::optional<NegativeCache> negative_;
};

}  // namespace vargpt
