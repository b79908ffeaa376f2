// loadDiffusionDecoder(dir, device) -> Promise<DiffusionDecoder>: a diffusers decoder folder (the
// SDXL-layout UNet, the EulerDiscrete scheduler and the AutoencoderKL decoder of BLIP3-o's
// diffusion-decoder/) alone, for checking each block against its reference before the family's
// pipeline runs them. Methods: config(), schedule(steps), unetStep(...), vaeDecode(...),
// sample(...). Calls run one at a time, in order, off the JS thread.
#include <cmath>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "../models/common/trace.h"
#include "../models/diffusion/diffusion_decoder.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

struct DecoderState {
  std::shared_ptr<Backend> backend;
  std::unique_ptr<DiffusionDecoder> decoder;
  std::string device;
  std::mutex call_mutex;
};
using StatePtr = std::shared_ptr<DecoderState>;

using Traced = std::vector<std::pair<std::string, Tensor>>;

struct CallResult {
  Traced outputs;  // named results
  Traced trace;
};

Napi::Value result_to_js(Napi::Env env, CallResult& r) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [name, t] : r.outputs) out.Set(name, tensor_to_js(env, t));
  if (!r.trace.empty()) {
    Napi::Object trace = Napi::Object::New(env);
    for (const auto& [name, t] : r.trace) trace.Set(name, tensor_to_js(env, t));
    out.Set("trace", trace);
  }
  return out;
}

Napi::Object options_of(const Napi::CallbackInfo& info, const char* call) {
  VG_CHECK(info.Length() == 1 && info[0].IsObject() && !info[0].IsArray(), call, ": expected one options object");
  return info[0].As<Napi::Object>();
}

// An owned host f32 copy of options[key] ({ dtype: 'f32', shape, data }) of the given rank.
Tensor f32_option(const Napi::Object& o, const char* key, size_t rank, const std::string& call) {
  const std::string what = call + ": " + key;
  VG_CHECK(o.Has(key), what, " is missing");
  const Tensor t = tensor_from_js(o.Get(key), what.c_str());
  VG_CHECK(t.dtype() == DType::F32 && static_cast<size_t>(t.rank()) == rank, what, " is ", t.describe(), ", expected an f32 tensor of rank ",
           rank);
  return t.contiguous_copy();
}

// A number or an array / typed array of finite numbers.
std::vector<double> numbers_option(const Napi::Object& o, const char* key, const std::string& call) {
  const std::string what = call + ": " + key;
  VG_CHECK(o.Has(key), what, " is missing");
  const Napi::Value v = o.Get(key);
  std::vector<double> out;
  if (v.IsNumber()) {
    out.push_back(v.As<Napi::Number>().DoubleValue());
  } else if (v.IsArray() || v.IsTypedArray()) {
    const Napi::Object a = v.As<Napi::Object>();
    const uint32_t n = a.Get("length").As<Napi::Number>().Uint32Value();
    for (uint32_t i = 0; i < n; ++i) {
      const Napi::Value e = a.Get(i);
      VG_CHECK(e.IsNumber() || e.IsBigInt(), what, "[", i, "] is not a number");
      bool lossless = true;
      out.push_back(e.IsNumber() ? e.As<Napi::Number>().DoubleValue()
                                 : static_cast<double>(e.As<Napi::BigInt>().Int64Value(&lossless)));
    }
  } else {
    fail(what, " must be a number or an array of numbers");
  }
  VG_CHECK(!out.empty(), what, " is empty");
  for (double x : out) VG_CHECK(std::isfinite(x), what, " holds a non-finite value");
  return out;
}

bool trace_option(const Napi::Object& o) { return o.Has("trace") && o.Get("trace").ToBoolean().Value(); }

int steps_value(const Napi::Value& v, const char* call) {
  VG_CHECK(v.IsNumber(), call, ": steps must be a number");
  const double s = v.As<Napi::Number>().DoubleValue();
  VG_CHECK(s >= 1 && s <= 10000 && s == static_cast<int>(s), call, ": steps must be an integer from 1 to 10000, got ",
           s);
  return static_cast<int>(s);
}

Napi::Array int_array(Napi::Env env, const std::vector<int>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

Napi::Value config(const Napi::CallbackInfo& info, const StatePtr& s) {
  Napi::Env env = info.Env();
  const UNet2DConfig& u = s->decoder->unet().config();
  const AutoencoderKlConfig& v = s->decoder->vae().config();
  const EulerDiscreteConfig& e = s->decoder->scheduler();
  Napi::Object o = Napi::Object::New(env);
  o.Set("device", s->device);
  Napi::Object unet = Napi::Object::New(env);
  unet.Set("inChannels", u.in_channels);
  unet.Set("outChannels", u.out_channels);
  unet.Set("blockOutChannels", int_array(env, u.block_out_channels));
  unet.Set("heads", int_array(env, u.heads));
  unet.Set("crossAttentionDim", u.cross_attention_dim);
  unet.Set("timeEmbedDim", u.time_embed_dim);
  unet.Set("textEmbedsDim", u.text_embeds_dim);
  unet.Set("timeIds", u.time_ids);
  unet.Set("additionTimeEmbedDim", u.addition_time_embed_dim);
  o.Set("unet", unet);
  Napi::Object vae = Napi::Object::New(env);
  vae.Set("latentChannels", v.latent_channels);
  vae.Set("imageChannels", v.image_channels);
  vae.Set("scalingFactor", v.scaling_factor);
  vae.Set("downsample", v.downsample());
  std::vector<int> widths;
  for (int m : v.decoder.ch_mult) widths.push_back(v.decoder.ch * m);
  vae.Set("blockOutChannels", int_array(env, widths));
  vae.Set("resnetsPerUpBlock", v.decoder.blocks);
  o.Set("vae", vae);
  Napi::Object sch = Napi::Object::New(env);
  sch.Set("numTrainTimesteps", e.num_train_timesteps);
  sch.Set("betaSchedule", e.beta_schedule);
  sch.Set("timestepSpacing", e.timestep_spacing);
  sch.Set("stepsOffset", e.steps_offset);
  o.Set("scheduler", sch);
  return o;
}

Napi::Value schedule(const Napi::CallbackInfo& info, const StatePtr& s) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    VG_CHECK(info.Length() == 1, "schedule(steps): one argument");
    const EulerSchedule sch = euler_schedule(s->decoder->scheduler(), steps_value(info[0], "schedule"));
    Napi::Object o = Napi::Object::New(env);
    Napi::Float32Array t = Napi::Float32Array::New(env, sch.timesteps.size());
    std::copy(sch.timesteps.begin(), sch.timesteps.end(), t.Data());
    Napi::Float32Array sg = Napi::Float32Array::New(env, sch.sigmas.size());
    std::copy(sch.sigmas.begin(), sch.sigmas.end(), sg.Data());
    o.Set("timesteps", t);
    o.Set("sigmas", sg);
    o.Set("initNoiseSigma", static_cast<double>(sch.init_noise_sigma));
    return o;
  });
}

// unetStep({ sample [B, C, h, w], timestep, encoderHiddenStates [B, L, X], textEmbeds [B, T],
// timeIds (B x ids), trace }) -> { eps, trace? }
Napi::Value unet_step(const Napi::CallbackInfo& info, const StatePtr& s) {
  Napi::Env env = info.Env();
  UNet2DInputs in;
  bool trace = false;
  try {
    const char* call = "unetStep";
    const Napi::Object o = options_of(info, call);
    in.sample = f32_option(o, "sample", 4, call);
    in.timestep = numbers_option(o, "timestep", call);
    in.context = f32_option(o, "encoderHiddenStates", 3, call);
    if (s->decoder->unet().config().text_time) {
      in.text_embeds = f32_option(o, "textEmbeds", 2, call);
      in.time_ids = numbers_option(o, "timeIds", call);
    }
    trace = trace_option(o);
  } catch (const std::exception& e) {
    return rejected_promise(env, e.what());
  }
  StatePtr state = s;
  return PromiseWorker<CallResult>::start(
      env, "vargpt.diffusionDecoder.unetStep",
      [state, in, trace]() {
        std::lock_guard<std::mutex> lock(state->call_mutex);
        Backend& b = *state->backend;
        CallResult r;
        TraceSink sink(b, trace ? &r.trace : nullptr);
        UNet2DInputs dev = in;
        dev.sample = b.upload(in.sample);
        dev.context = b.upload(in.context);
        if (in.text_embeds.defined()) dev.text_embeds = b.upload(in.text_embeds);
        const Tensor eps = state->decoder->unet().forward(dev, trace ? &sink : nullptr);
        r.outputs.emplace_back("eps", b.to_host(eps));
        return r;
      },
      result_to_js);
}

// vaeDecode({ latents [C, h, w], trace }) -> { sample, image01, imageUint8, trace? }
Napi::Value vae_decode(const Napi::CallbackInfo& info, const StatePtr& s) {
  Napi::Env env = info.Env();
  Tensor latents;
  bool trace = false;
  try {
    const Napi::Object o = options_of(info, "vaeDecode");
    latents = f32_option(o, "latents", 3, "vaeDecode");
    trace = trace_option(o);
  } catch (const std::exception& e) {
    return rejected_promise(env, e.what());
  }
  StatePtr state = s;
  return PromiseWorker<CallResult>::start(
      env, "vargpt.diffusionDecoder.vaeDecode",
      [state, latents, trace]() {
        std::lock_guard<std::mutex> lock(state->call_mutex);
        Backend& b = *state->backend;
        CallResult r;
        TraceSink sink(b, trace ? &r.trace : nullptr);
        const Tensor sample = b.to_host(state->decoder->vae().decode(b.upload(latents), trace ? &sink : nullptr));
        const Tensor image01 = vae_sample_to_image01(sample);
        r.outputs.emplace_back("sample", sample);
        r.outputs.emplace_back("image01", image01);
        r.outputs.emplace_back("imageUint8", image01_to_uint8(image01));
        return r;
      },
      result_to_js);
}

// sample({ encoderHiddenStates [2, L, X] (cond, uncond), textEmbeds [2, T], timeIds, noise [C, h, w],
// steps, guidance, decode, trace }) -> { latents, sample?, image01?, imageUint8?, trace? }
Napi::Value sample(const Napi::CallbackInfo& info, const StatePtr& s) {
  Napi::Env env = info.Env();
  DiffusionSampleRequest req;
  bool trace = false, decode = true;
  try {
    const char* call = "sample";
    const Napi::Object o = options_of(info, call);
    req.context = f32_option(o, "encoderHiddenStates", 3, call);
    if (s->decoder->unet().config().text_time) {
      req.text_embeds = f32_option(o, "textEmbeds", 2, call);
      req.time_ids = numbers_option(o, "timeIds", call);
    }
    req.noise = f32_option(o, "noise", 3, call);
    if (o.Has("steps")) req.steps = steps_value(o.Get("steps"), call);
    if (o.Has("guidance")) {
      VG_CHECK(o.Get("guidance").IsNumber(), call, ": guidance must be a number");
      const double g = o.Get("guidance").As<Napi::Number>().DoubleValue();
      VG_CHECK(std::isfinite(g), call, ": guidance must be finite");
      req.guidance = static_cast<float>(g);
    }
    if (o.Has("decode")) decode = o.Get("decode").ToBoolean().Value();
    trace = trace_option(o);
  } catch (const std::exception& e) {
    return rejected_promise(env, e.what());
  }
  StatePtr state = s;
  return PromiseWorker<CallResult>::start(
      env, "vargpt.diffusionDecoder.sample",
      [state, req, trace, decode]() {
        std::lock_guard<std::mutex> lock(state->call_mutex);
        Backend& b = *state->backend;
        CallResult r;
        TraceSink sink(b, trace ? &r.trace : nullptr);
        DiffusionSampleRequest dev = req;
        dev.context = b.upload(req.context);
        if (req.text_embeds.defined()) dev.text_embeds = b.upload(req.text_embeds);
        dev.noise = b.upload(req.noise);
        const Tensor latents = state->decoder->sample(dev, trace ? &sink : nullptr);
        r.outputs.emplace_back("latents", b.to_host(latents));
        if (decode) {
          // The whole-pipeline trace names the VAE's input and output vae.input / vae.sample.
          Traced vae_trace;
          TraceSink vae_sink(b, trace ? &vae_trace : nullptr);
          const Tensor sample = b.to_host(state->decoder->vae().decode(latents, trace ? &vae_sink : nullptr));
          for (auto& [name, t] : vae_trace) r.trace.emplace_back(name == "vae_input" ? "vae.input" : "vae." + name, t);
          const Tensor image01 = vae_sample_to_image01(sample);
          r.outputs.emplace_back("sample", sample);
          r.outputs.emplace_back("image01", image01);
          r.outputs.emplace_back("imageUint8", image01_to_uint8(image01));
        }
        return r;
      },
      result_to_js);
}

using Method = Napi::Value (*)(const Napi::CallbackInfo&, const StatePtr&);

Napi::Object wrap(Napi::Env env, const StatePtr& state) {
  Napi::Object o = Napi::Object::New(env);
  const std::pair<const char*, Method> methods[] = {
      {"config", config}, {"schedule", schedule}, {"unetStep", unet_step}, {"vaeDecode", vae_decode}, {"sample", sample}};
  for (const auto& entry : methods) {
    // Each function holds the state until it is collected. (A structured binding cannot be
    // captured in C++17: clang, the macOS compiler, rejects it.)
    const Method method = entry.second;
    o.Set(entry.first, Napi::Function::New(
                           env, [state, method](const Napi::CallbackInfo& info) { return method(info, state); },
                           entry.first));
  }
  return o;
}

Napi::Value load_diffusion_decoder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "loadDiffusionDecoder";
  if (info.Length() < 1 || !info[0].IsString() || (info.Length() > 1 && !info[1].IsString()))
    return rejected_promise(env, std::string(call) + "(dir, device?): dir and device must be strings");
  const std::string dir = info[0].As<Napi::String>().Utf8Value();
  const std::string device = info.Length() > 1 ? info[1].As<Napi::String>().Utf8Value() : "cpu";
  return PromiseWorker<StatePtr>::start(
      env, call,
      [dir, device]() {
        auto state = std::make_shared<DecoderState>();
        state->backend = create_backend(device);
        state->device = state->backend->name();
        state->decoder = std::make_unique<DiffusionDecoder>(dir, state->backend);
        return state;
      },
      [](Napi::Env env, StatePtr& state) -> Napi::Value { return wrap(env, state); });
}

}  // namespace

void init_diffusion_decoder(Napi::Env env, Napi::Object exports) {
  exports.Set("loadDiffusionDecoder", Napi::Function::New(env, load_diffusion_decoder));
}

}  // namespace vargpt::binding
