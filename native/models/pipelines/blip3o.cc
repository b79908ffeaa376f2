#include "blip3o.h"

#include "../../core/error.h"
#include "../common/config_json.h"

namespace vargpt {

std::unique_ptr<Model> Blip3o::load(const std::string& dir, std::shared_ptr<Backend> backend,
                                    const LoadProgress& progress, const std::function<bool()>& cancelled) {
  std::unique_ptr<Blip3o> m(new Blip3o());
  m->backend_ = std::move(backend);
  m->device_ = m->backend_->name();
  WeightLoader w(SafetensorsCheckpoint::open(dir), *m->backend_, progress, cancelled);
  const Json root = read_config_json(dir);
  const std::string what = dir + "/config.json";
  m->config_ = parse_qwen_vl_config(root, what, w);
  m->n_query_ = static_cast<int>(json_int(root, "n_query", 0, what));
  m->llm_ = std::make_unique<DecoderLlm>(m->config_.llm, w);
  if (m->config_.has_vision) m->vision_ = std::make_unique<Qwen2VlVision>(m->config_.vision, w, "visual.");
  m->backend_->synchronize();
  w.finish();
  return m;
}

GenerateResult Blip3o::generate(const GenerateRequest& request) {
  VG_CHECK(!request.force_image && !request.has_image_options,
           "generate: this runtime reads images with BLIP3-o checkpoints but does not draw with them yet");
  GenerateResult result;
  QwenVlParts parts;
  parts.llm = llm_.get();
  parts.vision = vision_.get();
  parts.image_token = config_.tokens.image;
  parts.eos = config_.tokens.eos_all;
  parts.step_logits_include_prefill = false;
  QwenVlTurn turn(*backend_, parts, request, result, false);
  turn.validate();
  const Tensor logits = turn.prefill();
  turn.decode(logits, -1, nullptr);
  return result;
}

Info Blip3o::info() const {
  Info out = Info::object();
  out.set("family", family()).set("device", device_);
  out.set("llm", llm_->info());
  set_qwen_vl_info(out, config_);
  out.set("nQuery", n_query_);
  out.set("image", Info::null());
  return out;
}

}  // namespace vargpt
