#include "text_sampling.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "../../core/error.h"
#include "../../core/rng.h"

namespace vargpt {

void check_text_request(const GenerateRequest& r, int vocab) {
  const size_t T = r.input_ids.size();
  VG_CHECK(T > 0, "generate: inputIds is empty");
  for (size_t i = 0; i < T; ++i)
    VG_CHECK(r.input_ids[i] >= 0 && r.input_ids[i] < vocab, "generate: inputIds[", i, "] = ", r.input_ids[i],
             " is outside the vocabulary [0, ", vocab, ")");
  VG_CHECK(r.max_new_tokens >= 0, "generate: maxNewTokens must be >= 0, got ", r.max_new_tokens);
  VG_CHECK(std::isfinite(r.temperature) && r.temperature >= 0, "generate: temperature must be >= 0, got ", r.temperature);
  VG_CHECK(r.top_k >= 0, "generate: topK must be >= 0, got ", r.top_k);
  VG_CHECK(r.top_p > 0 && r.top_p <= 1, "generate: topP must be in (0, 1], got ", r.top_p);
  VG_CHECK(std::isfinite(r.repetition_penalty) && r.repetition_penalty > 0,
           "generate: repetitionPenalty must be > 0, got ", r.repetition_penalty);
}

int32_t choose_text_token(Backend& b, const Tensor& raw_logits, const GenerateRequest& req,
                          const std::vector<int32_t>& history, int step, int vocab) {
  Tensor logits = raw_logits;
  if (req.repetition_penalty != 1.0f) {
    // HF RepetitionPenaltyLogitsProcessor over every id seen so far (prompt included): positive
    // logits are divided by the penalty, negative ones multiplied. A V-float host round trip.
    Tensor host = b.to_host(raw_logits);
    float* v = host.data<float>();
    const float p = req.repetition_penalty;
    for (int32_t id : std::set<int32_t>(history.begin(), history.end())) v[id] = v[id] < 0 ? v[id] * p : v[id] / p;
    logits = b.upload(host);
  }
  Tensor idx = b.empty(DType::I32, {1});
  if (req.temperature == 0.0f) {
    b.argmax(logits, idx);
  } else {
    SamplingParams sp;
    sp.top_k = std::min(req.top_k, vocab);
    sp.top_p = req.top_p;
    sp.temperature = req.temperature;
    sp.seed = req.seed;
    sp.stream = rng_stream(RngPurpose::TextSampling, static_cast<uint32_t>(step));
    b.sample(logits, sp, idx, nullptr);
  }
  return b.to_host(idx).data<int32_t>()[0];
}

}  // namespace vargpt
