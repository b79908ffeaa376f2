// The caching device allocator (see device_memory.cuh).
#include <cuda_runtime.h>

#include <cstdio>

#include "cuda_common.cuh"
#include "device_memory.cuh"

namespace vargpt::cuda {

namespace {

// Small blocks round to 512 bytes, larger ones to 2 MiB, so the same shapes map to the same
// cache bucket step after step without wasting more than a few percent.
size_t rounded_size(size_t bytes) {
  constexpr size_t kSmall = size_t{1} << 20, kSmallUnit = 512, kLargeUnit = size_t{2} << 20;
  if (bytes <= kSmall) return (bytes + kSmallUnit - 1) / kSmallUnit * kSmallUnit;
  return (bytes + kLargeUnit - 1) / kLargeUnit * kLargeUnit;
}

// Blocks at least this large are returned to the driver when freed rather than cached: they are
// weights (freed once, with the model) more often than step buffers.
constexpr size_t kCacheLimit = size_t{256} << 20;

void log_cuda_failure(const char* what, cudaError_t status) {
  // At process exit the runtime may be torn down before the last tensors die: nothing to report.
  if (status == cudaErrorCudartUnloading) return;
  std::fprintf(stderr, "vargpt: %s failed (%s: %s)\n", what, cudaGetErrorName(status), cudaGetErrorString(status));
}

}  // namespace

DeviceAllocator::~DeviceAllocator() { trim(); }

std::shared_ptr<Storage> DeviceAllocator::allocate(size_t bytes, const char* what) {
  if (bytes == 0) return std::make_shared<DeviceStorage>(nullptr, 0, 0, shared_from_this());
  const size_t capacity = rounded_size(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(capacity);
    if (it != free_.end()) {
      void* ptr = it->second;
      free_.erase(it);
      stats_.cached -= capacity;
      stats_.in_use += capacity;
      return std::make_shared<DeviceStorage>(ptr, bytes, capacity, shared_from_this());
    }
  }
  VG_CUDA(what, cudaSetDevice(device_));
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, capacity);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the (non-sticky) allocation error before retrying
    trim();
    status = cudaMalloc(&ptr, capacity);
  }
  if (status != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    const bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
    cudaGetLastError();
    const MemoryStats s = stats();
    fail(what, ": cannot allocate ", bytes, " bytes on cuda:", device_, " (", describe_cuda(status), "); ",
         known ? std::to_string(free_bytes) + " of " + std::to_string(total_bytes) + " bytes free on the device, "
               : std::string("device memory unknown, "),
         s.in_use, " bytes held by this backend's tensors");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.in_use += capacity;
  if (stats_.in_use + stats_.cached > stats_.peak) stats_.peak = stats_.in_use + stats_.cached;
  return std::make_shared<DeviceStorage>(ptr, bytes, capacity, shared_from_this());
}

void DeviceAllocator::release(void* ptr, size_t capacity) noexcept {
  if (ptr == nullptr) return;
  if (capacity < kCacheLimit) {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.in_use -= capacity;
    stats_.cached += capacity;
    free_.emplace(capacity, ptr);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.in_use -= capacity;
  }
  int previous = -1;
  cudaGetDevice(&previous);
  if (previous != device_) cudaSetDevice(device_);
  const cudaError_t status = cudaFree(ptr);
  if (status != cudaSuccess) log_cuda_failure("cudaFree of a device tensor", status);
  if (previous >= 0 && previous != device_) cudaSetDevice(previous);
}

void DeviceAllocator::trim() noexcept {
  std::multimap<size_t, void*> blocks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks.swap(free_);
    stats_.cached = 0;
  }
  if (blocks.empty()) return;
  int previous = -1;
  cudaGetDevice(&previous);
  if (previous != device_) cudaSetDevice(device_);
  for (const auto& [size, ptr] : blocks) {
    const cudaError_t status = cudaFree(ptr);
    if (status != cudaSuccess) log_cuda_failure("cudaFree of a cached block", status);
  }
  if (previous >= 0 && previous != device_) cudaSetDevice(previous);
}

MemoryStats DeviceAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

DeviceStorage::~DeviceStorage() { allocator_->release(data_, capacity_); }

}  // namespace vargpt::cuda
