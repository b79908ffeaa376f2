// Internal: the state of one VargptV11::generate() call.
#pragma once

#include <vector>

#include "../../core/error.h"
#include "../common/trace.h"
#include "../llm/mrope_positions.h"
#include "vargpt_v1_1.h"

namespace vargpt {

class VargptV11::Run {
 public:
  Run(VargptV11& model, const GenerateRequest& request, GenerateResult& result)
      : m_(model),
        b_(*model.backend_),
        req_(request),
        res_(result),
        trace_(b_, request.trace ? &result.trace : nullptr),
        prof_(b_, request.profile),
        cache_(model.llm_->new_cache()) {}

  void execute();

 private:
  void validate();
  void check_cancel() const {
    if (req_.cancelled && req_.cancelled()) throw Cancelled();
  }
  Tensor embed_prompt();
  void emit(int32_t token);
  Tensor step(int32_t token);  // feeds one token after the cache; returns its logits [1, vocab]

  VargptV11& m_;
  Backend& b_;
  const GenerateRequest& req_;
  GenerateResult& res_;
  TraceSink trace_;
  Profiler prof_;
  KvCache cache_;
  std::vector<ImageGrid> grids_;  // per image, in patches
  MropeIndex mrope_;
  std::vector<int32_t> history_;  // prompt + generated ids (repetition penalty)
  std::vector<Tensor> step_logits_;
  std::vector<int32_t> step_positions_;  // [steps, 3]
};

}  // namespace vargpt
