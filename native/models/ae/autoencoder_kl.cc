#include "autoencoder_kl.h"

#include <cmath>

#include "../../core/error.h"
#include "../common/config_json.h"

namespace vargpt {

AutoencoderKlConfig read_autoencoder_kl_config(const std::string& dir, const WeightLoader& w) {
  const Json cfg = read_config_json(dir);
  const std::string what = dir + "/config.json";
  AutoencoderKlConfig c;
  c.latent_channels = config_positive(cfg, "latent_channels", -1, what);
  c.image_channels = config_positive(cfg, "out_channels", 3, what);
  c.groups = config_positive(cfg, "norm_num_groups", 32, what);
  const double sf = json_number(cfg, "scaling_factor", 0.18215, what);
  VG_CHECK(std::isfinite(sf) && sf > 0, what, ": scaling_factor = ", sf, " must be positive");
  c.scaling_factor = sf;
  const Json* shift = cfg.find("shift_factor");
  VG_CHECK(shift == nullptr || shift->is_null() || (shift->is_number() && shift->as_double() == 0), what,
           ": shift_factor is not supported");
  c.post_quant_conv = json_bool(cfg, "use_post_quant_conv", true, what);
  c.decoder = derive_diffusers_conv_tower(w, "decoder.", true);
  c.decoder.in_channels = c.latent_channels;
  c.decoder.out_channels = c.image_channels;
  c.decoder.groups.choices = {c.groups};
  const Json* channels = cfg.find("block_out_channels");
  if (channels != nullptr && channels->is_array()) {
    const auto& list = channels->as_array();
    VG_CHECK(list.size() == c.decoder.ch_mult.size(), what, ": block_out_channels has ", list.size(),
             " entries, the decoder has ", c.decoder.ch_mult.size(), " up blocks");
    for (size_t i = 0; i < list.size(); ++i)
      VG_CHECK(list[i].is_integer() && list[i].as_int() == int64_t{c.decoder.ch} * c.decoder.ch_mult[i], what,
               ": block_out_channels[", i, "] does not match the decoder's tensors (",
               c.decoder.ch * c.decoder.ch_mult[i], " channels)");
  }
  return c;
}

AutoencoderKlDecoder::AutoencoderKlDecoder(const AutoencoderKlConfig& c, WeightLoader& w)
    : backend_(w.backend()),
      config_(c),
      post_quant_conv_(c.post_quant_conv ? w.conv("post_quant_conv", c.latent_channels, c.latent_channels, 1, true)
                                         : ConvWeights{}),
      decoder_(ConvTower::Direction::Decoder, c.decoder, w, "decoder.") {}

Tensor AutoencoderKlDecoder::decode(const Tensor& latents, TraceSink* trace, const std::function<bool()>& cancelled) {
  VG_CHECK(latents.rank() == 3 && latents.dim(0) == config_.latent_channels && latents.dtype() == DType::F32,
           "AutoencoderKL decode: latents ", latents.describe(), ", expected f32 [", config_.latent_channels,
           ", h, w]");
  Backend& b = backend_;
  // Upstream multiplies by the reciprocal (taken in double, then rounded to f32), which rounds
  // differently from a division.
  Tensor x = b.empty(DType::F32, latents.shape());
  b.axpby(static_cast<float>(1.0 / config_.scaling_factor), latents, 0.0f, latents, x);
  if (trace) trace->add("vae_input", x);
  if (post_quant_conv_.w.defined()) {
    x = conv_same(b, post_quant_conv_, x);
    if (trace) trace->add("post_quant_conv", x);
  }
  Tensor sample = decoder_.run(x, trace, "decoder.", cancelled);
  if (trace) trace->add("sample", sample);
  return sample;
}

Tensor vae_sample_to_image01(const Tensor& sample) {
  VG_CHECK(sample.rank() == 3 && sample.dtype() == DType::F32 && sample.device() == DeviceKind::CPU,
           "vae_sample_to_image01: ", sample.describe(), ", expected a host f32 [C, H, W]");
  const int64_t C = sample.dim(0), H = sample.dim(1), W = sample.dim(2);
  const Tensor src = sample.contiguous_copy();
  Tensor out = Tensor::empty_host(DType::F32, {H, W, C});
  const float* s = static_cast<const float*>(src.raw());
  float* d = static_cast<float*>(out.raw());
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < H * W; ++i) {
      const float v = s[c * H * W + i] / 2.0f + 0.5f;
      d[i * C + c] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    }
  return out;
}

Tensor image01_to_uint8(const Tensor& image01) {
  VG_CHECK(image01.dtype() == DType::F32 && image01.device() == DeviceKind::CPU, "image01_to_uint8: ",
           image01.describe(), ", expected a host f32 tensor");
  const Tensor src = image01.contiguous_copy();
  Tensor out = Tensor::empty_host(DType::U8, src.shape());
  const float* s = static_cast<const float*>(src.raw());
  uint8_t* d = static_cast<uint8_t*>(out.raw());
  for (int64_t i = 0; i < src.numel(); ++i) {
    const float v = std::nearbyint(s[i] * 255.0f);  // the default rounding mode: ties to even
    d[i] = std::isnan(v) ? 0 : static_cast<uint8_t>(v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
  }
  return out;
}

}  // namespace vargpt
