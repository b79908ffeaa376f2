// quantizeTensor(tensor, 'int8' | 'q4') -> Promise<{ q, scale }>: one Linear weight [N, K] (f32,
// bf16 or f16) quantized as loadModel's weights option does it (core/quantize.h), for
// `vargpt quantize` to write into a checkpoint. int8: q i8 [N, K], scale f32 [N]; q4: q u8
// [N, Kp / 2] (two values per byte), scale f16 [N, Kp / 32].
#include "../core/quantize.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

Napi::Value quantize_tensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor src;
  std::string precision;
  auto held = std::make_shared<Napi::Reference<Napi::Value>>();
  try {
    VG_CHECK(info.Length() == 2 && info[1].IsString(), "quantizeTensor(tensor, 'int8' | 'q4')");
    precision = info[1].As<Napi::String>().Utf8Value();
    VG_CHECK(precision == "int8" || precision == "q4", "quantizeTensor: precision must be 'int8' or 'q4', got '",
             precision, "'");
    src = tensor_from_js(info[0], "quantizeTensor: tensor");
    VG_CHECK(src.rank() == 2 && dtype_is_float(src.dtype()) && src.is_contiguous(), "quantizeTensor: tensor ",
             src.describe(), " must be a contiguous float matrix [N, K]");
    *held = Napi::Persistent(info[0]);
  } catch (const std::exception& e) {
    return rejected_promise(env, e.what());
  }
  return PromiseWorker<std::pair<Tensor, Tensor>>::start(
      env, "vargpt.quantizeTensor",
      [src, precision] {
        const int64_t N = src.dim(0), K = src.dim(1);
        if (precision == "int8") {
          Tensor q = Tensor::empty_host(DType::I8, {N, K});
          Tensor params = Tensor::empty_host(DType::F32, {2, N});
          quantize_q8_rows(src.dtype(), src.raw(), N, K, K, q.data<int8_t>(), params.data<float>(),
                           params.data<float>() + N);
          return std::make_pair(q, params.slice(0, 0, 1).view({N}).contiguous_copy());
        }
        const int64_t Kp = q4_padded(K);
        Tensor q = Tensor::empty_host(DType::U8, {N, Kp / 2});
        Tensor scales = Tensor::empty_host(DType::F16, {N, Kp / kQ4Group});
        quantize_q4_rows(src.dtype(), src.raw(), N, K, K, q.data<uint8_t>(), scales.data<uint16_t>());
        return std::make_pair(q, scales);
      },
      [held](Napi::Env env, std::pair<Tensor, Tensor>& r) -> Napi::Value {
        held->Reset();
        Napi::Object out = Napi::Object::New(env);
        out.Set("q", tensor_to_js(env, r.first));
        out.Set("scale", tensor_to_js(env, r.second));
        return out;
      });
}

}  // namespace

void init_quantize(Napi::Env env, Napi::Object exports) {
  exports.Set("quantizeTensor", Napi::Function::New(env, quantize_tensor));
}

}  // namespace vargpt::binding
