// The parallel-for of the WebAssembly build: one thread (the module has no
// threads), so a region is one call over all of [0, n). The kernels' results
// never depend on how a region is split, so they are those of the addon.
#include "../threads.h"

namespace batchnorm {

int get_num_threads() { return 1; }
void set_num_threads(int) {}

void parallel_for(int64_t n, int64_t, void (*fn)(void*, int64_t, int64_t), void* ctx) {
  if (n > 0) fn(ctx, 0, n);
}

}  // namespace batchnorm
