#include "infinity.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "../../core/error.h"
#include "../common/rope.h"
#include "scale_blocks.h"

namespace vargpt {

namespace {

// Distinguishes decoders so a cache made by one is never run through another.
std::atomic<uint64_t> next_decoder_id{1};

void check_rows(const Tensor& t, int64_t cols, const char* what) {
  VG_CHECK(t.defined() && t.rank() == 2 && t.dim(1) == cols && t.dim(0) > 0 && t.dtype() == DType::F32, "Infinity: ",
           what, " ", t.defined() ? t.describe() : std::string("(none)"), ", expected f32 [L >= 1, ", cols, "]");
}

}  // namespace

InfinityConfig parse_infinity_config(const WeightLoader& w, const std::string& prefix) {
  InfinityConfig c;
  const std::string chunks = prefix + "block_chunks.";
  const int n_chunks = w.count_indexed(chunks);
  for (int i = 0; i < n_chunks; ++i) c.depth += w.count_indexed(chunks + std::to_string(i) + ".module.");
  VG_CHECK(c.depth > 0, "Infinity: the checkpoint has no blocks under ", chunks, "{c}.module.{j}");
  const std::string b0 = chunks + "0.module.0.";
  c.width = w.dim(prefix + "word_embed.weight", 0, 2);
  c.bits = w.dim(prefix + "word_embed.weight", 1, 2);
  c.heads = w.dim(b0 + "sa.scale_mul_1H11", 1, 4);
  VG_CHECK(c.width % c.heads == 0, "Infinity: width ", c.width, " is not a multiple of ", c.heads, " heads");
  c.head_dim = c.width / c.heads;
  // Half of each head's pairs rotate by the row, half by the column.
  VG_CHECK(c.head_dim % 4 == 0, "Infinity: head_dim ", c.head_dim, " must be a multiple of 4 for the 2D RoPE");
  c.mlp_hidden = w.dim(b0 + "ffn.fc1.weight", 0, 2);
  c.text_dim = w.dim(prefix + "text_norm.weight", 0, 1);
  c.uncond_rows = w.dim(prefix + "cfg_uncond", 0, 2);
  const int uncond_dim = w.dim(prefix + "cfg_uncond", 1, 2);
  // A mat_kv stored quantized (vargpt quantize) no longer has the context width as its second axis
  // (q4 packs two values a byte): the width is then cfg_uncond's, and quantizable() checks mat_kv
  // against it when the blocks load.
  const std::string mat_kv = b0 + "ca.mat_kv.weight";
  const bool kv_float = w.has(mat_kv) && dtype_is_float(w.checkpoint().info(mat_kv).dtype);
  c.context_dim = kv_float ? w.dim(mat_kv, 1, 2) : uncond_dim;
  // cfg_uncond rows stand in for both the pool's rows and the blocks' context.
  VG_CHECK(uncond_dim == c.context_dim && uncond_dim == c.text_dim, "Infinity: cfg_uncond has ", uncond_dim,
           " columns, but the cross-attention reads ", c.context_dim, " and text_norm ", c.text_dim);
  c.levels = w.dim(prefix + "lvl_embed.weight", 0, 2);
  c.pool_heads = w.dim(prefix + "text_proj_for_sos.ca.mat_q", 1, 3);
  c.pool_head_dim = w.dim(prefix + "text_proj_for_sos.ca.mat_q", 2, 3);
  VG_CHECK(c.pool_heads * c.pool_head_dim == c.width, "Infinity: text_proj_for_sos.ca.mat_q has ", c.pool_heads,
           " x ", c.pool_head_dim, " values, expected width ", c.width);
  const int head_out = w.dim(prefix + "head.weight", 0, 2);
  VG_CHECK(head_out == 2 * c.bits, "Infinity: head gives ", head_out, " logits, expected 2 per bit (", 2 * c.bits,
           ")");
  return c;
}

InfinityDecoder::InfinityDecoder(const InfinityConfig& config, WeightLoader& w, const std::string& prefix)
    : backend_(w.backend()), config_(config), id_(next_decoder_id++) {
  Backend& b = backend_;
  const int64_t C = config.width, F = config.mlp_hidden, T = config.text_dim, K = config.context_dim;
  cfg_uncond_ = w.f32(prefix + "cfg_uncond", {config.uncond_rows, K});
  text_norm_w_ = w.f32(prefix + "text_norm.weight", {T});
  const std::string pool = prefix + "text_proj_for_sos.ca.";
  {
    const Tensor q = w.f32(pool + "mat_q", {1, config.pool_heads, config.pool_head_dim});
    pool_q_ = b.empty(DType::BF16, {1, C});
    b.cast(q.view({1, C}), pool_q_);
  }
  pool_kv_.w = w.matrix(pool + "mat_kv.weight", {2 * C, T});
  pool_kv_.b = packed_attention_bias(w, pool, C, /*with_query=*/false);
  pool_proj_ = w.linear(pool + "proj", C, C, true);
  pos_start_ = w.f32(prefix + "pos_start", {1, 1, C}).view({C});
  lvl_embed_ = w.f32(prefix + "lvl_embed.weight", {config.levels, C});
  word_embed_ = w.linear(prefix + "word_embed", C, config.bits, true);
  shared_ada_ = w.quantizable_linear(prefix + "shared_ada_lin.1", 6 * C, C, true);
  head_ada_ = w.quantizable_linear(prefix + "head_nm.ada_lin.1", 2 * C, C, true);
  head_ = w.quantizable_linear(prefix + "head", config.logits(), C, true);

  const std::string chunks = prefix + "block_chunks.";
  const int n_chunks = w.count_indexed(chunks);
  for (int ci = 0; ci < n_chunks; ++ci) {
    const std::string chunk = chunks + std::to_string(ci) + ".module.";
    const int n = w.count_indexed(chunk);
    for (int j = 0; j < n; ++j) {
      const std::string p = chunk + std::to_string(j) + ".";
      Block blk;
      blk.ada_gss = w.f32(p + "ada_gss", {1, 1, 6, C}).view({6 * C});
      blk.qkv_w = w.quantizable(p + "sa.mat_qkv.weight", {3 * C, C});
      blk.qkv_bias = packed_attention_bias(w, p + "sa.", C, /*with_query=*/true);
      blk.head_scale = cosine_attention_head_scale(w, p + "sa.scale_mul_1H11", config.heads);
      blk.proj = w.quantizable_linear(p + "sa.proj", C, C, true);
      blk.ca_q = w.quantizable_linear(p + "ca.mat_q", C, C, true);
      blk.ca_kv.w = w.quantizable(p + "ca.mat_kv.weight", {2 * C, K});
      blk.ca_kv.b = packed_attention_bias(w, p + "ca.", C, /*with_query=*/false);
      blk.ca_proj = w.quantizable_linear(p + "ca.proj", C, C, true);
      blk.ca_norm_w = w.f32(p + "ca_norm.weight", {C});
      blk.ca_norm_b = w.f32(p + "ca_norm.bias", {C});
      blk.fc1 = w.quantizable_linear(p + "ffn.fc1", F, C, true);
      blk.fc2 = w.quantizable_linear(p + "ffn.fc2", C, F, true);
      blocks_.push_back(std::move(blk));
    }
  }
  VG_CHECK(static_cast<int>(blocks_.size()) == config.depth, "Infinity: found ", blocks_.size(),
           " blocks, the config says ", config.depth);
  // f[k] = base^(-2k / (head_dim/2)), k < head_dim/4, in f32 as upstream's
  // precompute_rope2d_freqs_grid (half_dim = head_dim / 2).
  rope_freq_ = rope_inv_freq(config.rope_base, config.head_dim / 2);
}

void InfinityDecoder::condition(const Tensor& rows_cond, const Tensor& rows_uncond, const Tensor& cond) {
  Backend& b = backend_;
  const int64_t C = config_.width, T = config_.text_dim;
  check_rows(rows_cond, T, "condition rows (conditional)");
  check_rows(rows_uncond, T, "condition rows (unconditional)");
  VG_CHECK(cond.rank() == 2 && cond.dim(0) == 2 && cond.dim(1) == C && cond.dtype() == DType::F32 &&
               cond.is_contiguous(),
           "Infinity: cond ", cond.describe(), ", expected f32 [2, ", C, "]");
  AttentionParams ap;
  ap.q_heads = ap.kv_heads = config_.pool_heads;
  ap.head_dim = config_.pool_head_dim;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(config_.pool_head_dim));
  ap.mask = AttentionMask::None;
  Tensor o = b.empty(DType::F32, {1, C});
  Tensor o_bf = b.empty(DType::BF16, {1, C});
  const Tensor* rows[2] = {&rows_cond, &rows_uncond};
  for (int r = 0; r < 2; ++r) {
    const int64_t L = rows[r]->dim(0);
    Tensor normed = b.empty(DType::F32, {L, T});
    text_norm(*rows[r], normed);
    Tensor kv = b.empty(DType::F32, {L, 2 * C});
    b.linear(normed, pool_kv_.w, &pool_kv_.b, kv);
    Tensor kv_bf = b.empty(DType::BF16, {L, 2 * C});
    b.cast(kv, kv_bf);
    b.attention(pool_q_, kv_bf.slice(1, 0, C), kv_bf.slice(1, C, 2 * C), o, ap);
    b.cast(o, o_bf);  // flash-attn hands back bf16
    b.linear(o_bf, pool_proj_.w, &pool_proj_.b, cond.slice(0, r, r + 1));
  }
}

void InfinityDecoder::text_norm(const Tensor& rows, const Tensor& out) {
  check_rows(rows, config_.text_dim, "text_norm rows");
  backend_.rms_norm(rows, text_norm_w_, config_.norm_eps, out);
}

void InfinityDecoder::shared_modulation(const Tensor& cond, const Tensor& gss) {
  Backend& b = backend_;
  const int64_t C = config_.width;
  VG_CHECK(cond.rank() == 2 && cond.dim(0) == 2 && cond.dim(1) == C && cond.dtype() == DType::F32,
           "Infinity: cond ", cond.describe(), ", expected f32 [2, ", C, "]");
  Tensor act = b.empty(DType::F32, {2, C});
  b.activation(cond, Activation::SiLU, act);
  linear(b, act, shared_ada_, gss);
}

void InfinityDecoder::uncond_rows(int64_t L, const Tensor& out) {
  VG_CHECK(L >= 1 && L <= config_.uncond_rows, "Infinity: an unconditional context of ", L,
           " rows; cfg_uncond holds 1 to ", config_.uncond_rows, " (a longer conditional context has no "
           "unconditional counterpart upstream)");
  backend_.copy(cfg_uncond_.slice(0, 0, L), out);
}

void InfinityDecoder::start_input(const Tensor& cond, const Tensor& out) {
  backend_.add(cond, pos_start_, out);
}

void InfinityDecoder::embed_codes(const Tensor& codes, const Tensor& out) {
  VG_CHECK(codes.rank() == 2 && codes.dim(1) == config_.bits && codes.dtype() == DType::F32, "Infinity: codes ",
           codes.describe(), ", expected f32 [n, ", config_.bits, "]");
  backend_.linear(codes, word_embed_.w, &word_embed_.b, out);
}

void InfinityDecoder::add_level_embedding(int scale, const Tensor& x) {
  VG_CHECK(scale >= 0 && scale < config_.levels, "Infinity: scale ", scale, " has no level embedding (lvl_embed has ",
           config_.levels, " rows)");
  VG_CHECK(x.rank() == 3 && x.dim(0) == 2 && x.dim(2) == config_.width && x.dtype() == DType::F32,
           "Infinity: scale input ", x.describe(), ", expected f32 [2, n, ", config_.width, "]");
  backend_.add(x, lvl_embed_.slice(0, scale, scale + 1).view({config_.width}), x);
}

InfinityScaleCache InfinityDecoder::new_cache(const Tensor& cond, const Tensor& context_cond,
                                              const Tensor& context_uncond, DType kv_dtype, int64_t reserve) {
  Backend& b = backend_;
  const int64_t C = config_.width;
  VG_CHECK(kv_dtype == DType::F32 || kv_dtype == DType::BF16, "Infinity: the scale cache keeps f32 or bf16, not ",
           dtype_name(kv_dtype));
  VG_CHECK(reserve >= 0, "Infinity: negative cache reserve ", reserve);
  check_rows(context_cond, config_.context_dim, "context (conditional)");
  check_rows(context_uncond, config_.context_dim, "context (unconditional)");
  InfinityScaleCache cache;
  cache.owner_ = id_;
  cache.kv_dtype_ = kv_dtype;

  Tensor gss = b.empty(DType::F32, {2, 6 * C});
  shared_modulation(cond, gss);
  Tensor mod = b.empty(DType::F32, {2, 6 * C});
  for (const Block& blk : blocks_) {
    b.add(gss, blk.ada_gss, mod);
    auto ch = split_chunks(b, mod, 6, C);  // gamma1, gamma2, scale1, scale2, shift1, shift2
    cache.mod_.push_back({ch[0], ch[1], ch[2], ch[3], ch[4], ch[5]});
  }
  Tensor act = b.empty(DType::F32, {2, C});
  b.activation(cond, Activation::SiLU, act);
  Tensor head_mod = b.empty(DType::F32, {2, 2 * C});
  linear(b, act, head_ada_, head_mod);
  auto hc = split_chunks(b, head_mod, 2, C);  // scale, shift
  cache.head_scale_ = hc[0];
  cache.head_shift_ = hc[1];

  const Tensor* ctx[2] = {&context_cond, &context_uncond};
  for (int r = 0; r < 2; ++r) {
    const int64_t L = ctx[r]->dim(0);
    cache.ca_len_[r] = L;
    Tensor kv = b.empty(DType::F32, {L, 2 * C});
    for (const Block& blk : blocks_) {
      linear(b, *ctx[r], blk.ca_kv, kv);
      Tensor kv_bf = b.empty(DType::BF16, {L, 2 * C});
      b.cast(kv, kv_bf);
      cache.ca_kv_[r].push_back(kv_bf);
    }
  }
  if (reserve > 0) grow(cache, reserve);
  return cache;
}

void InfinityDecoder::grow(InfinityScaleCache& cache, int64_t needed) {
  if (needed <= cache.capacity_) return;
  Backend& b = backend_;
  const int64_t cap = std::max(needed, 2 * cache.capacity_);
  const int64_t C = config_.width, used = cache.length_;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Tensor k = b.empty(cache.kv_dtype_, {2, cap, C});
    Tensor v = b.empty(cache.kv_dtype_, {2, cap, C});
    if (used > 0) {
      b.copy(cache.k_[i].slice(1, 0, used), k.slice(1, 0, used));
      b.copy(cache.v_[i].slice(1, 0, used), v.slice(1, 0, used));
    }
    if (cache.k_.size() <= i) {
      cache.k_.push_back(k);
      cache.v_.push_back(v);
    } else {
      cache.k_[i] = k;
      cache.v_[i] = v;
    }
  }
  cache.capacity_ = cap;
}

Tensor InfinityDecoder::rope_table(int h, int w) {
  // Each scale's grid is stretched onto the fixed rope grid: row r reads position
  // round(r * (grid_h / h)) with the f32 product and round-half-even of upstream's
  // (arange(h) * (uph / h)).round().
  const int64_t n = int64_t{h} * w;
  std::vector<int32_t> pos(static_cast<size_t>(2 * n));
  const float fh = static_cast<float>(static_cast<double>(config_.rope_grid_h) / h);
  const float fw = static_cast<float>(static_cast<double>(config_.rope_grid_w) / w);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      const int64_t t = int64_t{r} * w + c;
      pos[t] = static_cast<int32_t>(std::nearbyint(static_cast<float>(r) * fh));
      pos[n + t] = static_cast<int32_t>(std::nearbyint(static_cast<float>(c) * fw));
    }
  std::vector<float> freq(rope_freq_);
  freq.insert(freq.end(), rope_freq_.begin(), rope_freq_.end());
  const int quarter = config_.head_dim / 4;
  const std::vector<int> axes = rope_axis_of_pair({quarter, quarter}, config_.head_dim);
  return backend_.upload(vargpt::rope_table(freq, axes, pos.data(), 2, n));
}

void InfinityDecoder::forward(const Tensor& x, int h, int w, InfinityScaleCache& cache, const Tensor& logits,
                              const BlockHook& block_hook) {
  Backend& b = backend_;
  const int64_t C = config_.width, D = config_.head_dim;
  VG_CHECK(cache.owner_ == id_, "Infinity: the scale cache was made by another decoder (or not by new_cache)");
  VG_CHECK(h >= 1 && w >= 1 && int64_t{h} * w <= (int64_t{1} << 24), "Infinity: bad scale size ", h, "x", w);
  const int64_t n = int64_t{h} * w;
  VG_CHECK(x.rank() == 3 && x.dim(0) == 2 && x.dim(1) == n && x.dim(2) == C && x.dtype() == DType::F32 &&
               x.is_contiguous(),
           "Infinity: input ", x.describe(), ", expected f32 [2, ", n, ", ", C, "] for a ", h, "x", w, " scale");
  VG_CHECK(logits.rank() == 3 && logits.dim(0) == 2 && logits.dim(1) == n && logits.dim(2) == config_.logits() &&
               logits.dtype() == DType::F32,
           "Infinity: logits ", logits.describe(), ", expected f32 [2, ", n, ", ", config_.logits(), "]");
  const int64_t start = cache.length_;
  const int64_t Lk = start + n;
  VG_CHECK(Lk < (int64_t{1} << 31), "Infinity: ", Lk, " cached tokens");
  grow(cache, Lk);
  const Tensor table = rope_table(h, w);

  Tensor xn = b.empty(DType::F32, {2, n, C});
  Tensor qkv = b.empty(DType::F32, {2, n, 3 * C});
  Tensor attn = b.empty(DType::F32, {2, n, C});
  Tensor y = b.empty(DType::F32, {2, n, C});
  Tensor q_bf = b.empty(DType::BF16, {2, n, C});
  Tensor o_bf = b.empty(DType::BF16, {2, n, C});
  Tensor mlp = b.empty(DType::F32, {2, n, config_.mlp_hidden});
  AttentionParams sa;
  sa.q_heads = sa.kv_heads = config_.heads;
  sa.head_dim = config_.head_dim;
  sa.scale = 1.0f;
  sa.mask = AttentionMask::None;  // block-causal through the cache: all earlier scales and all of this one
  AttentionParams ca = sa;
  ca.scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float eps = config_.norm_eps;

  for (size_t bi = 0; bi < blocks_.size(); ++bi) {
    const Block& blk = blocks_[bi];
    const InfinityScaleCache::Modulation& m = cache.mod_[bi];
    b.norm_modulate(x, NormKind::LayerNorm, nullptr, nullptr, eps, m.scale1, &m.shift1, xn);
    linear(b, xn, blk.qkv_w, &blk.qkv_bias, qkv);
    const Tensor q = qkv.slice(2, 0, C);
    const Tensor k = qkv.slice(2, C, 2 * C);
    const Tensor v = qkv.slice(2, 2 * C, 3 * C);
    b.l2_normalize_heads(q, config_.head_dim, &blk.head_scale);
    b.l2_normalize_heads(k, config_.head_dim, nullptr);
    b.rope(q, table, config_.head_dim, RopePairing::Interleaved);
    b.rope(k, table, config_.head_dim, RopePairing::Interleaved);
    b.cast(k, cache.k_[bi].slice(1, start, Lk));
    b.cast(v, cache.v_[bi].slice(1, start, Lk));
    b.attention(q, cache.k_[bi].slice(1, 0, Lk), cache.v_[bi].slice(1, 0, Lk), attn, sa);
    linear(b, attn, blk.proj, y);
    b.gated_add(x, y, m.gamma1);

    // Cross-attention on bf16 q, k, v with a bf16 output, each row to its own context.
    b.layer_norm(x, &blk.ca_norm_w, &blk.ca_norm_b, eps, xn);
    linear(b, xn, blk.ca_q, y);
    b.cast(y, q_bf);
    for (int r = 0; r < 2; ++r) {
      const Tensor& kv = cache.ca_kv_[r][bi];
      b.attention(q_bf.select(r), kv.slice(1, 0, C), kv.slice(1, C, 2 * C), attn.select(r), ca);
    }
    if (blk.ca_proj.w.qparams.defined()) {
      // The integer kernels quantize f32 rows themselves: the bf16 rounding has nothing to add.
      linear(b, attn, blk.ca_proj, x, Activation::None, /*accumulate=*/true);
    } else {
      b.cast(attn, o_bf);
      linear(b, o_bf, blk.ca_proj, x, Activation::None, /*accumulate=*/true);
    }

    b.norm_modulate(x, NormKind::LayerNorm, nullptr, nullptr, eps, m.scale2, &m.shift2, xn);
    linear(b, xn, blk.fc1, mlp, Activation::GeluTanh);
    linear(b, mlp, blk.fc2, y);
    b.gated_add(x, y, m.gamma2);
    if (block_hook) block_hook(static_cast<int>(bi), x);
  }
  b.norm_modulate(x, NormKind::LayerNorm, nullptr, nullptr, eps, cache.head_scale_, &cache.head_shift_, xn);
  linear(b, xn, head_, logits);
  cache.length_ = static_cast<int>(Lk);
}

}  // namespace vargpt
