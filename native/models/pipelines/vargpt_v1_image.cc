// Text-to-image branch (spec §4): after <|image_gen_start|> the start token is fed to the LLM, the
// token X it predicts is recorded but never fed, and the VAR scales run with the LLM in the loop:
//   VAR-width token map -> image_gen_projector -> LLM (same KV cache, causal, positions P+1 ...)
//   -> final-norm hidden [cond] + N(0,1) noise [uncond] -> image_gen_projector_out -> VAR blocks
//   -> head -> CFG -> top-k/top-p sample -> f̂ += φ(bicubic(codebook[idx])) -> next map (area).
#include <algorithm>
#include <cstring>

#include "../../core/rng.h"
#include "vargpt_v1_run.h"

namespace vargpt {

namespace {
// Previews decode f̂ area-downsampled to at most this many latent cells per side (so at most a
// 64x64 image for a 16x VQ-VAE): about 1/16 of a full decode, cheap next to one VAR scale.
constexpr int kPreviewLatent = 4;
}  // namespace

RgbImage VargptV1::Run::preview(const Tensor& f_hat, int si) {
  VqVae& vq = *m_.vqvae_;
  const int64_t Z = vq.config().z_channels;
  const int64_t n = std::min<int64_t>(kPreviewLatent, m_.config_.var.patch_nums[si]);
  Tensor small = b_.empty(DType::F32, {Z, n, n});
  b_.resize_area(f_hat, small);
  const int64_t S = n * vq.config().downsample();
  Tensor image = b_.empty(DType::F32, {vq.config().in_channels, S, S});
  vq.decode(small, image);
  return to_rgb8(b_.to_host(image));
}

void VargptV1::Run::draw_image() {
  const VargptConfig& c = m_.config_;
  const VarConfig& vc = c.var;
  DecoderLlm& llm = *m_.llm_;
  VarDecoder& var = *m_.var_;
  VqVae& vq = *m_.vqvae_;
  const VarSampling& im = image_;
  const int64_t H = c.llm.hidden, C = vc.width, V = vc.vocab, Z = vc.cvae;
  const int SN = vc.scales();

  VG_CHECK(req_.has_image_options, "generate: the model started an image but the request has no image options");
  VG_CHECK(cache_.length() + 1 + vc.total_tokens <= c.llm.max_positions, "generate: drawing an image needs ",
           1 + vc.total_tokens, " positions after the ", cache_.length(), " already used; the model has ",
           c.llm.max_positions, " (max_position_embeddings)");
  // (a) the start token goes through the LLM normally; X = argmax of its logits is recorded only.
  {
    Profiler::Stage stage(prof_, "imageLlm");
    const Tensor logits = step(c.tokens.image_gen_start);
    Tensor idx = b_.empty(DType::I32, {1});
    b_.argmax(logits, idx);
    res_.token_after_image_start = b_.to_host(idx).data<int32_t>()[0];
    trace_.add("startTokenLogits", logits.view({c.llm.vocab}));
  }
  emit(res_.token_after_image_start);

  // (b) next-scale prediction.
  VarScaleCache scales = var.new_cache();
  const int P = vq.latent_size();
  Tensor f_hat = b_.empty(DType::F32, {Z, P, P});
  b_.fill(f_hat, 0.0f);
  Tensor tok_in = b_.empty(DType::F32, {1, C});  // VAR-width input map of the current scale
  var.sos(tok_in);
  trace_.add("sos", tok_in);

  for (int si = 0; si < SN; ++si) {
    check_cancel();
    const int pn = vc.patch_nums[si];
    const int64_t l = static_cast<int64_t>(pn) * pn;
    const std::string key = "s" + std::to_string(si) + ".";

    Tensor rows = b_.empty(DType::F32, {2, l, H});  // [LLM hidden (cond); noise (uncond)]
    {
      Profiler::Stage stage(prof_, "imageLlm");
      Tensor x_llm = b_.empty(DType::F32, {l, H});
      m_.gen_in_->run(tok_in, x_llm);
      llm.forward(x_llm, Positions::sequential(cache_.length(), static_cast<int>(l)), &cache_, rows.select(0));
      trace_.add(key + "llmInput", x_llm);
      trace_.add(key + "llmHidden", rows.select(0));
    }
    if (im.replay_noise) {
      b_.copy(b_.upload((*im.replay_noise)[si].view({l, H})), rows.select(1));
    } else {
      b_.randn(rows.select(1), im.seed, rng_stream(RngPurpose::CfgNoise, static_cast<uint32_t>(si)));
    }
    trace_.add(key + "noise", rows.select(1));

    Tensor logits = b_.empty(DType::F32, {2, l, V});
    {
      Profiler::Stage stage(prof_, "varBlocks");
      Tensor x = b_.empty(DType::F32, {2, l, C});
      m_.gen_out_->run(rows, x);
      trace_.add(key + "varInput", x);
      std::vector<Tensor> block_out;
      VarDecoder::BlockHook hook;
      if (trace_.enabled())
        hook = [&](int, const Tensor& t) {
          Tensor keep = b_.empty(DType::F32, t.shape());
          b_.copy(t, keep);
          block_out.push_back(keep);
        };
      var.forward(x, scales, logits, hook);
      trace_.stack(key + "varBlockOut", block_out);
    }

    Tensor idx = b_.empty(DType::I32, {l});
    {
      Profiler::Stage stage(prof_, "sampling");
      // CFG on raw logits with the linear ramp t = cfg * si / (SN - 1) (computed in double as upstream).
      const double t = SN > 1 ? static_cast<double>(im.cfg) * si / (SN - 1) : 0.0;
      Tensor guided = b_.empty(DType::F32, {l, V});
      b_.axpby(static_cast<float>(1.0 + t), logits.select(0), static_cast<float>(-t), logits.select(1), guided);
      Tensor kept = b_.empty(DType::I32, {l});
      SamplingParams sp;
      sp.top_k = std::min(im.top_k, vc.vocab);
      sp.top_p = im.top_p;
      sp.temperature = 1.0f;
      sp.seed = im.seed;
      sp.stream = rng_stream(RngPurpose::ImageSampling, static_cast<uint32_t>(si));
      b_.sample(guided, sp, idx, &kept);
      if (im.replay_indices) b_.copy(b_.upload((*im.replay_indices)[si].view({l})), idx);
      if (trace_.enabled()) {
        trace_.add(key + "logitsCond", logits.select(0));
        trace_.add(key + "logitsUncond", logits.select(1));
        trace_.add(key + "logits", guided);
        trace_.add(key + "kept", kept);
        trace_.add(key + "indices", idx);
      }
    }

    {
      Profiler::Stage stage(prof_, "fhat");
      Tensor h = b_.empty(DType::F32, {Z, pn, pn});
      vq.lookup(idx, pn, h);
      vq.accumulate(si, h, f_hat);
      trace_.add(key + "fHat", f_hat);
      if (si + 1 < SN) {
        const int next = vc.patch_nums[si + 1];
        const int64_t nl = static_cast<int64_t>(next) * next;
        Tensor map = b_.empty(DType::F32, {Z, next, next});
        b_.resize_area(f_hat, map);
        trace_.add(key + "nextMap", map);
        Tensor map_rows = b_.empty(DType::F32, {nl, Z});
        b_.transpose(map.view({Z, nl}), map_rows);
        tok_in = b_.empty(DType::F32, {nl, C});
        var.embed_scale(si + 1, map_rows, tok_in);
        trace_.add("s" + std::to_string(si + 1) + ".varTokenEmbed", tok_in);
      }
    }
    if (req_.on_image_progress && si + 1 < SN) {
      Profiler::Stage stage(prof_, "preview");
      req_.on_image_progress("scale", si, SN, preview(f_hat, si));
    }
  }

  trace_.add("fHat", f_hat);
  Tensor image = b_.empty(DType::F32, {vq.config().in_channels, vq.image_size(), vq.image_size()});
  {
    Profiler::Stage stage(prof_, "vqvaeDecode");
    vq.decode(f_hat, image);
  }
  const Tensor host = b_.to_host(image);
  if (trace_.enabled()) trace_.add("image", clamp_image(host));
  res_.image = to_rgb8(host);
  res_.has_image = true;
  if (req_.on_image_progress) req_.on_image_progress("scale", SN - 1, SN, res_.image);
}

}  // namespace vargpt
