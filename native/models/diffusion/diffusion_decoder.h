// A diffusers text-to-image decoder folder as BLIP3-o ships it (diffusion-decoder/:
// model_index.json, unet/, vae/, scheduler/): the SDXL-layout UNet, the EulerDiscrete scheduler and
// the AutoencoderKL decoder, and the classifier-free-guided sampling loop that joins them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../ae/autoencoder_kl.h"
#include "../common/trace.h"
#include "euler_discrete.h"
#include "unet2d.h"

namespace vargpt {

// The weights file of a diffusers component folder: diffusion_pytorch_model.safetensors, else its
// bf16 or fp16 variant.
std::string diffusers_weights_file(const std::string& component_dir);

struct DiffusionSampleRequest {
  Tensor context;                // [2, L, cross_attention_dim]: row 0 conditional, row 1 unconditional
  Tensor text_embeds;            // [2, text_embeds_dim] (text_time UNets)
  std::vector<double> time_ids;  // 2 x time ids, row-major
  Tensor noise;                  // [C, h, w] standard normal draw
  int steps = 50;
  float guidance = 3.0f;
  // Called after each step with (step index, steps, denoised): with want_denoised, `denoised` is
  // the step's estimate of the clean latents x - sigma·eps (a preview's input), else null. It may
  // throw Cancelled.
  std::function<void(int, int, const Tensor* denoised)> on_step;
  bool want_denoised = false;
  // Polled inside each UNet step, between its blocks (it throws Cancelled).
  std::function<bool()> cancelled;
};

class DiffusionDecoder {
 public:
  using Progress = std::function<void(uint64_t loaded, uint64_t total)>;
  // `progress(loaded, total)` counts the UNet's and the VAE's tensor bytes; `cancelled` is polled
  // between tensors (it throws Cancelled).
  DiffusionDecoder(const std::string& dir, std::shared_ptr<Backend> backend, const Progress& progress = nullptr,
                   const std::function<bool()>& cancelled = nullptr);
  // The tensor bytes the constructor loads (0 when a weights file is missing: the constructor
  // then says which).
  static uint64_t weight_bytes(const std::string& dir);
  Backend& backend() { return *backend_; }
  UNet2D& unet() { return *unet_; }
  AutoencoderKlDecoder& vae() { return *vae_; }
  const EulerDiscreteConfig& scheduler() const { return scheduler_; }

  // The Euler loop with classifier-free guidance (uncond + g·(cond − uncond)); returns the final
  // latents [C, h, w]. Traces unet.timesteps, unet.sigmas, unet.latents [steps + 1, ...],
  // unet.model_input, unet.eps_cond, unet.eps_uncond, unet.eps_guided.
  Tensor sample(const DiffusionSampleRequest& request, TraceSink* trace = nullptr);

 private:
  std::shared_ptr<Backend> backend_;
  EulerDiscreteConfig scheduler_;
  std::unique_ptr<UNet2D> unet_;
  std::unique_ptr<AutoencoderKlDecoder> vae_;
};

}  // namespace vargpt
