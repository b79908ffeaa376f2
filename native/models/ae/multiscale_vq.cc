#include "multiscale_vq.h"

#include <cmath>

#include "../../core/error.h"
#include "conv_tower.h"

namespace vargpt {

namespace {
constexpr float kPhiRatio = 0.5f;  // quant_resi: phi(h) = (1 - r) h + r conv(h)
}  // namespace

std::vector<int> phi_index_map(int phi_count, int scales) {
  VG_CHECK(phi_count >= 1 && scales >= 1, "phi_index_map: ", phi_count, " phi convs for ", scales, " scales");
  const int K = phi_count;
  // numpy.linspace(start, stop, K): y_k = k * ((stop - start) / (K - 1)) + start, y_{K-1} = stop.
  const double start = K == 4 ? 1.0 / 3.0 / K : 1.0 / 2.0 / K;
  const double stop = K == 4 ? 1.0 - 1.0 / 3.0 / K : 1.0 - 1.0 / 2.0 / K;
  std::vector<double> ticks(K);
  const double step = K > 1 ? (stop - start) / (K - 1) : 0.0;
  for (int k = 0; k < K; ++k) ticks[k] = k * step + start;
  if (K > 1) ticks[K - 1] = stop;
  std::vector<int> map(scales);
  for (int si = 0; si < scales; ++si) {
    const double at = scales > 1 ? static_cast<double>(si) / (scales - 1) : 0.0;
    int best = 0;
    for (int k = 1; k < K; ++k)
      if (std::fabs(ticks[k] - at) < std::fabs(ticks[best] - at)) best = k;  // first minimum, as np.argmin
    map[si] = best;
  }
  return map;
}

MultiScaleVq::MultiScaleVq(int vocab, int z_channels, int phi_count, const std::vector<int>& patch_nums, WeightLoader& w,
                           const std::string& prefix)
    : backend_(w.backend()),
      z_channels_(z_channels),
      patch_nums_(patch_nums),
      phi_index_(phi_index_map(phi_count, static_cast<int>(patch_nums.size()))) {
  codebook_ = w.f32(prefix + "embedding.weight", {vocab, z_channels});
  for (int k = 0; k < phi_count; ++k)
    phi_.push_back(w.conv(prefix + "quant_resi.qresi_ls." + std::to_string(k), z_channels, z_channels, 3, true));
}

Tensor MultiScaleVq::phi(int si, const Tensor& h) {
  VG_CHECK(si >= 0 && si < static_cast<int>(phi_index_.size()), "VQ-VAE: scale ", si, " out of range");
  Tensor y = conv_same(backend_, phi_[phi_index_[si]], h);
  backend_.axpby(1.0f - kPhiRatio, h, kPhiRatio, y, y);
  return y;
}

void MultiScaleVq::lookup(const Tensor& idx, int pn, const Tensor& h) {
  const int64_t Z = z_channels_, n = static_cast<int64_t>(pn) * pn;
  VG_CHECK(idx.rank() == 1 && idx.dim(0) == n, "VQ-VAE: ", idx.describe(), " indices for a ", pn, "x", pn, " map");
  Tensor rows = backend_.empty(DType::F32, {n, Z});
  backend_.embedding(idx, codebook_, rows);
  backend_.transpose(rows, h.view({Z, n}));
}

void MultiScaleVq::accumulate(int si, const Tensor& h, const Tensor& f_hat, const Tensor* f_rest) {
  const int64_t P = latent_size(), Z = z_channels_;
  const int last = static_cast<int>(patch_nums_.size()) - 1;
  Tensor up = h;
  if (si != last) {
    // Upstream resizes (bicubic) every scale but the last, then applies phi ("conv after upsample").
    up = backend_.empty(DType::F32, {Z, P, P});
    backend_.resize_bicubic(h, up);
  }
  const Tensor contribution = phi(si, up);
  backend_.add(f_hat, contribution, f_hat);
  if (f_rest) backend_.axpby(1.0f, *f_rest, -1.0f, contribution, *f_rest);
}

std::vector<Tensor> MultiScaleVq::quantize(const Tensor& f, std::vector<Tensor>* f_hats) {
  Backend& b = backend_;
  const int64_t P = latent_size(), Z = z_channels_;
  VG_CHECK(f.rank() == 3 && f.dim(0) == Z && f.dim(1) == P && f.dim(2) == P, "VQ-VAE quantize: f ", f.describe(),
           ", expected [", Z, ", ", P, ", ", P, "]");
  Tensor f_rest = b.empty(DType::F32, {Z, P, P});
  b.copy(f, f_rest);
  Tensor f_hat = b.empty(DType::F32, {Z, P, P});
  b.fill(f_hat, 0.0f);
  std::vector<Tensor> indices;
  const int SN = static_cast<int>(patch_nums_.size());
  for (int si = 0; si < SN; ++si) {
    const int64_t pn = patch_nums_[si], n = pn * pn;
    Tensor z = f_rest;
    if (si != SN - 1) {
      z = b.empty(DType::F32, {Z, pn, pn});
      b.resize_area(f_rest, z);
    }
    Tensor rows = b.empty(DType::F32, {n, Z});
    b.transpose(z.view({Z, n}), rows);
    Tensor idx = b.empty(DType::I32, {n});
    b.vq_nearest(rows, codebook_, idx);
    Tensor hmap = b.empty(DType::F32, {Z, pn, pn});
    lookup(idx, static_cast<int>(pn), hmap);
    accumulate(si, hmap, f_hat, &f_rest);
    indices.push_back(idx);
    if (f_hats) {
      Tensor snapshot = b.empty(DType::F32, {Z, P, P});
      b.copy(f_hat, snapshot);
      f_hats->push_back(snapshot);
    }
  }
  return indices;
}

Tensor MultiScaleVq::indices_to_fhat(const std::vector<Tensor>& indices) {
  const int64_t P = latent_size(), Z = z_channels_;
  VG_CHECK(indices.size() == patch_nums_.size(), "VQ-VAE: ", indices.size(), " index lists for ", patch_nums_.size(),
           " scales");
  Tensor f_hat = backend_.empty(DType::F32, {Z, P, P});
  backend_.fill(f_hat, 0.0f);
  for (size_t si = 0; si < indices.size(); ++si) {
    const int pn = patch_nums_[si];
    Tensor h = backend_.empty(DType::F32, {Z, pn, pn});
    lookup(indices[si], pn, h);
    accumulate(static_cast<int>(si), h, f_hat);
  }
  return f_hat;
}

}  // namespace vargpt
