// libFuzzer harness: the JSON reader used for config.json and the typed config accessors.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/json.h"

namespace {
void walk(const vargpt::Json& value, int depth) {
  if (depth > 70) __builtin_trap();  // the parser bounds nesting at 64
  if (value.is_array())
    for (const auto& item : value.as_array()) walk(item, depth + 1);
  if (value.is_object())
    for (const auto& [key, item] : value.as_object()) walk(item, depth + 1);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const vargpt::Json config = vargpt::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "config.json");
    walk(config, 0);
    if (config.is_object()) {
      vargpt::json_int(config, "hidden_size", 0, "config.json");
      vargpt::json_number(config, "rms_norm_eps", 1e-5, "config.json");
      vargpt::json_string(config, "model_type", "", "config.json");
      vargpt::json_bool(config, "tie_word_embeddings", false, "config.json");
      if (const vargpt::Json* text = config.find("text_config")) vargpt::json_int(*text, "num_hidden_layers", 0, "text_config");
    }
  } catch (const vargpt::Error&) {
  }
  return 0;
}
