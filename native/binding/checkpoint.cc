// Checkpoint access from JS: openCheckpoint(path) -> Promise<Checkpoint>, then list tensors and
// read them as zero-copy views over the memory-mapped files.
#include <memory>

#include "../core/safetensors.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

class CheckpointWrap : public Napi::ObjectWrap<CheckpointWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Checkpoint",
                       {InstanceMethod("list", &CheckpointWrap::list), InstanceMethod("read", &CheckpointWrap::read),
                        InstanceMethod("metadata", &CheckpointWrap::metadata)});
  }

  explicit CheckpointWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CheckpointWrap>(info) {
    // Constructed only from openCheckpoint, which passes the opened checkpoint as an External.
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use openCheckpoint(path) to open a checkpoint");
    checkpoint_ = *info[0].As<Napi::External<std::shared_ptr<SafetensorsCheckpoint>>>().Data();
  }

 private:
  Napi::Value list(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const auto names = checkpoint_->names();
      Napi::Array out = Napi::Array::New(env, names.size());
      for (size_t i = 0; i < names.size(); ++i) {
        const TensorInfo& t = checkpoint_->info(names[i]);
        Napi::Object entry = Napi::Object::New(env);
        entry.Set("name", t.name);
        entry.Set("dtype", dtype_name(t.dtype));
        Napi::Array shape = Napi::Array::New(env, t.shape.size());
        for (size_t d = 0; d < t.shape.size(); ++d) shape.Set(d, Napi::Number::New(env, static_cast<double>(t.shape[d])));
        entry.Set("shape", shape);
        entry.Set("byteLength", Napi::Number::New(env, static_cast<double>(t.end - t.begin)));
        out.Set(i, entry);
      }
      return out;
    });
  }

  Napi::Value read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "read(name): name must be a string");
      return tensor_to_js(env, checkpoint_->get(info[0].As<Napi::String>().Utf8Value()));
    });
  }

  Napi::Value metadata(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    for (const auto& file : checkpoint_->files())
      for (const auto& [key, value] : file->metadata()) out.Set(key, value);
    return out;
  }

  std::shared_ptr<SafetensorsCheckpoint> checkpoint_;
};

Napi::Value open_checkpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "openCheckpoint(path): path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  using Result = std::shared_ptr<SafetensorsCheckpoint>;
  return PromiseWorker<Result>::start(
      env, "vargpt.openCheckpoint", [path] { return SafetensorsCheckpoint::open(path); },
      [](Napi::Env env, Result& checkpoint) -> Napi::Value {
        auto external = Napi::External<Result>::New(env, new Result(checkpoint), [](Napi::Env, Result* p) { delete p; });
        return addon_data(env).checkpoint_class.New({external});
      });
}

}  // namespace

void init_checkpoint(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = CheckpointWrap::define(env);
  addon_data(env).checkpoint_class = Napi::Persistent(cls);
  exports.Set("Checkpoint", cls);
  exports.Set("openCheckpoint", Napi::Function::New(env, open_checkpoint));
}

}  // namespace vargpt::binding
