// One assistant turn of a Qwen-VL model (a Qwen2-VL or Qwen2.5-VL vision tower in front of a Qwen2
// decoder with multimodal RoPE): the prompt's images through the vision tower in one call, their
// merged features in place of the image-pad tokens, M-RoPE positions, prefill, and the token loop
// with decode positions shifted by rope_delta. VARGPT-v1.1 and BLIP3-o read images this way; each
// family adds its own drawing, which this turn hands over to when the image-start token comes.
// Trace names are the reference fixtures'.
#pragma once

#include <functional>
#include <set>
#include <vector>

#include "../../core/error.h"
#include "../common/model.h"
#include "../common/trace.h"
#include "../llm/decoder.h"
#include "../llm/mrope_positions.h"
#include "../vision/qwen2_vl.h"

namespace vargpt {

class Json;

// Token ids config.json gives a Qwen-VL model (-1 where it has none).
struct QwenVlTokens {
  int bos = -1, image = -1, video = -1, vision_start = -1, vision_end = -1;
  std::vector<int> eos_all;  // every id config.json calls EOS
};

struct QwenVlConfig {
  DecoderConfig llm;
  bool has_vision = false;  // visual.* tensors
  Qwen2VlVisionConfig vision;
  QwenVlTokens tokens;
};

// The Qwen-VL part of config.json `root` (the text model at the root or in text_config,
// vision_config, the token ids), checked against the tensors; `what` names the file in errors.
QwenVlConfig parse_qwen_vl_config(const Json& root, const std::string& what, const WeightLoader& w);
// info() parts every Qwen-VL family reports: "vision" (null without a tower) and the token ids.
void set_qwen_vl_info(Info& out, const QwenVlConfig& config);
// A token id field of `object` (-1 when absent and not required), checked to be an id.
int config_token_id(const Json& object, const char* key, const std::string& what, bool required);

// What a turn reads of the loaded model.
struct QwenVlParts {
  DecoderLlm* llm = nullptr;
  Qwen2VlVision* vision = nullptr;  // null: the checkpoint reads no images
  int image_token = -1;                   // <|image_pad|>
  std::vector<int> eos;                   // every id config.json calls EOS
  // The trace's step_logits: the logits every new token was chosen from (VARGPT-v1.1's fixture),
  // or only those of the decode steps after the prefill (BLIP3-o's, whose first token comes from
  // prefill_last_logits).
  bool step_logits_include_prefill = true;
};

// The parts every Qwen-VL family fills the same way from its loaded model and config.
QwenVlParts qwen_vl_parts(DecoderLlm* llm, Qwen2VlVision* vision, const QwenVlConfig& config);

class QwenVlTurn {
 public:
  // `keep_hidden`: keep the final-norm hidden state of every token fed (a drawing's context).
  QwenVlTurn(Backend& backend, const QwenVlParts& parts, const GenerateRequest& request, GenerateResult& result,
             bool keep_hidden);

  // Checks the text request and the images against the model, and computes the M-RoPE positions.
  // (A family that draws checks the positions its image takes itself.)
  void validate();
  // Embeds the prompt (image features in place), runs the prefill and returns the logits of its
  // last row [1, vocab].
  Tensor prefill();
  // The prompt's token embeddings [T, hidden] with the vision tower's features in place of the
  // image-pad tokens (traces input_ids, pixel_values, vit_*). prefill() starts with it; a family
  // that feeds the prompt otherwise (BLIP3-o's drawing) calls it directly.
  Tensor embed_prompt();
  // The token loop, one token at a time (Turn's contract). begin_decode() takes the prefill's
  // logits; with `image_start` >= 0 that token ends the text when emitted (or forced by
  // request.force_image), and with `draws` advance() then returns Draw for the family to draw.
  void begin_decode(Tensor logits, int image_start, bool draws);
  Turn::Next advance(DecodeRow& feed);
  void fed(const Tensor& logits, const Tensor& hidden);
  // After the text (and any drawing): the stop reason of an empty budget, the traces, the profile.
  void finish_text();

  // For a family's drawing, which continues the same sequence.
  void emit(int32_t token);
  // Feeds one token after the cache; returns its logits [1, vocab].
  Tensor step(int32_t token);
  void check_cancel() const {
    if (req_.cancelled && req_.cancelled()) throw Cancelled();
  }
  KvCache& cache() { return cache_; }
  const MropeIndex& mrope() const { return mrope_; }
  // Final-norm hidden states of every token fed so far, in order (with keep_hidden).
  const std::vector<Tensor>& hidden() const { return hidden_; }
  TraceSink& trace() { return trace_; }
  Profiler& profiler() { return prof_; }

 private:
  Backend& b_;
  QwenVlParts parts_;
  const GenerateRequest& req_;
  GenerateResult& res_;
  bool keep_hidden_;
  TraceSink trace_;
  Profiler prof_;
  KvCache cache_;
  std::vector<ImageGrid> grids_;  // per image, in patches
  MropeIndex mrope_;
  std::vector<int32_t> history_;  // prompt + generated ids (repetition penalty)
  std::vector<Tensor> step_logits_;
  std::vector<int32_t> step_positions_;  // [steps, 3]
  std::vector<Tensor> hidden_;
  Tensor logits_;  // [1, vocab]: what the next token is chosen from
  std::set<int32_t> stops_;
  int image_start_ = -1;
  bool draws_ = false;
  int generated_ = 0;
  bool forced_ = false;  // the forced image-start token was emitted
};

}  // namespace vargpt
