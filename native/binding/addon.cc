// Module entry: registers each part of the binding.
#include <napi.h>

#include "binding.h"

namespace vargpt::binding {
AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
}  // namespace vargpt::binding

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new vargpt::binding::AddonData());
  vargpt::binding::init_devices(env, exports);
  vargpt::binding::init_checkpoint(env, exports);
  vargpt::binding::init_ops(env, exports);
  vargpt::binding::init_image(env, exports);
  vargpt::binding::init_model(env, exports);
  vargpt::binding::init_language_model(env, exports);
  vargpt::binding::init_vision_tower(env, exports);
  vargpt::binding::init_bsq_vae(env, exports);
  vargpt::binding::init_infinity(env, exports);
  vargpt::binding::init_dit(env, exports);
  vargpt::binding::init_diffusion_decoder(env, exports);
  vargpt::binding::init_quantize(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(vargpt, Init)
