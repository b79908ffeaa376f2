#include "vqvae.h"

#include "../../core/error.h"

namespace vargpt {

VqVae::VqVae(const VqvaeConfig& c, const std::vector<int>& patch_nums, WeightLoader& w, const std::string& prefix)
    : backend_(w.backend()),
      config_(c),
      encoder_(c.has_encoder ? std::make_unique<ConvTower>(ConvTower::Direction::Encoder, c.encoder, w, prefix + "encoder.")
                             : nullptr),
      decoder_(ConvTower::Direction::Decoder, c.decoder, w, prefix + "decoder."),
      quant_conv_(c.has_encoder ? w.conv(prefix + "quant_conv", c.z_channels, c.z_channels, 3, true) : ConvWeights()),
      post_quant_conv_(w.conv(prefix + "post_quant_conv", c.z_channels, c.z_channels, 3, true)),
      quantizer_(c.vocab, c.z_channels, c.phi_count, patch_nums, w, prefix + "quantize.") {}

void VqVae::decode(const Tensor& f_hat, const Tensor& image) {
  const VqvaeConfig& c = config_;
  VG_CHECK(f_hat.rank() == 3 && f_hat.dim(0) == c.z_channels, "VQ-VAE decode: f_hat ", f_hat.describe(), ", expected [",
           c.z_channels, ", n, n]");
  const int64_t S = f_hat.dim(1) * c.downsample();
  VG_CHECK(image.rank() == 3 && image.dim(0) == c.in_channels && image.dim(1) == S &&
               image.dim(2) == f_hat.dim(2) * c.downsample(),
           "VQ-VAE decode: image ", image.describe(), " does not match f_hat ", f_hat.describe());
  decoder_.run(conv_same(backend_, post_quant_conv_, f_hat), image);
}

std::vector<Tensor> VqVae::encode(const Tensor& image, Tensor* f_out, std::vector<Tensor>* f_hats) {
  const VqvaeConfig& c = config_;
  VG_CHECK(encoder_, "this checkpoint has no VQ-VAE encoder (vae_local.encoder.*)");
  const int64_t S = image_size();
  VG_CHECK(image.rank() == 3 && image.dim(0) == c.in_channels && image.dim(1) == S && image.dim(2) == S,
           "VQ-VAE encode: image ", image.describe(), ", expected f32[", c.in_channels, ", ", S, ", ", S, "]");
  const Tensor f = conv_same(backend_, quant_conv_, encoder_->run(image));
  if (f_out) *f_out = f;
  return quantizer_.quantize(f, f_hats);
}

}  // namespace vargpt
