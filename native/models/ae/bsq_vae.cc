#include "bsq_vae.h"

#include <cmath>

#include "../../core/error.h"

namespace vargpt {

namespace {
const ConvTowerNames kBsqNames{".conv", ".norm"};
const ConvTowerGroups kBsqGroups{{32, 24}};

bool same_size(const Tensor& t, int64_t h, int64_t w) { return t.dim(1) == h && t.dim(2) == w; }
}  // namespace

BsqVaeConfig derive_bsq_vae_config(const WeightLoader& w, const std::string& prefix) {
  BsqVaeConfig c;
  const std::string& path = w.checkpoint().path();
  // Projections or a LayerNorm before the quantizer would change what the bits mean; the
  // released VAE has neither (codebook_dim equals the latent width).
  for (const char* part : {"quantizer.project_in.weight", "quantizer.lfq.project_in.weight", "quantizer.layernorm.weight"})
    VG_CHECK(!w.has(prefix + part), path, ": ", prefix, part, " present: BSQ quantizers with projections or a "
             "LayerNorm are not supported");
  const std::string dec = prefix + "decoder.";
  const Shape conv_in = w.shape(dec + "conv_in.conv.weight");
  const Shape conv_out = w.shape(dec + "conv_out.conv.weight");
  VG_CHECK(conv_in.size() == 4 && conv_out.size() == 4, path, ": ", dec, "conv_in.conv.weight ",
           shape_string(conv_in), " / conv_out.conv.weight ", shape_string(conv_out), " are not conv kernels");
  c.bits = static_cast<int>(conv_in[1]);
  c.image_channels = static_cast<int>(conv_out[0]);
  c.decoder = derive_conv_tower(w, dec, true, static_cast<int>(conv_out[1]), kBsqNames);
  c.decoder.groups = kBsqGroups;
  c.decoder.in_channels = c.bits;
  c.decoder.out_channels = c.image_channels;
  const std::string enc = prefix + "encoder.";
  c.has_encoder = w.has(enc + "conv_in.conv.weight");
  if (c.has_encoder) {
    const Shape e_in = w.shape(enc + "conv_in.conv.weight");
    const Shape e_out = w.shape(enc + "conv_out.conv.weight");
    VG_CHECK(e_in.size() == 4 && e_out.size() == 4 && e_in[1] == c.image_channels && e_out[0] == c.bits, path, ": ",
             enc, "conv_in.conv.weight ", shape_string(e_in), " / conv_out.conv.weight ", shape_string(e_out),
             " do not map ", c.image_channels, " image channels to ", c.bits, " latent channels");
    c.encoder = derive_conv_tower(w, enc, false, static_cast<int>(e_in[0]), kBsqNames);
    c.encoder.groups = kBsqGroups;
    c.encoder.in_channels = c.image_channels;
    c.encoder.out_channels = c.bits;
    VG_CHECK(c.encoder.downsample() == c.decoder.downsample(), path, ": BSQ VAE encoder downsamples by ",
             c.encoder.downsample(), ", decoder upsamples by ", c.decoder.downsample());
  }
  return c;
}

void check_bsq_scales(const std::vector<BsqScale>& scales, int64_t latent_h, int64_t latent_w) {
  VG_CHECK(!scales.empty(), "BSQ VAE: the scale list is empty");
  for (size_t i = 0; i < scales.size(); ++i) {
    const BsqScale& s = scales[i];
    VG_CHECK(s.h >= 1 && s.w >= 1, "BSQ VAE: scale ", i, " is ", s.h, "x", s.w, ", sizes must be positive");
    if (i > 0)
      VG_CHECK(s.h >= scales[i - 1].h && s.w >= scales[i - 1].w, "BSQ VAE: scale ", i, " (", s.h, "x", s.w,
               ") is smaller than scale ", i - 1, " (", scales[i - 1].h, "x", scales[i - 1].w,
               "); scales must grow towards the latent size");
  }
  const BsqScale& last = scales.back();
  VG_CHECK(last.h == latent_h && last.w == latent_w, "BSQ VAE: the last scale is ", last.h, "x", last.w,
           ", it must be the latent size ", latent_h, "x", latent_w);
}

BsqVae::BsqVae(const BsqVaeConfig& c, WeightLoader& w, const std::string& prefix)
    : backend_(w.backend()),
      config_(c),
      encoder_(c.has_encoder ? std::make_unique<ConvTower>(ConvTower::Direction::Encoder, c.encoder, w, prefix + "encoder.")
                             : nullptr),
      decoder_(ConvTower::Direction::Decoder, c.decoder, w, prefix + "decoder.") {
  VG_CHECK(c.bits > 0, "BSQ VAE: ", c.bits, " bits per token");
  // Upstream evaluates codebook_scale = 1 / np.sqrt(d) in double and multiplies f32 tensors by it.
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.bits)));
  const float table[2] = {-scale, scale};
  code_table_ = backend_.upload(Tensor::from_host(DType::F32, {2, 1}, table));
}

void BsqVae::bits_to_codes(const Tensor& bits, BsqScale s, const Tensor& codes) {
  const int64_t d = config_.bits, n = int64_t{s.h} * s.w;
  VG_CHECK(bits.dtype() == DType::I32 && bits.rank() == 1 && bits.dim(0) == n * d, "BSQ VAE: bits ",
           bits.describe(), " for a ", s.h, "x", s.w, " scale, expected i32[", n * d, "]");
  VG_CHECK(codes.rank() == 3 && codes.dim(0) == d && same_size(codes, s.h, s.w), "BSQ VAE: codes ", codes.describe(),
           ", expected [", d, ", ", s.h, ", ", s.w, "]");
  // A two-row table turns each bit into its code; the rows come out token-major and the map is
  // channel-major.
  Tensor rows = backend_.empty(DType::F32, {n * d, 1});
  backend_.embedding(bits, code_table_, rows);
  backend_.transpose(rows.view({n, d}), codes.view({d, n}));
}

void BsqVae::add_resampled(const Tensor& src, const Tensor& dst) {
  if (same_size(src, dst.dim(1), dst.dim(2))) {
    backend_.add(dst, src, dst);
    return;
  }
  // Upstream's 'trilinear' on [d, 1, h, w] with depth 1 -> 1 is this bilinear resample.
  Tensor up = backend_.empty(DType::F32, dst.shape());
  backend_.resize_bilinear(src, up);
  backend_.add(dst, up, dst);
}

BsqVae::Encoded BsqVae::encode(const Tensor& image, const std::vector<BsqScale>& scales) {
  VG_CHECK(encoder_, "this checkpoint has no BSQ VAE encoder (vae_local.encoder.*)");
  Backend& b = backend_;
  const int64_t C = config_.image_channels, d = config_.bits, ds = config_.downsample();
  VG_CHECK(image.rank() == 3 && image.dim(0) == C && image.dim(1) > 0 && image.dim(2) > 0 && image.dim(1) % ds == 0 &&
               image.dim(2) % ds == 0,
           "BSQ VAE encode: image ", image.describe(), ", expected [", C, ", H, W] with H and W multiples of ", ds);
  Encoded out;
  out.latent = encoder_->run(image);
  const int64_t H = out.latent.dim(1), W = out.latent.dim(2);
  check_bsq_scales(scales, H, W);

  Tensor residual = b.empty(DType::F32, {d, H, W});
  b.copy(out.latent, residual);
  out.quantized_sum = b.empty(DType::F32, {d, H, W});
  b.fill(out.quantized_sum, 0.0f);
  Tensor quantized = b.empty(DType::F32, {d, H, W});
  for (size_t si = 0; si < scales.size(); ++si) {
    const BsqScale s = scales[si];
    const int64_t n = int64_t{s.h} * s.w;
    Tensor z = residual;
    if (!same_size(residual, s.h, s.w)) {
      z = b.empty(DType::F32, {d, s.h, s.w});
      b.resize_area(residual, z);
    }
    // bit = (z > 0), the sign of l2norm(z): argmax over the pair (0, z) takes the 0 on ties.
    Tensor rows = b.empty(DType::F32, {n, d});
    b.transpose(z.view({d, n}), rows);
    Tensor pairs = b.empty(DType::F32, {n * d, 2});
    b.fill(pairs, 0.0f);
    b.copy(rows.view({n * d, 1}), pairs.slice(1, 1, 2));
    Tensor bits = b.empty(DType::I32, {n * d});
    b.argmax(pairs, bits);
    Tensor codes = b.empty(DType::F32, {d, s.h, s.w});
    bits_to_codes(bits, s, codes);
    b.fill(quantized, 0.0f);
    add_resampled(codes, quantized);
    b.axpby(1.0f, residual, -1.0f, quantized, residual);
    b.add(out.quantized_sum, quantized, out.quantized_sum);
    out.bits.push_back(bits);
    if (si + 1 < scales.size()) {
      const BsqScale next = scales[si + 1];
      Tensor input = b.empty(DType::F32, {d, next.h, next.w});
      if (same_size(out.quantized_sum, next.h, next.w))
        b.copy(out.quantized_sum, input);
      else
        b.resize_area(out.quantized_sum, input);
      out.next_inputs.push_back(input);
    }
  }
  return out;
}

Tensor BsqVae::bits_to_summed_codes(const std::vector<Tensor>& bits, const std::vector<BsqScale>& scales) {
  VG_CHECK(!scales.empty() && bits.size() == scales.size(), "BSQ VAE: ", bits.size(), " bit maps for ", scales.size(),
           " scales");
  const BsqScale last = scales.back();
  check_bsq_scales(scales, last.h, last.w);
  const int64_t d = config_.bits;
  Tensor summed = backend_.empty(DType::F32, {d, last.h, last.w});
  backend_.fill(summed, 0.0f);
  for (size_t si = 0; si < scales.size(); ++si) {
    Tensor codes = backend_.empty(DType::F32, {d, scales[si].h, scales[si].w});
    bits_to_codes(bits[si], scales[si], codes);
    add_resampled(codes, summed);
  }
  return summed;
}

void BsqVae::decode(const Tensor& summed, const Tensor& image) {
  const int64_t d = config_.bits, ds = config_.downsample();
  VG_CHECK(summed.rank() == 3 && summed.dim(0) == d, "BSQ VAE decode: codes ", summed.describe(), ", expected [", d,
           ", h, w]");
  VG_CHECK(image.rank() == 3 && image.dim(0) == config_.image_channels && image.dim(1) == summed.dim(1) * ds &&
               image.dim(2) == summed.dim(2) * ds,
           "BSQ VAE decode: image ", image.describe(), " does not match codes ", summed.describe());
  decoder_.run(summed, image);
}

}  // namespace vargpt
