// A small persistent pool. Idle workers sleep on a condition variable; a
// thread that just finished a region polls for at most BATCHNORM_SPIN_US
// (50 us) first, never longer (see spin_ns), yielding its CPU to any thread
// that wants it (see poll_for). The caller, once its own part
// is done, runs the parts whose threads have not started (see Claim). One
// parallel region runs at a time; a region started while the pool is busy
// (another JS thread, an async call, a nested region) runs on its calling
// thread, which is correct because results never depend on the split; so
// does a region whose threads could not all be created (see grow).
#include "threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
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

// How long a thread that just finished its part of a region keeps polling
// before it blocks: waking a sleeping thread costs 30-150 us on this kind of
// VM (an idle vCPU is halted), more than the 20-200 us regions it would
// join. Polling bridges the regions of one call (statistics, then
// normalize) and back-to-back calls; a pool with nothing to do sleeps.
// BATCHNORM_SPIN_US overrides it (0: block at once).
int64_t spin_ns() {
  const char* env = std::getenv("BATCHNORM_SPIN_US");
  if (env && *env) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end && *end == '\0' && v >= 0 && v <= 100000) return int64_t(v) * 1000;
  }
  return 50 * 1000;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls done() for up to `ns` nanoseconds; true if it became true. The
// first kPausesBeforeYield rounds (about 8 us on Zen 4, whose `pause` takes
// about 100 cycles) with `pause`, then with sched_yield() between
// checks, as oneTBB's atomic_backoff does: a polling thread must not take its
// CPU from a thread that could run there (the caller itself, another process
// of the server). With one more busy process than cores, polling with pause
// alone made 2 threads about twice as slow as 1 (bench/ab.mjs --busy 1);
// with nothing else runnable, sched_yield() returns at once.
constexpr unsigned kPausesBeforeYield = 256;

template <class F>
bool poll_for(int64_t ns, F&& done) {
  if (ns <= 0) return done();
  const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  for (unsigned i = 1;; ++i) {
    if (done()) return true;
    if (i <= kPausesBeforeYield) {
      cpu_relax();
      if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) return done();
    } else {
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() >= until) return done();
    }
  }
}

class Pool {
 public:
  int num_threads() const { return num_threads_.load(std::memory_order_relaxed); }
  // Lowering the count also ends the workers past it (a pool once grown to
  // 1024 would otherwise keep 1023 threads for good). It waits for a region
  // in flight to end, so that no region reads claims_ while it shrinks.
  void set_num_threads(int n) {
    n = std::max(1, n);
    num_threads_.store(n, std::memory_order_relaxed);
    while (busy_.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // A retired worker's Claim lives until the worker has seen it (exited).
      retired_.erase(std::remove_if(retired_.begin(), retired_.end(),
                                    [](const std::unique_ptr<Claim>& c) { return c->exited; }),
                     retired_.end());
      if (int(claims_.size()) > n - 1) {
        for (size_t i = size_t(n - 1); i < claims_.size(); ++i) {
          claims_[i]->retired = true;
          retired_.push_back(std::move(claims_[i]));
        }
        claims_.resize(size_t(n - 1));
        parts_ = 0;  // the wake-up below is no region: a worker that stays runs nothing
        generation_.fetch_add(1, std::memory_order_release);
      }
    }
    wake_.notify_all();
    busy_.store(false, std::memory_order_release);
  }

  void run(int64_t n, int64_t grain, void (*fn)(void*, int64_t, int64_t), void* ctx) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int threads = num_threads();
    int64_t parts = std::min<int64_t>(threads, (n + grain - 1) / grain);
    if (parts <= 1 || busy_.exchange(true, std::memory_order_acquire)) {
      fn(ctx, 0, n);
      return;
    }
    uint64_t region = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Worker ids 1..parts-1; the caller is part 0. With fewer workers than
      // asked for (a thread could not be created), fewer, larger parts.
      parts = std::min<int64_t>(parts, grow(int(parts) - 1, threads) + 1);
      if (parts > 1) {
        fn_ = fn;
        ctx_ = ctx;
        n_ = n;
        parts_ = int(parts);
        pending_.store(int(parts) - 1, std::memory_order_relaxed);
        region = generation_.fetch_add(1, std::memory_order_release) + 1;
      }
    }
    if (parts <= 1) {  // not one worker could be started
      fn(ctx, 0, n);
      busy_.store(false, std::memory_order_release);
      return;
    }
    wake_.notify_all();

    fn(ctx, 0, n / parts);
    // A part whose thread has not woken yet: run it here rather than wait
    // for it (waking a thread costs 30-150 us here, more than many calls).
    for (int64_t id = 1; id < parts; ++id) {
      if (!claims_[size_t(id - 1)]->take(region)) continue;
      fn(ctx, n * id / parts, n * (id + 1) / parts);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }

    auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!poll_for(spin_ns_, finished)) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, finished);
    }
    busy_.store(false, std::memory_order_release);
  }

 private:
  // The last region whose part of one worker id has been taken, by the
  // worker or by the caller; region numbers only grow, so a thread still
  // holding an ended region can never take a part of a later one.
  struct Claim {
    alignas(64) std::atomic<uint64_t> region{0};
    bool retired = false;  // its worker is to end (set_num_threads lowered the count); under mutex_
    bool exited = false;   // its worker saw that and ended; under mutex_
    bool take(uint64_t r) {
      uint64_t v = region.load(std::memory_order_relaxed);
      do {
        if (v >= r) return false;
      } while (!region.compare_exchange_weak(v, r, std::memory_order_acq_rel, std::memory_order_relaxed));
      return true;
    }
  };

  // Starts workers until there are `want`; returns how many there are. A
  // thread that cannot be created (RLIMIT_NPROC, or no address space left for
  // its stack: std::system_error; std::bad_alloc) ends the growth there: the
  // regions run on the workers there are, and the thread count is lowered to
  // match (`threads`: the count this region read; a setNumThreads since then
  // is kept), so that get_num_threads() reports what a region really uses
  // and later regions do not try again on every call. A later
  // set_num_threads() asks for more, and the next region tries once more.
  // Nothing escapes: a sync call or an async job must never see an exception
  // from the pool. Called under mutex_.
  int grow(int want, int threads) {
    try {
      while (int(claims_.size()) < want) {
        claims_.push_back(std::make_unique<Claim>());
        try {
          std::thread(&Pool::worker_loop, this, int(claims_.size()), claims_.back().get()).detach();
        } catch (...) {
          claims_.pop_back();  // no thread holds it
          throw;
        }
      }
    } catch (...) {
      int expected = threads;
      num_threads_.compare_exchange_strong(expected, std::max(1, int(claims_.size()) + 1),
                                           std::memory_order_relaxed);
    }
    return std::min(want, int(claims_.size()));
  }

  void worker_loop(int id, Claim* claim) {
    uint64_t seen = 0;
    for (;;) {
      auto posted = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
      if (poll_for(spin_ns_, posted))
        lock.lock();  // the job's fields are read under the lock
      else {
        lock.lock();
        wake_.wait(lock, posted);
      }
      if (claim->retired) {
        claim->exited = true;
        return;
      }
      seen = generation_.load(std::memory_order_relaxed);
      if (id >= parts_) continue;
      auto fn = fn_;
      void* ctx = ctx_;
      const int64_t begin = n_ * id / parts_, end = n_ * (id + 1) / parts_;
      lock.unlock();
      if (!claim->take(seen)) continue;  // the caller ran it
      fn(ctx, begin, end);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> done_lock(mutex_);  // the caller checks pending_ under it before waiting
        done_.notify_one();
      }
    }
  }

  const int64_t spin_ns_ = spin_ns();
  std::atomic<int> num_threads_{available_cores()};
  std::atomic<bool> busy_{false};
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::unique_ptr<Claim>>
      claims_;  // one per worker; grows only inside run(), shrinks in set_num_threads()
  std::vector<std::unique_ptr<Claim>> retired_;  // of workers told to end, until they have
  std::atomic<uint64_t> generation_{0};
  void (*fn_)(void*, int64_t, int64_t) = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int parts_ = 0;
  std::atomic<int> pending_{0};
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
