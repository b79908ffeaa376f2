#include "blip3o.h"

#include <sys/stat.h>

#include "../../core/error.h"
#include "../common/config_json.h"

namespace vargpt {

namespace {

const char kDitPrefix[] = "model.dit.model.";
const char kQueries[] = "model.latent_queries";

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

std::unique_ptr<Model> Blip3o::load(const std::string& dir, std::shared_ptr<Backend> backend,
                                    const LoadProgress& progress, const std::function<bool()>& cancelled,
                                     const LoadOptions& options) {
  std::unique_ptr<Blip3o> m(new Blip3o());
  m->backend_ = std::move(backend);
  m->device_ = m->backend_->name();
  // One progress count over the checkpoint and its diffusion-decoder/ folder.
  const std::string decoder_dir = dir + "/diffusion-decoder";
  const uint64_t decoder_bytes = is_file(decoder_dir + "/model_index.json") ? DiffusionDecoder::weight_bytes(decoder_dir) : 0;
  WeightLoader w(SafetensorsCheckpoint::open(dir), *m->backend_, nullptr, cancelled);
  w.set_linear_precision(options.llm_weights);
  w.set_map_weights(options.map_weights);
  const uint64_t main_bytes = w.total_bytes();
  if (progress) w.set_progress([&](uint64_t n, uint64_t) { progress(n, main_bytes + decoder_bytes); });
  const Json root = read_config_json(dir);
  const std::string what = dir + "/config.json";
  m->config_ = parse_qwen_vl_config(root, what, w);
  m->n_query_ = static_cast<int>(json_int(root, "n_query", 0, what));
  VG_CHECK(m->n_query_ >= 0 && m->n_query_ <= 4096, what, ": n_query = ", m->n_query_, " is out of range");
  const int H = m->config_.llm.hidden;
  m->llm_ = std::make_unique<DecoderLlm>(m->config_.llm, w);
  if (m->config_.has_vision) m->vision_ = std::make_unique<Qwen2VlVision>(m->config_.vision, w, "visual.");

  // The generation half. Unknown tensors of the release (the training-only EVA-CLIP tower under
  // model.gen_vision_tower.*) are never read.
  const bool has_dit = w.has(std::string(kDitPrefix) + "patch_embedder.proj.weight");
  if (!has_dit) {
    m->missing_for_drawing_ = "this checkpoint has no DiT weights (model.dit.model.*)";
  } else if (m->n_query_ <= 0 || !w.has(kQueries)) {
    m->missing_for_drawing_ = "this checkpoint has no learned queries (model.latent_queries, config.json n_query)";
  } else if (!is_file(decoder_dir + "/model_index.json")) {
    m->missing_for_drawing_ = "this checkpoint has no diffusion-decoder/ folder (model_index.json, unet/, vae/, scheduler/)";
  }
  if (has_dit) {
    const LuminaDitConfig dc = parse_lumina_dit_config(w, kDitPrefix);
    VG_CHECK(dc.caption_dim == H, dir, ": the DiT reads ", dc.caption_dim, "-wide captions (caption_projection), the LLM's hidden size is ", H);
    VG_CHECK(dc.in_channels == dc.out_channels, dir, ": the DiT maps ", dc.in_channels, " channels to ", dc.out_channels,
             "; a flow needs them equal");
    w.set_linear_precision(options.generator_weights);
    m->dit_ = std::make_unique<LuminaDit>(dc, w, kDitPrefix);
  }
  if (m->n_query_ > 0 && w.has(kQueries)) {
    m->latent_queries_ = w.f32(kQueries, {1, m->n_query_, H}).view({m->n_query_, H});
  }
  m->backend_->synchronize();
  w.finish();
  if (m->missing_for_drawing_.empty()) {
    if (cancelled && cancelled()) throw Cancelled();
    DiffusionDecoder::Progress decoder_progress;
    if (progress) decoder_progress = [&](uint64_t n, uint64_t) { progress(main_bytes + n, main_bytes + decoder_bytes); };
    m->decoder_ = std::make_unique<DiffusionDecoder>(decoder_dir, m->backend_, decoder_progress, cancelled);
    const UNet2DConfig& u = m->decoder_->unet().config();
    const int clip = m->dit_->config().out_channels;
    VG_CHECK(u.cross_attention_dim == clip, decoder_dir, "/unet: cross_attention_dim ", u.cross_attention_dim,
             " differs from the DiT's CLIP width ", clip);
    VG_CHECK(!u.text_time || (u.text_embeds_dim == clip && u.time_ids == 6), decoder_dir,
             "/unet: the text_time embedding reads ", u.text_embeds_dim, " pooled features and ", u.time_ids,
             " time ids per row; BLIP3-o gives ", clip, " and 6");
    VG_CHECK(u.in_channels == u.out_channels && u.in_channels == m->decoder_->vae().config().latent_channels,
             decoder_dir, ": the UNet maps ", u.in_channels, " to ", u.out_channels, " channels, the VAE reads ",
             m->decoder_->vae().config().latent_channels);
  }
  return m;
}

int Blip3o::size_multiple() const {
  return decoder_->vae().config().downsample() * decoder_->unet().config().downsample();
}

class Blip3o::TextTurn final : public Turn {
 public:
  TextTurn(Blip3o& m, GenerateRequest request)
      : req_(std::move(request)), turn_(*m.backend_, m.turn_parts(), req_, res_, false) {
    turn_.validate();
    // BLIP3-o never starts an image from text: it draws only when asked (DrawTurn).
    turn_.begin_decode(turn_.prefill(), -1, false);
  }
  Next advance(DecodeRow& feed) override { return turn_.advance(feed); }
  void fed(const Tensor& logits, const Tensor& hidden) override { turn_.fed(logits, hidden); }
  GenerateResult finish() override {
    turn_.finish_text();
    return std::move(res_);
  }
  GenerateRequest& request() override { return req_; }
  Profiler& profiler() override { return turn_.profiler(); }

 private:
  GenerateRequest req_;
  GenerateResult res_;
  QwenVlTurn turn_;
};

std::unique_ptr<Turn> Blip3o::start_turn(GenerateRequest request) {
  if (request.force_image || request.has_image_options) {
    VG_CHECK(draws(), "generate: this model cannot draw: ", missing_for_drawing_);
    VG_CHECK(request.force_image && request.has_image_options,
             "generate: BLIP3-o draws only when asked (forceImage with request.image)");
    return draw_turn(std::move(request));
  }
  return std::make_unique<TextTurn>(*this, std::move(request));
}

QwenVlParts Blip3o::turn_parts() {
  QwenVlParts parts = qwen_vl_parts(llm_.get(), vision_.get(), config_);
  // The fixture's step_logits are the decode steps' (its first token comes from the prefill's).
  parts.step_logits_include_prefill = false;
  return parts;
}

Info Blip3o::info() const {
  Info out = Info::object();
  out.set("family", family()).set("device", device_);
  out.set("llm", llm_->info());
  set_qwen_vl_info(out, config_);
  out.set("nQuery", n_query_);
  if (!draws()) {
    out.set("image", Info::null());
    out.set("imageUnavailable", missing_for_drawing_);
    return out;
  }
  const LuminaDitConfig& d = dit_->config();
  const UNet2DConfig& u = decoder_->unet().config();
  const AutoencoderKlConfig& v = decoder_->vae().config();
  Info dit = Info::object();
  dit.set("dim", d.dim).set("layers", d.layers).set("heads", d.heads).set("kvHeads", d.kv_heads);
  dit.set("captionDim", d.caption_dim).set("weights", dit_->weights());
  Info unet = Info::object();
  unet.set("blockOutChannels", Info::numbers(u.block_out_channels)).set("latentChannels", u.in_channels).set("sampleSize", u.sample_size);
  unet.set("crossAttentionDim", u.cross_attention_dim).set("downsample", u.downsample());
  Info vae = Info::object();
  vae.set("downsample", v.downsample()).set("latentChannels", v.latent_channels).set("scalingFactor", v.scaling_factor);
  Info image = Info::object();
  image.set("clipWidth", d.out_channels);
  image.set("defaultSize", u.sample_size * v.downsample());
  image.set("sizeMultiple", size_multiple());
  image.set("dit", dit).set("unet", unet).set("vae", vae);
  out.set("image", image);
  return out;
}

}  // namespace vargpt
