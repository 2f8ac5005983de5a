// A small persistent pool. Idle workers sleep on a condition variable (no
// spinning inside a server process). One parallel region runs at a time; a
// region started while the pool is busy (another JS thread, an async call, a
// nested region) runs on its calling thread, which is correct because results
// never depend on the split.
#include "threads.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <sched.h>
#endif

namespace batchnorm {
namespace {

int available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? int(n) : 1;
}

class Pool {
 public:
  int num_threads() const { return num_threads_.load(std::memory_order_relaxed); }
  void set_num_threads(int n) { num_threads_.store(std::max(1, n), std::memory_order_relaxed); }

  void run(int64_t n, int64_t grain, void (*fn)(void*, int64_t, int64_t), void* ctx) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t parts = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
    if (parts <= 1 || busy_.exchange(true, std::memory_order_acquire)) {
      fn(ctx, 0, n);
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    while (int64_t(workers_) < parts - 1) {  // worker ids 1..parts-1; the caller is part 0
      std::thread(&Pool::worker_loop, this, ++workers_).detach();
    }
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    parts_ = int(parts);
    pending_ = int(parts) - 1;
    ++generation_;
    wake_.notify_all();
    lock.unlock();

    fn(ctx, 0, n / parts);

    lock.lock();
    done_.wait(lock, [this] { return pending_ == 0; });
    lock.unlock();
    busy_.store(false, std::memory_order_release);
  }

 private:
  void worker_loop(int id) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (id >= parts_) continue;
      auto fn = fn_;
      void* ctx = ctx_;
      const int64_t begin = n_ * id / parts_, end = n_ * (id + 1) / parts_;
      lock.unlock();
      fn(ctx, begin, end);
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::atomic<int> num_threads_{available_cores()};
  std::atomic<bool> busy_{false};
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  int workers_ = 0;
  uint64_t generation_ = 0;
  void (*fn_)(void*, int64_t, int64_t) = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int parts_ = 0;
  int pending_ = 0;
};

// Process-wide and never destroyed: detached workers outlive static
// destruction, and every worker_thread loading the addon shares one pool.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int get_num_threads() { return pool().num_threads(); }
void set_num_threads(int n) { pool().set_num_threads(n); }
void parallel_for(int64_t n, int64_t grain, void (*fn)(void*, int64_t, int64_t), void* ctx) {
  pool().run(n, grain, fn, ctx);
}

}  // namespace batchnorm
