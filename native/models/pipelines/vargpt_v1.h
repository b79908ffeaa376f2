// VARGPT v1 (VARGPT_LLaVA-v1, model_type "vargpt_llava"): LLaVA-1.5 understanding and VAR
// text-to-image behind one call. See spec/vargpt-v1.md §3–§4 for the control flow reproduced here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../common/mlp_projector.h"
#include "../common/model.h"
#include "vargpt_v1_config.h"

namespace vargpt {

class VargptV1 final : public Model {
 public:
  // Loads a checkpoint folder (config.json + safetensors, sharded or not) onto `backend`.
  static std::unique_ptr<Model> load(const std::string& dir, std::shared_ptr<Backend> backend,
                                     const LoadProgress& progress, const std::function<bool()>& cancelled,
                                     const LoadOptions& options);
  ~VargptV1() override;

  const char* family() const override { return "vargpt-v1"; }
  const std::string& device() const override { return device_; }
  Info info() const override;
  const VargptConfig& config() const { return config_; }

  std::unique_ptr<Turn> start_turn(GenerateRequest request) override;
  DecoderLlm& text_decoder() override { return *llm_; }

  // Multi-scale VQ-VAE tokens of an image [channels, S, S] in [-1, 1] (img_to_idxBl).
  ImageTokens encode_image_tokens(const float* pixels, int64_t count, int height, int width,
                                  const TokenGrids& scales) override;
  // Image of a full multi-scale index list (idxBl_to_img). `trace` (optional) receives fHat and image.
  RgbImage decode_image_tokens(const ImageTokens& indices, const TokenGrids& scales, TraceList* trace) override;

 private:
  VargptV1() = default;
  class Run;  // one turn (vargpt_v1_run.h)

  std::shared_ptr<Backend> backend_;
  std::string device_;
  VargptConfig config_;
  std::unique_ptr<DecoderLlm> llm_;
  std::unique_ptr<ClipVision> vision_;
  std::unique_ptr<MlpProjector> projector_;
  std::unique_ptr<VarDecoder> var_;
  std::unique_ptr<MlpProjector> gen_in_, gen_out_;
  std::unique_ptr<VqVae> vqvae_;
};

}  // namespace vargpt
