// VAR's multi-scale residual quantizer: one shared codebook, per-scale token maps of pn x pn, and
// the partially shared phi convs phi(h) = 0.5 h + 0.5 conv3x3(h) applied after upsampling each
// scale's codes to the latent size (bicubic; the last scale is already full size).
#pragma once

#include <string>
#include <vector>

#include "../common/weights.h"

namespace vargpt {

// phi selection of VAR's quantizer (PhiPartiallyShared / PhiNonShared): scale si of SN uses conv
// argmin_k |tick_k - si/(SN-1)|, ticks = numpy.linspace(1/(3K), 1-1/(3K), K) when K == 4, else
// linspace(1/(2K), 1-1/(2K), K), evaluated in double as numpy does (ties are decided by rounding).
std::vector<int> phi_index_map(int phi_count, int scales);

class MultiScaleVq {
 public:
  // codebook [vocab, z] at prefix + "embedding.weight", phi convs at prefix + "quant_resi.qresi_ls.K".
  MultiScaleVq(int vocab, int z_channels, int phi_count, const std::vector<int>& patch_nums, WeightLoader& weights,
               const std::string& prefix);

  int latent_size() const { return patch_nums_.back(); }

  // h [Z, pn, pn] = codebook[idx] laid out as a map (token j -> row j / pn, column j % pn).
  void lookup(const Tensor& idx, int pn, const Tensor& h);
  // f_hat [Z, P, P] += phi_{map(si)}(bicubic_up(h)); f_rest (optional) -= the same contribution.
  void accumulate(int si, const Tensor& h, const Tensor& f_hat, const Tensor* f_rest = nullptr);
  // Residual multi-scale quantisation of f [Z, P, P] (f_to_idxBl_or_fhat): i32 [pn*pn] per scale;
  // f_hats (optional) receives the f_hat after each scale.
  std::vector<Tensor> quantize(const Tensor& f, std::vector<Tensor>* f_hats = nullptr);
  // f_hat of a full index list (embed_to_fhat with all_to_max_scale): [Z, P, P].
  Tensor indices_to_fhat(const std::vector<Tensor>& indices);

 private:
  Tensor phi(int si, const Tensor& h);

  Backend& backend_;
  int z_channels_;
  std::vector<int> patch_nums_;
  std::vector<int> phi_index_;
  Tensor codebook_;  // [V, Z] f32 (small; vq_nearest reads f32)
  std::vector<ConvWeights> phi_;
};

}  // namespace vargpt
