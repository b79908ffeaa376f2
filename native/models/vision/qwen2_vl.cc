#include "qwen2_vl.h"

#include <algorithm>
#include <cmath>

#include "../../core/error.h"
#include "../common/config_json.h"
#include "../common/rope.h"

namespace vargpt {

Qwen2VlVisionConfig parse_qwen2_vl_vision_config(const Json& v, const std::string& what, const WeightLoader& w,
                                                 const std::string& prefix) {
  Qwen2VlVisionConfig c;
  c.variant = w.has(prefix + "blocks.0.mlp.gate_proj.weight") ? Qwen2VlVariant::Qwen25Vl : Qwen2VlVariant::Qwen2Vl;
  c.depth = config_positive(v, "depth", -1, what);
  c.heads = config_positive(v, "num_heads", -1, what);
  c.patch_size = config_positive(v, "patch_size", 14, what);
  c.temporal_patch = config_positive(v, "temporal_patch_size", 2, what);
  c.merge = config_positive(v, "spatial_merge_size", 2, what);
  if (c.windowed()) {
    // Qwen2.5-VL renamed the widths: hidden_size is the tower's own, out_hidden_size the LLM's.
    c.embed_dim = config_positive(v, "hidden_size", -1, what);
    c.out_hidden = config_positive(v, "out_hidden_size", -1, what);
    c.mlp_hidden = config_positive(v, "intermediate_size", -1, what);
    c.channels = config_positive(v, "in_channels", config_positive(v, "in_chans", 3, what), what);
    c.act = parse_activation(json_string(v, "hidden_act", "silu", what), what + " hidden_act");
    const int window_size = config_positive(v, "window_size", 112, what);
    c.window_merged = window_size / c.merge / c.patch_size;
    VG_CHECK(c.window_merged > 0, what, ": window_size ", window_size, " is smaller than one merged token (",
             c.patch_size * c.merge, " px)");
    VG_CHECK(v.find("fullatt_block_indexes"), what, ": a Qwen2.5-VL vision tower (", prefix,
             "blocks.0.mlp.gate_proj) needs fullatt_block_indexes");
    c.full_attention_blocks = config_ids(v, "fullatt_block_indexes", what);
    for (int i : c.full_attention_blocks)
      VG_CHECK(i < c.depth, what, ": fullatt_block_indexes holds ", i, ", past depth ", c.depth);
  } else {
    c.embed_dim = config_positive(v, "embed_dim", -1, what);
    c.mlp_hidden = c.embed_dim * config_positive(v, "mlp_ratio", 4, what);
    c.channels = config_positive(v, "in_chans", 3, what);
    c.out_hidden = config_positive(v, "hidden_size", -1, what);
    c.act = parse_activation(json_string(v, "hidden_act", "quick_gelu", what), what + " hidden_act");
  }
  VG_CHECK(c.embed_dim % c.heads == 0 && c.head_dim() % 4 == 0, what, ": embed_dim ", c.embed_dim, " over ", c.heads,
           " heads must give a head_dim divisible by 4 (2D RoPE rotates half of it, split between rows and columns)");
  const int found = w.count_indexed(prefix + "blocks.");
  VG_CHECK(found == c.depth, w.checkpoint().path(), ": vision_config says depth ", c.depth, ", checkpoint has ", prefix,
           "blocks.0..", found - 1);
  return c;
}

VisionWindows qwen25_vl_windows(const std::vector<ImageGrid>& grids, int merge, int window_merged) {
  VisionWindows out;
  out.cu_seqlens.push_back(0);
  const int64_t unit = int64_t{merge} * merge, ws = window_merged;
  int64_t base = 0;  // merged tokens of the earlier frames
  for (const ImageGrid& g : grids) {
    const int64_t gh = g.h / merge, gw = g.w / merge;
    // Upstream pads each side by ws - side % ws, a whole empty window when it divides; such
    // windows have no tokens and vanish with the repeated offsets they leave.
    const int64_t nh = gh / ws + 1, nw = gw / ws + 1;
    for (int t = 0; t < g.t; ++t, base += gh * gw)
      for (int64_t wy = 0; wy < nh; ++wy)
        for (int64_t wx = 0; wx < nw; ++wx) {
          int64_t count = 0;
          for (int64_t y = wy * ws; y < std::min(gh, (wy + 1) * ws); ++y)
            for (int64_t x = wx * ws; x < std::min(gw, (wx + 1) * ws); ++x, ++count)
              out.index.push_back(static_cast<int32_t>(base + y * gw + x));
          if (count > 0) out.cu_seqlens.push_back(out.cu_seqlens.back() + count * unit);
        }
  }
  return out;
}

Qwen2VlVision::Qwen2VlVision(const Qwen2VlVisionConfig& c, WeightLoader& w, const std::string& p)
    : backend_(w.backend()),
      config_(c),
      merger_mlp_(c.embed_dim * c.merge * c.merge, c.embed_dim * c.merge * c.merge, c.out_hidden, Activation::GeluErf, w,
                  p + "merger.mlp.0", p + "merger.mlp.2") {
  const int64_t E = c.embed_dim, F = c.mlp_hidden;
  patch_w_ = w.matrix(p + "patch_embed.proj.weight", {E, c.channels, c.temporal_patch, c.patch_size, c.patch_size})
                 .view({E, c.patch_values()});
  for (int i = 0; i < c.depth; ++i) {
    const std::string bp = p + "blocks." + std::to_string(i) + ".";
    Block blk;
    // LayerNorm (weight and bias) in Qwen2-VL, RMSNorm (weight only) in Qwen2.5-VL.
    blk.norm1 = w.norm(bp + "norm1", E, !c.windowed());
    blk.norm2 = w.norm(bp + "norm2", E, !c.windowed());
    blk.qkv = w.linear(bp + "attn.qkv", 3 * E, E, true);
    blk.proj = w.linear(bp + "attn.proj", E, E, true);
    if (c.windowed()) {
      blk.gate = w.linear(bp + "mlp.gate_proj", F, E, true);
      blk.up = w.linear(bp + "mlp.up_proj", F, E, true);
      blk.down = w.linear(bp + "mlp.down_proj", E, F, true);
    } else {
      blk.fc1 = w.linear(bp + "mlp.fc1", F, E, true);
      blk.fc2 = w.linear(bp + "mlp.fc2", E, F, true);
    }
    blocks_.push_back(std::move(blk));
  }
  merger_norm_ = w.norm(p + "merger.ln_q", E, !c.windowed());
}

void Qwen2VlVision::norm(const NormWeights& n, const Tensor& x, const Tensor& y) const {
  if (config_.windowed())
    backend_.rms_norm(x, n.w, config_.eps, y);
  else
    backend_.layer_norm(x, &n.w, &n.b, config_.eps, y);
}

void Qwen2VlVision::encode(const Tensor& patches, const std::vector<ImageGrid>& grids, const Tensor& features,
                           const Hooks& hooks) {
  Backend& b = backend_;
  const Qwen2VlVisionConfig& c = config_;
  const int64_t E = c.embed_dim, D = c.head_dim(), m2 = int64_t{c.merge} * c.merge;
  VG_CHECK(!grids.empty(), "Qwen2-VL vision: no images");
  int64_t N = 0;
  // Full attention spans one frame of one image, as upstream's cu_seqlens.
  std::vector<int64_t> frames = {0};
  for (const ImageGrid& g : grids) {
    VG_CHECK(g.t > 0 && g.h > 0 && g.w > 0 && g.h % c.merge == 0 && g.w % c.merge == 0, "Qwen2-VL vision: grid ", g.t,
             "x", g.h, "x", g.w, " must be positive with rows and columns multiples of ", c.merge);
    for (int t = 0; t < g.t; ++t) frames.push_back(frames.back() + int64_t{g.h} * g.w);
    N += g.patches();
  }
  VG_CHECK(patches.rank() == 2 && patches.dim(0) == N && patches.dim(1) == c.patch_values(), "Qwen2-VL vision: patches ",
           patches.describe(), ", expected [", N, ", ", c.patch_values(), "] for the grids given");
  VG_CHECK(features.rank() == 2 && features.dim(0) == N / m2 && features.dim(1) == c.out_hidden,
           "Qwen2-VL vision: features ", features.describe(), ", expected [", N / m2, ", ", c.out_hidden, "]");

  // 2D RoPE: pair j < D/4 rotates by row * inv[j], pair D/4 + j by column * inv[j], with
  // inv[j] = theta^(-2j / (D/2)) (VisionRotaryEmbedding(D/2)); patches come window-major, so patch
  // (window bh, bw; inner mh, mw) sits at row 2bh + mh, column 2bw + mw.
  std::vector<int32_t> pos(static_cast<size_t>(2 * N));
  int64_t at = 0;
  for (const ImageGrid& g : grids)
    for (int t = 0; t < g.t; ++t)
      for (int bh = 0; bh < g.h / c.merge; ++bh)
        for (int bw = 0; bw < g.w / c.merge; ++bw)
          for (int mh = 0; mh < c.merge; ++mh)
            for (int mw = 0; mw < c.merge; ++mw, ++at) {
              pos[at] = bh * c.merge + mh;
              pos[N + at] = bw * c.merge + mw;
            }
  VisionWindows windows;
  Tensor window_ids;  // i32 [N / m2] on the backend: window order -> original merged token
  if (c.windowed()) {
    windows = qwen25_vl_windows(grids, c.merge, c.window_merged);
    if (hooks.windows) hooks.windows(windows);
    // The blocks see the patches in window order, so their angles follow them there.
    std::vector<int32_t> moved(pos.size());
    for (int64_t i = 0; i < N; ++i) {
      const int64_t from = windows.index[i / m2] * m2 + i % m2;
      moved[i] = pos[from];
      moved[N + i] = pos[N + from];
    }
    pos.swap(moved);
    window_ids = b.upload(Tensor::from_host(DType::I32, {N / m2}, windows.index.data()));
  }
  const std::vector<float> half_inv = rope_inv_freq(c.rope_theta, static_cast<int>(D / 2));
  std::vector<float> inv(half_inv);
  inv.insert(inv.end(), half_inv.begin(), half_inv.end());
  const std::vector<int> axes = rope_axis_of_pair({static_cast<int>(D / 4), static_cast<int>(D / 4)}, static_cast<int>(D));
  const Tensor table = b.upload(rope_table(inv, axes, pos.data(), 2, N));

  Tensor h = b.empty(DType::F32, {N, E});  // residual stream
  b.linear(patches, patch_w_, nullptr, h);
  if (hooks.patch_embed) hooks.patch_embed(h);
  if (c.windowed()) {
    // Each merged token's m2 patches move together: a row gather of [N / m2, m2 * E].
    Tensor ordered = b.empty(DType::F32, {N, E});
    b.embedding(window_ids, h.view({N / m2, m2 * E}), ordered.view({N / m2, m2 * E}));
    h = ordered;
  }

  Tensor xn = b.empty(DType::F32, {N, E});
  Tensor qkv = b.empty(DType::F32, {N, 3 * E});
  Tensor attn = b.empty(DType::F32, {N, E});
  Tensor mlp = b.empty(DType::F32, {N, c.mlp_hidden});
  Tensor up = c.windowed() ? b.empty(DType::F32, {N, c.mlp_hidden}) : Tensor();
  AttentionParams full;
  full.q_heads = full.kv_heads = c.heads;
  full.head_dim = static_cast<int>(D);
  full.scale = 1.0f / std::sqrt(static_cast<float>(D));
  full.mask = AttentionMask::None;
  full.segments = frames;
  AttentionParams windowed = full;
  windowed.segments = windows.cu_seqlens;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& blk = blocks_[i];
    const bool whole = !c.windowed() || std::find(c.full_attention_blocks.begin(), c.full_attention_blocks.end(),
                                                  static_cast<int>(i)) != c.full_attention_blocks.end();
    norm(blk.norm1, h, xn);
    b.linear(xn, blk.qkv.w, &blk.qkv.b, qkv);
    const Tensor q = qkv.slice(1, 0, E), k = qkv.slice(1, E, 2 * E), v = qkv.slice(1, 2 * E, 3 * E);
    b.rope(q, table, static_cast<int>(D), RopePairing::RotateHalf);
    b.rope(k, table, static_cast<int>(D), RopePairing::RotateHalf);
    b.attention(q, k, v, attn, whole ? full : windowed);
    b.linear(attn, blk.proj.w, &blk.proj.b, h, Activation::None, /*accumulate=*/true);
    norm(blk.norm2, h, xn);
    if (c.windowed()) {
      b.linear(xn, blk.gate.w, &blk.gate.b, mlp);
      b.linear(xn, blk.up.w, &blk.up.b, up);
      b.glu(mlp, up, c.act, mlp);
      b.linear(mlp, blk.down.w, &blk.down.b, h, Activation::None, /*accumulate=*/true);
    } else {
      b.linear(xn, blk.fc1.w, &blk.fc1.b, mlp, c.act);
      b.linear(mlp, blk.fc2.w, &blk.fc2.b, h, Activation::None, /*accumulate=*/true);
    }
    if (hooks.block_out) hooks.block_out(static_cast<int>(i), h);
  }
  // PatchMerger: ln_q per patch, then each window's merge^2 consecutive patches as one row.
  norm(merger_norm_, h, xn);
  if (!c.windowed()) {
    merger_mlp_.run(xn.view({N / m2, m2 * E}), features);
    return;
  }
  Tensor merged = b.empty(DType::F32, {N / m2, c.out_hidden});
  merger_mlp_.run(xn.view({N / m2, m2 * E}), merged);
  if (hooks.merger_windowed) hooks.merger_windowed(merged);
  std::vector<int32_t> back(windows.index.size());  // argsort of a permutation: its inverse
  for (size_t i = 0; i < back.size(); ++i) back[static_cast<size_t>(windows.index[i])] = static_cast<int32_t>(i);
  b.embedding(b.upload(Tensor::from_host(DType::I32, {N / m2}, back.data())), merged, features);
}

}  // namespace vargpt
