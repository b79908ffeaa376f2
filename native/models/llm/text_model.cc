#include "text_model.h"

#include "../../core/error.h"
#include "../common/config_json.h"

namespace vargpt {

std::unique_ptr<TextModel> TextModel::load(const std::string& dir, const std::string& device,
                                           const std::function<bool()>& cancelled) {
  std::unique_ptr<TextModel> m(new TextModel());
  m->backend_ = create_backend(device);
  WeightLoader w(SafetensorsCheckpoint::open(dir), *m->backend_, nullptr, cancelled);
  const Json root = read_config_json(dir);
  const Json* text = root.find("text_config");
  if (text == nullptr || !text->is_object()) text = &root;
  std::string prefix;
  for (const char* candidate : {"language_model.", ""})
    if (w.has(std::string(candidate) + "model.embed_tokens.weight")) {
      prefix = candidate;
      break;
    }
  VG_CHECK(w.has(prefix + "model.embed_tokens.weight"), dir,
           ": no decoder LLM (language_model.model.embed_tokens.weight or model.embed_tokens.weight)");
  const std::string what = dir + "/config.json" + (text == &root ? "" : " text_config");
  m->llm_ = std::make_unique<DecoderLlm>(parse_decoder_config(*text, what, w, prefix), w);
  m->backend_->synchronize();
  return m;
}

}  // namespace vargpt
