// Rotary position tables built on the host for Backend::rope: one row per token holding
// cos | sin of its angles. A family describes its positions (1D, M-RoPE's t/h/w, 2D grids) and
// which position axis each rotated pair reads; the kernels never know the scheme.
#pragma once

#include <cstdint>
#include <vector>

#include "../../backend/backend.h"

namespace vargpt {

// inv_freq[j] = 1 / theta^(2j / D), j < D/2, in f32 as Hugging Face computes it (theta ** (2j / D)
// in float), so long positions round the same way as the reference.
std::vector<float> rope_inv_freq(float theta, int head_dim);

// Pair j of head_dim/2 reads position axis axis_of_pair[j]. M-RoPE sections [s0, s1, s2] (summing
// to D/2) give s0 pairs of axis 0 (t), then s1 of axis 1 (h), then s2 of axis 2 (w); no sections
// give every pair axis 0 (plain 1D RoPE).
std::vector<int> rope_axis_of_pair(const std::vector<int>& sections, int head_dim);

// Host f32 [T, D]: row t holds cos(a_j) at j and sin(a_j) at D/2 + j with
// a_j = float(positions[axis_of_pair[j] * T + t]) * inv_freq[j] (one f32 multiply, as upstream).
// `positions` is axis-major: `axes` rows of T ids.
Tensor rope_table(const std::vector<float>& inv_freq, const std::vector<int>& axis_of_pair, const int32_t* positions,
                  int axes, int64_t T);

}  // namespace vargpt
