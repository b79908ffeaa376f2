// diffusers' EulerDiscreteScheduler as SDXL configures it (scheduler_config.json): the sigma
// table of a beta schedule, the timesteps of a spacing rule, init_noise_sigma, scale_model_input
// and the Euler step in its x0 / derivative form. Epsilon prediction, no Karras sigmas, gamma 0.
#pragma once

#include <string>
#include <vector>

#include "../../backend/backend.h"

namespace vargpt {

struct EulerDiscreteConfig {
  int num_train_timesteps = 1000;
  double beta_start = 0.0001, beta_end = 0.02;
  std::string beta_schedule = "linear";  // "linear" or "scaled_linear"
  std::string timestep_spacing = "linspace";  // "leading", "trailing" or "linspace"
  int steps_offset = 0;
};

// Reads scheduler_config.json; throws on settings this scheduler does not implement (another
// prediction type, Karras sigmas, trained betas, log interpolation).
EulerDiscreteConfig read_euler_discrete_config(const std::string& path);

struct EulerSchedule {
  std::vector<float> timesteps;  // [steps], as fed to the denoiser
  std::vector<float> sigmas;     // [steps + 1], ending with 0
  float init_noise_sigma = 1.0f;
};

// The tables of set_timesteps(steps), rounded as the float32 reference computes them.
EulerSchedule euler_schedule(const EulerDiscreteConfig& config, int steps);

// scale_model_input: y = x / sqrt(sigma^2 + 1) (as a multiply by the f32 reciprocal).
void euler_scale_model_input(Backend& backend, const Tensor& x, float sigma, const Tensor& y);

// One step in place on x: x0 = x - sigma·eps; d = (x - x0) / sigma; x += d·(sigma_next - sigma).
void euler_step(Backend& backend, const Tensor& x, const Tensor& eps, float sigma, float sigma_next);

}  // namespace vargpt
