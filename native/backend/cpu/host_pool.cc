#include "host_pool.h"

#include <cstdlib>
#include <iterator>
#include <vector>

#include "../../core/aligned.h"
#include "../../core/error.h"

namespace vargpt::cpu {

class HostBlockPool::Block final : public Storage {
 public:
  Block(void* data, size_t bytes, size_t capacity, std::shared_ptr<HostBlockPool> pool)
      : Storage(data, bytes, DeviceKind::CPU), capacity_(capacity), pool_(std::move(pool)) {}
  ~Block() override { pool_->release(data_, capacity_); }

 private:
  size_t capacity_;
  std::shared_ptr<HostBlockPool> pool_;
};

HostBlockPool::~HostBlockPool() { close(); }

std::shared_ptr<Storage> HostBlockPool::allocate(size_t bytes) {
  if (bytes < min_bytes_) return allocate_host(bytes);
  constexpr size_t kGranule = size_t{1} << 20;
  VG_CHECK(bytes <= SIZE_MAX - kGranule, "out of host memory allocating ", bytes, " bytes");
  const size_t capacity = (bytes + kGranule - 1) / kGranule * kGranule;
  void* data = nullptr;
  size_t found = 0;
  std::vector<std::pair<void*, size_t>> evicted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.lower_bound(capacity);
    if (it != free_.end() && it->first <= capacity + capacity / 8) {
      found = it->first;
      data = it->second;
      cached_ -= found;
      ++reused_;
      free_.erase(it);
    } else {
      // A miss: give back cached blocks (largest first) worth the new block before mapping it,
      // as freeing them without the cache would have, so the footprint of cache plus live blocks
      // stays where it would be without the cache.
      size_t released = 0;
      while (released < capacity && !free_.empty()) {
        auto last = std::prev(free_.end());
        released += last->first;
        cached_ -= last->first;
        evicted.emplace_back(last->second, last->first);
        free_.erase(last);
      }
    }
  }
  for (const auto& [block, size] : evicted) free_large(block, size);
  if (data == nullptr) {
    data = allocate_large(capacity);
    if (data == nullptr) {
      // Memory may be sitting in the cache under other sizes: give it back and try once more.
      close_cached();
      data = allocate_large(capacity);
    }
    if (data == nullptr) fail("out of host memory allocating ", bytes, " bytes");
    found = capacity;
  }
  return std::make_shared<Block>(data, bytes, found, shared_from_this());
}

void HostBlockPool::release(void* data, size_t capacity) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closed_ && cached_ + capacity <= cap_bytes_) {
      free_.emplace(capacity, data);
      cached_ += capacity;
      return;
    }
  }
  free_large(data, capacity);
}

void HostBlockPool::close_cached() {
  std::multimap<size_t, void*> blocks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks.swap(free_);
    cached_ = 0;
  }
  for (auto& [capacity, data] : blocks) free_large(data, capacity);
}

void HostBlockPool::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  close_cached();
}

size_t HostBlockPool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}

size_t HostBlockPool::reused_blocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reused_;
}

namespace {
thread_local HostBlockPool* current_scratch_pool = nullptr;
}  // namespace

ScratchScope::ScratchScope(HostBlockPool* pool) : previous_(current_scratch_pool) { current_scratch_pool = pool; }

ScratchScope::~ScratchScope() { current_scratch_pool = previous_; }

float* ScratchBuffer::floats(size_t count) {
  VG_CHECK(count <= SIZE_MAX / sizeof(float), "out of host memory allocating ", count, " floats of scratch");
  const size_t bytes = count * sizeof(float);
  if (storage_ == nullptr || storage_->bytes() < bytes) {
    storage_.reset();  // give the old block back before asking for the new one
    storage_ = current_scratch_pool != nullptr ? current_scratch_pool->allocate(bytes) : allocate_host(bytes);
  }
  return static_cast<float*>(storage_->data());
}

}  // namespace vargpt::cpu
