// The model surface for JS: loadModel(dir, options) -> Promise<Model>, createCancelToken(), and
// Model.{info, generate, encodeImageTokens, decodeImageTokens, dispose}. Arguments are copied into
// plain C++ values on the JS thread; the work runs on libuv worker threads (StreamWorker).
//
// Concurrency: calls on one model never interleave: each worker holds the model's call mutex for
// the whole call (the TS layer also queues). Each call takes its own reference to the model when
// it is made; dispose() drops only the wrapper's, so calls made before it run to completion and
// the weights are freed after the last of them, never under a running worker. Calls made after
// dispose() reject with "model is disposed".
#include <cmath>
#include <cstring>
#include <mutex>

#include "../models/llm/turn_batch.h"
#include "../models/pipelines/registry.h"
#include "async.h"
#include "binding.h"
#include "model_worker.h"

namespace vargpt::binding {

Napi::Object image_to_js(Napi::Env env, const RgbImage& image) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("width", image.width);
  out.Set("height", image.height);
  Napi::Uint8Array data = Napi::Uint8Array::New(env, image.data.size());
  if (!image.data.empty()) std::memcpy(data.Data(), image.data.data(), image.data.size());
  out.Set("data", data);
  return out;
}

namespace {

struct ModelState {
  std::mutex call_mutex;  // one call at a time
  std::mutex ptr_mutex;   // guards `model`, held only briefly
  std::shared_ptr<Model> model;

  std::shared_ptr<Model> acquire() {
    std::lock_guard<std::mutex> lock(ptr_mutex);
    VG_CHECK(model != nullptr, "model is disposed");
    return model;
  }
  void dispose() {
    std::shared_ptr<Model> dropped;
    {
      std::lock_guard<std::mutex> lock(ptr_mutex);
      dropped.swap(model);
    }
  }
  bool disposed() {
    std::lock_guard<std::mutex> lock(ptr_mutex);
    return model == nullptr;
  }
};

// ---- argument parsing (JS thread); every failure names the field

double number_field(const Napi::Object& o, const char* key, const char* what) {
  const Napi::Value v = o.Get(key);
  VG_CHECK(v.IsNumber(), what, ".", key, " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  VG_CHECK(std::isfinite(d), what, ".", key, " must be finite, got ", d);
  return d;
}

int64_t int_field(const Napi::Object& o, const char* key, const char* what, int64_t lo, int64_t hi) {
  const double d = number_field(o, key, what);
  VG_CHECK(d == std::floor(d) && d >= static_cast<double>(lo) && d <= static_cast<double>(hi), what, ".", key,
           " must be an integer in [", lo, ", ", hi, "], got ", d);
  return static_cast<int64_t>(d);
}

bool bool_field(const Napi::Object& o, const char* key, const char* what) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  VG_CHECK(v.IsBoolean(), what, ".", key, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::Function function_field(const Napi::Object& o, const char* key, const char* what) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return Napi::Function();
  VG_CHECK(v.IsFunction(), what, ".", key, " must be a function");
  return v.As<Napi::Function>();
}

template <typename T, napi_typedarray_type Type>
std::vector<T> typed_copy(const Napi::Value& v, const std::string& what, const char* type_name) {
  VG_CHECK(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == Type, what, " must be a ", type_name);
  const auto a = v.As<Napi::TypedArrayOf<T>>();
  return std::vector<T>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<int32_t> int32_array(const Napi::Value& v, const std::string& what) {
  return typed_copy<int32_t, napi_int32_array>(v, what, "Int32Array");
}
std::vector<float> float32_array(const Napi::Value& v, const std::string& what) {
  return typed_copy<float, napi_float32_array>(v, what, "Float32Array");
}

// An Int32Array or Float32Array copied into a 1-D host tensor of that dtype.
Tensor host_tensor_1d(const Napi::Value& v, const std::string& what) {
  VG_CHECK(v.IsTypedArray(), what, " must be an Int32Array or a Float32Array");
  const napi_typedarray_type type = v.As<Napi::TypedArray>().TypedArrayType();
  if (type == napi_int32_array) {
    const std::vector<int32_t> values = int32_array(v, what);
    return Tensor::from_host(DType::I32, {static_cast<int64_t>(values.size())}, values.data());
  }
  const std::vector<float> values = float32_array(v, what);
  return Tensor::from_host(DType::F32, {static_cast<int64_t>(values.size())}, values.data());
}

template <typename Fn>
void each_element(const Napi::Value& v, const std::string& what, Fn&& fn) {
  VG_CHECK(v.IsArray(), what, " must be an array");
  const auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) fn(a.Get(i), what + "[" + std::to_string(i) + "]");
}

std::shared_ptr<std::atomic<bool>> cancel_field(Napi::Env env, const Napi::Object& o, const char* what);

uint64_t seed_field(const Napi::Object& o, const char* key, const char* what) {
  return static_cast<uint64_t>(int_field(o, key, what, 0, 9007199254740991LL));
}

// A scale schedule given as an Int32Array of (h, w) pairs; undefined or null: none.
TokenGrids token_grids(const Napi::Value& value, const std::string& what) {
  TokenGrids out;
  if (value.IsUndefined() || value.IsNull()) return out;
  const std::vector<int32_t> hw = int32_array(value, what);
  VG_CHECK(hw.size() % 2 == 0, what, " must hold (h, w) pairs, got ", hw.size(), " values");
  for (size_t i = 0; i < hw.size(); i += 2) {
    VG_CHECK(hw[i] >= 1 && hw[i + 1] >= 1 && hw[i] <= 4096 && hw[i + 1] <= 4096, what, "[", i / 2, "] = (", hw[i], ", ",
             hw[i + 1], ") must be sizes in 1..4096");
    out.push_back({hw[i], hw[i + 1]});
  }
  return out;
}

GenerateRequest parse_request(Napi::Env env, const Napi::Value& value, std::shared_ptr<std::atomic<bool>>& cancel,
                              StreamCallbacks& callbacks, bool& want_progress) {
  const char* what = "generate: request";
  VG_CHECK(value.IsObject(), "generate(request): request must be an object");
  const auto o = value.As<Napi::Object>();
  GenerateRequest r;
  r.input_ids = int32_array(o.Get("inputIds"), "generate: request.inputIds");
  const Napi::Value pv = o.Get("pixelValues");
  if (!pv.IsUndefined() && !pv.IsNull())
    each_element(pv, "generate: request.pixelValues", [&](const Napi::Value& e, const std::string& name) {
      const std::vector<float> px = float32_array(e, name);
      r.pixel_values.push_back(Tensor::from_host(DType::F32, {static_cast<int64_t>(px.size())}, px.data()));
    });
  const Napi::Value grids = o.Get("imageGrids");
  if (!grids.IsUndefined() && !grids.IsNull()) {
    const std::vector<int32_t> thw = int32_array(grids, "generate: request.imageGrids");
    VG_CHECK(thw.size() % 3 == 0, "generate: request.imageGrids must hold (t, h, w) triples, got ", thw.size(), " values");
    for (size_t i = 0; i < thw.size(); i += 3) r.image_grids.push_back({thw[i], thw[i + 1], thw[i + 2]});
  }
  r.force_image = bool_field(o, "forceImage", what);
  r.max_new_tokens = static_cast<int>(int_field(o, "maxNewTokens", what, 0, 1 << 30));
  r.temperature = static_cast<float>(number_field(o, "temperature", what));
  r.top_k = static_cast<int>(int_field(o, "topK", what, 0, 1 << 30));
  r.top_p = static_cast<float>(number_field(o, "topP", what));
  r.repetition_penalty = static_cast<float>(number_field(o, "repetitionPenalty", what));
  r.seed = seed_field(o, "seed", what);
  const Napi::Value stops = o.Get("stopIds");
  if (!stops.IsUndefined() && !stops.IsNull())
    each_element(stops, "generate: request.stopIds", [&](const Napi::Value& e, const std::string& name) {
      VG_CHECK(e.IsNumber(), name, " must be a number");
      r.stop_ids.push_back(e.As<Napi::Number>().Int32Value());
    });
  const Napi::Value image = o.Get("image");
  if (!image.IsUndefined() && !image.IsNull()) {
    const char* iw = "generate: request.image";
    VG_CHECK(image.IsObject(), iw, " must be an object");
    const auto io = image.As<Napi::Object>();
    // Family-specific options: every number is passed by name (the family checks the names it
    // needs); replay maps a draw's name to one typed array per step.
    r.has_image_options = true;
    const Napi::Array keys = io.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      const std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
      const Napi::Value v = io.Get(key);
      if (key == "seed") {
        r.image.seed = seed_field(io, "seed", iw);
      } else if (key == "replay") {
        if (v.IsUndefined() || v.IsNull()) continue;
        VG_CHECK(v.IsObject() && !v.IsArray(), iw, ".replay must be an object of arrays of typed arrays");
        const auto ro = v.As<Napi::Object>();
        const Napi::Array names = ro.GetPropertyNames();
        for (uint32_t n = 0; n < names.Length(); ++n) {
          const std::string name = names.Get(n).As<Napi::String>().Utf8Value();
          std::vector<Tensor>& steps = r.image.replay[name];
          each_element(ro.Get(name), std::string(iw) + ".replay." + name,
                       [&](const Napi::Value& e, const std::string& label) { steps.push_back(host_tensor_1d(e, label)); });
        }
      } else if (v.IsArray()) {
        std::vector<double>& list = r.image.lists[key];
        const auto a = v.As<Napi::Array>();
        for (uint32_t j = 0; j < a.Length(); ++j) {
          const Napi::Value e = a.Get(j);
          if (e.IsArray()) {
            const auto inner = e.As<Napi::Array>();
            for (uint32_t k = 0; k < inner.Length(); ++k) {
              VG_CHECK(inner.Get(k).IsNumber(), iw, ".", key, "[", j, "][", k, "] must be a number");
              list.push_back(inner.Get(k).As<Napi::Number>().DoubleValue());
            }
          } else {
            VG_CHECK(e.IsNumber(), iw, ".", key, "[", j, "] must be a number or an array of numbers");
            list.push_back(e.As<Napi::Number>().DoubleValue());
          }
        }
      } else if (!v.IsUndefined()) {
        VG_CHECK(v.IsNumber(), iw, ".", key, " must be a number or an array of numbers");
        r.image.numbers[key] = v.As<Napi::Number>().DoubleValue();
      }
    }
  }
  r.ignore_eos = bool_field(o, "ignoreEos", what);
  const Napi::Value kv = o.Get("kvCache");
  if (!kv.IsUndefined() && !kv.IsNull()) {
    const std::string name = kv.IsString() ? kv.As<Napi::String>().Utf8Value() : "";
    VG_CHECK(name == "f32" || name == "bf16", "generate: request.kvCache must be \"f32\" or \"bf16\"");
    r.kv_dtype = name == "bf16" ? DType::BF16 : DType::F32;
  }
  r.trace = bool_field(o, "trace", what);
  r.profile = bool_field(o, "profile", what);
  cancel = cancel_field(env, o, what);
  callbacks.on_token = function_field(o, "onToken", what);
  callbacks.on_image_progress = function_field(o, "onImageProgress", what);
  want_progress = !callbacks.on_image_progress.IsEmpty();
  return r;
}

// ---- results (JS thread)

Napi::Value result_to_js(Napi::Env env, GenerateResult& r) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Int32Array tokens = Napi::Int32Array::New(env, r.tokens.size());
  if (!r.tokens.empty()) std::memcpy(tokens.Data(), r.tokens.data(), r.tokens.size() * sizeof(int32_t));
  out.Set("tokens", tokens);
  out.Set("stopReason", stop_reason_name(r.stop));
  if (r.token_after_image_start >= 0) out.Set("tokenAfterImageStart", r.token_after_image_start);
  if (r.has_image) out.Set("image", image_to_js(env, r.image));
  if (!r.trace.empty()) {
    Napi::Object trace = Napi::Object::New(env);
    for (const auto& [name, tensor] : r.trace) trace.Set(name, tensor_to_js(env, tensor));
    out.Set("trace", trace);
  }
  if (!r.profile.empty()) {
    Napi::Object profile = Napi::Object::New(env);
    for (const auto& [name, seconds] : r.profile) profile.Set(name, seconds);
    out.Set("profile", profile);
  }
  return out;
}

Napi::Value info_to_js(Napi::Env env, const Info& info) {
  switch (info.kind()) {
    case Info::Kind::Null: return env.Null();
    case Info::Kind::Number: return Napi::Number::New(env, info.as_number());
    case Info::Kind::Bool: return Napi::Boolean::New(env, info.as_bool());
    case Info::Kind::Text: return Napi::String::New(env, info.as_text());
    case Info::Kind::Numbers: {
      const std::vector<double>& values = info.as_numbers();
      Napi::Array a = Napi::Array::New(env, values.size());
      for (size_t i = 0; i < values.size(); ++i) a.Set(static_cast<uint32_t>(i), values[i]);
      return a;
    }
    case Info::Kind::Object: break;
  }
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [key, value] : info.fields()) out.Set(key, info_to_js(env, value));
  return out;
}

// ---- cancel tokens

class CancelTokenWrap : public Napi::ObjectWrap<CancelTokenWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CancelToken",
                       {InstanceMethod("cancel", &CancelTokenWrap::cancel),
                        InstanceAccessor("cancelled", &CancelTokenWrap::cancelled, nullptr)});
  }
  explicit CancelTokenWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelTokenWrap>(info) {}
  const std::shared_ptr<std::atomic<bool>>& flag() const { return flag_; }

 private:
  Napi::Value cancel(const Napi::CallbackInfo& info) {
    flag_->store(true);
    return info.Env().Undefined();
  }
  Napi::Value cancelled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), flag_->load()); }

  std::shared_ptr<std::atomic<bool>> flag_ = std::make_shared<std::atomic<bool>>(false);
};

std::shared_ptr<std::atomic<bool>> cancel_field(Napi::Env env, const Napi::Object& o, const char* what) {
  const Napi::Value v = o.Get("cancel");
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  VG_CHECK(v.IsObject() && v.As<Napi::Object>().InstanceOf(addon_data(env).cancel_token_class.Value()), what,
           ".cancel must come from createCancelToken()");
  return CancelTokenWrap::Unwrap(v.As<Napi::Object>())->flag();
}

// ---- a call's callbacks as stream events (the worker's `send` outlives them: they are cleared or
// dropped before the work returns)

template <typename Send>
std::function<void(int32_t)> token_events(const Send& send, int sequence) {
  return [&send, sequence](int32_t token) {
    StreamEvent e;
    e.kind = StreamEvent::Kind::Token;
    e.token = token;
    e.sequence = sequence;
    send(e);
  };
}

template <typename Send>
std::function<void(const char*, int, int, const RgbImage&)> image_progress_events(const Send& send) {
  return [&send](const char* stage, int step, int steps, const RgbImage& preview) {
    StreamEvent e;
    e.kind = StreamEvent::Kind::ImageProgress;
    e.stage = stage;
    e.step = step;
    e.steps = steps;
    e.preview = std::make_shared<const RgbImage>(preview);
    send(e);
  };
}

// ---- turns (continuous batching): a turn is started, stepped together with other turns of the
// same model, and finished; lib/queue.ts schedules them.

struct TurnState {
  std::shared_ptr<Model> model;  // the turn refers to it: keeps the weights alive
  std::unique_ptr<Turn> turn;
  std::shared_ptr<std::atomic<bool>> cancel;  // the caller's cancel token (may be null)
  std::atomic<bool> busy{false};               // a worker holds the turn
  std::atomic<bool> left{false};               // a step reported it leaving: only finishTurn may follow
  std::atomic<bool> finished{false};           // finishTurn ran
};

class TurnWrap : public Napi::ObjectWrap<TurnWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Turn", {InstanceMethod("dispose", &TurnWrap::dispose)});
  }
  explicit TurnWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TurnWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "turns come from model.startTurn(request)");
    // Moved, not copied: the External lives until garbage collection, and a copy there would keep
    // the turn (and the model it refers to) alive after dispose().
    state_ = std::move(*info[0].As<Napi::External<std::shared_ptr<TurnState>>>().Data());
  }
  const std::shared_ptr<TurnState>& state() const { return state_; }

 private:
  // Drops the wrapper's reference now rather than at garbage collection. A call that still holds
  // the turn (its worker's claim, which is released only after the call's promise has settled)
  // keeps its own reference, so the caches, and the model they refer to, are freed when that call
  // ends, not under it. Skipping the reset while such a claim was held left every finished turn,
  // and through it its model's weights, alive until the next garbage collection.
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    state_.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<TurnState> state_;
};

// Claims the turns of `value` (an array of Turn objects) for one worker; throws, claiming none,
// if one is disposed, finished or held by another call.
std::vector<std::shared_ptr<TurnState>> claim_turns(const Napi::Env& env, const Napi::Value& value, const char* what) {
  std::vector<std::shared_ptr<TurnState>> out;
  each_element(value, what, [&](const Napi::Value& e, const std::string& name) {
    VG_CHECK(e.IsObject() && e.As<Napi::Object>().InstanceOf(addon_data(env).turn_class.Value()), name,
             " must be a Turn from startTurn()");
    std::shared_ptr<TurnState> t = TurnWrap::Unwrap(e.As<Napi::Object>())->state();
    VG_CHECK(t != nullptr, name, " is disposed");
    VG_CHECK(!t->finished.load(), name, " is finished");
    for (const auto& o : out) VG_CHECK(o != t, name, " is listed twice");
    out.push_back(std::move(t));
  });
  for (size_t i = 0; i < out.size(); ++i) {
    bool expected = false;
    if (!out[i]->busy.compare_exchange_strong(expected, true)) {
      for (size_t j = 0; j < i; ++j) out[j]->busy.store(false);
      fail(what, "[", i, "] is in use by another call");
    }
  }
  return out;
}

// Releases claimed turns when a worker's work ends, however it ends; clears the per-call
// callbacks the work installed (they refer to the worker).
struct TurnClaim {
  std::vector<std::shared_ptr<TurnState>> turns;
  ~TurnClaim() {
    for (const auto& t : turns) {
      if (t->turn) {
        GenerateRequest& r = t->turn->request();
        r.on_token = nullptr;
        r.on_image_progress = nullptr;
        r.cancelled = nullptr;
      }
      t->busy.store(false);
    }
  }
};

// ---- the model object

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Model",
                       {InstanceMethod("info", &ModelWrap::info), InstanceMethod("generate", &ModelWrap::generate),
                        InstanceMethod("startTurn", &ModelWrap::start_turn),
                        InstanceMethod("stepTurns", &ModelWrap::step_turns),
                        InstanceMethod("finishTurn", &ModelWrap::finish_turn),
                        InstanceMethod("encodeImageTokens", &ModelWrap::encode_image_tokens),
                        InstanceMethod("decodeImageTokens", &ModelWrap::decode_image_tokens),
                        InstanceMethod("dispose", &ModelWrap::dispose)});
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use loadModel(dir, options) to load a model");
    state_ = std::move(*info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data());  // as TurnWrap
  }

 private:
  Napi::Value info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value { return info_to_js(env, state_->acquire()->info()); });
  }

  Napi::Value generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_->disposed()) return rejected_promise(env, "model is disposed");
    std::shared_ptr<std::atomic<bool>> cancel;
    StreamCallbacks callbacks;
    bool want_progress = false;
    std::shared_ptr<GenerateRequest> request;
    try {
      request = std::make_shared<GenerateRequest>(
          parse_request(env, info.Length() > 0 ? info[0] : env.Undefined(), cancel, callbacks, want_progress));
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    const bool stream_tokens = !callbacks.on_token.IsEmpty();
    auto state = state_;
    std::shared_ptr<Model> model = state_->acquire();  // a call accepted before dispose() runs
    return StreamWorker<GenerateResult>::start(
        env, "vargpt.generate", cancel, callbacks,
        [state, model, request, stream_tokens, want_progress](const auto& send, const auto& cancelled) {
          std::lock_guard<std::mutex> call(state->call_mutex);
          request->cancelled = cancelled;
          if (stream_tokens)
            request->on_token = token_events(send, 0);
          if (want_progress)
            request->on_image_progress = image_progress_events(send);
          return model->generate(*request);
        },
        result_to_js);
  }

  // startTurn(request) -> Promise<Turn>: checks the request and runs its prefill. The request's
  // cancel token stays the turn's for every later call; its callbacks are not used (stepTurns and
  // finishTurn take their own).
  Napi::Value start_turn(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_->disposed()) return rejected_promise(env, "model is disposed");
    std::shared_ptr<std::atomic<bool>> cancel;
    StreamCallbacks ignored;
    bool want_progress = false;
    std::shared_ptr<GenerateRequest> request;
    try {
      request = std::make_shared<GenerateRequest>(
          parse_request(env, info.Length() > 0 ? info[0] : env.Undefined(), cancel, ignored, want_progress));
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    std::shared_ptr<Model> model = state_->acquire();
    auto turn = std::make_shared<TurnState>();
    turn->model = model;
    turn->cancel = cancel;
    return StreamWorker<std::shared_ptr<TurnState>>::start(
        env, "vargpt.startTurn", cancel, StreamCallbacks{},
        [state, model, request, turn](const auto&, const auto& cancelled) {
          std::lock_guard<std::mutex> call(state->call_mutex);
          request->cancelled = cancelled;
          turn->turn = model->start_turn(std::move(*request));
          turn->turn->request().cancelled = nullptr;
          return turn;
        },
        [](Napi::Env env, std::shared_ptr<TurnState>& t) -> Napi::Value {
          using Ptr = std::shared_ptr<TurnState>;
          auto external = Napi::External<Ptr>::New(env, new Ptr(t), [](Napi::Env, Ptr* p) { delete p; });
          return addon_data(env).turn_class.New({external});
        });
  }

  // stepTurns(turns, interrupt, onToken(token, index)) -> Promise<[{state, error?}]>: decode steps
  // of every turn together, one forward pass per step, until a turn leaves (its image to draw, the
  // end of its text, its cancel token, an error) or `interrupt` (a cancel token) fires, which ends
  // the call after the current step so that a new turn can join. A turn that leaves is reported
  // with its state ('draw', 'done', 'cancelled', 'failed' with error); the others are 'ready'.
  Napi::Value step_turns(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_->disposed()) return rejected_promise(env, "model is disposed");
    auto claim = std::make_shared<TurnClaim>();
    std::shared_ptr<std::atomic<bool>> interrupt;
    StreamCallbacks callbacks;
    try {
      VG_CHECK(info.Length() >= 1, "stepTurns(turns, interrupt, onToken): turns is required");
      if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
        VG_CHECK(info[1].IsObject() && info[1].As<Napi::Object>().InstanceOf(addon_data(env).cancel_token_class.Value()),
                 "stepTurns: interrupt must come from createCancelToken()");
        interrupt = CancelTokenWrap::Unwrap(info[1].As<Napi::Object>())->flag();
      }
      if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
        VG_CHECK(info[2].IsFunction(), "stepTurns: onToken must be a function");
        callbacks.on_token = info[2].As<Napi::Function>();
      }
      claim->turns = claim_turns(env, info[0], "stepTurns: turns");
      VG_CHECK(!claim->turns.empty(), "stepTurns: turns is empty");
      for (size_t i = 0; i < claim->turns.size(); ++i)
        VG_CHECK(!claim->turns[i]->left.load(), "stepTurns: turns[", i, "] has left the batch (finishTurn it)");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    for (const auto& t : claim->turns)
      if (t->model != state_->model)
        return rejected_promise(env, "stepTurns: a turn belongs to another model");  // claim releases them
    auto state = state_;
    std::shared_ptr<Model> model = state_->acquire();
    using Result = std::vector<BatchedTurn>;
    return StreamWorker<Result>::start(
        env, "vargpt.stepTurns", nullptr, callbacks,
        [state, model, claim, interrupt](const auto& send, const auto& callback_failed) {
          std::lock_guard<std::mutex> call(state->call_mutex);
          std::vector<BatchedTurn> batch(claim->turns.size());
          for (size_t i = 0; i < batch.size(); ++i) {
            TurnState& t = *claim->turns[i];
            batch[i].turn = t.turn.get();
            GenerateRequest& r = t.turn->request();
            r.on_token = token_events(send, static_cast<int>(i));
            auto flag = t.cancel;
            r.cancelled = [flag, &callback_failed] { return (flag && flag->load(std::memory_order_relaxed)) || callback_failed(); };
          }
          DecoderLlm& llm = model->text_decoder();
          for (;;) {
            const int left = vargpt::step_turns(llm, batch);
            if (left > 0 || (interrupt && interrupt->load(std::memory_order_relaxed)) || callback_failed()) break;
          }
          for (size_t i = 0; i < batch.size(); ++i)
            if (batch[i].state != BatchedTurn::State::Ready) claim->turns[i]->left.store(true);
          return batch;
        },
        [](Napi::Env env, Result& batch) -> Napi::Value {
          Napi::Array out = Napi::Array::New(env, batch.size());
          for (size_t i = 0; i < batch.size(); ++i) {
            Napi::Object o = Napi::Object::New(env);
            const char* name = "ready";
            switch (batch[i].state) {
              case BatchedTurn::State::Ready: name = "ready"; break;
              case BatchedTurn::State::Draw: name = "draw"; break;
              case BatchedTurn::State::Done: name = "done"; break;
              case BatchedTurn::State::Cancelled: name = "cancelled"; break;
              case BatchedTurn::State::Failed: name = "failed"; break;
            }
            o.Set("state", name);
            if (batch[i].state == BatchedTurn::State::Failed) o.Set("error", batch[i].error);
            out.Set(static_cast<uint32_t>(i), o);
          }
          return out;
        });
  }

  // finishTurn(turn, {onToken, onImageProgress}) -> Promise<result>: draws when the turn left
  // with 'draw', then returns what generate() returns. The turn's cancel token stops a drawing.
  Napi::Value finish_turn(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_->disposed()) return rejected_promise(env, "model is disposed");
    auto claim = std::make_shared<TurnClaim>();
    StreamCallbacks callbacks;
    try {
      VG_CHECK(info.Length() >= 1, "finishTurn(turn, callbacks): turn is required");
      Napi::Array one = Napi::Array::New(env, 1);
      one.Set(0u, info[0]);
      if (info.Length() > 1 && info[1].IsObject()) {
        const auto o = info[1].As<Napi::Object>();
        callbacks.on_token = function_field(o, "onToken", "finishTurn: callbacks");
        callbacks.on_image_progress = function_field(o, "onImageProgress", "finishTurn: callbacks");
      }
      claim->turns = claim_turns(env, one, "finishTurn: turn");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    if (claim->turns[0]->model != state_->model) return rejected_promise(env, "finishTurn: the turn belongs to another model");
    const bool stream_tokens = !callbacks.on_token.IsEmpty();
    const bool want_progress = !callbacks.on_image_progress.IsEmpty();
    auto state = state_;
    std::shared_ptr<Model> model = state_->acquire();
    std::shared_ptr<TurnState> turn = claim->turns[0];
    return StreamWorker<GenerateResult>::start(
        env, "vargpt.finishTurn", turn->cancel, callbacks,
        [state, model, claim, turn, stream_tokens, want_progress](const auto& send, const auto& cancelled) {
          std::lock_guard<std::mutex> call(state->call_mutex);
          GenerateRequest& r = turn->turn->request();
          r.cancelled = cancelled;
          if (stream_tokens)
            r.on_token = token_events(send, 0);
          if (want_progress)
            r.on_image_progress = image_progress_events(send);
          turn->finished = true;
          GenerateResult result = turn->turn->finish();
          turn->turn.reset();  // the caches go now, not when JS collects the Turn
          return result;
        },
        result_to_js);
  }

  Napi::Value encode_image_tokens(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_->disposed()) return rejected_promise(env, "model is disposed");
    std::vector<float> pixels;
    int height = 0, width = 0;
    TokenGrids scales;
    try {
      pixels = float32_array(info.Length() > 0 ? info[0] : env.Undefined(), "encodeImageTokens: pixels");
      VG_CHECK(info.Length() >= 3 && info[1].IsNumber() && info[2].IsNumber(),
               "encodeImageTokens(pixels, height, width, scales?): height and width must be numbers");
      height = info[1].As<Napi::Number>().Int32Value();
      width = info[2].As<Napi::Number>().Int32Value();
      if (info.Length() > 3) scales = token_grids(info[3], "encodeImageTokens: scales");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    std::shared_ptr<Model> model = state_->acquire();
    using Result = std::vector<std::vector<int32_t>>;
    return StreamWorker<Result>::start(
        env, "vargpt.encodeImageTokens", nullptr, StreamCallbacks{},
        [state, model, pixels = std::move(pixels), height, width, scales = std::move(scales)](const auto&, const auto&) {
          std::lock_guard<std::mutex> call(state->call_mutex);
          return model->encode_image_tokens(pixels.data(), static_cast<int64_t>(pixels.size()), height, width, scales);
        },
        [](Napi::Env env, Result& scales) -> Napi::Value {
          Napi::Array out = Napi::Array::New(env, scales.size());
          for (size_t i = 0; i < scales.size(); ++i) {
            Napi::Int32Array a = Napi::Int32Array::New(env, scales[i].size());
            if (!scales[i].empty()) std::memcpy(a.Data(), scales[i].data(), scales[i].size() * sizeof(int32_t));
            out.Set(i, a);
          }
          return out;
        });
  }

  Napi::Value decode_image_tokens(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_->disposed()) return rejected_promise(env, "model is disposed");
    std::vector<std::vector<int32_t>> indices;
    bool trace = false;
    TokenGrids scales;
    try {
      each_element(info.Length() > 0 ? info[0] : env.Undefined(), "decodeImageTokens: indices",
                   [&](const Napi::Value& e, const std::string& name) { indices.push_back(int32_array(e, name)); });
      if (info.Length() > 1 && info[1].IsObject()) {
        const auto o = info[1].As<Napi::Object>();
        trace = bool_field(o, "trace", "decodeImageTokens: options");
        scales = token_grids(o.Get("scales"), "decodeImageTokens: options.scales");
      }
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    std::shared_ptr<Model> model = state_->acquire();
    struct Result {
      RgbImage image;
      std::vector<std::pair<std::string, Tensor>> trace;
    };
    return StreamWorker<Result>::start(
        env, "vargpt.decodeImageTokens", nullptr, StreamCallbacks{},
        [state, model, indices = std::move(indices), trace, scales = std::move(scales)](const auto&, const auto&) {
          std::lock_guard<std::mutex> call(state->call_mutex);
          Result r;
          r.image = model->decode_image_tokens(indices, scales, trace ? &r.trace : nullptr);
          return r;
        },
        [](Napi::Env env, Result& r) -> Napi::Value {
          Napi::Object out = image_to_js(env, r.image);
          if (!r.trace.empty()) {
            Napi::Object t = Napi::Object::New(env);
            for (const auto& [name, tensor] : r.trace) t.Set(name, tensor_to_js(env, tensor));
            out.Set("trace", t);
          }
          return out;
        });
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    state_->dispose();
    return info.Env().Undefined();
  }

  std::shared_ptr<ModelState> state_;
};

Napi::Value load_model(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir, device = "cpu";
  std::shared_ptr<std::atomic<bool>> cancel;
  StreamCallbacks callbacks;
  LoadOptions options;
  try {
    VG_CHECK(info.Length() >= 1 && info[0].IsString(), "loadModel(dir, options): dir must be a string");
    dir = info[0].As<Napi::String>().Utf8Value();
    if (info.Length() >= 2 && !info[1].IsUndefined()) {
      VG_CHECK(info[1].IsObject(), "loadModel: options must be an object");
      const auto o = info[1].As<Napi::Object>();
      const Napi::Value d = o.Get("device");
      if (!d.IsUndefined()) {
        VG_CHECK(d.IsString(), "loadModel: options.device must be a string ('cpu', 'cuda' or 'cuda:N')");
        device = d.As<Napi::String>().Utf8Value();
      }
      callbacks.on_load_progress = function_field(o, "onProgress", "loadModel: options");
      cancel = cancel_field(env, o, "loadModel: options");
      const auto precision_field = [&](const char* key, LinearPrecision& out) {
        const Napi::Value value = o.Get(key);
        if (value.IsUndefined()) return;
        const std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
        VG_CHECK(name == "auto" || name == "f32" || name == "bf16" || name == "int8" || name == "q4", "loadModel: options.",
                 key, " must be \"auto\", \"f32\", \"bf16\", \"int8\" or \"q4\"");
        out = name == "f32"    ? LinearPrecision::F32
              : name == "bf16" ? LinearPrecision::BF16
              : name == "int8" ? LinearPrecision::Int8
              : name == "q4"   ? LinearPrecision::Q4
                               : LinearPrecision::Stored;
      };
      precision_field("weights", options.llm_weights);
      precision_field("generatorWeights", options.generator_weights);
      const Napi::Value mmap = o.Get("mmap");
      if (!mmap.IsUndefined()) {
        VG_CHECK(mmap.IsBoolean(), "loadModel: options.mmap must be true or false");
        options.map_weights = mmap.As<Napi::Boolean>().Value();
      }
    }
  } catch (const std::exception& e) {
    return rejected_promise(env, e.what());
  }
  const bool report = !callbacks.on_load_progress.IsEmpty();
  using Result = std::shared_ptr<ModelState>;
  return StreamWorker<Result>::start(
      env, "vargpt.loadModel", cancel, callbacks,
      [dir, device, report, options](const auto& send, const auto& cancelled) {
        // Progress events are thinned to ~0.5% steps (a 7B checkpoint has ~1000 tensors).
        double last = -1;
        auto progress = [&](uint64_t loaded, uint64_t total) {
          if (!report) return;
          if (loaded != total && last >= 0 && static_cast<double>(loaded) - last < 0.005 * static_cast<double>(total)) return;
          last = static_cast<double>(loaded);
          StreamEvent e;
          e.kind = StreamEvent::Kind::LoadProgress;
          e.loaded = static_cast<double>(loaded);
          e.total = static_cast<double>(total);
          send(e);
        };
        auto state = std::make_shared<ModelState>();
        state->model = vargpt::load_model(dir, device, progress, cancelled, options);
        return state;
      },
      [](Napi::Env env, Result& state) -> Napi::Value {
        auto external = Napi::External<Result>::New(env, new Result(state), [](Napi::Env, Result* p) { delete p; });
        return addon_data(env).model_class.New({external});
      });
}

}  // namespace

void init_model(Napi::Env env, Napi::Object exports) {
  Napi::Function model = ModelWrap::define(env);
  addon_data(env).model_class = Napi::Persistent(model);
  Napi::Function turn = TurnWrap::define(env);
  addon_data(env).turn_class = Napi::Persistent(turn);
  Napi::Function token = CancelTokenWrap::define(env);
  addon_data(env).cancel_token_class = Napi::Persistent(token);
  exports.Set("loadModel", Napi::Function::New(env, load_model));
  exports.Set("createCancelToken", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return addon_data(info.Env()).cancel_token_class.New({});
              }));
}

}  // namespace vargpt::binding
