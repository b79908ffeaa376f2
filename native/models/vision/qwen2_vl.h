// The Qwen2-VL vision tower (HF Qwen2VisionTransformerPretrainedModel, spec vargpt-v1.1 §2.3): each
// image arrives as patches of channels x temporal_patch x patch x patch values in the image
// processor's window-major order; a linear patch projection (the Conv3d with kernel = stride),
// 2D RoPE (row and column angles on the two halves of each head's rotated pairs), pre-norm
// blocks with full attention inside each frame only, and the PatchMerger (LayerNorm, every 2x2
// window's patches concatenated, MLP to the LLM width).
//
// The Qwen2.5-VL tower (HF Qwen2_5_VisionTransformerPretrainedModel, BLIP3-o's understanding
// encoder) is the same graph with RMSNorm in place of LayerNorm, a gated MLP (gate/up/down) and
// window attention: the merged tokens are permuted into square windows of window_size pixels, the
// blocks run in that order, attending within each window except the fullatt_block_indexes blocks
// (whole frame), and only the merger output is put back in the original order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../../core/json.h"
#include "../common/mlp_projector.h"
#include "../common/weights.h"

namespace vargpt {

enum class Qwen2VlVariant : uint8_t { Qwen2Vl, Qwen25Vl };

struct Qwen2VlVisionConfig {
  Qwen2VlVariant variant = Qwen2VlVariant::Qwen2Vl;
  int depth = 0, embed_dim = 0, heads = 0, mlp_hidden = 0, channels = 3;
  int patch_size = 14, temporal_patch = 2, merge = 2;
  int out_hidden = 0;  // the merger's output width (the LLM's hidden size)
  Activation act = Activation::QuickGelu;
  float eps = 1e-6f;         // LayerNorm / RMSNorm eps of the blocks and the merger (fixed upstream)
  float rope_theta = 10000;  // VisionRotaryEmbedding's theta (fixed upstream)
  // Qwen2.5-VL only: window side in merged tokens (window_size / patch / merge, floored as
  // upstream) and the blocks that attend over the whole frame instead of within windows.
  int window_merged = 0;
  std::vector<int> full_attention_blocks;
  bool windowed() const { return variant == Qwen2VlVariant::Qwen25Vl; }
  int head_dim() const { return embed_dim / heads; }
  int patch_values() const { return channels * temporal_patch * patch_size * patch_size; }
};

// vision_config of config.json, checked against the tensors under `prefix` ("visual."). The
// variant follows the tensors: a gated MLP (mlp.gate_proj) is Qwen2.5-VL, fc1/fc2 Qwen2-VL.
Qwen2VlVisionConfig parse_qwen2_vl_vision_config(const Json& vision, const std::string& what, const WeightLoader& w,
                                                 const std::string& prefix);

struct ImageGrid {
  int t = 1, h = 0, w = 0;  // patches along time, rows and columns (h and w multiples of merge)
  int64_t patches() const { return int64_t{t} * h * w; }
};

// Qwen2.5-VL's window layout (transformers get_window_index) for the images of one call: each
// frame's grid of merged tokens is cut into window_merged-square windows from the top left (the
// last row and column of windows partial), windows in raster order, tokens in raster order inside.
struct VisionWindows {
  std::vector<int32_t> index;       // [N / merge^2]: window-order position -> original merged token
  std::vector<int64_t> cu_seqlens;  // patch offsets of the windows, starting at 0, empty windows dropped
};
VisionWindows qwen25_vl_windows(const std::vector<ImageGrid>& grids, int merge, int window_merged);

class Qwen2VlVision {
 public:
  Qwen2VlVision(const Qwen2VlVisionConfig& config, WeightLoader& weights, const std::string& prefix);

  const Qwen2VlVisionConfig& config() const { return config_; }

  // patches [N, patch_values] of every image of a prompt (N = sum of grid patches, in order) ->
  // features [N / merge^2, out_hidden] in the original order. Images attend only to themselves.
  struct Hooks {
    std::function<void(const Tensor& patch_embed)> patch_embed;        // [N, embed_dim], original order
    std::function<void(int block, const Tensor& h)> block_out;         // [N, embed_dim], window order if windowed
    std::function<void(const VisionWindows& windows)> windows;         // windowed only
    std::function<void(const Tensor& features)> merger_windowed;       // windowed only, window order
  };
  void encode(const Tensor& patches, const std::vector<ImageGrid>& grids, const Tensor& features,
              const Hooks& hooks = {});

 private:
  struct Block {
    NormWeights norm1, norm2;
    LinearWeights qkv, proj;
    LinearWeights fc1, fc2;         // Qwen2-VL: fc2(act(fc1 x))
    LinearWeights gate, up, down;   // Qwen2.5-VL: down(act(gate x) * up x)
  };
  void norm(const NormWeights& n, const Tensor& x, const Tensor& y) const;

  Backend& backend_;
  Qwen2VlVisionConfig config_;
  Tensor patch_w_;  // [embed_dim, patch_values], stored dtype
  std::vector<Block> blocks_;
  NormWeights merger_norm_;
  MlpProjector merger_mlp_;
};

}  // namespace vargpt
