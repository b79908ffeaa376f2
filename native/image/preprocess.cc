#include "preprocess.h"

#include "../core/error.h"

namespace vargpt::image {

std::vector<float> preprocess_rgb(const uint8_t* data, int width, int height, const PreprocessSpec& spec, int& out_width,
                                  int& out_height) {
  VG_CHECK(width > 0 && height > 0, "preprocess: image size ", width, "x", height, " must be positive");
  Image8 resized;
  const uint8_t* pixels = data;
  int w = width, h = height;
  if (spec.resize && (spec.resize_width != width || spec.resize_height != height)) {
    resized = pil_resize(data, width, height, 3, spec.resize_width, spec.resize_height, spec.filter);
    pixels = resized.data.data();
    w = resized.width;
    h = resized.height;
  }
  const int left = spec.crop ? spec.crop_left : 0, top = spec.crop ? spec.crop_top : 0;
  const int cw = spec.crop ? spec.crop_width : w, chh = spec.crop ? spec.crop_height : h;
  VG_CHECK(cw > 0 && chh > 0, "preprocess: crop size ", cw, "x", chh, " must be positive");
  out_width = cw;
  out_height = chh;
  const size_t plane = static_cast<size_t>(cw) * chh;
  std::vector<float> out(plane * 3);
  for (int c = 0; c < 3; ++c) {
    // The value of a padded (outside the image) pixel, which reads as uint8 0.
    float lut[256];
    for (int v = 0; v < 256; ++v) {
      if (spec.normalize == Normalize::Symmetric) {
        lut[v] = static_cast<float>(v) / 127.5f - 1.0f;
      } else {
        const float x = static_cast<float>(static_cast<double>(v) * spec.scale);
        lut[v] = (x - spec.mean[c]) / spec.std[c];
      }
    }
    float* dst = &out[plane * c];
    for (int y = 0; y < chh; ++y) {
      const int sy = y + top;
      for (int x = 0; x < cw; ++x) {
        const int sx = x + left;
        const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
        dst[static_cast<size_t>(y) * cw + x] = lut[inside ? pixels[(static_cast<size_t>(sy) * w + sx) * 3 + c] : 0];
      }
    }
  }
  return out;
}

}  // namespace vargpt::image
