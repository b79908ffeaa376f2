// Image resampling that reproduces Pillow's Image.resize on 8-bit images bit for bit
// (libImaging/Resample.c), because CLIP preprocessing upstream is PIL bicubic on uint8 and the
// model's inputs should not depend on which resampler the host happens to have.
//
// Pillow's algorithm, kept exactly: separable convolution with the filter's support scaled by the
// downscale factor; coefficients computed in double, normalised per output pixel, then turned
// into fixed point with PRECISION_BITS = 32 - 8 - 2; accumulation in int32 starting at 1/2, then
// shifted and clipped to uint8 after each pass. Horizontal pass first (only over the rows the
// vertical pass will read), intermediate stored as uint8, vertical pass second. A pass whose size
// does not change is skipped, as in Pillow.
#pragma once

#include <cstdint>
#include <vector>

namespace vargpt::image {

// Pillow's filter ids (Image.Resampling): NEAREST 0, LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4,
// HAMMING 5.
enum class Filter : int { Nearest = 0, Lanczos = 1, Bilinear = 2, Bicubic = 3, Box = 4, Hamming = 5 };

struct Image8 {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> data;  // row-major, interleaved
};

// Resizes the whole image (Pillow's box = (0, 0, width, height)). channels 1..4. Throws
// vargpt::Error on bad sizes.
Image8 pil_resize(const uint8_t* data, int width, int height, int channels, int out_width, int out_height, Filter filter);

}  // namespace vargpt::image
