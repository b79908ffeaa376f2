// VARGPT-v1.1 (model_type "vargpt_qwen2_vl", spec/vargpt-v1.1.md): a Qwen2-VL ViT reads images at
// their own resolution, and a Qwen2 decoder with multimodal RoPE answers. This is the
// understanding half; the checkpoint's Infinity image decoder and BSQ VAE (vargpt_gen.*,
// vae_local.*) are reported by info() but not loaded, and a turn that reaches
// <|image_gen_start|> ends there.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "../common/model.h"
#include "../llm/decoder.h"
#include "../vision/qwen2_vl.h"

namespace vargpt {

struct VargptV11Tokens {
  int bos = -1, image = -1, video = -1, vision_start = -1, vision_end = -1;
  int image_gen_start = -1, image_gen_end = -1, image_gen_pad = -1;
  std::vector<int> eos_all;  // every id config.json calls EOS
};

struct VargptV11Config {
  DecoderConfig llm;
  bool has_vision = false;
  Qwen2VlVisionConfig vision;
  bool has_image_gen = false;  // the checkpoint carries vargpt_gen.* and vae_local.*
  VargptV11Tokens tokens;
};

// Reads config.json of `dir` (Qwen2 text fields at the root, vision_config, special_tokens) and
// checks it against the tensors.
VargptV11Config load_vargpt_v1_1_config(const std::string& dir, const WeightLoader& weights);

class VargptV11 final : public Model {
 public:
  static std::unique_ptr<Model> load(const std::string& dir, std::shared_ptr<Backend> backend,
                                     const LoadProgress& progress, const std::function<bool()>& cancelled);
  ~VargptV11() override;

  const char* family() const override { return "vargpt-v1.1"; }
  const std::string& device() const override { return device_; }
  Info info() const override;
  GenerateResult generate(const GenerateRequest& request) override;

 private:
  VargptV11() = default;
  class Run;  // state of one generate() call (vargpt_v1_1_run.h)

  std::shared_ptr<Backend> backend_;
  std::string device_;
  VargptV11Config config_;
  std::unique_ptr<DecoderLlm> llm_;
  std::unique_ptr<Qwen2VlVision> vision_;
};

}  // namespace vargpt
