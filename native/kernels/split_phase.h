// The split-phase kernels (split_args.h) of one ISA: the reductions and the
// elementwise passes of batchnorm.h, composed with the statistics in double.
// Included by each per-ISA file after batchnorm.h.
#pragma once
#include <cmath>

#include "batchnorm.h"
#include "split_args.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct SplitPhase {
  using T = typename V::type;
  using BN = BatchNorm<V>;

  // A channel's row blocks added up in order, as finish_rows adds them (the
  // shifted blocks' sums in ShiftedSums, merged at the end; a fallback
  // block's Moments merged as it comes): the same operations, so the same
  // statistics as forward-training's.
  static Moments row_moments(const RowStats<T>& rs, int64_t C, int64_t c) {
    Moments m = rs.out[c];
    ShiftedSums sums;
    for (int64_t u = 0; u < rs.units; ++u) {
      const RowPart& q = rs.part[u * C + c];
      if (q.shifted)
        sums.add(q.count, q.a, q.b);
      else
        merge(m, Moments{q.count, q.a, q.b});
    }
    sums.merge_into(m, double(rs.shift[c]));
    return m;
  }

  // Per channel: mean and m2 through forward-training's reduction for the
  // shape (rows, short planes or planes). A channel whose moments are not
  // finite (an infinite or NaN value, or float sums that overflowed) is
  // taken again by plain_moments, as forward-training does.
  static void local_moments(const LocalMomentsArgs<T>& a) {
    const Shape& sh = a.shape;
    Scratch<Moments> m(sh.c);
    auto one = [&](int64_t c, const Moments& mc) { m[c] = mc; };
    auto range = [&](const RowStats<T>& rs, int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) m[c] = row_moments(rs, sh.c, c);
    };
    const typename BN::Path path = BN::training_path(sh);
    if (path == BN::Path::rows)
      RowsReduce<V>::statistics(sh, a.x, one, range);
    else if (path == BN::Path::short_planes)
      ShortPlanes<V>::statistics(sh, a.x, one, range);
    else
      NchwReduce<V>::moments(sh, a.x, m.p);
    each_channel(sh, [&](int64_t c) {
      const Moments mc =
          std::isfinite(m[c].mean) && std::isfinite(m[c].m2) ? m[c] : plain_moments(sh, a.x, c);
      a.mean[c] = mc.mean;
      a.m2[c] = mc.m2;
    });
  }

  // Scalar math: y = (x - mean) * (invstd * weight) + bias, the mean split hi + lo in T (make_coeffs).
  static void normalize(const NormalizeArgs<T>& a) {
    Scratch<Coeffs<T>> k(a.shape.c);
    each_channel(a.shape, [&](int64_t c) {
      k[c] = make_coeffs<T>(a.mean[c], a.invstd[c] * weight_at(a.weight, c), bias_at(a.bias, c));
    });
    BN::affine(a.shape, a.x, a.y, k.p);
  }

  // The backward's sums around the mean rounded to T, then moved to the
  // double mean exactly: sum(dy * (x - mean)) = sum(dy * (x - mean_T)) + sum(dy) * (mean_T - mean).
  static void backward_reduce(const BackwardReduceArgs<T>& a) {
    const Shape& sh = a.shape;
    Scratch<T> mean(sh.c);
    for (int64_t c = 0; c < sh.c; ++c) mean[c] = T(a.mean[c]);
    const typename BN::Path path = BN::training_path(sh);
    if (path == BN::Path::rows)
      RowsReduce<V>::grad_sums(sh, a.x, a.dy, mean.p, a.sum_dy, a.sum_dy_xmu);
    else if (path == BN::Path::short_planes)
      ShortPlanes<V>::grad_sums(sh, a.x, a.dy, mean.p, a.sum_dy, a.sum_dy_xmu);
    else
      NchwReduce<V>::grad_sums(sh, a.x, a.dy, mean.p, a.sum_dy, a.sum_dy_xmu);
    for (int64_t c = 0; c < sh.c; ++c) a.sum_dy_xmu[c] += a.sum_dy[c] * (double(mean[c]) - a.mean[c]);
  }

  // dx = dy * k1 + (x - mean_T) * k2 + k3 through the backward's dx pass, with
  // k1 = weight * invstd, k2 = -k1 * invstd^2 * sum_dy_xmu / count,
  // k3 = -k1 * sum_dy / count + (mean_T - mean) * k2 (the mean's rounding to T).
  static void backward_elemt(const BackwardElemtArgs<T>& a) {
    const Shape& sh = a.shape;
    Scratch<GradCoeffs<T>> k(sh.c);
    for (int64_t c = 0; c < sh.c; ++c) {
      const double invstd = a.invstd[c], gw = invstd * a.sum_dy_xmu[c], n = a.count;
      const double k1 = weight_at(a.weight, c) * invstd, k2 = -k1 * invstd * gw / n,
                   k3 = -k1 * a.sum_dy[c] / n;
      const T mt = T(a.mean[c]);
      k[c] = GradCoeffs<T>{mt, T(k1), T(k2), T(k3 + (double(mt) - a.mean[c]) * k2)};
    }
    if (sh.channels_last) {
      if (RowsPasses<V>::stream(sh, 3))
        return RowsPasses<V>::template grad_input<true>(sh, a.x, a.dy, a.dx, k.p);
      return RowsPasses<V>::template grad_input<false>(sh, a.x, a.dy, a.dx, k.p);
    }
    if (streaming<T>(sh, 3)) return NchwPasses<V>::template grad_input<true>(sh, a.x, a.dy, a.dx, k.p);
    NchwPasses<V>::template grad_input<false>(sh, a.x, a.dy, a.dx, k.p);
  }
};

// (N, C) and NCHW with one value per plane run as channels-last (effective()).
template <class A, void (*F)(const A&)>
void on_effective(const A& a) {
  A b = a;
  b.shape = effective(a.shape);
  F(b);
}

template <class F32, class F64>
const SplitTable* split_table() {
  // clang-format off: the table's columns are float and double
  static const SplitTable table{
      &on_effective<LocalMomentsArgs<float>, &SplitPhase<F32>::local_moments>,
      &on_effective<LocalMomentsArgs<double>, &SplitPhase<F64>::local_moments>,
      &on_effective<NormalizeArgs<float>, &SplitPhase<F32>::normalize>,
      &on_effective<NormalizeArgs<double>, &SplitPhase<F64>::normalize>,
      &on_effective<BackwardReduceArgs<float>, &SplitPhase<F32>::backward_reduce>,
      &on_effective<BackwardReduceArgs<double>, &SplitPhase<F64>::backward_reduce>,
      &on_effective<BackwardElemtArgs<float>, &SplitPhase<F32>::backward_elemt>,
      &on_effective<BackwardElemtArgs<double>, &SplitPhase<F64>::backward_elemt>,
  };
  // clang-format on
  return &table;
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
