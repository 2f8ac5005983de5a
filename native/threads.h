// The parallel-for: a persistent pool of worker threads that sleep when idle.
// Work is split into contiguous ranges; callers must make their results
// independent of how the ranges fall (the kernels do: fixed units, fixed
// merge order), so any thread count gives bitwise the same result.
#pragma once
#include <cstdint>

namespace batchnorm {

// Threads a parallel region may use (>= 1). The default is the number of
// cores this process may run on. When a worker thread cannot be created
// (process or address-space limits), regions run on the threads there are
// and the count drops to match; set_num_threads asks for more again.
int get_num_threads();
void set_num_threads(int n);

// Calls fn(ctx, begin, end) over disjoint ranges covering [0, n). Ranges hold
// at least `grain` items where possible; runs on the calling thread alone when
// n <= grain or one thread is set. Plain function pointer (no std::function),
// so that no inline library code is shared across the per-ISA translation units.
// Throws nothing of its own (fn must not throw either).
void parallel_for(int64_t n, int64_t grain, void (*fn)(void*, int64_t, int64_t), void* ctx);

}  // namespace batchnorm
