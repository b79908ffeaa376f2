// Shared helpers of the N-API binding. The binding only converts: JS values in, plain C++ values
// to the runtime, results and vargpt::Error messages back as JS values and JS Errors.
#pragma once

#include <napi.h>

#include <string>

#include "../core/tensor.h"

namespace vargpt::binding {

// Per-environment state (one per main thread or worker thread that loads the addon).
struct AddonData {
  Napi::FunctionReference checkpoint_class;
  Napi::FunctionReference model_class;
  Napi::FunctionReference cancel_token_class;
  Napi::FunctionReference turn_class;
  Napi::FunctionReference language_model_class, sequence_class, vision_tower_class,
      bsq_vae_class;
  Napi::FunctionReference infinity_class, infinity_cache_class;
  Napi::FunctionReference dit_class;
};
AddonData& addon_data(Napi::Env env);

void init_devices(Napi::Env env, Napi::Object exports);
void init_checkpoint(Napi::Env env, Napi::Object exports);
void init_ops(Napi::Env env, Napi::Object exports);
void init_image(Napi::Env env, Napi::Object exports);
void init_model(Napi::Env env, Napi::Object exports);  // loadModel, createCancelToken (model.cc)
void init_language_model(Napi::Env env, Napi::Object exports);  // loadLanguageModel (language_model.cc)
void init_vision_tower(Napi::Env env, Napi::Object exports);    // loadVisionTower (vision_tower.cc)
void init_bsq_vae(Napi::Env env, Napi::Object exports);         // loadBsqVae (bsq_vae.cc)
void init_infinity(Napi::Env env, Napi::Object exports);        // loadInfinity (infinity.cc)
void init_dit(Napi::Env env, Napi::Object exports);             // loadBlip3oDit (dit.cc)
void init_diffusion_decoder(Napi::Env env, Napi::Object exports);  // loadDiffusionDecoder (diffusion_decoder.cc)
void init_quantize(Napi::Env env, Napi::Object exports);  // quantizeTensor (quantize.cc)

// Parses "f32" / "bf16" / ... (the names TypeScript uses).
DType parse_dtype(const Napi::Value& value, const char* what);
Shape parse_shape(const Napi::Value& value, const char* what);

// { dtype, shape, data: ArrayBuffer }. Host tensors whose memory outlives them (mapped weights)
// are exposed without a copy where the runtime allows external buffers (not in Electron, whose
// V8 sandbox forbids them); otherwise the bytes are copied.
Napi::Object tensor_to_js(Napi::Env env, const Tensor& tensor);
// Reads { dtype, shape, data: TypedArray | ArrayBuffer }; the returned tensor views the JS memory,
// which must stay alive while it is used (the caller holds a reference).
Tensor tensor_from_js(const Napi::Value& value, const char* what);

}  // namespace vargpt::binding
