// NCHW: the per-channel reductions over planes, unit by unit (nchw_units.h):
// the moments of x, and the gradient sums of dy and dy * (x - mean).
#pragma once
#include "isa_ns.h"
#include "moments.h"
#include "nchw_units.h"
#include "parallel.h"
#include "run_sums.h"
#include "scratch.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct NchwReduce {
  using T = typename V::type;
  using U = NchwUnits<V>;
  using Units = typename U::Units;
  using Runs = RunSums<V>;

  // A unit's first block takes two passes; the blocks after it one pass,
  // around the first block's mean, unless far_from_shift (then their own),
  // so a channel that drifts along the batch costs time, never accuracy.
  // The one-pass blocks add up in ShiftedSums (one merge a unit, not one a
  // block).
  static Moments unit_moments(const Shape& sh, const Units& us, const T* x, int64_t c, int64_t u) {
    const int64_t stride = sh.c * sh.s;
    Moments m;
    T shift = 0;
    ShiftedSums rest;
    U::unit_blocks(sh, us, c, u, [&](int64_t off, int64_t runs, int64_t len) {
      if (m.count == 0) {
        merge(m, Runs::block_moments(x + off, stride, runs, len));
        shift = T(m.mean);
        return;
      }
      const double count = double(runs * len);
      double sd, sd2;
      Runs::shifted_sums(x + off, stride, runs, len, shift, sd, sd2);
      if (far_from_shift(count, sd, sd2)) return merge(m, Runs::block_moments(x + off, stride, runs, len));
      rest.add(count, sd, sd2);
    });
    rest.merge_into(m, double(shift));
    return m;
  }

  // The moments of channel c: its units in order.
  static Moments channel_moments(const Shape& sh, const Units& us, const T* x, int64_t c) {
    Moments m;
    for (int64_t u = 0; u < us.per_channel; ++u) merge(m, unit_moments(sh, us, x, c, u));
    return m;
  }

  // The moments of every channel, into `out` (C entries): all units of all
  // channels in parallel, then each channel's merged in order.
  static void moments(const Shape& sh, const T* x, Moments* out) {
    const int64_t C = sh.c;
    const Units us = U::units_of(sh);
    const int64_t units = us.per_channel;
    Scratch<Moments> part(C * units);
    parallel(C * units, serial(sh) ? C * units : 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) part[k] = unit_moments(sh, us, x, k / units, k % units);
    });
    for (int64_t c = 0; c < C; ++c) {
      Moments m;
      for (int64_t u = 0; u < units; ++u) merge(m, part[c * units + u]);
      out[c] = m;
    }
  }

  // Gradient sums of unit u of channel c around `mean`: g = sum(dy), h =
  // sum(dy * (x - mean)). `prefetch_next`: for a tensor larger than the
  // caches, each run's block prefetches the same block of the next sample (on
  // a cached tensor it only costs).
  // Op kGate: dy gated by f.gate > 0 (fused.h), f indexed as x.
  template <int Op = 0>
  static void unit_grad_sums(const Shape& sh, const Units& us, const T* x, const T* dy, T mean, int64_t c,
                             int64_t u, double& g, double& h, bool prefetch_next,
                             const Fuse<T>& f = Fuse<T>{}) {
    g = 0, h = 0;
    U::unit_blocks(sh, us, c, u, [&](int64_t off, int64_t runs, int64_t len) {
      const int64_t next = sh.c * sh.s;  // the same place in the next sample
      Runs::template grad_sums<Op>(x + off, dy + off, next, runs, len, mean, g, h,
                                   prefetch_next && runs == 1 && off + next < sh.numel() ? next : 0,
                                   f.at(off));
    });
  }

  // The gradient sums of channel c, its units in order (prefetching as above).
  template <int Op = 0>
  static void channel_grad_sums(const Shape& sh, const Units& us, const T* x, const T* dy, T mean, int64_t c,
                                double& sdy, double& sdyx, const Fuse<T>& f = Fuse<T>{}) {
    sdy = 0, sdyx = 0;
    for (int64_t u = 0; u < us.per_channel; ++u) {
      double g, h;
      unit_grad_sums<Op>(sh, us, x, dy, mean, c, u, g, h, true, f);
      sdy += g, sdyx += h;
    }
  }

  // Per channel: sdy = sum(dy), sdyx = sum(dy * (x - mean[c])), all units of
  // all channels in parallel, then each channel's added up in order.
  template <int Op = 0>
  static void grad_sums(const Shape& sh, const T* x, const T* dy, const T* mean, double* sdy, double* sdyx,
                        const Fuse<T>& f = Fuse<T>{}) {
    const int64_t C = sh.c;
    const Units us = U::units_of(sh);
    const int64_t units = us.per_channel;
    Scratch<double> pg(C * units), ph(C * units);
    parallel(C * units, serial(sh) ? C * units : 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k)
        unit_grad_sums<Op>(sh, us, x, dy, mean[k / units], k / units, k % units, pg[k], ph[k], false, f);
    });
    for (int64_t c = 0; c < C; ++c) {
      double g = 0, h = 0;
      for (int64_t u = 0; u < units; ++u) g += pg[c * units + u], h += ph[c * units + u];
      sdy[c] = g, sdyx[c] = h;
    }
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
