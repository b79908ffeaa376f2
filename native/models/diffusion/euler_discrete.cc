#include "euler_discrete.h"

#include <algorithm>
#include <cmath>

#include "../../core/error.h"
#include "../../core/json.h"
#include "../../core/mapped_file.h"

namespace vargpt {

EulerDiscreteConfig read_euler_discrete_config(const std::string& path) {
  const Json cfg = parse_json(read_text_file(path), path);
  VG_CHECK(cfg.is_object(), path, ": must be a JSON object");
  EulerDiscreteConfig c;
  const int64_t n = json_int(cfg, "num_train_timesteps", 1000, path);
  VG_CHECK(n >= 2 && n <= 1000000, path, ": num_train_timesteps = ", n, " is out of range");
  c.num_train_timesteps = static_cast<int>(n);
  c.beta_start = json_number(cfg, "beta_start", c.beta_start, path);
  c.beta_end = json_number(cfg, "beta_end", c.beta_end, path);
  VG_CHECK(c.beta_start > 0 && c.beta_end > 0 && c.beta_start < 1 && c.beta_end < 1, path, ": beta_start ",
           c.beta_start, " and beta_end ", c.beta_end, " must lie in (0, 1)");
  c.beta_schedule = json_string(cfg, "beta_schedule", c.beta_schedule, path);
  VG_CHECK(c.beta_schedule == "linear" || c.beta_schedule == "scaled_linear", path, ": beta_schedule \"",
           c.beta_schedule, "\" is not supported (linear, scaled_linear)");
  c.timestep_spacing = json_string(cfg, "timestep_spacing", c.timestep_spacing, path);
  VG_CHECK(c.timestep_spacing == "leading" || c.timestep_spacing == "trailing" || c.timestep_spacing == "linspace",
           path, ": timestep_spacing \"", c.timestep_spacing, "\" is not supported (leading, trailing, linspace)");
  const int64_t offset = json_int(cfg, "steps_offset", 0, path);
  VG_CHECK(offset >= 0 && offset < n, path, ": steps_offset = ", offset, " is out of range");
  c.steps_offset = static_cast<int>(offset);
  const std::string prediction = json_string(cfg, "prediction_type", "epsilon", path);
  VG_CHECK(prediction == "epsilon", path, ": prediction_type \"", prediction, "\" is not supported (epsilon)");
  VG_CHECK(!json_bool(cfg, "use_karras_sigmas", false, path), path, ": use_karras_sigmas is not supported");
  const std::string interp = json_string(cfg, "interpolation_type", "linear", path);
  VG_CHECK(interp == "linear", path, ": interpolation_type \"", interp, "\" is not supported (linear)");
  const Json* trained = cfg.find("trained_betas");
  VG_CHECK(trained == nullptr || trained->is_null(), path, ": trained_betas is not supported");
  return c;
}

namespace {

// torch.linspace(start, end, n, dtype=float32): f32 step, the first half counted from start, the
// second from end.
std::vector<float> linspace_f32(float start, float end, int n) {
  std::vector<float> v(n);
  const float step = (end - start) / static_cast<float>(n - 1);
  const int halfway = n / 2;
  for (int i = 0; i < n; ++i) {
    if (i < halfway) {
      const float t = step * static_cast<float>(i);
      v[i] = start + t;
    } else {
      const float t = step * static_cast<float>(n - 1 - i);
      v[i] = end - t;
    }
  }
  return v;
}

}  // namespace

EulerSchedule euler_schedule(const EulerDiscreteConfig& c, int steps) {
  const int N = c.num_train_timesteps;
  VG_CHECK(steps >= 1 && steps <= N, "Euler schedule: ", steps, " steps, expected 1 to ", N);
  std::vector<float> betas;
  if (c.beta_schedule == "scaled_linear") {
    betas = linspace_f32(static_cast<float>(std::sqrt(c.beta_start)), static_cast<float>(std::sqrt(c.beta_end)), N);
    for (float& b : betas) b = b * b;
  } else {
    betas = linspace_f32(static_cast<float>(c.beta_start), static_cast<float>(c.beta_end), N);
  }
  // torch.cumprod accumulates float32 products in double and rounds each partial product.
  std::vector<float> train_sigmas(N);
  double acc = 1.0;
  for (int i = 0; i < N; ++i) {
    const float alpha = 1.0f - betas[i];
    acc *= alpha;
    const float acp = static_cast<float>(acc);
    const float ratio = (1.0f - acp) / acp;
    train_sigmas[i] = std::sqrt(ratio);
  }
  EulerSchedule s;
  std::vector<double> t(steps);
  if (c.timestep_spacing == "leading") {
    const int ratio = N / steps;
    for (int i = 0; i < steps; ++i) t[i] = static_cast<double>((steps - 1 - i) * ratio + c.steps_offset);
  } else if (c.timestep_spacing == "trailing") {
    const double ratio = static_cast<double>(N) / steps;
    for (int i = 0; i < steps; ++i) t[i] = std::round(N - i * ratio) - 1;
  } else {
    for (int i = 0; i < steps; ++i)
      t[i] = steps == 1 ? N - 1.0 : (N - 1.0) - (N - 1.0) * i / (steps - 1.0);
  }
  for (int i = 0; i < steps; ++i) {
    // np.interp over the integer grid, then float32.
    const double x = std::clamp(t[i], 0.0, N - 1.0);
    const int j = std::min(static_cast<int>(std::floor(x)), N - 2);
    const double frac = x - j;
    const double sigma =
        frac == 0.0 ? train_sigmas[j]
                    : train_sigmas[j] + (static_cast<double>(train_sigmas[j + 1]) - train_sigmas[j]) * frac;
    s.timesteps.push_back(static_cast<float>(t[i]));
    s.sigmas.push_back(static_cast<float>(sigma));
  }
  s.sigmas.push_back(0.0f);
  const float max_sigma = *std::max_element(s.sigmas.begin(), s.sigmas.end());
  if (c.timestep_spacing == "linspace" || c.timestep_spacing == "trailing") {
    s.init_noise_sigma = max_sigma;
  } else {
    const float sq = max_sigma * max_sigma + 1.0f;
    s.init_noise_sigma = std::sqrt(sq);
  }
  return s;
}

void euler_scale_model_input(Backend& b, const Tensor& x, float sigma, const Tensor& y) {
  const float sq = sigma * sigma + 1.0f;
  const float denom = std::sqrt(sq);
  b.axpby(1.0f / denom, x, 0.0f, x, y);
}

void euler_step(Backend& b, const Tensor& x, const Tensor& eps, float sigma, float sigma_next) {
  VG_CHECK(sigma > 0, "Euler step: sigma = ", sigma, " must be positive");
  Tensor x0 = b.empty(DType::F32, x.shape());
  b.axpby(1.0f, x, -sigma, eps, x0);          // x0 = x - sigma·eps
  b.axpby(1.0f, x, -1.0f, x0, x0);            // x - x0
  const float dt = sigma_next - sigma;
  b.axpby(1.0f, x, dt / sigma, x0, x);       // x + (x - x0)/sigma · dt
}

}  // namespace vargpt
