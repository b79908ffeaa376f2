#include "unet2d.h"

#include <cmath>

#include "../../core/error.h"
#include "../common/config_json.h"

namespace vargpt {

namespace {

constexpr float kTransformerGroupEps = 1e-6f;  // Transformer2DModel's GroupNorm
constexpr float kLayerNormEps = 1e-5f;         // BasicTransformerBlock's LayerNorms

// An integer or a list of `n` integers (diffusers accepts either per block).
std::vector<int> int_per_block(const Json& cfg, const char* key, size_t n, const std::string& what) {
  const Json* v = cfg.find(key);
  VG_CHECK(v != nullptr && !v->is_null(), what, ": ", key, " is missing");
  std::vector<int> out;
  if (v->is_integer()) {
    out.assign(n, static_cast<int>(v->as_int()));
  } else {
    VG_CHECK(v->is_array() && v->as_array().size() == n, what, ": ", key, " must be an integer or a list of ", n);
    for (const Json& e : v->as_array()) {
      VG_CHECK(e.is_integer(), what, ": ", key, " must hold integers");
      out.push_back(static_cast<int>(e.as_int()));
    }
  }
  for (int x : out) VG_CHECK(x > 0 && x < (1 << 20), what, ": ", key, " must hold positive integers");
  return out;
}

std::vector<std::string> strings(const Json& cfg, const char* key, const std::string& what) {
  const Json* v = cfg.find(key);
  VG_CHECK(v != nullptr && v->is_array(), what, ": ", key, " must be a list of block names");
  std::vector<std::string> out;
  for (const Json& e : v->as_array()) {
    VG_CHECK(e.is_string(), what, ": ", key, " must hold strings");
    out.push_back(e.as_string());
  }
  return out;
}

void expect_value(const Json& cfg, const char* key, const std::string& wanted, const std::string& what) {
  const Json* v = cfg.find(key);
  if (v == nullptr || v->is_null()) return;
  VG_CHECK(v->is_string() && v->as_string() == wanted, what, ": ", key, " must be \"", wanted,
           "\" (the only setting implemented)");
}

void expect_null(const Json& cfg, const char* key, const std::string& what) {
  const Json* v = cfg.find(key);
  VG_CHECK(v == nullptr || v->is_null() || (v->is_bool() && !v->as_bool()), what, ": ", key,
           " is not supported");
}

}  // namespace

UNet2DConfig read_unet2d_config(const std::string& dir, const WeightLoader& w) {
  const Json cfg = read_config_json(dir);
  const std::string what = dir + "/config.json";
  UNet2DConfig c;
  c.in_channels = config_positive(cfg, "in_channels", 4, what);
  c.out_channels = config_positive(cfg, "out_channels", 4, what);
  c.sample_size = config_positive(cfg, "sample_size", 128, what);
  const Json* boc = cfg.find("block_out_channels");
  VG_CHECK(boc != nullptr && boc->is_array() && !boc->as_array().empty(), what,
           ": block_out_channels must be a non-empty list");
  const size_t n = boc->as_array().size();
  c.block_out_channels = int_per_block(cfg, "block_out_channels", n, what);
  for (const std::string& t : strings(cfg, "down_block_types", what)) {
    VG_CHECK(t == "DownBlock2D" || t == "CrossAttnDownBlock2D", what, ": down block type \"", t,
             "\" is not supported");
    c.down_cross.push_back(t == "CrossAttnDownBlock2D");
  }
  for (const std::string& t : strings(cfg, "up_block_types", what)) {
    VG_CHECK(t == "UpBlock2D" || t == "CrossAttnUpBlock2D", what, ": up block type \"", t, "\" is not supported");
    c.up_cross.push_back(t == "CrossAttnUpBlock2D");
  }
  VG_CHECK(c.down_cross.size() == n && c.up_cross.size() == n, what, ": ", c.down_cross.size(), " down and ",
           c.up_cross.size(), " up blocks for ", n, " block_out_channels");
  expect_value(cfg, "mid_block_type", "UNetMidBlock2DCrossAttn", what);
  // With num_attention_heads null, diffusers reads attention_head_dim as the head count.
  const Json* nah = cfg.find("num_attention_heads");
  c.heads = int_per_block(cfg, nah != nullptr && !nah->is_null() ? "num_attention_heads" : "attention_head_dim", n,
                          what);
  c.groups = config_positive(cfg, "norm_num_groups", 32, what);
  c.norm_eps = json_number(cfg, "norm_eps", 1e-5, what);
  VG_CHECK(c.norm_eps > 0 && c.norm_eps < 1, what, ": norm_eps = ", c.norm_eps, " is out of range");
  c.flip_sin_to_cos = json_bool(cfg, "flip_sin_to_cos", true, what);
  c.freq_shift = json_number(cfg, "freq_shift", 0, what);
  c.cross_attention_dim = config_positive(cfg, "cross_attention_dim", -1, what);
  VG_CHECK(json_bool(cfg, "use_linear_projection", false, what), what,
           ": use_linear_projection must be true (1x1-conv projections are not supported)");
  expect_value(cfg, "act_fn", "silu", what);
  expect_value(cfg, "resnet_time_scale_shift", "default", what);
  expect_value(cfg, "time_embedding_type", "positional", what);
  expect_value(cfg, "attention_type", "default", what);
  for (const char* key : {"class_embed_type", "encoder_hid_dim", "time_cond_proj_dim", "time_embedding_act_fn",
                          "timestep_post_act", "dual_cross_attention", "only_cross_attention",
                          "center_input_sample", "cross_attention_norm", "num_class_embeds"})
    expect_null(cfg, key, what);
  for (const char* key : {"resnet_out_scale_factor", "mid_block_scale_factor"})
    VG_CHECK(json_number(cfg, key, 1.0, what) == 1.0, what, ": ", key, " must be 1");
  for (const char* key : {"conv_in_kernel", "conv_out_kernel"})
    VG_CHECK(json_int(cfg, key, 3, what) == 3, what, ": ", key, " must be 3");

  const Shape t1 = w.shape("time_embedding.linear_1.weight");
  VG_CHECK(t1.size() == 2 && t1[1] == c.block_out_channels[0], w.checkpoint().path(),
           ": time_embedding.linear_1.weight has shape ", shape_string(t1), ", expected [T, ", c.block_out_channels[0],
           "]");
  c.time_embed_dim = static_cast<int>(t1[0]);
  const std::string add_type = json_string(cfg, "addition_embed_type", "", what);
  VG_CHECK(add_type.empty() || add_type == "text_time", what, ": addition_embed_type \"", add_type,
           "\" is not supported (text_time)");
  c.text_time = add_type == "text_time";
  if (c.text_time) {
    c.addition_time_embed_dim = config_positive(cfg, "addition_time_embed_dim", -1, what);
    const int proj_in = config_positive(cfg, "projection_class_embeddings_input_dim", -1, what);
    const Shape a1 = w.shape("add_embedding.linear_1.weight");
    VG_CHECK(a1.size() == 2 && a1[1] == proj_in, w.checkpoint().path(), ": add_embedding.linear_1.weight has shape ",
             shape_string(a1), ", expected [T, ", proj_in, "]");
    // SDXL: the pooled text embedding is the cross-attention width wide, followed by the time ids.
    c.text_embeds_dim = c.cross_attention_dim;
    const int rest = proj_in - c.text_embeds_dim;
    VG_CHECK(rest > 0 && rest % c.addition_time_embed_dim == 0, what, ": projection_class_embeddings_input_dim ",
             proj_in, " is not ", c.text_embeds_dim, " + a multiple of addition_time_embed_dim ",
             c.addition_time_embed_dim);
    c.time_ids = rest / c.addition_time_embed_dim;
  }
  return c;
}

Tensor timestep_sinusoid(const std::vector<double>& t, int dim, bool flip, double shift) {
  VG_CHECK(dim >= 2, "timestep sinusoid: dim ", dim, " must be at least 2");
  const int half = dim / 2;
  VG_CHECK(half - shift != 0, "timestep sinusoid: freq_shift ", shift, " equals half the width");
  Tensor out = Tensor::empty_host(DType::F32, {static_cast<int64_t>(t.size()), dim});
  float* o = static_cast<float*>(out.raw());
  for (size_t r = 0; r < t.size(); ++r) {
    float* row = o + r * dim;
    for (int j = 0; j < half; ++j) {
      const double arg = t[r] * std::exp(-std::log(10000.0) * j / (half - shift));
      const float s = static_cast<float>(std::sin(arg)), co = static_cast<float>(std::cos(arg));
      row[j] = flip ? co : s;
      row[half + j] = flip ? s : co;
    }
    if (dim % 2 == 1) row[dim - 1] = 0.0f;
  }
  return out;
}

UNet2D::UNet2D(const UNet2DConfig& c, WeightLoader& w) : backend_(w.backend()), config_(c) {
  const int n = static_cast<int>(c.block_out_channels.size());
  const int c0 = c.block_out_channels[0];
  conv_in_ = w.conv("conv_in", c0, c.in_channels, 3, true);
  time_1_ = w.linear("time_embedding.linear_1", c.time_embed_dim, c0, true);
  time_2_ = w.linear("time_embedding.linear_2", c.time_embed_dim, c.time_embed_dim, true);
  if (c.text_time) {
    add_1_ = w.linear("add_embedding.linear_1", c.time_embed_dim,
                      c.text_embeds_dim + int64_t{c.time_ids} * c.addition_time_embed_dim, true);
    add_2_ = w.linear("add_embedding.linear_2", c.time_embed_dim, c.time_embed_dim, true);
  }
  for (int i = 0; i < n; ++i) {
    const std::string p = "down_blocks." + std::to_string(i) + ".";
    Block b;
    const int layers = w.count_indexed(p + "resnets.");
    VG_CHECK(layers > 0, w.checkpoint().path(), ": no ", p, "resnets.* tensors");
    for (int j = 0; j < layers; ++j) {
      b.resnets.push_back(load_resnet(w, p + "resnets." + std::to_string(j)));
      VG_CHECK(b.resnets.back().out == c.block_out_channels[i], w.checkpoint().path(), ": ", p, "resnets.", j,
               " has ", b.resnets.back().out, " channels, block_out_channels says ", c.block_out_channels[i]);
      if (c.down_cross[i])
        b.attentions.push_back(
            load_transformer(w, p + "attentions." + std::to_string(j), c.block_out_channels[i], c.heads[i]));
    }
    if (w.has(p + "downsamplers.0.conv.weight"))
      b.resample = w.conv(p + "downsamplers.0.conv", c.block_out_channels[i], c.block_out_channels[i], 3, true);
    down_.push_back(std::move(b));
  }
  const int cl = c.block_out_channels.back();
  mid_first_ = load_resnet(w, "mid_block.resnets.0");
  const int mid_attn = w.count_indexed("mid_block.attentions.");
  for (int j = 0; j < mid_attn; ++j) {
    mid_attn_.push_back(load_transformer(w, "mid_block.attentions." + std::to_string(j), cl, c.heads.back()));
    mid_resnets_.push_back(load_resnet(w, "mid_block.resnets." + std::to_string(j + 1)));
  }
  for (int k = 0; k < n; ++k) {
    const int level = n - 1 - k;  // up block k mirrors down block n - 1 - k
    const std::string p = "up_blocks." + std::to_string(k) + ".";
    Block b;
    const int layers = w.count_indexed(p + "resnets.");
    VG_CHECK(layers > 0, w.checkpoint().path(), ": no ", p, "resnets.* tensors");
    for (int j = 0; j < layers; ++j) {
      b.resnets.push_back(load_resnet(w, p + "resnets." + std::to_string(j)));
      if (c.up_cross[k])
        b.attentions.push_back(
            load_transformer(w, p + "attentions." + std::to_string(j), b.resnets.back().out, c.heads[level]));
    }
    const int out = b.resnets.back().out;
    if (w.has(p + "upsamplers.0.conv.weight")) b.resample = w.conv(p + "upsamplers.0.conv", out, out, 3, true);
    up_.push_back(std::move(b));
  }
  const int last = up_.back().resnets.back().out;
  norm_out_ = w.norm("conv_norm_out", last, true);
  conv_out_ = w.conv("conv_out", c.out_channels, last, 3, true);
}

UNet2D::Resnet UNet2D::load_resnet(WeightLoader& w, const std::string& p) {
  Resnet r;
  const Shape s = w.shape(p + ".conv1.weight");
  VG_CHECK(s.size() == 4 && s[0] > 0 && s[1] > 0, w.checkpoint().path(), ": ", p, ".conv1.weight has shape ",
           shape_string(s), ", expected [out, in, 3, 3]");
  r.out = static_cast<int>(s[0]);
  r.in = static_cast<int>(s[1]);
  for (int ch : {r.in, r.out})
    VG_CHECK(ch % config_.groups == 0, w.checkpoint().path(), ": ", p, " has ", ch,
             " channels, not a multiple of norm_num_groups ", config_.groups);
  r.norm1 = w.norm(p + ".norm1", r.in, true);
  r.conv1 = w.conv(p + ".conv1", r.out, r.in, 3, true);
  r.time_proj = w.linear(p + ".time_emb_proj", r.out, config_.time_embed_dim, true);
  r.norm2 = w.norm(p + ".norm2", r.out, true);
  r.conv2 = w.conv(p + ".conv2", r.out, r.out, 3, true);
  if (r.in != r.out || w.has(p + ".conv_shortcut.weight")) r.shortcut = w.conv(p + ".conv_shortcut", r.out, r.in, 1, true);
  return r;
}

UNet2D::Transformer UNet2D::load_transformer(WeightLoader& w, const std::string& p, int C, int heads) {
  VG_CHECK(C % heads == 0, w.checkpoint().path(), ": ", p, " has ", C, " channels for ", heads, " heads");
  Transformer t;
  t.heads = heads;
  t.norm = w.norm(p + ".norm", C, true);
  t.proj_in = w.linear(p + ".proj_in", C, C, true);
  t.proj_out = w.linear(p + ".proj_out", C, C, true);
  const int depth = w.count_indexed(p + ".transformer_blocks.");
  VG_CHECK(depth > 0, w.checkpoint().path(), ": no ", p, ".transformer_blocks.* tensors");
  const int X = config_.cross_attention_dim;
  for (int d = 0; d < depth; ++d) {
    const std::string bp = p + ".transformer_blocks." + std::to_string(d) + ".";
    TransformerBlock b;
    b.norm1 = w.norm(bp + "norm1", C, true);
    b.norm2 = w.norm(bp + "norm2", C, true);
    b.norm3 = w.norm(bp + "norm3", C, true);
    b.self_attn = {w.linear(bp + "attn1.to_q", C, C, false), w.linear(bp + "attn1.to_k", C, C, false),
                   w.linear(bp + "attn1.to_v", C, C, false), w.linear(bp + "attn1.to_out.0", C, C, true)};
    b.cross_attn = {w.linear(bp + "attn2.to_q", C, C, false), w.linear(bp + "attn2.to_k", C, X, false),
                    w.linear(bp + "attn2.to_v", C, X, false), w.linear(bp + "attn2.to_out.0", C, C, true)};
    const Shape ff = w.shape(bp + "ff.net.0.proj.weight");
    VG_CHECK(ff.size() == 2 && ff[1] == C && ff[0] % 2 == 0, w.checkpoint().path(), ": ", bp,
             "ff.net.0.proj.weight has shape ", shape_string(ff), ", expected [2 x inner, ", C, "]");
    b.ff_in = w.linear(bp + "ff.net.0.proj", ff[0], C, true);
    b.ff_out = w.linear(bp + "ff.net.2", C, ff[0] / 2, true);
    b.index = transformer_blocks_++;
    t.blocks.push_back(std::move(b));
  }
  return t;
}

Tensor UNet2D::conv(const ConvWeights& c, const Tensor& x, int stride) {
  const int64_t k = c.w.dim(2);
  const int pad = static_cast<int>(k / 2);
  Conv2dParams p;
  p.stride = stride;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = pad;
  const int64_t H = (x.dim(2) + 2 * pad - k) / stride + 1, W = (x.dim(3) + 2 * pad - k) / stride + 1;
  Tensor y = backend_.empty(DType::F32, {x.dim(0), c.w.dim(0), H, W});
  backend_.conv2d(x, c.w, c.b.defined() ? &c.b : nullptr, p, y);
  return y;
}

Tensor UNet2D::norm_silu(const NormWeights& n, const Tensor& x, float eps, bool silu) {
  Tensor y = backend_.empty(DType::F32, x.shape());
  backend_.group_norm(x, config_.groups, n.w, n.b, eps, y);
  if (silu) backend_.activation(y, Activation::SiLU, y);
  return y;
}

Tensor UNet2D::resnet(const Resnet& r, const Tensor& x, const Tensor& temb) {
  VG_CHECK(x.dim(1) == r.in, "UNet resnet: input ", x.describe(), ", expected ", r.in, " channels");
  Backend& b = backend_;
  const float eps = static_cast<float>(config_.norm_eps);
  Tensor h = conv(r.conv1, norm_silu(r.norm1, x, eps));
  const int64_t B = x.dim(0);
  Tensor t = b.empty(DType::F32, {B, r.out});
  b.linear(temb, r.time_proj.w, &r.time_proj.b, t);
  b.binary(BinaryOp::Add, h, t.view({B, r.out, 1, 1}), h);
  h = conv(r.conv2, norm_silu(r.norm2, h, eps));
  b.add(h, r.shortcut.w.defined() ? conv(r.shortcut, x) : x, h);
  return h;
}

void UNet2D::project_kv(const Attention& a, const Tensor& context, Tensor& k, Tensor& v) {
  Backend& b = backend_;
  const int64_t B = context.dim(0), L = context.dim(1), C = a.k.out();
  k = b.empty(DType::F32, {B, L, C});
  v = b.empty(DType::F32, {B, L, C});
  b.linear(context, a.k.w, nullptr, k);
  b.linear(context, a.v.w, nullptr, v);
}

void UNet2D::attention(const Attention& a, const Tensor& x, const Tensor& k, const Tensor& v, int heads,
                       const Tensor& residual) {
  Backend& b = backend_;
  const int64_t B = x.dim(0), N = x.dim(1), C = a.q.out();
  Tensor q = b.empty(DType::F32, {B, N, C});
  b.linear(x, a.q.w, nullptr, q);
  AttentionParams ap;
  ap.q_heads = ap.kv_heads = heads;
  ap.head_dim = static_cast<int>(C / heads);
  ap.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(ap.head_dim)));
  ap.mask = AttentionMask::None;
  Tensor o = b.empty(DType::F32, {B, N, C});
  b.attention(q, k, v, o, ap);
  b.linear(o, a.out.w, &a.out.b, residual, Activation::None, true);
}

Tensor UNet2D::transformer(const Transformer& t, const Tensor& x, const Tensor& context,
                           const UNet2DContextCache* cache) {
  Backend& b = backend_;
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), N = H * W;
  Tensor normed = b.empty(DType::F32, x.shape());
  b.group_norm(x, config_.groups, t.norm.w, t.norm.b, kTransformerGroupEps, normed);
  Tensor tokens = b.empty(DType::F32, {B, N, C});
  b.transpose(normed.view({B, C, N}), tokens);
  Tensor h = b.empty(DType::F32, {B, N, C});
  b.linear(tokens, t.proj_in.w, &t.proj_in.b, h);
  Tensor n = b.empty(DType::F32, {B, N, C});
  for (const TransformerBlock& blk : t.blocks) {
    Tensor k, v;
    b.layer_norm(h, &blk.norm1.w, &blk.norm1.b, kLayerNormEps, n);
    project_kv(blk.self_attn, n, k, v);
    attention(blk.self_attn, n, k, v, t.heads, h);
    b.layer_norm(h, &blk.norm2.w, &blk.norm2.b, kLayerNormEps, n);
    if (cache) {
      attention(blk.cross_attn, n, cache->keys[blk.index], cache->values[blk.index], t.heads, h);
    } else {
      project_kv(blk.cross_attn, context, k, v);
      attention(blk.cross_attn, n, k, v, t.heads, h);
    }
    b.layer_norm(h, &blk.norm3.w, &blk.norm3.b, kLayerNormEps, n);
    const int64_t I = blk.ff_out.in();
    Tensor proj = b.empty(DType::F32, {B * N, 2 * I});
    b.linear(n.view({B * N, C}), blk.ff_in.w, &blk.ff_in.b, proj);
    Tensor g = b.empty(DType::F32, {B * N, I});
    // GEGLU: the first half is the value, the second the gate (GELU, erf form).
    b.glu(proj.slice(1, I, 2 * I), proj.slice(1, 0, I), Activation::GeluErf, g);
    b.linear(g, blk.ff_out.w, &blk.ff_out.b, h.view({B * N, C}), Activation::None, true);
  }
  b.linear(h, t.proj_out.w, &t.proj_out.b, tokens);
  Tensor y = b.empty(DType::F32, x.shape());
  b.transpose(tokens, y.view({B, C, N}));
  b.add(y, x, y);
  return y;
}

UNet2DContextCache UNet2D::prepare_context(const Tensor& context) {
  VG_CHECK(context.rank() == 3 && context.dim(2) == config_.cross_attention_dim && context.dtype() == DType::F32,
           "UNet: encoder_hidden_states ", context.describe(), ", expected f32 [B, L, ", config_.cross_attention_dim,
           "]");
  UNet2DContextCache cache;
  cache.context = context;
  cache.keys.resize(transformer_blocks_);
  cache.values.resize(transformer_blocks_);
  auto add = [&](const std::vector<Transformer>& list) {
    for (const Transformer& t : list)
      for (const TransformerBlock& blk : t.blocks)
        project_kv(blk.cross_attn, context, cache.keys[blk.index], cache.values[blk.index]);
  };
  for (const Block& blk : down_) add(blk.attentions);
  add(mid_attn_);
  for (const Block& blk : up_) add(blk.attentions);
  return cache;
}

Tensor UNet2D::forward(const UNet2DInputs& in, TraceSink* trace, const UNet2DContextCache* cache) {
  Backend& b = backend_;
  const UNet2DConfig& c = config_;
  const Tensor& x = in.sample;
  VG_CHECK(x.rank() == 4 && x.dim(1) == c.in_channels && x.dtype() == DType::F32, "UNet: sample ", x.describe(),
           ", expected f32 [B, ", c.in_channels, ", h, w]");
  const int64_t B = x.dim(0);
  const int levels = static_cast<int>(c.block_out_channels.size());
  const int64_t factor = int64_t{1} << (levels - 1);
  VG_CHECK(x.dim(2) % factor == 0 && x.dim(3) % factor == 0, "UNet: sample ", x.describe(),
           ": h and w must be multiples of ", factor);
  VG_CHECK(in.context.rank() == 3 && in.context.dim(0) == B && in.context.dim(2) == c.cross_attention_dim &&
               in.context.dtype() == DType::F32,
           "UNet: encoder_hidden_states ", in.context.describe(), ", expected f32 [", B, ", L, ",
           c.cross_attention_dim, "]");
  VG_CHECK(cache == nullptr || (cache->context.raw() == in.context.raw() && cache->context.shape() == in.context.shape()),
           "UNet: the context cache was made for another encoder_hidden_states");
  VG_CHECK(in.timestep.size() == 1 || static_cast<int64_t>(in.timestep.size()) == B, "UNet: ", in.timestep.size(),
           " timesteps for a batch of ", B);

  // Time embedding: sinusoid -> Linear SiLU Linear, plus the text_time embedding.
  std::vector<double> ts(B);
  for (int64_t i = 0; i < B; ++i) ts[i] = in.timestep.size() == 1 ? in.timestep[0] : in.timestep[i];
  const int c0 = c.block_out_channels[0];
  const Tensor tproj = b.upload(timestep_sinusoid(ts, c0, c.flip_sin_to_cos, c.freq_shift));
  if (trace) trace->add("time_proj", tproj);
  Tensor emb = b.empty(DType::F32, {B, c.time_embed_dim});
  {
    Tensor t1 = b.empty(DType::F32, {B, c.time_embed_dim});
    b.linear(tproj, time_1_.w, &time_1_.b, t1, Activation::SiLU);
    b.linear(t1, time_2_.w, &time_2_.b, emb);
  }
  if (trace) trace->add("time_embedding", emb);
  if (c.text_time) {
    VG_CHECK(in.text_embeds.rank() == 2 && in.text_embeds.dim(0) == B && in.text_embeds.dim(1) == c.text_embeds_dim &&
                 in.text_embeds.dtype() == DType::F32,
             "UNet: text_embeds ", in.text_embeds.describe(), ", expected f32 [", B, ", ", c.text_embeds_dim, "]");
    VG_CHECK(static_cast<int64_t>(in.time_ids.size()) == B * c.time_ids, "UNet: ", in.time_ids.size(),
             " time ids, expected ", B, " x ", c.time_ids);
    const int D = c.addition_time_embed_dim;
    const Tensor aproj = b.upload(timestep_sinusoid(in.time_ids, D, c.flip_sin_to_cos, c.freq_shift));
    if (trace) trace->add("add_time_proj", aproj);
    const int64_t width = c.text_embeds_dim + int64_t{c.time_ids} * D;
    Tensor cat = b.empty(DType::F32, {B, width});
    b.copy(in.text_embeds, cat.slice(1, 0, c.text_embeds_dim));
    b.copy(aproj.view({B, int64_t{c.time_ids} * D}), cat.slice(1, c.text_embeds_dim, width));
    Tensor a1 = b.empty(DType::F32, {B, c.time_embed_dim}), aug = b.empty(DType::F32, {B, c.time_embed_dim});
    b.linear(cat, add_1_.w, &add_1_.b, a1, Activation::SiLU);
    b.linear(a1, add_2_.w, &add_2_.b, aug);
    if (trace) trace->add("add_embedding", aug);
    b.add(emb, aug, emb);
  }
  // Every ResNet projects SiLU(emb).
  Tensor temb = b.empty(DType::F32, emb.shape());
  b.activation(emb, Activation::SiLU, temb);

  auto poll = [&in] {
    if (in.cancelled && in.cancelled()) throw Cancelled();
  };
  Tensor h = conv(conv_in_, x);
  if (trace) trace->add("conv_in", h);
  std::vector<Tensor> skips{h};
  for (int i = 0; i < levels; ++i) {
    const Block& blk = down_[i];
    for (size_t j = 0; j < blk.resnets.size(); ++j) {
      poll();
      h = resnet(blk.resnets[j], h, temb);
      if (!blk.attentions.empty()) h = transformer(blk.attentions[j], h, in.context, cache);
      skips.push_back(h);
    }
    if (blk.resample.w.defined()) {
      h = conv(blk.resample, h, 2);
      skips.push_back(h);
    }
    if (trace) trace->add("down_" + std::to_string(i), h);
  }
  poll();
  h = resnet(mid_first_, h, temb);
  for (size_t j = 0; j < mid_attn_.size(); ++j) {
    poll();
    h = transformer(mid_attn_[j], h, in.context, cache);
    h = resnet(mid_resnets_[j], h, temb);
  }
  if (trace) trace->add("mid", h);
  for (int k = 0; k < levels; ++k) {
    const Block& blk = up_[k];
    for (size_t j = 0; j < blk.resnets.size(); ++j) {
      VG_CHECK(!skips.empty(), "UNet: up block ", k, " has more resnets than the down blocks left skips");
      const Tensor skip = skips.back();
      skips.pop_back();
      VG_CHECK(skip.dim(2) == h.dim(2) && skip.dim(3) == h.dim(3), "UNet: up block ", k, " skip ", skip.describe(),
               " does not match ", h.describe());
      const int64_t C1 = h.dim(1), C2 = skip.dim(1);
      Tensor cat = b.empty(DType::F32, {B, C1 + C2, h.dim(2), h.dim(3)});
      b.copy(h, cat.slice(1, 0, C1));
      b.copy(skip, cat.slice(1, C1, C1 + C2));
      poll();
      h = resnet(blk.resnets[j], cat, temb);
      if (!blk.attentions.empty()) h = transformer(blk.attentions[j], h, in.context, cache);
    }
    if (blk.resample.w.defined()) {
      Tensor up = b.empty(DType::F32, {B, h.dim(1), 2 * h.dim(2), 2 * h.dim(3)});
      b.upsample_nearest2x(h, up);
      h = conv(blk.resample, up);
    }
    if (trace) trace->add("up_" + std::to_string(k), h);
  }
  VG_CHECK(skips.empty(), "UNet: ", skips.size(), " skip tensors left over after the up blocks");
  Tensor n = norm_silu(norm_out_, h, static_cast<float>(c.norm_eps), false);
  if (trace) trace->add("conv_norm_out", n);
  b.activation(n, Activation::SiLU, n);
  Tensor eps = conv(conv_out_, n);
  if (trace) trace->add("conv_out", eps);
  return eps;
}

}  // namespace vargpt
