// Machine ceilings measured the same way on every machine, so benchmark figures can be read
// against them: the all-thread FMA rate (gemm.cc's register-only loop) and the all-thread
// streaming read bandwidth.
#include <chrono>
#include <memory>
#include <vector>

#include "cpu_common.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

double peak_gflops(double seconds, bool tiles) {
  VG_CHECK(seconds > 0 && seconds <= 60, "peak_flops: seconds ", seconds, " must be in (0, 60]");
  return measure_peak_gflops(seconds, tiles);
}

double read_bandwidth_gbs(int64_t bytes, int iterations) {
  VG_CHECK(bytes >= (int64_t{1} << 20) && bytes <= (int64_t{16} << 30), "read_bandwidth: ", bytes,
           " bytes must be between 1 MiB and 16 GiB");
  VG_CHECK(iterations >= 1 && iterations <= 1000, "read_bandwidth: iterations ", iterations, " must be 1..1000");
  const int64_t count = bytes / 4 / 64 * 64;
  std::unique_ptr<float, decltype(&aligned_free)> buffer(
      static_cast<float*>(aligned_malloc(64, static_cast<size_t>(count) * 4)), &aligned_free);
  VG_CHECK(buffer != nullptr, "read_bandwidth: cannot allocate ", bytes, " bytes");
  float* data = buffer.get();
  // Touch every page first (first-touch by the threads that will read it) so page faults are
  // not timed.
  const int64_t blocks = count / 16384 + (count % 16384 != 0);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0 * 16384; i < std::min(count, b1 * 16384); ++i) data[i] = static_cast<float>(i & 1023);
  });
  std::vector<float> sinks(static_cast<size_t>(blocks));
  double best = 0.0;
  for (int it = 0; it < iterations; ++it) {
    const auto start = std::chrono::steady_clock::now();
    // The dispatched ISA's read loop, four interleaved streams per block (as row_dots reads
    // four weight rows at a time), so the ceiling is what our best loads can draw.
    const GemmKernels& kern = active_gemm_kernels();
    parallel_for(blocks, 16, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        sinks[b] = kern.stream_sum(data + b * 16384, std::min<int64_t>(16384, count - b * 16384));
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(count) * 4 / seconds * 1e-9);
  }
  volatile float keep = sinks[0];
  (void)keep;
  return best;
}

}  // namespace vargpt::cpu
