#include "turn_batch.h"

#include <memory>

#include "../../core/error.h"

namespace vargpt {

namespace {

// The fed rows' outputs, one [1, n] tensor per row: a turn keeps its own rows (the next choice
// reads the logits; a turn that draws keeps the hidden states as its image's context).
Tensor row_copy(Backend& b, const Tensor& all, int64_t i) {
  Tensor row = b.empty(DType::F32, {1, all.dim(1)});
  b.copy(all.slice(0, i, i + 1), row);
  return row;
}

}  // namespace

int step_turns(DecoderLlm& llm, std::vector<BatchedTurn>& turns) {
  Backend& b = llm.backend();
  std::vector<DecodeRow> rows;
  std::vector<BatchedTurn*> feeding;
  int left = 0;
  for (BatchedTurn& t : turns) {
    if (t.state != BatchedTurn::State::Ready) continue;
    DecodeRow row;
    try {
      switch (t.turn->advance(row)) {
        case Turn::Next::Feed:
          rows.push_back(std::move(row));
          feeding.push_back(&t);
          continue;
        case Turn::Next::Draw: t.state = BatchedTurn::State::Draw; break;
        case Turn::Next::Done: t.state = BatchedTurn::State::Done; break;
      }
    } catch (const Cancelled&) {
      t.state = BatchedTurn::State::Cancelled;
    } catch (const std::exception& e) {
      t.state = BatchedTurn::State::Failed;
      t.error = e.what();
    }
    ++left;
  }
  if (rows.empty()) return left;

  const int64_t n = static_cast<int64_t>(rows.size());
  try {
    std::vector<std::unique_ptr<Profiler::Stage>> stages;  // each profiling turn is charged the step
    for (BatchedTurn* t : feeding) stages.push_back(std::make_unique<Profiler::Stage>(t->turn->profiler(), "decode"));
    Tensor hidden = b.empty(DType::F32, {n, llm.config().hidden});
    Tensor logits = b.empty(DType::F32, {n, llm.config().vocab});
    llm.decode_step(rows, hidden, logits);
    stages.clear();
    for (int64_t i = 0; i < n; ++i) {
      feeding[i]->turn->profiler().count("decodeTokens", 1);
      feeding[i]->turn->fed(row_copy(b, logits, i), row_copy(b, hidden, i));
    }
  } catch (const std::exception& e) {
    for (BatchedTurn* t : feeding) {
      t->state = BatchedTurn::State::Failed;
      t->error = e.what();
      ++left;
    }
  }
  return left;
}

GenerateResult run_turn_alone(Turn& turn, DecoderLlm& llm) {
  Backend& b = llm.backend();
  for (;;) {
    std::vector<DecodeRow> rows(1);
    if (turn.advance(rows[0]) != Turn::Next::Feed) break;
    Tensor hidden = b.empty(DType::F32, {1, llm.config().hidden});
    Tensor logits = b.empty(DType::F32, {1, llm.config().vocab});
    {
      Profiler::Stage stage(turn.profiler(), "decode");
      llm.decode_step(rows, hidden, logits);
    }
    turn.profiler().count("decodeTokens", 1);
    turn.fed(logits, hidden);
  }
  return turn.finish();
}

}  // namespace vargpt
