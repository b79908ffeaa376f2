#include "vqvae.h"

#include <cmath>

#include "../core/error.h"

namespace vargpt {

namespace {
constexpr int kGroups = 32;        // Normalize() = GroupNorm(32, C, eps 1e-6)
constexpr float kGroupEps = 1e-6f;
constexpr float kPhiRatio = 0.5f;  // quant_resi: φ(h) = (1 - r)·h + r·conv(h)
}  // namespace

VqVae::VqVae(const VqvaeConfig& config, const std::vector<int>& patch_nums, WeightLoader& w, const std::string& prefix)
    : backend_(w.backend()), config_(config), patch_nums_(patch_nums) {
  const VqvaeConfig& c = config;
  const int levels = static_cast<int>(c.ch_mult.size());
  const int Z = c.z_channels;

  // Decoder: conv_in -> mid -> up.{levels-1 .. 0} -> norm_out, SiLU, conv_out.
  {
    const std::string p = prefix + "decoder.";
    int block_in = c.ch * c.ch_mult.back();
    dec_.conv_in = w.conv(p + "conv_in", block_in, Z, 3, true);
    dec_.mid1 = load_resnet(w, p + "mid.block_1", block_in, block_in);
    dec_.mid_attn = c.dec_mid_attn;
    if (dec_.mid_attn) dec_.mid_attention = load_attn(w, p + "mid.attn_1", block_in);
    dec_.mid2 = load_resnet(w, p + "mid.block_2", block_in, block_in);
    dec_.levels.resize(levels);
    for (int i = levels - 1; i >= 0; --i) {
      const std::string lp = p + "up." + std::to_string(i) + ".";
      const int block_out = c.ch * c.ch_mult[i];
      Level& lvl = dec_.levels[i];
      for (int j = 0; j < c.dec_blocks; ++j) {
        lvl.blocks.push_back(load_resnet(w, lp + "block." + std::to_string(j), block_in, block_out));
        block_in = block_out;
        if (c.dec_attn[i]) lvl.attn.push_back(load_attn(w, lp + "attn." + std::to_string(j), block_in));
      }
      if (i != 0) lvl.resample = w.conv(lp + "upsample.conv", block_in, block_in, 3, true);
    }
    dec_.norm_out = w.norm(p + "norm_out", block_in, true);
    dec_.conv_out = w.conv(p + "conv_out", c.in_channels, block_in, 3, true);
  }
  // Encoder: conv_in -> down.{0 .. levels-1} -> mid -> norm_out, SiLU, conv_out.
  if (c.has_encoder) {
    const std::string p = prefix + "encoder.";
    enc_.conv_in = w.conv(p + "conv_in", c.ch, c.in_channels, 3, true);
    int block_in = c.ch;
    enc_.levels.resize(levels);
    for (int i = 0; i < levels; ++i) {
      const std::string lp = p + "down." + std::to_string(i) + ".";
      const int block_out = c.ch * c.ch_mult[i];
      Level& lvl = enc_.levels[i];
      for (int j = 0; j < c.enc_blocks; ++j) {
        lvl.blocks.push_back(load_resnet(w, lp + "block." + std::to_string(j), block_in, block_out));
        block_in = block_out;
        if (c.enc_attn[i]) lvl.attn.push_back(load_attn(w, lp + "attn." + std::to_string(j), block_in));
      }
      if (i != levels - 1) lvl.resample = w.conv(lp + "downsample.conv", block_in, block_in, 3, true);
    }
    enc_.mid1 = load_resnet(w, p + "mid.block_1", block_in, block_in);
    enc_.mid_attn = c.enc_mid_attn;
    if (enc_.mid_attn) enc_.mid_attention = load_attn(w, p + "mid.attn_1", block_in);
    enc_.mid2 = load_resnet(w, p + "mid.block_2", block_in, block_in);
    enc_.norm_out = w.norm(p + "norm_out", block_in, true);
    enc_.conv_out = w.conv(p + "conv_out", Z, block_in, 3, true);
    quant_conv_ = w.conv(prefix + "quant_conv", Z, Z, 3, true);
  }
  post_quant_conv_ = w.conv(prefix + "post_quant_conv", Z, Z, 3, true);
  codebook_ = w.f32(prefix + "quantize.embedding.weight", {c.vocab, Z});
  for (int k = 0; k < c.phi_count; ++k)
    phi_.push_back(w.conv(prefix + "quantize.quant_resi.qresi_ls." + std::to_string(k), Z, Z, 3, true));
}

VqVae::Resnet VqVae::load_resnet(WeightLoader& w, const std::string& p, int in, int out) {
  Resnet r;
  r.norm1 = w.norm(p + ".norm1", in, true);
  r.conv1 = w.conv(p + ".conv1", out, in, 3, true);
  r.norm2 = w.norm(p + ".norm2", out, true);
  r.conv2 = w.conv(p + ".conv2", out, out, 3, true);
  if (in != out) r.nin = w.conv(p + ".nin_shortcut", out, in, 1, true);
  return r;
}

VqVae::Attn VqVae::load_attn(WeightLoader& w, const std::string& p, int channels) {
  Attn a;
  a.channels = channels;
  a.norm = w.norm(p + ".norm", channels, true);
  a.qkv = w.conv(p + ".qkv", 3 * channels, channels, 1, true);
  a.proj = w.conv(p + ".proj_out", channels, channels, 1, true);
  return a;
}

Tensor VqVae::conv(const ConvWeights& c, const Tensor& x, bool downsample) {
  const int64_t k = c.w.dim(2);
  Conv2dParams p;
  if (downsample) {
    // Downsample2x: F.pad(x, (0, 1, 0, 1)) then a stride-2 convolution without padding.
    p.stride = 2;
    p.pad_bottom = p.pad_right = 1;
  } else {
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = static_cast<int>(k / 2);
  }
  const int64_t H = (x.dim(1) + p.pad_top + p.pad_bottom - k) / p.stride + 1;
  const int64_t W = (x.dim(2) + p.pad_left + p.pad_right - k) / p.stride + 1;
  Tensor y = backend_.empty(DType::F32, {c.w.dim(0), H, W});
  backend_.conv2d(x, c.w, c.b.defined() ? &c.b : nullptr, p, y);
  return y;
}

Tensor VqVae::norm_silu(const NormWeights& n, const Tensor& x) {
  Tensor y = backend_.empty(DType::F32, x.shape());
  backend_.group_norm(x, kGroups, n.w, n.b, kGroupEps, y);
  backend_.activation(y, Activation::SiLU, y);
  return y;
}

Tensor VqVae::resnet(const Resnet& r, const Tensor& x) {
  Tensor h = conv(r.conv1, norm_silu(r.norm1, x));
  h = conv(r.conv2, norm_silu(r.norm2, h));
  const Tensor shortcut = r.nin.w.defined() ? conv(r.nin, x) : x;
  backend_.add(h, shortcut, h);
  return h;
}

Tensor VqVae::attention(const Attn& a, const Tensor& x) {
  // Single-head attention over the H·W positions with channel vectors: softmax(q·k / sqrt(C)) v.
  Backend& b = backend_;
  const int64_t C = a.channels, H = x.dim(1), W = x.dim(2), N = H * W;
  Tensor normed = b.empty(DType::F32, x.shape());
  b.group_norm(x, kGroups, a.norm.w, a.norm.b, kGroupEps, normed);
  const Tensor qkv = conv(a.qkv, normed);  // [3C, H, W] = [q | k | v] along channels
  Tensor tokens = b.empty(DType::F32, {N, 3 * C});
  b.transpose(qkv.view({3 * C, N}), tokens);
  Tensor out = b.empty(DType::F32, {1, N, C});
  AttentionParams ap;
  ap.q_heads = ap.kv_heads = 1;
  ap.head_dim = static_cast<int>(C);
  ap.scale = 1.0f / std::sqrt(static_cast<float>(C));
  ap.mask = AttentionMask::None;
  const Tensor t3 = tokens.view({1, N, 3 * C});
  b.attention(t3.slice(2, 0, C), t3.slice(2, C, 2 * C), t3.slice(2, 2 * C, 3 * C), out, ap);
  Tensor h = b.empty(DType::F32, {C, H, W});
  b.transpose(out.view({N, C}), h.view({C, N}));
  Tensor y = conv(a.proj, h);
  b.add(y, x, y);
  return y;
}

Tensor VqVae::phi(int si, const Tensor& h) {
  VG_CHECK(si >= 0 && si < static_cast<int>(config_.phi_index.size()), "VQ-VAE: scale ", si, " out of range");
  Tensor y = conv(phi_[config_.phi_index[si]], h);
  backend_.axpby(1.0f - kPhiRatio, h, kPhiRatio, y, y);
  return y;
}

void VqVae::lookup(const Tensor& idx, int pn, const Tensor& h) {
  const int64_t Z = config_.z_channels;
  VG_CHECK(idx.rank() == 1 && idx.dim(0) == static_cast<int64_t>(pn) * pn, "VQ-VAE: ", idx.describe(),
           " indices for a ", pn, "x", pn, " map");
  Tensor rows = backend_.empty(DType::F32, {static_cast<int64_t>(pn) * pn, Z});
  backend_.embedding(idx, codebook_, rows);
  backend_.transpose(rows, h.view({Z, static_cast<int64_t>(pn) * pn}));
}

void VqVae::accumulate(int si, const Tensor& h, const Tensor& f_hat) { accumulate(si, h, f_hat, nullptr); }

void VqVae::accumulate(int si, const Tensor& h, const Tensor& f_hat, const Tensor* f_rest) {
  const int64_t P = latent_size(), Z = config_.z_channels;
  const int last = static_cast<int>(patch_nums_.size()) - 1;
  Tensor up = h;
  if (si != last) {
    // Upstream resizes (bicubic) every scale but the last, then applies φ ("conv after upsample").
    up = backend_.empty(DType::F32, {Z, P, P});
    backend_.resize_bicubic(h, up);
  }
  const Tensor contribution = phi(si, up);
  backend_.add(f_hat, contribution, f_hat);
  if (f_rest) backend_.axpby(1.0f, *f_rest, -1.0f, contribution, *f_rest);
}

void VqVae::decode(const Tensor& f_hat, const Tensor& image) {
  const VqvaeConfig& c = config_;
  VG_CHECK(f_hat.rank() == 3 && f_hat.dim(0) == c.z_channels, "VQ-VAE decode: f_hat ", f_hat.describe(), ", expected [",
           c.z_channels, ", n, n]");
  const int64_t S = f_hat.dim(1) * c.downsample();
  VG_CHECK(image.rank() == 3 && image.dim(0) == c.in_channels && image.dim(1) == S && image.dim(2) == f_hat.dim(2) * c.downsample(),
           "VQ-VAE decode: image ", image.describe(), " does not match f_hat ", f_hat.describe());
  Tensor h = conv(dec_.conv_in, conv(post_quant_conv_, f_hat));
  h = resnet(dec_.mid1, h);
  if (dec_.mid_attn) h = attention(dec_.mid_attention, h);
  h = resnet(dec_.mid2, h);
  for (int i = static_cast<int>(dec_.levels.size()) - 1; i >= 0; --i) {
    const Level& lvl = dec_.levels[i];
    for (size_t j = 0; j < lvl.blocks.size(); ++j) {
      h = resnet(lvl.blocks[j], h);
      if (!lvl.attn.empty()) h = attention(lvl.attn[j], h);
    }
    if (lvl.resample.w.defined()) {
      Tensor up = backend_.empty(DType::F32, {h.dim(0), 2 * h.dim(1), 2 * h.dim(2)});
      backend_.upsample_nearest2x(h, up);
      h = conv(lvl.resample, up);
    }
  }
  Conv2dParams p;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = static_cast<int>(dec_.conv_out.w.dim(2) / 2);
  backend_.conv2d(norm_silu(dec_.norm_out, h), dec_.conv_out.w, &dec_.conv_out.b, p, image);
}

std::vector<Tensor> VqVae::encode(const Tensor& image, Tensor* f_out, std::vector<Tensor>* f_hats) {
  Backend& b = backend_;
  const VqvaeConfig& c = config_;
  VG_CHECK(c.has_encoder, "this checkpoint has no VQ-VAE encoder (vae_local.encoder.*)");
  const int64_t S = image_size(), P = latent_size(), Z = c.z_channels;
  VG_CHECK(image.rank() == 3 && image.dim(0) == c.in_channels && image.dim(1) == S && image.dim(2) == S,
           "VQ-VAE encode: image ", image.describe(), ", expected f32[", c.in_channels, ", ", S, ", ", S, "]");
  Tensor h = conv(enc_.conv_in, image);
  for (size_t i = 0; i < enc_.levels.size(); ++i) {
    const Level& lvl = enc_.levels[i];
    for (size_t j = 0; j < lvl.blocks.size(); ++j) {
      h = resnet(lvl.blocks[j], h);
      if (!lvl.attn.empty()) h = attention(lvl.attn[j], h);
    }
    if (lvl.resample.w.defined()) h = conv(lvl.resample, h, /*downsample=*/true);
  }
  h = resnet(enc_.mid1, h);
  if (enc_.mid_attn) h = attention(enc_.mid_attention, h);
  h = resnet(enc_.mid2, h);
  const Tensor f = conv(quant_conv_, conv(enc_.conv_out, norm_silu(enc_.norm_out, h)));
  if (f_out) *f_out = f;

  // Residual multi-scale quantisation (f_to_idxBl_or_fhat).
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

Tensor VqVae::indices_to_fhat(const std::vector<Tensor>& indices) {
  const int64_t P = latent_size(), Z = config_.z_channels;
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
