#include "quantize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "error.h"
#include "thread_pool.h"

namespace vargpt {

float quantize_q8_row(const float* x, int64_t K, int8_t* q) {
  // Written so the compiler vectorizes both passes on the baseline instruction set: no early exit,
  // no libm call. Each decode step quantizes every linear layer's input row; with nearbyint (a
  // call per element where SSE4.1 is not assumed) this took a tenth of an int8 decode step.
  float amax = 0;
  int non_finite = 0;
  for (int64_t k = 0; k < K; ++k) {
    const float a = std::fabs(x[k]);
    non_finite |= !(a <= std::numeric_limits<float>::max());
    amax = a > amax ? a : amax;
  }
  if (non_finite != 0 || !(amax > 0)) {
    std::fill(q, q + std::max<int64_t>(K, 0), int8_t{0});
    return non_finite == 0 ? 0.0f : std::nanf("");
  }
  const float inv = 127.0f / amax;
  // Round half to even, as nearbyint does in the default rounding mode: adding and subtracting
  // 1.5 · 2^23 leaves v rounded to an integer for |v| < 2^22 (here |v| <= 127 and a rounding).
  constexpr float kRound = 12582912.0f;
  for (int64_t k = 0; k < K; ++k) {
    const float r = (x[k] * inv + kRound) - kRound;
    q[k] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, r)));
  }
  return amax / 127.0f;
}

void quantize_q8_rows(DType dtype, const void* src, int64_t N, int64_t K, int64_t ld, int8_t* q, float* scale,
                      float* sum) {
  VG_CHECK(dtype_is_float(dtype), "quantize_q8: weights must be f32, bf16 or f16, got ", dtype_name(dtype));
  const size_t item = dtype_size(dtype);
  std::atomic<int64_t> bad{-1};  // a row that cannot be quantized (reported after the loop)
  ThreadPool::global().parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = n0; n < n1; ++n) {
      convert_to_f32(dtype, static_cast<const char*>(src) + static_cast<size_t>(n * ld) * item, row.data(),
                     static_cast<size_t>(K));
      int8_t* out = q + n * K;
      const float sc = quantize_q8_row(row.data(), K, out);
      if (std::isnan(sc)) bad.store(n);
      int64_t total = 0;
      for (int64_t k = 0; k < K; ++k) total += out[k];
      scale[n] = std::isnan(sc) ? 0.0f : sc;
      sum[n] = static_cast<float>(total);
    }
  }, 1);
  VG_CHECK(bad.load() < 0, "quantize_q8: row ", bad.load(), " holds a NaN or an infinity");
}

void quantize_q4_rows(DType dtype, const void* src, int64_t N, int64_t K, int64_t ld, uint8_t* packed,
                      uint16_t* scales) {
  VG_CHECK(dtype_is_float(dtype), "quantize_q4: weights must be f32, bf16 or f16, got ", dtype_name(dtype));
  const size_t item = dtype_size(dtype);
  const int64_t Kp = q4_padded(K), groups = Kp / kQ4Group;
  std::atomic<int64_t> bad{-1};
  ThreadPool::global().parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    std::vector<float> row(static_cast<size_t>(Kp), 0.0f);
    std::vector<int> q(static_cast<size_t>(Kp), 0);
    for (int64_t n = n0; n < n1; ++n) {
      convert_to_f32(dtype, static_cast<const char*>(src) + static_cast<size_t>(n * ld) * item, row.data(),
                     static_cast<size_t>(K));
      for (int64_t g = 0; g < groups; ++g) {
        float amax = 0;
        bool finite = true;
        for (int64_t k = g * kQ4Group; k < (g + 1) * kQ4Group; ++k) {
          finite = finite && std::isfinite(row[k]);
          amax = std::max(amax, std::fabs(row[k]));
        }
        if (!finite) bad.store(n);
        const uint16_t bits = f32_to_f16(finite ? amax / 7.0f : 0.0f);
        const float d = f16_to_f32(bits);
        scales[n * groups + g] = bits;
        for (int64_t k = g * kQ4Group; k < (g + 1) * kQ4Group; ++k)
          q[k] = d > 0 && finite ? static_cast<int>(std::clamp(std::nearbyint(row[k] / d), -8.0f, 7.0f)) : 0;
      }
      uint8_t* out = packed + n * (Kp / 2);
      for (int64_t b = 0; b < Kp / 64; ++b)
        for (int j = 0; j < 32; ++j)
          out[b * 32 + j] = static_cast<uint8_t>((q[b * 64 + j] + 8) | ((q[b * 64 + 32 + j] + 8) << 4));
    }
  }, 1);
  VG_CHECK(bad.load() < 0, "quantize_q4: row ", bad.load(), " holds a NaN or an infinity");
}

}  // namespace vargpt
