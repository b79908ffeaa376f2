#include "qwen_vl_turn.h"

#include <algorithm>
#include <set>

#include "../common/config_json.h"
#include "../common/text_sampling.h"

namespace vargpt {

int config_token_id(const Json& object, const char* key, const std::string& what, bool required) {
  const Json* v = object.find(key);
  if (v == nullptr || v->is_null()) {
    VG_CHECK(!required, what, ": ", key, " is required");
    return -1;
  }
  const int64_t id = json_int(object, key, -1, what);
  VG_CHECK(id >= 0 && id < (int64_t{1} << 30), what, ": ", key, " = ", id, " is not a token id");
  return static_cast<int>(id);
}

void set_qwen_vl_info(Info& out, const QwenVlConfig& c) {
  if (c.has_vision) {
    const Qwen2VlVisionConfig& v = c.vision;
    out.set("vision", Info::object()
                          .set("embedDim", v.embed_dim)
                          .set("depth", v.depth)
                          .set("heads", v.heads)
                          .set("patchSize", v.patch_size)
                          .set("temporalPatchSize", v.temporal_patch)
                          .set("mergeSize", v.merge)
                          .set("channels", v.channels)
                          .set("patchValues", v.patch_values())
                          .set("outHidden", v.out_hidden)
                          .set("windowed", v.windowed()));
  } else {
    out.set("vision", Info::null());
  }
  const QwenVlTokens& t = c.tokens;
  out.set("bosId", t.bos)
      .set("eosIds", Info::numbers(t.eos_all))
      .set("imageTokenId", t.image)
      .set("visionStartId", t.vision_start)
      .set("visionEndId", t.vision_end);
}

QwenVlConfig parse_qwen_vl_config(const Json& root, const std::string& what, const WeightLoader& w) {
  QwenVlConfig c;
  // Qwen2-VL keeps the text model's fields at the root; newer exports nest them in text_config.
  const Json* text = root.find("text_config");
  if (text == nullptr || !text->is_object()) text = &root;
  c.llm = parse_decoder_config(*text, what, w, "");
  VG_CHECK(c.llm.position_axes() == 3, what, ": a Qwen-VL model needs M-RoPE (rope_scaling.mrope_section with 3 sections)");
  c.has_vision = w.has("visual.patch_embed.proj.weight");
  const Json* vision = root.find("vision_config");
  if (c.has_vision) {
    VG_CHECK(vision && vision->is_object(), what, ": the checkpoint has visual.* tensors but no vision_config");
    c.vision = parse_qwen2_vl_vision_config(*vision, what + " vision_config", w, "visual.");
    VG_CHECK(c.vision.out_hidden == c.llm.hidden, what, ": the vision merger's output width ", c.vision.out_hidden,
             " differs from the LLM's hidden_size ", c.llm.hidden);
  }
  QwenVlTokens& t = c.tokens;
  t.bos = config_token_id(root, "bos_token_id", what, false);
  t.eos_all = config_ids(root, "eos_token_id", what);
  VG_CHECK(!t.eos_all.empty(), what, ": eos_token_id is required");
  t.image = config_token_id(root, "image_token_id", what, c.has_vision);
  t.video = config_token_id(root, "video_token_id", what, false);
  t.vision_start = config_token_id(root, "vision_start_token_id", what, c.has_vision);
  t.vision_end = config_token_id(root, "vision_end_token_id", what, c.has_vision);
  for (int id : {t.bos, t.image, t.video, t.vision_start, t.vision_end})
    VG_CHECK(id < c.llm.vocab, what, ": token id ", id, " is outside the vocabulary (", c.llm.vocab, ")");
  for (int id : t.eos_all)
    VG_CHECK(id >= 0 && id < c.llm.vocab, what, ": eos_token_id ", id, " is outside the vocabulary (", c.llm.vocab, ")");
  return c;
}

QwenVlParts qwen_vl_parts(DecoderLlm* llm, Qwen2VlVision* vision, const QwenVlConfig& config) {
  QwenVlParts p;
  p.llm = llm;
  p.vision = vision;
  p.image_token = config.tokens.image;
  p.eos = config.tokens.eos_all;
  return p;
}

QwenVlTurn::QwenVlTurn(Backend& backend, const QwenVlParts& parts, const GenerateRequest& request,
                       GenerateResult& result, bool keep_hidden)
    : b_(backend),
      parts_(parts),
      req_(request),
      res_(result),
      keep_hidden_(keep_hidden),
      trace_(backend, request.trace ? &result.trace : nullptr),
      prof_(backend, request.profile),
      cache_(parts.llm->new_cache(request.kv_dtype)) {}

void QwenVlTurn::validate() {
  const DecoderConfig& lc = parts_.llm->config();
  const GenerateRequest& r = req_;
  check_text_request(r, lc.vocab);
  const int64_t T = static_cast<int64_t>(r.input_ids.size());
  const bool has_image_tokens =
      std::find(r.input_ids.begin(), r.input_ids.end(), parts_.image_token) != r.input_ids.end();
  VG_CHECK(parts_.vision || (!has_image_tokens && r.pixel_values.empty()),
           "generate: the request holds an image but this checkpoint has no vision tower (visual.*)");
  VG_CHECK(r.image_grids.size() == r.pixel_values.size(), "generate: imageGrids describes ", r.image_grids.size(),
           " image(s) but pixelValues holds ", r.pixel_values.size());
  std::vector<MergedGrid> merged;
  if (parts_.vision) {
    const Qwen2VlVisionConfig& v = parts_.vision->config();
    for (size_t i = 0; i < r.image_grids.size(); ++i) {
      const auto& [t, h, w] = r.image_grids[i];
      VG_CHECK(t >= 1 && h >= v.merge && w >= v.merge && h % v.merge == 0 && w % v.merge == 0 && t <= 4096 &&
                   h <= 65536 && w <= 65536,
               "generate: imageGrids[", i, "] = (", t, ", ", h, ", ", w, ") must be positive patch counts with rows and "
               "columns multiples of the merge size ", v.merge);
      const ImageGrid g{t, h, w};
      VG_CHECK(r.pixel_values[i].dtype() == DType::F32 && r.pixel_values[i].numel() == g.patches() * v.patch_values(),
               "generate: pixelValues[", i, "] has ", r.pixel_values[i].numel(), " values, expected ", g.patches(),
               " patches x ", v.patch_values(), " for grid (", t, ", ", h, ", ", w, ")");
      grids_.push_back(g);
      merged.push_back({t, h / v.merge, w / v.merge});
    }
  }
  mrope_ = mrope_positions(r.input_ids, parts_.image_token, merged);
  VG_CHECK(T + r.max_new_tokens <= lc.max_positions, "generate: the prompt has ", T, " tokens and maxNewTokens is ",
           r.max_new_tokens, ": more than the model's max_position_embeddings (", lc.max_positions, ")");
}

Tensor QwenVlTurn::embed_prompt() {
  const std::vector<int32_t>& ids = req_.input_ids;
  const int64_t T = static_cast<int64_t>(ids.size()), H = parts_.llm->config().hidden;
  Tensor embeds = b_.empty(DType::F32, {T, H});
  parts_.llm->embed(b_.upload(Tensor::from_host(DType::I32, {T}, ids.data())), embeds);
  if (trace_.enabled()) {
    trace_.add("input_ids", Tensor::from_host(DType::I32, {T}, ids.data()));
    // The processor's token types: 1 at image tokens.
    std::vector<int32_t> types(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) types[i] = ids[i] == parts_.image_token ? 1 : 0;
    trace_.add("mm_token_type_ids", Tensor::from_host(DType::I32, {T}, types.data()));
  }
  if (grids_.empty()) return embeds;

  Profiler::Stage stage(prof_, "visionEncode");
  const Qwen2VlVisionConfig& v = parts_.vision->config();
  int64_t patches = 0;
  for (const ImageGrid& g : grids_) patches += g.patches();
  // Every image of the prompt in one call: attention stays inside each image (segments).
  Tensor host = Tensor::empty_host(DType::F32, {patches, v.patch_values()});
  int64_t row = 0;
  for (const Tensor& px : req_.pixel_values) {
    std::copy(px.data<float>(), px.data<float>() + px.numel(), host.data<float>() + row * v.patch_values());
    row += px.numel() / v.patch_values();
  }
  const Tensor pixels = b_.upload(host);
  const int64_t m2 = int64_t{v.merge} * v.merge;
  Tensor features = b_.empty(DType::F32, {patches / m2, H});
  std::vector<Tensor> block_out;
  Qwen2VlVision::Hooks hooks;
  if (trace_.enabled()) {
    std::vector<int32_t> thw;
    for (const ImageGrid& g : grids_) thw.insert(thw.end(), {g.t, g.h, g.w});
    trace_.add("pixel_values", host);
    trace_.add("image_grid_thw", Tensor::from_host(DType::I32, {static_cast<int64_t>(grids_.size()), 3}, thw.data()));
    hooks.patch_embed = [&](const Tensor& h) { trace_.add("vit_patch_embed", h); };
    hooks.block_out = [&](int, const Tensor& h) { block_out.push_back(b_.to_host(h)); };
    hooks.windows = [&](const VisionWindows& w) {
      trace_.add("vit_window_index",
                 Tensor::from_host(DType::I32, {static_cast<int64_t>(w.index.size())}, w.index.data()));
      std::vector<int32_t> cu(w.cu_seqlens.begin(), w.cu_seqlens.end());
      trace_.add("vit_cu_window_seqlens", Tensor::from_host(DType::I32, {static_cast<int64_t>(cu.size())}, cu.data()));
    };
    hooks.merger_windowed = [&](const Tensor& f) { trace_.add("vit_merger_windowed", f); };
  }
  check_cancel();
  parts_.vision->encode(pixels, grids_, features, hooks);
  trace_.stack("vit_block_out", block_out);
  // VARGPT-v1.1's fixture calls the merged features merger_out, BLIP3-o's vit_out.
  trace_.add(v.windowed() ? "vit_out" : "merger_out", features);

  // masked_scatter: the merged tokens fill the image-token positions in prompt order.
  int64_t done = 0;
  for (int64_t i = 0; i < T;) {
    if (ids[i] != parts_.image_token) {
      ++i;
      continue;
    }
    int64_t j = i;
    while (j < T && ids[j] == parts_.image_token) ++j;
    b_.copy(features.slice(0, done, done + (j - i)), embeds.slice(0, i, j));
    done += j - i;
    i = j;
  }
  return embeds;
}

void QwenVlTurn::emit(int32_t token) {
  res_.tokens.push_back(token);
  history_.push_back(token);
  if (req_.on_token) req_.on_token(token);
}

Tensor QwenVlTurn::step(int32_t token) {
  const DecoderConfig& lc = parts_.llm->config();
  std::vector<DecodeRow> rows(1);
  rows[0].token = token;
  rows[0].positions = mrope_decode_positions(cache_.length(), 1, mrope_.rope_delta);
  rows[0].cache = &cache_;
  if (trace_.enabled()) step_positions_.insert(step_positions_.end(), rows[0].positions.ids.begin(), rows[0].positions.ids.end());
  Tensor hidden = b_.empty(DType::F32, {1, lc.hidden});
  Tensor logits = b_.empty(DType::F32, {1, lc.vocab});
  parts_.llm->decode_step(rows, hidden, logits);
  if (keep_hidden_) hidden_.push_back(hidden);
  return logits;
}

Tensor QwenVlTurn::prefill() {
  check_cancel();
  history_ = req_.input_ids;
  const int64_t T = static_cast<int64_t>(req_.input_ids.size());
  const DecoderConfig& lc = parts_.llm->config();
  Tensor logits = b_.empty(DType::F32, {1, lc.vocab});
  const Tensor embeds = embed_prompt();
  check_cancel();
  Profiler::Stage stage(prof_, "prefill");
  Tensor hidden = b_.empty(DType::F32, {T, lc.hidden});
  parts_.llm->forward(embeds, mrope_.positions, &cache_, hidden);
  parts_.llm->logits(hidden.slice(0, T - 1, T), logits);
  if (keep_hidden_) hidden_.push_back(hidden);
  if (trace_.enabled()) {
    trace_.add("mrope_position_ids", Tensor::from_host(DType::I32, {3, T}, mrope_.positions.ids.data()));
    const int32_t delta = static_cast<int32_t>(mrope_.rope_delta);
    trace_.add("rope_deltas", Tensor::from_host(DType::I32, {1}, &delta));
    trace_.add("prefill_inputs_embeds", embeds);
    trace_.add("prefill_hidden", hidden);
    trace_.add("prefill_last_logits", logits.view({lc.vocab}));
  }
  return logits;
}

void QwenVlTurn::begin_decode(Tensor logits, int image_start, bool draws) {
  logits_ = std::move(logits);
  image_start_ = image_start;
  draws_ = draws && image_start >= 0;
  stops_.insert(req_.stop_ids.begin(), req_.stop_ids.end());
  if (!req_.ignore_eos) stops_.insert(parts_.eos.begin(), parts_.eos.end());
  VG_CHECK(!req_.force_image || draws_, "generate: forceImage: this model cannot draw");
}

Turn::Next QwenVlTurn::advance(DecodeRow& feed) {
  const int V = parts_.llm->config().vocab;
  if (req_.force_image) {
    if (forced_) return Turn::Next::Done;
    forced_ = true;
    emit(image_start_);
    return Turn::Next::Draw;
  }
  if (generated_ >= req_.max_new_tokens) return Turn::Next::Done;
  check_cancel();
  int32_t token;
  {
    Profiler::Stage stage(prof_, "sampleText");
    token = choose_text_token(b_, logits_, req_, history_, generated_, V);
    if (trace_.enabled() && (generated_ > 0 || parts_.step_logits_include_prefill)) step_logits_.push_back(logits_.view({V}));
  }
  emit(token);
  ++generated_;
  // Upstream hands over to the image decoder here; text ends either way.
  if (image_start_ >= 0 && token == image_start_ && draws_) return Turn::Next::Draw;
  if (stops_.count(token) || (image_start_ >= 0 && token == image_start_)) {
    res_.stop = StopReason::Eos;
    return Turn::Next::Done;
  }
  if (generated_ >= req_.max_new_tokens || cache_.length() >= parts_.llm->config().max_positions) {
    res_.stop = StopReason::Length;
    return Turn::Next::Done;
  }
  feed.token = token;
  feed.positions = mrope_decode_positions(cache_.length(), 1, mrope_.rope_delta);
  feed.cache = &cache_;
  if (trace_.enabled()) step_positions_.insert(step_positions_.end(), feed.positions.ids.begin(), feed.positions.ids.end());
  return Turn::Next::Feed;
}

void QwenVlTurn::fed(const Tensor& logits, const Tensor& hidden) {
  logits_ = logits;
  if (keep_hidden_) hidden_.push_back(hidden);
}

void QwenVlTurn::finish_text() {
  if (req_.max_new_tokens == 0 && !res_.has_image) res_.stop = StopReason::Length;
  trace_.stack("step_logits", step_logits_);
  // One [t, h, w] row per decode step (each step's axis-major positions of one token).
  if (trace_.enabled() && !step_positions_.empty())
    trace_.add("step_position_ids", Tensor::from_host(DType::I32, {static_cast<int64_t>(step_positions_.size() / 3), 3},
                                                      step_positions_.data()));
  if (trace_.enabled()) {
    trace_.add("generated_ids", Tensor::from_host(DType::I32, {static_cast<int64_t>(res_.tokens.size())}, res_.tokens.data()));
    std::vector<int32_t> all = req_.input_ids;
    all.insert(all.end(), res_.tokens.begin(), res_.tokens.end());
    trace_.add("output_ids", Tensor::from_host(DType::I32, {static_cast<int64_t>(all.size())}, all.data()));
  }
  res_.profile = prof_.results();
}

}  // namespace vargpt
