// Qwen2-VL's multimodal RoPE positions (HF get_rope_index, spec vargpt-v1.1 §5): text tokens count
// up on all three axes (t, h, w); the merged tokens of an image get (s, s + row, s + col) with s
// the position the image starts at; text after an image resumes at the largest position so far
// + 1. rope_delta = (largest position + 1) - sequence length, so that a decode step at cache
// position p sits at p + rope_delta on every axis.
#pragma once

#include <cstdint>
#include <vector>

#include "decoder.h"

namespace vargpt {

struct MergedGrid {
  int t = 1, h = 0, w = 0;  // LLM tokens of one image along time, rows and columns (after merging)
  int64_t tokens() const { return int64_t{t} * h * w; }
};

struct MropeIndex {
  Positions positions;  // 3 axes (t, h, w) x T, axis-major
  int64_t rope_delta = 0;
};

// `grids` lists the images in prompt order; each one's tokens are the next `tokens()` ids equal to
// `image_token` (images may be adjacent). Throws when the ids and the grids disagree.
MropeIndex mrope_positions(const std::vector<int32_t>& ids, int32_t image_token, const std::vector<MergedGrid>& grids);

// The positions of `count` decode tokens from cache position `start` (text continuing the turn).
Positions mrope_decode_positions(int64_t start, int count, int64_t rope_delta);

}  // namespace vargpt
