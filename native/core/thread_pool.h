// A fixed pool of worker threads for data-parallel loops. The calling thread takes part in the
// work. One parallel_for runs at a time per pool; a parallel_for issued from inside a worker runs
// serially on that worker, so kernels may nest without deadlock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vargpt {

class ThreadPool {
 public:
  // Body of a loop: handles items [begin, end) on the thread numbered `thread` (0..size()-1).
  using RangeFn = std::function<void(int64_t begin, int64_t end, int thread)>;

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Splits [0, count) into chunks of at least `grain` items and runs them on all threads.
  // The first exception thrown by any chunk is rethrown here after all chunks finish.
  void parallel_for(int64_t count, const RangeFn& body, int64_t grain = 1);

  // The process-wide pool: VARGPT_THREADS threads if set, else the hardware thread count.
  static ThreadPool& global();

 private:
  void worker_loop(int index);
  void run_chunks(int thread);

  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const RangeFn* body_ = nullptr;
  int64_t count_ = 0;
  int64_t chunk_ = 1;
  int64_t next_ = 0;
  int active_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace vargpt
