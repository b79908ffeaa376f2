// Promise-returning background work: `work` runs on a libuv worker thread (never the JS thread),
// `done` converts its result on the JS thread. A vargpt::Error (or any std::exception) thrown by
// `work` rejects the promise with its message; nothing escapes to crash the process.
#pragma once

#include <napi.h>

#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "../core/error.h"

namespace vargpt::binding {

// A promise already rejected with `message` (argument errors found on the JS thread).
inline Napi::Promise rejected_promise(Napi::Env env, const std::string& message) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(Napi::Error::New(env, message).Value());
  return deferred.Promise();
}

template <typename Result>
class PromiseWorker final : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using Done = std::function<Napi::Value(Napi::Env, Result&)>;

  static Napi::Promise start(Napi::Env env, const char* name, Work work, Done done) {
    auto* worker = new PromiseWorker(env, name, std::move(work), std::move(done));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 private:
  PromiseWorker(Napi::Env env, const char* name, Work work, Done done)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        done_(std::move(done)) {}

  void Execute() override {
    try {
      result_.emplace(work_());
    } catch (const Cancelled& e) {
      aborted_ = true;
      SetError(e.what());
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native error");
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_(env, *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, e.what()).Value());
    }
  }

  void OnError(const Napi::Error& error) override {
    Napi::Value value = error.Value();
    if (aborted_) value.As<Napi::Object>().Set("name", "AbortError");
    deferred_.Reject(value);
  }

  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  std::optional<Result> result_;
  bool aborted_ = false;
};

// Runs `body` and turns a C++ exception into a pending JS exception (for synchronous calls).
template <typename Body>
Napi::Value guarded(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// loadX(dir, device?) for the component probes (language_model.cc, vision_tower.cc): checks the
// arguments, runs `load(dir, device)` on a worker and wraps the state it returns in `wrapper`
// (an ObjectWrap class constructed from an External of the state).
template <typename State, typename Load>
Napi::Value load_component(const Napi::CallbackInfo& info, const char* call, Load load,
                           Napi::FunctionReference& (*wrapper)(Napi::Env)) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString() || (info.Length() > 1 && !info[1].IsString()))
    return rejected_promise(env, std::string(call) + "(dir, device?): dir and device must be strings");
  const std::string dir = info[0].As<Napi::String>().Utf8Value();
  const std::string device = info.Length() > 1 ? info[1].As<Napi::String>().Utf8Value() : "cpu";
  using Result = std::shared_ptr<State>;
  return PromiseWorker<Result>::start(
      env, call, [dir, device, load]() -> Result { return load(dir, device); },
      [wrapper](Napi::Env env, Result& state) -> Napi::Value {
        auto external = Napi::External<Result>::New(env, new Result(state), [](Napi::Env, Result* p) { delete p; });
        return wrapper(env).New({external});
      });
}

}  // namespace vargpt::binding
