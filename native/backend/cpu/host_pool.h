// Recycling of large host blocks for the CPU backend's empty(): the VQ-VAE allocates a fresh
// 20-40 MB activation per op at 256x256, and glibc serves blocks that large with mmap, so every
// op paid ~10k page faults and the kernel's zeroing of each page (about 8% of a VQ-VAE decode).
// Freed blocks of at least kMinBytes are kept (up to kMaxCachedBytes in all) and handed out again
// for requests of about the same size. Large new blocks are 2 MB aligned and advised as
// transparent huge pages where the kernel offers them (fewer faults and TLB misses).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "../../core/tensor.h"

namespace vargpt::cpu {

class HostBlockPool : public std::enable_shared_from_this<HostBlockPool> {
 public:
  static constexpr size_t kMinBytes = size_t{1} << 20;
  static constexpr size_t kMaxCachedBytes = size_t{384} << 20;

  ~HostBlockPool();
  // Storage of at least `bytes` (64-byte aligned, uninitialised); small requests go to the heap.
  std::shared_ptr<Storage> allocate(size_t bytes);
  // Frees the cached blocks; blocks still in use are freed when their tensors go (the backend
  // calls this when it is destroyed, so a disposed model keeps nothing).
  void clear();
  size_t cached_bytes() const;

 private:
  void release(void* block, size_t capacity);

  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_;  // capacity -> block
  size_t cached_ = 0;
  bool closed_ = false;
};

}  // namespace vargpt::cpu
