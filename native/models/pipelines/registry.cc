#include "registry.h"

#include <algorithm>

#include "../../core/error.h"
#include "../common/config_json.h"
#include "blip3o.h"
#include "vargpt_v1.h"
#include "vargpt_v1_1.h"

namespace vargpt {

const std::vector<ModelFamily>& model_families() {
  static const std::vector<ModelFamily> families = {
      {"vargpt-v1", {"vargpt_llava"}, {"VARGPTLlavaForConditionalGeneration"}, &VargptV1::load},
      {"vargpt-v1.1", {"vargpt_qwen2_vl"}, {"VARGPTQwen2VLForConditionalGeneration"}, &VargptV11::load},
      {"blip3o", {"blip3o_qwen", "blip3o_qwen_inference"}, {"blip3oQwenForCausalLM", "blip3oQwenForInferenceLM"}, &Blip3o::load},
  };
  return families;
}

const ModelFamily& find_model_family(const std::string& dir) {
  const Json root = read_config_json(dir);
  const std::string what = dir + "/config.json";
  const std::string model_type = json_string(root, "model_type", "", what);
  std::string architecture;
  if (const Json* a = root.find("architectures"); a && a->is_array() && !a->as_array().empty() &&
                                                  a->as_array()[0].is_string())
    architecture = a->as_array()[0].as_string();
  auto has = [](const std::vector<std::string>& list, const std::string& v) {
    return !v.empty() && std::find(list.begin(), list.end(), v) != list.end();
  };
  for (const ModelFamily& f : model_families())
    if (has(f.model_types, model_type)) return f;
  if (model_type.empty())  // architectures[0] names the family only where model_type is absent
    for (const ModelFamily& f : model_families())
      if (has(f.architectures, architecture)) return f;
  std::string supported;
  for (const ModelFamily& f : model_families())
    for (const std::string& t : f.model_types) supported += (supported.empty() ? "" : ", ") + t + " (" + f.name + ")";
  fail(what, ": model_type \"", model_type, "\"", architecture.empty() ? "" : " (architectures[0] \"" + architecture + "\")",
       " is not a supported family; supported model types: ", supported);
}

std::unique_ptr<Model> load_model(const std::string& dir, const std::string& device,
                                  const Model::LoadProgress& progress, const std::function<bool()>& cancelled,
                                  const LoadOptions& options) {
  const ModelFamily& family = find_model_family(dir);
  return family.load(dir, create_backend(device), progress, cancelled, options);
}

}  // namespace vargpt
