// Weight pieces the next-scale AdaLN decoders share (VAR, Infinity: both FoundationVision code):
// the packed attention bias whose key part is a zero buffer, the cosine-attention query scale, and
// the split of a packed AdaLN modulation into its chunks.
#pragma once

#include <string>
#include <vector>

#include "../common/weights.h"

namespace vargpt {

// The bias of a fused projection under `prefix`: [q_bias | k | v_bias] with `with_query`, else
// [k | v_bias]; k is `zero_k_bias` when the checkpoint stores it (a zero buffer upstream, read so
// a checkpoint holding something else is still honoured), else zeros. f32 on the backend.
Tensor packed_attention_bias(WeightLoader& weights, const std::string& prefix, int64_t channels, bool with_query);

// Cosine attention's per-head query scale exp(min(scale_mul, ln 100)) from `name` [1, heads, 1, 1]
// (q and k are L2-normalised, so the softmax scale is 1). f32 [heads] on the backend.
Tensor cosine_attention_head_scale(WeightLoader& weights, const std::string& name, int heads);

// `count` contiguous [rows, C] tensors from the column chunks of `packed` [rows, count * C].
std::vector<Tensor> split_chunks(Backend& backend, const Tensor& packed, int count, int64_t C);

}  // namespace vargpt
