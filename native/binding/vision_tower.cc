// loadVisionTower(dir, device) -> Promise<VisionTower>: a checkpoint's Qwen2-VL or Qwen2.5-VL
// vision tower alone (vision_config of config.json, tensors under "visual."), for checking it
// against its reference before the family's pipeline runs it. encode() returns the patch
// embedding, every block's output and the merger's features; for Qwen2.5-VL also the window
// layout it used and the merger output before it is put back in order. Calls run one at a time.
#include <cstring>
#include <memory>
#include <mutex>

#include "../models/common/config_json.h"
#include "../models/vision/qwen2_vl.h"
#include "async.h"
#include "binding.h"

namespace vargpt::binding {

namespace {

struct VisionTowerState {
  std::shared_ptr<Backend> backend;
  std::unique_ptr<Qwen2VlVision> vision;
  std::mutex call_mutex;
};

struct EncodeResult {
  Tensor patch_embed, block_out, features;
  Tensor merger_windowed, window_index, cu_window_seqlens;  // Qwen2.5-VL only (host, else undefined)
};

class VisionTowerWrap : public Napi::ObjectWrap<VisionTowerWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "VisionTower", {InstanceMethod("encode", &VisionTowerWrap::encode)});
  }
  explicit VisionTowerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VisionTowerWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use loadVisionTower(dir, device) to load a vision tower");
    state_ = *info[0].As<Napi::External<std::shared_ptr<VisionTowerState>>>().Data();
  }

 private:
  // encode(patches: Float32Array [N x patch_values], grids: Int32Array [images x (t, h, w)])
  Napi::Value encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<float> patches;
    std::vector<ImageGrid> grids;
    try {
      VG_CHECK(info.Length() == 2 && info[0].IsTypedArray() &&
                   info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array && info[1].IsTypedArray() &&
                   info[1].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array,
               "encode(patches, grids): a Float32Array and an Int32Array of (t, h, w) triples");
      const auto p = info[0].As<Napi::Float32Array>();
      patches.assign(p.Data(), p.Data() + p.ElementLength());
      const auto g = info[1].As<Napi::Int32Array>();
      VG_CHECK(g.ElementLength() > 0 && g.ElementLength() % 3 == 0, "encode: grids must hold (t, h, w) triples");
      for (size_t i = 0; i < g.ElementLength(); i += 3) grids.push_back({g[i], g[i + 1], g[i + 2]});
    } catch (const std::exception& e) {
      return rejected_promise(env, e.what());
    }
    auto state = state_;
    return PromiseWorker<EncodeResult>::start(
        env, "vargpt.visionTower.encode",
        [state, patches, grids]() {
          std::lock_guard<std::mutex> lock(state->call_mutex);
          Backend& b = *state->backend;
          const Qwen2VlVisionConfig& c = state->vision->config();
          const int64_t values = c.patch_values();
          VG_CHECK(static_cast<int64_t>(patches.size()) % values == 0, "encode: patches has ", patches.size(),
                   " values, not a multiple of ", values);
          const int64_t N = static_cast<int64_t>(patches.size()) / values;
          const int64_t m2 = int64_t{c.merge} * c.merge;
          VG_CHECK(N % m2 == 0, "encode: ", N, " patches do not fill ", c.merge, "x", c.merge, " windows");
          EncodeResult r;
          std::vector<Tensor> blocks;
          Qwen2VlVision::Hooks hooks;
          hooks.patch_embed = [&](const Tensor& t) { r.patch_embed = b.to_host(t); };
          hooks.block_out = [&](int, const Tensor& t) { blocks.push_back(b.to_host(t)); };
          hooks.merger_windowed = [&](const Tensor& t) { r.merger_windowed = b.to_host(t); };
          hooks.windows = [&](const VisionWindows& w) {
            r.window_index = Tensor::from_host(DType::I32, {static_cast<int64_t>(w.index.size())}, w.index.data());
            r.cu_window_seqlens =
                Tensor::from_host(DType::I64, {static_cast<int64_t>(w.cu_seqlens.size())}, w.cu_seqlens.data());
          };
          Tensor features = b.empty(DType::F32, {N / m2, c.out_hidden});
          state->vision->encode(b.upload(Tensor::from_host(DType::F32, {N, values}, patches.data())), grids, features,
                                hooks);
          r.features = b.to_host(features);
          r.block_out = Tensor::empty_host(DType::F32, {static_cast<int64_t>(blocks.size()), N, c.embed_dim});
          for (size_t i = 0; i < blocks.size(); ++i)
            std::memcpy(static_cast<char*>(r.block_out.raw()) + i * blocks[i].nbytes(), blocks[i].raw(),
                        blocks[i].nbytes());
          return r;
        },
        [](Napi::Env env, EncodeResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("patchEmbed", tensor_to_js(env, r.patch_embed));
          out.Set("blockOut", tensor_to_js(env, r.block_out));
          out.Set("features", tensor_to_js(env, r.features));
          if (r.window_index.defined()) {
            out.Set("mergerWindowed", tensor_to_js(env, r.merger_windowed));
            out.Set("windowIndex", tensor_to_js(env, r.window_index));
            out.Set("cuWindowSeqlens", tensor_to_js(env, r.cu_window_seqlens));
          }
          return out;
        });
  }

  std::shared_ptr<VisionTowerState> state_;
};

Napi::Value load_vision_tower(const Napi::CallbackInfo& info) {
  return load_component<VisionTowerState>(
      info, "loadVisionTower",
      [](const std::string& dir, const std::string& device) {
        auto state = std::make_shared<VisionTowerState>();
        state->backend = create_backend(device);
        WeightLoader w(SafetensorsCheckpoint::open(dir), *state->backend, nullptr, nullptr);
        const Json root = read_config_json(dir);
        const Json* vision = root.find("vision_config");
        VG_CHECK(vision && vision->is_object(), dir, "/config.json: no vision_config object");
        state->vision = std::make_unique<Qwen2VlVision>(
            parse_qwen2_vl_vision_config(*vision, dir + "/config.json vision_config", w, "visual."), w, "visual.");
        state->backend->synchronize();
        return state;
      },
      [](Napi::Env env) -> Napi::FunctionReference& { return addon_data(env).vision_tower_class; });
}

}  // namespace

void init_vision_tower(Napi::Env env, Napi::Object exports) {
  addon_data(env).vision_tower_class = Napi::Persistent(VisionTowerWrap::define(env));
  exports.Set("loadVisionTower", Napi::Function::New(env, load_vision_tower));
}

}  // namespace vargpt::binding
