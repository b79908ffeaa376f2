#include <cstring>
#include <memory>

#include "../core/error.h"
#include "binding.h"

namespace vargpt::binding {

DType parse_dtype(const Napi::Value& value, const char* what) {
  VG_CHECK(value.IsString(), what, ": dtype must be a string");
  const std::string name = value.As<Napi::String>().Utf8Value();
  for (DType d : {DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64, DType::U8})
    if (name == dtype_name(d)) return d;
  fail(what, ": unknown dtype \"", name, "\"");
}

Shape parse_shape(const Napi::Value& value, const char* what) {
  VG_CHECK(value.IsArray(), what, ": shape must be an array of integers");
  const auto array = value.As<Napi::Array>();
  VG_CHECK(array.Length() <= 8, what, ": rank ", array.Length(), " is above the limit of 8");
  Shape shape;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const Napi::Value d = array.Get(i);
    VG_CHECK(d.IsNumber(), what, ": shape[", i, "] is not a number");
    const double v = d.As<Napi::Number>().DoubleValue();
    VG_CHECK(v >= 0 && v <= 9007199254740991.0 && v == static_cast<double>(static_cast<int64_t>(v)), what, ": shape[",
             i, "] = ", v, " is not a non-negative integer");
    shape.push_back(static_cast<int64_t>(v));
  }
  shape_numel(shape);
  return shape;
}

namespace {
bool external_buffers_allowed(Napi::Env env) {
  // Probe once per process: Electron's memory cage rejects external ArrayBuffers.
  static int allowed = -1;
  if (allowed < 0) {
    napi_value probe;
    static char byte = 0;
    allowed = napi_create_external_arraybuffer(env, &byte, 1, nullptr, nullptr, &probe) == napi_ok ? 1 : 0;
    if (!allowed) {
      // Clear the pending exception some runtimes raise alongside the error status.
      napi_value ignored;
      bool pending = false;
      if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &ignored);
    }
  }
  return allowed == 1;
}
}  // namespace

Napi::Object tensor_to_js(Napi::Env env, const Tensor& input) {
  VG_CHECK(input.device() == DeviceKind::CPU, "tensor_to_js: tensor lives on ", device_kind_name(input.device()));
  const Tensor tensor = input.is_contiguous() ? input : input.contiguous_copy();
  Napi::Object out = Napi::Object::New(env);
  out.Set("dtype", dtype_name(tensor.dtype()));
  Napi::Array shape = Napi::Array::New(env, tensor.shape().size());
  for (size_t i = 0; i < tensor.shape().size(); ++i) shape.Set(i, Napi::Number::New(env, static_cast<double>(tensor.shape()[i])));
  out.Set("shape", shape);
  const size_t bytes = tensor.nbytes();
  if (bytes > 0 && external_buffers_allowed(env)) {
    // The ArrayBuffer keeps the tensor's storage (and so a file mapping) alive until collected.
    auto* keep = new Tensor(tensor);
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
        env, tensor.raw(), bytes, [](Napi::Env, void*, Tensor* held) { delete held; }, keep);
    out.Set("data", buffer);
  } else {
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
    if (bytes) std::memcpy(buffer.Data(), tensor.raw(), bytes);
    out.Set("data", buffer);
  }
  return out;
}

Tensor tensor_from_js(const Napi::Value& value, const char* what) {
  VG_CHECK(value.IsObject(), what, ": expected a tensor object { dtype, shape, data }");
  const auto object = value.As<Napi::Object>();
  const DType dtype = parse_dtype(object.Get("dtype"), what);
  Shape shape = parse_shape(object.Get("shape"), what);
  const Napi::Value data = object.Get("data");
  void* bytes = nullptr;
  size_t length = 0;
  if (data.IsTypedArray()) {
    auto typed = data.As<Napi::TypedArray>();
    bytes = static_cast<char*>(typed.ArrayBuffer().Data()) + typed.ByteOffset();
    length = typed.ByteLength();
  } else if (data.IsArrayBuffer()) {
    auto buffer = data.As<Napi::ArrayBuffer>();
    bytes = buffer.Data();
    length = buffer.ByteLength();
  } else {
    fail(what, ": data must be a TypedArray or ArrayBuffer");
  }
  const uint64_t needed = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
  VG_CHECK(needed == length, what, ": ", dtype_name(dtype), shape_string(shape), " needs ", needed, " bytes, data has ",
           length);
  VG_CHECK(reinterpret_cast<uintptr_t>(bytes) % dtype_size(dtype) == 0, what, ": data is not aligned for ",
           dtype_name(dtype));
  return Tensor(wrap_host(bytes, length, nullptr), 0, dtype, std::move(shape));
}

}  // namespace vargpt::binding
