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
        cache_(model.llm_->new_cache(request.kv_dtype)) {}

  void execute();

 private:
  void validate();
  void check_cancel() const {
    if (req_.cancelled && req_.cancelled()) throw Cancelled();
  }
  Tensor embed_prompt();
  void emit(int32_t token);
  // Feeds one token after the cache; returns its logits [1, vocab] and keeps its hidden state for
  // the image's cross-attention context.
  Tensor step(int32_t token);
  void check_image_options();
  void draw_image();  // vargpt_v1_1_image.cc
  // A small decode of the running code sum, for on_image_progress after scale (h, w).
  RgbImage preview(const Tensor& summed, int h, int w);

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
  std::vector<Tensor> ctx_hidden_;  // H_ctx: post-norm hidden of every token fed, in order
  struct Scale {
    int h, w;
  };
  std::vector<Scale> scales_;  // the image's schedule (request.image.scales)
  float cfg_ = 0, tau_ = 1, top_p_ = 1;
  int top_k_ = 0;
};

}  // namespace vargpt
