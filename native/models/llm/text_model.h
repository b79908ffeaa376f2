// The decoder LLM of any supported checkpoint on its own: config.json's text_config (or the root
// config when there is none) and the tensors under "language_model." or at the top level. Used to
// check a family's LLM against its reference before the rest of the family runs, and to time it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "decoder.h"

namespace vargpt {

class TextModel {
 public:
  static std::unique_ptr<TextModel> load(const std::string& dir, const std::string& device,
                                         const std::function<bool()>& cancelled);

  Backend& backend() { return *backend_; }
  DecoderLlm& llm() { return *llm_; }

 private:
  TextModel() = default;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<DecoderLlm> llm_;
};

}  // namespace vargpt
