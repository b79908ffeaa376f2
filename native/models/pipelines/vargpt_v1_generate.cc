// One assistant turn: prompt embedding (with image features), prefill, and the token loop that
// either stops on EOS / budget or hands over to the image branch on <|image_gen_start|>.
#include "../common/text_sampling.h"
#include "vargpt_v1_run.h"

namespace vargpt {

void VargptV1::Run::validate() {
  const VargptConfig& c = m_.config_;
  const GenerateRequest& r = req_;
  check_text_request(r, c.llm.vocab);
  VG_CHECK(r.image_grids.empty(), "generate: imageGrids is for vision towers that read images at their own size; "
                                  "VARGPT v1's CLIP takes fixed-size pixelValues");
  const int T = static_cast<int>(r.input_ids.size());

  // Each <image> must already be expanded to the vision token count; runs of image tokens are
  // filled in order by pixelValues (adjacent images make one run of a multiple of that count).
  int64_t images = 0;
  for (int i = 0; i < T;) {
    if (r.input_ids[i] != c.tokens.image) {
      ++i;
      continue;
    }
    int j = i;
    while (j < T && r.input_ids[j] == c.tokens.image) ++j;
    VG_CHECK(c.has_vision, "generate: inputIds holds image tokens (id ", c.tokens.image,
             ") but this checkpoint has no vision tower");
    const int K = c.vision.feature_tokens();
    VG_CHECK((j - i) % K == 0, "generate: inputIds has a run of ", j - i, " image tokens (id ", c.tokens.image,
             ") at position ", i, "; each image needs exactly ", K, " (expand <image> before calling)");
    images += (j - i) / K;
    i = j;
  }
  VG_CHECK(images == static_cast<int64_t>(r.pixel_values.size()), "generate: inputIds holds image tokens for ", images,
           " image(s) but pixelValues has ", r.pixel_values.size());
  if (c.has_vision) {
    const int64_t need = static_cast<int64_t>(c.vision.channels) * c.vision.image_size * c.vision.image_size;
    for (size_t i = 0; i < r.pixel_values.size(); ++i)
      VG_CHECK(r.pixel_values[i].dtype() == DType::F32 && r.pixel_values[i].numel() == need, "generate: pixelValues[", i,
               "] has ", r.pixel_values[i].numel(), " values, expected ", c.vision.channels, "x", c.vision.image_size, "x",
               c.vision.image_size, " = ", need);
  }

  const int reserve = r.force_image && c.has_image_gen ? 1 + c.var.total_tokens : 0;
  VG_CHECK(T + reserve <= c.llm.max_positions, "generate: the prompt has ", T, " tokens",
           reserve ? " (+" + std::to_string(reserve) + " for the image)" : std::string(),
           ", more than the model's max_position_embeddings (", c.llm.max_positions, ")");
  VG_CHECK(!r.force_image || c.has_image_gen, "generate: forceImage needs image generation weights (vargpt_gen.*), "
                                             "which this checkpoint lacks");

  if (!c.has_image_gen) return;
  VG_CHECK(r.has_image_options || !r.force_image, "generate: forceImage needs request.image (VAR sampling options)");
  if (!r.has_image_options) return;
  const ImageOptions& im = r.image;
  image_.cfg = static_cast<float>(im.number("cfg"));
  image_.top_k = im.integer("topK", 0, 1 << 30);
  image_.top_p = static_cast<float>(im.number("topP"));
  image_.seed = im.seed;
  VG_CHECK(image_.top_p > 0 && image_.top_p <= 1, "generate: image.topP must be in (0, 1], got ", image_.top_p);
  image_.replay_indices = im.replayed("indices");
  image_.replay_noise = im.replayed("noise");
  for (const auto& [name, draws] : im.replay)
    VG_CHECK(name == "indices" || name == "noise", "generate: image.replay.", name,
             " is not a VARGPT v1 draw (it replays indices and noise)");
  if (image_.replay_indices || image_.replay_noise) {
    const VarConfig& v = c.var;
    VG_CHECK(image_.replay_indices && image_.replay_noise && image_.replay_indices->size() == size_t(v.scales()) &&
                 image_.replay_noise->size() == size_t(v.scales()),
             "generate: image.replay needs ", v.scales(), " indices and noise arrays (one per scale), got ",
             image_.replay_indices ? image_.replay_indices->size() : 0, " and ",
             image_.replay_noise ? image_.replay_noise->size() : 0);
    for (int si = 0; si < v.scales(); ++si) {
      const Tensor& idx = (*image_.replay_indices)[si];
      const Tensor& noise = (*image_.replay_noise)[si];
      const int64_t l = int64_t{v.patch_nums[si]} * v.patch_nums[si];
      VG_CHECK(idx.dtype() == DType::I32 && idx.numel() == l, "generate: image.replay.indices[", si, "] has ",
               idx.numel(), " values, expected ", l, " (Int32Array)");
      VG_CHECK(noise.dtype() == DType::F32 && noise.numel() == l * c.llm.hidden, "generate: image.replay.noise[", si,
               "] has ", noise.numel(), " values, expected ", l, "x", c.llm.hidden, " = ", l * c.llm.hidden,
               " (Float32Array)");
      const int32_t* ids = idx.data<int32_t>();
      for (int64_t j = 0; j < l; ++j)
        VG_CHECK(ids[j] >= 0 && ids[j] < v.vocab, "generate: image.replay.indices[", si, "][", j, "] = ", ids[j],
                 " is outside the codebook [0, ", v.vocab, ")");
    }
  }
}

Tensor VargptV1::Run::embed_prompt() {
  const VargptConfig& c = m_.config_;
  const std::vector<int32_t>& ids = req_.input_ids;
  const int64_t T = static_cast<int64_t>(ids.size()), H = c.llm.hidden;
  Tensor embeds = b_.empty(DType::F32, {T, H});
  m_.llm_->embed(b_.upload(Tensor::from_host(DType::I32, {T}, ids.data())), embeds);
  if (req_.pixel_values.empty()) return embeds;

  // masked_scatter: the i-th image's projected features fill the i-th block of image tokens.
  Profiler::Stage stage(prof_, "visionEncode");
  const ClipConfig& v = c.vision;
  const int64_t K = v.feature_tokens();
  std::vector<Tensor> pixels, vision, projected;
  size_t image = 0;
  for (int64_t i = 0; i < T;) {
    if (ids[i] != c.tokens.image) {
      ++i;
      continue;
    }
    check_cancel();
    const Tensor px = b_.upload(req_.pixel_values[image].view({v.channels, v.image_size, v.image_size}));
    Tensor feats = b_.empty(DType::F32, {K, v.hidden});
    m_.vision_->encode(px, feats);
    const Tensor dst = embeds.slice(0, i, i + K);
    m_.projector_->run(feats, dst);
    if (trace_.enabled()) {
      pixels.push_back(px);
      vision.push_back(feats);
      projected.push_back(dst);
    }
    ++image;
    i += K;
  }
  trace_.stack("pixelValues", pixels);
  trace_.stack("visionFeatures", vision);
  trace_.stack("imageFeatures", projected);
  return embeds;
}

void VargptV1::Run::emit(int32_t token) {
  res_.tokens.push_back(token);
  history_.push_back(token);
  if (req_.on_token) req_.on_token(token);
}

Tensor VargptV1::Run::step(int32_t token) {
  return m_.llm_->next_logits(token, Positions::sequential(cache_.length(), 1), cache_);
}

void VargptV1::Run::start() {
  const VargptConfig& c = m_.config_;
  validate();
  check_cancel();
  DecoderLlm& llm = *m_.llm_;
  history_ = req_.input_ids;
  const int64_t T = static_cast<int64_t>(req_.input_ids.size());
  logits_ = b_.empty(DType::F32, {1, c.llm.vocab});
  const Tensor embeds = embed_prompt();
  check_cancel();
  Profiler::Stage stage(prof_, "prefill");
  Tensor hidden = b_.empty(DType::F32, {T, c.llm.hidden});
  llm.forward(embeds, Positions::sequential(0, static_cast<int>(T)), &cache_, hidden);
  llm.logits(hidden.slice(0, T - 1, T), logits_);
  if (trace_.enabled()) {
    trace_.add("prefillEmbeds", embeds);
    trace_.add("prefillHidden", hidden);
    trace_.add("prefillLogits", logits_.view({c.llm.vocab}));
  }
  stops_.insert(req_.stop_ids.begin(), req_.stop_ids.end());
  if (!req_.ignore_eos) stops_.insert(c.tokens.eos_all.begin(), c.tokens.eos_all.end());
}

Turn::Next VargptV1::Run::advance(DecodeRow& feed) {
  const VargptConfig& c = m_.config_;
  check_cancel();
  const bool forced = req_.force_image && generated_ == 0;
  if (!forced && generated_ >= req_.max_new_tokens) {
    res_.stop = StopReason::Length;
    return Next::Done;
  }
  int32_t token;
  if (forced) {
    token = c.tokens.image_gen_start;
  } else {
    Profiler::Stage stage(prof_, "sampleText");
    token = choose_text_token(b_, logits_, req_, history_, generated_, c.llm.vocab);
    if (trace_.enabled()) step_logits_.push_back(logits_.view({c.llm.vocab}));
  }
  emit(token);
  ++generated_;
  // A fixed-length text run (ignore_eos, for benchmarks) decodes a sampled image-start token as
  // text: a random-weight model samples it now and then.
  if (c.has_image_gen && token == c.tokens.image_gen_start && (forced || !req_.ignore_eos)) {
    draws_ = true;
    return Next::Draw;
  }
  if (stops_.count(token)) {
    res_.stop = StopReason::Eos;
    return Next::Done;
  }
  if (generated_ >= req_.max_new_tokens || cache_.length() >= c.llm.max_positions) {
    res_.stop = StopReason::Length;
    return Next::Done;
  }
  feed.token = token;
  feed.positions = Positions::sequential(cache_.length(), 1);
  feed.cache = &cache_;
  return Next::Feed;
}

void VargptV1::Run::fed(const Tensor& logits, const Tensor&) { logits_ = logits; }

GenerateResult VargptV1::Run::finish() {
  if (draws_) {
    draw_image();
    res_.stop = StopReason::Image;
  }
  trace_.stack("stepLogits", step_logits_);
  res_.profile = prof_.results();
  return std::move(res_);
}

}  // namespace vargpt
