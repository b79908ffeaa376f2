#include "flow_match.h"

#include <cmath>

#include "../../core/error.h"

namespace vargpt {

FlowMatchSchedule flow_match_schedule(int steps, double shift, int train_timesteps) {
  VG_CHECK(steps >= 1 && steps <= 100000, "flow schedule: steps must be 1 to 100000, got ", steps);
  VG_CHECK(shift > 0.0 && std::isfinite(shift), "flow schedule: shift must be a positive number, got ", shift);
  VG_CHECK(train_timesteps >= 1, "flow schedule: num_train_timesteps must be positive, got ", train_timesteps);
  FlowMatchSchedule s;
  const double last = 1.0 / steps;
  const float sh = static_cast<float>(shift), sh1 = static_cast<float>(shift - 1.0);
  for (int i = 0; i < steps; ++i) {
    // numpy.linspace: start + i * step, the end point exact.
    const double lin = i == steps - 1 ? last : 1.0 + i * ((last - 1.0) / (steps - 1));
    const float sigma = static_cast<float>(lin);
    const float shifted = (sh * sigma) / (1.0f + sh1 * sigma);
    s.sigmas.push_back(shifted);
    const float t = shifted * static_cast<float>(train_timesteps);
    s.timesteps.push_back(t);
    s.t_int.push_back(static_cast<int64_t>(t));
  }
  s.sigmas.push_back(0.0f);
  return s;
}

void flow_match_sample(Backend& b, const FlowMatchSchedule& schedule, float guidance, const Tensor& x,
                       const FlowVelocity& velocity, TraceSink* trace, const std::function<bool()>& cancelled,
                       const std::function<void(int, int)>& on_step) {
  VG_CHECK(x.defined() && x.dtype() == DType::F32 && x.is_contiguous() && x.rank() >= 1, "flow sampler: latent ",
           x.defined() ? x.describe() : std::string("(none)"), ", expected a contiguous f32 tensor");
  const int n = schedule.steps();
  VG_CHECK(n >= 1 && schedule.sigmas.size() == static_cast<size_t>(n) + 1 && schedule.t_int.size() == static_cast<size_t>(n),
           "flow sampler: a schedule of ", n, " steps with ", schedule.sigmas.size(), " sigmas");
  Shape pair = x.shape();
  pair.insert(pair.begin(), 2);
  Tensor x2 = b.empty(DType::F32, pair);
  Tensor v2 = b.empty(DType::F32, pair);
  Tensor diff = b.empty(DType::F32, x.shape());
  Tensor guided = b.empty(DType::F32, x.shape());
  std::vector<Tensor> latents, v_u, v_c, v_g;
  if (trace) {
    auto host_vec = [](DType dt, const void* data, size_t count) {
      return Tensor::from_host(dt, {static_cast<int64_t>(count)}, data);
    };
    trace->add("flow.sigmas", host_vec(DType::F32, schedule.sigmas.data(), schedule.sigmas.size()));
    trace->add("flow.timesteps", host_vec(DType::F32, schedule.timesteps.data(), schedule.timesteps.size()));
    trace->add("flow.t_int", host_vec(DType::I64, schedule.t_int.data(), schedule.t_int.size()));
    latents.push_back(b.to_host(x));
  }
  for (int i = 0; i < n; ++i) {
    if (cancelled && cancelled()) throw Cancelled();
    b.copy(x, x2.select(0));
    b.copy(x, x2.select(1));
    velocity(x2, schedule.t_int[i], v2);
    const Tensor vu = v2.select(0), vc = v2.select(1);
    b.axpby(1.0f, vc, -1.0f, vu, diff);
    b.axpby(1.0f, vu, guidance, diff, guided);
    // The step size is the f32 difference of the two sigmas, as the scheduler subtracts them.
    const float dt = schedule.sigmas[i + 1] - schedule.sigmas[i];
    b.axpby(1.0f, x, dt, guided, x);
    if (trace) {
      v_u.push_back(b.to_host(vu));
      v_c.push_back(b.to_host(vc));
      v_g.push_back(b.to_host(guided));
      latents.push_back(b.to_host(x));
    }
    if (on_step) on_step(i, n);
  }
  if (trace) {
    trace->stack("flow.latents", latents);
    trace->stack("flow.v_uncond", v_u);
    trace->stack("flow.v_cond", v_c);
    trace->stack("flow.v_guided", v_g);
  }
}

}  // namespace vargpt
