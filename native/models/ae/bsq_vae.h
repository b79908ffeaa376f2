// Infinity's BSQ VAE (VARGPT-v1.1 `vae_local`): a flux-style conv encoder and decoder (the taming
// tower with every conv and norm wrapped in a module of its own, no attention) around a
// multi-scale binary spherical quantizer without projections: each latent position carries d
// bits, code_j = (2 bit_j - 1) / sqrt(d). Sizes come from tensor shapes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "conv_tower.h"

namespace vargpt {

struct BsqScale {
  int h = 0, w = 0;
};

struct BsqVaeConfig {
  int bits = 0;            // d: bits per token = latent channels
  int image_channels = 0;  // 3
  ConvTowerConfig decoder;
  bool has_encoder = false;
  ConvTowerConfig encoder;
  int downsample() const { return decoder.downsample(); }
};

// The VAE under `prefix` ("vae_local."): channels from conv shapes, levels and blocks by counting.
BsqVaeConfig derive_bsq_vae_config(const WeightLoader& weights, const std::string& prefix);

// Throws unless `scales` is a non-empty list of positive sizes that never shrink and ends at
// (latent_h, latent_w).
void check_bsq_scales(const std::vector<BsqScale>& scales, int64_t latent_h, int64_t latent_w);

class BsqVae {
 public:
  BsqVae(const BsqVaeConfig& config, WeightLoader& weights, const std::string& prefix);

  const BsqVaeConfig& config() const { return config_; }

  struct Encoded {
    Tensor latent;                   // encoder output [d, h, w]
    std::vector<Tensor> bits;        // per scale i32 [h_s * w_s * d]: bit j of token k at k * d + j
    std::vector<Tensor> next_inputs; // per scale but the last: area resample of the running sum to the next scale
    Tensor quantized_sum;            // [d, h, w]
  };
  // image [C, H, W] in [-1, 1], H and W multiples of downsample(); the last scale must be the
  // latent size (H / downsample, W / downsample).
  Encoded encode(const Tensor& image, const std::vector<BsqScale>& scales);

  // codes [d, h, w] of one scale's bits (i32 [h * w * d], token-major, values 0 or 1).
  void bits_to_codes(const Tensor& bits, BsqScale scale, const Tensor& codes);
  // Sum over scales of each scale's codes resampled (bilinear, half-pixel) to the last scale:
  // [d, h_last, w_last].
  Tensor bits_to_summed_codes(const std::vector<Tensor>& bits, const std::vector<BsqScale>& scales);
  // image [C, h * downsample, w * downsample] = decoder(summed [d, h, w]), unclamped.
  void decode(const Tensor& summed, const Tensor& image);

 private:
  // dst += bilinear resample of src to dst's size (src itself when the sizes agree).
  void add_resampled(const Tensor& src, const Tensor& dst);

  Backend& backend_;
  BsqVaeConfig config_;
  std::unique_ptr<ConvTower> encoder_;
  ConvTower decoder_;
  Tensor code_table_;  // [2, 1]: the code of bit 0 and of bit 1
};

}  // namespace vargpt
