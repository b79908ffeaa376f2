// loadBlip3oDit(dir, device) -> Promise<Blip3oDit>: a BLIP3-o checkpoint's Lumina-Next DiT alone
// (tensors under "model.dit.model."), for checking it and the stage-1 flow sampler against their
// reference before the family's pipeline runs them. forward() is one DiT call on a batch;
// sample() the guided flow loop from recorded noise. Calls run one at a time, in order.
#include <cmath>
#include <memory>
#include <mutex>

#include "../core/safetensors.h"
#include "../models/common/trace.h"
#include "../models/gen/flow_match.h"
#include "../models/gen/lumina_dit.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

const char* const kPrefix = "model.dit.model.";

struct DitState {
  std::shared_ptr<Backend> backend;
  std::unique_ptr<LuminaDit> dit;
  std::mutex call_mutex;
};

using Trace = std::vector<std::pair<std::string, Tensor>>;

struct DitResult {
  Tensor v, clip_features;
  Trace trace;
};

Napi::FunctionReference& dit_class_of(Napi::Env env) { return addon_data(env).dit_class; }

std::vector<float> floats(const Napi::Object& o, const char* key, const char* what) {
  const Napi::Value v = o.Get(key);
  VG_CHECK(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array, what,
           " must be a Float32Array");
  const auto a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

double number(const Napi::Object& o, const char* key, const char* what) {
  const Napi::Value v = o.Get(key);
  VG_CHECK(v.IsNumber(), what, " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  VG_CHECK(std::isfinite(d), what, " must be finite, got ", d);
  return d;
}

int integer(const Napi::Object& o, const char* key, const char* what) {
  const double d = number(o, key, what);
  VG_CHECK(d == std::floor(d) && std::fabs(d) < 1e9, what, " must be an integer, got ", d);
  return static_cast<int>(d);
}

bool flag(const Napi::Object& o, const char* key, const char* what) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return false;
  VG_CHECK(v.IsBoolean(), what, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// An array of integers: a JS Array of numbers, an Int32Array or a BigInt64Array.
std::vector<int64_t> integers(const Napi::Object& o, const char* key, const char* what) {
  const Napi::Value v = o.Get(key);
  std::vector<int64_t> out;
  if (v.IsTypedArray()) {
    const auto t = v.As<Napi::TypedArray>();
    if (t.TypedArrayType() == napi_int32_array) {
      const auto a = v.As<Napi::Int32Array>();
      out.assign(a.Data(), a.Data() + a.ElementLength());
      return out;
    }
    if (t.TypedArrayType() == napi_bigint64_array) {
      const auto a = v.As<Napi::BigInt64Array>();
      out.assign(a.Data(), a.Data() + a.ElementLength());
      return out;
    }
  } else if (v.IsArray()) {
    const auto a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      const Napi::Value e = a.Get(i);
      VG_CHECK(e.IsNumber(), what, "[", i, "] must be a number");
      const double d = e.As<Napi::Number>().DoubleValue();
      VG_CHECK(d == std::floor(d) && std::fabs(d) < 9e15, what, "[", i, "] must be an integer, got ", d);
      out.push_back(static_cast<int64_t>(d));
    }
    return out;
  }
  throw Error(std::string(what) + " must be an Array of integers, an Int32Array or a BigInt64Array");
}

// The side of the square grid holding `tokens` tokens; throws when it is not a square.
int grid_of(int64_t tokens, const char* what) {
  const int g = static_cast<int>(std::lround(std::sqrt(static_cast<double>(tokens))));
  VG_CHECK(tokens >= 1 && int64_t{g} * g == tokens, what, " holds ", tokens, " tokens, not a square grid");
  return g;
}

Napi::Value result_to_js(Napi::Env env, DitResult& r) {
  Napi::Object out = Napi::Object::New(env);
  if (r.v.defined()) out.Set("v", tensor_to_js(env, r.v));
  if (r.clip_features.defined()) out.Set("clipFeatures", tensor_to_js(env, r.clip_features));
  if (!r.trace.empty()) {
    Napi::Object t = Napi::Object::New(env);
    for (const auto& [name, tensor] : r.trace) t.Set(name, tensor_to_js(env, tensor));
    out.Set("trace", t);
  }
  return out;
}

class DitWrap : public Napi::ObjectWrap<DitWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Blip3oDit",
                       {InstanceMethod("config", &DitWrap::config), InstanceMethod("forward", &DitWrap::forward),
                        InstanceMethod("sample", &DitWrap::sample)});
  }
  explicit DitWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DitWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use loadBlip3oDit(dir, device) to load a DiT");
    state_ = *info[0].As<Napi::External<std::shared_ptr<DitState>>>().Data();
  }

 private:
  Napi::Value config(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const LuminaDitConfig& c = state_->dit->config();
    Napi::Object out = Napi::Object::New(env);
    out.Set("device", state_->backend->name());
    out.Set("dim", c.dim);
    out.Set("layers", c.layers);
    out.Set("heads", c.heads);
    out.Set("kvHeads", c.kv_heads);
    out.Set("headDim", c.head_dim);
    out.Set("ffnHidden", c.ffn_hidden);
    out.Set("inChannels", c.in_channels);
    out.Set("outChannels", c.out_channels);
    out.Set("captionDim", c.caption_dim);
    out.Set("tembDim", c.temb_dim);
    return out;
  }

  // forward({ x: Float32Array [B x inChannels x g x g], timestep: B integers,
  //           context: Float32Array [B x Q x captionDim], trace?: boolean })
  //   -> Promise<{ v [B, outChannels, g, g], trace? }>
  Napi::Value forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<float> x, ctx;
    std::vector<int64_t> t;
    bool trace = false;
    try {
      VG_CHECK(info.Length() == 1 && info[0].IsObject(), "forward(request): request must be an object");
      const auto o = info[0].As<Napi::Object>();
      x = floats(o, "x", "forward: x");
      ctx = floats(o, "context", "forward: context");
      t = integers(o, "timestep", "forward: timestep");
      trace = flag(o, "trace", "forward: trace");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<DitResult>::start(
        env, "vargpt.blip3oDit.forward",
        [state, x = std::move(x), ctx = std::move(ctx), t = std::move(t), trace]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          LuminaDit& dit = *state->dit;
          const LuminaDitConfig& c = dit.config();
          const int64_t B = static_cast<int64_t>(t.size());
          VG_CHECK(B >= 1, "forward: timestep is empty");
          const int64_t per_row = B * c.in_channels;
          VG_CHECK(!x.empty() && x.size() % static_cast<size_t>(per_row) == 0, "forward: x has ", x.size(),
                   " values, expected ", B, " x ", c.in_channels, " x g x g for ", B, " timesteps");
          const int g = grid_of(static_cast<int64_t>(x.size()) / per_row, "forward: x");
          const int64_t ctx_row = B * c.caption_dim;
          VG_CHECK(!ctx.empty() && ctx.size() % static_cast<size_t>(ctx_row) == 0, "forward: context has ",
                   ctx.size(), " values, expected ", B, " x Q x ", c.caption_dim, " (captionDim ", c.caption_dim,
                   ")");
          const int64_t Q = static_cast<int64_t>(ctx.size()) / ctx_row;
          DitResult r;
          TraceSink sink(b, trace ? &r.trace : nullptr);
          TraceSink* ts = trace ? &sink : nullptr;
          const LuminaDitContext context =
              dit.prepare(b.upload(Tensor::from_host(DType::F32, {B, Q, c.caption_dim}, ctx.data())), ts);
          Tensor xt = b.upload(Tensor::from_host(DType::F32, {B, c.in_channels, g, g}, x.data()));
          Tensor v = b.empty(DType::F32, {B, c.out_channels, g, g});
          dit.forward(xt, t, context, v, ts);
          r.v = b.to_host(v);
          return r;
        },
        result_to_js);
  }

  // sample({ queryHidden: Float32Array [Q x captionDim], noise: Float32Array [inChannels x g x g],
  //          steps, guidance, shift, trainTimesteps, trace?: boolean })
  //   -> Promise<{ clipFeatures [g*g, inChannels], trace? }>
  // The guidance batch is [unconditional = zero context, conditional = queryHidden].
  Napi::Value sample(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<float> query, noise;
    int steps = 0, train = 0;
    double guidance = 0, shift = 0;
    bool trace = false;
    try {
      VG_CHECK(info.Length() == 1 && info[0].IsObject(), "sample(request): request must be an object");
      const auto o = info[0].As<Napi::Object>();
      query = floats(o, "queryHidden", "sample: queryHidden");
      noise = floats(o, "noise", "sample: noise");
      steps = integer(o, "steps", "sample: steps");
      guidance = number(o, "guidance", "sample: guidance");
      shift = number(o, "shift", "sample: shift");
      train = integer(o, "trainTimesteps", "sample: trainTimesteps");
      trace = flag(o, "trace", "sample: trace");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<DitResult>::start(
        env, "vargpt.blip3oDit.sample",
        [state, query = std::move(query), noise = std::move(noise), steps, guidance, shift, train, trace]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          LuminaDit& dit = *state->dit;
          const LuminaDitConfig& c = dit.config();
          VG_CHECK(c.in_channels == c.out_channels, "sample: the DiT maps ", c.in_channels, " channels to ",
                   c.out_channels, "; a flow needs them equal");
          VG_CHECK(!query.empty() && query.size() % static_cast<size_t>(c.caption_dim) == 0, "sample: queryHidden has ",
                   query.size(), " values, expected Q x ", c.caption_dim, " (captionDim ", c.caption_dim, ")");
          const int64_t Q = static_cast<int64_t>(query.size()) / c.caption_dim;
          VG_CHECK(!noise.empty() && noise.size() % static_cast<size_t>(c.in_channels) == 0, "sample: noise has ",
                   noise.size(), " values, expected ", c.in_channels, " x g x g");
          const int64_t C = c.in_channels;
          const int g = grid_of(static_cast<int64_t>(noise.size()) / C, "sample: noise");
          const FlowMatchSchedule schedule = flow_match_schedule(steps, shift, train);

          DitResult r;
          TraceSink sink(b, trace ? &r.trace : nullptr);
          Tensor ctx = b.empty(DType::F32, {2, Q, c.caption_dim});
          b.fill(ctx.select(0), 0.0f);
          b.copy(b.upload(Tensor::from_host(DType::F32, {Q, c.caption_dim}, query.data())), ctx.select(1));
          const LuminaDitContext context = dit.prepare(ctx);
          Tensor x = b.empty(DType::F32, {C, g, g});
          b.copy(b.upload(Tensor::from_host(DType::F32, {C, g, g}, noise.data())), x);
          flow_match_sample(
              b, schedule, static_cast<float>(guidance), x,
              [&](const Tensor& x2, int64_t t, const Tensor& v2) { dit.forward(x2, {t, t}, context, v2); },
              trace ? &sink : nullptr);
          // Tokens in row-major (h, w) order, one row of C features each.
          Tensor features = b.empty(DType::F32, {int64_t{g} * g, C});
          b.transpose(x.view({C, int64_t{g} * g}), features);
          r.clip_features = b.to_host(features);
          if (trace) sink.add("clip_features", features);
          return r;
        },
        result_to_js);
  }

  std::shared_ptr<DitState> state_;
};

Napi::Value load_dit(const Napi::CallbackInfo& info) {
  return load_component<DitState>(
      info, "loadBlip3oDit",
      [](const std::string& dir, const std::string& device) {
        auto state = std::make_shared<DitState>();
        state->backend = create_backend(device);
        WeightLoader w(SafetensorsCheckpoint::open(dir), *state->backend, nullptr, nullptr);
        state->dit = std::make_unique<LuminaDit>(parse_lumina_dit_config(w, kPrefix), w, kPrefix);
        state->backend->synchronize();
        return state;
      },
      dit_class_of);
}

}  // namespace

void init_dit(Napi::Env env, Napi::Object exports) {
  addon_data(env).dit_class = Napi::Persistent(DitWrap::define(env));
  exports.Set("loadBlip3oDit", Napi::Function::New(env, load_dit));
}

}  // namespace vargpt::binding
