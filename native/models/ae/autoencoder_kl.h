// The decoder half of diffusers' AutoencoderKL (the SDXL VAE of BLIP3-o's diffusion decoder):
// (1 / scaling_factor) · latents, post_quant_conv (1x1), then the conv tower in diffusers' layout
// (mid block with one wide attention head over every latent pixel, up blocks with nearest
// upsampling). Sizes come from vae/config.json and the tensor shapes.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "../common/trace.h"
#include "../common/weights.h"
#include "conv_tower.h"

namespace vargpt {

struct AutoencoderKlConfig {
  int latent_channels = 0;
  int image_channels = 0;
  double scaling_factor = 1.0;
  int groups = 32;
  bool post_quant_conv = true;
  ConvTowerConfig decoder;
  int downsample() const { return decoder.downsample(); }
};

// `dir` holds config.json; the weights are those of `weights` (tensor names without a prefix).
AutoencoderKlConfig read_autoencoder_kl_config(const std::string& dir, const WeightLoader& weights);

class AutoencoderKlDecoder {
 public:
  AutoencoderKlDecoder(const AutoencoderKlConfig& config, WeightLoader& weights);
  const AutoencoderKlConfig& config() const { return config_; }
  // latents [C, h, w] in the pipeline's (scaled) latent space -> sample [image_channels, H, W],
  // about [-1, 1]. Traces vae_input, post_quant_conv, decoder.* and sample.
  // `cancelled` is polled between the decoder's blocks (it throws Cancelled).
  Tensor decode(const Tensor& latents, TraceSink* trace = nullptr, const std::function<bool()>& cancelled = nullptr);

 private:
  Backend& backend_;
  AutoencoderKlConfig config_;
  ConvWeights post_quant_conv_;
  ConvTower decoder_;
};

// sample [3, H, W] (host f32) -> image01 [H, W, 3] = clamp(sample / 2 + 0.5, 0, 1) in f32, and
// its 8-bit form round(image01 · 255) with ties to even (numpy's round), as diffusers' pipelines.
Tensor vae_sample_to_image01(const Tensor& sample);
Tensor image01_to_uint8(const Tensor& image01);

}  // namespace vargpt
