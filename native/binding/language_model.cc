// loadLanguageModel(dir, device) -> Promise<LanguageModel>: a checkpoint's decoder LLM alone, with
// caller-owned sequences (KV caches). For checking a family's LLM against its reference (hidden
// states and logits at explicit, possibly M-RoPE, positions) and for interleaving sequences on one
// set of weights. Calls on one model run one at a time, in order.
#include <memory>
#include <mutex>

#include "../models/llm/text_model.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

struct LanguageModelState {
  std::unique_ptr<TextModel> model;
  std::mutex call_mutex;
};

struct SequenceState {
  std::shared_ptr<LanguageModelState> owner;  // keeps the backend alive while the cache exists
  std::unique_ptr<KvCache> cache;
};

class SequenceWrap : public Napi::ObjectWrap<SequenceWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "LanguageModelSequence", {});
  }
  explicit SequenceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SequenceWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use languageModel.newSequence() to create a sequence");
    state_ = *info[0].As<Napi::External<std::shared_ptr<SequenceState>>>().Data();
  }
  const std::shared_ptr<SequenceState>& state() const { return state_; }

 private:
  std::shared_ptr<SequenceState> state_;
};

struct ForwardResult {
  Tensor hidden, logits;
};

class LanguageModelWrap : public Napi::ObjectWrap<LanguageModelWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "LanguageModel",
                       {InstanceMethod("config", &LanguageModelWrap::config),
                        InstanceMethod("newSequence", &LanguageModelWrap::new_sequence),
                        InstanceMethod("forward", &LanguageModelWrap::forward)});
  }
  explicit LanguageModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LanguageModelWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use loadLanguageModel(dir, device) to load a language model");
    state_ = *info[0].As<Napi::External<std::shared_ptr<LanguageModelState>>>().Data();
  }

 private:
  Napi::Value config(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const DecoderConfig& c = state_->model->llm().config();
    Napi::Object out = Napi::Object::New(env);
    out.Set("device", state_->model->backend().name());
    out.Set("hiddenSize", c.hidden);
    out.Set("layers", c.layers);
    out.Set("heads", c.heads);
    out.Set("kvHeads", c.kv_heads);
    out.Set("headDim", c.head_dim);
    out.Set("vocabSize", c.vocab);
    out.Set("maxPositions", c.max_positions);
    out.Set("positionAxes", c.position_axes());
    out.Set("qkvBias", c.qkv_bias);
    out.Set("tiedEmbeddings", c.tied_embeddings);
    out.Set("ropeTheta", c.rope_theta);
    return out;
  }

  // newSequence({ kvDtype?: 'f32' | 'bf16' })
  Napi::Value new_sequence(const Napi::CallbackInfo& info) {
    DType dtype = DType::F32;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "newSequence(options): options must be an object");
      const Napi::Value d = info[0].As<Napi::Object>().Get("kvDtype");
      if (!d.IsUndefined()) dtype = guarded_dtype(info.Env(), d);
    }
    auto seq = std::make_shared<SequenceState>();
    seq->owner = state_;
    seq->cache = std::make_unique<KvCache>(state_->model->llm().new_cache(dtype));
    auto external = Napi::External<std::shared_ptr<SequenceState>>::New(
        info.Env(), new std::shared_ptr<SequenceState>(seq),
        [](Napi::Env, std::shared_ptr<SequenceState>* p) { delete p; });
    return addon_data(info.Env()).sequence_class.New({external});
  }

  // forward({ ids: Int32Array | embeds: Float32Array (T x hidden), positions?: Int32Array (axes x T,
  //           axis-major; default: the sequence's next positions), sequence?, logits?: 'last' |
  //           'all' | 'none' }) -> Promise<{ hidden, logits? }>
  Napi::Value forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<int32_t> ids;
    std::vector<float> embeds;
    int64_t T = 0;
    Positions positions;
    std::shared_ptr<SequenceState> sequence;
    std::string logits_mode = "last";
    try {
      VG_CHECK(info.Length() >= 1 && info[0].IsObject(), "forward(request): request must be an object");
      const auto o = info[0].As<Napi::Object>();
      const Napi::Value ev = o.Get("embeds");
      if (ev.IsUndefined() || ev.IsNull()) {
        ids = int32_values(o.Get("ids"), "forward: ids");
        T = static_cast<int64_t>(ids.size());
      } else {
        VG_CHECK(ev.IsTypedArray() && ev.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array,
                 "forward: embeds must be a Float32Array");
        const auto a = ev.As<Napi::Float32Array>();
        embeds.assign(a.Data(), a.Data() + a.ElementLength());
        const int64_t H = state_->model->llm().config().hidden;
        VG_CHECK(embeds.size() % H == 0, "forward: embeds has ", embeds.size(), " values, not a multiple of hidden ", H);
        T = static_cast<int64_t>(embeds.size()) / H;
      }
      VG_CHECK(T > 0, "forward: no tokens");
      const Napi::Value pv = o.Get("positions");
      if (pv.IsUndefined() || pv.IsNull()) {
        positions.ids.clear();  // filled on the worker from the sequence length
      } else {
        positions.ids = int32_values(pv, "forward: positions");
        VG_CHECK(positions.ids.size() % T == 0, "forward: positions has ", positions.ids.size(),
                 " ids, not a multiple of the ", T, " tokens");
        positions.axes = static_cast<int>(positions.ids.size() / T);
      }
      const Napi::Value sv = o.Get("sequence");
      if (!sv.IsUndefined() && !sv.IsNull()) {
        VG_CHECK(sv.IsObject() && sv.As<Napi::Object>().InstanceOf(addon_data(env).sequence_class.Value()),
                 "forward: sequence must come from this addon's newSequence()");
        sequence = SequenceWrap::Unwrap(sv.As<Napi::Object>())->state();
        VG_CHECK(sequence->owner == state_, "forward: the sequence belongs to another language model");
      }
      const Napi::Value lv = o.Get("logits");
      if (!lv.IsUndefined()) {
        VG_CHECK(lv.IsString(), "forward: logits must be 'last', 'all' or 'none'");
        logits_mode = lv.As<Napi::String>().Utf8Value();
        VG_CHECK(logits_mode == "last" || logits_mode == "all" || logits_mode == "none",
                 "forward: logits must be 'last', 'all' or 'none', got \"", logits_mode, "\"");
      }
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<ForwardResult>::start(
        env, "vargpt.languageModel.forward",
        [state, sequence, ids, embeds, T, positions, logits_mode]() mutable {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          DecoderLlm& llm = state->model->llm();
          Backend& b = state->model->backend();
          const DecoderConfig& c = llm.config();
          for (size_t i = 0; i < ids.size(); ++i)
            VG_CHECK(ids[i] >= 0 && ids[i] < c.vocab, "forward: ids[", i, "] = ", ids[i], " is outside the vocabulary [0, ",
                     c.vocab, ")");
          KvCache* cache = sequence ? sequence->cache.get() : nullptr;
          if (positions.ids.empty()) positions = Positions::sequential(cache ? cache->length() : 0, static_cast<int>(T));
          Tensor x = b.empty(DType::F32, {T, c.hidden});
          if (embeds.empty())
            llm.embed(b.upload(Tensor::from_host(DType::I32, {T}, ids.data())), x);
          else
            b.copy(b.upload(Tensor::from_host(DType::F32, {T, c.hidden}, embeds.data())), x);
          Tensor hidden = b.empty(DType::F32, {T, c.hidden});
          llm.forward(x, positions, cache, hidden);
          ForwardResult r;
          r.hidden = b.to_host(hidden);
          if (logits_mode != "none") {
            const Tensor rows = logits_mode == "last" ? hidden.slice(0, T - 1, T) : hidden;
            Tensor logits = b.empty(DType::F32, {rows.dim(0), c.vocab});
            llm.logits(rows, logits);
            r.logits = b.to_host(logits);
          }
          return r;
        },
        [](Napi::Env env, ForwardResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("hidden", tensor_to_js(env, r.hidden));
          if (r.logits.defined()) out.Set("logits", tensor_to_js(env, r.logits));
          return out;
        });
  }

  static DType guarded_dtype(Napi::Env env, const Napi::Value& v) {
    try {
      const DType d = parse_dtype(v, "newSequence: kvDtype");
      VG_CHECK(d == DType::F32 || d == DType::BF16, "newSequence: kvDtype must be 'f32' or 'bf16'");
      return d;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  static std::vector<int32_t> int32_values(const Napi::Value& v, const char* what) {
    VG_CHECK(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array, what,
             " must be an Int32Array");
    const auto a = v.As<Napi::Int32Array>();
    return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
  }

  std::shared_ptr<LanguageModelState> state_;
};

Napi::Value load_language_model(const Napi::CallbackInfo& info) {
  return load_component<LanguageModelState>(
      info, "loadLanguageModel",
      [](const std::string& dir, const std::string& device) {
        auto state = std::make_shared<LanguageModelState>();
        state->model = TextModel::load(dir, device, nullptr);
        return state;
      },
      [](Napi::Env env) -> Napi::FunctionReference& { return addon_data(env).language_model_class; });
}

}  // namespace

void init_language_model(Napi::Env env, Napi::Object exports) {
  addon_data(env).language_model_class = Napi::Persistent(LanguageModelWrap::define(env));
  addon_data(env).sequence_class = Napi::Persistent(SequenceWrap::define(env));
  exports.Set("loadLanguageModel", Napi::Function::New(env, load_language_model));
}

}  // namespace vargpt::binding
