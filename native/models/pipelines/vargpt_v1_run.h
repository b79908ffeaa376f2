// Internal: the state of one VargptV1::generate() call, shared by the text loop
// (vargpt_v1_generate.cc) and the image branch (vargpt_v1_image.cc).
#pragma once

#include <string>
#include <vector>

#include "../../core/error.h"
#include "../common/trace.h"
#include "vargpt_v1.h"

namespace vargpt {

// The image options of a VARGPT v1 request (VAR sampling), read from the generic ImageOptions.
struct VarSampling {
  float cfg = 0;  // guidance at the last scale; ramps linearly from 0
  int top_k = 0;
  float top_p = 1;
  uint64_t seed = 0;
  // Replay: indices[si] (pn*pn i32) replace the sampler and noise[si] (pn*pn*hidden f32) the
  // Gaussian rows of the CFG branch at scale si, so a recorded run can be reproduced.
  const std::vector<Tensor>* replay_indices = nullptr;
  const std::vector<Tensor>* replay_noise = nullptr;
};

class VargptV1::Run {
 public:
  Run(VargptV1& model, const GenerateRequest& request, GenerateResult& result)
      : m_(model),
        b_(*model.backend_),
        req_(request),
        res_(result),
        trace_(b_, request.trace ? &result.trace : nullptr),
        prof_(b_, request.profile),
        cache_(model.llm_->new_cache(request.kv_dtype)) {}

  void execute();

 private:
  void validate();
  void check_cancel() const {
    if (req_.cancelled && req_.cancelled()) throw Cancelled();
  }
  Tensor embed_prompt();
  void emit(int32_t token);
  // Feeds one token at the next position; returns its logits [1, vocab].
  Tensor step(int32_t token);
  void draw_image();  // vargpt_v1_image.cc
  RgbImage preview(const Tensor& f_hat, int si);

  VargptV1& m_;
  Backend& b_;
  const GenerateRequest& req_;
  GenerateResult& res_;
  TraceSink trace_;
  Profiler prof_;
  KvCache cache_;                 // this turn's sequence
  VarSampling image_;             // validated image options
  std::vector<int32_t> history_;  // prompt + generated ids (repetition penalty)
  std::vector<Tensor> step_logits_;
};

}  // namespace vargpt
