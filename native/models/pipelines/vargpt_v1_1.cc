// Loading and info of VargptV11.
#include "vargpt_v1_1.h"

#include <cstring>

#include "../../core/error.h"
#include "../common/config_json.h"
#include "../common/image_out.h"
#include "../common/trace.h"
#include "vargpt_v1_1_run.h"

namespace vargpt {


VargptV11Config load_vargpt_v1_1_config(const std::string& dir, const WeightLoader& w) {
  const Json root = read_config_json(dir);
  const std::string what = dir + "/config.json";
  VargptV11Config c;
  static_cast<QwenVlConfig&>(c) = parse_qwen_vl_config(root, what, w);
  c.has_image_gen = w.count_indexed("vargpt_gen.block_chunks.") > 0 || w.has("vargpt_gen.word_embed.weight");
  ImageGenTokens& t = c.gen;
  if (const Json* s = root.find("special_tokens"); s && s->is_object()) {
    t.start = config_token_id(*s, "image_gen_start_token_id", what + " special_tokens", true);
    t.end = config_token_id(*s, "image_gen_end_token_id", what + " special_tokens", true);
    t.pad = config_token_id(*s, "image_gen_pad_token_id", what + " special_tokens", true);
  }
  for (int id : {t.start, t.end, t.pad})
    VG_CHECK(id < c.llm.vocab, what, ": token id ", id, " is outside the vocabulary (", c.llm.vocab, ")");
  return c;
}

VargptV11::~VargptV11() = default;

void VargptV11::load_image_gen(WeightLoader& w) {
  const VargptV11Config& c = config_;
  const int start = c.gen.start;
  VG_CHECK(start >= 0, "VARGPT-v1.1: the checkpoint has image-generation weights but config.json names no "
                       "special_tokens.image_gen_start_token_id");
  infinity_ = std::make_unique<InfinityDecoder>(parse_infinity_config(w, "vargpt_gen."), w, "vargpt_gen.");
  vae_ = std::make_unique<BsqVae>(derive_bsq_vae_config(w, "vae_local."), w, "vae_local.");
  const InfinityConfig& ic = infinity_->config();
  VG_CHECK(vae_->config().bits == ic.bits, "VARGPT-v1.1: the BSQ VAE has ", vae_->config().bits,
           " bits per token but the Infinity head draws ", ic.bits);
  gen_in_ = std::make_unique<MlpProjector>(
      MlpProjector::gen_patch_merger(ic.width, c.llm.hidden, w, "image_gen_projector."));
  gen_out_ = std::make_unique<MlpProjector>(
      MlpProjector::gen_patch_merger(c.llm.hidden, ic.context_dim, w, "image_gen_projector_out."));
  // Only the <|image_gen_start|> row of sos_embedding is ever read: take it from the mapped bytes
  // rather than widening the whole table.
  const std::string name = "sos_embedding.weight";
  const Shape shape = w.shape(name);
  VG_CHECK(shape.size() == 2 && shape[0] > start && shape[1] == ic.text_dim, name, " has shape ", shape_string(shape),
           ", expected more than ", start, " rows of ", ic.text_dim);
  const Tensor table = w.checkpoint().get(name);
  Tensor row = Tensor::empty_host(DType::F32, {1, shape[1]});
  float* out = row.data<float>();
  const int64_t base = static_cast<int64_t>(start) * shape[1];
  if (table.dtype() == DType::F32) {
    for (int64_t i = 0; i < shape[1]; ++i) out[i] = table.data<float>()[base + i];
  } else {
    VG_CHECK(table.dtype() == DType::BF16, name, " must be f32 or bf16");
    const uint16_t* raw = static_cast<const uint16_t*>(table.raw());
    for (int64_t i = 0; i < shape[1]; ++i) {
      const uint32_t bits = static_cast<uint32_t>(raw[base + i]) << 16;
      std::memcpy(&out[i], &bits, sizeof bits);
    }
  }
  sos_row_ = backend_->upload(row);
}

std::unique_ptr<Model> VargptV11::load(const std::string& dir, std::shared_ptr<Backend> backend,
                                       const LoadProgress& progress, const std::function<bool()>& cancelled,
                                     const LoadOptions& options) {
  std::unique_ptr<VargptV11> m(new VargptV11());
  m->backend_ = std::move(backend);
  m->device_ = m->backend_->name();
  WeightLoader w(SafetensorsCheckpoint::open(dir), *m->backend_, progress, cancelled);
  w.set_linear_precision(options.llm_weights);
  w.set_map_weights(options.map_weights);
  m->config_ = load_vargpt_v1_1_config(dir, w);
  m->llm_ = std::make_unique<DecoderLlm>(m->config_.llm, w);
  if (m->config_.has_vision) m->vision_ = std::make_unique<Qwen2VlVision>(m->config_.vision, w, "visual.");
  if (m->config_.has_image_gen) {
    w.set_linear_precision(options.generator_weights);
    m->load_image_gen(w);
  }
  m->backend_->synchronize();
  w.finish();
  return m;
}

QwenVlParts VargptV11::turn_parts() {
  return qwen_vl_parts(llm_.get(), vision_.get(), config_);
}

std::unique_ptr<Turn> VargptV11::start_turn(GenerateRequest request) {
  auto run = std::make_unique<Run>(*this, std::move(request));
  run->start();
  return run;
}

namespace {

std::vector<BsqScale> bsq_scales(const TokenGrids& scales, const char* what) {
  VG_CHECK(!scales.empty(), what, ": VARGPT-v1.1 needs the scale schedule (options.scales)");
  std::vector<BsqScale> out;
  for (const auto& s : scales) out.push_back({s[0], s[1]});
  return out;
}

}  // namespace

ImageTokens VargptV11::encode_image_tokens(const float* pixels, int64_t count, int height, int width,
                                           const TokenGrids& scales) {
  VG_CHECK(vae_, "encodeImageTokens: this checkpoint has no image generation weights (vargpt_gen.*, vae_local.*)");
  const BsqVaeConfig& vc = vae_->config();
  VG_CHECK(vc.has_encoder, "encodeImageTokens: this checkpoint has no BSQ VAE encoder weights (vae_local.encoder.*)");
  const int ds = vc.downsample();
  VG_CHECK(height > 0 && width > 0 && height % ds == 0 && width % ds == 0, "encodeImageTokens: the image is ", width,
           "x", height, "; the BSQ VAE needs sides that are multiples of ", ds);
  const int64_t C = vc.image_channels;
  VG_CHECK(count == C * height * width, "encodeImageTokens: pixels has ", count, " values, expected ", C, "x", height,
           "x", width);
  const std::vector<BsqScale> bsq = bsq_scales(scales, "encodeImageTokens");
  check_bsq_scales(bsq, height / ds, width / ds);
  const Tensor image = backend_->upload(Tensor::from_host(DType::F32, {C, height, width}, pixels));
  const BsqVae::Encoded enc = vae_->encode(image, bsq);
  ImageTokens out;
  for (const Tensor& t : enc.bits) {
    const Tensor host = backend_->to_host(t);
    out.emplace_back(host.data<int32_t>(), host.data<int32_t>() + host.numel());
  }
  return out;
}

RgbImage VargptV11::decode_image_tokens(const ImageTokens& bits, const TokenGrids& scales, TraceList* trace) {
  VG_CHECK(vae_, "decodeImageTokens: this checkpoint has no image generation weights (vargpt_gen.*, vae_local.*)");
  const BsqVaeConfig& vc = vae_->config();
  const std::vector<BsqScale> bsq = bsq_scales(scales, "decodeImageTokens");
  check_bsq_scales(bsq, bsq.back().h, bsq.back().w);
  VG_CHECK(bits.size() == bsq.size(), "decodeImageTokens: ", bits.size(), " bit maps for ", bsq.size(), " scales");
  std::vector<Tensor> uploaded;
  for (size_t si = 0; si < bits.size(); ++si) {
    const int64_t n = int64_t{bsq[si].h} * bsq[si].w * vc.bits;
    VG_CHECK(static_cast<int64_t>(bits[si].size()) == n, "decodeImageTokens: scale ", si, " has ", bits[si].size(),
             " bits, expected ", bsq[si].h, " x ", bsq[si].w, " tokens x ", vc.bits, " bits = ", n);
    for (int64_t k = 0; k < n; ++k)
      VG_CHECK(bits[si][k] == 0 || bits[si][k] == 1, "decodeImageTokens: scale ", si, " value ", k, " is ", bits[si][k],
               "; bits are 0 or 1");
    uploaded.push_back(backend_->upload(Tensor::from_host(DType::I32, {n}, bits[si].data())));
  }
  TraceSink sink(*backend_, trace);
  const Tensor summed = vae_->bits_to_summed_codes(uploaded, bsq);
  sink.add("decode_summed_codes", summed);
  Tensor image = backend_->empty(
      DType::F32, {vc.image_channels, int64_t{bsq.back().h} * vc.downsample(), int64_t{bsq.back().w} * vc.downsample()});
  vae_->decode(summed, image);
  const Tensor host = backend_->to_host(image);
  if (sink.enabled()) sink.add("decode_image", clamp_image(host));
  return to_rgb8(host);
}

Info VargptV11::info() const {
  const VargptV11Config& c = config_;
  Info out = Info::object();
  out.set("family", family()).set("device", device_);
  out.set("llm", llm_->info());
  set_qwen_vl_info(out, c);
  if (c.has_image_gen) {
    const InfinityConfig& ic = infinity_->config();
    const BsqVaeConfig& vc = vae_->config();
    out.set("image", Info::object()
                         .set("bits", ic.bits)
                         .set("depth", ic.depth)
                         .set("width", ic.width)
                         .set("heads", ic.heads)
                         .set("levels", ic.levels)
                         .set("contextRows", ic.uncond_rows)
                         .set("downsample", vc.downsample())
                         .set("imageChannels", vc.image_channels)
                         .set("hasEncoder", vc.has_encoder)
                         .set("weights", infinity_->weights()));
  } else {
    out.set("image", Info::null());
  }
  out.set("imageGenStartId", c.gen.start).set("imageGenEndId", c.gen.end);
  return out;
}

}  // namespace vargpt
