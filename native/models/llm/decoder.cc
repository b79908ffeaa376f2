#include "decoder.h"

#include <algorithm>
#include <cmath>

#include "../../core/error.h"
#include "../common/config_json.h"
#include "../common/rope.h"

namespace vargpt {

namespace {

// rope_scaling: absent/null (1D RoPE), or M-RoPE ({"type" | "rope_type": "mrope" or "default",
// "mrope_section": [t, h, w]}, as Qwen2-VL and Qwen2.5-VL write it). Anything else changes the
// angles in ways this runtime does not implement, so it is rejected rather than ignored.
std::vector<int> parse_rope_scaling(const Json& text, const std::string& what) {
  const Json* scaling = text.find("rope_scaling");
  if (scaling == nullptr || scaling->is_null()) return {};
  VG_CHECK(scaling->is_object(), what, ": rope_scaling must be an object or null");
  std::string type = json_string(*scaling, "type", "", what + " rope_scaling");
  if (type.empty()) type = json_string(*scaling, "rope_type", "", what + " rope_scaling");
  const Json* section = scaling->find("mrope_section");
  VG_CHECK((type == "mrope" || type == "default") && section != nullptr, what, ": rope_scaling type \"", type,
           "\" is not supported (only M-RoPE: {type: \"mrope\", mrope_section: [t, h, w]})");
  VG_CHECK(section->is_array() && !section->as_array().empty(), what, ": rope_scaling.mrope_section must be a list");
  std::vector<int> sections;
  for (const Json& s : section->as_array()) {
    VG_CHECK(s.is_integer() && s.as_int() >= 0 && s.as_int() < 4096, what,
             ": rope_scaling.mrope_section must hold small non-negative integers");
    sections.push_back(static_cast<int>(s.as_int()));
  }
  return sections;
}

}  // namespace

DecoderConfig parse_decoder_config(const Json& text, const std::string& what, const WeightLoader& w,
                                   const std::string& prefix) {
  DecoderConfig c;
  c.prefix = prefix;
  const std::string act = json_string(text, "hidden_act", "silu", what);
  VG_CHECK(act == "silu", what, ": hidden_act \"", act, "\" is not supported (the decoder's MLP is SwiGLU)");
  c.hidden = config_positive(text, "hidden_size", -1, what);
  c.layers = config_positive(text, "num_hidden_layers", -1, what);
  c.heads = config_positive(text, "num_attention_heads", -1, what);
  c.kv_heads = config_positive(text, "num_key_value_heads", c.heads, what);
  c.head_dim = config_positive(text, "head_dim", c.hidden / c.heads, what);
  c.intermediate = config_positive(text, "intermediate_size", -1, what);
  c.vocab = config_positive(text, "vocab_size", -1, what);
  c.max_positions = config_positive(text, "max_position_embeddings", 2048, what);
  c.rms_eps = static_cast<float>(json_number(text, "rms_norm_eps", 1e-6, what));
  c.rope_theta = static_cast<float>(json_number(text, "rope_theta", 10000.0, what));
  c.mrope_sections = parse_rope_scaling(text, what);
  VG_CHECK(c.heads % c.kv_heads == 0, what, ": num_attention_heads ", c.heads, " is not a multiple of num_key_value_heads ",
           c.kv_heads);
  VG_CHECK(c.head_dim % 2 == 0, what, ": head_dim ", c.head_dim, " must be even for RoPE");
  VG_CHECK(c.rope_theta > 0, what, ": rope_theta must be positive");
  rope_axis_of_pair(c.mrope_sections, c.head_dim);  // checks that the sections cover head_dim / 2
  const int found = w.count_indexed(prefix + "model.layers.");
  VG_CHECK(found == c.layers, w.checkpoint().path(), ": config says ", c.layers, " LLM layers, checkpoint has ", prefix,
           "model.layers.0..", found - 1);
  // The architectures differ in tensors, not in config keys: read what the checkpoint holds.
  c.qkv_bias = w.has(prefix + "model.layers.0.self_attn.q_proj.bias");
  c.tied_embeddings = !w.has(prefix + "lm_head.weight");
  VG_CHECK(!c.tied_embeddings || json_bool(text, "tie_word_embeddings", false, what), w.checkpoint().path(),
           ": checkpoint has no ", prefix, "lm_head.weight and ", what, " does not set tie_word_embeddings");
  return c;
}

Positions Positions::sequential(int start, int count) {
  Positions p;
  p.ids.resize(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) p.ids[i] = start + i;
  return p;
}

DecoderLlm::DecoderLlm(const DecoderConfig& config, WeightLoader& w)
    : backend_(w.backend()),
      config_(config),
      inv_freq_(rope_inv_freq(config.rope_theta, config.head_dim)),
      axis_of_pair_(rope_axis_of_pair(config.mrope_sections, config.head_dim)) {
  const std::string& prefix = config.prefix;
  const int64_t H = config.hidden, I = config.intermediate, V = config.vocab;
  const int64_t q_dim = config.q_dim(), kv_dim = config.kv_dim();
  embed_tokens_ = w.matrix(prefix + "model.embed_tokens.weight", {V, H});
  for (int i = 0; i < config.layers; ++i) {
    const std::string p = prefix + "model.layers." + std::to_string(i) + ".";
    Layer l;
    l.input_norm = w.norm(p + "input_layernorm", H, false);
    l.q = w.quantizable(p + "self_attn.q_proj.weight", {q_dim, H});
    l.k = w.quantizable(p + "self_attn.k_proj.weight", {kv_dim, H});
    l.v = w.quantizable(p + "self_attn.v_proj.weight", {kv_dim, H});
    if (config.qkv_bias) {
      l.q_bias = w.f32(p + "self_attn.q_proj.bias", {q_dim});
      l.k_bias = w.f32(p + "self_attn.k_proj.bias", {kv_dim});
      l.v_bias = w.f32(p + "self_attn.v_proj.bias", {kv_dim});
    }
    l.o = w.quantizable(p + "self_attn.o_proj.weight", {H, q_dim});
    l.post_norm = w.norm(p + "post_attention_layernorm", H, false);
    l.gate = w.quantizable(p + "mlp.gate_proj.weight", {I, H});
    l.up = w.quantizable(p + "mlp.up_proj.weight", {I, H});
    l.down = w.quantizable(p + "mlp.down_proj.weight", {H, I});
    layers_.push_back(std::move(l));
  }
  final_norm_ = w.norm(prefix + "model.norm", H, false);
  lm_head_ = config.tied_embeddings ? MatrixWeight{embed_tokens_, Tensor()} : w.quantizable(prefix + "lm_head.weight", {V, H});
}

KvCache DecoderLlm::new_cache(DType dtype) const {
  return KvCache(backend_, config_.layers, config_.kv_dim(), config_.max_positions, dtype);
}

void DecoderLlm::embed(const Tensor& ids, const Tensor& out) { backend_.embedding(ids, embed_tokens_, out); }

DecoderLlm::Scratch DecoderLlm::scratch(int64_t rows) const {
  Backend& b = backend_;
  const DecoderConfig& c = config_;
  Scratch sc;
  sc.xn = b.empty(DType::F32, {rows, c.hidden});
  sc.q = b.empty(DType::F32, {rows, c.q_dim()});
  sc.attn = b.empty(DType::F32, {rows, c.q_dim()});
  sc.gate = b.empty(DType::F32, {rows, c.intermediate});
  sc.up = b.empty(DType::F32, {rows, c.intermediate});
  sc.act = b.empty(DType::F32, {rows, c.intermediate});
  return sc;
}

AttentionParams DecoderLlm::attention_params() const {
  AttentionParams ap;
  ap.q_heads = config_.heads;
  ap.kv_heads = config_.kv_heads;
  ap.head_dim = config_.head_dim;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  ap.mask = AttentionMask::Causal;
  return ap;
}

void DecoderLlm::project_qkv(const Layer& l, const Tensor& h, const Tensor& table, const Scratch& sc, const Tensor& k,
                             const Tensor& v) {
  Backend& b = backend_;
  const DecoderConfig& c = config_;
  auto bias = [](const Tensor& t) { return t.defined() ? &t : nullptr; };
  b.rms_norm(h, l.input_norm.w, c.rms_eps, sc.xn);
  linear(b, sc.xn, l.q, bias(l.q_bias), sc.q);
  linear(b, sc.xn, l.k, bias(l.k_bias), k);
  linear(b, sc.xn, l.v, bias(l.v_bias), v);
  b.rope(sc.q, table, c.head_dim, RopePairing::RotateHalf);
  b.rope(k, table, c.head_dim, RopePairing::RotateHalf);
}

void DecoderLlm::finish_layer(const Layer& l, const Tensor& h, const Scratch& sc) {
  Backend& b = backend_;
  linear(b, sc.attn, l.o, nullptr, h, Activation::None, /*accumulate=*/true);
  b.rms_norm(h, l.post_norm.w, config_.rms_eps, sc.xn);
  linear(b, sc.xn, l.gate, nullptr, sc.gate);
  linear(b, sc.xn, l.up, nullptr, sc.up);
  b.glu(sc.gate, sc.up, Activation::SiLU, sc.act);
  linear(b, sc.act, l.down, nullptr, h, Activation::None, /*accumulate=*/true);
}

void DecoderLlm::forward(const Tensor& x, const Positions& positions, KvCache* cache, const Tensor& hidden,
                         const LayerHook& layer_hook, int hidden_tail_keys) {
  Backend& b = backend_;
  const DecoderConfig& c = config_;
  const int64_t H = c.hidden;
  VG_CHECK(x.rank() == 2 && x.dim(1) == H && x.dim(0) > 0, "DecoderLlm::forward: input ", x.describe(),
           ", expected [T, ", H, "]");
  VG_CHECK(hidden.rank() == 2 && hidden.dim(0) == x.dim(0) && hidden.dim(1) == H, "DecoderLlm::forward: output ",
           hidden.describe(), " does not match input ", x.describe());
  const int T = static_cast<int>(x.dim(0));
  VG_CHECK(hidden_tail_keys >= 0 && hidden_tail_keys < T && (hidden_tail_keys == 0 || cache == nullptr),
           "DecoderLlm::forward: ", hidden_tail_keys, " hidden keys of ", T, " (only without a cache, at most T - 1)");
  VG_CHECK((positions.axes == 1 || positions.axes == c.position_axes()) && positions.count() == T &&
               static_cast<int64_t>(positions.ids.size()) == int64_t{positions.axes} * T,
           "DecoderLlm::forward: ", positions.ids.size(), " position ids on ", positions.axes, " axes for ", T,
           " tokens (the model reads ", c.position_axes(), " axes)");
  // Text positions (one row) feed every M-RoPE axis alike.
  std::vector<int32_t> expanded;
  const int32_t* pos = positions.ids.data();
  if (positions.axes != c.position_axes()) {
    for (int a = 0; a < c.position_axes(); ++a) expanded.insert(expanded.end(), positions.ids.begin(), positions.ids.end());
    pos = expanded.data();
  }
  const Tensor table = b.upload(rope_table(inv_freq_, axis_of_pair_, pos, c.position_axes(), T));

  KvCache local(b, c.layers, c.kv_dim(), c.max_positions);
  KvCache& kv = cache ? *cache : local;
  const int start = kv.length();
  kv.reserve(start + T);

  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  Tensor h = b.empty(DType::F32, {T, H});  // residual stream
  b.copy(x, h);
  Scratch sc = scratch(T);
  const Tensor& q = sc.q;
  const Tensor& attn = sc.attn;
  // A bf16 cache receives this step's keys (after RoPE) and values by a cast from f32 rows.
  const bool staged = kv.dtype() != DType::F32;
  Tensor k_f32 = staged ? b.empty(DType::F32, {T, kv_dim}) : Tensor();
  Tensor v_f32 = staged ? b.empty(DType::F32, {T, kv_dim}) : Tensor();

  const AttentionParams ap = attention_params();

  for (int li = 0; li < c.layers; ++li) {
    const Layer& l = layers_[li];
    const Tensor k_all = kv.keys(li);  // [capacity, kv_dim]
    const Tensor v_all = kv.values(li);
    const Tensor k_slot = k_all.slice(0, start, start + T);
    const Tensor v_slot = v_all.slice(0, start, start + T);
    const Tensor& k_new = staged ? k_f32 : k_slot;
    const Tensor& v_new = staged ? v_f32 : v_slot;
    project_qkv(l, h, table, sc, k_new, v_new);
    if (staged) {
      b.cast(k_f32, k_slot);
      b.cast(v_f32, v_slot);
    }
    if (hidden_tail_keys == 0) {
      b.attention(q.view({1, T, q_dim}), k_all.slice(0, 0, start + T).view({1, start + T, kv_dim}),
                  v_all.slice(0, 0, start + T).view({1, start + T, kv_dim}), attn.view({1, T, q_dim}), ap);
    } else {
      // Rows before the hidden tail never see it (causal); the tail's rows see every earlier key
      // and none of the tail's, themselves included.
      const int n = T - hidden_tail_keys;
      const Tensor k_seen = k_all.slice(0, 0, n).view({1, n, kv_dim});
      const Tensor v_seen = v_all.slice(0, 0, n).view({1, n, kv_dim});
      b.attention(q.slice(0, 0, n).view({1, n, q_dim}), k_seen, v_seen, attn.slice(0, 0, n).view({1, n, q_dim}), ap);
      AttentionParams tail = ap;
      tail.mask = AttentionMask::None;
      b.attention(q.slice(0, n, T).view({1, T - n, q_dim}), k_seen, v_seen,
                  attn.slice(0, n, T).view({1, T - n, q_dim}), tail);
    }
    finish_layer(l, h, sc);
    if (layer_hook) layer_hook(li, h);
  }
  b.rms_norm(h, final_norm_.w, c.rms_eps, hidden);
  kv.advance(T);
}

void DecoderLlm::logits(const Tensor& hidden, const Tensor& logits) { linear(backend_, hidden, lm_head_, nullptr, logits); }

Tensor DecoderLlm::next_logits(int32_t token, const Positions& positions, KvCache& cache) {
  Backend& b = backend_;
  std::vector<DecodeRow> rows(1);
  rows[0].token = token;
  rows[0].positions = positions;
  rows[0].cache = &cache;
  Tensor hidden = b.empty(DType::F32, {1, config_.hidden});
  Tensor out = b.empty(DType::F32, {1, config_.vocab});
  decode_step(rows, hidden, out);
  return out;
}

void DecoderLlm::decode_step(const std::vector<DecodeRow>& rows, const Tensor& hidden, const Tensor& logits_out) {
  Backend& b = backend_;
  const DecoderConfig& c = config_;
  const int64_t H = c.hidden, N = static_cast<int64_t>(rows.size());
  VG_CHECK(N > 0, "DecoderLlm::decode_step: no rows");
  VG_CHECK(hidden.rank() == 2 && hidden.dim(0) == N && hidden.dim(1) == H, "DecoderLlm::decode_step: hidden ",
           hidden.describe(), ", expected [", N, ", ", H, "]");
  VG_CHECK(logits_out.rank() == 2 && logits_out.dim(0) == N && logits_out.dim(1) == c.vocab,
           "DecoderLlm::decode_step: logits ", logits_out.describe(), ", expected [", N, ", ", c.vocab, "]");
  const int axes = c.position_axes();
  // Positions axis-major over the batch ([axes][N]), as rope_table reads them; a text row (one
  // axis) feeds every M-RoPE axis alike.
  std::vector<int32_t> pos(static_cast<size_t>(axes * N));
  std::vector<int32_t> ids(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    const DecodeRow& r = rows[i];
    VG_CHECK(r.cache != nullptr, "DecoderLlm::decode_step: row ", i, " has no cache");
    VG_CHECK(r.token >= 0 && r.token < c.vocab, "DecoderLlm::decode_step: row ", i, " token ", r.token,
             " is outside the vocabulary [0, ", c.vocab, ")");
    VG_CHECK(r.positions.count() == 1 && (r.positions.axes == 1 || r.positions.axes == axes),
             "DecoderLlm::decode_step: row ", i, " needs the positions of one token on 1 or ", axes, " axes");
    for (int64_t j = 0; j < i; ++j)
      VG_CHECK(rows[j].cache != r.cache, "DecoderLlm::decode_step: rows ", j, " and ", i, " share a cache");
    for (int a = 0; a < axes; ++a) pos[a * N + i] = r.positions.ids[r.positions.axes == 1 ? 0 : a];
    ids[i] = r.token;
  }
  // Room for every row first, so a full cache fails the step before any row is touched.
  for (const DecodeRow& r : rows) r.cache->reserve(r.cache->length() + 1);
  const Tensor table = b.upload(rope_table(inv_freq_, axis_of_pair_, pos.data(), axes, static_cast<int>(N)));

  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  Tensor h = b.empty(DType::F32, {N, H});  // residual stream
  embed(b.upload(Tensor::from_host(DType::I32, {N}, ids.data())), h);
  Scratch sc = scratch(N);
  Tensor k_new = b.empty(DType::F32, {N, kv_dim});
  Tensor v_new = b.empty(DType::F32, {N, kv_dim});

  const AttentionParams ap = attention_params();
  for (int li = 0; li < c.layers; ++li) {
    const Layer& l = layers_[li];
    project_qkv(l, h, table, sc, k_new, v_new);
    for (int64_t i = 0; i < N; ++i) {
      KvCache& kv = *rows[i].cache;
      const int at = kv.length();
      const Tensor k_all = kv.keys(li), v_all = kv.values(li);
      // A copy into an f32 cache, a rounding cast into a bf16 one: what forward() stores.
      b.cast(k_new.slice(0, i, i + 1), k_all.slice(0, at, at + 1));
      b.cast(v_new.slice(0, i, i + 1), v_all.slice(0, at, at + 1));
      b.attention(sc.q.slice(0, i, i + 1).view({1, 1, q_dim}), k_all.slice(0, 0, at + 1).view({1, at + 1, kv_dim}),
                  v_all.slice(0, 0, at + 1).view({1, at + 1, kv_dim}), sc.attn.slice(0, i, i + 1).view({1, 1, q_dim}), ap);
    }
    finish_layer(l, h, sc);
  }
  b.rms_norm(h, final_norm_.w, c.rms_eps, hidden);
  logits(hidden, logits_out);
  for (const DecodeRow& r : rows) r.cache->advance(1);
}

Info DecoderLlm::info() const {
  const DecoderConfig& c = config_;
  Info out = Info::object();
  out.set("hiddenSize", c.hidden)
      .set("layers", c.layers)
      .set("heads", c.heads)
      .set("kvHeads", c.kv_heads)
      .set("headDim", c.head_dim)
      .set("intermediateSize", c.intermediate)
      .set("vocabSize", c.vocab)
      .set("maxPositions", c.max_positions)
      .set("weights", layers_.empty() ? dtype_name(lm_head_.w.dtype()) : matrix_weight_precision(layers_[0].q));
  if (!c.mrope_sections.empty()) out.set("ropeTheta", static_cast<double>(c.rope_theta)).set("mropeSection", Info::numbers(c.mrope_sections));
  return out;
}

}  // namespace vargpt
