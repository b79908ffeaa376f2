// BLIP3-o drawing, as upstream's pipeline runs it (spec/blip3o.md 1.2-1.7, and the blip3o-tiny
// fixture's README for what the code does where the spec is loose):
//   stage 1: the prompt (its images read by the vision tower), then the learned queries as
//            embeddings, through the LLM in one causal pass with plain 1-D positions; the queries'
//            final-norm hidden states condition the DiT, sampled by flow matching with CFG against a
//            zero context into grid x grid CLIP features. The " " negative goes the same way once
//            per loaded model and is cached.
//   stage 2: the UNet, guided by [prompt, negative] features and their token means, sampled with
//            EulerDiscrete from the checkpoint's scheduler config; the VAE decodes the latents.
#include <algorithm>
#include <cmath>

#include "../../core/error.h"
#include "../../core/rng.h"
#include "../gen/flow_match.h"
#include "blip3o.h"

namespace vargpt {

namespace {

// The negative's flow noise comes from this seed, not the call's, so a call's image depends on
// its own seed only, whichever call computed the cached negative.
constexpr uint64_t kNegativeSeed = 0;
// SDXL's micro-conditioning as the pipeline hard-codes it: original size 1024 x 1024, no crop.
constexpr double kOriginalSize = 1024;
// [IMG]: generate_image appends this id after the prompt (and after the " " negative), hard-coded.
constexpr int32_t kImageGenToken = 151665;

// Names of `from` appended to `to` with `prefix`.
void append_traces(TraceList& to, TraceList& from, const std::string& prefix) {
  for (auto& [name, t] : from) to.emplace_back(prefix + name, std::move(t));
  from.clear();
}

RgbImage rgb_of(const Tensor& uint8_hwc) {
  RgbImage img;
  img.height = static_cast<int>(uint8_hwc.dim(0));
  img.width = static_cast<int>(uint8_hwc.dim(1));
  const uint8_t* p = uint8_hwc.data<uint8_t>();
  img.data.assign(p, p + uint8_hwc.numel());
  return img;
}

}  // namespace

bool Blip3o::NegativeCache::matches(const DrawOptions& o) const {
  return flow_steps == o.flow_steps && grid == o.grid && mask_last_query == o.mask_last_query && flow_train_timesteps == o.flow_train_timesteps &&
         flow_guidance == o.flow_guidance && flow_shift == o.flow_shift && ids == o.negative_ids;
}

class Blip3o::Draw {
 public:
  Draw(Blip3o& m, const GenerateRequest& r, GenerateResult& res, QwenVlTurn& turn)
      : m_(m), b_(*m.backend_), req_(r), res_(res), turn_(turn) {}

  void run() {
    parse_options();
    const int64_t T = static_cast<int64_t>(req_.input_ids.size());
    VG_CHECK(T >= 1 && req_.input_ids.back() == kImageGenToken, "generate: a BLIP3-o drawing prompt ends with [IMG] (",
             kImageGenToken, ")");
    VG_CHECK(T + m_.n_query_ <= m_.config_.llm.max_positions, "generate: the prompt has ", T, " tokens; with the ",
             m_.n_query_, " queries that is more than max_position_embeddings (", m_.config_.llm.max_positions, ")");
    turn_.validate();

    Tensor clip;
    {
      const Tensor embeds = turn_.embed_prompt();
      turn_.check_cancel();
      Tensor query;
      {
        Profiler::Stage stage(turn_.profiler(), "llm");
        query = query_hidden(embeds, turn_.trace());
      }
      Profiler::Stage stage(turn_.profiler(), "flow");
      const Tensor noise = flow_noise("flow.noise", req_.image.seed);
      turn_.trace().add("flow.noise", noise);
      clip = flow(query, noise, turn_.trace(), "flow");
      turn_.trace().add("clip_features", clip);
    }
    const Tensor negative = negative_features();
    decode(clip, negative);
    res_.has_image = true;
    res_.stop = StopReason::Image;
  }

 private:
  void parse_options() {
    const ImageOptions& im = req_.image;
    o_.flow_steps = im.integer("flowSteps", 1, 1000);
    o_.flow_guidance = static_cast<float>(im.number("flowGuidance"));
    o_.flow_shift = im.number("flowShift");
    VG_CHECK(o_.flow_shift > 0 && o_.flow_shift <= 100, "generate: image.flowShift must be in (0, 100], got ", o_.flow_shift);
    o_.flow_train_timesteps = im.integer("flowTrainTimesteps", 1, 100000);
    o_.steps = im.integer("steps", 1, 1000);
    o_.guidance = static_cast<float>(im.number("guidance"));
    const int multiple = m_.size_multiple();
    o_.width = im.integer("width", multiple, 8192);
    o_.height = im.integer("height", multiple, 8192);
    VG_CHECK(o_.width % multiple == 0 && o_.height % multiple == 0, "generate: image ", o_.width, "x", o_.height,
             ": width and height must be multiples of ", multiple, " (the VAE's and the UNet's downsampling)");
    o_.grid = im.integer("grid", 1, 256);
    o_.mask_last_query = im.integer("maskLastQuery", 0, 1) == 1;
    const auto list = im.lists.find("negativeIds");
    VG_CHECK(list != im.lists.end() && !list->second.empty(), "generate: image.negativeIds is required");
    for (double id : list->second) {
      VG_CHECK(id == std::floor(id) && id >= 0 && id < m_.config_.llm.vocab, "generate: image.negativeIds holds ", id,
               ", not a token id");
      o_.negative_ids.push_back(static_cast<int32_t>(id));
    }
    VG_CHECK(o_.negative_ids.back() == kImageGenToken, "generate: image.negativeIds must end with [IMG] (", kImageGenToken, ")");
    VG_CHECK(o_.negative_ids.size() + m_.n_query_ <= static_cast<size_t>(m_.config_.llm.max_positions),
             "generate: image.negativeIds is too long");
    for (const auto& [name, draws] : im.replay) {
      VG_CHECK(name == "flow.noise" || name == "neg.flow.noise" || name == "unet.noise", "generate: image.replay.", name,
               ": BLIP3-o replays flow.noise, neg.flow.noise and unet.noise");
      VG_CHECK(draws.size() == 1, "generate: image.replay.", name, " holds ", draws.size(), " tensors, expected one");
    }
  }

  // One recorded draw (checked against `shape`) or a fresh one from `seed`, on the backend.
  Tensor noise_of(const char* name, const Shape& shape, uint64_t seed, RngPurpose purpose) {
    Tensor x = b_.empty(DType::F32, shape);
    if (const std::vector<Tensor>* rec = req_.image.replayed(name)) {
      const Tensor& host = rec->front();
      VG_CHECK(host.dtype() == DType::F32 && host.numel() == x.numel(), "generate: image.replay.", name, " has ",
               host.numel(), " values, expected ", shape_string(shape));
      b_.copy(b_.upload(host.view(shape)), x);
    } else {
      b_.randn(x, seed, rng_stream(purpose, 0));
    }
    return x;
  }

  Tensor flow_noise(const char* name, uint64_t seed) {
    const int64_t C = m_.dit_->config().in_channels, g = o_.grid;
    return noise_of(name, {C, g, g}, seed, RngPurpose::FlowNoise);
  }

  // The LLM over embeds ++ queries in one causal pass at positions 0, 1, ...; returns the queries'
  // final-norm hidden states [Q, hidden].
  Tensor query_hidden(const Tensor& embeds, TraceSink& trace) {
    const int64_t T = embeds.dim(0), Q = m_.n_query_, H = m_.config_.llm.hidden, L = m_.config_.llm.layers;
    Tensor x = b_.empty(DType::F32, {T + Q, H});
    b_.copy(embeds, x.slice(0, 0, T));
    b_.copy(m_.latent_queries_, x.slice(0, T, T + Q));
    Tensor hidden = b_.empty(DType::F32, {T + Q, H});
    std::vector<Tensor> states;
    DecoderLlm::LayerHook hook;
    if (trace.enabled()) {
      // HF hidden_states: the inputs, every layer's output but the last, then the final norm.
      states.push_back(b_.to_host(x));
      hook = [&](int layer, const Tensor& h) {
        if (layer < L - 1) states.push_back(b_.to_host(h));
      };
    }
    m_.llm_->forward(x, Positions::sequential(0, static_cast<int>(T + Q)), nullptr, hidden, hook,
                     o_.mask_last_query ? 1 : 0);
    const Tensor query = hidden.slice(0, T, T + Q);
    if (trace.enabled()) {
      states.push_back(b_.to_host(hidden));
      trace.add("prefill_inputs_embeds", x);
      trace.stack("llm_hidden_states", states);
      trace.add("query_hidden", query);
    }
    return query;
  }

  // The guided flow from `noise` conditioned on `query`; returns the CLIP features [g², C]
  // (tokens in row-major grid order, as upstream's view(1792, -1).T).
  Tensor flow(const Tensor& query, const Tensor& noise, TraceSink& trace, const char* stage) {
    const LuminaDitConfig& c = m_.dit_->config();
    const int64_t Q = m_.n_query_, C = c.in_channels, g = o_.grid;
    Tensor ctx = b_.empty(DType::F32, {2, Q, c.caption_dim});
    b_.fill(ctx.select(0), 0.0f);  // upstream's unconditional row: a zero context
    b_.copy(query, ctx.select(1));
    const LuminaDitContext context = m_.dit_->prepare(ctx);
    const FlowMatchSchedule schedule = flow_match_schedule(o_.flow_steps, o_.flow_shift, o_.flow_train_timesteps);
    Tensor x = b_.empty(DType::F32, {C, g, g});
    b_.copy(noise, x);
    std::function<void(int, int)> on_step;
    if (req_.on_image_progress) {
      on_step = [&](int i, int n) { req_.on_image_progress(stage, i, n, RgbImage()); };
    }
    flow_match_sample(
        b_, schedule, o_.flow_guidance, x,
        [&](const Tensor& x2, int64_t t, const Tensor& v2) { m_.dit_->forward(x2, {t, t}, context, v2); },
        trace.enabled() ? &trace : nullptr, req_.cancelled, on_step);
    turn_.profiler().count(std::string(stage) + "Steps", o_.flow_steps);
    Tensor features = b_.empty(DType::F32, {g * g, C});
    b_.transpose(x.view({C, g * g}), features);
    return features;
  }

  // The " " negative's CLIP features: cached per model, computed (and traced under neg.*) when
  // the cache does not hold them for these settings, or when the call replays their noise.
  Tensor negative_features() {
    const bool replayed = req_.image.replayed("neg.flow.noise") != nullptr;
    if (!replayed && m_.negative_ && m_.negative_->matches(o_)) return m_.negative_->clip_features;
    Profiler::Stage stage(turn_.profiler(), "negative");
    TraceList list;
    TraceSink trace(b_, req_.trace ? &list : nullptr);
    const std::vector<int32_t>& ids = o_.negative_ids;
    const int64_t T = static_cast<int64_t>(ids.size());
    trace.add("input_ids", Tensor::from_host(DType::I32, {T}, ids.data()));
    Tensor embeds = b_.empty(DType::F32, {T, m_.config_.llm.hidden});
    m_.llm_->embed(b_.upload(Tensor::from_host(DType::I32, {T}, ids.data())), embeds);
    const Tensor query = query_hidden(embeds, trace);
    const Tensor noise = flow_noise("neg.flow.noise", kNegativeSeed);
    trace.add("flow.noise", noise);
    const Tensor clip = flow(query, noise, trace, "negative");
    trace.add("clip_features", clip);
    append_traces(res_.trace, list, "neg.");
    if (!replayed) {
      NegativeCache cache;
      cache.flow_steps = o_.flow_steps;
      cache.grid = o_.grid;
      cache.mask_last_query = o_.mask_last_query;
      cache.flow_train_timesteps = o_.flow_train_timesteps;
      cache.flow_guidance = o_.flow_guidance;
      cache.flow_shift = o_.flow_shift;
      cache.ids = ids;
      cache.clip_features = clip;
      m_.negative_ = std::move(cache);
    }
    return clip;
  }

  // A preview of the denoised estimate: the latents area-averaged to at most 32 x 32 (a 1/16 or
  // smaller share of the full VAE decode at SDXL's 128 x 128), then decoded.
  RgbImage preview(const Tensor& denoised) {
    Profiler::Stage stage(turn_.profiler(), "preview");
    const int64_t C = denoised.dim(0), h = denoised.dim(1), w = denoised.dim(2);
    int64_t f = 1;
    while (std::max(h, w) / f > 32 && h % (2 * f) == 0 && w % (2 * f) == 0) f *= 2;
    Tensor small = denoised;
    if (f > 1) {
      small = b_.empty(DType::F32, {C, h / f, w / f});
      b_.resize_area(denoised, small);
    }
    const Tensor sample = b_.to_host(m_.decoder_->vae().decode(small, nullptr, req_.cancelled));
    return rgb_of(image01_to_uint8(vae_sample_to_image01(sample)));
  }

  void decode(const Tensor& clip, const Tensor& negative) {
    const int64_t N = clip.dim(0), C = clip.dim(1);
    TraceSink& trace = turn_.trace();
    DiffusionSampleRequest s;
    // The UNet batch is [prompt, negative]; the pooled text embedding is each row's token mean.
    s.context = b_.empty(DType::F32, {2, N, C});
    b_.copy(clip, s.context.select(0));
    b_.copy(negative, s.context.select(1));
    if (m_.decoder_->unet().config().text_time) {
      s.text_embeds = b_.empty(DType::F32, {2, C});
      b_.mean(s.context, 1, s.text_embeds);
      const double ids[6] = {kOriginalSize, kOriginalSize, 0, 0, static_cast<double>(o_.height),
                             static_cast<double>(o_.width)};
      s.time_ids.assign(ids, ids + 6);
      s.time_ids.insert(s.time_ids.end(), ids, ids + 6);
    }
    const UNet2DConfig& u = m_.decoder_->unet().config();
    const int down = m_.decoder_->vae().config().downsample();
    s.noise = noise_of("unet.noise", {u.in_channels, o_.height / down, o_.width / down}, req_.image.seed,
                       RngPurpose::DiffusionNoise);
    s.steps = o_.steps;
    s.guidance = o_.guidance;
    if (trace.enabled()) {
      trace.add("unet.noise", s.noise);
      trace.add("unet.prompt_embeds", s.context);
      if (s.text_embeds.defined()) {
        trace.add("unet.text_embeds", s.text_embeds);
        std::vector<int32_t> ids(s.time_ids.begin(), s.time_ids.end());
        trace.add("unet.time_ids", Tensor::from_host(DType::I32, {static_cast<int64_t>(ids.size())}, ids.data()));
      }
    }
    s.want_denoised = static_cast<bool>(req_.on_image_progress);
    s.cancelled = req_.cancelled;
    s.on_step = [&](int i, int n, const Tensor* denoised) {
      turn_.check_cancel();
      // The last step reports the finished image, after the full decode below.
      if (req_.on_image_progress && i + 1 < n && denoised) req_.on_image_progress("denoise", i, n, preview(*denoised));
      turn_.check_cancel();
    };
    Tensor latents;
    {
      Profiler::Stage stage(turn_.profiler(), "unet");
      latents = m_.decoder_->sample(s, trace.enabled() ? &trace : nullptr);
      turn_.profiler().count("unetSteps", o_.steps);
    }
    Tensor sample;
    {
      Profiler::Stage stage(turn_.profiler(), "vae");
      TraceList list;
      TraceSink vae_trace(b_, req_.trace ? &list : nullptr);
      sample = b_.to_host(m_.decoder_->vae().decode(latents, trace.enabled() ? &vae_trace : nullptr, req_.cancelled));
      // The pipeline's names: the VAE's input and output are vae.input and vae.sample.
      for (auto& [name, t] : list) res_.trace.emplace_back(name == "vae_input" ? "vae.input" : "vae." + name, std::move(t));
    }
    const Tensor image01 = vae_sample_to_image01(sample);
    const Tensor uint8 = image01_to_uint8(image01);
    trace.add("image01", image01);
    trace.add("image_uint8", uint8);
    res_.image = rgb_of(uint8);
    if (req_.on_image_progress) req_.on_image_progress("denoise", o_.steps - 1, o_.steps, res_.image);
  }

  Blip3o& m_;
  Backend& b_;
  const GenerateRequest& req_;
  GenerateResult& res_;
  QwenVlTurn& turn_;
  DrawOptions o_;
};

// A drawing is one turn that leaves at once: its LLM pass, flow and decoder all run in finish(),
// which the binding runs on its own (a drawing is never batched with text).
class Blip3o::DrawTurn final : public Turn {
 public:
  DrawTurn(Blip3o& m, GenerateRequest request)
      : m_(m), req_(std::move(request)), turn_(*m.backend_, m.turn_parts(), req_, res_, false) {}
  Next advance(DecodeRow&) override { return Next::Draw; }
  void fed(const Tensor&, const Tensor&) override { fail("BLIP3-o: a drawing feeds no text tokens"); }
  GenerateResult finish() override {
    Draw(m_, req_, res_, turn_).run();
    res_.profile = turn_.profiler().results();
    return std::move(res_);
  }
  GenerateRequest& request() override { return req_; }
  Profiler& profiler() override { return turn_.profiler(); }

 private:
  Blip3o& m_;
  GenerateRequest req_;
  GenerateResult res_;
  QwenVlTurn turn_;
};

std::unique_ptr<Turn> Blip3o::draw_turn(GenerateRequest request) {
  return std::make_unique<DrawTurn>(*this, std::move(request));
}

}  // namespace vargpt
