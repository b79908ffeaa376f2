// 8-bit RGB images handed back to the caller, and the conversions from a model's [-1, 1] output.
#pragma once

#include <cstdint>
#include <vector>

#include "../../core/tensor.h"

namespace vargpt {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> data;  // RGB, row-major, 3 bytes per pixel
};

// [-1, 1] image [3, H, W] (host f32) -> RGB bytes: clamp, (x + 1) / 2, x 255, truncated as upstream.
RgbImage to_rgb8(const Tensor& image);
// Host copy of an f32 image clamped to [-1, 1] (upstream fhat_to_img), for traces.
Tensor clamp_image(const Tensor& image);

}  // namespace vargpt
