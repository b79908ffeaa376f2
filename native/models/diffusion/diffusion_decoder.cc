#include "diffusion_decoder.h"

#include <sys/stat.h>

#include "../../core/error.h"
#include "../../core/safetensors.h"

namespace vargpt {

namespace {
bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
}  // namespace

std::string diffusers_weights_file(const std::string& dir) {
  for (const char* name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bf16.safetensors",
                           "diffusion_pytorch_model.fp16.safetensors"}) {
    const std::string path = dir + "/" + name;
    if (is_file(path)) return path;
  }
  fail(dir, ": no diffusion_pytorch_model[.bf16|.fp16].safetensors");
}

uint64_t DiffusionDecoder::weight_bytes(const std::string& dir) {
  uint64_t total = 0;
  try {
    for (const char* part : {"/unet", "/vae"}) {
      const auto checkpoint = SafetensorsCheckpoint::open(diffusers_weights_file(dir + part));
      for (const auto& name : checkpoint->names()) {
        const TensorInfo& info = checkpoint->info(name);
        total += info.end - info.begin;
      }
    }
  } catch (const std::exception&) {
    return 0;
  }
  return total;
}

DiffusionDecoder::DiffusionDecoder(const std::string& dir, std::shared_ptr<Backend> backend, const Progress& progress,
                                   const std::function<bool()>& cancelled)
    : backend_(std::move(backend)) {
  VG_CHECK(is_file(dir + "/model_index.json"), dir, ": not a diffusers pipeline folder (no model_index.json)");
  scheduler_ = read_euler_discrete_config(dir + "/scheduler/scheduler_config.json");
  WeightLoader unet(SafetensorsCheckpoint::open(diffusers_weights_file(dir + "/unet")), *backend_, nullptr, cancelled);
  WeightLoader vae(SafetensorsCheckpoint::open(diffusers_weights_file(dir + "/vae")), *backend_, nullptr, cancelled);
  const uint64_t unet_bytes = unet.total_bytes(), total = unet_bytes + vae.total_bytes();
  if (progress) {
    // Each loader reports its own bytes; the caller sees both as one count.
    unet.set_progress([&](uint64_t n, uint64_t) { progress(n, total); });
    vae.set_progress([&](uint64_t n, uint64_t) { progress(unet_bytes + n, total); });
  }
  unet_ = std::make_unique<UNet2D>(read_unet2d_config(dir + "/unet", unet), unet);
  vae_ = std::make_unique<AutoencoderKlDecoder>(read_autoencoder_kl_config(dir + "/vae", vae), vae);
  backend_->synchronize();
  unet.finish();
  vae.finish();
}

Tensor DiffusionDecoder::sample(const DiffusionSampleRequest& r, TraceSink* trace) {
  Backend& b = *backend_;
  const UNet2DConfig& uc = unet_->config();
  VG_CHECK(r.noise.rank() == 3 && r.noise.dim(0) == uc.in_channels && r.noise.dtype() == DType::F32,
           "diffusion sample: noise ", r.noise.describe(), ", expected f32 [", uc.in_channels, ", h, w]");
  VG_CHECK(r.context.rank() == 3 && r.context.dim(0) == 2, "diffusion sample: context ", r.context.describe(),
           ", expected [2 (cond, uncond), L, ", uc.cross_attention_dim, "]");
  const EulerSchedule s = euler_schedule(scheduler_, r.steps);
  if (trace) {
    trace->add("unet.timesteps", Tensor::from_host(DType::F32, {r.steps}, s.timesteps.data()));
    trace->add("unet.sigmas", Tensor::from_host(DType::F32, {r.steps + 1}, s.sigmas.data()));
    trace->add("unet.init_noise_sigma", Tensor::from_host(DType::F32, {1}, &s.init_noise_sigma));
  }
  const Shape shape = r.noise.shape();
  const int64_t C = shape[0], h = shape[1], w = shape[2];
  Tensor x = b.empty(DType::F32, shape);
  b.axpby(s.init_noise_sigma, r.noise, 0.0f, r.noise, x);
  std::vector<Tensor> latents{trace ? b.to_host(x) : Tensor()}, inputs, cond, uncond, guided;
  Tensor batch = b.empty(DType::F32, {2, C, h, w});
  Tensor diff = b.empty(DType::F32, shape), g = b.empty(DType::F32, shape);
  const UNet2DContextCache context = unet_->prepare_context(r.context);
  for (int i = 0; i < r.steps; ++i) {
    const float sigma = s.sigmas[i];
    euler_scale_model_input(b, x, sigma, batch.select(0));
    b.copy(batch.select(0), batch.select(1));
    UNet2DInputs in;
    in.sample = batch;
    in.timestep = {s.timesteps[i]};
    in.context = r.context;
    in.text_embeds = r.text_embeds;
    in.time_ids = r.time_ids;
    in.cancelled = r.cancelled;
    const Tensor eps = unet_->forward(in, nullptr, &context);
    const Tensor ec = eps.select(0), eu = eps.select(1);
    b.axpby(1.0f, ec, -1.0f, eu, diff);
    b.axpby(1.0f, eu, r.guidance, diff, g);
    Tensor denoised;
    if (r.on_step && r.want_denoised) {
      denoised = b.empty(DType::F32, shape);
      b.axpby(1.0f, x, -sigma, g, denoised);
    }
    euler_step(b, x, g, sigma, s.sigmas[i + 1]);
    if (trace) {
      inputs.push_back(b.to_host(batch.select(0)));
      cond.push_back(b.to_host(ec));
      uncond.push_back(b.to_host(eu));
      guided.push_back(b.to_host(g));
      latents.push_back(b.to_host(x));
    }
    if (r.on_step) r.on_step(i, r.steps, denoised.defined() ? &denoised : nullptr);
  }
  if (trace) {
    trace->stack("unet.latents", latents);
    trace->stack("unet.model_input", inputs);
    trace->stack("unet.eps_cond", cond);
    trace->stack("unet.eps_uncond", uncond);
    trace->stack("unet.eps_guided", guided);
  }
  return x;
}

}  // namespace vargpt
