// Device memory: a Storage that owns a block of one GPU's memory, handed out by a small caching
// allocator. Models allocate their step buffers afresh every step (Backend::empty), and cudaFree
// synchronises the whole device, so freed blocks go back to a cache keyed by their rounded size
// and are reused by later allocations. All work runs on one stream, so a block freed while
// kernels that use it are still queued can only be reused by work queued after them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "../../core/tensor.h"

namespace vargpt::cuda {

struct MemoryStats {
  uint64_t in_use = 0;  // bytes held by live tensors (rounded sizes)
  uint64_t cached = 0;  // bytes freed by tensors and kept for reuse
  uint64_t peak = 0;    // highest in_use + cached so far
};

class DeviceAllocator : public std::enable_shared_from_this<DeviceAllocator> {
 public:
  explicit DeviceAllocator(int device) : device_(device) {}
  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;
  ~DeviceAllocator();

  // Device memory of at least `bytes`. On failure the cache is released and the allocation
  // retried once; then it throws naming `what`, the bytes asked for and the device's free and
  // total memory.
  std::shared_ptr<Storage> allocate(size_t bytes, const char* what);
  // Called by DeviceStorage's destructor: never throws (failures are logged to stderr).
  void release(void* ptr, size_t capacity) noexcept;
  // Returns every cached block to the driver.
  void trim() noexcept;
  MemoryStats stats() const;
  int device() const { return device_; }

 private:
  int device_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  MemoryStats stats_;
};

// A Storage whose memory lives on the GPU. Its destructor returns the block to the allocator.
class DeviceStorage final : public Storage {
 public:
  DeviceStorage(void* data, size_t bytes, size_t capacity, std::shared_ptr<DeviceAllocator> allocator)
      : Storage(data, bytes, DeviceKind::CUDA), capacity_(capacity), allocator_(std::move(allocator)) {}
  ~DeviceStorage() override;
  int device_index() const { return allocator_->device(); }

 private:
  size_t capacity_;
  std::shared_ptr<DeviceAllocator> allocator_;
};

}  // namespace vargpt::cuda
