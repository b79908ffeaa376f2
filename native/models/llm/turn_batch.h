// Running assistant turns (Model::start_turn) token by token: one alone (Model::generate), or
// several together, one decode step at a time, each step one DecoderLlm::decode_step over every
// turn that continues (continuous batching: turns join and leave between steps).
#pragma once

#include <string>
#include <vector>

#include "../common/model.h"
#include "decoder.h"

namespace vargpt {

// One turn's place in a batch and what became of it in the last step.
struct BatchedTurn {
  enum class State { Ready, Draw, Done, Cancelled, Failed };
  Turn* turn = nullptr;
  State state = State::Ready;  // Ready: it continues (its logits are waiting for the next step)
  std::string error;           // Failed: why
};

// One step for every Ready turn: advance() each (choosing and emitting its next token), then
// feed those that continue through a single decode_step. A turn that leaves (an image to draw,
// the end of its text), is cancelled or fails changes state; the others stay Ready. A failure of
// the shared step fails every turn it fed, with its message. Returns how many turns left.
int step_turns(DecoderLlm& llm, std::vector<BatchedTurn>& turns);

// A turn from start to result on its own (what Model::generate() does).
GenerateResult run_turn_alone(Turn& turn, DecoderLlm& llm);

}  // namespace vargpt
