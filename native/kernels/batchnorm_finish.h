// BatchNorm's per-channel math, between the reductions and the elementwise
// passes: from a channel's moments to its saved and running statistics and
// the coefficients of y; from its gradient sums to the weight and bias
// gradients and the coefficients of dx; eval's coefficients from the given
// statistics. The formulas are in README.md.
#pragma once
#include "coeffs.h"
#include "isa_ns.h"
#include "moments.h"
#include "parallel.h"
#include "row_blocks.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct BatchNormFinish {
  using T = typename V::type;

  // Channel c's saved and running statistics from its mean, its invstd and
  // the variance the running statistics take (unbiased or not); returns its
  // coefficients of y.
  static Coeffs<T> store_channel(const ForwardTrainingArgs<T>& a, int64_t c, double mean, double invstd,
                                 double running) {
    a.save_mean[c] = T(mean);
    a.save_invstd[c] = T(invstd);
    if (a.running_mean) {
      a.running_mean[c] = T((1 - a.momentum) * double(a.running_mean[c]) + a.momentum * mean);
      a.running_var[c] = T((1 - a.momentum) * double(a.running_var[c]) + a.momentum * running);
    }
    return make_coeffs<T>(mean, invstd * weight_at(a.weight, c), bias_at(a.bias, c));
  }

  // Writes channel c's statistics; returns its coefficients of y. Moments
  // that are not finite come from a channel with an infinite or NaN value,
  // or with finite values whose float sums or squares overflow (|x - shift|
  // above about 1.8e19, or a block's sum of values near 1e36; in double,
  // squares past 1e154): that channel's are taken again by plain_moments,
  // PyTorch's formula in double, so they are PyTorch's (and exact where float
  // overflowed). A finite channel pays one test.
  static Coeffs<T> finish_channel(const ForwardTrainingArgs<T>& a, int64_t c, const Moments& moments) {
    const Moments m =
        std::isfinite(moments.mean) && std::isfinite(moments.m2) ? moments : plain_moments(a.shape, a.x, c);
    const double n = m.count, var = m.m2 / n, invstd = 1.0 / std::sqrt(var + a.eps);
    return store_channel(a, c, m.mean, invstd, a.unbiased && n > 1 ? var * n / (n - 1) : var);
  }

  // Channels [c0, c1) of row statistics (RowStats): each channel's row blocks
  // added up in order (the shifted ones' sums as ShiftedSums adds them,
  // merged once at the end; a fallback block merged as it comes), then
  // finish_channel. Up to kFinishChannels channels at a time, in three
  // passes: the blocks, unit by unit, into arrays; the five divisions and the
  // square root of finish_channel's math in the ISA's double vectors, D::W
  // channels at a time (the same operations in the same order, so the same
  // bits); the results written out. A channel with a fallback block, with
  // moments that are not finite (finish_channel takes them again), or short
  // of a whole vector goes one by one.
  static void finish_rows(const ForwardTrainingArgs<T>& a, const RowStats<T>& rs, int64_t c0, int64_t c1,
                          Coeffs<T>* k) {
    using D = typename V::f64;
    constexpr int L = D::W, K = kFinishChannels;
    const int64_t C = a.shape.c;
    double n1[K], mean1[K], m2_1[K], n[K], sd[K], sd2[K], shift[K];
    double o_n[K], o_mean[K], o_m2[K], o_var[K], o_invstd[K], o_unbiased[K];
    bool fell_back[K];  // a fallback block: the channel goes one by one
    for (int64_t b = c0; b < c1; b += K) {
      const int cs = int(c1 - b < K ? c1 - b : K), vs = cs / L * L;
      for (int i = 0; i < cs; ++i) {
        const Moments& f = rs.out[b + i];
        n1[i] = f.count, mean1[i] = f.mean, m2_1[i] = f.m2, shift[i] = double(rs.shift[b + i]);
        n[i] = 0, sd[i] = 0, sd2[i] = 0, fell_back[i] = false;
      }
      // Unit by unit along the rows of `part`, not channel by channel down
      // its columns (a channel's entries are C RowParts apart, in the same
      // cache sets): the shifted blocks' sums as ShiftedSums adds them, a
      // fallback block merged into the channel's Moments (n1, mean1, m2_1)
      // as it comes.
      for (int64_t u = 0; u < rs.units; ++u) {
        const RowPart* q = rs.part + u * C + b;
        for (int i = 0; i < cs; ++i) {
          if (q[i].shifted) {
            n[i] += q[i].count, sd[i] += q[i].a, sd2[i] += q[i].b;
            continue;
          }
          Moments m{n1[i], mean1[i], m2_1[i]};
          merge(m, Moments{q[i].count, q[i].a, q[i].b});
          n1[i] = m.count, mean1[i] = m.mean, m2_1[i] = m.m2, fell_back[i] = true;
        }
      }
      // Scalar math (moments_from_shifted, merge into the first rows', finish_channel):
      //   d = sd / n;  q = max(sd2 - sd * d, 0);  N = n1 + n;  delta = (shift + d) - mean1;  w = n / N
      //   mean = mean1 + delta * w;  m2 = m2_1 + (q + delta * delta * n1 * w)
      //   var = m2 / N;  invstd = 1 / sqrt(var + eps);  unbiased = var * N / (N - 1)
      for (int i = 0; i < vs; i += L) {
        const D vn = D::load(n + i), vn1 = D::load(n1 + i), vsd = D::load(sd + i),
                vmean1 = D::load(mean1 + i);
        const D d = D::div(vsd, vn), q = D::nonneg(D::sub(D::load(sd2 + i), D::mul(vsd, d)));
        const D N = D::add(vn1, vn), delta = D::sub(D::add(D::load(shift + i), d), vmean1), w = D::div(vn, N);
        const D m2 = D::add(D::load(m2_1 + i), D::add(q, D::mul(D::mul(D::mul(delta, delta), vn1), w)));
        const D var = D::div(m2, N);
        D::store(o_n + i, N);
        D::store(o_mean + i, D::add(vmean1, D::mul(delta, w)));
        D::store(o_m2 + i, m2);
        D::store(o_var + i, var);
        D::store(o_invstd + i, D::div(D::set1(1.0), D::sqrt(D::add(var, D::set1(a.eps)))));
        D::store(o_unbiased + i, D::div(D::mul(var, N), D::sub(N, D::set1(1.0))));
      }
      for (int i = 0; i < cs; ++i) {
        const int64_t c = b + i;
        if (i >= vs || fell_back[i]) {
          Moments m{n1[i], mean1[i], m2_1[i]};
          ShiftedSums{n[i], sd[i], sd2[i]}.merge_into(m, shift[i]);
          k[c] = finish_channel(a, c, m);
        } else if (!std::isfinite(o_mean[i]) || !std::isfinite(o_m2[i])) {
          k[c] = finish_channel(a, c, Moments{o_n[i], o_mean[i], o_m2[i]});
        } else {
          k[c] = store_channel(a, c, o_mean[i], o_invstd[i],
                               a.unbiased && o_n[i] > 1 ? o_unbiased[i] : o_var[i]);
        }
      }
    }
  }

  // Eval's coefficients of channels [c0, c1) from the given statistics, as
  // finish_channel would make them, with the square roots and divisions in
  // double vectors (as finish_rows).
  static void eval_coeffs(const ForwardEvalArgs<T>& a, int64_t c0, int64_t c1, Coeffs<T>* k) {
    using D = typename V::f64;
    constexpr int L = D::W, K = kFinishChannels;
    double var[K], invstd[K];
    for (int64_t b = c0; b < c1; b += K) {
      const int cs = int(c1 - b < K ? c1 - b : K), vs = cs / L * L;
      for (int i = 0; i < cs; ++i) var[i] = double(a.var[b + i]);
      // Scalar math: invstd = 1 / sqrt(var + eps)
      for (int i = 0; i < vs; i += L)
        D::store(invstd + i, D::div(D::set1(1.0), D::sqrt(D::add(D::load(var + i), D::set1(a.eps)))));
      for (int i = vs; i < cs; ++i) invstd[i] = 1.0 / std::sqrt(var[i] + a.eps);
      for (int i = 0; i < cs; ++i)
        k[b + i] = make_coeffs<T>(double(a.mean[b + i]), invstd[i] * weight_at(a.weight, b + i),
                                  bias_at(a.bias, b + i));
    }
  }

  // Writes the weight and bias gradients of channel c; returns its dx coefficients.
  static GradCoeffs<T> finish_grad(const BackwardArgs<T>& a, int64_t c, double sdy, double sdyx) {
    const double n = double(a.shape.count_per_channel()), invstd = double(a.invstd[c]), gw = invstd * sdyx;
    if (a.grad_weight) a.grad_weight[c] = T(gw);
    if (a.grad_bias) a.grad_bias[c] = T(sdy);
    // dx = w*invstd*(dy - sdy/n - xhat*gw/n), xhat = (x - mean)*invstd
    const double k1 = weight_at(a.weight, c) * invstd;
    return GradCoeffs<T>{a.mean[c], T(k1), T(-k1 * invstd * gw / n), T(-k1 * sdy / n)};
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
