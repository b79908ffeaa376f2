// Rectified-flow sampling as diffusers' FlowMatchEulerDiscreteScheduler runs it with custom sigmas
// linspace(1, 1/N, N) (BLIP3-o's stage 1), and the classifier-free-guided Euler loop over it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "../common/trace.h"

namespace vargpt {

struct FlowMatchSchedule {
  std::vector<float> sigmas;      // N + 1, the last 0
  std::vector<float> timesteps;   // N: sigma * train_timesteps in f32
  std::vector<int64_t> t_int;     // N: the timesteps truncated, as the model receives them
  int steps() const { return static_cast<int>(timesteps.size()); }
};

// sigma_i = f32(linspace(1, 1/N, N)[i]) in f64, then shift * s / (1 + (shift - 1) s) in f32;
// shift and train_timesteps come from the scheduler's config.
FlowMatchSchedule flow_match_schedule(int steps, double shift, int train_timesteps);

// One velocity evaluation on the guidance batch: x2 [2, ...] (both rows the current latent),
// t the integer timestep, v2 [2, ...] receives row 0 unconditional, row 1 conditional.
using FlowVelocity = std::function<void(const Tensor& x2, int64_t t, const Tensor& v2)>;

// Runs every step from x (the initial noise, updated in place to the final latent):
// v = v_u + guidance (v_c - v_u), x <- x + (sigma_{i+1} - sigma_i) v, all in f32. Traces
// flow.sigmas, flow.timesteps, flow.t_int, flow.latents [N + 1, ...] (0 = noise),
// flow.v_uncond, flow.v_cond and flow.v_guided [N, ...]. `cancelled` is polled between steps;
// `on_step(i, N)` runs after step i (it may throw Cancelled).
void flow_match_sample(Backend& backend, const FlowMatchSchedule& schedule, float guidance, const Tensor& x,
                       const FlowVelocity& velocity, TraceSink* trace = nullptr,
                       const std::function<bool()>& cancelled = nullptr,
                       const std::function<void(int, int)>& on_step = nullptr);

}  // namespace vargpt
