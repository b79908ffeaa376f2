#include "model.h"

#include <algorithm>
#include <cmath>

#include "../../core/error.h"
#include "../llm/turn_batch.h"

namespace vargpt {

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::Eos: return "eos";
    case StopReason::Length: return "length";
    case StopReason::Image: return "image";
  }
  return "?";
}

double ImageOptions::number(const std::string& name) const {
  const auto it = numbers.find(name);
  VG_CHECK(it != numbers.end(), "generate: image.", name, " is required");
  VG_CHECK(std::isfinite(it->second), "generate: image.", name, " must be a finite number, got ", it->second);
  return it->second;
}

int ImageOptions::integer(const std::string& name, int lo, int hi) const {
  const double v = number(name);
  VG_CHECK(v == std::floor(v) && v >= lo && v <= hi, "generate: image.", name, " must be an integer in [", lo, ", ", hi,
           "], got ", v);
  return static_cast<int>(v);
}

const std::vector<Tensor>* ImageOptions::replayed(const std::string& name) const {
  const auto it = replay.find(name);
  return it == replay.end() ? nullptr : &it->second;
}

GenerateResult Model::generate(const GenerateRequest& request) {
  const std::unique_ptr<Turn> turn = start_turn(request);
  return run_turn_alone(*turn, text_decoder());
}

ImageTokens Model::encode_image_tokens(const float*, int64_t, int, int, const TokenGrids&) {
  fail("encodeImageTokens: the ", family(), " family has no image tokenizer");
}

RgbImage Model::decode_image_tokens(const ImageTokens&, const TokenGrids&, TraceList*) {
  fail("decodeImageTokens: the ", family(), " family has no image tokenizer");
}

}  // namespace vargpt
