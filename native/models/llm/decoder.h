// Decoder-only LLM of the Llama / Qwen2 / Qwen2.5 kind (HF LlamaForCausalLM, Qwen2ForCausalLM and
// the text part of Qwen2-VL / Qwen2.5-VL): RMSNorm, RoPE (1D or M-RoPE) from a host-computed table,
// MHA/GQA attention with optional q/k/v bias, SwiGLU MLP, final RMSNorm, lm_head or tied
// embeddings. Holds weights only: the KV cache is the caller's (KvCache), positions are explicit.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../../core/json.h"
#include "../common/info.h"
#include "../common/weights.h"
#include "kv_cache.h"

namespace vargpt {

struct DecoderConfig {
  std::string prefix;  // tensor names: prefix + "model.layers.N...", prefix + "lm_head.weight"
  int hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  int max_positions = 0;
  float rms_eps = 1e-6f;
  float rope_theta = 10000.0f;
  std::vector<int> mrope_sections;  // empty: 1D RoPE; else M-RoPE pairs per position axis (t, h, w)
  bool qkv_bias = false;            // Qwen2: q_proj, k_proj and v_proj carry a bias
  bool tied_embeddings = false;     // lm_head is embed_tokens
  int position_axes() const { return mrope_sections.empty() ? 1 : static_cast<int>(mrope_sections.size()); }
  int64_t q_dim() const { return static_cast<int64_t>(heads) * head_dim; }
  int64_t kv_dim() const { return static_cast<int64_t>(kv_heads) * head_dim; }
};

// Reads a Llama / Qwen2 text config (`text` is config.json or its text_config) and checks it
// against the checkpoint's tensors under `prefix`: the layer count, q/k/v biases and lm_head.
DecoderConfig parse_decoder_config(const Json& text, const std::string& what, const WeightLoader& weights,
                                   const std::string& prefix);

// Token positions for one forward call: `axes` rows of T ids, axis-major (1 row for 1D RoPE,
// 3 for M-RoPE's t, h, w). One row is accepted by an M-RoPE model and used for every axis (text).
struct Positions {
  int axes = 1;
  std::vector<int32_t> ids;
  int64_t count() const { return axes > 0 ? static_cast<int64_t>(ids.size()) / axes : 0; }
  static Positions sequential(int start, int count);  // start, start + 1, ...
};

// One sequence's row of a batched decode step: its next token, that token's positions (one token)
// and the sequence's own cache, which receives the token's keys and values.
struct DecodeRow {
  int32_t token = 0;
  Positions positions;
  KvCache* cache = nullptr;
};

class DecoderLlm {
 public:
  DecoderLlm(const DecoderConfig& config, WeightLoader& weights);

  const DecoderConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  // An empty cache for one sequence of this model (f32 or bf16).
  KvCache new_cache(DType dtype = DType::F32) const;

  // out [T, hidden] = embed_tokens[ids]; ids i32 [T] on the backend.
  void embed(const Tensor& ids, const Tensor& out);

  // Runs x [T, hidden] (not modified) at `positions` with the causal mask. With a cache, the
  // tokens see everything it holds and each other causally, and their keys and values are
  // appended to it; without one (nullptr) they see only each other (in f32). Writes the hidden states
  // after the final RMSNorm to `hidden` [T, hidden] (HF hidden_states[-1]). `layer_hook(i, h)`
  // sees the residual stream after layer i. `hidden_tail_keys` (without a cache only): the last n
  // tokens' keys are hidden from every query, as an attention mask n entries shorter than the
  // sequence is read once padded with zeros (BLIP3-o's generate_image under transformers >= 4.53).
  using LayerHook = std::function<void(int layer, const Tensor& h)>;
  void forward(const Tensor& x, const Positions& positions, KvCache* cache, const Tensor& hidden,
               const LayerHook& layer_hook = nullptr, int hidden_tail_keys = 0);

  // logits [N, vocab] = lm_head(hidden [N, hidden]).
  void logits(const Tensor& hidden, const Tensor& logits);

  // One decode step: `token` at `positions` (one token) after what `cache` holds; returns its
  // logits [1, vocab].
  Tensor next_logits(int32_t token, const Positions& positions, KvCache& cache);

  // One decode step of several sequences at once (continuous batching): row i feeds rows[i].token
  // after what rows[i].cache holds. The projections and the MLP run on all rows together, so each
  // weight is read from memory once per step for the whole batch, while attention reads only the
  // row's own cache. Writes the final-norm hidden states [N, hidden] and logits [N, vocab]. The
  // GEMM computes every row independently of the others (same kernels, same summation order up to
  // kSmallRows rows), so a row's result is bit for bit the one it gets decoded alone; that is why
  // next_logits() runs through here too. Throws before computing anything if a cache is full; on a
  // failure nothing is appended to any cache.
  void decode_step(const std::vector<DecodeRow>& rows, const Tensor& hidden, const Tensor& logits);

  // Sizes for Model::info() ("llm": hiddenSize, layers, heads, ...).
  Info info() const;

 private:
  struct Layer {
    NormWeights input_norm, post_norm;
    MatrixWeight q, k, v, o, gate, up, down;
    Tensor q_bias, k_bias, v_bias;  // f32, undefined without qkv_bias
  };

  // Per-call buffers of one forward pass over `rows` tokens.
  struct Scratch {
    Tensor xn, q, attn, gate, up, act;
  };
  Scratch scratch(int64_t rows) const;
  AttentionParams attention_params() const;
  // Input norm, q/k/v projections and RoPE of one layer: q into sc.q, keys and values into k, v.
  void project_qkv(const Layer& l, const Tensor& h, const Tensor& table, const Scratch& sc, const Tensor& k,
                   const Tensor& v);
  // The rest of the layer after attention (in sc.attn): o-projection and the MLP, added to h.
  void finish_layer(const Layer& l, const Tensor& h, const Scratch& sc);

  Backend& backend_;
  DecoderConfig config_;
  std::vector<float> inv_freq_;
  std::vector<int> axis_of_pair_;
  Tensor embed_tokens_;
  MatrixWeight lm_head_;  // embed_tokens_ itself when tied (never quantized: it is also the embedding)
  NormWeights final_norm_;
  std::vector<Layer> layers_;
};

}  // namespace vargpt
