#include "config_json.h"

#include "../../core/error.h"
#include "../../core/mapped_file.h"

namespace vargpt {

Json read_config_json(const std::string& dir) {
  const std::string path = dir + "/config.json";
  Json root = parse_json(read_text_file(path), path);
  VG_CHECK(root.is_object(), path, ": must be a JSON object");
  return root;
}

int config_positive(const Json& object, const char* key, int64_t fallback, const std::string& what) {
  const int64_t v = json_int(object, key, fallback, what);
  VG_CHECK(v > 0 && v < (1 << 30), what, ": ", key, " = ", v, " must be a positive integer");
  return static_cast<int>(v);
}

Activation parse_activation(const std::string& name, const std::string& what) {
  if (name == "gelu") return Activation::GeluErf;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::GeluTanh;
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "silu" || name == "swish") return Activation::SiLU;
  fail(what, ": unsupported activation \"", name, "\"");
}

std::vector<int> config_ids(const Json& object, const char* key, const std::string& what) {
  const Json* v = object.find(key);
  std::vector<int> ids;
  if (v == nullptr || v->is_null()) return ids;
  if (v->is_array()) {
    for (const Json& e : v->as_array()) {
      VG_CHECK(e.is_integer() && e.as_int() >= 0 && e.as_int() < (int64_t{1} << 31), what, ": ", key,
               " must hold non-negative integers");
      ids.push_back(static_cast<int>(e.as_int()));
    }
    VG_CHECK(!ids.empty(), what, ": ", key, " is empty");
    return ids;
  }
  ids.push_back(static_cast<int>(json_int(object, key, -1, what)));
  VG_CHECK(ids[0] >= 0, what, ": ", key, " must be a non-negative integer");
  return ids;
}

}  // namespace vargpt
