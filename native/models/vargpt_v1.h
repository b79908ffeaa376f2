// VARGPT v1 (VARGPT_LLaVA-v1): LLaVA-1.5 understanding and VAR text-to-image behind one call.
// The binding converts JS values into a GenerateRequest and a GenerateResult back; nothing here
// knows about N-API. See spec/vargpt-v1.md §3–§4 for the control flow reproduced here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "clip.h"
#include "llama.h"
#include "model_config.h"
#include "var.h"
#include "vqvae.h"

namespace vargpt {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> data;  // RGB, row-major, 3 bytes per pixel
};

struct ImageRequest {
  float cfg = 1.5f;
  int top_k = 900;
  float top_p = 0.96f;
  uint64_t seed = 0;
  // Replay: when set, indices[si] (pn*pn ids) replace the sampler and noise[si] (pn*pn*hidden
  // floats) the Gaussian draw of the CFG row at scale si, so a recorded run can be reproduced.
  bool replay = false;
  std::vector<std::vector<int32_t>> replay_indices;
  std::vector<std::vector<float>> replay_noise;
};

struct GenerateRequest {
  std::vector<int32_t> input_ids;
  std::vector<Tensor> pixel_values;  // host f32 [channels, S, S], one per run of image tokens
  bool force_image = false;          // emit <|image_gen_start|> as the first new token
  int max_new_tokens = 0;
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;
  bool ignore_eos = false;  // only stop_ids and the budget end text (benchmarks)
  ImageRequest image;
  bool trace = false;
  bool profile = false;
  std::function<bool()> cancelled;  // polled between tokens and between scales
  std::function<void(int32_t token)> on_token;
  // Called after every scale; the preview is a small decode of the current f̂ (see vargpt_v1.cc).
  std::function<void(int scale, int scales, const RgbImage& preview)> on_image_progress;
};

enum class StopReason { Eos, Length, Image };
const char* stop_reason_name(StopReason reason);

struct GenerateResult {
  std::vector<int32_t> tokens;  // new tokens, including <|image_gen_start|> and X when an image was drawn
  StopReason stop = StopReason::Length;
  int32_t token_after_image_start = -1;
  bool has_image = false;
  RgbImage image;
  std::vector<std::pair<std::string, Tensor>> trace;     // host tensors, in recording order
  std::vector<std::pair<std::string, double>> profile;  // stage -> seconds
};

class VargptV1 {
 public:
  using LoadProgress = std::function<void(uint64_t loaded, uint64_t total)>;
  // Loads a checkpoint folder (config.json + safetensors, sharded or not) onto `device`.
  static std::unique_ptr<VargptV1> load(const std::string& dir, const std::string& device, const LoadProgress& progress,
                                        const std::function<bool()>& cancelled);
  ~VargptV1();

  const VargptConfig& config() const { return config_; }
  const std::string& device() const { return device_; }

  GenerateResult generate(const GenerateRequest& request);

  // Multi-scale VQ-VAE tokens of an image [channels, S, S] in [-1, 1] (img_to_idxBl).
  std::vector<std::vector<int32_t>> encode_image_tokens(const float* pixels, int64_t count, int height, int width);
  // Image of a full multi-scale index list (idxBl_to_img). `trace` (optional) receives fHat and image.
  RgbImage decode_image_tokens(const std::vector<std::vector<int32_t>>& indices,
                               std::vector<std::pair<std::string, Tensor>>* trace = nullptr);

 private:
  VargptV1() = default;
  class Run;  // state of one generate() call (vargpt_v1_run.cc)

  std::shared_ptr<Backend> backend_;
  std::string device_;
  VargptConfig config_;
  std::unique_ptr<Llama> llm_;
  std::unique_ptr<ClipVision> vision_;
  std::unique_ptr<MultiModalProjector> projector_;
  std::unique_ptr<VarDecoder> var_;
  std::unique_ptr<GenProjector> gen_in_, gen_out_;
  std::unique_ptr<VqVae> vqvae_;
};

// [-1, 1] image [3, H, W] (host f32) -> RGB bytes: clamp, (x + 1) / 2, × 255, truncated as upstream.
RgbImage to_rgb8(const Tensor& image);
// Host copy of an f32 image clamped to [-1, 1] (upstream fhat_to_img), for traces.
Tensor clamp_image(const Tensor& image);

}  // namespace vargpt
