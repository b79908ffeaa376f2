// A cache of large host blocks, one per CPU backend (one per loaded model).
//
// Why: glibc serves blocks above its mmap threshold (at most 32 MB, lower before it adapts) with
// fresh mappings, and gives them back on free. An activation of the VQ-VAE decoder at 256x256
// (128-160 channels, 32-40 MB) therefore costs a page fault and a zeroed page every 4 KB each time
// it is written, on every image: ~20 % of the decoder's time went to the kernel clearing pages.
// The backend now keeps freed blocks of at least `min_bytes` (up to `cap_bytes` in all) and hands
// them out again to requests of about the same size.
//
// Bounded and owned: the cache holds only blocks this backend allocated and freed, never more than
// cap_bytes of them, and frees them all when the backend goes away (model dispose); blocks still in
// use then are freed by their tensors. Thread-safe: tensors may be released on any thread.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "../../core/tensor.h"

namespace vargpt::cpu {

class HostBlockPool : public std::enable_shared_from_this<HostBlockPool> {
 public:
  HostBlockPool(size_t min_bytes, size_t cap_bytes) : min_bytes_(min_bytes), cap_bytes_(cap_bytes) {}
  HostBlockPool(const HostBlockPool&) = delete;
  HostBlockPool& operator=(const HostBlockPool&) = delete;
  ~HostBlockPool();

  // 64-byte aligned, uninitialised storage of `bytes`: a cached block of capacity within 1/8 above
  // the request (rounded up to 1 MB) when there is one, else a new one.
  std::shared_ptr<Storage> allocate(size_t bytes);
  // Frees the cached blocks; blocks released later are freed at once.
  void close();

  size_t cached_bytes() const;
  size_t reused_blocks() const;

 private:
  class Block;
  void release(void* data, size_t capacity);
  void close_cached();  // frees the cached blocks (the pool stays open)

  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_;  // capacity -> block
  size_t cached_ = 0;
  size_t reused_ = 0;
  bool closed_ = false;
  const size_t min_bytes_, cap_bytes_;
};

// Scratch memory of the op running on this thread. A CPU backend opens a ScratchScope around the
// ops that need large scratch (the GEMM's packed A, the Winograd transforms), so that it comes
// from that backend's pool: reused across calls and freed with the model. Before, such buffers were
// thread_local to the calling thread, and every libuv worker thread that ever ran a model kept its
// own copy for the life of the process (~100 MB each for the VQ-VAE's 640-channel transforms).
// Outside a scope, scratch comes from the heap.
class ScratchScope {
 public:
  explicit ScratchScope(HostBlockPool* pool);
  ~ScratchScope();
  ScratchScope(const ScratchScope&) = delete;
  ScratchScope& operator=(const ScratchScope&) = delete;

 private:
  HostBlockPool* previous_;
};

// One scratch allocation, 64-byte aligned, given back when the buffer goes out of scope.
class ScratchBuffer {
 public:
  // At least `count` floats; contents are not preserved across growth.
  float* floats(size_t count);

 private:
  std::shared_ptr<Storage> storage_;
};

}  // namespace vargpt::cpu
