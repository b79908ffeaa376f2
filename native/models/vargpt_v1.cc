// Loading and the VQ-VAE token API of VargptV1.
#include "vargpt_v1.h"

#include <algorithm>
#include <cstring>

#include "../core/error.h"
#include "vargpt_v1_run.h"

namespace vargpt {

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::Eos: return "eos";
    case StopReason::Length: return "length";
    case StopReason::Image: return "image";
  }
  return "?";
}

void TraceSink::stack(const std::string& name, const std::vector<Tensor>& parts) {
  if (!out_ || parts.empty()) return;
  Shape shape = parts[0].shape();
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor stacked = Tensor::empty_host(parts[0].dtype(), shape);
  const size_t bytes = parts[0].nbytes();
  for (size_t i = 0; i < parts.size(); ++i) {
    VG_CHECK(parts[i].shape() == parts[0].shape(), "trace ", name, ": part ", i, " ", parts[i].describe(), " differs from ",
             parts[0].describe());
    const Tensor host = backend_.to_host(parts[i]);
    std::memcpy(static_cast<char*>(stacked.raw()) + i * bytes, host.raw(), bytes);
  }
  out_->emplace_back(name, stacked);
}

VargptV1::~VargptV1() = default;

std::unique_ptr<VargptV1> VargptV1::load(const std::string& dir, const std::string& device, const LoadProgress& progress,
                                         const std::function<bool()>& cancelled) {
  std::unique_ptr<VargptV1> m(new VargptV1());
  m->backend_ = create_backend(device);
  m->device_ = m->backend_->name();
  WeightLoader w(SafetensorsCheckpoint::open(dir), *m->backend_, progress, cancelled);
  m->config_ = load_vargpt_config(dir, w);
  const VargptConfig& c = m->config_;
  m->llm_ = std::make_unique<Llama>(c.llm, w, "language_model.");
  if (c.has_vision) {
    m->vision_ = std::make_unique<ClipVision>(c.vision, w, "vision_tower.vision_model.");
    m->projector_ = std::make_unique<MultiModalProjector>(c.vision.hidden, c.llm.hidden, c.projector.act, w,
                                                          "multi_modal_projector.");
  }
  if (c.has_image_gen) {
    m->var_ = std::make_unique<VarDecoder>(c.var, w, "vargpt_gen.");
    m->gen_in_ = std::make_unique<GenProjector>(c.var.width, c.llm.hidden, w, "image_gen_projector.");
    m->gen_out_ = std::make_unique<GenProjector>(c.llm.hidden, c.var.width, w, "image_gen_projector_out.");
    m->vqvae_ = std::make_unique<VqVae>(c.vqvae, c.var.patch_nums, w, "vae_local.");
  }
  m->backend_->synchronize();
  w.finish();
  return m;
}

GenerateResult VargptV1::generate(const GenerateRequest& request) {
  GenerateResult result;
  Run run(*this, request, result);
  run.execute();
  return result;
}

RgbImage to_rgb8(const Tensor& image) {
  VG_CHECK(image.device() == DeviceKind::CPU && image.dtype() == DType::F32 && image.rank() == 3 && image.dim(0) == 3 &&
               image.is_contiguous(),
           "to_rgb8: expected a host f32[3, H, W] image, got ", image.describe());
  RgbImage out;
  out.height = static_cast<int>(image.dim(1));
  out.width = static_cast<int>(image.dim(2));
  const size_t plane = static_cast<size_t>(out.width) * out.height;
  out.data.resize(plane * 3);
  const float* src = image.data<float>();
  for (size_t p = 0; p < plane; ++p)
    for (int c = 0; c < 3; ++c) {
      // Upstream: clamp(-1, 1), (x + 1) * 0.5, then astype(uint8) of x * 255 (truncation).
      const float v = std::min(1.0f, std::max(-1.0f, src[c * plane + p]));
      const float v01 = (v + 1.0f) * 0.5f;
      out.data[p * 3 + c] = static_cast<uint8_t>(v01 * 255.0f);
    }
  return out;
}

Tensor clamp_image(const Tensor& image) {
  Tensor out = image.contiguous_copy();
  float* v = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) v[i] = std::min(1.0f, std::max(-1.0f, v[i]));
  return out;
}

std::vector<std::vector<int32_t>> VargptV1::encode_image_tokens(const float* pixels, int64_t count, int height, int width) {
  VG_CHECK(vqvae_, "this checkpoint has no image generation weights (vargpt_gen.*, vae_local.*)");
  const int S = vqvae_->image_size();
  const int C = config_.vqvae.in_channels;
  VG_CHECK(height == S && width == S, "encodeImageTokens: the VQ-VAE takes ", S, "x", S, " images, got ", height, "x",
           width);
  VG_CHECK(count == static_cast<int64_t>(C) * S * S, "encodeImageTokens: pixels has ", count, " values, expected ", C,
           "x", S, "x", S, " = ", static_cast<int64_t>(C) * S * S);
  const Tensor image = backend_->upload(Tensor::from_host(DType::F32, {C, S, S}, pixels));
  const std::vector<Tensor> idx = vqvae_->encode(image);
  std::vector<std::vector<int32_t>> out;
  for (const Tensor& t : idx) {
    const Tensor host = backend_->to_host(t);
    out.emplace_back(host.data<int32_t>(), host.data<int32_t>() + host.numel());
  }
  return out;
}

RgbImage VargptV1::decode_image_tokens(const std::vector<std::vector<int32_t>>& indices,
                                       std::vector<std::pair<std::string, Tensor>>* trace) {
  VG_CHECK(vqvae_, "this checkpoint has no image generation weights (vargpt_gen.*, vae_local.*)");
  const std::vector<int>& pns = config_.var.patch_nums;
  VG_CHECK(indices.size() == pns.size(), "decodeImageTokens: ", indices.size(), " index lists, expected one per scale (",
           pns.size(), ")");
  std::vector<Tensor> uploaded;
  for (size_t si = 0; si < indices.size(); ++si) {
    const size_t n = static_cast<size_t>(pns[si]) * pns[si];
    VG_CHECK(indices[si].size() == n, "decodeImageTokens: scale ", si, " has ", indices[si].size(), " indices, expected ",
             pns[si], "x", pns[si], " = ", n);
    for (size_t j = 0; j < n; ++j)
      VG_CHECK(indices[si][j] >= 0 && indices[si][j] < config_.vqvae.vocab, "decodeImageTokens: scale ", si, " index ", j,
               " = ", indices[si][j], " is outside the codebook [0, ", config_.vqvae.vocab, ")");
    uploaded.push_back(backend_->upload(Tensor::from_host(DType::I32, {static_cast<int64_t>(n)}, indices[si].data())));
  }
  TraceSink sink(*backend_, trace);
  const Tensor f_hat = vqvae_->indices_to_fhat(uploaded);
  sink.add("fHat", f_hat);
  const int S = vqvae_->image_size();
  Tensor image = backend_->empty(DType::F32, {config_.vqvae.in_channels, S, S});
  vqvae_->decode(f_hat, image);
  const Tensor host = backend_->to_host(image);
  if (sink.enabled()) sink.add("image", clamp_image(host));
  return to_rgb8(host);
}

}  // namespace vargpt
