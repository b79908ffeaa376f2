// Element types and the conversions between the stored floating formats and float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace vargpt {

enum class DType : uint8_t { F32, BF16, F16, I32, I64, U8, I8 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // lower case: "f32", "bf16", ...
// Parses a safetensors dtype string ("F32", "BF16", "F16", "I32", "I64", "U8", "I8").
std::optional<DType> dtype_from_safetensors(std::string_view name);
bool dtype_is_float(DType dtype);

inline uint32_t f32_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}
inline float f32_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline float bf16_to_f32(uint16_t value) { return f32_from_bits(static_cast<uint32_t>(value) << 16); }

// Round to nearest, ties to even, as torch's float -> bfloat16 cast; NaN stays a quiet NaN.
inline uint16_t f32_to_bf16(float value) {
  uint32_t bits = f32_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t value);
uint16_t f32_to_f16(float value);  // round to nearest even, overflow to inf, subnormals kept

// Converts count elements between float types (F32, BF16, F16).
void convert_to_f32(DType src_type, const void* src, float* dst, size_t count);
void convert_from_f32(DType dst_type, const float* src, void* dst, size_t count);

}  // namespace vargpt
