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

// Module names of one tower in either layout.
struct LayoutNames {
  ConvTowerLayout layout;
  bool decoder;
  int levels;
  bool diffusers() const { return layout == ConvTowerLayout::Diffusers; }
  std::string levels_key() const {
    if (diffusers()) return decoder ? "up_blocks." : "down_blocks.";
    return decoder ? "up." : "down.";
  }
  // Diffusers' index of tower level i (decoders count from the innermost level).
  int index(int i) const { return diffusers() && decoder ? levels - 1 - i : i; }
  std::string level(int i) const { return levels_key() + std::to_string(index(i)) + "."; }
  std::string blocks_key() const { return diffusers() ? "resnets." : "block."; }
  std::string attn_key() const { return diffusers() ? "attentions." : "attn."; }
  std::string block(int j) const { return blocks_key() + std::to_string(j); }
  std::string attn(int j) const { return attn_key() + std::to_string(j); }
  std::string resample() const {
    if (diffusers()) return decoder ? "upsamplers.0.conv" : "downsamplers.0.conv";
    return decoder ? "upsample.conv" : "downsample.conv";
  }
  std::string mid_block(int k) const {
    return diffusers() ? "mid_block.resnets." + std::to_string(k) : "mid.block_" + std::to_string(k + 1);
  }
  std::string mid_attn() const { return diffusers() ? "mid_block.attentions.0" : "mid.attn_1"; }
  std::string shortcut() const { return diffusers() ? ".conv_shortcut" : ".nin_shortcut"; }
  std::string norm_out() const { return diffusers() ? "conv_norm_out" : "norm_out"; }
  // A tensor that exists only when the attention block does.
  std::string attn_probe() const { return diffusers() ? ".to_q" : ".qkv"; }
};

ConvTowerConfig derive(const WeightLoader& w, const std::string& p, bool decoder, int ch, const ConvTowerNames& names,
                       ConvTowerLayout layout) {
  ConvTowerConfig t;
  const std::string& path = w.checkpoint().path();
  t.ch = ch;
  t.names = names;
  t.layout = layout;
  LayoutNames n{layout, decoder, 0};
  const std::string levels_key = p + n.levels_key();
  const int levels = w.count_indexed(levels_key);
  VG_CHECK(levels > 0, path, ": no ", levels_key, "* tensors");
  n.levels = levels;
  t.blocks = w.count_indexed(p + n.level(0) + n.blocks_key());
  for (int i = 0; i < levels; ++i) {
    const std::string lp = p + n.level(i);
    const std::string conv2 = lp + n.block(0) + ".conv2" + names.conv + ".weight";
    const Shape shape = w.shape(conv2);
    VG_CHECK(shape.size() == 4 && shape[0] % ch == 0, path, ": ", conv2, " has shape ", shape_string(shape),
             ", expected a multiple of ch = ", ch, " output channels");
    t.ch_mult.push_back(static_cast<int>(shape[0] / ch));
    const std::string blocks_key = lp + n.blocks_key();
    const int blocks = w.count_indexed(blocks_key);
    VG_CHECK(blocks == t.blocks, path, ": ", blocks_key, "* has ", blocks, " res blocks, level 0 has ", t.blocks);
    const std::string attn_key = lp + n.attn_key();
    const int attn = w.count_indexed(attn_key);
    VG_CHECK(attn == 0 || attn == t.blocks, path, ": ", attn_key, "* has ", attn, " attention blocks for ", t.blocks,
             " res blocks");
    t.attn.push_back(attn > 0);
    t.resample.push_back(w.has(lp + n.resample() + names.conv + ".weight"));
  }
  t.mid_attn = w.has(p + n.mid_attn() + n.attn_probe() + names.conv + ".weight");
  return t;
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
  return derive(w, p, decoder, ch, names, ConvTowerLayout::Taming);
}

ConvTowerConfig derive_diffusers_conv_tower(const WeightLoader& w, const std::string& p, bool decoder) {
  const std::string levels_key = p + (decoder ? "up_blocks." : "down_blocks.");
  const int levels = w.count_indexed(levels_key);
  VG_CHECK(levels > 0, w.checkpoint().path(), ": no ", levels_key, "* tensors");
  // Level 0 is the outermost: the encoder's first down block, the decoder's last up block.
  const std::string conv2 = levels_key + std::to_string(decoder ? levels - 1 : 0) + ".resnets.0.conv2.weight";
  const Shape shape = w.shape(conv2);
  VG_CHECK(shape.size() == 4 && shape[0] > 0, w.checkpoint().path(), ": ", conv2, " has shape ",
           shape_string(shape), ", expected [C, C, k, k]");
  return derive(w, p, decoder, static_cast<int>(shape[0]), {}, ConvTowerLayout::Diffusers);
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
  const LayoutNames n{c.layout, !encoder, levels};
  int block_in = encoder ? c.ch : c.ch * c.ch_mult.back();
  conv_in_ = conv(w, p + "conv_in", block_in, c.in_channels, 3);
  auto load_mid = [&] {
    mid1_ = load_resnet(w, p + n.mid_block(0), block_in, block_in);
    if (c.mid_attn) mid_attention_ = load_attn(w, p + n.mid_attn(), block_in);
    mid2_ = load_resnet(w, p + n.mid_block(1), block_in, block_in);
  };
  if (!encoder) load_mid();  // decoder: conv_in -> mid -> up.{levels-1 .. 0}
  for (int step = 0; step < levels; ++step) {
    const int i = encoder ? step : levels - 1 - step;  // encoder: down.{0 .. levels-1} -> mid
    const std::string lp = p + n.level(i);
    const int block_out = c.ch * c.ch_mult[i];
    Level& lvl = levels_[i];
    for (int j = 0; j < c.blocks; ++j) {
      lvl.blocks.push_back(load_resnet(w, lp + n.block(j), block_in, block_out));
      block_in = block_out;
      if (c.attn[i]) lvl.attn.push_back(load_attn(w, lp + n.attn(j), block_in));
    }
    if (c.resamples(i, encoder)) lvl.resample = conv(w, lp + n.resample(), block_in, block_in, 3);
  }
  if (encoder) load_mid();
  norm_out_ = norm(w, p + n.norm_out(), block_in);
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
  const LayoutNames n{config_.layout, direction_ == Direction::Decoder, 0};
  Resnet r;
  r.norm1 = norm(w, p + ".norm1", in);
  r.conv1 = conv(w, p + ".conv1", out, in, 3);
  r.norm2 = norm(w, p + ".norm2", out);
  r.conv2 = conv(w, p + ".conv2", out, out, 3);
  if (in != out) r.nin = conv(w, p + n.shortcut(), out, in, 1);
  return r;
}

ConvTower::Attn ConvTower::load_attn(WeightLoader& w, const std::string& p, int channels) {
  Attn a;
  a.channels = channels;
  if (config_.layout == ConvTowerLayout::Diffusers) {
    a.norm = norm(w, p + ".group_norm", channels);
    a.q = w.linear(p + ".to_q", channels, channels, true);
    a.k = w.linear(p + ".to_k", channels, channels, true);
    a.v = w.linear(p + ".to_v", channels, channels, true);
    a.out = w.linear(p + ".to_out.0", channels, channels, true);
    return a;
  }
  a.norm = norm(w, p + ".norm", channels);
  a.qkv = conv(w, p + ".qkv", 3 * channels, channels, 1);
  a.proj = conv(w, p + ".proj_out", channels, channels, 1);
  return a;
}

Tensor ConvTower::norm_silu(const NormWeights& n, const Tensor& x, TraceSink* trace, const std::string& name) {
  Tensor y = backend_.empty(DType::F32, x.shape());
  backend_.group_norm(x, config_.groups.for_channels(x.dim(0)), n.w, n.b, kGroupEps, y);
  if (trace) trace->add(name, y);
  backend_.activation(y, Activation::SiLU, y);
  return y;
}

Tensor ConvTower::resnet(const Resnet& r, const Tensor& x) {
  poll();
  Tensor h = conv_same(backend_, r.conv1, norm_silu(r.norm1, x));
  h = conv_same(backend_, r.conv2, norm_silu(r.norm2, h));
  const Tensor shortcut = r.nin.w.defined() ? conv_same(backend_, r.nin, x) : x;
  backend_.add(h, shortcut, h);
  return h;
}

Tensor ConvTower::attention(const Attn& a, const Tensor& x) {
  poll();
  // Single-head attention over the H·W positions with channel vectors: softmax(q·k / sqrt(C)) v.
  Backend& b = backend_;
  const int64_t C = a.channels, H = x.dim(1), W = x.dim(2), N = H * W;
  Tensor normed = b.empty(DType::F32, x.shape());
  b.group_norm(x, config_.groups.for_channels(C), a.norm.w, a.norm.b, kGroupEps, normed);
  AttentionParams ap;
  ap.q_heads = ap.kv_heads = 1;
  ap.head_dim = static_cast<int>(C);
  ap.scale = 1.0f / std::sqrt(static_cast<float>(C));
  ap.mask = AttentionMask::None;
  Tensor out = b.empty(DType::F32, {1, N, C});
  Tensor h = b.empty(DType::F32, {C, H, W});
  if (a.qkv.w.defined()) {
    const Tensor qkv = conv_same(b, a.qkv, normed);  // [3C, H, W] = [q | k | v] along channels
    Tensor tokens = b.empty(DType::F32, {N, 3 * C});
    b.transpose(qkv.view({3 * C, N}), tokens);
    const Tensor t3 = tokens.view({1, N, 3 * C});
    b.attention(t3.slice(2, 0, C), t3.slice(2, C, 2 * C), t3.slice(2, 2 * C, 3 * C), out, ap);
    b.transpose(out.view({N, C}), h.view({C, N}));
    Tensor y = conv_same(b, a.proj, h);
    b.add(y, x, y);
    return y;
  }
  Tensor tokens = b.empty(DType::F32, {N, C});
  b.transpose(normed.view({C, N}), tokens);
  Tensor q = b.empty(DType::F32, {1, N, C}), k = b.empty(DType::F32, {1, N, C}), v = b.empty(DType::F32, {1, N, C});
  b.linear(tokens, a.q.w, &a.q.b, q.view({N, C}));
  b.linear(tokens, a.k.w, &a.k.b, k.view({N, C}));
  b.linear(tokens, a.v.w, &a.v.b, v.view({N, C}));
  b.attention(q, k, v, out, ap);
  b.linear(out.view({N, C}), a.out.w, &a.out.b, tokens);
  b.transpose(tokens, h.view({C, N}));
  b.add(h, x, h);
  return h;
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

Tensor ConvTower::body(const Tensor& x, TraceSink* trace, const std::string& tp) {
  VG_CHECK(x.rank() == 3 && x.dim(0) == config_.in_channels, "ConvTower: input ", x.describe(), ", expected [",
           config_.in_channels, ", H, W]");
  Tensor h = conv_same(backend_, conv_in_, x);
  if (trace) trace->add(tp + "conv_in", h);
  auto mid = [&] {
    h = resnet(mid1_, h);
    if (config_.mid_attn) h = attention(mid_attention_, h);
    h = resnet(mid2_, h);
    if (trace) trace->add(tp + "mid_block", h);
  };
  const int levels = static_cast<int>(levels_.size());
  const LayoutNames n{ConvTowerLayout::Diffusers, direction_ == Direction::Decoder, levels};
  auto run_level = [&](int i) {
    h = level(levels_[i], h);
    if (trace) trace->add(tp + (n.decoder ? "up_" : "down_") + std::to_string(n.index(i)), h);
  };
  if (direction_ == Direction::Decoder) {
    mid();
    for (int i = levels - 1; i >= 0; --i) run_level(i);
  } else {
    for (int i = 0; i < levels; ++i) run_level(i);
    mid();
  }
  return norm_silu(norm_out_, h, trace, tp + "conv_norm_out");
}

Tensor ConvTower::run(const Tensor& x, TraceSink* trace, const std::string& trace_prefix,
                      const std::function<bool()>& cancelled) {
  struct Scope {
    const std::function<bool()>*& slot;
    ~Scope() { slot = nullptr; }
  } scope{cancelled_};
  cancelled_ = cancelled ? &cancelled : nullptr;
  Tensor y = conv_same(backend_, conv_out_, body(x, trace, trace_prefix));
  if (trace) trace->add(trace_prefix + "conv_out", y);
  return y;
}

void ConvTower::run(const Tensor& x, const Tensor& y) {
  Conv2dParams p;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = static_cast<int>(conv_out_.w.dim(2) / 2);
  backend_.conv2d(body(x, nullptr, ""), conv_out_.w, &conv_out_.b, p, y);
}

}  // namespace vargpt
