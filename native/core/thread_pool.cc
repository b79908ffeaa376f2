#include "thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <string>

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
}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int extra = std::max(threads, 1) - 1;
  workers_.reserve(extra);
  for (int i = 0; i < extra; ++i) workers_.emplace_back([this, i] { worker_loop(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(default_thread_count());
  return pool;
}

void ThreadPool::run_chunks(int thread) {
  for (;;) {
    int64_t begin;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_ >= count_ || error_) return;
      begin = next_;
      next_ = std::min(count_, next_ + chunk_);
    }
    const int64_t end = std::min(count_, begin + chunk_);
    try {
      (*body_)(begin, end, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop(int index) {
  inside_pool_worker = true;
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      ++active_;
    }
    run_chunks(index);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --active_;
    }
    done_.notify_all();
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    chunk_ = chunk;
    next_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  inside_pool_worker = true;
  run_chunks(0);
  inside_pool_worker = false;
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return active_ == 0 && (next_ >= count_ || error_); });
    // Workers that have not woken yet for this generation must not pick it up later.
    count_ = 0;
    body_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace vargpt
