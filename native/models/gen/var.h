// VAR decoder body of VARGPT v1 (VAR_VAE_v1): token-map embedding (word_embed + level and
// position embeddings, SOS), AdaLN self-attention blocks attending to earlier scales through a
// caller-owned scale cache (both CFG rows), and the AdaLN head.
//
// The AdaLN condition is the constant null-class row class_emb[image_gen_start_token_id + 1] for
// both CFG rows, so every block's six modulation vectors (and the head's two) are computed once
// at load time.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../common/weights.h"

namespace vargpt {

struct VarConfig {
  int depth = 0, width = 0, heads = 0, head_dim = 0, mlp_hidden = 0;
  int vocab = 0, cvae = 0, class_rows = 0, null_class = 0;
  std::vector<int> patch_nums;
  int total_tokens = 0;  // sum of pn^2
  int scales() const { return static_cast<int>(patch_nums.size()); }
  int begin(int si) const;  // first token of scale si
};

// Keys and values of the scales drawn so far, per block, for both CFG rows: one per image being
// drawn. Created by VarDecoder::new_cache(); memory is allocated on the first forward.
class VarScaleCache {
 public:
  int length() const { return length_; }  // tokens of the scales already run

 private:
  friend class VarDecoder;
  std::vector<Tensor> k_, v_;  // per block: f32 [2, total_tokens, width]
  int length_ = 0;
};

class VarDecoder {
 public:
  VarDecoder(const VarConfig& config, WeightLoader& weights, const std::string& prefix);

  const VarConfig& config() const { return config_; }
  // The precision its linear layers run in ("f32", "bf16", "f16", "int8", "q4"; loadModel's weights).
  const char* weights() const { return matrix_weight_precision(head_.w); }

  VarScaleCache new_cache() const { return VarScaleCache(); }

  // out [1, width] = class_emb[null] + pos_start + lvl_embed[0] + pos_1LC[0] (scale-0 input).
  void sos(const Tensor& out);
  // out [pn*pn, width] = word_embed(map [pn*pn, cvae]) + lvl_embed[si] + pos_1LC[tokens of scale si].
  void embed_scale(int si, const Tensor& map_tokens, const Tensor& out);

  // x [2, l, width] (rows: conditional, unconditional) through every block, attending to the
  // cached keys/values of earlier scales plus all of this scale's tokens (block-causal), then
  // the AdaLN head: logits [2, l, vocab]. x is overwritten with the last block's output; the
  // scale's keys and values are appended to `cache`.
  using BlockHook = std::function<void(int block, const Tensor& x)>;
  void forward(const Tensor& x, VarScaleCache& cache, const Tensor& logits, const BlockHook& block_hook = nullptr);

 private:
  struct Block {
    MatrixWeight qkv_w;  // [3C, C] at the loader's linear precision, as are proj, fc1, fc2 and head_
    Tensor qkv_bias;     // [3C] f32 = [q_bias | 0 | v_bias]
    Tensor head_scale;   // [H] f32 = exp(min(scale_mul, ln 100))
    MatrixLinear proj, fc1, fc2;
    Tensor gamma1, gamma2, scale1, scale2, shift1, shift2;  // [2, C] f32 each
  };

  Backend& backend_;
  VarConfig config_;
  LinearWeights word_embed_;
  Tensor sos_;      // [1, C] f32: class_emb[null] + pos_start + lvl_pos[0]
  Tensor lvl_pos_;  // [total_tokens, C] f32: lvl_embed[lvl_1L] + pos_1LC
  std::vector<Block> blocks_;
  Tensor head_scale_, head_shift_;  // [2, C]
  MatrixLinear head_;
};

}  // namespace vargpt
