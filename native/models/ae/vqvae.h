// VAR's multi-scale VQ-VAE (vae_ch160v4096z32, sizes derived from the checkpoint): a taming conv
// encoder + quant_conv, the multi-scale residual quantizer, post_quant_conv + a conv decoder.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "conv_tower.h"
#include "multiscale_vq.h"

namespace vargpt {

struct VqvaeConfig {
  int vocab = 0, z_channels = 0, in_channels = 3;
  ConvTowerConfig decoder;  // in_channels = z, out_channels = image channels
  bool has_encoder = false;
  ConvTowerConfig encoder;  // in_channels = image channels, out_channels = z
  int phi_count = 0;
  std::vector<int> phi_index;  // scale -> phi conv
  int downsample() const { return decoder.downsample(); }
};

class VqVae {
 public:
  VqVae(const VqvaeConfig& config, const std::vector<int>& patch_nums, WeightLoader& weights, const std::string& prefix);

  const VqvaeConfig& config() const { return config_; }
  int latent_size() const { return quantizer_.latent_size(); }  // f_hat side (16)
  int image_size() const { return latent_size() * config_.downsample(); }

  void lookup(const Tensor& idx, int pn, const Tensor& h) { quantizer_.lookup(idx, pn, h); }
  void accumulate(int si, const Tensor& h, const Tensor& f_hat) { quantizer_.accumulate(si, h, f_hat); }

  // image [channels, 16n, 16n] = decoder(post_quant_conv(f_hat [Z, n, n])), unclamped. Any latent
  // side n works (the decoder is fully convolutional): previews decode small maps.
  void decode(const Tensor& f_hat, const Tensor& image);

  // Multi-scale encode (img_to_idxBl): image [channels, S, S] in [-1, 1] -> i32 [pn*pn] per scale.
  // f_out (optional) receives quant_conv(encoder(x)); f_hats (optional) the f_hat after each scale.
  std::vector<Tensor> encode(const Tensor& image, Tensor* f_out = nullptr, std::vector<Tensor>* f_hats = nullptr);

  Tensor indices_to_fhat(const std::vector<Tensor>& indices) { return quantizer_.indices_to_fhat(indices); }

 private:
  Backend& backend_;
  VqvaeConfig config_;
  std::unique_ptr<ConvTower> encoder_;
  ConvTower decoder_;
  ConvWeights quant_conv_, post_quant_conv_;
  MultiScaleVq quantizer_;
};

}  // namespace vargpt
