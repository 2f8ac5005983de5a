// Reductions over runs of contiguous values, `stride` apart: a block of
// several runs at most kBlock values, whose float32 sums are handed to double
// at its end. Shared by every layout: an NCHW plane is a run, a short plane a
// run among samples, a (LayerNorm) row would be one too.
#pragma once
#include "fused.h"
#include "isa_ns.h"
#include "memory.h"
#include "moments.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct RunSums {
  using T = typename V::type;
  static constexpr int W = V::W;

  // Sums of d = x - shift over one block: `runs` runs of `len` values, `stride` apart.
  // Scalar math: d = x - shift; sd += d; sd2 += d * d
  static void shifted_sums(const T* x, int64_t stride, int64_t runs, int64_t len, T shift, double& sd,
                           double& sd2) {
    const V vs = V::set1(shift);
    V d0 = V::zero(), d1 = V::zero(), q0 = V::zero(), q1 = V::zero();
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < runs; ++r) {
      const T* p = x + r * stride;
      int64_t i = 0;
      for (; i + 2 * W <= len; i += 2 * W) {
        const V e0 = V::sub(V::load(p + i), vs), e1 = V::sub(V::load(p + i + W), vs);
        d0 = V::add(d0, e0);
        d1 = V::add(d1, e1);
        q0 = V::fmadd(e0, e0, q0);
        q1 = V::fmadd(e1, e1, q1);
      }
      for (; i + W <= len; i += W) {
        const V e0 = V::sub(V::load(p + i), vs);
        d0 = V::add(d0, e0);
        q0 = V::fmadd(e0, e0, q0);
      }
      for (; i < len; ++i) {
        const double e = double(T(p[i] - shift));
        s += e;
        s2 += e * e;
      }
    }
    sd = s + V::hsum(V::add(d0, d1));
    sd2 = s2 + V::hsum(V::add(q0, q1));
  }

  // One block in two passes from L1: its rough mean, then the sums around it.
  static Moments block_moments(const T* x, int64_t stride, int64_t runs, int64_t len) {
    // Scalar math: s = sum(x)
    V a0 = V::zero(), a1 = V::zero();
    double s = 0;
    for (int64_t r = 0; r < runs; ++r) {
      const T* p = x + r * stride;
      int64_t i = 0;
      for (; i + 2 * W <= len; i += 2 * W) {
        a0 = V::add(a0, V::load(p + i));
        a1 = V::add(a1, V::load(p + i + W));
      }
      for (; i + W <= len; i += W) a0 = V::add(a0, V::load(p + i));
      for (; i < len; ++i) s += double(p[i]);
    }
    s += V::hsum(V::add(a0, a1));
    const double count = double(runs * len);
    const T shift = T(s / count);
    double sd, sd2;
    shifted_sums(x, stride, runs, len, shift, sd, sd2);
    return moments_from_shifted(count, double(shift), sd, sd2);
  }

  // Gradient sums of one block around `mean`, added into sdy, sdyx.
  // Scalar math: sdy += dy; sdyx += dy * (x - mean)
  // `ahead` (0: none): also prefetches the values that far ahead (the same
  // stretch of the next sample), so that memory never waits for a new run.
  // Op kGate (fused.h): dy gated by f.gate > 0, f indexed as x.
  template <int Op = 0>
  static void grad_sums(const T* x, const T* dy, int64_t stride, int64_t runs, int64_t len, T mean,
                        double& sdy, double& sdyx, int64_t ahead = 0, const Fuse<T>& f = Fuse<T>{}) {
    using F = Fused<Op & kGate>;
    constexpr int64_t kLine = 64 / sizeof(T);
    const V vm = V::set1(mean);
    V g0 = V::zero(), g1 = V::zero(), h0 = V::zero(), h1 = V::zero();
    double s = 0, t = 0;
    for (int64_t r = 0; r < runs; ++r) {
      const T *px = x + r * stride, *pd = dy + r * stride;
      const Fuse<T> fr = f.at(r * stride);
      int64_t i = 0;
      for (; i + 2 * W <= len; i += 2 * W) {
        if (ahead && i % kLine < 2 * W)
          for (int64_t j = 0; j < 2 * W; j += kLine)
            prefetch(px + ahead + i + j), prefetch(pd + ahead + i + j);
        const V e0 = F::template input<V>(pd, fr, i), e1 = F::template input<V>(pd, fr, i + W);
        g0 = V::add(g0, e0);
        g1 = V::add(g1, e1);
        h0 = V::fmadd(e0, V::sub(V::load(px + i), vm), h0);
        h1 = V::fmadd(e1, V::sub(V::load(px + i + W), vm), h1);
      }
      for (; i + W <= len; i += W) {
        const V e0 = F::template input<V>(pd, fr, i);
        g0 = V::add(g0, e0);
        h0 = V::fmadd(e0, V::sub(V::load(px + i), vm), h0);
      }
      for (; i < len; ++i) {
        const double e = double(F::input1(pd, fr, i));
        s += e;
        t += e * double(T(px[i] - mean));
      }
    }
    sdy += s + V::hsum(V::add(g0, g1));
    sdyx += t + V::hsum(V::add(h0, h1));
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
