// Scalar element functions written so the compiler can vectorise loops over them (no calls into
// libm in the hot ones). exp_approx is accurate to about 2 ulp over the f32 range; the
// activations built on it (and tanh_approx) stay within a few ulp of the libm formulas the reference uses.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../backend.h"

namespace vargpt::cpu {

// exp(x) by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial (Cephes expf).
// Below -87.3 the result underflows gradually to 0 (exp(-inf) = 0 exactly, which masked
// attention scores rely on); the GEMM kernel files hold SIMD twins of this function.
inline float exp_approx(float x) {
  // Comparisons rather than std::fmin/fmax, which SSE2 code can only call out of line; a NaN
  // passes through both and propagates to the result.
  x = x < -104.0f ? -104.0f : x;
  x = x > 88.7f ? 88.7f : x;
  // Round to nearest with the 1.5*2^23 trick rather than nearbyint, which SSE2 cannot vectorise.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n as two factors 2^(n/2) 2^(n - n/2), each a normal float for n in [-150, 128]: the product
  // underflows or overflows correctly through the multiplies.
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t half = ni / 2;
  uint32_t b1 = static_cast<uint32_t>(half + 127) << 23, b2 = static_cast<uint32_t>(ni - half + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  return p * s1 * s2;
}

inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

inline float silu(float x) { return x * sigmoid_approx(x); }

// GELU tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), with
// 1 + tanh(u) = 2 sigmoid(2u), which keeps the tails exact in relative terms.
inline float gelu_tanh(float x) {
  const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return x * sigmoid_approx(2.0f * u);
}

// Exact GELU with erf from libm (rare in VARGPT: only some ViTs use it, so libm's speed is fine).
inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f)); }

inline float quick_gelu(float x) { return x * sigmoid_approx(1.702f * x); }

// tanh as Cephes tanhf: an odd polynomial below |x| = 0.625 (relative error ~1 ulp where
// 1 - 2 / (e^2x + 1) would cancel), 1 - 2 / (e^2|x| + 1) with the sign of x above; within 3 ulp.
// Both branches are evaluated and one selected, so loops over it vectorise; NaN propagates.
constexpr float kTanhSmall = 0.625f;
inline float tanh_approx(float x) {
  const float a = x < 0.0f ? -x : x;
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float large = 1.0f - 2.0f / (exp_approx(2.0f * a) + 1.0f);
  return a < kTanhSmall ? small : (x < 0.0f ? -large : large);
}

inline float apply_activation(Activation act, float x) {
  switch (act) {
    case Activation::None: return x;
    case Activation::SiLU: return silu(x);
    case Activation::GeluErf: return gelu_erf(x);
    case Activation::GeluTanh: return gelu_tanh(x);
    case Activation::QuickGelu: return quick_gelu(x);
    case Activation::Tanh: return tanh_approx(x);
  }
  return x;
}

// y[i] = act(x[i]) for a dense run; may run in place. The switch sits outside the loop so each
// case vectorises.
inline void activation_run(Activation act, const float* x, float* y, int64_t n) {
  switch (act) {
    case Activation::None:
      if (x != y) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case Activation::SiLU:
      for (int64_t i = 0; i < n; ++i) y[i] = silu(x[i]);
      return;
    case Activation::GeluErf:
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_erf(x[i]);
      return;
    case Activation::GeluTanh:
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_tanh(x[i]);
      return;
    case Activation::QuickGelu:
      for (int64_t i = 0; i < n; ++i) y[i] = quick_gelu(x[i]);
      return;
    case Activation::Tanh:
      for (int64_t i = 0; i < n; ++i) y[i] = tanh_approx(x[i]);
      return;
  }
}

}  // namespace vargpt::cpu
