// One VARGPT-v1.1 assistant turn: the Qwen-VL turn (qwen_vl_turn.h) with the checks of the
// drawing options, handing over to the Infinity branch (vargpt_v1_1_image.cc) at
// <|image_gen_start|>.
#include "vargpt_v1_1_run.h"

namespace vargpt {

void VargptV11::Run::validate() {
  const VargptV11Config& c = m_.config_;
  const GenerateRequest& r = req_;
  VG_CHECK(c.has_image_gen || !r.force_image,
           "generate: forceImage: this checkpoint has no image-generation weights (vargpt_gen.*, vae_local.*)");
  VG_CHECK(c.has_image_gen || !r.has_image_options,
           "generate: request.image: this checkpoint has no image-generation weights (vargpt_gen.*, vae_local.*)");
  VG_CHECK(!r.force_image || r.has_image_options, "generate: forceImage needs request.image (cfg, tau, topK, topP, scales)");
  turn_.validate();
  if (r.has_image_options) check_image_options();
}

void VargptV11::Run::start() {
  validate();
  const Tensor logits = turn_.prefill();
  turn_.begin_decode(logits, m_.config_.gen.start, req_.has_image_options);
}

GenerateResult VargptV11::Run::finish() {
  if (draws_) draw_image();
  turn_.finish_text();
  return std::move(res_);
}

}  // namespace vargpt
