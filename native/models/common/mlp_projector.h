// Two-layer MLP projector y = second(act(first(x))) between the widths of two blocks: the LLaVA
// multi_modal_projector (linear_1 / linear_2, in -> out -> out), the GenPatchMerger of VARGPT
// (mlp.0 / mlp.2, in -> in -> out; its ln_q is not applied upstream) and the Qwen-VL mergers.
#pragma once

#include <string>

#include "weights.h"

namespace vargpt {

class MlpProjector {
 public:
  // Loads first [mid, in] and second [out, mid], both with bias.
  MlpProjector(int in, int mid, int out, Activation act, WeightLoader& weights, const std::string& first,
               const std::string& second);

  // LLaVA's multi_modal_projector: linear_1 (in -> out), act, linear_2 (out -> out).
  static MlpProjector llava(int in, int out, Activation act, WeightLoader& weights, const std::string& prefix) {
    return MlpProjector(in, out, out, act, weights, prefix + "linear_1", prefix + "linear_2");
  }
  // GenPatchMerger: mlp.0 (in -> in), GELU (erf), mlp.2 (in -> out).
  static MlpProjector gen_patch_merger(int in, int out, WeightLoader& weights, const std::string& prefix) {
    return MlpProjector(in, in, out, Activation::GeluErf, weights, prefix + "mlp.0", prefix + "mlp.2");
  }

  // x [..., in] -> y [..., out]
  void run(const Tensor& x, const Tensor& y) const;

 private:
  Backend& backend_;
  Activation act_;
  LinearWeights first_, second_;
};

}  // namespace vargpt
