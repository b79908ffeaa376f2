// loadInfinity(dir, device) -> Promise<Infinity>: a VARGPT-v1.1 checkpoint's Infinity decoder alone
// (tensors under "vargpt_gen."), for checking it against its reference before the family's
// pipeline runs it. condition() gives the AdaLN condition, newCache() one image's caller-owned
// cache (condition, cross-attention contexts, scales drawn), forward() one scale through every
// block and the head. Calls on one decoder run one at a time, in order.
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>

#include "../core/safetensors.h"
#include "../models/gen/infinity.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

const char* const kPrefix = "vargpt_gen.";

struct InfinityState {
  std::shared_ptr<Backend> backend;
  std::unique_ptr<InfinityDecoder> decoder;
  std::mutex call_mutex;
};

struct InfinityCacheState {
  std::shared_ptr<InfinityState> owner;  // keeps the backend alive while the cache exists
  std::unique_ptr<InfinityScaleCache> cache;
  // Tokens run so far, published after each forward so the JS thread never waits for one.
  std::atomic<int> length{0};
};

class InfinityCacheWrap : public Napi::ObjectWrap<InfinityCacheWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "InfinityCache", {InstanceAccessor("length", &InfinityCacheWrap::length, nullptr)});
  }
  explicit InfinityCacheWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InfinityCacheWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use infinity.newCache() to create a cache");
    state_ = *info[0].As<Napi::External<std::shared_ptr<InfinityCacheState>>>().Data();
  }
  const std::shared_ptr<InfinityCacheState>& state() const { return state_; }

 private:
  Napi::Value length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_->length.load()); }
  std::shared_ptr<InfinityCacheState> state_;
};

std::vector<float> float_values(const Napi::Value& v, const char* what) {
  VG_CHECK(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array, what,
           " must be a Float32Array");
  const auto a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

// Rows of `cols` values; an empty vector stays empty (absent).
int64_t row_count(const std::vector<float>& values, int64_t cols, const char* what) {
  VG_CHECK(!values.empty() && values.size() % static_cast<size_t>(cols) == 0, what, " has ", values.size(),
           " values, expected a positive multiple of ", cols);
  return static_cast<int64_t>(values.size()) / cols;
}

int int_value(const Napi::Value& v, const char* what) {
  VG_CHECK(v.IsNumber(), what, " must be an integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  VG_CHECK(d == static_cast<double>(static_cast<int>(d)), what, " must be an integer, got ", d);
  return static_cast<int>(d);
}

struct ConditionResult {
  Tensor cond, gss, start;
};

struct ForwardResult {
  Tensor block_out, logits_cond, logits_uncond;
};

class InfinityWrap : public Napi::ObjectWrap<InfinityWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Infinity",
                       {InstanceMethod("config", &InfinityWrap::config),
                        InstanceMethod("condition", &InfinityWrap::condition),
                        InstanceMethod("uncondRows", &InfinityWrap::uncond_rows),
                        InstanceMethod("embedCodes", &InfinityWrap::embed_codes),
                        InstanceMethod("newCache", &InfinityWrap::new_cache),
                        InstanceMethod("forward", &InfinityWrap::forward)});
  }
  explicit InfinityWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InfinityWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use loadInfinity(dir, device) to load an Infinity decoder");
    state_ = *info[0].As<Napi::External<std::shared_ptr<InfinityState>>>().Data();
  }

 private:
  Napi::Value config(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const InfinityConfig& c = state_->decoder->config();
    Napi::Object out = Napi::Object::New(env);
    out.Set("device", state_->backend->name());
    out.Set("depth", c.depth);
    out.Set("width", c.width);
    out.Set("heads", c.heads);
    out.Set("headDim", c.head_dim);
    out.Set("mlpHidden", c.mlp_hidden);
    out.Set("bits", c.bits);
    out.Set("contextDim", c.context_dim);
    out.Set("textDim", c.text_dim);
    out.Set("uncondRows", c.uncond_rows);
    out.Set("levels", c.levels);
    return out;
  }

  // condition(rowsCond: Float32Array [L x textDim], rowsUncond?: Float32Array [L' x textDim];
  // default cfg_uncond[0:L]) -> Promise<{ cond [2, C], gss [2, 1, 6, C], startInput [2, 1, C] }>
  Napi::Value condition(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<float> rows_c, rows_u;
    try {
      VG_CHECK(info.Length() >= 1 && info.Length() <= 2, "condition(rowsCond, rowsUncond?): 1 or 2 arguments");
      rows_c = float_values(info[0], "condition: rowsCond");
      if (info.Length() > 1 && !info[1].IsUndefined()) rows_u = float_values(info[1], "condition: rowsUncond");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<ConditionResult>::start(
        env, "vargpt.infinity.condition",
        [state, rows_c, rows_u]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          InfinityDecoder& dec = *state->decoder;
          const int64_t C = dec.config().width, T = dec.config().text_dim;
          const int64_t Lc = row_count(rows_c, T, "condition: rowsCond");
          const Tensor rc = b.upload(Tensor::from_host(DType::F32, {Lc, T}, rows_c.data()));
          Tensor ru;
          if (rows_u.empty()) {
            ru = b.empty(DType::F32, {Lc, T});
            dec.uncond_rows(Lc, ru);
          } else {
            const int64_t Lu = row_count(rows_u, T, "condition: rowsUncond");
            ru = b.upload(Tensor::from_host(DType::F32, {Lu, T}, rows_u.data()));
          }
          Tensor cond = b.empty(DType::F32, {2, C});
          dec.condition(rc, ru, cond);
          Tensor gss = b.empty(DType::F32, {2, 6 * C});
          dec.shared_modulation(cond, gss);
          Tensor start = b.empty(DType::F32, {2, C});
          dec.start_input(cond, start);
          ConditionResult r;
          r.cond = b.to_host(cond);
          r.gss = b.to_host(gss).view({2, 1, 6, C});
          r.start = b.to_host(start).view({2, 1, C});
          return r;
        },
        [](Napi::Env env, ConditionResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("cond", tensor_to_js(env, r.cond));
          out.Set("gss", tensor_to_js(env, r.gss));
          out.Set("startInput", tensor_to_js(env, r.start));
          return out;
        });
  }

  // uncondRows(L) -> Promise<tensor [L, contextDim]>: cfg_uncond[0:L], the unconditional context.
  Napi::Value uncond_rows(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int L = 0;
    try {
      VG_CHECK(info.Length() == 1, "uncondRows(L): one argument");
      L = int_value(info[0], "uncondRows: L");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<Tensor>::start(
        env, "vargpt.infinity.uncondRows",
        [state, L]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          VG_CHECK(L >= 1 && L <= state->decoder->config().uncond_rows, "uncondRows: L = ", L, " outside [1, ",
                   state->decoder->config().uncond_rows, "]");
          Tensor out = b.empty(DType::F32, {L, state->decoder->config().context_dim});
          state->decoder->uncond_rows(L, out);
          return b.to_host(out);
        },
        [](Napi::Env env, Tensor& t) -> Napi::Value { return tensor_to_js(env, t); });
  }

  // embedCodes(codes: Float32Array [n x bits]) -> Promise<tensor [n, C]>: word_embed of a scale's codes.
  Napi::Value embed_codes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<float> codes;
    try {
      VG_CHECK(info.Length() == 1, "embedCodes(codes): one argument");
      codes = float_values(info[0], "embedCodes: codes");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<Tensor>::start(
        env, "vargpt.infinity.embedCodes",
        [state, codes]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          const InfinityConfig& c = state->decoder->config();
          const int64_t n = row_count(codes, c.bits, "embedCodes: codes");
          Tensor out = b.empty(DType::F32, {n, c.width});
          state->decoder->embed_codes(b.upload(Tensor::from_host(DType::F32, {n, c.bits}, codes.data())), out);
          return b.to_host(out);
        },
        [](Napi::Env env, Tensor& t) -> Napi::Value { return tensor_to_js(env, t); });
  }

  // newCache({ cond: Float32Array [2 x C], context: Float32Array [L x contextDim],
  //            contextUncond?: Float32Array [L' x contextDim] (default cfg_uncond[0:L]),
  //            kvDtype?: 'f32' | 'bf16' }) -> Promise<InfinityCache>
  Napi::Value new_cache(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<float> cond, ctx_c, ctx_u;
    DType kv = DType::F32;
    try {
      VG_CHECK(info.Length() == 1 && info[0].IsObject(), "newCache(options): options must be an object");
      const auto o = info[0].As<Napi::Object>();
      cond = float_values(o.Get("cond"), "newCache: cond");
      ctx_c = float_values(o.Get("context"), "newCache: context");
      const Napi::Value u = o.Get("contextUncond");
      if (!u.IsUndefined()) ctx_u = float_values(u, "newCache: contextUncond");
      const Napi::Value d = o.Get("kvDtype");
      if (!d.IsUndefined()) {
        kv = parse_dtype(d, "newCache: kvDtype");
        VG_CHECK(kv == DType::F32 || kv == DType::BF16, "newCache: kvDtype must be 'f32' or 'bf16'");
      }
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    using Result = std::shared_ptr<InfinityCacheState>;
    return PromiseWorker<Result>::start(
        env, "vargpt.infinity.newCache",
        [state, cond, ctx_c, ctx_u, kv]() -> Result {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          InfinityDecoder& dec = *state->decoder;
          const int64_t C = dec.config().width, K = dec.config().context_dim;
          VG_CHECK(static_cast<int64_t>(cond.size()) == 2 * C, "newCache: cond has ", cond.size(),
                   " values, expected 2 x ", C);
          const int64_t Lc = row_count(ctx_c, K, "newCache: context");
          const Tensor tc = b.upload(Tensor::from_host(DType::F32, {Lc, K}, ctx_c.data()));
          Tensor tu;
          if (ctx_u.empty()) {
            tu = b.empty(DType::F32, {Lc, K});
            dec.uncond_rows(Lc, tu);
          } else {
            const int64_t Lu = row_count(ctx_u, K, "newCache: contextUncond");
            tu = b.upload(Tensor::from_host(DType::F32, {Lu, K}, ctx_u.data()));
          }
          auto r = std::make_shared<InfinityCacheState>();
          r->owner = state;
          r->cache = std::make_unique<InfinityScaleCache>(
              dec.new_cache(b.upload(Tensor::from_host(DType::F32, {2, C}, cond.data())), tc, tu, kv));
          b.synchronize();
          return r;
        },
        [](Napi::Env env, Result& r) -> Napi::Value {
          auto external = Napi::External<Result>::New(env, new Result(r), [](Napi::Env, Result* p) { delete p; });
          return addon_data(env).infinity_cache_class.New({external});
        });
  }

  // forward({ x: Float32Array [2 x h*w x C] (rows conditional, unconditional), h, w, cache,
  //           scale?: number (adds lvl_embed[scale] first: x is then the scale's input before the
  //           level embedding), blockOutputs?: boolean })
  //   -> Promise<{ blockOut? [depth, 2, n, C], logitsCond [n, 2d], logitsUncond [n, 2d] }>
  Napi::Value forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<float> x;
    int h = 0, w = 0, scale = -1;
    bool block_outputs = false;
    std::shared_ptr<InfinityCacheState> cache;
    try {
      VG_CHECK(info.Length() == 1 && info[0].IsObject(), "forward(request): request must be an object");
      const auto o = info[0].As<Napi::Object>();
      x = float_values(o.Get("x"), "forward: x");
      h = int_value(o.Get("h"), "forward: h");
      w = int_value(o.Get("w"), "forward: w");
      const Napi::Value sv = o.Get("scale");
      if (!sv.IsUndefined()) scale = int_value(sv, "forward: scale");
      VG_CHECK(sv.IsUndefined() || scale >= 0, "forward: scale must be >= 0, got ", scale);
      const Napi::Value bo = o.Get("blockOutputs");
      if (!bo.IsUndefined()) {
        VG_CHECK(bo.IsBoolean(), "forward: blockOutputs must be a boolean");
        block_outputs = bo.As<Napi::Boolean>().Value();
      }
      const Napi::Value cv = o.Get("cache");
      VG_CHECK(cv.IsObject() && cv.As<Napi::Object>().InstanceOf(addon_data(env).infinity_cache_class.Value()),
               "forward: cache must come from this addon's infinity.newCache()");
      cache = InfinityCacheWrap::Unwrap(cv.As<Napi::Object>())->state();
      VG_CHECK(cache->owner == state_, "forward: the cache belongs to another Infinity decoder");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<ForwardResult>::start(
        env, "vargpt.infinity.forward",
        [state, cache, x, h, w, scale, block_outputs]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          InfinityDecoder& dec = *state->decoder;
          const InfinityConfig& c = dec.config();
          const int64_t C = c.width;
          VG_CHECK(h >= 1 && w >= 1 && int64_t{h} * w <= (int64_t{1} << 24), "forward: bad scale size ", h, "x", w);
          const int64_t n = int64_t{h} * w;
          VG_CHECK(static_cast<int64_t>(x.size()) == 2 * n * C, "forward: x has ", x.size(), " values, expected 2 x ",
                   n, " x ", C, " for a ", h, "x", w, " scale");
          Tensor xt = b.empty(DType::F32, {2, n, C});
          b.copy(b.upload(Tensor::from_host(DType::F32, {2, n, C}, x.data())), xt);
          if (scale >= 0) dec.add_level_embedding(scale, xt);
          ForwardResult r;
          if (block_outputs) r.block_out = Tensor::empty_host(DType::F32, {c.depth, 2, n, C});
          Tensor logits = b.empty(DType::F32, {2, n, c.logits()});
          dec.forward(xt, h, w, *cache->cache, logits, [&](int bi, const Tensor& t) {
            if (!block_outputs) return;
            const Tensor host = b.to_host(t);
            std::memcpy(static_cast<char*>(r.block_out.raw()) + bi * host.nbytes(), host.raw(), host.nbytes());
          });
          cache->length.store(cache->cache->length());
          const Tensor lh = b.to_host(logits);
          r.logits_cond = lh.select(0).contiguous_copy();
          r.logits_uncond = lh.select(1).contiguous_copy();
          return r;
        },
        [](Napi::Env env, ForwardResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          if (r.block_out.defined()) out.Set("blockOut", tensor_to_js(env, r.block_out));
          out.Set("logitsCond", tensor_to_js(env, r.logits_cond));
          out.Set("logitsUncond", tensor_to_js(env, r.logits_uncond));
          return out;
        });
  }

  std::shared_ptr<InfinityState> state_;
};

Napi::Value load_infinity(const Napi::CallbackInfo& info) {
  return load_component<InfinityState>(
      info, "loadInfinity",
      [](const std::string& dir, const std::string& device) {
        auto state = std::make_shared<InfinityState>();
        state->backend = create_backend(device);
        WeightLoader w(SafetensorsCheckpoint::open(dir), *state->backend, nullptr, nullptr);
        state->decoder = std::make_unique<InfinityDecoder>(parse_infinity_config(w, kPrefix), w, kPrefix);
        state->backend->synchronize();
        return state;
      },
      [](Napi::Env env) -> Napi::FunctionReference& { return addon_data(env).infinity_class; });
}

}  // namespace

void init_infinity(Napi::Env env, Napi::Object exports) {
  addon_data(env).infinity_class = Napi::Persistent(InfinityWrap::define(env));
  addon_data(env).infinity_cache_class = Napi::Persistent(InfinityCacheWrap::define(env));
  exports.Set("loadInfinity", Napi::Function::New(env, load_infinity));
}

}  // namespace vargpt::binding
