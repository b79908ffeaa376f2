// Image resampling and preprocessing from JS. The work runs on a libuv worker thread, reading
// the caller's pixels in place: the input TypedArray is held by a reference until the worker is
// destroyed (on the JS thread), so a large photo is neither copied nor blocking the event loop.
#include <cstring>
#include <memory>
#include <string>

#include "../image/preprocess.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

struct PixelsIn {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int channels = 0;
  // Keeps the JS memory alive; released on the JS thread with the worker.
  std::shared_ptr<Napi::Reference<Napi::Uint8Array>> keep;
};

int int_field(const Napi::Object& object, const char* key, const char* what, int min, int max) {
  const Napi::Value value = object.Get(key);
  VG_CHECK(value.IsNumber(), what, ".", key, " must be a number");
  const double v = value.As<Napi::Number>().DoubleValue();
  VG_CHECK(v == static_cast<double>(static_cast<int64_t>(v)) && v >= min && v <= max, what, ".", key, " = ", v,
           " must be an integer in [", min, ", ", max, "]");
  return static_cast<int>(v);
}

PixelsIn parse_pixels(const Napi::Value& value, const char* what) {
  VG_CHECK(value.IsObject(), what, " must be an object { data: Uint8Array, width, height, channels }");
  const auto object = value.As<Napi::Object>();
  PixelsIn in;
  in.width = int_field(object, "width", what, 1, 1 << 20);
  in.height = int_field(object, "height", what, 1, 1 << 20);
  in.channels = int_field(object, "channels", what, 1, 4);
  const Napi::Value data = object.Get("data");
  VG_CHECK(data.IsTypedArray() && data.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array, what,
           ".data must be a Uint8Array");
  auto array = data.As<Napi::Uint8Array>();
  const size_t need = static_cast<size_t>(in.width) * in.height * in.channels;
  VG_CHECK(array.ByteLength() >= need, what, ".data holds ", array.ByteLength(), " bytes, ", in.width, "x", in.height, "x",
           in.channels, " needs ", need);
  in.data = array.Data();
  in.keep = std::make_shared<Napi::Reference<Napi::Uint8Array>>(Napi::Persistent(array));
  return in;
}

Napi::Value resize_image(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    VG_CHECK(info.Length() == 2 && info[1].IsObject(), "resizeImage(pixels, { width, height, filter })");
    PixelsIn in = parse_pixels(info[0], "resizeImage: pixels");
    const auto options = info[1].As<Napi::Object>();
    const int width = int_field(options, "width", "resizeImage: options", 1, 1 << 16);
    const int height = int_field(options, "height", "resizeImage: options", 1, 1 << 16);
    const auto filter = static_cast<image::Filter>(int_field(options, "filter", "resizeImage: options", 0, 5));
    return PromiseWorker<image::Image8>::start(
        env, "vargpt.resizeImage",
        [in, width, height, filter] { return image::pil_resize(in.data, in.width, in.height, in.channels, width, height, filter); },
        [](Napi::Env env, image::Image8& out) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          result.Set("width", out.width);
          result.Set("height", out.height);
          result.Set("channels", out.channels);
          auto data = Napi::Uint8Array::New(env, out.data.size());
          if (!out.data.empty()) std::memcpy(data.Data(), out.data.data(), out.data.size());
          result.Set("data", data);
          return result;
        });
  });
}

struct Planes {
  int width = 0;
  int height = 0;
  std::vector<float> data;
};

Napi::Value preprocess_image(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    VG_CHECK(info.Length() == 2 && info[1].IsObject(), "preprocessImage(pixels, spec)");
    PixelsIn in = parse_pixels(info[0], "preprocessImage: pixels");
    VG_CHECK(in.channels == 3, "preprocessImage: pixels must be RGB (3 channels), got ", in.channels);
    const auto spec_js = info[1].As<Napi::Object>();
    image::PreprocessSpec spec;
    if (spec_js.Has("resize") && spec_js.Get("resize").IsObject()) {
      const auto r = spec_js.Get("resize").As<Napi::Object>();
      spec.resize = true;
      spec.resize_width = int_field(r, "width", "preprocessImage: spec.resize", 1, 1 << 16);
      spec.resize_height = int_field(r, "height", "preprocessImage: spec.resize", 1, 1 << 16);
      spec.filter = static_cast<image::Filter>(int_field(r, "filter", "preprocessImage: spec.resize", 0, 5));
    }
    if (spec_js.Has("crop") && spec_js.Get("crop").IsObject()) {
      const auto c = spec_js.Get("crop").As<Napi::Object>();
      spec.crop = true;
      spec.crop_left = int_field(c, "left", "preprocessImage: spec.crop", -(1 << 16), 1 << 16);
      spec.crop_top = int_field(c, "top", "preprocessImage: spec.crop", -(1 << 16), 1 << 16);
      spec.crop_width = int_field(c, "width", "preprocessImage: spec.crop", 1, 1 << 16);
      spec.crop_height = int_field(c, "height", "preprocessImage: spec.crop", 1, 1 << 16);
    }
    const Napi::Value kind = spec_js.Get("normalize");
    VG_CHECK(kind.IsString(), "preprocessImage: spec.normalize must be \"meanstd\" or \"symmetric\"");
    const std::string k = kind.As<Napi::String>().Utf8Value();
    if (k == "symmetric") {
      spec.normalize = image::Normalize::Symmetric;
    } else {
      VG_CHECK(k == "meanstd", "preprocessImage: spec.normalize must be \"meanstd\" or \"symmetric\", got \"", k, "\"");
      spec.normalize = image::Normalize::MeanStd;
      const Napi::Value scale = spec_js.Get("scale");
      VG_CHECK(scale.IsNumber(), "preprocessImage: spec.scale must be a number");
      spec.scale = scale.As<Napi::Number>().DoubleValue();
      for (const char* key : {"mean", "std"}) {
        const Napi::Value v = spec_js.Get(key);
        VG_CHECK(v.IsArray() && v.As<Napi::Array>().Length() == 3, "preprocessImage: spec.", key, " must be 3 numbers");
        for (uint32_t c = 0; c < 3; ++c) {
          const Napi::Value x = v.As<Napi::Array>().Get(c);
          VG_CHECK(x.IsNumber(), "preprocessImage: spec.", key, "[", c, "] must be a number");
          const float f = x.As<Napi::Number>().FloatValue();
          (std::strcmp(key, "mean") == 0 ? spec.mean : spec.std)[c] = f;
        }
      }
    }
    return PromiseWorker<Planes>::start(
        env, "vargpt.preprocessImage",
        [in, spec] {
          Planes out;
          out.data = image::preprocess_rgb(in.data, in.width, in.height, spec, out.width, out.height);
          return out;
        },
        [](Napi::Env env, Planes& out) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          result.Set("width", out.width);
          result.Set("height", out.height);
          auto data = Napi::Float32Array::New(env, out.data.size());
          std::memcpy(data.Data(), out.data.data(), out.data.size() * sizeof(float));
          result.Set("data", data);
          return result;
        });
  });
}

}  // namespace

void init_image(Napi::Env env, Napi::Object exports) {
  exports.Set("resizeImage", Napi::Function::New(env, resize_image));
  exports.Set("preprocessImage", Napi::Function::New(env, preprocess_image));
}

}  // namespace vargpt::binding
