#include "scale_blocks.h"

#include <algorithm>
#include <cmath>

namespace vargpt {

Tensor packed_attention_bias(WeightLoader& w, const std::string& p, int64_t C, bool with_query) {
  const int64_t parts = with_query ? 3 : 2;
  Tensor bias = Tensor::empty_host(DType::F32, {parts * C});
  float* at = bias.data<float>();
  if (with_query) {
    const Tensor qb = w.host_f32(p + "q_bias", {C});
    at = std::copy(qb.data<float>(), qb.data<float>() + C, at);
  }
  if (w.has(p + "zero_k_bias")) {
    const Tensor kb = w.host_f32(p + "zero_k_bias", {C});
    at = std::copy(kb.data<float>(), kb.data<float>() + C, at);
  } else {
    at = std::fill_n(at, C, 0.0f);
  }
  const Tensor vb = w.host_f32(p + "v_bias", {C});
  std::copy(vb.data<float>(), vb.data<float>() + C, at);
  return w.backend().upload(bias);
}

Tensor cosine_attention_head_scale(WeightLoader& w, const std::string& name, int heads) {
  const double max_scale_mul = std::log(100.0);
  const Tensor sm = w.host_f32(name, {1, heads, 1, 1});
  Tensor hs = Tensor::empty_host(DType::F32, {heads});
  for (int h = 0; h < heads; ++h)
    hs.data<float>()[h] = static_cast<float>(std::exp(std::min(static_cast<double>(sm.data<float>()[h]), max_scale_mul)));
  return w.backend().upload(hs);
}

std::vector<Tensor> split_chunks(Backend& b, const Tensor& packed, int count, int64_t C) {
  std::vector<Tensor> out;
  for (int i = 0; i < count; ++i) {
    Tensor t = b.empty(DType::F32, {packed.dim(0), C});
    b.copy(packed.slice(1, i * C, (i + 1) * C), t);
    out.push_back(t);
  }
  return out;
}

}  // namespace vargpt
