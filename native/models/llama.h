// Llama decoder (HF LlamaForCausalLM): RMSNorm, rotate-half RoPE, MHA/GQA attention with a KV
// cache, SwiGLU MLP, final RMSNorm, untied lm_head. Written against Backend only.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model_config.h"
#include "weights.h"

namespace vargpt {

class Llama {
 public:
  Llama(const LlamaConfig& config, WeightLoader& weights, const std::string& prefix);

  const LlamaConfig& config() const { return config_; }

  // Tokens currently held by the KV cache (the position of the next token).
  int length() const { return length_; }
  // Forgets the cache contents (keeps the memory).
  void reset() { length_ = 0; }
  // Drops positions >= length (e.g. to undo a failed or aborted append).
  void truncate(int length);

  // out [T, hidden] = embed_tokens[ids]; ids i32 [T] on the backend.
  void embed(const Tensor& ids, const Tensor& out);

  // Runs x [T, hidden] (not modified) at positions length() .. length()+T-1 with the causal mask
  // (each token sees the whole cache and the tokens before it in x), appends its keys and values
  // to the cache, and writes the hidden states after the final RMSNorm to `hidden` [T, hidden]
  // (HF hidden_states[-1]). `layer_hook(i, h)` sees the residual stream after layer i.
  using LayerHook = std::function<void(int layer, const Tensor& h)>;
  void forward(const Tensor& x, const Tensor& hidden, const LayerHook& layer_hook = nullptr);

  // logits [N, vocab] = lm_head(hidden [N, hidden]).
  void logits(const Tensor& hidden, const Tensor& logits);

  // Bytes of KV cache currently allocated.
  size_t cache_bytes() const;

 private:
  struct Layer {
    NormWeights input_norm, post_norm;
    Tensor q, k, v, o, gate, up, down;
  };

  void ensure_capacity(int positions);

  Backend& backend_;
  LlamaConfig config_;
  Tensor embed_tokens_, lm_head_;
  NormWeights final_norm_;
  std::vector<Layer> layers_;
  Tensor k_cache_, v_cache_;  // f32 [layers, capacity, kv_heads * head_dim]
  int capacity_ = 0;
  int length_ = 0;
};

}  // namespace vargpt
