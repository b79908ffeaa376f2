// VARGPT-v1.1 (model_type "vargpt_qwen2_vl", spec/vargpt-v1.1.md): a Qwen2-VL ViT reads images at
// their own resolution, and a Qwen2 decoder with multimodal RoPE answers. This is the
// understanding half plus, when the checkpoint carries them (vargpt_gen.*, vae_local.*), the
// Infinity image decoder and BSQ VAE that draw an image after <|image_gen_start|>
// (vargpt_v1_1_image.cc).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "../ae/bsq_vae.h"
#include "../common/mlp_projector.h"
#include "../common/model.h"
#include "../gen/infinity.h"
#include "../llm/decoder.h"
#include "../vision/qwen2_vl.h"
#include "qwen_vl_turn.h"

namespace vargpt {

// config.json special_tokens: the image-generation tokens (-1 where absent).
struct ImageGenTokens {
  int start = -1, end = -1, pad = -1;
};

struct VargptV11Config : QwenVlConfig {
  bool has_image_gen = false;  // the checkpoint carries vargpt_gen.* and vae_local.*
  ImageGenTokens gen;
};

// Reads config.json of `dir` (Qwen2 text fields at the root, vision_config, special_tokens) and
// checks it against the tensors.
VargptV11Config load_vargpt_v1_1_config(const std::string& dir, const WeightLoader& weights);

class VargptV11 final : public Model {
 public:
  static std::unique_ptr<Model> load(const std::string& dir, std::shared_ptr<Backend> backend,
                                     const LoadProgress& progress, const std::function<bool()>& cancelled,
                                     const LoadOptions& options);
  ~VargptV11() override;

  const char* family() const override { return "vargpt-v1.1"; }
  const std::string& device() const override { return device_; }
  Info info() const override;
  std::unique_ptr<Turn> start_turn(GenerateRequest request) override;
  DecoderLlm& text_decoder() override { return *llm_; }
  // The BSQ VAE as an image tokenizer: per scale h * w * d bits (0 / 1, bit j of token k at
  // k * d + j) of an image [C, H, W] in [-1, 1], and back to pixels.
  ImageTokens encode_image_tokens(const float* pixels, int64_t count, int height, int width,
                                  const TokenGrids& scales) override;
  RgbImage decode_image_tokens(const ImageTokens& bits, const TokenGrids& scales, TraceList* trace) override;

 private:
  VargptV11() = default;
  class Run;  // state of one generate() call (vargpt_v1_1_run.h)
  void load_image_gen(WeightLoader& w);
  QwenVlParts turn_parts();

  std::shared_ptr<Backend> backend_;
  std::string device_;
  VargptV11Config config_;
  std::unique_ptr<DecoderLlm> llm_;
  std::unique_ptr<Qwen2VlVision> vision_;
  // The drawing half (null without vargpt_gen.* weights).
  std::unique_ptr<InfinityDecoder> infinity_;
  std::unique_ptr<BsqVae> vae_;
  std::unique_ptr<MlpProjector> gen_in_, gen_out_;  // image_gen_projector, image_gen_projector_out
  Tensor sos_row_;  // [1, text_dim] f32: sos_embedding[<|image_gen_start|>], the AdaLN condition's source
};

}  // namespace vargpt
