// VARGPT v1 hyper-parameters. The LLM and vision sizes come from config.json (checked against the
// tensor shapes by the loaders); the VAR decoder and VQ-VAE sizes are not in config.json (upstream
// hard-codes them), so they are derived from tensor shapes. Nothing here is model-size specific.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../ae/vqvae.h"
#include "../gen/var.h"
#include "../llm/decoder.h"
#include "../vision/clip.h"

namespace vargpt {

struct TokenIds {
  int bos = 1, eos = 2, image = -1, image_gen_start = -1, image_gen_end = -1, image_gen_pad = -1;
  std::vector<int> eos_all;  // every id config.json calls EOS
};

struct VargptConfig {
  DecoderConfig llm;
  bool has_vision = false;
  ClipConfig vision;
  Activation projector_act = Activation::GeluErf;
  bool has_image_gen = false;
  VarConfig var;
  VqvaeConfig vqvae;
  TokenIds tokens;
};

// Reads config.json of `dir` and derives the rest from the checkpoint's tensor shapes.
VargptConfig load_vargpt_config(const std::string& dir, const WeightLoader& weights);

}  // namespace vargpt
