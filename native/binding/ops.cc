// runOp / timeOp: one Backend operator on host tensors, for the operator tests and benchmarks.
//
//   runOp(device, op, inputs, attrs) -> Promise<{dtype, shape, data}[]>
//   timeOp(device, op, inputs, attrs, iterations) -> Promise<number[]>  (seconds of each run)
//   setCpuKernels("amx" | "avx512" | "avx2" | "portable") -> previous path (tests and benchmarks)
//
// `device` is "cpu", "cuda" or "cuda:N" (one backend per name, created on first use and kept).
// Inputs are uploaded, outputs allocated per op, the op runs on a libuv worker thread and the
// outputs come back as host tensors. JS input buffers are never written: in-place ops run on a
// copy. Any bad argument rejects the promise with a message naming the op; unknown attrs too.
//
// op                  inputs                          attrs                                   outputs
// copy                [x]                             slice?: [axis, begin, end] of x,        [y]
//                                                     outShape?, outSlice?: [axis, b, e]
//                                                     (y = zeros(outShape), copy into a slice)
// fill                []                              shape, value                            [y f32]
// cast                [x]                             dtype                                   [y]
// transpose           [x [R,C] | [B,R,C]]                                                     [y]
// linear              [x (f32|bf16), w, bias|null?,   act?, accumulate? (needs yInit)         [y]
//                      yInit?]
// linear_q8           [x (f32), w (quantized here),   act?                                    [y, q (f32), qparams]
//                      bias|null?]
// linear_q4           [x (f32), w (quantized here),   act?                                    [y, q (f32), scales]
//                      bias|null?]
// attention           [q, k, v] (f32 or bf16)         qHeads, kvHeads, headDim, scale,        [out]
//                                                     causal?, kvBegin?, kvEnd? (slice of k/v axis -2),
//                                                     segments?: [0, o_1, ..., L] (cu_seqlens)
// rms_norm            [x, weight]                     eps                                     [y]
// layer_norm          [x, weight|null?, bias|null?]   eps                                     [y]
// norm_modulate       [x, scale, shift|null?,         norm: "layer" | "rms", eps              [y]
//                      weight|null?, bias|null?]
// gated_add           [x, y, gate]                    act? (of the gate, default none)        [x + y * act(gate)]
// group_norm          [x, weight, bias]               groups, eps                             [y]
// activation          [x]                             act                                     [y]
// glu                 [gate, up]                      act                                     [y]
// add                 [a, b]                                                                  [y]
// binary              [a, b]                          op: "add" | "mul" (NumPy broadcasting)  [y]
// axpby               [a, b]                          alpha, beta                             [y]
// rope                [x, table f32 [L, D]]           headDim, pairing?                       [x rotated]
// l2_normalize_heads  [x, headScale|null?]            headDim                                 [x normalised]
// conv2d              [x, weight, bias|null?]         stride?, padding?: n | [top, bottom, left, right]  [y]
// upsample_nearest2x  [x]                                                                     [y]
// resize_bicubic      [x]                             size: [H, W]                            [y]
// resize_area         [x]                             size: [H, W]                            [y]
// resize_bilinear     [x]                             size: [H, W]                            [y]
// mean                [x]                             axis, keepdim?                          [y]
// embedding           [ids i32, table]                                                        [out f32]
// vq_nearest          [z, codebook]                                                           [idx i32]
// argmax              [x]                                                                     [idx i32]
// sample              [logits]                        topK?, topP?, temperature?, seed, stream?   [idx i32, kept i32]
// randn               []                              shape, seed, stream?                    [out f32]
// peak_flops          []                              seconds?, kind? (cuda: "mma_bf16"       [f32[1] GFLOP/s]
//                                                     default | "fma_f32"; cpu: "fma_f32"
//                                                     default | "amx_bf16", amx path only)
// read_bandwidth      []                              bytes?, iterations?                     [f32[1] GB/s]
// device_memory       []  (cuda only)                                                         [i64[5] bytes in use,
//                                                              cached, peak, free on the device, device total]
//
// act: "none" | "silu" | "gelu" | "gelu_tanh" | "quick_gelu" | "tanh". seed and stream: integers below
// 2^53 or BigInts below 2^64.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../backend/backend.h"
#include "../backend/cpu/cpu_backend.h"
#include "async.h"
#include "binding.h"
#include "ops.h"

namespace vargpt::binding {

namespace {

std::shared_ptr<Backend> backend_for(const std::string& device) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<Backend>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(device);
  if (it != cache.end()) return it->second;
  auto backend = create_backend(device);
  cache.emplace(device, backend);
  return backend;
}

std::vector<Napi::Value> js_array(const Napi::Value& value, const char* what) {
  VG_CHECK(value.IsArray(), what, " must be an array");
  const auto array = value.As<Napi::Array>();
  std::vector<Napi::Value> out;
  for (uint32_t i = 0; i < array.Length(); ++i) out.push_back(array.Get(i));
  return out;
}

// Parses the JS arguments on the JS thread; the returned references keep input memory alive.
OpCall parse_call(const Napi::CallbackInfo& info, std::vector<Napi::Reference<Napi::Value>>* keep) {
  VG_CHECK(info.Length() >= 3, "runOp(device, op, inputs, attrs): expected at least 3 arguments");
  VG_CHECK(info[0].IsString(), "runOp: device must be a string");
  VG_CHECK(info[1].IsString(), "runOp: op must be a string");
  const std::string device = info[0].As<Napi::String>().Utf8Value();
  const std::string op = info[1].As<Napi::String>().Utf8Value();
  std::vector<Tensor> inputs;
  const auto items = js_array(info[2], (op + ": inputs").c_str());
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].IsNull() || items[i].IsUndefined()) {
      inputs.emplace_back();
      continue;
    }
    const std::string what = op + ": inputs[" + std::to_string(i) + "]";
    inputs.push_back(tensor_from_js(items[i], what.c_str()));
    keep->push_back(Napi::Persistent(items[i]));
  }
  std::map<std::string, AttrValue> attrs;
  if (info.Length() >= 4 && !info[3].IsUndefined() && !info[3].IsNull()) {
    VG_CHECK(info[3].IsObject(), op, ": attrs must be an object");
    const auto object = info[3].As<Napi::Object>();
    const auto names = object.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); ++i) {
      const std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      const Napi::Value v = object.Get(name);
      AttrValue a;
      if (v.IsUndefined()) continue;
      if (v.IsNumber()) {
        a.kind = AttrValue::Kind::Number;
        a.number = v.As<Napi::Number>().DoubleValue();
      } else if (v.IsBoolean()) {
        a.kind = AttrValue::Kind::Bool;
        a.boolean = v.As<Napi::Boolean>().Value();
      } else if (v.IsString()) {
        a.kind = AttrValue::Kind::String;
        a.string = v.As<Napi::String>().Utf8Value();
      } else if (v.IsBigInt()) {
        a.kind = AttrValue::Kind::BigInt;
        bool lossless = false;
        a.big = v.As<Napi::BigInt>().Uint64Value(&lossless);
        VG_CHECK(lossless, op, ": attribute ", name, " does not fit an unsigned 64-bit integer");
      } else if (v.IsArray()) {
        a.kind = AttrValue::Kind::Numbers;
        for (const Napi::Value& e : js_array(v, (op + ": attribute " + name).c_str())) {
          VG_CHECK(e.IsNumber(), op, ": attribute ", name, " must be an array of numbers");
          a.numbers.push_back(e.As<Napi::Number>().DoubleValue());
        }
      } else {
        fail(op, ": attribute ", name, " has an unsupported type");
      }
      attrs.emplace(name, std::move(a));
    }
  }
  return OpCall{device, op, std::move(inputs), Attrs(op, std::move(attrs))};
}

Napi::Value run_op(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto keep = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>();
  std::shared_ptr<OpCall> call;
  try {
    call = std::make_shared<OpCall>(parse_call(info, keep.get()));
  } catch (const std::exception& e) {
    // Argument errors reject like every other failure, so callers handle one path.
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(Napi::Error::New(env, e.what()).Value());
    return deferred.Promise();
  }
  using Result = std::vector<Tensor>;
  return PromiseWorker<Result>::start(
      env, "vargpt.runOp",
      [call]() -> Result {
        std::shared_ptr<Backend> be = backend_for(call->device);
        BoundOp bound = bind_op(*be, *call);
        bound.run();
        be->synchronize();
        Result host;
        for (const Tensor& t : bound.outputs) host.push_back(be->to_host(t));
        return host;
      },
      [keep](Napi::Env env, Result& outputs) -> Napi::Value {
        Napi::Array array = Napi::Array::New(env, outputs.size());
        for (size_t i = 0; i < outputs.size(); ++i) array.Set(i, tensor_to_js(env, outputs[i]));
        return array;
      });
}

Napi::Value time_op(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto keep = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>();
  std::shared_ptr<OpCall> call;
  int iterations = 0;
  try {
    call = std::make_shared<OpCall>(parse_call(info, keep.get()));
    VG_CHECK(info.Length() >= 5 && info[4].IsNumber(), "timeOp: iterations must be a number");
    const double n = info[4].As<Napi::Number>().DoubleValue();
    VG_CHECK(n >= 1 && n <= 100000 && n == static_cast<int>(n), "timeOp: iterations ", n, " must be 1..100000");
    iterations = static_cast<int>(n);
  } catch (const std::exception& e) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(Napi::Error::New(env, e.what()).Value());
    return deferred.Promise();
  }
  using Result = std::vector<double>;
  return PromiseWorker<Result>::start(
      env, "vargpt.timeOp",
      [call, iterations]() -> Result {
        std::shared_ptr<Backend> be = backend_for(call->device);
        BoundOp bound = bind_op(*be, *call);
        Result seconds;
        for (int i = 0; i < iterations; ++i) {
          const auto start = std::chrono::steady_clock::now();
          bound.run();
          be->synchronize();
          seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        return seconds;
      },
      [keep](Napi::Env env, Result& seconds) -> Napi::Value {
        Napi::Array array = Napi::Array::New(env, seconds.size());
        for (size_t i = 0; i < seconds.size(); ++i) array.Set(i, Napi::Number::New(env, seconds[i]));
        return array;
      });
}

// setCpuKernels(path) -> the previous path. Synchronous: it only swaps a pointer.
Napi::Value set_cpu_kernels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    VG_CHECK(info.Length() == 1 && info[0].IsString(), "setCpuKernels(path): path must be a string");
    const std::string previous = cpu_kernel_path();
    set_cpu_kernel_path(info[0].As<Napi::String>().Utf8Value());
    return Napi::String::New(env, previous);
  });
}

}  // namespace

void init_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("runOp", Napi::Function::New(env, run_op));
  exports.Set("timeOp", Napi::Function::New(env, time_op));
  exports.Set("setCpuKernels", Napi::Function::New(env, set_cpu_kernels));
}

}  // namespace vargpt::binding
