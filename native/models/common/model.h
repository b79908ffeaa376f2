// The interface every model family implements, and the request and result types the binding
// speaks. A family is a pipeline (native/models/pipelines/) registered in registry.cc; the binding
// sees only this header, so a new family adds no binding code.
//
// Defaults live in TypeScript (lib/families/): a request always carries explicit values, and native
// code checks only what memory safety and the kernels need.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../../backend/backend.h"
#include "image_out.h"
#include "info.h"
#include "trace.h"
#include "weights.h"

namespace vargpt {

// Family-specific image options: named numbers (cfg, topK, topP, steps, ...) and recorded random
// draws to replay (per step: indices, noise, bits, ...). Each family reads the names it knows and
// rejects a request that lacks one it needs.
struct ImageOptions {
  uint64_t seed = 0;
  std::map<std::string, double> numbers;
  std::map<std::string, std::vector<Tensor>> replay;  // host tensors (i32 or f32), one per step
  // Options that are lists of numbers (an array of numbers, or of arrays of numbers flattened in
  // order), e.g. VARGPT-v1.1's scale schedule "scales" [h0, w0, h1, w1, ...].
  std::map<std::string, std::vector<double>> lists;

  double number(const std::string& name) const;  // throws "generate: image.<name> is required"
  int integer(const std::string& name, int lo, int hi) const;
  // The recorded draws named `name`, or nullptr when the request replays nothing of that name.
  const std::vector<Tensor>* replayed(const std::string& name) const;
};

struct GenerateRequest {
  std::vector<int32_t> input_ids;
  std::vector<Tensor> pixel_values;  // host f32, one per image in the prompt (layout: the family's)
  // Per image, its patch grid (t, h, w), for families that read images at their own resolution
  // (Qwen2-VL); empty for fixed-size vision towers.
  std::vector<std::array<int32_t, 3>> image_grids;
  bool force_image = false;          // emit the family's image-start token as the first new token
  int max_new_tokens = 0;
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;
  // Only stop_ids and the budget end text (benchmarks); VARGPT v1 then also decodes a sampled
  // image-start token as text instead of drawing.
  bool ignore_eos = false;
  // Precision of the call's attention caches: the LLM's keys and values and an image decoder's
  // per-scale keys and values (F32, or BF16 for half the memory).
  DType kv_dtype = DType::F32;
  bool has_image_options = false;
  ImageOptions image;
  bool trace = false;
  bool profile = false;
  std::function<bool()> cancelled;  // polled between tokens and between image steps
  std::function<void(int32_t token)> on_token;
  // After every image step: stage ("scale" for next-scale prediction, "step" for a sampler),
  // the 0-based step, the step count and a preview (the finished image after the last step).
  std::function<void(const char* stage, int step, int steps, const RgbImage& preview)> on_image_progress;
};

enum class StopReason { Eos, Length, Image };
const char* stop_reason_name(StopReason reason);

using TraceList = std::vector<std::pair<std::string, Tensor>>;  // host tensors, in recording order

struct GenerateResult {
  std::vector<int32_t> tokens;  // new tokens, including the image-start token (and what follows) for an image
  StopReason stop = StopReason::Length;
  int32_t token_after_image_start = -1;
  bool has_image = false;
  RgbImage image;
  TraceList trace;
  std::vector<std::pair<std::string, double>> profile;  // stage -> seconds
};

// Discrete image tokens (VQ indices, BSQ bits) as lists of ids, one list per scale.
using ImageTokens = std::vector<std::vector<int32_t>>;
// A scale schedule: the (h, w) token grid of every scale. Empty: the family's fixed schedule.
using TokenGrids = std::vector<std::array<int, 2>>;

class DecoderLlm;
struct DecodeRow;

// How a checkpoint is loaded (loadModel's options).
struct LoadOptions {
  // The LLM's linear layers (and an untied lm_head): as stored, converted to f32 or bf16, or
  // quantized to int8 or q4 on load.
  LinearPrecision llm_weights = LinearPrecision::Stored;
  // The image generator's transformer linear layers (VAR's and Infinity's blocks and head, the
  // BLIP3-o DiT's blocks): the same choices. Everything else (embeddings, norms, codebooks, vision
  // towers, projectors, the image decoders' convolutions) stays as stored.
  LinearPrecision generator_weights = LinearPrecision::Stored;
  // false: the CPU backend copies every weight it would read in place from the mapped checkpoint
  // into its own memory (huge pages on Linux) and lets go of the file's pages (loadModel's mmap).
  bool map_weights = true;
};

// One assistant turn that a scheduler advances a token at a time, so that the decode steps of
// several turns can share one forward pass (DecoderLlm::decode_step: continuous batching).
// Model::generate() runs a turn alone through the same calls (run_turn_alone), so a turn decoded
// in a batch produces the tokens it produces alone.
class Turn {
 public:
  enum class Next { Feed, Draw, Done };
  virtual ~Turn() = default;
  // Chooses and emits (request().on_token) the next token from the latest logits, or the token the
  // request forces. Feed: `feed` holds what the decoder runs next, and fed() must follow before the
  // next advance(); Draw: the token started an image, which finish() draws; Done: the text ended.
  virtual Next advance(DecodeRow& feed) = 0;
  // The fed row's outputs: logits [1, vocab] and final-norm hidden state [1, hidden].
  virtual void fed(const Tensor& logits, const Tensor& hidden) = 0;
  // Draws when advance() said Draw, then records the traces and profile; called once, last.
  virtual GenerateResult finish() = 0;
  // The turn's own copy of its request. Its callbacks and cancel poll may be replaced between
  // calls (each call of the binding streams through its own worker).
  virtual GenerateRequest& request() = 0;
  virtual Profiler& profiler() = 0;
};

class Model {
 public:
  using LoadProgress = std::function<void(uint64_t loaded, uint64_t total)>;
  virtual ~Model() = default;

  virtual const char* family() const = 0;  // the registry's name, e.g. "vargpt-v1"
  virtual const std::string& device() const = 0;
  // Sizes and token ids for the caller (the binding turns it into a JS object).
  virtual Info info() const = 0;

  // One assistant turn, run alone: start_turn() and run_turn_alone(). Not reentrant: the binding
  // runs one call at a time per model.
  GenerateResult generate(const GenerateRequest& request);

  // Checks `request` and runs everything before the first token (the vision tower, the prefill).
  // The turn refers to this model, which must outlive it.
  virtual std::unique_ptr<Turn> start_turn(GenerateRequest request) = 0;
  // The decoder every turn of this model feeds.
  virtual DecoderLlm& text_decoder() = 0;

  // Image tokenizer, where the family has one. `pixels` is [channels, height, width] in [-1, 1];
  // `scales` is the schedule for families whose schedule varies (empty: the family's own).
  virtual ImageTokens encode_image_tokens(const float* pixels, int64_t count, int height, int width,
                                          const TokenGrids& scales);
  virtual RgbImage decode_image_tokens(const ImageTokens& tokens, const TokenGrids& scales, TraceList* trace);
};

}  // namespace vargpt
