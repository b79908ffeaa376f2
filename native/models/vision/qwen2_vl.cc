#include "qwen2_vl.h"

#include <cmath>

#include "../../core/error.h"
#include "../common/config_json.h"
#include "../common/rope.h"

namespace vargpt {

Qwen2VlVisionConfig parse_qwen2_vl_vision_config(const Json& v, const std::string& what, const WeightLoader& w,
                                                 const std::string& prefix) {
  Qwen2VlVisionConfig c;
  c.depth = config_positive(v, "depth", -1, what);
  c.embed_dim = config_positive(v, "embed_dim", -1, what);
  c.heads = config_positive(v, "num_heads", -1, what);
  const int mlp_ratio = config_positive(v, "mlp_ratio", 4, what);
  c.mlp_hidden = c.embed_dim * mlp_ratio;
  c.channels = config_positive(v, "in_chans", 3, what);
  c.patch_size = config_positive(v, "patch_size", 14, what);
  c.temporal_patch = config_positive(v, "temporal_patch_size", 2, what);
  c.merge = config_positive(v, "spatial_merge_size", 2, what);
  c.out_hidden = config_positive(v, "hidden_size", -1, what);
  c.act = parse_activation(json_string(v, "hidden_act", "quick_gelu", what), what + " hidden_act");
  VG_CHECK(c.embed_dim % c.heads == 0 && c.head_dim() % 4 == 0, what, ": embed_dim ", c.embed_dim, " over ", c.heads,
           " heads must give a head_dim divisible by 4 (2D RoPE rotates half of it, split between rows and columns)");
  const int found = w.count_indexed(prefix + "blocks.");
  VG_CHECK(found == c.depth, w.checkpoint().path(), ": vision_config says depth ", c.depth, ", checkpoint has ", prefix,
           "blocks.0..", found - 1);
  return c;
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
    blk.norm1 = w.norm(bp + "norm1", E, true);
    blk.norm2 = w.norm(bp + "norm2", E, true);
    blk.qkv = w.linear(bp + "attn.qkv", 3 * E, E, true);
    blk.proj = w.linear(bp + "attn.proj", E, E, true);
    blk.fc1 = w.linear(bp + "mlp.fc1", F, E, true);
    blk.fc2 = w.linear(bp + "mlp.fc2", E, F, true);
    blocks_.push_back(std::move(blk));
  }
  merger_norm_ = w.norm(p + "merger.ln_q", E, true);
}

void Qwen2VlVision::encode(const Tensor& patches, const std::vector<ImageGrid>& grids, const Tensor& features,
                           const Hooks& hooks) {
  Backend& b = backend_;
  const Qwen2VlVisionConfig& c = config_;
  const int64_t E = c.embed_dim, D = c.head_dim(), m2 = int64_t{c.merge} * c.merge;
  VG_CHECK(!grids.empty(), "Qwen2-VL vision: no images");
  int64_t N = 0;
  std::vector<int64_t> segments = {0};
  for (const ImageGrid& g : grids) {
    VG_CHECK(g.t > 0 && g.h > 0 && g.w > 0 && g.h % c.merge == 0 && g.w % c.merge == 0, "Qwen2-VL vision: grid ", g.t,
             "x", g.h, "x", g.w, " must be positive with rows and columns multiples of ", c.merge);
    N += g.patches();
    segments.push_back(N);
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
  const std::vector<float> half_inv = rope_inv_freq(c.rope_theta, static_cast<int>(D / 2));
  std::vector<float> inv(half_inv);
  inv.insert(inv.end(), half_inv.begin(), half_inv.end());
  const std::vector<int> axes = rope_axis_of_pair({static_cast<int>(D / 4), static_cast<int>(D / 4)}, static_cast<int>(D));
  const Tensor table = b.upload(rope_table(inv, axes, pos.data(), 2, N));

  Tensor h = b.empty(DType::F32, {N, E});  // residual stream
  b.linear(patches, patch_w_, nullptr, h);
  if (hooks.patch_embed) hooks.patch_embed(h);

  Tensor xn = b.empty(DType::F32, {N, E});
  Tensor qkv = b.empty(DType::F32, {N, 3 * E});
  Tensor attn = b.empty(DType::F32, {N, E});
  Tensor mlp = b.empty(DType::F32, {N, c.mlp_hidden});
  AttentionParams ap;
  ap.q_heads = ap.kv_heads = c.heads;
  ap.head_dim = static_cast<int>(D);
  ap.scale = 1.0f / std::sqrt(static_cast<float>(D));
  ap.mask = AttentionMask::None;
  ap.segments = segments;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& blk = blocks_[i];
    b.layer_norm(h, &blk.norm1.w, &blk.norm1.b, c.eps, xn);
    b.linear(xn, blk.qkv.w, &blk.qkv.b, qkv);
    const Tensor q = qkv.slice(1, 0, E), k = qkv.slice(1, E, 2 * E), v = qkv.slice(1, 2 * E, 3 * E);
    b.rope(q, table, static_cast<int>(D), RopePairing::RotateHalf);
    b.rope(k, table, static_cast<int>(D), RopePairing::RotateHalf);
    b.attention(q, k, v, attn, ap);
    b.linear(attn, blk.proj.w, &blk.proj.b, h, Activation::None, /*accumulate=*/true);
    b.layer_norm(h, &blk.norm2.w, &blk.norm2.b, c.eps, xn);
    b.linear(xn, blk.fc1.w, &blk.fc1.b, mlp, c.act);
    b.linear(mlp, blk.fc2.w, &blk.fc2.b, h, Activation::None, /*accumulate=*/true);
    if (hooks.block_out) hooks.block_out(static_cast<int>(i), h);
  }
  // PatchMerger: ln_q per patch, then each window's merge^2 consecutive patches as one row.
  b.layer_norm(h, &merger_norm_.w, &merger_norm_.b, c.eps, xn);
  merger_mlp_.run(xn.view({N / m2, m2 * E}), features);
}

}  // namespace vargpt
