#include "conv_tower.h"

#include <cmath>

#include "../../core/error.h"

namespace vargpt {

namespace {
constexpr int kGroups = 32;  // Normalize() = GroupNorm(32, C, eps 1e-6)
constexpr float kGroupEps = 1e-6f;

// Downsample2x: F.pad(x, (0, 1, 0, 1)) then a stride-2 convolution without padding.
Tensor conv_down(Backend& b, const ConvWeights& c, const Tensor& x) {
  const int64_t k = c.w.dim(2);
  Conv2dParams p;
  p.stride = 2;
  p.pad_bottom = p.pad_right = 1;
  const int64_t H = (x.dim(1) + 1 - k) / 2 + 1, W = (x.dim(2) + 1 - k) / 2 + 1;
  Tensor y = b.empty(DType::F32, {c.w.dim(0), H, W});
  b.conv2d(x, c.w, c.b.defined() ? &c.b : nullptr, p, y);
  return y;
}
}  // namespace

Tensor conv_same(Backend& b, const ConvWeights& c, const Tensor& x) {
  const int pad = static_cast<int>(c.w.dim(2) / 2);
  Conv2dParams p;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = pad;
  const int64_t k = c.w.dim(2);
  Tensor y = b.empty(DType::F32, {c.w.dim(0), x.dim(1) + 2 * pad - k + 1, x.dim(2) + 2 * pad - k + 1});
  b.conv2d(x, c.w, c.b.defined() ? &c.b : nullptr, p, y);
  return y;
}

ConvTower::ConvTower(Direction direction, const ConvTowerConfig& c, WeightLoader& w, const std::string& p)
    : backend_(w.backend()), direction_(direction), config_(c) {
  const int levels = static_cast<int>(c.ch_mult.size());
  VG_CHECK(levels > 0 && static_cast<int>(c.attn.size()) == levels, "ConvTower ", p, ": ", levels, " levels, ",
           c.attn.size(), " attention flags");
  levels_.resize(levels);
  const bool encoder = direction == Direction::Encoder;
  int block_in = encoder ? c.ch : c.ch * c.ch_mult.back();
  conv_in_ = w.conv(p + "conv_in", block_in, c.in_channels, 3, true);
  auto load_mid = [&] {
    mid1_ = load_resnet(w, p + "mid.block_1", block_in, block_in);
    if (c.mid_attn) mid_attention_ = load_attn(w, p + "mid.attn_1", block_in);
    mid2_ = load_resnet(w, p + "mid.block_2", block_in, block_in);
  };
  if (!encoder) load_mid();  // decoder: conv_in -> mid -> up.{levels-1 .. 0}
  for (int step = 0; step < levels; ++step) {
    const int i = encoder ? step : levels - 1 - step;  // encoder: down.{0 .. levels-1} -> mid
    const std::string lp = p + (encoder ? "down." : "up.") + std::to_string(i) + ".";
    const int block_out = c.ch * c.ch_mult[i];
    Level& lvl = levels_[i];
    for (int j = 0; j < c.blocks; ++j) {
      lvl.blocks.push_back(load_resnet(w, lp + "block." + std::to_string(j), block_in, block_out));
      block_in = block_out;
      if (c.attn[i]) lvl.attn.push_back(load_attn(w, lp + "attn." + std::to_string(j), block_in));
    }
    if (encoder && i != levels - 1) lvl.resample = w.conv(lp + "downsample.conv", block_in, block_in, 3, true);
    if (!encoder && i != 0) lvl.resample = w.conv(lp + "upsample.conv", block_in, block_in, 3, true);
  }
  if (encoder) load_mid();
  norm_out_ = w.norm(p + "norm_out", block_in, true);
  conv_out_ = w.conv(p + "conv_out", c.out_channels, block_in, 3, true);
}

ConvTower::Resnet ConvTower::load_resnet(WeightLoader& w, const std::string& p, int in, int out) {
  Resnet r;
  r.norm1 = w.norm(p + ".norm1", in, true);
  r.conv1 = w.conv(p + ".conv1", out, in, 3, true);
  r.norm2 = w.norm(p + ".norm2", out, true);
  r.conv2 = w.conv(p + ".conv2", out, out, 3, true);
  if (in != out) r.nin = w.conv(p + ".nin_shortcut", out, in, 1, true);
  return r;
}

ConvTower::Attn ConvTower::load_attn(WeightLoader& w, const std::string& p, int channels) {
  Attn a;
  a.channels = channels;
  a.norm = w.norm(p + ".norm", channels, true);
  a.qkv = w.conv(p + ".qkv", 3 * channels, channels, 1, true);
  a.proj = w.conv(p + ".proj_out", channels, channels, 1, true);
  return a;
}

Tensor ConvTower::norm_silu(const NormWeights& n, const Tensor& x) {
  Tensor y = backend_.empty(DType::F32, x.shape());
  backend_.group_norm(x, kGroups, n.w, n.b, kGroupEps, y);
  backend_.activation(y, Activation::SiLU, y);
  return y;
}

Tensor ConvTower::resnet(const Resnet& r, const Tensor& x) {
  Tensor h = conv_same(backend_, r.conv1, norm_silu(r.norm1, x));
  h = conv_same(backend_, r.conv2, norm_silu(r.norm2, h));
  const Tensor shortcut = r.nin.w.defined() ? conv_same(backend_, r.nin, x) : x;
  backend_.add(h, shortcut, h);
  return h;
}

Tensor ConvTower::attention(const Attn& a, const Tensor& x) {
  // Single-head attention over the H·W positions with channel vectors: softmax(q·k / sqrt(C)) v.
  Backend& b = backend_;
  const int64_t C = a.channels, H = x.dim(1), W = x.dim(2), N = H * W;
  Tensor normed = b.empty(DType::F32, x.shape());
  b.group_norm(x, kGroups, a.norm.w, a.norm.b, kGroupEps, normed);
  const Tensor qkv = conv_same(b, a.qkv, normed);  // [3C, H, W] = [q | k | v] along channels
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
  Tensor y = conv_same(b, a.proj, h);
  b.add(y, x, y);
  return y;
}

Tensor ConvTower::level(const Level& lvl, Tensor h) {
  for (size_t j = 0; j < lvl.blocks.size(); ++j) {
    h = resnet(lvl.blocks[j], h);
    if (!lvl.attn.empty()) h = attention(lvl.attn[j], h);
  }
  if (!lvl.resample.w.defined()) return h;
  if (direction_ == Direction::Encoder) return conv_down(backend_, lvl.resample, h);
  Tensor up = backend_.empty(DType::F32, {h.dim(0), 2 * h.dim(1), 2 * h.dim(2)});
  backend_.upsample_nearest2x(h, up);
  return conv_same(backend_, lvl.resample, up);
}

Tensor ConvTower::body(const Tensor& x) {
  VG_CHECK(x.rank() == 3 && x.dim(0) == config_.in_channels, "ConvTower: input ", x.describe(), ", expected [",
           config_.in_channels, ", H, W]");
  Tensor h = conv_same(backend_, conv_in_, x);
  auto mid = [&] {
    h = resnet(mid1_, h);
    if (config_.mid_attn) h = attention(mid_attention_, h);
    h = resnet(mid2_, h);
  };
  const int levels = static_cast<int>(levels_.size());
  if (direction_ == Direction::Decoder) {
    mid();
    for (int i = levels - 1; i >= 0; --i) h = level(levels_[i], h);
  } else {
    for (int i = 0; i < levels; ++i) h = level(levels_[i], h);
    mid();
  }
  return norm_silu(norm_out_, h);
}

Tensor ConvTower::run(const Tensor& x) { return conv_same(backend_, conv_out_, body(x)); }

void ConvTower::run(const Tensor& x, const Tensor& y) {
  Conv2dParams p;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = static_cast<int>(conv_out_.w.dim(2) / 2);
  backend_.conv2d(body(x), conv_out_.w, &conv_out_.b, p, y);
}

}  // namespace vargpt
