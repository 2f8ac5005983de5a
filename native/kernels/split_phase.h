// The split-phase kernels (split_args.h) of one ISA: thin compositions of
// batchnorm.h's reductions and elementwise passes, with the statistics in
// double. Included by each per-ISA file right after batchnorm.h (which has
// no include guard: it is meant once per translation unit).
#pragma once
#include <cmath>

#include "split_args.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct SplitPhase {
  using T = typename V::type;
  using K = Kernels<V>;

  // NCHW: plane_moments (units merged in order); NHWC and (N, C): row blocks
  // of rows_per_block(C) rows, each over all channels in two passes
  // (rows_moments), merged in order. A channel whose moments are not finite
  // (an infinite or NaN value, or float sums that overflowed) is taken again
  // in plain double passes (plain_moments), as forward-training does.
  static void local_moments(const LocalMomentsArgs<T>& a) {
    const Shape& sh = a.shape;
    Scratch<Moments> m(sh.c);
    if (sh.channels_last) row_moments(sh, a.x, m.p);
    else K::plane_moments(sh, a.x, m.p);
    K::each_channel(sh, [&](int64_t c) {
      const Moments mc = std::isfinite(m[c].mean) && std::isfinite(m[c].m2) ? m[c] : K::plain_moments(sh, a.x, c);
      a.mean[c] = mc.mean;
      a.m2[c] = mc.m2;
    });
  }

  static void row_moments(const Shape& sh, const T* x, Moments* out) {
    const int64_t C = sh.c, rows = sh.n * sh.s, R = K::rows_per_block(C), units = (rows + R - 1) / R;
    const bool serial = sh.numel() < kSerialBelow;
    Scratch<Moments> part(units * C);
    parallel(units, serial ? units : 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t r0 = u * R, nr = rows - r0 < R ? rows - r0 : R;
        K::for_each_sweep(C, [&](auto sweep, int64_t c0) {
          using VV = typename decltype(sweep)::vec;
          K::template rows_moments<VV, decltype(sweep)::groups>(x + r0 * C, C, c0, nr, &part[u * C + c0]);
        });
      }
    });
    K::each_channel(sh, [&](int64_t c) {
      Moments m;
      for (int64_t u = 0; u < units; ++u) merge(m, part[u * C + c]);
      out[c] = m;
    });
  }

  // Scalar math: y = (x - mean) * (invstd * weight) + bias, the mean split
  // hi + lo in T (make_coeffs), through forward-training's pass.
  static void normalize(const NormalizeArgs<T>& a) {
    Scratch<Coeffs<T>> k(a.shape.c);
    K::each_channel(a.shape, [&](int64_t c) { k[c] = make_coeffs<T>(a.mean[c], a.invstd[c] * K::weight_at(a.weight, c), K::bias_at(a.bias, c)); });
    K::apply_affine(a.shape, a.x, a.y, k.p);
  }

  // The backward's sums (grad_sums) around the mean rounded to T, then
  // moved to the double mean exactly:
  //   sum(dy * (x - mean)) = sum(dy * (x - mean_T)) + sum(dy) * (mean_T - mean)
  static void backward_reduce(const BackwardReduceArgs<T>& a) {
    const int64_t C = a.shape.c;
    Scratch<T> mean(C);
    for (int64_t c = 0; c < C; ++c) mean[c] = T(a.mean[c]);
    BackwardArgs<T> b{};
    b.shape = a.shape, b.x = a.x, b.dy = a.dy, b.mean = mean.p;
    K::grad_sums(b, a.sum_dy, a.sum_dy_xmu);
    for (int64_t c = 0; c < C; ++c) a.sum_dy_xmu[c] += a.sum_dy[c] * (double(mean[c]) - a.mean[c]);
  }

  // dx = dy * k1 + (x - mean_T) * k2 + k3 through the backward's dx pass, with
  // k1 = weight * invstd, k2 = -k1 * invstd^2 * sum_dy_xmu / count,
  // k3 = -k1 * sum_dy / count + (mean_T - mean) * k2 (the mean's rounding to T).
  static void backward_elemt(const BackwardElemtArgs<T>& a) {
    const Shape& sh = a.shape;
    const int64_t C = sh.c;
    Scratch<typename K::GradCoeffs> k(C);
    for (int64_t c = 0; c < C; ++c) {
      const double invstd = a.invstd[c], gw = invstd * a.sum_dy_xmu[c], n = a.count;
      const double k1 = K::weight_at(a.weight, c) * invstd, k2 = -k1 * invstd * gw / n, k3 = -k1 * a.sum_dy[c] / n;
      const T mt = T(a.mean[c]);
      k[c] = typename K::GradCoeffs{mt, T(k1), T(k2), T(k3 + (double(mt) - a.mean[c]) * k2)};
    }
    BackwardArgs<T> b{};
    b.shape = sh, b.x = a.x, b.dy = a.dy, b.dx = a.dx;
    if (sh.channels_last ? K::rows_stream(sh, 3) : K::streaming(sh, 3)) K::template grad_input<true>(b, k.p);
    else K::template grad_input<false>(b, k.p);
  }
};

// (N, C) and NCHW with one value per plane run as channels-last (effective()).
template <class V, class A, void (*F)(const A&)>
void on_effective(const A& a) {
  A b = a;
  b.shape = effective(a.shape);
  F(b);
}

template <class F32, class F64>
const SplitTable* split_table() {
  static const SplitTable table{
      &on_effective<F32, LocalMomentsArgs<float>, &SplitPhase<F32>::local_moments>,
      &on_effective<F64, LocalMomentsArgs<double>, &SplitPhase<F64>::local_moments>,
      &on_effective<F32, NormalizeArgs<float>, &SplitPhase<F32>::normalize>,
      &on_effective<F64, NormalizeArgs<double>, &SplitPhase<F64>::normalize>,
      &on_effective<F32, BackwardReduceArgs<float>, &SplitPhase<F32>::backward_reduce>,
      &on_effective<F64, BackwardReduceArgs<double>, &SplitPhase<F64>::backward_reduce>,
      &on_effective<F32, BackwardElemtArgs<float>, &SplitPhase<F32>::backward_elemt>,
      &on_effective<F64, BackwardElemtArgs<double>, &SplitPhase<F64>::backward_elemt>,
  };
  return &table;
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
