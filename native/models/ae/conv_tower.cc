#include "conv_tower.h"

#include <cmath>

#include "../../core/error.h"

namespace vargpt {

namespace {
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

int ConvTowerGroups::for_channels(int64_t channels) const {
  for (int g : choices)
    if (g > 0 && channels % g == 0) return g;
  std::string list;
  for (int g : choices) list += (list.empty() ? "" : ", ") + std::to_string(g);
  fail("ConvTower: no GroupNorm group count (", list, ") divides ", channels, " channels");
}

bool ConvTowerConfig::resamples(int level, bool encoder) const {
  if (!resample.empty()) return resample[level];
  return encoder ? level != static_cast<int>(ch_mult.size()) - 1 : level != 0;
}

int ConvTowerConfig::downsample() const {
  if (resample.empty()) return 1 << (static_cast<int>(ch_mult.size()) - 1);
  int factor = 1;
  for (bool r : resample)
    if (r) factor *= 2;
  return factor;
}

ConvTowerConfig derive_conv_tower(const WeightLoader& w, const std::string& p, bool decoder, int ch,
                                  const ConvTowerNames& names) {
  ConvTowerConfig t;
  const std::string& path = w.checkpoint().path();
  t.ch = ch;
  t.names = names;
  const std::string levels_key = p + (decoder ? "up." : "down.");
  const int levels = w.count_indexed(levels_key);
  VG_CHECK(levels > 0, path, ": no ", levels_key, "* tensors");
  t.blocks = w.count_indexed(levels_key + "0.block.");
  for (int i = 0; i < levels; ++i) {
    const std::string lp = levels_key + std::to_string(i);
    const std::string conv2 = lp + ".block.0.conv2" + names.conv + ".weight";
    const Shape shape = w.shape(conv2);
    VG_CHECK(shape.size() == 4 && shape[0] % ch == 0, path, ": ", conv2, " has shape ", shape_string(shape),
             ", expected a multiple of ch = ", ch, " output channels");
    t.ch_mult.push_back(static_cast<int>(shape[0] / ch));
    const int blocks = w.count_indexed(lp + ".block.");
    VG_CHECK(blocks == t.blocks, path, ": ", lp, " has ", blocks, " res blocks, ", levels_key, "0 has ", t.blocks);
    const int attn = w.count_indexed(lp + ".attn.");
    VG_CHECK(attn == 0 || attn == t.blocks, path, ": ", lp, " has ", attn, " attention blocks for ", t.blocks,
             " res blocks");
    t.attn.push_back(attn > 0);
    t.resample.push_back(w.has(lp + (decoder ? ".upsample.conv" : ".downsample.conv") + names.conv + ".weight"));
  }
  t.mid_attn = w.has(p + "mid.attn_1.qkv" + names.conv + ".weight");
  return t;
}

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
  VG_CHECK(levels > 0 && static_cast<int>(c.attn.size()) == levels &&
               (c.resample.empty() || static_cast<int>(c.resample.size()) == levels),
           "ConvTower ", p, ": ", levels, " levels, ", c.attn.size(), " attention flags, ", c.resample.size(),
           " resample flags");
  levels_.resize(levels);
  const bool encoder = direction == Direction::Encoder;
  int block_in = encoder ? c.ch : c.ch * c.ch_mult.back();
  conv_in_ = conv(w, p + "conv_in", block_in, c.in_channels, 3);
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
    if (c.resamples(i, encoder))
      lvl.resample = conv(w, lp + (encoder ? "downsample.conv" : "upsample.conv"), block_in, block_in, 3);
  }
  if (encoder) load_mid();
  norm_out_ = norm(w, p + "norm_out", block_in);
  conv_out_ = conv(w, p + "conv_out", c.out_channels, block_in, 3);
}

ConvWeights ConvTower::conv(WeightLoader& w, const std::string& name, int out, int in, int k) {
  return w.conv(name + config_.names.conv, out, in, k, true);
}

NormWeights ConvTower::norm(WeightLoader& w, const std::string& name, int channels) {
  config_.groups.for_channels(channels);  // a tower it cannot normalise fails at load, not mid-run
  return w.norm(name + config_.names.norm, channels, true);
}

ConvTower::Resnet ConvTower::load_resnet(WeightLoader& w, const std::string& p, int in, int out) {
  Resnet r;
  r.norm1 = norm(w, p + ".norm1", in);
  r.conv1 = conv(w, p + ".conv1", out, in, 3);
  r.norm2 = norm(w, p + ".norm2", out);
  r.conv2 = conv(w, p + ".conv2", out, out, 3);
  if (in != out) r.nin = conv(w, p + ".nin_shortcut", out, in, 1);
  return r;
}

ConvTower::Attn ConvTower::load_attn(WeightLoader& w, const std::string& p, int channels) {
  Attn a;
  a.channels = channels;
  a.norm = norm(w, p + ".norm", channels);
  a.qkv = conv(w, p + ".qkv", 3 * channels, channels, 1);
  a.proj = conv(w, p + ".proj_out", channels, channels, 1);
  return a;
}

Tensor ConvTower::norm_silu(const NormWeights& n, const Tensor& x) {
  Tensor y = backend_.empty(DType::F32, x.shape());
  backend_.group_norm(x, config_.groups.for_channels(x.dim(0)), n.w, n.b, kGroupEps, y);
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
  b.group_norm(x, config_.groups.for_channels(C), a.norm.w, a.norm.b, kGroupEps, normed);
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
