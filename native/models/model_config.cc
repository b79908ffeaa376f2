#include "model_config.h"

#include <cmath>
#include <map>

#include "../core/error.h"
#include "../core/mapped_file.h"

namespace vargpt {

int VarConfig::begin(int si) const {
  int b = 0;
  for (int i = 0; i < si; ++i) b += patch_nums[i] * patch_nums[i];
  return b;
}

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

namespace {

Activation parse_activation(const std::string& name, const std::string& what) {
  if (name == "gelu") return Activation::GeluErf;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::GeluTanh;
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "silu" || name == "swish") return Activation::SiLU;
  fail(what, ": unsupported activation \"", name, "\"");
}

int positive(const Json& object, const char* key, int64_t fallback, const std::string& what) {
  const int64_t v = json_int(object, key, fallback, what);
  VG_CHECK(v > 0 && v < (1 << 30), what, ": ", key, " = ", v, " must be a positive integer");
  return static_cast<int>(v);
}

LlamaConfig parse_llama(const Json& text, const std::string& what, const WeightLoader& w) {
  LlamaConfig c;
  const std::string act = json_string(text, "hidden_act", "silu", what);
  VG_CHECK(act == "silu", what, ": hidden_act \"", act, "\" is not supported (Llama uses silu)");
  const Json* scaling = text.find("rope_scaling");
  VG_CHECK(scaling == nullptr || scaling->is_null(), what, ": rope_scaling is not supported");
  c.hidden = positive(text, "hidden_size", -1, what);
  c.layers = positive(text, "num_hidden_layers", -1, what);
  c.heads = positive(text, "num_attention_heads", -1, what);
  c.kv_heads = positive(text, "num_key_value_heads", c.heads, what);
  c.head_dim = positive(text, "head_dim", c.hidden / c.heads, what);
  c.intermediate = positive(text, "intermediate_size", -1, what);
  c.vocab = positive(text, "vocab_size", -1, what);
  c.max_positions = positive(text, "max_position_embeddings", 2048, what);
  c.rms_eps = static_cast<float>(json_number(text, "rms_norm_eps", 1e-6, what));
  c.rope_theta = static_cast<float>(json_number(text, "rope_theta", 10000.0, what));
  VG_CHECK(c.heads % c.kv_heads == 0, what, ": num_attention_heads ", c.heads, " is not a multiple of num_key_value_heads ",
           c.kv_heads);
  VG_CHECK(c.head_dim % 2 == 0, what, ": head_dim ", c.head_dim, " must be even for RoPE");
  const int found = w.count_indexed("language_model.model.layers.");
  VG_CHECK(found == c.layers, w.checkpoint().path(), ": config says ", c.layers,
           " LLM layers, checkpoint has language_model.model.layers.0..", found - 1);
  return c;
}

ClipConfig parse_clip(const Json& root, const Json& vision, const std::string& what, const WeightLoader& w) {
  ClipConfig c;
  c.hidden = positive(vision, "hidden_size", -1, what);
  c.layers = positive(vision, "num_hidden_layers", -1, what);
  c.heads = positive(vision, "num_attention_heads", -1, what);
  c.intermediate = positive(vision, "intermediate_size", -1, what);
  c.image_size = positive(vision, "image_size", -1, what);
  c.patch_size = positive(vision, "patch_size", -1, what);
  c.channels = positive(vision, "num_channels", 3, what);
  c.eps = static_cast<float>(json_number(vision, "layer_norm_eps", 1e-5, what));
  c.act = parse_activation(json_string(vision, "hidden_act", "quick_gelu", what), what + " vision_config.hidden_act");
  VG_CHECK(c.image_size % c.patch_size == 0, what, ": image_size ", c.image_size, " is not a multiple of patch_size ",
           c.patch_size);
  VG_CHECK(c.hidden % c.heads == 0, what, ": vision hidden_size ", c.hidden, " is not a multiple of heads ", c.heads);
  // hidden_states has layers + 1 entries ([0] = embeddings after pre_layrnorm); pick one of them.
  const int64_t layer = json_int(root, "vision_feature_layer", -2, what);
  const int64_t index = layer < 0 ? c.layers + 1 + layer : layer;
  VG_CHECK(index >= 0 && index <= c.layers, what, ": vision_feature_layer ", layer, " is outside the ", c.layers + 1,
           " hidden states");
  c.run_layers = static_cast<int>(index);
  const std::string strategy = json_string(root, "vision_feature_select_strategy", "default", what);
  VG_CHECK(strategy == "default" || strategy == "full", what, ": vision_feature_select_strategy \"", strategy,
           "\" is not supported");
  c.drop_cls = strategy == "default";
  const int found = w.count_indexed("vision_tower.vision_model.encoder.layers.");
  VG_CHECK(found == c.layers, w.checkpoint().path(), ": vision_config says ", c.layers,
           " layers, checkpoint has vision_tower.vision_model.encoder.layers.0..", found - 1);
  return c;
}

VarConfig derive_var(const WeightLoader& w, int null_class) {
  VarConfig c;
  const std::string& path = w.checkpoint().path();
  c.depth = w.count_indexed("vargpt_gen.blocks.");
  VG_CHECK(c.depth > 0, path, ": no vargpt_gen.blocks.* tensors");
  const Shape we = w.shape("vargpt_gen.word_embed.weight");
  VG_CHECK(we.size() == 2, path, ": vargpt_gen.word_embed.weight has shape ", shape_string(we), ", expected [C, Cvae]");
  c.width = static_cast<int>(we[0]);
  c.cvae = static_cast<int>(we[1]);
  const Shape sm = w.shape("vargpt_gen.blocks.0.attn.scale_mul_1H11");
  VG_CHECK(sm.size() == 4 && sm[1] > 0, path, ": vargpt_gen.blocks.0.attn.scale_mul_1H11 has shape ", shape_string(sm),
           ", expected [1, H, 1, 1]");
  c.heads = static_cast<int>(sm[1]);
  VG_CHECK(c.width % c.heads == 0, path, ": VAR width ", c.width, " is not a multiple of heads ", c.heads);
  c.head_dim = c.width / c.heads;
  const Shape fc1 = w.shape("vargpt_gen.blocks.0.ffn.fc1.weight");
  VG_CHECK(fc1.size() == 2, path, ": vargpt_gen.blocks.0.ffn.fc1.weight has shape ", shape_string(fc1));
  c.mlp_hidden = static_cast<int>(fc1[0]);
  const Shape head = w.shape("vargpt_gen.head.weight");
  VG_CHECK(head.size() == 2, path, ": vargpt_gen.head.weight has shape ", shape_string(head));
  c.vocab = static_cast<int>(head[0]);
  const Shape ce = w.shape("vargpt_gen.class_emb.weight");
  VG_CHECK(ce.size() == 2, path, ": vargpt_gen.class_emb.weight has shape ", shape_string(ce));
  c.class_rows = static_cast<int>(ce[0]);
  c.null_class = null_class;
  VG_CHECK(null_class >= 0 && null_class < c.class_rows, path, ": the VAR null class ", null_class,
           " (image_gen_start_token_id + 1) is outside vargpt_gen.class_emb rows ", c.class_rows);

  // patch_nums: lvl_1L[i] is the scale of token i; scale si has pn^2 tokens.
  const Shape lvl = w.shape("vargpt_gen.lvl_1L");
  VG_CHECK(lvl.size() == 2 && lvl[0] == 1, path, ": vargpt_gen.lvl_1L has shape ", shape_string(lvl), ", expected [1, L]");
  Tensor raw = w.checkpoint().get("vargpt_gen.lvl_1L");
  std::vector<int64_t> levels(static_cast<size_t>(raw.numel()));
  if (raw.dtype() == DType::I64) {
    for (size_t i = 0; i < levels.size(); ++i) levels[i] = raw.data<int64_t>()[i];
  } else if (raw.dtype() == DType::I32) {
    for (size_t i = 0; i < levels.size(); ++i) levels[i] = raw.data<int32_t>()[i];
  } else {
    fail(path, ": vargpt_gen.lvl_1L has dtype ", dtype_name(raw.dtype()), ", expected i64");
  }
  std::vector<int64_t> counts;
  for (size_t i = 0; i < levels.size(); ++i) {
    const int64_t v = levels[i];
    VG_CHECK(v == static_cast<int64_t>(counts.size()) - 1 || v == static_cast<int64_t>(counts.size()), path,
             ": vargpt_gen.lvl_1L is not a non-decreasing run of levels 0, 1, ... (value ", v, " at token ", i, ")");
    if (v == static_cast<int64_t>(counts.size())) counts.push_back(0);
    ++counts.back();
  }
  for (size_t si = 0; si < counts.size(); ++si) {
    const int pn = static_cast<int>(std::lround(std::sqrt(static_cast<double>(counts[si]))));
    VG_CHECK(static_cast<int64_t>(pn) * pn == counts[si], path, ": vargpt_gen.lvl_1L level ", si, " has ", counts[si],
             " tokens, not a square");
    c.patch_nums.push_back(pn);
  }
  c.total_tokens = static_cast<int>(levels.size());
  VG_CHECK(!c.patch_nums.empty(), path, ": vargpt_gen.lvl_1L is empty");
  return c;
}

VqvaeConfig derive_vqvae(const WeightLoader& w, const VarConfig& var) {
  VqvaeConfig c;
  const std::string& path = w.checkpoint().path();
  const Shape cb = w.shape("vae_local.quantize.embedding.weight");
  VG_CHECK(cb.size() == 2, path, ": vae_local.quantize.embedding.weight has shape ", shape_string(cb));
  c.vocab = static_cast<int>(cb[0]);
  c.z_channels = static_cast<int>(cb[1]);
  VG_CHECK(c.vocab == var.vocab && c.z_channels == var.cvae, path, ": VQ-VAE codebook ", shape_string(cb),
           " does not match the VAR head (", var.vocab, " codes) and word_embed (", var.cvae, " channels)");
  const Shape out = w.shape("vae_local.decoder.conv_out.weight");
  VG_CHECK(out.size() == 4, path, ": vae_local.decoder.conv_out.weight has shape ", shape_string(out));
  c.in_channels = static_cast<int>(out[0]);
  c.ch = static_cast<int>(out[1]);
  const int levels = w.count_indexed("vae_local.decoder.up.");
  VG_CHECK(levels > 0, path, ": no vae_local.decoder.up.* tensors");
  c.dec_blocks = w.count_indexed("vae_local.decoder.up.0.block.");
  for (int i = 0; i < levels; ++i) {
    const std::string p = "vae_local.decoder.up." + std::to_string(i);
    const Shape conv2 = w.shape(p + ".block.0.conv2.weight");
    VG_CHECK(conv2.size() == 4 && conv2[0] % c.ch == 0, path, ": ", p, ".block.0.conv2.weight has shape ",
             shape_string(conv2), ", expected a multiple of ch = ", c.ch, " output channels");
    c.ch_mult.push_back(static_cast<int>(conv2[0] / c.ch));
    const int attn = w.count_indexed(p + ".attn.");
    VG_CHECK(attn == 0 || attn == c.dec_blocks, path, ": ", p, " has ", attn, " attention blocks for ", c.dec_blocks,
             " res blocks");
    c.dec_attn.push_back(attn > 0);
  }
  c.dec_mid_attn = w.has("vae_local.decoder.mid.attn_1.qkv.weight");
  c.has_encoder = w.has("vae_local.encoder.conv_in.weight");
  if (c.has_encoder) {
    VG_CHECK(w.count_indexed("vae_local.encoder.down.") == levels, path, ": VQ-VAE encoder and decoder level counts differ");
    c.enc_blocks = w.count_indexed("vae_local.encoder.down.0.block.");
    for (int i = 0; i < levels; ++i)
      c.enc_attn.push_back(w.count_indexed("vae_local.encoder.down." + std::to_string(i) + ".attn.") > 0);
    c.enc_mid_attn = w.has("vae_local.encoder.mid.attn_1.qkv.weight");
  }
  c.phi_count = w.count_indexed("vae_local.quantize.quant_resi.qresi_ls.");
  VG_CHECK(c.phi_count > 0, path, ": no vae_local.quantize.quant_resi.qresi_ls.* (partially shared phi convs); "
                                  "other quantizer layouts are not supported");
  c.phi_index = phi_index_map(c.phi_count, var.scales());
  return c;
}

}  // namespace

VargptConfig load_vargpt_config(const std::string& dir, const WeightLoader& w) {
  const std::string path = dir + "/config.json";
  const Json root = parse_json(read_text_file(path), path);
  VG_CHECK(root.is_object(), path, ": must be a JSON object");
  VargptConfig cfg;
  const Json* text = root.find("text_config");
  VG_CHECK(text && text->is_object(), path, ": no text_config object");
  cfg.llm = parse_llama(*text, path + " text_config", w);

  // Special tokens: EOS/BOS from text_config (LlamaConfig defaults 2/1 when absent).
  cfg.tokens.bos = static_cast<int>(json_int(*text, "bos_token_id", 1, path));
  const Json* eos = text->find("eos_token_id");
  if (eos && eos->is_array()) {
    for (const Json& e : eos->as_array()) {
      VG_CHECK(e.is_integer(), path, ": text_config.eos_token_id must hold integers");
      cfg.tokens.eos_all.push_back(static_cast<int>(e.as_int()));
    }
    VG_CHECK(!cfg.tokens.eos_all.empty(), path, ": text_config.eos_token_id is empty");
  } else {
    cfg.tokens.eos_all.push_back(static_cast<int>(json_int(*text, "eos_token_id", 2, path)));
  }
  cfg.tokens.eos = cfg.tokens.eos_all[0];
  cfg.tokens.image = static_cast<int>(json_int(root, "image_token_index", -1, path));
  if (const Json* special = root.find("special_tokens"); special && special->is_object()) {
    cfg.tokens.image_gen_start = static_cast<int>(json_int(*special, "image_gen_start_token_id", -1, path));
    cfg.tokens.image_gen_end = static_cast<int>(json_int(*special, "image_gen_end_token_id", -1, path));
    cfg.tokens.image_gen_pad = static_cast<int>(json_int(*special, "image_gen_pad_token_id", -1, path));
  }

  const Json* vision = root.find("vision_config");
  cfg.has_vision = vision && vision->is_object() && w.has("vision_tower.vision_model.embeddings.class_embedding");
  if (cfg.has_vision) {
    cfg.vision = parse_clip(root, *vision, path + " vision_config", w);
    cfg.projector.act = parse_activation(json_string(root, "projector_hidden_act", "gelu", path), path + " projector_hidden_act");
    VG_CHECK(cfg.tokens.image >= 0 && cfg.tokens.image < cfg.llm.vocab, path, ": image_token_index ", cfg.tokens.image,
             " is outside the vocabulary of ", cfg.llm.vocab);
  }

  cfg.has_image_gen = w.has("vargpt_gen.word_embed.weight");
  if (cfg.has_image_gen) {
    VG_CHECK(cfg.tokens.image_gen_start >= 0 && cfg.tokens.image_gen_start < cfg.llm.vocab, path,
             ": special_tokens.image_gen_start_token_id is missing or outside the vocabulary (checkpoint has VAR weights)");
    // Upstream: num_classes = image_gen_start_token_id + 1 and the null (CFG) class is that index.
    cfg.var = derive_var(w, cfg.tokens.image_gen_start + 1);
    cfg.vqvae = derive_vqvae(w, cfg.var);
  }
  return cfg;
}

}  // namespace vargpt
