#include "thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#if defined(_MSC_VER) && !defined(__clang__) && defined(_M_X64)
#include <immintrin.h>
#endif

namespace vargpt {

namespace {
thread_local bool inside_pool_worker = false;

int default_thread_count() {
  if (const char* env = std::getenv("VARGPT_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return std::min(n, 256);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(std::min(hw, 256u));
}

// One polling step: tells the core (and a hyper-thread sibling) that this is a spin loop.
inline void cpu_relax() {
#if defined(_MSC_VER) && !defined(__clang__) && defined(_M_X64)
  _mm_pause();
#elif defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#else
  std::this_thread::yield();
#endif
}

// Polls `ready` until it returns true or `budget` has passed; true if it became ready. After a
// short busy phase each poll also yields the CPU: on a shared machine another runnable thread
// (often the very thread this one waits for) then gets the core instead of losing it to the spin,
// while on an idle core the yield returns at once.
template <typename Ready>
bool spin_until(Ready&& ready, std::chrono::microseconds budget) {
  if (budget.count() <= 0) return ready();
  for (int i = 0; i < 256; ++i) {
    if (ready()) return true;
    cpu_relax();
  }
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 8; ++i) {
      if (ready()) return true;
      std::this_thread::yield();
    }
    if (Clock::now() >= deadline) return ready();
  }
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (const char* env = std::getenv("VARGPT_SPIN_US")) {
    const long us = std::strtol(env, nullptr, 10);
    if (us >= 0) worker_spin_ = caller_spin_ = std::chrono::microseconds(std::min(us, 1000000L));
  }
  const int extra = std::max(threads, 1) - 1;
  workers_.reserve(extra);
  for (int i = 0; i < extra; ++i) workers_.emplace_back([this, i] { worker_loop(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1);  // spinning workers look at the generation only
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(default_thread_count());
  return pool;
}

bool ThreadPool::finished() const {
  return active_.load(std::memory_order_acquire) == 0 &&
         (next_.load(std::memory_order_acquire) >= limit_.load(std::memory_order_acquire) ||
          failed_.load(std::memory_order_acquire));
}

void ThreadPool::run_chunks(int thread) {
  for (;;) {
    int64_t begin;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const int64_t next = next_.load(std::memory_order_relaxed);
      if (next >= count_ || error_) return;
      begin = next;
      next_.store(std::min(count_, next + chunk_), std::memory_order_relaxed);
    }
    const int64_t end = std::min(count_, begin + chunk_);
    try {
      (*body_)(begin, end, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_release);
    }
  }
}

void ThreadPool::worker_loop(int index) {
  inside_pool_worker = true;
  uint64_t seen = 0;
  for (;;) {
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; }, worker_spin_);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (generation_.load(std::memory_order_relaxed) == seen && !stopping_) {
        ++sleepers_;
        wake_.wait(lock, [&] { return stopping_ || generation_.load(std::memory_order_relaxed) != seen; });
        --sleepers_;
      }
      if (stopping_) return;
      seen = generation_.load(std::memory_order_relaxed);
      // Joining under the mutex: the caller's completion check (also under it) either counts
      // this worker or has already reset count_, so a late worker finds nothing to claim.
      active_.fetch_add(1, std::memory_order_relaxed);
    }
    run_chunks(index);
    bool wake_caller;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      active_.fetch_sub(1, std::memory_order_release);
      wake_caller = caller_sleeping_ && finished();
    }
    if (wake_caller) done_.notify_all();
  }
}

void ThreadPool::parallel_for(int64_t count, const RangeFn& body, int64_t grain) {
  if (count <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (inside_pool_worker || workers_.empty() || count <= grain) {
    body(0, count, 0);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  const int64_t threads = size();
  // A few chunks per thread balances uneven work without much locking.
  const int64_t chunk = std::max(grain, (count + threads * 4 - 1) / (threads * 4));
  bool wake_workers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    limit_.store(count, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
    wake_workers = sleepers_ > 0;  // spinning workers see the generation without a wake-up
  }
  if (wake_workers) wake_.notify_all();
  inside_pool_worker = true;
  run_chunks(0);
  inside_pool_worker = false;
  spin_until([&] { return finished(); }, caller_spin_);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!finished()) {
      caller_sleeping_ = true;
      done_.wait(lock, [&] { return finished(); });
      caller_sleeping_ = false;
    }
    // Workers that have not joined this loop yet must not pick it up later.
    count_ = 0;
    limit_.store(0, std::memory_order_relaxed);
    body_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace vargpt
