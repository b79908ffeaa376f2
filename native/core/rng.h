// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A draw is a pure function of
// (seed, stream, index), so the CPU and CUDA backends produce the same stream without shared state,
// and a seed reproduces an image whatever the thread count. Header-only and usable from CUDA.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define VG_HOST_DEVICE __host__ __device__
#else
#define VG_HOST_DEVICE
#endif

namespace vargpt {

struct Philox4 {
  uint32_t v[4];
};

VG_HOST_DEVICE inline Philox4 philox4x32_10(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t c0 = static_cast<uint32_t>(index), c1 = static_cast<uint32_t>(index >> 32);
  uint32_t c2 = static_cast<uint32_t>(stream), c3 = static_cast<uint32_t>(stream >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in (0, 1]: 24 random bits, never zero (safe under log).
VG_HOST_DEVICE inline float philox_uniform(uint32_t bits) {
  return static_cast<float>((bits >> 8) + 1u) * (1.0f / 16777216.0f);
}

// Standard normal number `i` of a stream: each Philox block gives four normals through two
// Box-Muller pairs. Computed in double so CPU and GPU agree to the last float bit in practice.
VG_HOST_DEVICE inline float philox_normal(uint64_t seed, uint64_t stream, uint64_t i) {
  const Philox4 r = philox4x32_10(seed, stream, i >> 2);
  const int pair = static_cast<int>((i >> 1) & 1u);
  const double u1 = philox_uniform(r.v[2 * pair]);
  const double u2 = philox_uniform(r.v[2 * pair + 1]);
  const double radius = sqrt(-2.0 * log(u1));
  const double angle = 6.283185307179586476925 * u2;
  return static_cast<float>((i & 1u) ? radius * sin(angle) : radius * cos(angle));
}

// Uniform number `i` of a stream, in [0, 1).
VG_HOST_DEVICE inline float philox_uniform01(uint64_t seed, uint64_t stream, uint64_t i) {
  const Philox4 r = philox4x32_10(seed, stream, i >> 2);
  return static_cast<float>(r.v[i & 3u] >> 8) * (1.0f / 16777216.0f);
}

// Stream ids keep the draws of different purposes apart under one seed.
enum class RngPurpose : uint32_t { CfgNoise = 1, ImageSampling = 2, TextSampling = 3, FlowNoise = 4, DiffusionNoise = 5, Test = 15 };
VG_HOST_DEVICE inline uint64_t rng_stream(RngPurpose purpose, uint32_t step) {
  return (static_cast<uint64_t>(purpose) << 32) | step;
}

}  // namespace vargpt
