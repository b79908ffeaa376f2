// The Lumina-Next DiT with cross-attention to a caption (BLIP3-o's NextDiTCrossAttn, tensors under
// "model.dit.model."): patch-1 token projection, caption projection and pooling, timestep
// embedding, sandwich-norm AdaLN blocks (scale-only RMSNorm modulation, q/k LayerNorm over all
// heads, complex-interleaved 2D RoPE, self-attention plus a per-head tanh-gated cross-attention
// sharing one output projection, SwiGLU), the scale-only final AdaLN and the unpatchify.
//
// What depends only on the caption (its projection, the caption half of the conditioning, each
// block's cross-attention keys and values) is computed once into a caller-owned LuminaDitContext,
// so a sampler's steps run only the timestep half and the image path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../common/trace.h"
#include "../common/weights.h"

namespace vargpt {

struct LuminaDitConfig {
  int dim = 0;          // D: token width
  int layers = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  int ffn_hidden = 0;   // SwiGLU inner width
  int in_channels = 0;  // latent channels per token (patch size 1)
  int out_channels = 0;
  int caption_dim = 0;  // width of the context rows
  int temb_dim = 0;     // conditioning width
  int freq_dim = 0;     // timestep sinusoid width
  // Block RMSNorms, q/k LayerNorms and the caption LayerNorm use norm_eps; the final LayerNorm
  // out_eps (upstream constants, not stored in the checkpoint).
  float norm_eps = 1e-5f;
  float out_eps = 1e-6f;
  float rope_theta = 10000.0f;
};

// Sizes from tensor shapes under `prefix`; throws naming the tensor at fault.
LuminaDitConfig parse_lumina_dit_config(const WeightLoader& w, const std::string& prefix);

class LuminaDit;

// The caption side of a batch of B rows: made by LuminaDit::prepare(), reused by every step.
class LuminaDitContext {
 public:
  LuminaDitContext() = default;
  LuminaDitContext(LuminaDitContext&&) = default;
  LuminaDitContext& operator=(LuminaDitContext&&) = default;
  LuminaDitContext(const LuminaDitContext&) = delete;
  LuminaDitContext& operator=(const LuminaDitContext&) = delete;

  int64_t batch() const { return batch_; }
  int64_t length() const { return length_; }

 private:
  friend class LuminaDit;
  uint64_t owner_ = 0;
  int64_t batch_ = 0, length_ = 0;
  Tensor caption_temb_;      // [B, temb] f32: caption_embedder(mean of the projected caption)
  std::vector<Tensor> k_, v_;  // per block: [B, Q, kv_heads * head_dim] f32, keys after norm_k
};

class LuminaDit {
 public:
  LuminaDit(const LuminaDitConfig& config, WeightLoader& weights, const std::string& prefix);

  const LuminaDitConfig& config() const { return config_; }
  // The precision its linear layers run in ("f32", "bf16", "f16", "int8", "q4"; loadModel's weights).
  // (parse_lumina_dit_config requires at least one block.)
  const char* weights() const { return matrix_weight_precision(blocks_.front().w1); }

  // context [B, Q, caption_dim] f32 -> the cached caption side. Traces caption_projection,
  // caption_embedder and b0.norm1_context.
  LuminaDitContext prepare(const Tensor& context, TraceSink* trace = nullptr);

  // One call: x [B, in_channels, g, g] f32, timesteps B integers (the sinusoid reads them as
  // floats), v [B, out_channels, g, g] f32. Traces the dit_step names of the fixture.
  void forward(const Tensor& x, const std::vector<int64_t>& timesteps, const LuminaDitContext& context,
               const Tensor& v, TraceSink* trace = nullptr);

  // Host f32 [g*g, head_dim] table for Backend::rope (interleaved pairs): pair 2k turns by the row
  // times theta_k, pair 2k+1 by the column times theta_k.
  Tensor rope_table(int grid) const;

 private:
  struct Block {
    MatrixLinear ada;  // norm1.linear: [4D, temb] -> scale_msa, gate_msa, scale_mlp, gate_mlp
    Tensor norm1_w, ffn_norm1_w, norm2_w, ffn_norm2_w, context_norm_w;  // RMSNorm weights f32
    MatrixWeight q1, k1, v1, q2, k2, v2, out;  // projections, no bias (all at the loader's linear precision)
    NormWeights q1_norm, k1_norm, q2_norm, k2_norm;                      // LayerNorms over all heads
    Tensor gate_tanh;  // [heads, 1] f32: tanh of the per-head cross-attention gate
    MatrixWeight w1, w2, w3;  // SwiGLU: w2(silu(w1 x) * w3 x)
  };

  Backend& backend_;
  LuminaDitConfig config_;
  uint64_t id_;
  LinearWeights patch_, cap1_, cap2_, t1_, t2_, cap_embed_, out_ada_, out_proj_;
  NormWeights cap_norm_;
  std::vector<Block> blocks_;
};

}  // namespace vargpt
