// VARGPT v1 hyper-parameters. The LLM and vision sizes come from config.json (checked against the
// tensor shapes by the loaders); the VAR decoder and VQ-VAE sizes are not in config.json (upstream
// hard-codes them), so they are derived from tensor shapes. Nothing here is model-size specific.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../backend/backend.h"
#include "../core/json.h"
#include "weights.h"

namespace vargpt {

struct LlamaConfig {
  int hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  int max_positions = 0;
  float rms_eps = 1e-6f;
  float rope_theta = 10000.0f;
};

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

struct ProjectorConfig {
  Activation act = Activation::GeluErf;
};

struct VarConfig {
  int depth = 0, width = 0, heads = 0, head_dim = 0, mlp_hidden = 0;
  int vocab = 0, cvae = 0, class_rows = 0, null_class = 0;
  std::vector<int> patch_nums;
  int total_tokens = 0;  // sum of pn^2
  int scales() const { return static_cast<int>(patch_nums.size()); }
  int begin(int si) const;  // first token of scale si
};

struct VqvaeConfig {
  int ch = 0, z_channels = 0, vocab = 0, in_channels = 3;
  int dec_blocks = 0, enc_blocks = 0;  // res blocks per level (decoder has num_res_blocks + 1)
  std::vector<int> ch_mult;
  std::vector<bool> dec_attn, enc_attn;  // attention after each block of that level
  bool dec_mid_attn = false, enc_mid_attn = false;
  bool has_encoder = false;
  int phi_count = 0;
  std::vector<int> phi_index;  // scale -> phi conv
  int downsample() const { return 1 << (static_cast<int>(ch_mult.size()) - 1); }
};

struct TokenIds {
  int bos = 1, eos = 2, image = -1, image_gen_start = -1, image_gen_end = -1, image_gen_pad = -1;
  std::vector<int> eos_all;  // every id config.json calls EOS
};

struct VargptConfig {
  LlamaConfig llm;
  bool has_vision = false;
  ClipConfig vision;
  ProjectorConfig projector;
  bool has_image_gen = false;
  VarConfig var;
  VqvaeConfig vqvae;
  TokenIds tokens;
};

// φ selection of VAR's quantizer (PhiPartiallyShared / PhiNonShared): scale si of SN uses conv
// argmin_k |tick_k - si/(SN-1)|, ticks = numpy.linspace(1/(3K), 1-1/(3K), K) when K == 4, else
// linspace(1/(2K), 1-1/(2K), K), evaluated in double as numpy does (ties are decided by rounding).
std::vector<int> phi_index_map(int phi_count, int scales);

// Reads config.json of `dir` and derives the rest from the checkpoint's tensor shapes.
VargptConfig load_vargpt_config(const std::string& dir, const WeightLoader& weights);

}  // namespace vargpt
