// Unit test of the CPU backend's block cache and scratch scopes (native/backend/cpu/host_pool.h),
// built and run by test/api/host-pool.test.ts with AddressSanitizer, whose leak check at exit also
// proves that every block ends up freed (cached, evicted, closed, or released after the pool was
// closed).
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "backend/cpu/host_pool.h"

namespace {

int failures = 0;

#define EXPECT(cond)                                                      \
  do {                                                                    \
    if (!(cond)) {                                                        \
      std::fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                         \
    }                                                                     \
  } while (0)

constexpr size_t MB = size_t{1} << 20;

using vargpt::cpu::HostBlockPool;

void small_blocks_bypass_the_cache() {
  auto pool = std::make_shared<HostBlockPool>(MB, 64 * MB);
  { auto s = pool->allocate(MB - 1); EXPECT(s->bytes() == MB - 1); }
  EXPECT(pool->cached_bytes() == 0);
  pool->close();
}

void a_freed_block_is_reused_for_the_same_size() {
  auto pool = std::make_shared<HostBlockPool>(MB, 64 * MB);
  void* first = nullptr;
  {
    auto s = pool->allocate(3 * MB - 100);
    first = s->data();
    EXPECT(reinterpret_cast<uintptr_t>(first) % 64 == 0);
    std::memset(s->data(), 1, s->bytes());  // the whole requested size is usable
  }
  EXPECT(pool->cached_bytes() == 3 * MB);  // rounded up to whole megabytes
  {
    auto s = pool->allocate(3 * MB);
    EXPECT(s->data() == first);
    EXPECT(s->bytes() == 3 * MB);
    EXPECT(pool->cached_bytes() == 0);
  }
  EXPECT(pool->reused_blocks() == 1);
  pool->close();
  EXPECT(pool->cached_bytes() == 0);
}

void a_much_larger_block_is_not_handed_out_and_a_miss_evicts() {
  auto pool = std::make_shared<HostBlockPool>(MB, 64 * MB);
  { auto big = pool->allocate(8 * MB); }
  EXPECT(pool->cached_bytes() == 8 * MB);
  {
    auto s = pool->allocate(2 * MB);  // 8 MB > 2 MB + 1/8: a miss, which gives the 8 MB back
    EXPECT(s->bytes() == 2 * MB);
    EXPECT(pool->cached_bytes() == 0);
  }
  EXPECT(pool->reused_blocks() == 0);
  EXPECT(pool->cached_bytes() == 2 * MB);
  pool->close();
}

void the_cap_bounds_the_cache() {
  auto pool = std::make_shared<HostBlockPool>(MB, 4 * MB);
  {
    auto a = pool->allocate(3 * MB);
    auto b = pool->allocate(3 * MB);
  }
  EXPECT(pool->cached_bytes() == 3 * MB);  // the second block did not fit under the cap: freed
  pool->close();
}

void blocks_outliving_the_pool_owner_are_freed() {
  auto pool = std::make_shared<HostBlockPool>(MB, 64 * MB);
  auto kept = pool->allocate(5 * MB);
  { auto cached = pool->allocate(2 * MB); }
  pool->close();  // the backend goes away
  EXPECT(pool->cached_bytes() == 0);
  pool.reset();   // the block still holds the pool
  std::memset(kept->data(), 2, kept->bytes());
  kept.reset();   // released into a closed pool: freed at once (LeakSanitizer checks)
}

void concurrent_allocate_and_release() {
  auto pool = std::make_shared<HostBlockPool>(MB, 16 * MB);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([pool, t] {
      std::mt19937 rng(t);
      std::vector<std::shared_ptr<vargpt::Storage>> live;
      for (int i = 0; i < 2000; ++i) {
        const size_t sizes[] = {MB, 2 * MB, 3 * MB - 7, 5 * MB};
        if (live.size() < 3 && rng() % 2 == 0) {
          live.push_back(pool->allocate(sizes[rng() % 4]));
          static_cast<char*>(live.back()->data())[0] = 1;
        } else if (!live.empty()) {
          live.erase(live.begin() + static_cast<long>(rng() % live.size()));
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT(pool->cached_bytes() <= 16 * MB);
  pool->close();
}

void scratch_comes_from_the_scoped_pool() {
  auto pool = std::make_shared<HostBlockPool>(MB, 64 * MB);
  void* first = nullptr;
  {
    vargpt::cpu::ScratchScope scope(pool.get());
    {
      vargpt::cpu::ScratchBuffer scratch;
      first = scratch.floats(MB);  // 4 MB
      EXPECT(scratch.floats(MB / 2) == first);  // a smaller request keeps the block
    }
    EXPECT(pool->cached_bytes() == 4 * MB);  // given back to the pool, not freed
    {
      vargpt::cpu::ScratchBuffer scratch;
      EXPECT(scratch.floats(MB) == first);  // the next op reuses it
      {
        vargpt::cpu::ScratchScope inner(nullptr);  // nested scopes restore the outer one
        vargpt::cpu::ScratchBuffer heap;
        heap.floats(MB);
      }
      vargpt::cpu::ScratchBuffer again;
      again.floats(2 * MB);
    }
    EXPECT(pool->cached_bytes() == 12 * MB);  // both scoped blocks back; the heap one not pooled
  }
  {
    vargpt::cpu::ScratchBuffer outside;  // no scope on this thread: plain heap memory
    outside.floats(MB);
  }
  EXPECT(pool->cached_bytes() == 12 * MB);
  // Scopes are per thread: another thread without a scope does not use this pool.
  std::thread([&] {
    vargpt::cpu::ScratchBuffer other;
    other.floats(MB);
  }).join();
  EXPECT(pool->cached_bytes() == 12 * MB);
  pool->close();
}

}  // namespace

int main() {
  small_blocks_bypass_the_cache();
  a_freed_block_is_reused_for_the_same_size();
  a_much_larger_block_is_not_handed_out_and_a_miss_evicts();
  the_cap_bounds_the_cache();
  blocks_outliving_the_pool_owner_are_freed();
  concurrent_allocate_and_release();
  scratch_comes_from_the_scoped_pool();
  if (failures == 0) std::puts("host_pool_test: all passed");
  return failures == 0 ? 0 : 1;
}
