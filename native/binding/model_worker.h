// A promise-returning worker that can stream events (tokens, image previews, load progress) to
// JS callbacks while it runs. Built on Napi::AsyncProgressQueueWorker, whose completion runs only
// after every queued event was delivered, so a stream always ends before its promise settles.
//
// Cancellation: the work polls `cancelled()`, true once the caller's cancel token fires or a JS
// callback threw. A vargpt::Cancelled from the work rejects with an Error named 'AbortError',
// unless a callback threw first: then the promise rejects with the callback's own exception.
#pragma once

#include <napi.h>

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "../core/error.h"
#include "../models/common/model.h"

namespace vargpt::binding {

struct StreamEvent {
  enum class Kind : uint8_t { Token, ImageProgress, LoadProgress } kind = Kind::Token;
  int32_t token = 0;
  int sequence = 0;  // Token: which turn of a batched step emitted it (0 for a call of one turn)
  const char* stage = "";  // a string literal of the pipeline (static storage)
  int step = 0, steps = 0;
  double loaded = 0, total = 0;
  std::shared_ptr<const RgbImage> preview;
};

Napi::Object image_to_js(Napi::Env env, const RgbImage& image);

struct StreamCallbacks {
  Napi::Function on_token, on_image_progress, on_load_progress;  // any may be empty
};

template <typename Result>
class StreamWorker final : public Napi::AsyncProgressQueueWorker<StreamEvent> {
 public:
  using Send = std::function<void(const StreamEvent&)>;
  using Cancelled = std::function<bool()>;
  using Work = std::function<Result(const Send& send, const Cancelled& cancelled)>;
  using Done = std::function<Napi::Value(Napi::Env, Result&)>;

  static Napi::Promise start(Napi::Env env, const char* name, std::shared_ptr<std::atomic<bool>> user_cancel,
                             const StreamCallbacks& callbacks, Work work, Done done) {
    auto* worker = new StreamWorker(env, name, std::move(user_cancel), callbacks, std::move(work), std::move(done));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 private:
  StreamWorker(Napi::Env env, const char* name, std::shared_ptr<std::atomic<bool>> user_cancel,
               const StreamCallbacks& callbacks, Work work, Done done)
      : Napi::AsyncProgressQueueWorker<StreamEvent>(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        user_cancel_(std::move(user_cancel)), work_(std::move(work)), done_(std::move(done)) {
    if (!callbacks.on_token.IsEmpty()) on_token_ = Napi::Persistent(callbacks.on_token);
    if (!callbacks.on_image_progress.IsEmpty()) on_image_progress_ = Napi::Persistent(callbacks.on_image_progress);
    if (!callbacks.on_load_progress.IsEmpty()) on_load_progress_ = Napi::Persistent(callbacks.on_load_progress);
  }

  void Execute(const ExecutionProgress& progress) override {
    const Send send = [&progress](const StreamEvent& e) { progress.Send(&e, 1); };
    const Cancelled cancelled = [this] {
      return callback_failed_.load(std::memory_order_relaxed) ||
             (user_cancel_ && user_cancel_->load(std::memory_order_relaxed));
    };
    try {
      result_.emplace(work_(send, cancelled));
    } catch (const vargpt::Cancelled& e) {
      aborted_ = true;
      SetError(e.what());
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native error");
    }
  }

  void OnProgress(const StreamEvent* events, size_t count) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count && !callback_failed_; ++i) {
      const StreamEvent& e = events[i];
      try {
        switch (e.kind) {
          case StreamEvent::Kind::Token:
            if (!on_token_.IsEmpty())
              on_token_.Call({Napi::Number::New(env, e.token), Napi::Number::New(env, e.sequence)});
            break;
          case StreamEvent::Kind::ImageProgress:
            if (!on_image_progress_.IsEmpty())
              on_image_progress_.Call({Napi::String::New(env, e.stage), Napi::Number::New(env, e.step),
                                       Napi::Number::New(env, e.steps), image_to_js(env, *e.preview)});
            break;
          case StreamEvent::Kind::LoadProgress:
            if (!on_load_progress_.IsEmpty())
              on_load_progress_.Call({Napi::Number::New(env, e.loaded), Napi::Number::New(env, e.total)});
            break;
        }
      } catch (const Napi::Error& error) {
        // Stop the work at its next poll and reject with the callback's own exception.
        callback_error_ = Napi::Reference<Napi::Value>::New(error.Value(), 1);
        callback_failed_ = true;
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (callback_failed_) {
      deferred_.Reject(callback_error_.Value());
      return;
    }
    try {
      deferred_.Resolve(done_(env, *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, e.what()).Value());
    }
  }

  void OnError(const Napi::Error& error) override {
    if (callback_failed_) {
      deferred_.Reject(callback_error_.Value());
      return;
    }
    Napi::Value value = error.Value();
    if (aborted_) value.As<Napi::Object>().Set("name", "AbortError");
    deferred_.Reject(value);
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<std::atomic<bool>> user_cancel_;
  Work work_;
  Done done_;
  Napi::FunctionReference on_token_, on_image_progress_, on_load_progress_;
  std::optional<Result> result_;
  bool aborted_ = false;
  std::atomic<bool> callback_failed_{false};
  Napi::Reference<Napi::Value> callback_error_;
};

}  // namespace vargpt::binding
