// A fixed pool of worker threads for data-parallel loops. The calling thread takes part in the
// work. One parallel_for runs at a time per pool; a parallel_for issued from inside a worker runs
// serially on that worker, so kernels may nest without deadlock.
//
// Hand-offs spin briefly before they block: a decode step issues ~100 parallel loops of tens of
// microseconds each, and a futex wake-up of a sleeping worker (tens of microseconds on a VM)
// would otherwise cost as much as the loop itself. Idle workers spin for kWorkerSpin, then sleep
// on a condition variable; the caller spins for the last chunks, then sleeps too.
#pragma once

#include <atomic>
#include <chrono>
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

  // How long an idle worker polls for the next loop before it sleeps, and how long the caller
  // polls for the other threads' last chunks before it sleeps. VARGPT_SPIN_US overrides both
  // (0: block at once, as a machine shared with other busy processes may prefer).
  static constexpr std::chrono::microseconds kWorkerSpin{300};
  static constexpr std::chrono::microseconds kCallerSpin{2000};

 private:
  void worker_loop(int index);
  void run_chunks(int thread);
  bool finished() const;  // all chunks of the current loop claimed and done (or one failed)

  std::chrono::microseconds worker_spin_ = kWorkerSpin, caller_spin_ = kCallerSpin;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time
  std::mutex mutex_;       // guards the loop description, the chunk counter and the sleeps
  std::condition_variable wake_;
  std::condition_variable done_;
  const RangeFn* body_ = nullptr;
  int64_t count_ = 0;
  int64_t chunk_ = 1;
  // Read without the mutex by the spinning threads; written under it.
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> limit_{0};     // count_ while a loop runs, 0 once it is finished
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};        // workers inside run_chunks
  std::atomic<bool> failed_{false};
  int sleepers_ = 0;                  // workers blocked on wake_ (under mutex_)
  bool caller_sleeping_ = false;      // the caller blocked on done_ (under mutex_)
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace vargpt
