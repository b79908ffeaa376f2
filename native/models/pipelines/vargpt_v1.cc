// Loading, info and the VQ-VAE token API of VargptV1.
#include "vargpt_v1.h"

#include <algorithm>
#include <cstring>

#include "../../core/error.h"
#include "vargpt_v1_run.h"

namespace vargpt {

VargptV1::~VargptV1() = default;

std::unique_ptr<Model> VargptV1::load(const std::string& dir, std::shared_ptr<Backend> backend,
                                      const LoadProgress& progress, const std::function<bool()>& cancelled,
                                     const LoadOptions& options) {
  std::unique_ptr<VargptV1> m(new VargptV1());
  m->backend_ = std::move(backend);
  m->device_ = m->backend_->name();
  WeightLoader w(SafetensorsCheckpoint::open(dir), *m->backend_, progress, cancelled);
  w.set_linear_precision(options.llm_weights);
  w.set_map_weights(options.map_weights);
  m->config_ = load_vargpt_config(dir, w);
  const VargptConfig& c = m->config_;
  m->llm_ = std::make_unique<DecoderLlm>(c.llm, w);
  if (c.has_vision) {
    m->vision_ = std::make_unique<ClipVision>(c.vision, w, "vision_tower.vision_model.");
    m->projector_ = std::make_unique<MlpProjector>(
        MlpProjector::llava(c.vision.hidden, c.llm.hidden, c.projector_act, w, "multi_modal_projector."));
  }
  if (c.has_image_gen) {
    w.set_linear_precision(options.generator_weights);
    m->var_ = std::make_unique<VarDecoder>(c.var, w, "vargpt_gen.");
    m->gen_in_ = std::make_unique<MlpProjector>(
        MlpProjector::gen_patch_merger(c.var.width, c.llm.hidden, w, "image_gen_projector."));
    m->gen_out_ = std::make_unique<MlpProjector>(
        MlpProjector::gen_patch_merger(c.llm.hidden, c.var.width, w, "image_gen_projector_out."));
    m->vqvae_ = std::make_unique<VqVae>(c.vqvae, c.var.patch_nums, w, "vae_local.");
  }
  m->backend_->synchronize();
  w.finish();
  return m;
}

std::unique_ptr<Turn> VargptV1::start_turn(GenerateRequest request) {
  auto run = std::make_unique<Run>(*this, std::move(request));
  run->start();
  return run;
}

Info VargptV1::info() const {
  const VargptConfig& c = config_;
  Info out = Info::object();
  out.set("family", family()).set("device", device_);
  out.set("llm", llm_->info());
  if (c.has_vision) {
    out.set("vision", Info::object()
                          .set("hiddenSize", c.vision.hidden)
                          .set("layers", c.vision.layers)
                          .set("imageSize", c.vision.image_size)
                          .set("patchSize", c.vision.patch_size)
                          .set("tokens", c.vision.feature_tokens()));
  } else {
    out.set("vision", Info::null());
  }
  if (c.has_image_gen) {
    out.set("var", Info::object()
                       .set("depth", c.var.depth)
                       .set("width", c.var.width)
                       .set("heads", c.var.heads)
                       .set("patchNums", Info::numbers(c.var.patch_nums))
                       .set("codebookSize", c.var.vocab)
                       .set("cvae", c.var.cvae)
                       .set("weights", var_->weights()));
    out.set("vqvae", Info::object()
                         .set("ch", c.vqvae.decoder.ch)
                         .set("chMult", Info::numbers(c.vqvae.decoder.ch_mult))
                         .set("numResBlocks", c.vqvae.decoder.blocks - 1)  // the decoder has one more
                         .set("zChannels", c.vqvae.z_channels)
                         .set("codebookSize", c.vqvae.vocab)
                         .set("imageSize", c.var.patch_nums.back() * c.vqvae.downsample())
                         .set("downsample", c.vqvae.downsample())
                         .set("hasEncoder", c.vqvae.has_encoder)
                         .set("phiCount", c.vqvae.phi_count)
                         .set("phiIndex", Info::numbers(c.vqvae.phi_index)));
  } else {
    out.set("var", Info::null()).set("vqvae", Info::null());
  }
  out.set("imageTokenId", c.tokens.image)
      .set("imageGenStartId", c.tokens.image_gen_start)
      .set("imageGenEndId", c.tokens.image_gen_end)
      .set("eosId", c.tokens.eos)
      .set("bosId", c.tokens.bos);
  return out;
}

namespace {
// VAR's schedule is fixed by the checkpoint (patch_nums): a caller's schedule must be that one.
void check_fixed_schedule(const TokenGrids& scales, const std::vector<int>& patch_nums, const char* what) {
  if (scales.empty()) return;
  bool same = scales.size() == patch_nums.size();
  for (size_t i = 0; same && i < scales.size(); ++i) same = scales[i][0] == patch_nums[i] && scales[i][1] == patch_nums[i];
  VG_CHECK(same, what, ": VARGPT v1 draws on its fixed scales (patch_nums); a different schedule cannot be given");
}
}  // namespace

ImageTokens VargptV1::encode_image_tokens(const float* pixels, int64_t count, int height, int width,
                                          const TokenGrids& scales) {
  VG_CHECK(vqvae_, "this checkpoint has no image generation weights (vargpt_gen.*, vae_local.*)");
  check_fixed_schedule(scales, config_.var.patch_nums, "encodeImageTokens");
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

RgbImage VargptV1::decode_image_tokens(const ImageTokens& indices, const TokenGrids& scales, TraceList* trace) {
  VG_CHECK(vqvae_, "this checkpoint has no image generation weights (vargpt_gen.*, vae_local.*)");
  check_fixed_schedule(scales, config_.var.patch_nums, "decodeImageTokens");
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
