// VAR's multi-scale VQ-VAE (vae_ch160v4096z32 architecture, sizes derived from the checkpoint):
// conv encoder/decoder with GroupNorm(32) resnet blocks and single-head attention at the lowest
// resolution, quant_conv / post_quant_conv, and the multi-scale residual quantizer with the
// partially shared φ convs: φ(h) = 0.5·h + 0.5·conv3x3(h).
#pragma once

#include <string>
#include <vector>

#include "model_config.h"
#include "weights.h"

namespace vargpt {

class VqVae {
 public:
  VqVae(const VqvaeConfig& config, const std::vector<int>& patch_nums, WeightLoader& weights, const std::string& prefix);

  const VqvaeConfig& config() const { return config_; }
  int latent_size() const { return patch_nums_.back(); }  // f̂ side (16)
  int image_size() const { return latent_size() * config_.downsample(); }

  // h [Cvae, pn, pn] = codebook[idx] laid out as a map (token j -> row j / pn, column j % pn).
  void lookup(const Tensor& idx, int pn, const Tensor& h);
  // f_hat [Cvae, P, P] += φ_{map(si)}(bicubic_up(h)); at the last scale h is already P x P and is
  // not resized. Returns nothing; f_hat is updated in place.
  void accumulate(int si, const Tensor& h, const Tensor& f_hat);
  // Same, and also subtracts the φ output from f_rest (the encoder's residual).
  void accumulate(int si, const Tensor& h, const Tensor& f_hat, const Tensor* f_rest);

  // image [channels, 16·n, 16·n] = decoder(post_quant_conv(f_hat [Cvae, n, n])), unclamped. Any
  // latent side n works (the decoder is fully convolutional): previews decode small maps.
  void decode(const Tensor& f_hat, const Tensor& image);

  // Multi-scale encode (img_to_idxBl): image [channels, S, S] in [-1, 1] -> i32 [pn*pn] per scale.
  // f_out (optional) receives quant_conv(encoder(x)); f_hats (optional) the f̂ after each scale.
  std::vector<Tensor> encode(const Tensor& image, Tensor* f_out = nullptr, std::vector<Tensor>* f_hats = nullptr);

  // f̂ of a full index list (embed_to_fhat with all_to_max_scale): [Cvae, P, P].
  Tensor indices_to_fhat(const std::vector<Tensor>& indices);

 private:
  struct Resnet {
    NormWeights norm1, norm2;
    ConvWeights conv1, conv2, nin;  // nin.w undefined when channels are kept
  };
  struct Attn {
    NormWeights norm;
    ConvWeights qkv, proj;
    int channels = 0;
  };
  struct Level {
    std::vector<Resnet> blocks;
    std::vector<Attn> attn;
    ConvWeights resample;  // downsample (encoder) / upsample (decoder) conv, or undefined
  };
  struct Tower {
    ConvWeights conv_in, conv_out;
    std::vector<Level> levels;
    Resnet mid1, mid2;
    bool mid_attn = false;
    Attn mid_attention;
    NormWeights norm_out;
  };

  Resnet load_resnet(WeightLoader& w, const std::string& p, int in, int out);
  Attn load_attn(WeightLoader& w, const std::string& p, int channels);

  Tensor resnet(const Resnet& r, const Tensor& x);
  Tensor attention(const Attn& a, const Tensor& x);
  Tensor conv(const ConvWeights& c, const Tensor& x, bool downsample = false);
  Tensor norm_silu(const NormWeights& n, const Tensor& x);
  Tensor phi(int si, const Tensor& h);

  Backend& backend_;
  VqvaeConfig config_;
  std::vector<int> patch_nums_;
  Tower dec_, enc_;
  ConvWeights quant_conv_, post_quant_conv_;
  Tensor codebook_;  // [V, Cvae] f32 (small; vq_nearest reads f32)
  std::vector<ConvWeights> phi_;
};

}  // namespace vargpt
