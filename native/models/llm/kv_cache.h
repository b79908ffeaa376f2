// Keys and values of one sequence for every layer of a decoder LLM. Owned by the caller, not the
// model: one loaded model runs any number of sequences (a chat and its CFG row, batched requests),
// each with its own cache. Stored in f32, or in bf16 (half the memory, the rounding a bf16
// upstream run has: keys are rounded after RoPE, values after the projection).
#pragma once

#include "../../backend/backend.h"

namespace vargpt {

class KvCache {
 public:
  // Room grows on demand up to max_positions; nothing is allocated before the first append.
  KvCache(Backend& backend, int layers, int64_t kv_dim, int max_positions, DType dtype = DType::F32);

  int length() const { return length_; }  // tokens held (the next token's slot)
  DType dtype() const { return dtype_; }
  void reset() { length_ = 0; }  // forget the contents, keep the memory
  // Drops slots >= length (undo a failed or aborted append).
  void truncate(int length);
  // Makes room for `total` slots (throws past max_positions, naming it).
  void reserve(int total);
  // Marks `count` more slots as filled (after their keys and values were written).
  void advance(int count);
  // [capacity, kv_dim] views of layer `layer`.
  Tensor keys(int layer) const { return k_.select(layer); }
  Tensor values(int layer) const { return v_.select(layer); }

 private:
  Backend& backend_;
  int layers_;
  int64_t kv_dim_;
  int max_positions_;
  DType dtype_;
  Tensor k_, v_;  // [layers, capacity, kv_dim] of dtype_
  int capacity_ = 0;
  int length_ = 0;
};

}  // namespace vargpt
