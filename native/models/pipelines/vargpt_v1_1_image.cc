// VARGPT-v1.1 text-to-image branch (spec §4.2): after <|image_gen_start|> is fed, its follower is
// recorded but never fed, and Infinity's scales run with the LLM in the loop:
//   Infinity-width input -> image_gen_projector -> LLM (shared cache, cond row; context-free, uncond
//   row) -> image_gen_projector_out -> lvl_embed -> Infinity blocks -> head -> logits / tau -> CFG
//   -> per-bit top-k/top-p draw -> codes -> running sum on the last grid (bilinear)
//   -> bilinear down to the next scale -> word_embed -> next input; then the BSQ VAE decodes the sum.
// Image options (request.image): cfg, tau, topK, topP, seed, and the schedule "scales", a list of
// (h, w) token grids, [[h0, w0], [h1, w1], ...] (or flattened [h0, w0, h1, w1, ...]). replay.bits: per scale h*w*bits values 0/1 (Int32Array), token-major, replace the draws.
// Trace names are the fixture's.
#include <algorithm>
#include <cmath>

#include "../../core/rng.h"
#include "../common/image_out.h"
#include "vargpt_v1_1_run.h"

namespace vargpt {

void VargptV11::Run::check_image_options() {
  const ImageOptions& im = req_.image;
  cfg_ = static_cast<float>(im.number("cfg"));
  tau_ = static_cast<float>(im.number("tau"));
  top_k_ = im.integer("topK", 0, 1 << 30);
  top_p_ = static_cast<float>(im.number("topP"));
  VG_CHECK(std::isfinite(cfg_), "generate: image.cfg must be a finite number");
  VG_CHECK(std::isfinite(tau_) && tau_ > 0, "generate: image.tau must be positive, got ", tau_);
  VG_CHECK(top_p_ > 0 && top_p_ <= 1, "generate: image.topP must be in (0, 1], got ", top_p_);
  const auto it = im.lists.find("scales");
  VG_CHECK(it != im.lists.end() && !it->second.empty(),
           "generate: image.scales (the scale schedule, [[h, w], ...]) is required");
  const std::vector<double>& v = it->second;
  const size_t stride = 2;
  VG_CHECK(v.size() % stride == 0, "generate: image.scales holds ", v.size(), " numbers, not (h, w) pairs");
  scales_.clear();
  std::vector<BsqScale> bsq;
  for (size_t i = 0; i < v.size(); i += stride) {
    const double h = v[i + stride - 2], w = v[i + stride - 1];
    VG_CHECK(h == std::floor(h) && w == std::floor(w) && h >= 1 && w >= 1 && h <= 4096 && w <= 4096,
             "generate: image.scales[", i / stride, "] = (", h, ", ", w, ") must be positive whole sizes");
    scales_.push_back({static_cast<int>(h), static_cast<int>(w)});
    bsq.push_back({static_cast<int>(h), static_cast<int>(w)});
  }
  const InfinityConfig& ic = m_.infinity_->config();
  VG_CHECK(static_cast<int>(scales_.size()) <= ic.levels, "generate: image.scales has ", scales_.size(),
           " scales; the decoder has level embeddings for ", ic.levels);
  check_bsq_scales(bsq, bsq.back().h, bsq.back().w);
  if (const std::vector<Tensor>* bits = im.replayed("bits")) {
    VG_CHECK(bits->size() == scales_.size(), "generate: image.replay.bits has ", bits->size(),
             " entries, one per scale expected (", scales_.size(), ")");
    for (size_t si = 0; si < bits->size(); ++si) {
      const Tensor& t = (*bits)[si];
      const int64_t n = int64_t{scales_[si].h} * scales_[si].w * ic.bits;
      VG_CHECK(t.numel() == n, "generate: image.replay.bits[", si, "] has ", t.numel(), " values, expected ", n,
               " (", scales_[si].h, " x ", scales_[si].w, " tokens x ", ic.bits, " bits)");
      VG_CHECK(t.dtype() == DType::I32, "generate: image.replay.bits[", si, "] must be an Int32Array");
      for (int64_t k = 0; k < n; ++k) {
        const int32_t b = t.data<int32_t>()[k];
        VG_CHECK(b == 0 || b == 1, "generate: image.replay.bits[", si, "][", k, "] = ", b, " is not 0 or 1");
      }
    }
  }
  int64_t tokens = 0;
  for (const Scale& s : scales_) tokens += int64_t{s.h} * s.w;
  VG_CHECK(static_cast<int64_t>(req_.input_ids.size()) + req_.max_new_tokens + 1 + tokens <= m_.config_.llm.max_positions,
           "generate: the prompt, maxNewTokens and the image's ", tokens, " tokens need more than the model's ",
           m_.config_.llm.max_positions, " positions (max_position_embeddings)");
}

namespace {
// Previews decode the running sum area-downsampled to at most this many latent cells per side:
// a small fraction of a full decode, cheap next to one scale.
constexpr int kPreviewLatent = 4;
}  // namespace

RgbImage VargptV11::Run::preview(const Tensor& summed, int h, int w) {
  BsqVae& vae = *m_.vae_;
  const int64_t D = vae.config().bits, ds = vae.config().downsample();
  const int64_t ph = std::min(kPreviewLatent, h), pw = std::min(kPreviewLatent, w);
  Tensor small = b_.empty(DType::F32, {D, ph, pw});
  b_.resize_area(summed, small);
  Tensor image = b_.empty(DType::F32, {vae.config().image_channels, ph * ds, pw * ds});
  vae.decode(small, image);
  return to_rgb8(b_.to_host(image));
}

void VargptV11::Run::draw_image() {
  const VargptV11Config& c = m_.config_;
  DecoderLlm& llm = *m_.llm_;
  InfinityDecoder& inf = *m_.infinity_;
  BsqVae& vae = *m_.vae_;
  const InfinityConfig& ic = inf.config();
  const int64_t H = c.llm.hidden, C = ic.width, K = ic.context_dim, D = ic.bits;
  const int SN = static_cast<int>(scales_.size());
  const Scale last = scales_.back();

  // The cross-attention context is every token before <|image_gen_start|>.
  int64_t L = 0;
  for (const Tensor& t : ctx_hidden_) L += t.shape()[0];
  VG_CHECK(L >= 1 && L <= ic.uncond_rows, "generate: the image's context holds ", L,
           " tokens; the unconditional context (cfg_uncond) has ", ic.uncond_rows, " rows");
  Tensor ctx_hidden = b_.empty(DType::F32, {L, H});
  {
    int64_t row = 0;
    for (const Tensor& t : ctx_hidden_) {
      b_.copy(t, ctx_hidden.slice(0, row, row + t.shape()[0]));
      row += t.shape()[0];
    }
  }
  {
    Profiler::Stage stage(prof_, "imageLlm");
    if (trace_.enabled()) {
      const Positions pos = mrope_decode_positions(cache_.length(), 1, mrope_.rope_delta);
      trace_.add("start_token_position_ids", Tensor::from_host(DType::I32, {3, 1}, pos.ids.data()));
    }
    const Tensor logits = step(c.gen.start);
    if (trace_.enabled()) {
      trace_.add("start_token_hidden", ctx_hidden_.back());
      trace_.add("start_token_logits", logits.view({c.llm.vocab}));
    }
    Tensor idx = b_.empty(DType::I32, {1});
    b_.argmax(logits, idx);
    res_.token_after_image_start = b_.to_host(idx).data<int32_t>()[0];
    if (trace_.enabled()) {
      const int32_t after = res_.token_after_image_start;
      trace_.add("token_after_start", Tensor::from_host(DType::I32, {}, &after));
    }
  }
  emit(res_.token_after_image_start);

  Tensor cond = b_.empty(DType::F32, {2, C});
  Tensor ctx_c = b_.empty(DType::F32, {L, K}), ctx_u = b_.empty(DType::F32, {L, K});
  Tensor x_llm = b_.empty(DType::F32, {2, H});  // scale 0: both rows differ (cond + pos_start)
  {
    Profiler::Stage stage(prof_, "imageCondition");
    Tensor uncond0 = b_.empty(DType::F32, {1, K});
    inf.uncond_rows(1, uncond0);
    inf.condition(m_.sos_row_, uncond0, cond);
    m_.gen_out_->run(ctx_hidden, ctx_c);
    inf.uncond_rows(L, ctx_u);
    Tensor start = b_.empty(DType::F32, {2, C});
    inf.start_input(cond, start);
    m_.gen_in_->run(start, x_llm);
    if (trace_.enabled()) {
      // The fixture's name for text_norm of the two condition rows (the sos row, cfg_uncond[0]).
      Tensor rows = b_.empty(DType::F32, {2, m_.sos_row_.shape()[1]});
      inf.text_norm(m_.sos_row_, rows.slice(0, 0, 1));
      inf.text_norm(uncond0, rows.slice(0, 1, 2));
      trace_.add("sos_embedding_row", rows);
      Tensor gss = b_.empty(DType::F32, {2, 6 * C});
      inf.shared_modulation(cond, gss);
      trace_.add("adaln_cond", cond);
      trace_.add("adaln_gss", gss.view({2, 1, 6, C}));
      trace_.add("ca_context_llm_hidden", ctx_hidden);
      trace_.add("ca_context_cond", ctx_c);
      trace_.add("ca_context_uncond", ctx_u);
      trace_.add("sos_gen_input", start.view({2, 1, C}));
    }
  }
  int64_t total = 0;
  for (const Scale& s : scales_) total += int64_t{s.h} * s.w;
  InfinityScaleCache scache = inf.new_cache(cond, ctx_c, ctx_u, req_.kv_dtype, total);

  Tensor summed = b_.empty(DType::F32, {D, last.h, last.w});
  b_.fill(summed, 0.0f);
  const std::vector<Tensor>* replay = req_.image.replayed("bits");
  for (int si = 0; si < SN; ++si) {
    check_cancel();
    const int h = scales_[si].h, w = scales_[si].w;
    const int64_t n = int64_t{h} * w;
    const std::string key = "s" + std::to_string(si) + ".";

    // LLM rows: hidden [2, n, H]. From scale 1 on both rows share one input.
    Tensor hidden = b_.empty(DType::F32, {2, n, H});
    {
      Profiler::Stage stage(prof_, "imageLlm");
      const Tensor in_c = si == 0 ? x_llm.slice(0, 0, 1) : x_llm;
      const Tensor in_u = si == 0 ? x_llm.slice(0, 1, 2) : x_llm;
      if (trace_.enabled()) {
        trace_.add(key + "llm_inputs_embeds", in_c);
        if (si == 0) trace_.add(key + "llm_inputs_embeds_uncond", in_u);
        const int32_t past = static_cast<int32_t>(cache_.length());
        trace_.add(key + "llm_past_len", Tensor::from_host(DType::I32, {}, &past));
      }
      // Image tokens ignore rope_deltas; the unconditional row sees only its own scale.
      llm.forward(in_c, mrope_decode_positions(cache_.length(), static_cast<int>(n), 0), &cache_, hidden.select(0));
      llm.forward(in_u, mrope_decode_positions(0, static_cast<int>(n), 0), nullptr, hidden.select(1));
      trace_.add(key + "llm_hidden_cond", hidden.select(0));
      trace_.add(key + "llm_hidden_uncond", hidden.select(1));
    }

    Tensor logits = b_.empty(DType::F32, {2, n, 2 * D});
    {
      Profiler::Stage stage(prof_, "infinityBlocks");
      Tensor x = b_.empty(DType::F32, {2, n, C});
      m_.gen_out_->run(hidden, x);
      trace_.add(key + "infinity_input", x);
      inf.add_level_embedding(si, x);
      trace_.add(key + "block_input", x);
      std::vector<Tensor> block_out;
      InfinityDecoder::BlockHook hook;
      if (trace_.enabled()) hook = [&](int, const Tensor& t) { block_out.push_back(b_.to_host(t)); };
      inf.forward(x, h, w, scache, logits, hook);
      trace_.stack(key + "block_out", block_out);
      trace_.add(key + "logits_cond", logits.select(0));
      trace_.add(key + "logits_uncond", logits.select(1));
    }

    Tensor bits = b_.empty(DType::I32, {n * D});
    {
      Profiler::Stage stage(prof_, "sampling");
      // Temperature first, then cfg * c + (1 - cfg) * u, as upstream.
      Tensor guided = b_.empty(DType::F32, {n * D, 2});
      b_.axpby(cfg_ / tau_, logits.select(0).view({n * D, 2}), (1.0f - cfg_) / tau_, logits.select(1).view({n * D, 2}),
               guided);
      Tensor kept = b_.empty(DType::I32, {n * D});
      SamplingParams sp;
      sp.top_k = std::min(top_k_, 2);
      sp.top_p = top_p_;
      sp.temperature = 1.0f;
      sp.seed = req_.image.seed;
      sp.stream = rng_stream(RngPurpose::ImageSampling, static_cast<uint32_t>(si));
      b_.sample(guided, sp, bits, &kept);
      if (replay) {
        b_.copy(b_.upload((*replay)[si].view({n * D})), bits);
      }
      if (trace_.enabled()) {
        trace_.add(key + "logits_combined", guided.view({n, D, 2}));
        // A bit was drawn where top-p kept both classes; otherwise it is the argmax.
        const Tensor k = b_.to_host(kept);
        Tensor drawn = Tensor::empty_host(DType::I32, {n, D});
        for (int64_t i = 0; i < n * D; ++i) drawn.data<int32_t>()[i] = k.data<int32_t>()[i] > 1 ? 1 : 0;
        trace_.add(key + "bit_sampled", drawn);
        trace_.add(key + "bits", bits.view({n, D}));
      }
    }

    {
      Profiler::Stage stage(prof_, "codes");
      Tensor codes = b_.empty(DType::F32, {D, h, w});
      vae.bits_to_codes(bits, {h, w}, codes);
      trace_.add(key + "codes", codes);
      if (h == last.h && w == last.w) {
        b_.add(summed, codes, summed);
      } else {
        Tensor up = b_.empty(DType::F32, {D, last.h, last.w});
        b_.resize_bilinear(codes, up);
        b_.add(summed, up, summed);
      }
      trace_.add(key + "summed_codes", summed);
      if (si + 1 < SN) {
        const int nh = scales_[si + 1].h, nw = scales_[si + 1].w;
        const int64_t nn = int64_t{nh} * nw;
        Tensor next = b_.empty(DType::F32, {D, nh, nw});
        b_.resize_bilinear(summed, next);
        trace_.add(key + "next_input", next);
        Tensor rows = b_.empty(DType::F32, {nn, D});
        b_.transpose(next.view({D, nn}), rows);
        Tensor embedded = b_.empty(DType::F32, {nn, C});
        inf.embed_codes(rows, embedded);
        x_llm = b_.empty(DType::F32, {nn, H});
        m_.gen_in_->run(embedded, x_llm);
        const std::string nkey = "s" + std::to_string(si + 1) + ".";
        trace_.add(nkey + "word_embed_out", embedded);
        trace_.add(nkey + "gen_projector_out", x_llm);
      }
    }
    if (req_.on_image_progress && si + 1 < SN) {
      Profiler::Stage stage(prof_, "preview");
      req_.on_image_progress("scale", si, SN, preview(summed, h, w));
    }
  }

  trace_.add("final_summed_codes", summed);
  Tensor image = b_.empty(DType::F32, {vae.config().image_channels, int64_t{last.h} * vae.config().downsample(),
                                       int64_t{last.w} * vae.config().downsample()});
  {
    Profiler::Stage stage(prof_, "vaeDecode");
    vae.decode(summed, image);
  }
  const Tensor host = b_.to_host(image);
  res_.image = to_rgb8(host);
  res_.has_image = true;
  res_.stop = StopReason::Image;
  if (trace_.enabled()) {
    trace_.add("image_clamped", clamp_image(host));
    trace_.add("image_uint8", Tensor::from_host(DType::U8, {res_.image.height, res_.image.width, 3}, res_.image.data.data()));
  }
  if (req_.on_image_progress) req_.on_image_progress("scale", SN - 1, SN, res_.image);
}

}  // namespace vargpt
