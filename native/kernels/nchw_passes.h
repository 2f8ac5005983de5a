// NCHW: the elementwise passes, over all planes (each plane a run with its
// channel's coefficients) or over the runs of one channel (the paths that go
// channel by channel while the channel is in cache). Op and f: the fused
// ops (fused.h), f's arrays indexed as x.
#pragma once
#include "coeffs.h"
#include "fused.h"
#include "isa_ns.h"
#include "memory.h"
#include "parallel.h"
#include "run_passes.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct NchwPasses {
  using T = typename V::type;
  using Run = RunPasses<V>;

  // y from per-channel coefficients over every plane. Streamed (NT), each
  // plane prefetches the next: runs of a few KB are too short for the
  // hardware prefetcher to get ahead.
  template <bool NT, int Op = 0>
  static void affine(const Shape& sh, const T* x, T* y, const Coeffs<T>* k, const Fuse<T>& f = Fuse<T>{}) {
    const int64_t C = sh.c, HW = sh.s;
    parallel(sh.n * C, serial(sh) ? sh.n * C : (kUnit + HW - 1) / HW, [&](int64_t b, int64_t e) {
      // c = nc % C, counted (wrap) rather than divided per plane.
      for (int64_t nc = b, c = b % C; nc < e; ++nc, c = wrap(c + 1, C))
        Run::template affine<NT, Op>(x + nc * HW, y + nc * HW, HW, k[c],
                                     NT && nc + 1 < e ? x + (nc + 1) * HW : nullptr, f.at(nc * HW));
      if (NT) V::fence();
    });
  }

  // The runs of channel c: y from its coefficients. With `prefetch_next`,
  // channel c + 1 (each of its runs follows the same run of c) is fetched on
  // the way, so that its statistics pass reads from L2: with a tensor the L3
  // does not hold (kPrefetchBytes), memory then reads and writes at once
  // instead of taking turns. (The gradient pass, whose x and dy of two
  // channels overflow L2, measured no gain, so it does not.) The runs go last
  // sample first: the statistics pass read that one last, so the pass starts
  // on what L1 and L2 still hold, and what they dropped first comes last.
  template <bool NT, int Op = 0>
  static void affine_channel(const Shape& sh, const T* x, T* y, int64_t c, const Coeffs<T>& k,
                             bool prefetch_next, const Fuse<T>& f = Fuse<T>{}) {
    for (int64_t n = sh.n - 1; n >= 0; --n) {
      const int64_t off = (n * sh.c + c) * sh.s;
      Run::template affine<NT, Op>(x + off, y + off, sh.s, k, prefetch_next ? x + off + sh.s : nullptr,
                                   f.at(off));
    }
  }

  // dx from per-channel gradient coefficients over every plane.
  template <bool NT, int Op = 0>
  static void grad_input(const Shape& sh, const T* x, const T* dy, T* dx, const GradCoeffs<T>* k,
                         const Fuse<T>& f = Fuse<T>{}) {
    const int64_t C = sh.c, HW = sh.s;
    parallel(sh.n * C, serial(sh) ? sh.n * C : (kUnit + HW - 1) / HW, [&](int64_t b, int64_t e) {
      for (int64_t nc = b, c = b % C; nc < e; ++nc, c = wrap(c + 1, C))  // c = nc % C
        Run::template grad_input<NT, Op>(x + nc * HW, dy + nc * HW, dx + nc * HW, HW, k[c], f.at(nc * HW));
      if (NT) V::fence();
    });
  }

  // The runs of channel c: dx from its coefficients, last sample first (as
  // affine_channel).
  template <bool NT, int Op = 0>
  static void grad_input_channel(const Shape& sh, const T* x, const T* dy, T* dx, int64_t c,
                                 const GradCoeffs<T>& k, const Fuse<T>& f = Fuse<T>{}) {
    for (int64_t n = sh.n - 1; n >= 0; --n) {
      const int64_t off = (n * sh.c + c) * sh.s;
      Run::template grad_input<NT, Op>(x + off, dy + off, dx + off, sh.s, k, f.at(off));
    }
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
