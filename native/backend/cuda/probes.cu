// Device ceilings measured the same way on every GPU, so the benchmark figures can be read
// against them: the tensor-core rate of a register-only mma.sync loop (bf16 inputs, f32
// accumulation: the instruction the GEMM's WMMA compiles to), the CUDA-core FFMA rate, and the
// streaming read bandwidth of device memory. Each kernel is timed with events on the backend's
// stream; the launch is repeated until about `seconds` have passed.
#include <algorithm>
#include <chrono>

#include "cuda_ops.cuh"

namespace vargpt::cuda {

namespace {

constexpr int kProbeThreads = 256;
constexpr int kMmaChains = 8;  // independent accumulators per warp: enough to cover mma latency
constexpr int kFmaChains = 8;

// Each iteration issues kMmaChains m16n8k16 MMAs per warp: 2 * 16 * 8 * 16 flops each.
__global__ void __launch_bounds__(kProbeThreads) mma_loop_kernel(int iterations, float* sink) {
  uint32_t a[4], b[2];
  const uint32_t seed = threadIdx.x * 2654435761u + blockIdx.x;
#pragma unroll
  for (int i = 0; i < 4; ++i) a[i] = (seed >> i) & 0x3f803f80u;  // small bf16 pairs
#pragma unroll
  for (int i = 0; i < 2; ++i) b[i] = (seed >> (i + 4)) & 0x3f803f80u;
  float c[kMmaChains][4] = {};
  for (int it = 0; it < iterations; ++it) {
#pragma unroll
    for (int j = 0; j < kMmaChains; ++j) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
          "{%0,%1,%2,%3};\n"
          : "+f"(c[j][0]), "+f"(c[j][1]), "+f"(c[j][2]), "+f"(c[j][3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
    }
  }
  float total = 0.0f;
#pragma unroll
  for (int j = 0; j < kMmaChains; ++j) total += c[j][0] + c[j][1] + c[j][2] + c[j][3];
  if (total == 1.2345f) sink[0] = total;  // keeps the loop alive; practically never stores
}

// Each iteration: kFmaChains dependent-free FFMAs per thread, 2 flops each.
__global__ void __launch_bounds__(kProbeThreads) fma_loop_kernel(int iterations, float* sink) {
  float x[kFmaChains];
#pragma unroll
  for (int j = 0; j < kFmaChains; ++j) x[j] = 1.0f + 1e-7f * (threadIdx.x + j);
  const float m = 0.9999999f, add = 1e-7f;
  for (int it = 0; it < iterations; ++it) {
#pragma unroll
    for (int j = 0; j < kFmaChains; ++j) x[j] = fmaf(x[j], m, add);
  }
  float total = 0.0f;
#pragma unroll
  for (int j = 0; j < kFmaChains; ++j) total += x[j];
  if (total == 1.2345f) sink[0] = total;
}

// Streaming read: 16-byte loads, grid-strided, one partial sum per thread written once.
__global__ void __launch_bounds__(kProbeThreads) read_kernel(const float4* __restrict__ data, int64_t count,
                                                            float* __restrict__ sink) {
  float s = 0.0f;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const float4 v = data[i];
    s += v.x + v.y + v.z + v.w;
  }
  if (s == 1.2345f) sink[0] = s;
}

__global__ void init_kernel(float* data, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    data[i] = static_cast<float>(i & 1023) * 1e-3f;
}

// RAII pair of events on the backend's device.
class EventPair {
 public:
  explicit EventPair(const char* op) : op_(op) {
    VG_CUDA(op_, cudaEventCreate(&start_));
    const cudaError_t status = cudaEventCreate(&stop_);
    if (status != cudaSuccess) {
      cudaEventDestroy(start_);
      fail_cuda(op_, "cudaEventCreate(&stop_)", status);
    }
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  ~EventPair() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  // Seconds taken by `launch` queued on `stream` between the two events.
  template <typename Launch>
  double time(cudaStream_t stream, Launch&& launch) {
    VG_CUDA(op_, cudaEventRecord(start_, stream));
    launch();
    VG_CUDA(op_, cudaEventRecord(stop_, stream));
    VG_CUDA(op_, cudaEventSynchronize(stop_));
    float ms = 0.0f;
    VG_CUDA(op_, cudaEventElapsedTime(&ms, start_, stop_));
    return ms * 1e-3;
  }

 private:
  const char* op_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Runs `kernel` over enough blocks to fill the GPU, doubling the iteration count until one launch
// takes a tenth of `seconds`, then launches until `seconds` have passed; returns the best rate.
template <typename Kernel>
double peak_rate(const Ctx& ctx, const char* op, double seconds, double flops_per_thread_iteration, Kernel kernel) {
  VG_CHECK(seconds > 0 && seconds <= 60, op, ": seconds ", seconds, " must be in (0, 60]");
  Tensor sink = scratch(ctx, DType::F32, {1}, op);
  const unsigned blocks = static_cast<unsigned>(ctx.multiprocessors * 8);
  EventPair events(op);
  int iterations = 1024;
  double best = 0.0, elapsed = 0.0;
  for (;;) {
    const double t = events.time(ctx.stream, [&] {
      kernel<<<blocks, kProbeThreads, 0, ctx.stream>>>(iterations, sink.data<float>());
      VG_CUDA_LAUNCHED(op, "probe kernel");
    });
    elapsed += t;
    if (t < seconds / 10 && iterations < (1 << 28)) {
      iterations *= 2;
      continue;
    }
    const double flops = flops_per_thread_iteration * iterations * blocks * kProbeThreads;
    best = std::max(best, flops / t);
    if (elapsed >= seconds) break;
  }
  return best * 1e-12;
}

}  // namespace

double peak_tflops_mma_bf16(const Ctx& ctx, double seconds) {
  // Per thread and iteration: kMmaChains MMAs of 4096 flops shared by the warp's 32 threads.
  return peak_rate(ctx, "peak_flops", seconds, kMmaChains * 2.0 * 16 * 8 * 16 / 32, mma_loop_kernel);
}

double peak_tflops_fma_f32(const Ctx& ctx, double seconds) {
  return peak_rate(ctx, "peak_flops", seconds, kFmaChains * 2.0, fma_loop_kernel);
}

double read_bandwidth_gbs(const Ctx& ctx, int64_t bytes, int iterations) {
  const char* op = "read_bandwidth";
  VG_CHECK(bytes >= (int64_t{1} << 20) && bytes <= (int64_t{64} << 30), op, ": ", bytes,
           " bytes must be between 1 MiB and 64 GiB");
  VG_CHECK(iterations >= 1 && iterations <= 1000, op, ": iterations ", iterations, " must be 1..1000");
  const int64_t count = bytes / 16;
  Tensor buffer = scratch(ctx, DType::F32, {count * 4}, op);
  Tensor sink = scratch(ctx, DType::F32, {1}, op);
  init_kernel<<<grid_for(count * 4), kThreads, 0, ctx.stream>>>(buffer.data<float>(), count * 4);
  VG_CUDA_LAUNCHED(op, "init_kernel");
  EventPair events(op);
  const unsigned blocks = static_cast<unsigned>(ctx.multiprocessors * 8);
  double best = 0.0;
  for (int it = 0; it < iterations; ++it) {
    const double t = events.time(ctx.stream, [&] {
      read_kernel<<<blocks, kProbeThreads, 0, ctx.stream>>>(static_cast<const float4*>(buffer.raw()), count,
                                                           sink.data<float>());
      VG_CUDA_LAUNCHED(op, "read_kernel");
    });
    best = std::max(best, static_cast<double>(count) * 16 / t * 1e-9);
  }
  return best;
}

}  // namespace vargpt::cuda
