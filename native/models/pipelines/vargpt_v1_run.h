// Internal: the state of one VargptV1::generate() call, shared by the text loop
// (vargpt_v1_generate.cc) and the image branch (vargpt_v1_image.cc).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "../../core/error.h"
#include "../common/trace.h"
#include "../llm/decoder.h"
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

class VargptV1::Run final : public Turn {
 public:
  Run(VargptV1& model, GenerateRequest request)
      : m_(model),
        b_(*model.backend_),
        req_(std::move(request)),
        trace_(b_, req_.trace ? &res_.trace : nullptr),
        prof_(b_, req_.profile),
        cache_(model.llm_->new_cache(req_.kv_dtype)) {}

  // Checks the request and runs the prefill: the first advance() chooses from its logits.
  void start();
  Next advance(DecodeRow& feed) override;
  void fed(const Tensor& logits, const Tensor& hidden) override;
  GenerateResult finish() override;
  GenerateRequest& request() override { return req_; }
  Profiler& profiler() override { return prof_; }

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
  GenerateRequest req_;
  GenerateResult res_;
  TraceSink trace_;
  Profiler prof_;
  KvCache cache_;                 // this turn's sequence
  VarSampling image_;             // validated image options
  std::vector<int32_t> history_;  // prompt + generated ids (repetition penalty)
  std::vector<Tensor> step_logits_;
  Tensor logits_;          // [1, vocab]: what the next token is chosen from
  std::set<int32_t> stops_;
  int generated_ = 0;
  bool draws_ = false;     // advance() emitted <|image_gen_start|>: finish() draws
};

}  // namespace vargpt
