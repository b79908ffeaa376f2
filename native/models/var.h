// VAR decoder body of VARGPT v1 (VAR_VAE_v1): token-map embedding (word_embed + level and
// position embeddings, SOS), AdaLN self-attention blocks with a per-scale KV cache for both CFG
// rows, the AdaLN head; and the two GenPatchMerger projectors between VAR width and LLM width.
//
// The AdaLN condition is the constant null-class row class_emb[image_gen_start_token_id + 1] for
// both CFG rows, so every block's six modulation vectors (and the head's two) are computed once
// at load time.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model_config.h"
#include "weights.h"

namespace vargpt {

class VarDecoder {
 public:
  VarDecoder(const VarConfig& config, WeightLoader& weights, const std::string& prefix);

  const VarConfig& config() const { return config_; }

  // Empties the KV caches (allocated on first use: depth x 2 x [2, total_tokens, width] f32).
  void reset();
  int length() const { return length_; }

  // out [1, width] = class_emb[null] + pos_start + lvl_embed[0] + pos_1LC[0] (scale-0 input).
  void sos(const Tensor& out);
  // out [pn*pn, width] = word_embed(map [pn*pn, cvae]) + lvl_embed[si] + pos_1LC[tokens of scale si].
  void embed_scale(int si, const Tensor& map_tokens, const Tensor& out);

  // x [2, l, width] (rows: conditional, unconditional) through every block, attending to the
  // cached keys/values of earlier scales plus all of this scale's tokens (block-causal), then
  // the AdaLN head: logits [2, l, vocab]. x is overwritten with the last block's output.
  using BlockHook = std::function<void(int block, const Tensor& x)>;
  void forward(const Tensor& x, const Tensor& logits, const BlockHook& block_hook = nullptr);

 private:
  struct Block {
    Tensor qkv_w;     // [3C, C] stored dtype
    Tensor qkv_bias;  // [3C] f32 = [q_bias | 0 | v_bias]
    Tensor head_scale;  // [H] f32 = exp(min(scale_mul, ln 100))
    LinearWeights proj, fc1, fc2;
    Tensor gamma1, gamma2, scale1, scale2, shift1, shift2;  // [2, C] f32 each
    Tensor k_cache, v_cache;  // [2, total_tokens, C]
  };

  Backend& backend_;
  VarConfig config_;
  LinearWeights word_embed_;
  Tensor sos_;      // [1, C] f32: class_emb[null] + pos_start + lvl_pos[0]
  Tensor lvl_pos_;  // [total_tokens, C] f32: lvl_embed[lvl_1L] + pos_1LC
  std::vector<Block> blocks_;
  Tensor head_scale_, head_shift_;  // [2, C]
  LinearWeights head_;
  int length_ = 0;
};

// GenPatchMerger as VARGPT uses it: y = mlp.2(GELU_erf(mlp.0(x))); ln_q exists but is not applied.
class GenProjector {
 public:
  GenProjector(int in, int out, WeightLoader& weights, const std::string& prefix);
  // x [..., in] -> y [..., out]
  void run(const Tensor& x, const Tensor& y);
  int in() const { return static_cast<int>(l0_.in()); }
  int out() const { return static_cast<int>(l2_.out()); }

 private:
  Backend& backend_;
  LinearWeights l0_, l2_;
};

}  // namespace vargpt
