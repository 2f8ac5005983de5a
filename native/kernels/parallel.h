// How the kernels share work among the pool's threads (native/threads.h).
#pragma once
#include "../threads.h"
#include "isa_ns.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

// Runs f(begin, end) over [0, n) on the pool, in ranges of at least `grain`.
template <class F>
void parallel(int64_t n, int64_t grain, F&& f) {
  parallel_for(
      n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<F*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// A call below kSerialBelow elements stays on the calling thread.
inline bool serial(const Shape& sh) { return sh.numel() < kSerialBelow; }

// f(c0, c1) over ranges of channels, in parallel (64 channels a range): the
// per-channel math of a call (a square root and a few divisions a channel)
// is worth sharing on wide tensors. Each channel writes only its own entries.
template <class F>
void channel_ranges(const Shape& sh, F&& f) {
  parallel(sh.c, serial(sh) ? sh.c : 64, [&](int64_t c0, int64_t c1) { f(c0, c1); });
}
// f(c) for every channel, as channel_ranges.
template <class F>
void each_channel(const Shape& sh, F&& f) {
  channel_ranges(sh, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) f(c);
  });
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
