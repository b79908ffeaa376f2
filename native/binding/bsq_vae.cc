// loadBsqVae(dir, device) -> Promise<BsqVae>: a VARGPT-v1.1 checkpoint's BSQ VAE alone (tensors
// under "vae_local."), for checking it against its reference before the family's pipeline runs
// it. encode() runs the encoder and the multi-scale quantizer; decode() turns per-scale bits into
// the summed code map and the image. Calls run one at a time, in order.
#include <algorithm>
#include <memory>
#include <mutex>

#include "../models/ae/bsq_vae.h"
#include "../models/common/image_out.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

const char* const kPrefix = "vae_local.";

struct BsqVaeState {
  std::shared_ptr<Backend> backend;
  std::unique_ptr<BsqVae> vae;
  std::string device;
  std::mutex call_mutex;
};

struct EncodeResult {
  Tensor latent, quantized_sum;
  std::vector<Tensor> bits, next_inputs;
};

struct DecodeResult {
  Tensor summed, image;
};

std::vector<BsqScale> parse_scales(const Napi::Value& value, const char* call) {
  VG_CHECK(value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array, call,
           ": scales must be an Int32Array of (h, w) pairs");
  const auto a = value.As<Napi::Int32Array>();
  VG_CHECK(a.ElementLength() > 0 && a.ElementLength() % 2 == 0, call, ": scales must hold (h, w) pairs, got ",
           a.ElementLength(), " values");
  std::vector<BsqScale> scales;
  for (size_t i = 0; i < a.ElementLength(); i += 2) scales.push_back({a[i], a[i + 1]});
  return scales;
}

Napi::Object config_to_js(Napi::Env env, const ConvTowerConfig& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ch", t.ch);
  Napi::Array mult = Napi::Array::New(env, t.ch_mult.size());
  for (size_t i = 0; i < t.ch_mult.size(); ++i) mult.Set(static_cast<uint32_t>(i), t.ch_mult[i]);
  o.Set("chMult", mult);
  o.Set("blocks", t.blocks);
  o.Set("scaleFactor", t.downsample());
  return o;
}

class BsqVaeWrap : public Napi::ObjectWrap<BsqVaeWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "BsqVae",
                       {InstanceMethod("config", &BsqVaeWrap::config), InstanceMethod("encode", &BsqVaeWrap::encode),
                        InstanceMethod("decode", &BsqVaeWrap::decode)});
  }
  explicit BsqVaeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BsqVaeWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use loadBsqVae(dir, device) to load a BSQ VAE");
    state_ = *info[0].As<Napi::External<std::shared_ptr<BsqVaeState>>>().Data();
  }

 private:
  Napi::Value config(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const BsqVaeConfig& c = state_->vae->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", state_->device);
    o.Set("bits", c.bits);
    o.Set("imageChannels", c.image_channels);
    o.Set("downsample", c.downsample());
    o.Set("decoder", config_to_js(env, c.decoder));
    if (c.has_encoder)
      o.Set("encoder", config_to_js(env, c.encoder));
    else
      o.Set("encoder", env.Null());
    return o;
  }

  // encode(pixels: Float32Array [C, H, W], height, width, scales: Int32Array of (h, w))
  Napi::Value encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<float> pixels;
    std::vector<BsqScale> scales;
    int64_t height = 0, width = 0;
    const BsqVaeConfig& c = state_->vae->config();
    try {
      VG_CHECK(info.Length() == 4 && info[0].IsTypedArray() &&
                   info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array && info[1].IsNumber() &&
                   info[2].IsNumber(),
               "encode(pixels, height, width, scales): a Float32Array, two integers and an Int32Array");
      const double h = info[1].As<Napi::Number>().DoubleValue(), w = info[2].As<Napi::Number>().DoubleValue();
      VG_CHECK(h >= 1 && w >= 1 && h <= 65536 && w <= 65536 && h == static_cast<int64_t>(h) &&
                   w == static_cast<int64_t>(w),
               "encode: height and width must be positive integers, got ", h, " x ", w);
      height = static_cast<int64_t>(h);
      width = static_cast<int64_t>(w);
      const auto p = info[0].As<Napi::Float32Array>();
      VG_CHECK(static_cast<int64_t>(p.ElementLength()) == c.image_channels * height * width, "encode: pixels has ",
               p.ElementLength(), " values, expected ", c.image_channels, " x ", height, " x ", width);
      pixels.assign(p.Data(), p.Data() + p.ElementLength());
      scales = parse_scales(info[3], "encode");
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<EncodeResult>::start(
        env, "vargpt.bsqVae.encode",
        [state, pixels, scales, height, width]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          const int64_t C = state->vae->config().image_channels;
          BsqVae::Encoded e =
              state->vae->encode(b.upload(Tensor::from_host(DType::F32, {C, height, width}, pixels.data())), scales);
          EncodeResult r;
          r.latent = b.to_host(e.latent);
          r.quantized_sum = b.to_host(e.quantized_sum);
          for (const Tensor& t : e.bits) r.bits.push_back(b.to_host(t));
          for (const Tensor& t : e.next_inputs) r.next_inputs.push_back(b.to_host(t));
          return r;
        },
        [](Napi::Env env, EncodeResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("encoderOut", tensor_to_js(env, r.latent));
          Napi::Array bits = Napi::Array::New(env, r.bits.size());
          for (size_t i = 0; i < r.bits.size(); ++i) {
            const Tensor& t = r.bits[i];
            Napi::Int32Array a = Napi::Int32Array::New(env, static_cast<size_t>(t.numel()));
            std::copy_n(static_cast<const int32_t*>(t.raw()), t.numel(), a.Data());
            bits.Set(static_cast<uint32_t>(i), a);
          }
          out.Set("bits", bits);
          Napi::Array next = Napi::Array::New(env, r.next_inputs.size());
          for (size_t i = 0; i < r.next_inputs.size(); ++i)
            next.Set(static_cast<uint32_t>(i), tensor_to_js(env, r.next_inputs[i]));
          out.Set("nextInputs", next);
          out.Set("quantizedSum", tensor_to_js(env, r.quantized_sum));
          return out;
        });
  }

  // decode(bits: (Uint8Array | Int32Array)[] of h * w * d values 0 / 1 per scale, scales)
  Napi::Value decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::vector<int32_t>> bits;
    std::vector<BsqScale> scales;
    const int64_t d = state_->vae->config().bits;
    try {
      VG_CHECK(info.Length() == 2 && info[0].IsArray(),
               "decode(bits, scales): an array of Uint8Array or Int32Array bit maps and an Int32Array");
      scales = parse_scales(info[1], "decode");
      const BsqScale last = scales.back();
      check_bsq_scales(scales, last.h, last.w);
      const auto list = info[0].As<Napi::Array>();
      VG_CHECK(list.Length() == scales.size(), "decode: ", list.Length(), " bit maps for ", scales.size(), " scales");
      for (uint32_t si = 0; si < list.Length(); ++si) {
        const Napi::Value v = list.Get(si);
        const bool u8 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
        const bool i32 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array;
        VG_CHECK(u8 || i32, "decode: bits[", si, "] must be a Uint8Array or an Int32Array");
        const int64_t n = int64_t{scales[si].h} * scales[si].w * d;
        const size_t len = v.As<Napi::TypedArray>().ElementLength();
        VG_CHECK(static_cast<int64_t>(len) == n, "decode: bits[", si, "] has ", len, " values, expected ",
                 scales[si].h, " x ", scales[si].w, " x ", d, " = ", n);
        std::vector<int32_t> values(len);
        for (size_t i = 0; i < len; ++i) {
          const int32_t x = u8 ? v.As<Napi::Uint8Array>()[i] : v.As<Napi::Int32Array>()[i];
          VG_CHECK(x == 0 || x == 1, "decode: bits[", si, "][", i, "] is ", x, ", bits must be 0 or 1");
          values[i] = x;
        }
        bits.push_back(std::move(values));
      }
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<DecodeResult>::start(
        env, "vargpt.bsqVae.decode",
        [state, bits, scales]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          BsqVae& vae = *state->vae;
          std::vector<Tensor> device_bits;
          for (const auto& v : bits)
            device_bits.push_back(
                b.upload(Tensor::from_host(DType::I32, {static_cast<int64_t>(v.size())}, v.data())));
          const Tensor summed = vae.bits_to_summed_codes(device_bits, scales);
          const int64_t ds = vae.config().downsample();
          Tensor image = b.empty(DType::F32, {vae.config().image_channels, summed.dim(1) * ds, summed.dim(2) * ds});
          vae.decode(summed, image);
          DecodeResult r;
          r.summed = b.to_host(summed);
          r.image = clamp_image(b.to_host(image));
          return r;
        },
        [](Napi::Env env, DecodeResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("summedCodes", tensor_to_js(env, r.summed));
          out.Set("image", tensor_to_js(env, r.image));
          return out;
        });
  }

  std::shared_ptr<BsqVaeState> state_;
};

Napi::Value load_bsq_vae(const Napi::CallbackInfo& info) {
  return load_component<BsqVaeState>(
      info, "loadBsqVae",
      [](const std::string& dir, const std::string& device) {
        auto state = std::make_shared<BsqVaeState>();
        state->backend = create_backend(device);
        state->device = state->backend->name();
        WeightLoader w(SafetensorsCheckpoint::open(dir), *state->backend, nullptr, nullptr);
        state->vae = std::make_unique<BsqVae>(derive_bsq_vae_config(w, kPrefix), w, kPrefix);
        state->backend->synchronize();
        return state;
      },
      [](Napi::Env env) -> Napi::FunctionReference& { return addon_data(env).bsq_vae_class; });
}

}  // namespace

void init_bsq_vae(Napi::Env env, Napi::Object exports) {
  addon_data(env).bsq_vae_class = Napi::Persistent(BsqVaeWrap::define(env));
  exports.Set("loadBsqVae", Napi::Function::New(env, load_bsq_vae));
}

}  // namespace vargpt::binding
