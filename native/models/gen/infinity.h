// Infinity decoder body of VARGPT-v1.1 (tensors under "vargpt_gen."): the attentive pool that turns
// the condition rows into the AdaLN condition, shared-AdaLN blocks (cosine self-attention with 2D
// RoPE over the scales drawn so far, cross-attention to a per-row context, GELU-tanh FFN) and the
// AdaLN head giving two logits per bit.
//
// Everything that belongs to one image lives in the caller's InfinityScaleCache: the AdaLN
// modulation of its condition, the cross-attention keys and values of its two contexts (row 0
// conditional, row 1 unconditional) and the self-attention keys and values of its scales. One
// loaded decoder can therefore draw several images, interleaved.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../common/weights.h"

namespace vargpt {

struct InfinityConfig {
  int depth = 0;          // blocks (block_chunks.{c}.module.{j}, c-major)
  int width = 0;          // C
  int heads = 0, head_dim = 0;
  int mlp_hidden = 0;
  int bits = 0;           // d: bits per token; the head gives 2*d logits
  int context_dim = 0;    // rows fed to the blocks' cross-attention (ca.mat_kv input)
  int text_dim = 0;       // rows fed to text_norm and the attentive pool
  int uncond_rows = 0;    // cfg_uncond rows: the longest unconditional context
  int levels = 0;         // lvl_embed rows: the most scales
  int pool_heads = 0, pool_head_dim = 0;
  float norm_eps = 1e-6f;
  // The 2D RoPE grid every scale is normalised to (the last scale of upstream's '1M' square
  // schedule), and the frequency base.
  int rope_grid_h = 64, rope_grid_w = 64;
  float rope_base = 10000.0f;
  int logits() const { return 2 * bits; }
};

// Sizes from tensor shapes under `prefix` ("vargpt_gen."); throws naming the tensor at fault.
InfinityConfig parse_infinity_config(const WeightLoader& w, const std::string& prefix);

class InfinityDecoder;

// One image being drawn. Made by InfinityDecoder::new_cache(); self-attention memory grows with
// the scales run.
class InfinityScaleCache {
 public:
  // Move-only: a copy would share the key/value storage with the original, and running both would
  // overwrite each other's scales.
  InfinityScaleCache() = default;
  InfinityScaleCache(InfinityScaleCache&&) = default;
  InfinityScaleCache& operator=(InfinityScaleCache&&) = default;
  InfinityScaleCache(const InfinityScaleCache&) = delete;
  InfinityScaleCache& operator=(const InfinityScaleCache&) = delete;

  int length() const { return length_; }  // tokens of the scales already run
  int64_t context_length(int row) const { return ca_len_[row]; }

 private:
  friend class InfinityDecoder;
  uint64_t owner_ = 0;  // the decoder that made it
  DType kv_dtype_ = DType::F32;
  struct Modulation {
    Tensor gamma1, gamma2, scale1, scale2, shift1, shift2;  // [2, C] f32 each
  };
  std::vector<Modulation> mod_;     // per block: ada_gss + shared_ada_lin(cond)
  Tensor head_scale_, head_shift_;  // [2, C] f32
  // Per block and CFG row: cross-attention [k | v] of that row's context, bf16 [L_row, 2C]
  // (upstream rounds q, k and v to bf16 for flash-attn).
  std::vector<Tensor> ca_kv_[2];
  int64_t ca_len_[2] = {0, 0};
  std::vector<Tensor> k_, v_;  // per block: [2, capacity, C] in kv_dtype_
  int64_t capacity_ = 0;
  int length_ = 0;
};

class InfinityDecoder {
 public:
  InfinityDecoder(const InfinityConfig& config, WeightLoader& weights, const std::string& prefix);

  const InfinityConfig& config() const { return config_; }
  // The precision its linear layers run in ("f32", "bf16", "f16", "int8", "q4"; loadModel's weights).
  const char* weights() const { return matrix_weight_precision(head_.w); }

  // The AdaLN condition cond [2, C]: row r is the attentive pool of text_norm(rows_r), rows_r
  // [L_r, text_dim] (VARGPT: the sos embedding row for row 0 and cfg_uncond[0:1] for row 1). The
  // pool runs on bf16-rounded q, k and v with a bf16-rounded output, as upstream's flash-attn call.
  void condition(const Tensor& rows_cond, const Tensor& rows_uncond, const Tensor& cond);
  // out [L, text_dim] = text_norm(rows): the RMS-normalised condition rows the pool reads.
  void text_norm(const Tensor& rows, const Tensor& out);
  // gss [2, 6C] = shared_ada_lin(cond): the modulation every block adds to its own ada_gss.
  void shared_modulation(const Tensor& cond, const Tensor& gss);
  // out [L, context_dim] = cfg_uncond[0:L], the unconditional rows (raw, as upstream feeds them).
  void uncond_rows(int64_t L, const Tensor& out);
  // out [2, C] = cond + pos_start: the scale-0 input before the bridge projects it into the LLM.
  void start_input(const Tensor& cond, const Tensor& out);
  // out [n, C] = word_embed(codes [n, bits]): a scale's codes (tokens in raster order) on their way
  // to the next scale's input.
  void embed_codes(const Tensor& codes, const Tensor& out);
  // x[b, t] += lvl_embed[scale] for x [2, n, C]: upstream adds it once, before the first block.
  void add_level_embedding(int scale, const Tensor& x);

  // A cache for one image: cond [2, C] from condition(); context_cond [L0, context_dim] and
  // context_uncond [L1, context_dim] the cross-attention rows of the two CFG rows. Self-attention
  // keys and values are kept in kv_dtype (F32 or BF16); `reserve` tokens are allocated up front.
  InfinityScaleCache new_cache(const Tensor& cond, const Tensor& context_cond, const Tensor& context_uncond,
                               DType kv_dtype = DType::F32, int64_t reserve = 0);

  // x [2, n, C] (block input of a scale of h x w tokens, raster order; rows conditional,
  // unconditional) through every block, seeing the cached scales and all of this scale, then the
  // head: logits [2, n, 2*bits]. x is overwritten with the last block's output; the scale's keys
  // and values are appended to `cache`.
  using BlockHook = std::function<void(int block, const Tensor& x)>;
  void forward(const Tensor& x, int h, int w, InfinityScaleCache& cache, const Tensor& logits,
               const BlockHook& block_hook = nullptr);

 private:
  struct Block {
    Tensor ada_gss;  // [6C] f32
    MatrixWeight qkv_w;  // [3C, C]; it and the MatrixLinears at the loader's linear precision
    Tensor qkv_bias;     // [3C] f32 = [q_bias | 0 | v_bias]
    Tensor head_scale;   // [H] f32 = exp(min(scale_mul, ln 100))
    MatrixLinear proj, ca_q, ca_kv, ca_proj, fc1, fc2;  // ca_kv.b = [0 | v_bias]
    Tensor ca_norm_w, ca_norm_b;  // [C] f32
  };

  Tensor rope_table(int h, int w);  // [h*w, head_dim] for Backend::rope (interleaved pairs)
  void grow(InfinityScaleCache& cache, int64_t needed);

  Backend& backend_;
  InfinityConfig config_;
  uint64_t id_;
  Tensor cfg_uncond_;   // [uncond_rows, context_dim] f32
  Tensor text_norm_w_;  // [text_dim] f32
  Tensor pool_q_;       // [1, C] bf16
  LinearWeights pool_kv_, pool_proj_;
  Tensor pos_start_;  // [C] f32
  Tensor lvl_embed_;  // [levels, C] stored dtype
  LinearWeights word_embed_;
  MatrixLinear shared_ada_, head_ada_, head_;
  std::vector<Block> blocks_;
  std::vector<float> rope_freq_;  // head_dim / 4 frequencies, shared by the row and column halves
};

}  // namespace vargpt
