// The Qwen2-VL vision tower (HF Qwen2VisionTransformerPretrainedModel, spec vargpt-v1.1 §2.3): each
// image arrives as patches of channels x temporal_patch x patch x patch values in the image
// processor's window-major order; a linear patch projection (the Conv3d with kernel = stride),
// 2D RoPE (row and column angles on the two halves of each head's rotated pairs), pre-norm
// blocks with full attention inside each image only, and the PatchMerger (LayerNorm, every 2x2
// window's patches concatenated, MLP to the LLM width).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../../core/json.h"
#include "../common/mlp_projector.h"
#include "../common/weights.h"

namespace vargpt {

struct Qwen2VlVisionConfig {
  int depth = 0, embed_dim = 0, heads = 0, mlp_hidden = 0, channels = 3;
  int patch_size = 14, temporal_patch = 2, merge = 2;
  int out_hidden = 0;  // the merger's output width (the LLM's hidden size)
  Activation act = Activation::QuickGelu;
  float eps = 1e-6f;         // LayerNorm eps of the blocks and the merger (fixed upstream)
  float rope_theta = 10000;  // VisionRotaryEmbedding's theta (fixed upstream)
  int head_dim() const { return embed_dim / heads; }
  int patch_values() const { return channels * temporal_patch * patch_size * patch_size; }
};

// vision_config of config.json, checked against the tensors under `prefix` ("visual.").
Qwen2VlVisionConfig parse_qwen2_vl_vision_config(const Json& vision, const std::string& what, const WeightLoader& w,
                                                 const std::string& prefix);

struct ImageGrid {
  int t = 1, h = 0, w = 0;  // patches along time, rows and columns (h and w multiples of merge)
  int64_t patches() const { return int64_t{t} * h * w; }
};

class Qwen2VlVision {
 public:
  Qwen2VlVision(const Qwen2VlVisionConfig& config, WeightLoader& weights, const std::string& prefix);

  const Qwen2VlVisionConfig& config() const { return config_; }

  // patches [N, patch_values] of every image of a prompt (N = sum of grid patches, in order) ->
  // features [N / merge^2, out_hidden]. Images attend only to themselves.
  struct Hooks {
    std::function<void(const Tensor& patch_embed)> patch_embed;        // [N, embed_dim]
    std::function<void(int block, const Tensor& h)> block_out;         // [N, embed_dim]
  };
  void encode(const Tensor& patches, const std::vector<ImageGrid>& grids, const Tensor& features,
              const Hooks& hooks = {});

 private:
  struct Block {
    NormWeights norm1, norm2;
    LinearWeights qkv, proj, fc1, fc2;
  };

  Backend& backend_;
  Qwen2VlVisionConfig config_;
  Tensor patch_w_;  // [embed_dim, patch_values], stored dtype
  std::vector<Block> blocks_;
  NormWeights merger_norm_;
  MlpProjector merger_mlp_;
};

}  // namespace vargpt
