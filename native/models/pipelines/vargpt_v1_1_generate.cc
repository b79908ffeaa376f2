// One VARGPT-v1.1 assistant turn: the images of the prompt through the Qwen2-VL ViT in one call,
// their merged features in place of the <|image_pad|> tokens, M-RoPE positions, prefill, and the
// token loop (decode positions shifted by rope_delta). Trace names are the fixture's.
#include <algorithm>
#include <set>

#include "../common/text_sampling.h"
#include "vargpt_v1_1_run.h"

namespace vargpt {

void VargptV11::Run::validate() {
  const VargptV11Config& c = m_.config_;
  const GenerateRequest& r = req_;
  check_text_request(r, c.llm.vocab);
  VG_CHECK(c.has_image_gen || !r.force_image,
           "generate: forceImage: this checkpoint has no image-generation weights (vargpt_gen.*, vae_local.*)");
  VG_CHECK(c.has_image_gen || !r.has_image_options,
           "generate: request.image: this checkpoint has no image-generation weights (vargpt_gen.*, vae_local.*)");
  VG_CHECK(!r.force_image || r.has_image_options, "generate: forceImage needs request.image (cfg, tau, topK, topP, scales)");
  if (r.has_image_options) check_image_options();
  const int64_t T = static_cast<int64_t>(r.input_ids.size());
  const bool has_image_tokens = std::find(r.input_ids.begin(), r.input_ids.end(), c.tokens.image) != r.input_ids.end();
  VG_CHECK(c.has_vision || (!has_image_tokens && r.pixel_values.empty()),
           "generate: the request holds an image but this checkpoint has no vision tower (visual.*)");
  VG_CHECK(r.image_grids.size() == r.pixel_values.size(), "generate: imageGrids describes ", r.image_grids.size(),
           " image(s) but pixelValues holds ", r.pixel_values.size());
  std::vector<MergedGrid> merged;
  if (c.has_vision) {
    const Qwen2VlVisionConfig& v = c.vision;
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
  mrope_ = mrope_positions(r.input_ids, c.tokens.image, merged);
  VG_CHECK(T + r.max_new_tokens <= c.llm.max_positions, "generate: the prompt has ", T, " tokens and maxNewTokens is ",
           r.max_new_tokens, ": more than the model's max_position_embeddings (", c.llm.max_positions, ")");
}

Tensor VargptV11::Run::embed_prompt() {
  const VargptV11Config& c = m_.config_;
  const std::vector<int32_t>& ids = req_.input_ids;
  const int64_t T = static_cast<int64_t>(ids.size()), H = c.llm.hidden;
  Tensor embeds = b_.empty(DType::F32, {T, H});
  m_.llm_->embed(b_.upload(Tensor::from_host(DType::I32, {T}, ids.data())), embeds);
  if (trace_.enabled()) trace_.add("input_ids", Tensor::from_host(DType::I32, {T}, ids.data()));
  if (grids_.empty()) return embeds;

  Profiler::Stage stage(prof_, "visionEncode");
  const Qwen2VlVisionConfig& v = c.vision;
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
  }
  check_cancel();
  m_.vision_->encode(pixels, grids_, features, hooks);
  trace_.stack("vit_block_out", block_out);
  trace_.add("merger_out", features);

  // masked_scatter: the merged tokens fill the image-token positions in prompt order.
  int64_t done = 0;
  for (int64_t i = 0; i < T;) {
    if (ids[i] != c.tokens.image) {
      ++i;
      continue;
    }
    int64_t j = i;
    while (j < T && ids[j] == c.tokens.image) ++j;
    b_.copy(features.slice(0, done, done + (j - i)), embeds.slice(0, i, j));
    done += j - i;
    i = j;
  }
  return embeds;
}

void VargptV11::Run::emit(int32_t token) {
  res_.tokens.push_back(token);
  history_.push_back(token);
  if (req_.on_token) req_.on_token(token);
}

Tensor VargptV11::Run::step(int32_t token) {
  const Positions pos = mrope_decode_positions(cache_.length(), 1, mrope_.rope_delta);
  if (trace_.enabled()) step_positions_.insert(step_positions_.end(), pos.ids.begin(), pos.ids.end());
  if (!req_.has_image_options) return m_.llm_->next_logits(token, pos, cache_);
  // A turn that may draw keeps every hidden state: they become the cross-attention context.
  const int64_t H = m_.config_.llm.hidden;
  Tensor x = b_.empty(DType::F32, {1, H});
  m_.llm_->embed(b_.upload(Tensor::from_host(DType::I32, {1}, &token)), x);
  Tensor hidden = b_.empty(DType::F32, {1, H});
  m_.llm_->forward(x, pos, &cache_, hidden);
  ctx_hidden_.push_back(hidden);
  Tensor logits = b_.empty(DType::F32, {1, m_.config_.llm.vocab});
  m_.llm_->logits(hidden, logits);
  return logits;
}

void VargptV11::Run::execute() {
  const VargptV11Config& c = m_.config_;
  validate();
  check_cancel();
  history_ = req_.input_ids;
  const int64_t T = static_cast<int64_t>(req_.input_ids.size());
  const int V = c.llm.vocab;

  Tensor logits = b_.empty(DType::F32, {1, V});
  {
    const Tensor embeds = embed_prompt();
    check_cancel();
    Profiler::Stage stage(prof_, "prefill");
    Tensor hidden = b_.empty(DType::F32, {T, c.llm.hidden});
    m_.llm_->forward(embeds, mrope_.positions, &cache_, hidden);
    m_.llm_->logits(hidden.slice(0, T - 1, T), logits);
    if (req_.has_image_options) ctx_hidden_.push_back(hidden);
    if (trace_.enabled()) {
      trace_.add("mrope_position_ids", Tensor::from_host(DType::I32, {3, T}, mrope_.positions.ids.data()));
      const int32_t delta = static_cast<int32_t>(mrope_.rope_delta);
      trace_.add("rope_deltas", Tensor::from_host(DType::I32, {1}, &delta));
      trace_.add("prefill_inputs_embeds", embeds);
      trace_.add("prefill_hidden", hidden);
      trace_.add("prefill_last_logits", logits.view({V}));
    }
  }

  std::set<int32_t> stops(req_.stop_ids.begin(), req_.stop_ids.end());
  if (!req_.ignore_eos) stops.insert(c.tokens.eos_all.begin(), c.tokens.eos_all.end());
  int generated = 0;
  if (req_.force_image) {
    emit(c.tokens.image_gen_start);
    draw_image();
  }
  while (!req_.force_image && generated < req_.max_new_tokens) {
    check_cancel();
    int32_t token;
    {
      Profiler::Stage stage(prof_, "sampleText");
      token = choose_text_token(b_, logits, req_, history_, generated, V);
      if (trace_.enabled()) step_logits_.push_back(logits.view({V}));
    }
    emit(token);
    ++generated;
    // Upstream hands over to the image decoder here; text ends either way.
    if (token == c.tokens.image_gen_start && req_.has_image_options) {
      draw_image();
      break;
    }
    if (stops.count(token) || token == c.tokens.image_gen_start) {
      res_.stop = StopReason::Eos;
      break;
    }
    if (generated >= req_.max_new_tokens) {
      res_.stop = StopReason::Length;
      break;
    }
    Profiler::Stage stage(prof_, "decode");
    logits = step(token);
    prof_.count("decodeTokens", 1);
  }
  if (req_.max_new_tokens == 0 && !res_.has_image) res_.stop = StopReason::Length;
  trace_.stack("step_logits", step_logits_);
  // One [t, h, w] row per decode step (each step's axis-major positions of one token).
  if (trace_.enabled() && !step_positions_.empty())
    trace_.add("step_position_ids", Tensor::from_host(DType::I32, {static_cast<int64_t>(step_positions_.size() / 3), 3},
                                                      step_positions_.data()));
  if (trace_.enabled()) {
    std::vector<int32_t> all = req_.input_ids;
    all.insert(all.end(), res_.tokens.begin(), res_.tokens.end());
    trace_.add("output_ids", Tensor::from_host(DType::I32, {static_cast<int64_t>(all.size())}, all.data()));
  }
  res_.profile = prof_.results();
}

}  // namespace vargpt
