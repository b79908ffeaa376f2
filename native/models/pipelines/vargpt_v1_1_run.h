// Internal: the state of one VargptV11::generate() call: a Qwen-VL turn (qwen_vl_turn.h) and,
// when it draws, the image's options (vargpt_v1_1_image.cc).
#pragma once

#include <vector>

#include "../../core/error.h"
#include "qwen_vl_turn.h"
#include "vargpt_v1_1.h"

namespace vargpt {

class VargptV11::Run final : public Turn {
 public:
  Run(VargptV11& model, GenerateRequest request)
      : m_(model),
        b_(*model.backend_),
        req_(std::move(request)),
        // A turn that may draw keeps every hidden state: they become the cross-attention context.
        turn_(b_, model.turn_parts(), req_, res_, req_.has_image_options),
        trace_(turn_.trace()),
        prof_(turn_.profiler()),
        cache_(turn_.cache()),
        mrope_(turn_.mrope()),
        ctx_hidden_(turn_.hidden()) {}

  // Checks the request and runs the prefill: the first advance() chooses from its logits.
  void start();
  Next advance(DecodeRow& feed) override {
    const Next next = turn_.advance(feed);
    draws_ = draws_ || next == Next::Draw;
    return next;
  }
  void fed(const Tensor& logits, const Tensor& hidden) override { turn_.fed(logits, hidden); }
  GenerateResult finish() override;
  GenerateRequest& request() override { return req_; }
  Profiler& profiler() override { return prof_; }

 private:
  void validate();
  void check_cancel() const { turn_.check_cancel(); }
  void emit(int32_t token) { turn_.emit(token); }
  Tensor step(int32_t token) { return turn_.step(token); }
  void check_image_options();
  void draw_image();  // vargpt_v1_1_image.cc
  // A small decode of the running code sum, for on_image_progress after scale (h, w).
  RgbImage preview(const Tensor& summed, int h, int w);

  VargptV11& m_;
  Backend& b_;
  GenerateRequest req_;
  GenerateResult res_;
  QwenVlTurn turn_;
  bool draws_ = false;  // advance() emitted <|image_gen_start|>: finish() draws
  TraceSink& trace_;
  Profiler& prof_;
  KvCache& cache_;
  const MropeIndex& mrope_;
  const std::vector<Tensor>& ctx_hidden_;  // H_ctx: post-norm hidden of every token fed, in order
  struct Scale {
    int h, w;
  };
  std::vector<Scale> scales_;  // the image's schedule (request.image.scales)
  float cfg_ = 0, tau_ = 1, top_p_ = 1;
  int top_k_ = 0;
};

}  // namespace vargpt
