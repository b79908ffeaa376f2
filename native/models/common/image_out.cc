#include "image_out.h"

#include <algorithm>

#include "../../core/error.h"

namespace vargpt {

RgbImage to_rgb8(const Tensor& image) {
  VG_CHECK(image.device() == DeviceKind::CPU && image.dtype() == DType::F32 && image.rank() == 3 && image.dim(0) == 3 &&
               image.is_contiguous(),
           "to_rgb8: expected a host f32[3, H, W] image, got ", image.describe());
  RgbImage out;
  out.height = static_cast<int>(image.dim(1));
  out.width = static_cast<int>(image.dim(2));
  const size_t plane = static_cast<size_t>(out.width) * out.height;
  out.data.resize(plane * 3);
  const float* src = image.data<float>();
  for (size_t p = 0; p < plane; ++p)
    for (int c = 0; c < 3; ++c) {
      // Upstream: clamp(-1, 1), (x + 1) * 0.5, then astype(uint8) of x * 255 (truncation).
      const float v = std::min(1.0f, std::max(-1.0f, src[c * plane + p]));
      const float v01 = (v + 1.0f) * 0.5f;
      out.data[p * 3 + c] = static_cast<uint8_t>(v01 * 255.0f);
    }
  return out;
}

Tensor clamp_image(const Tensor& image) {
  Tensor out = image.contiguous_copy();
  float* v = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) v[i] = std::min(1.0f, std::max(-1.0f, v[i]));
  return out;
}

}  // namespace vargpt
