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

}  // namespace vargpt::binding
