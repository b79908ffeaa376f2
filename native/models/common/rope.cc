#include "rope.h"

#include <cmath>

#include "../../core/error.h"

namespace vargpt {

std::vector<float> rope_inv_freq(float theta, int head_dim) {
  VG_CHECK(theta > 0.0f && head_dim > 0 && head_dim % 2 == 0, "RoPE: theta ", theta, " must be positive and head_dim ",
           head_dim, " even");
  std::vector<float> inv(static_cast<size_t>(head_dim / 2));
  for (int j = 0; j < head_dim / 2; ++j)
    inv[j] = 1.0f / std::pow(theta, static_cast<float>(2 * j) / static_cast<float>(head_dim));
  return inv;
}

std::vector<int> rope_axis_of_pair(const std::vector<int>& sections, int head_dim) {
  const int half = head_dim / 2;
  std::vector<int> axis(static_cast<size_t>(half), 0);
  if (sections.empty()) return axis;
  int sum = 0;
  for (int s : sections) {
    VG_CHECK(s >= 0, "RoPE: negative section ", s);
    sum += s;
  }
  VG_CHECK(sum == half, "RoPE: sections sum to ", sum, ", expected head_dim / 2 = ", half);
  int j = 0;
  for (size_t a = 0; a < sections.size(); ++a)
    for (int k = 0; k < sections[a]; ++k) axis[j++] = static_cast<int>(a);
  return axis;
}

Tensor rope_table(const std::vector<float>& inv_freq, const std::vector<int>& axis_of_pair, const int32_t* positions,
                  int axes, int64_t T) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  VG_CHECK(static_cast<int64_t>(axis_of_pair.size()) == half, "RoPE: ", axis_of_pair.size(), " pair axes for ", half,
           " frequencies");
  for (int a : axis_of_pair) VG_CHECK(a >= 0 && a < axes, "RoPE: pair reads position axis ", a, " of ", axes);
  Tensor table = Tensor::empty_host(DType::F32, {T, 2 * half});
  float* out = table.data<float>();
  for (int64_t t = 0; t < T; ++t) {
    float* row = out + t * 2 * half;
    for (int64_t j = 0; j < half; ++j) {
      const float angle = static_cast<float>(positions[axis_of_pair[j] * T + t]) * inv_freq[j];
      row[j] = std::cos(angle);
      row[half + j] = std::sin(angle);
    }
  }
  return table;
}

}  // namespace vargpt
