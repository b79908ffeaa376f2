// The text half of every family's turn: checking a request's text options and choosing each next
// token (HF's repetition penalty, then greedy or seeded top-k / top-p sampling), so that every
// family decodes text the same way.
#pragma once

#include <cstdint>
#include <vector>

#include "model.h"

namespace vargpt {

// Checks input ids against the vocabulary and the sampling options' ranges; throws vargpt::Error
// naming the request field.
void check_text_request(const GenerateRequest& request, int vocab);

// The next token from `logits` [1, vocab]: the repetition penalty over `history` (prompt and
// generated ids, as HF applies it), then argmax at temperature 0, else a draw seeded by
// (request.seed, step) so a seeded call is reproducible.
int32_t choose_text_token(Backend& backend, const Tensor& logits, const GenerateRequest& request,
                          const std::vector<int32_t>& history, int step, int vocab);

}  // namespace vargpt
