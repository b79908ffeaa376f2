#include "host_pool.h"

#include <cstdlib>

#include "../../core/error.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace vargpt::cpu {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

void* allocate_block(size_t capacity) {
  // 2 MB alignment lets the kernel back the block with huge pages.
  void* block = std::aligned_alloc(kHugePage, capacity);
  if (block == nullptr) fail("out of host memory allocating ", capacity, " bytes");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(block, capacity, MADV_HUGEPAGE);  // advice only: failure leaves ordinary pages
#endif
  return block;
}

}  // namespace

HostBlockPool::~HostBlockPool() { clear(); }

std::shared_ptr<Storage> HostBlockPool::allocate(size_t bytes) {
  if (bytes < kMinBytes) return allocate_host(bytes);
  const size_t capacity = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* block = nullptr;
  size_t got = capacity;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest cached block that fits, if it wastes at most a quarter of itself.
    auto it = free_.lower_bound(capacity);
    if (it != free_.end() && it->first <= capacity + capacity / 4) {
      got = it->first;
      block = it->second;
      cached_ -= got;
      free_.erase(it);
    }
  }
  if (block == nullptr) block = allocate_block(capacity);
  // The storage's owner hands the block back on destruction; it keeps the pool alive until then.
  std::shared_ptr<HostBlockPool> self = shared_from_this();
  std::shared_ptr<const void> owner(block, [self, got](const void* p) { self->release(const_cast<void*>(p), got); });
  return wrap_host(block, bytes, std::move(owner));
}

void HostBlockPool::release(void* block, size_t capacity) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closed_ && cached_ + capacity <= kMaxCachedBytes) {
      free_.emplace(capacity, block);
      cached_ += capacity;
      return;
    }
  }
  std::free(block);
}

void HostBlockPool::clear() {
  std::multimap<size_t, void*> blocks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    blocks.swap(free_);
    cached_ = 0;
  }
  for (auto& entry : blocks) std::free(entry.second);
}

size_t HostBlockPool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}

}  // namespace vargpt::cpu
