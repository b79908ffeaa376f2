#include "vargpt_v1_config.h"

#include <cmath>

#include "../../core/error.h"
#include "../common/config_json.h"

namespace vargpt {

namespace {

ClipConfig parse_clip(const Json& root, const Json& vision, const std::string& what, const WeightLoader& w) {
  ClipConfig c;
  c.hidden = config_positive(vision, "hidden_size", -1, what);
  c.layers = config_positive(vision, "num_hidden_layers", -1, what);
  c.heads = config_positive(vision, "num_attention_heads", -1, what);
  c.intermediate = config_positive(vision, "intermediate_size", -1, what);
  c.image_size = config_positive(vision, "image_size", -1, what);
  c.patch_size = config_positive(vision, "patch_size", -1, what);
  c.channels = config_positive(vision, "num_channels", 3, what);
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
  const int ch = static_cast<int>(out[1]);
  c.decoder = derive_conv_tower(w, "vae_local.decoder.", true, ch);
  c.decoder.in_channels = c.z_channels;
  c.decoder.out_channels = c.in_channels;
  c.has_encoder = w.has("vae_local.encoder.conv_in.weight");
  if (c.has_encoder) {
    c.encoder = derive_conv_tower(w, "vae_local.encoder.", false, ch);
    VG_CHECK(c.encoder.ch_mult.size() == c.decoder.ch_mult.size(), path,
             ": VQ-VAE encoder and decoder level counts differ");
    c.encoder.in_channels = c.in_channels;
    c.encoder.out_channels = c.z_channels;
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
  const Json root = read_config_json(dir);
  VargptConfig cfg;
  const Json* text = root.find("text_config");
  VG_CHECK(text && text->is_object(), path, ": no text_config object");
  cfg.llm = parse_decoder_config(*text, path + " text_config", w, "language_model.");

  // Special tokens: EOS/BOS from text_config (LlamaConfig defaults 2/1 when absent).
  cfg.tokens.bos = static_cast<int>(json_int(*text, "bos_token_id", 1, path));
  cfg.tokens.eos_all = config_ids(*text, "eos_token_id", path + " text_config");
  if (cfg.tokens.eos_all.empty()) cfg.tokens.eos_all.push_back(2);
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
    cfg.projector_act = parse_activation(json_string(root, "projector_hidden_act", "gelu", path), path + " projector_hidden_act");
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
