// The model-input side of image handling: resize (Pillow-exact), crop and normalise uint8 RGB
// into the float CHW tensors the vision tower and the VQ-VAE encoder take.
#pragma once

#include <cstdint>
#include <vector>

#include "pil_resize.h"

namespace vargpt::image {

enum class Normalize {
  // (f32(u8 * scale) - mean[c]) / std[c], each step rounded to float32 like transformers'
  // CLIPImageProcessor (rescale in float64 then cast; normalise in float32).
  MeanStd,
  // f32(u8) / 127.5 - 1, the VQ-VAE's [-1, 1] input.
  Symmetric,
};

struct PreprocessSpec {
  bool resize = false;
  int resize_width = 0;
  int resize_height = 0;
  Filter filter = Filter::Bicubic;
  // The crop window in the resized image; parts outside it read as 0 (transformers pads so).
  bool crop = false;
  int crop_left = 0;
  int crop_top = 0;
  int crop_width = 0;
  int crop_height = 0;
  Normalize normalize = Normalize::MeanStd;
  double scale = 1.0 / 255.0;
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
};

// `data` is RGB (3 channels). Returns channels-first float32, 3 x height x width, where
// width/height are the crop size (or the resized size without a crop).
std::vector<float> preprocess_rgb(const uint8_t* data, int width, int height, const PreprocessSpec& spec, int& out_width,
                                  int& out_height);

}  // namespace vargpt::image
