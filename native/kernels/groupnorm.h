// LayerNorm, RMSNorm and GroupNorm kernels (norm_args.h): which reduction and
// which elementwise pass run for which shape, over the shared pieces of the
// BatchNorm split (moments.h, run_sums.h, run_passes.h, rows_reduce.h,
// rows_passes.h, coeffs.h, scratch.h, parallel.h), written once over a vector
// type V and instantiated per ISA by native/kernels/<isa>.cc.
//
// Which path runs for which shape (the one place that says it):
//   S = 1, either order (LayerNorm, RMSNorm, (N, C) GroupNorm): rows of
//     C/groups values, a weight per value; the weight gradients are column
//     sums over fixed blocks of rows.
//   NCHW with S > 1: rows of (C/groups)*S values, a weight per run of S
//     (run_sums.h, run_passes.h).
//   channels-last with S > 1: per sample, the columns of each group across
//     its S rows (rows_reduce.h's gradient sums, rows_passes.h's passes).
// Units of work (rows, blocks of rows, samples) are fixed by the shape and
// merged in order: results are bitwise the same for any thread count.
#pragma once
#include <cmath>
#include <cstdint>

#include "coeffs.h"
#include "isa_ns.h"
#include "moments.h"
#include "norm_args.h"
#include "parallel.h"
#include "rows_passes.h"
#include "rows_reduce.h"
#include "run_passes.h"
#include "run_sums.h"
#include "scratch.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct Norms {
  using T = typename V::type;
  static constexpr int W = V::W;

  // ------------------------------------------------------------ statistics

  using Runs = RunSums<V>;
  using RunPass = RunPasses<V>;
  using Rows = RowsReduce<V>;
  using RowsPass = RowsPasses<V>;
  static constexpr int64_t kRowBlock = block_values(W);

  // Sums of d = x - shift and d^2 over x[0, m): run_sums.h's, a block of
  // block_values(W) values at a time (T sums handed to double at its end).
  static void shifted_sums(const T* x, int64_t m, T shift, double& sd, double& sd2) {
    sd = sd2 = 0;
    for (int64_t b = 0; b < m; b += kRowBlock) {
      const int64_t len = b + kRowBlock < m ? kRowBlock : m - b;
      double s, s2;
      Runs::shifted_sums(x + b, len, 1, len, shift, s, s2);
      sd += s, sd2 += s2;
    }
  }

  // Two plain passes in double: for values whose T sums overflow (deviations
  // past about 1.8e19 in float) or are not finite.
  static Moments plain_moments(const T* x, int64_t m) {
    double s = 0, q = 0;
    for (int64_t i = 0; i < m; ++i) s += double(x[i]);
    const double mean = s / double(m);
    for (int64_t i = 0; i < m; ++i) q += (double(x[i]) - mean) * (double(x[i]) - mean);
    return Moments{double(m), mean, q};
  }

  // Mean and sum of squared deviations of a contiguous row: one pass around a
  // rough mean (of its first values, rounded to T, so that a constant row's
  // deviations are exactly 0 and its mean exactly its value), a second around
  // the first's mean when the rough one lay further than a std away.
  static Moments row_moments(const T* x, int64_t m) {
    double rough = 0;
    const int64_t k = m < kShiftValues ? m : kShiftValues;
    for (int64_t i = 0; i < k; ++i) rough += double(x[i]);
    T shift = T(rough / double(k));
    double sd, sd2;
    shifted_sums(x, m, shift, sd, sd2);
    if (std::isfinite(sd2) && far_from_shift(double(m), sd, sd2)) {
      shift = T(moments_from_shifted(double(m), double(shift), sd, sd2).mean);
      shifted_sums(x, m, shift, sd, sd2);
    }
    if (!std::isfinite(sd) || !std::isfinite(sd2)) return plain_moments(x, m);
    return moments_from_shifted(double(m), double(shift), sd, sd2);
  }

  // mean(x^2) of a row, in double (sums of squares cannot cancel).
  static double mean_square(const T* x, int64_t m) {
    double sd, sd2;
    shifted_sums(x, m, T(0), sd, sd2);
    if (!std::isfinite(sd2)) {
      sd2 = 0;
      for (int64_t i = 0; i < m; ++i) sd2 += double(x[i]) * double(x[i]);
    }
    return sd2 / double(m);
  }

  // (mean, invstd) of a row, as the forward saves them.
  static void row_stats(const T* x, int64_t m, double eps, bool rms, double& mean, double& invstd) {
    if (rms) {
      mean = 0, invstd = 1 / std::sqrt(mean_square(x, m) + eps);
      return;
    }
    const Moments mo = row_moments(x, m);
    mean = mo.mean, invstd = 1 / std::sqrt(mo.m2 / double(m) + eps);
  }

  // ------------------------------------------------------------ elementwise

  // Scalar math: y[i] = (x[i] - c.mean) * c.scale + c.shift over [0, m)
  static void affine_run(const T* x, T* y, int64_t m, Coeffs<T> c) {
    RunPass::template affine<false>(x, y, m, c);
  }

  // A row with a weight and bias per value (S = 1):
  // Scalar math: a = inv * w[k]; y[k] = (x[k] - mh) * a + (b[k] - ml * a)
  static void affine_row(const T* x, T* y, int64_t m, const T* w, const T* b, double mean, double invstd) {
    const T mh = T(mean), ml = T(mean - double(mh)), inv = T(invstd);
    if (!w && !b) return affine_run(x, y, m, make_coeffs<T>(mean, invstd, 0));
    const V vmh = V::set1(mh), vinv = V::set1(inv), vnml = V::set1(-ml), one = V::set1(T(1)),
            zero = V::zero();
    int64_t k = 0;
    for (; k + W <= m; k += W) {
      const V a = w ? V::mul(vinv, V::load(w + k)) : V::mul(vinv, one);
      const V c = V::fmadd(vnml, a, b ? V::load(b + k) : zero);
      V::store(y + k, V::fmadd(V::sub(V::load(x + k), vmh), a, c));
    }
    for (; k < m; ++k) {
      const T a = inv * (w ? w[k] : T(1));
      y[k] = (x[k] - mh) * a + ((b ? b[k] : T(0)) - ml * a);
    }
  }

  // ------------------------------------------------------------ forward

  static void forward_rows(const GroupNormForwardArgs<T>& a) {
    const GroupShape& sh = a.shape;
    const int64_t m = sh.row_length(), cg = sh.per_group(), s = sh.s, G = sh.groups;
    parallel(sh.rows(), kSerialBelow / m + 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* x = a.x + r * m;
        T* y = a.y + r * m;
        double mean, invstd;
        row_stats(x, m, a.eps, a.rms, mean, invstd);
        a.save_mean[r] = T(mean), a.save_invstd[r] = T(invstd);
        const int64_t ch0 = (r % G) * cg;
        if (s == 1) {
          affine_row(x, y, m, a.weight ? a.weight + ch0 : nullptr, a.bias ? a.bias + ch0 : nullptr, mean,
                     invstd);
          continue;
        }
        for (int64_t k = 0; k < cg; ++k) {
          const int64_t ch = ch0 + k;
          const double scale = invstd * (a.weight ? double(a.weight[ch]) : 1.0),
                       shift = a.bias ? double(a.bias[ch]) : 0.0;
          affine_run(x + k * s, y + k * s, s, make_coeffs<T>(mean, scale, shift));
        }
      }
    });
  }

  // Channels-last, S > 1: a sample is S rows of C values. Its per-channel
  // sums (around each group's rough mean, from the sample's first row) run
  // across kColumnRows rows in T, then add up in double, per group; samples
  // in parallel. Then each sample's pass is rows_passes.h's, with a
  // coefficient per channel, its rows in parallel.
  static void forward_channels_last(const GroupNormForwardArgs<T>& a) {
    const GroupShape& sh = a.shape;
    const int64_t C = sh.c, S = sh.s, G = sh.groups, cg = sh.per_group(), m = sh.row_length();
    Scratch<Coeffs<T>> k(sh.n * C);
    parallel(sh.n, kSerialBelow / (S * C) + 1, [&](int64_t i0, int64_t i1) {
      Scratch<T> shift(C), acc(C), acc2(C);
      Scratch<double> sd(C), sd2(C);
      for (int64_t i = i0; i < i1; ++i) {
        const T* x = a.x + i * S * C;
        for (int64_t g = 0; g < G; ++g) {
          double rough = 0;
          for (int64_t c = 0; c < cg; ++c) rough += double(x[g * cg + c]);
          for (int64_t c = 0; c < cg; ++c) shift[g * cg + c] = a.rms ? T(0) : T(rough / double(cg));
        }
        for (int64_t ch = 0; ch < C; ++ch) sd[ch] = sd2[ch] = 0;
        column_sums(x, S, C, shift.p, acc.p, acc2.p, sd.p, sd2.p);
        for (int64_t g = 0; g < G; ++g) {
          double s1 = 0, s2 = 0;
          for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) s1 += sd[ch], s2 += sd2[ch];
          double mean, invstd;
          if (a.rms) {
            if (!std::isfinite(s2)) s2 = plain_group(x, S, C, g * cg, cg, true).m2;
            mean = 0, invstd = 1 / std::sqrt(s2 / double(m) + a.eps);
          } else {
            Moments mo = moments_from_shifted(double(m), double(shift[g * cg]), s1, s2);
            if (!std::isfinite(s1) || !std::isfinite(s2) || far_from_shift(double(m), s1, s2))
              mo = plain_group(x, S, C, g * cg, cg, false);
            mean = mo.mean, invstd = 1 / std::sqrt(mo.m2 / double(m) + a.eps);
          }
          a.save_mean[i * G + g] = T(mean), a.save_invstd[i * G + g] = T(invstd);
          for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch)
            k[i * C + ch] = make_coeffs<T>(mean, invstd * weight_at(a.weight, ch), bias_at(a.bias, ch));
        }
      }
    });
    // Scalar math: y = (x - k[ch].mean) * k[ch].scale + k[ch].shift, row by row
    for (int64_t i = 0; i < sh.n; ++i)
      RowsPass::template affine<false>(sample_shape(sh), a.x + i * S * C, a.y + i * S * C, k.p + i * C);
  }

  // One channels-last sample as BatchNorm's kernels see a tensor: S rows of C.
  static Shape sample_shape(const GroupShape& sh) {
    Shape s;
    s.n = 1, s.c = sh.c, s.s = sh.s, s.channels_last = true;
    return s;
  }

  // Per channel over S rows of C, d = x - shift[ch]: sd += sum(d), sd2 += sum(d^2),
  // in T across kColumnRows rows, then in double.
  static void column_sums(const T* x, int64_t S, int64_t C, const T* shift, T* acc, T* acc2, double* sd,
                          double* sd2) {
    for (int64_t j0 = 0; j0 < S; j0 += kColumnRows) {
      const int64_t j1 = j0 + kColumnRows < S ? j0 + kColumnRows : S;
      for (int64_t ch = 0; ch < C; ++ch) acc[ch] = acc2[ch] = T(0);
      for (int64_t j = j0; j < j1; ++j) {
        const T* xr = x + j * C;
        int64_t ch = 0;
        // Scalar math: d = x[j][ch] - shift[ch]; acc[ch] += d; acc2[ch] += d * d
        for (; ch + W <= C; ch += W) {
          const V d = V::sub(V::load(xr + ch), V::load(shift + ch));
          V::store(acc + ch, V::add(V::load(acc + ch), d));
          V::store(acc2 + ch, V::fmadd(d, d, V::load(acc2 + ch)));
        }
        for (; ch < C; ++ch) {
          const T d = xr[ch] - shift[ch];
          acc[ch] += d, acc2[ch] += d * d;
        }
      }
      for (int64_t ch = 0; ch < C; ++ch) sd[ch] += double(acc[ch]), sd2[ch] += double(acc2[ch]);
    }
  }

  // A channels-last group's moments (or, rms, its sum of squares in m2) in
  // two plain passes in double: the rare group its T sums cannot serve.
  static Moments plain_group(const T* x, int64_t S, int64_t C, int64_t ch0, int64_t cg, bool rms) {
    double s = 0, q = 0;
    const double m = double(S * cg);
    if (!rms)
      for (int64_t j = 0; j < S; ++j)
        for (int64_t k = 0; k < cg; ++k) s += double(x[j * C + ch0 + k]);
    const double mean = rms ? 0 : s / m;
    for (int64_t j = 0; j < S; ++j)
      for (int64_t k = 0; k < cg; ++k)
        q += (double(x[j * C + ch0 + k]) - mean) * (double(x[j * C + ch0 + k]) - mean);
    return Moments{m, mean, q};
  }

  static void forward(const GroupNormForwardArgs<T>& a) {
    if (a.shape.channels_last && a.shape.s > 1) return forward_channels_last(a);
    if (split(a.shape, kRowBlock)) return forward_split(a);
    forward_rows(a);
  }

  // ------------------------------------------------------------ few long rows

  // Few rows, each long (LayerNorm over (1, 1 << 20) or (2, 4M)): rows in
  // parallel would leave threads idle, so each row's work is split into
  // tasks of kSplitBlocks whole blocks. The forward's tasks sum their blocks
  // into scratch, added up per row in block order as shifted_sums adds them;
  // the backward's tasks keep each block's vector sums, added up per row in
  // block order with the scalar tail where backward_row adds it. The passes
  // run over the same tasks and are elementwise. So a split row has exactly
  // the bits of forward_rows and backward_rows, on any thread count.
  static constexpr int64_t kSplitBlocks = 32;
  // (No <algorithm>: the WebAssembly build has no C++ library.)
  static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
  static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

  static bool split(const GroupShape& sh, int64_t block) {
    return sh.rows() < 2 * int64_t(get_num_threads()) && sh.row_length() >= 2 * kSplitBlocks * block;
  }

  // Blocks of a row and tasks of a row (of kSplitBlocks blocks each).
  static int64_t blocks_of(int64_t m, int64_t block) { return (m + block - 1) / block; }
  static int64_t tasks_of(int64_t m, int64_t block) {
    return (blocks_of(m, block) + kSplitBlocks - 1) / kSplitBlocks;
  }

  static void forward_split(const GroupNormForwardArgs<T>& a) {
    const GroupShape& sh = a.shape;
    const int64_t m = sh.row_length(), R = sh.rows(), cg = sh.per_group(), s = sh.s, G = sh.groups;
    const int64_t nb = blocks_of(m, kRowBlock), per = tasks_of(m, kRowBlock);
    Scratch<double> bs(R * nb), bs2(R * nb), mean(R), invstd(R);
    Scratch<T> shift(R);
    Scratch<char> todo(R);
    for (int64_t r = 0; r < R; ++r) {
      double rough = 0;
      const int64_t k = m < kShiftValues ? m : kShiftValues;
      for (int64_t i = 0; i < k; ++i) rough += double(a.x[r * m + i]);
      shift[r] = a.rms ? T(0) : T(rough / double(k));
      todo[r] = 1;
    }
    // Each todo row's block sums around shift[r], then (sd, sd2) in block order.
    Scratch<double> sd(R), sd2(R);
    const auto sums = [&] {
      parallel(R * per, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t r = t / per, j1 = min64((t % per + 1) * kSplitBlocks, nb);
          if (!todo[r]) continue;
          for (int64_t j = t % per * kSplitBlocks; j < j1; ++j) {
            const int64_t b = j * kRowBlock, len = min64(kRowBlock, m - b);
            Runs::shifted_sums(a.x + r * m + b, len, 1, len, shift[r], bs[r * nb + j], bs2[r * nb + j]);
          }
        }
      });
      for (int64_t r = 0; r < R; ++r) {
        if (!todo[r]) continue;
        sd[r] = sd2[r] = 0;
        for (int64_t j = 0; j < nb; ++j) sd[r] += bs[r * nb + j], sd2[r] += bs2[r * nb + j];
      }
    };
    sums();
    // row_moments' second pass, for the rows whose rough mean lay far off.
    bool again = false;
    for (int64_t r = 0; r < R; ++r) {
      todo[r] = !a.rms && std::isfinite(sd2[r]) && far_from_shift(double(m), sd[r], sd2[r]);
      if (todo[r])
        shift[r] = T(moments_from_shifted(double(m), double(shift[r]), sd[r], sd2[r]).mean), again = true;
    }
    if (again) sums();
    for (int64_t r = 0; r < R; ++r) {
      const T* x = a.x + r * m;
      if (a.rms) {
        double q = sd2[r];
        if (!std::isfinite(q)) {
          q = 0;
          for (int64_t i = 0; i < m; ++i) q += double(x[i]) * double(x[i]);
        }
        mean[r] = 0, invstd[r] = 1 / std::sqrt(q / double(m) + a.eps);
      } else {
        const Moments mo = !std::isfinite(sd[r]) || !std::isfinite(sd2[r])
                               ? plain_moments(x, m)
                               : moments_from_shifted(double(m), double(shift[r]), sd[r], sd2[r]);
        mean[r] = mo.mean, invstd[r] = 1 / std::sqrt(mo.m2 / double(m) + a.eps);
      }
      a.save_mean[r] = T(mean[r]), a.save_invstd[r] = T(invstd[r]);
    }
    parallel(R * per, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r = t / per, c0 = t % per * kSplitBlocks * kRowBlock,
                      c1 = min64(c0 + kSplitBlocks * kRowBlock, m), ch0 = (r % G) * cg;
        const T* x = a.x + r * m;
        T* y = a.y + r * m;
        if (s == 1) {
          affine_row(x + c0, y + c0, c1 - c0, a.weight ? a.weight + ch0 + c0 : nullptr,
                     a.bias ? a.bias + ch0 + c0 : nullptr, mean[r], invstd[r]);
          continue;
        }
        for (int64_t k = c0 / s; k * s < c1; ++k) {
          const int64_t lo = max64(c0, k * s), hi = min64(c1, (k + 1) * s), ch = ch0 + k;
          const double scale = invstd[r] * (a.weight ? double(a.weight[ch]) : 1.0),
                       sh_ = a.bias ? double(a.bias[ch]) : 0.0;
          affine_run(x + lo, y + lo, hi - lo, make_coeffs<T>(mean[r], scale, sh_));
        }
      }
    });
  }

  // backward_rows for one unit of long rows (rows <= kGradRows, one group):
  // tasks of columns; per row, per block, the vector sums' horizontal sums
  // kept in scratch; per column, the rows' dy and dy * xhat summed in row order.
  template <bool kWeight>
  static void backward_split(const GroupNormBackwardArgs<T>& a) {
    const int64_t m = a.shape.c, R = a.shape.rows(), nb = blocks_of(m, kBlock), per = tasks_of(m, kBlock);
    const bool grads = a.grad_weight || a.grad_bias;
    Scratch<double> h1(R * nb), h2(R * nb);
    const T* w = kWeight ? a.weight : nullptr;
    parallel(per, 1, [&](int64_t t0, int64_t t1) {
      // One pair of column-sum arrays per range, zeroed per task (the WebAssembly
      // heap frees nothing until the next call: not one pair per task).
      Scratch<T> ca(kSplitBlocks * kBlock), cb(kSplitBlocks * kBlock);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t c0 = t * kSplitBlocks * kBlock, c1 = min64(c0 + kSplitBlocks * kBlock, m);
        for (int64_t k = 0; k < c1 - c0; ++k) ca[k] = cb[k] = T(0);
        for (int64_t r = 0; r < R; ++r) {
          const T* x = a.x + r * m;
          const T* dy = a.dy + r * m;
          const double mean = double(a.mean[r]), invstd = double(a.invstd[r]);
          const T mh = T(mean), inv = T(invstd), nml = T(-(mean - double(mh)) * invstd);
          const V vmh = V::set1(mh), vinv = V::set1(inv), vnml = V::set1(nml);
          // Scalar math: as backward_row's
          for (int64_t k0 = c0; k0 < c1; k0 += kBlock) {
            const int64_t e = k0 + kBlock < m ? k0 + kBlock : m;
            V s1 = V::zero(), s2 = V::zero();
            int64_t k = k0;
            for (; k + W <= e; k += W) {
              const V d = V::load(dy + k), xc = V::sub(V::load(x + k), vmh);
              const V xhat = V::fmadd(xc, vinv, vnml);
              V wd = d;
              if constexpr (kWeight) wd = V::mul(d, V::load(w + k));
              V::store(ca.p + k - c0, V::add(V::load(ca.p + k - c0), d));
              V::store(cb.p + k - c0, V::fmadd(d, xhat, V::load(cb.p + k - c0)));
              s1 = V::add(s1, wd), s2 = V::fmadd(wd, xc, s2);
            }
            for (; k < e; ++k) {
              const T d = dy[k], xc = x[k] - mh;
              ca[k - c0] += d, cb[k - c0] += d * (xc * inv + nml);
            }
            h1[r * nb + k0 / kBlock] = V::hsum(s1), h2[r * nb + k0 / kBlock] = V::hsum(s2);
          }
        }
        if (grads)
          for (int64_t k = c0; k < c1; ++k) {
            if (a.grad_bias) a.grad_bias[k] = T(0.0 + double(ca[k - c0]));
            if (a.grad_weight) a.grad_weight[k] = T(0.0 + double(cb[k - c0]));
          }
      }
    });
    if (!a.dx) return;
    Scratch<T> k2(R), k3(R);
    for (int64_t r = 0; r < R; ++r) {
      const T* x = a.x + r * m;
      const T* dy = a.dy + r * m;
      const double mean = double(a.mean[r]), invstd = double(a.invstd[r]);
      const T mh = T(mean);
      const double ml = mean - double(mh);
      double g1 = 0, g2 = 0;
      for (int64_t j = 0; j < nb; ++j) {
        if (j == nb - 1)
          for (int64_t k = m - m % W; k < m; ++k) {
            const T d = dy[k], xc = x[k] - mh, wd = kWeight ? d * w[k] : d;
            g1 += double(wd), g2 += double(wd) * double(xc);
          }
        g1 += h1[r * nb + j], g2 += h2[r * nb + j];
      }
      g2 -= ml * g1;
      group_coeffs(invstd, g1, g2, double(m), ml, a.rms, k2[r], k3[r]);
    }
    parallel(R * per, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r = t / per, c0 = t % per * kSplitBlocks * kBlock,
                      c1 = min64(c0 + kSplitBlocks * kBlock, m);
        const T* x = a.x + r * m;
        const T* dy = a.dy + r * m;
        T* dx = a.dx + r * m;
        const T mh = T(double(a.mean[r])), inv = T(double(a.invstd[r]));
        if constexpr (!kWeight) {
          grad_run(x + c0, dy + c0, dx + c0, c1 - c0, mh, inv, k2[r], k3[r]);
        } else {
          // Scalar math: dx = dy * (inv * w[k]) + (x - mh) * k2 + k3
          const V vmh = V::set1(mh), vinv = V::set1(inv), vk2 = V::set1(k2[r]), vk3 = V::set1(k3[r]);
          int64_t k = c0;
          for (; k + W <= c1; k += W)
            V::store(dx + k, V::fmadd(V::load(dy + k), V::mul(vinv, V::load(w + k)),
                                      V::fmadd(V::sub(V::load(x + k), vmh), vk2, vk3)));
          for (; k < c1; ++k) dx[k] = dy[k] * (inv * w[k]) + (x[k] - mh) * k2[r] + k3[r];
        }
      }
    });
  }

  // ------------------------------------------------------------ backward

  // Over a run of m values: a = sum(dy), b = sum(dy * (x - mh)) (run_sums.h's, a block at a time).
  static void run_sums(const T* x, const T* dy, int64_t m, T mh, double& a, double& b) {
    a = b = 0;
    for (int64_t i = 0; i < m; i += kRowBlock) {
      const int64_t len = i + kRowBlock < m ? kRowBlock : m - i;
      Runs::grad_sums(x + i, dy + i, len, 1, len, mh, a, b);
    }
  }

  // Scalar math: dx[i] = dy[i] * k1 + (x[i] - mh) * k2 + k3 over a run.
  static void grad_run(const T* x, const T* dy, T* dx, int64_t m, T mh, T k1, T k2, T k3) {
    RunPass::template grad_input<false>(x, dy, dx, m, GradCoeffs<T>{mh, k1, k2, k3});
  }

  // The coefficients of dx over a group of m values from its sums
  // G1 = sum(w * dy), G2 = sum(w * dy * (x - mean)):
  //   dx = dy * (invstd * w) + (x - mean) * k2 + k3,
  //   k2 = -invstd^3 * G2 / m,  k3 = -invstd * G1 / m (0 for rms);
  // with x - mean = (x - mh) - ml, the -ml * k2 rides in k3.
  static void group_coeffs(double invstd, double g1, double g2, double m, double ml, bool rms, T& k2, T& k3) {
    const double kk2 = -invstd * invstd * invstd * g2 / m, kk3 = rms ? 0.0 : -invstd * g1 / m;
    k2 = T(kk2), k3 = T(kk3 - ml * kk2);
  }

  // NCHW, S > 1: per row, per channel run the sums; the per-(sample,
  // channel) weight-gradient parts go to scratch, added over the samples in
  // order afterwards.
  static void backward_planes(const GroupNormBackwardArgs<T>& a) {
    const GroupShape& sh = a.shape;
    const int64_t m = sh.row_length(), cg = sh.per_group(), s = sh.s, G = sh.groups, C = sh.c;
    Scratch<double> pa(sh.n * C), pb(sh.n * C);
    parallel(sh.rows(), kSerialBelow / m + 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t i = r / G, ch0 = (r % G) * cg, base = r * m;
        const double mean = double(a.mean[r]), invstd = double(a.invstd[r]);
        const T mh = T(mean);
        const double ml = mean - double(mh);
        double g1 = 0, g2 = 0;
        for (int64_t k = 0; k < cg; ++k) {
          double sa, sb;
          run_sums(a.x + base + k * s, a.dy + base + k * s, s, mh, sa, sb);
          sb -= ml * sa;  // sum(dy * (x - mean))
          const double w = a.weight ? double(a.weight[ch0 + k]) : 1.0;
          pa[i * C + ch0 + k] = sa, pb[i * C + ch0 + k] = sb * invstd;
          g1 += w * sa, g2 += w * sb;
        }
        if (!a.dx) continue;
        T k2, k3;
        group_coeffs(invstd, g1, g2, double(m), ml, a.rms, k2, k3);
        for (int64_t k = 0; k < cg; ++k) {
          const T k1 = T(invstd * (a.weight ? double(a.weight[ch0 + k]) : 1.0));
          grad_run(a.x + base + k * s, a.dy + base + k * s, a.dx + base + k * s, s, mh, k1, k2, k3);
        }
      }
    });
    write_param_grads(a, pa.p, pb.p, sh.n, C);
  }

  // grad_bias[c] = sum over units of pa[u * C + c], grad_weight from pb, the
  // units in order (walked in memory order: unit by unit, not channel by
  // channel with a stride of C).
  static void write_param_grads(const GroupNormBackwardArgs<T>& a, const double* pa, const double* pb,
                                int64_t units, int64_t C) {
    if (!a.grad_bias && !a.grad_weight) return;
    Scratch<double> gb(C), gw(C);
    for (int64_t u = 0; u < units; ++u)
      for (int64_t ch = 0; ch < C; ++ch) gb[ch] += pa[u * C + ch], gw[ch] += pb[u * C + ch];
    for (int64_t ch = 0; ch < C; ++ch) {
      if (a.grad_bias) a.grad_bias[ch] = T(gb[ch]);
      if (a.grad_weight) a.grad_weight[ch] = T(gw[ch]);
    }
  }

  // S = 1 (LayerNorm, RMSNorm): rows of cg values with a weight each. The
  // rows go in units of kGradRows, each summing its rows' dy and dy * xhat
  // per column in T, then adding them into its block's double sums; at most
  // kGradBlocks blocks of consecutive units (fixed by the shape), added up in
  // order at the end. (A double array per unit instead: megabytes of scratch
  // to fault in and walk per call, which took half of (4096, 768)'s backward.)
  static void backward_rows(const GroupNormBackwardArgs<T>& a) {
    const GroupShape& sh = a.shape;
    const int64_t m = sh.per_group(), G = sh.groups, C = sh.c, rows = sh.rows();
    const int64_t units = (rows + kGradRows - 1) / kGradRows,
                  blocks = units < kGradBlocks ? units : kGradBlocks;
    const bool grads = a.grad_weight || a.grad_bias;
    Scratch<double> pa(grads ? blocks * C : 1), pb(grads ? blocks * C : 1);
    parallel(blocks, kSerialBelow / (rows / blocks * m + 1) + 1, [&](int64_t b0, int64_t b1) {
      Scratch<T> ca(C), cb(C);
      for (int64_t blk = b0; blk < b1; ++blk) {
        for (int64_t u = blk * units / blocks; u < (blk + 1) * units / blocks; ++u) {
          for (int64_t ch = 0; ch < C; ++ch) ca[ch] = cb[ch] = T(0);
          const int64_t rend = (u + 1) * kGradRows < rows ? (u + 1) * kGradRows : rows;
          for (int64_t r = u * kGradRows; r < rend; ++r)
            a.weight ? backward_row<true>(a, r, m, G, ca.p, cb.p)
                     : backward_row<false>(a, r, m, G, ca.p, cb.p);
          if (grads)
            for (int64_t ch = 0; ch < C; ++ch)
              pa[blk * C + ch] += double(ca[ch]), pb[blk * C + ch] += double(cb[ch]);
        }
      }
    });
    if (grads) write_param_grads(a, pa.p, pb.p, blocks, C);
  }

  // One row of backward_rows: column sums into ca (dy) and cb (dy * xhat), then dx.
  template <bool kWeight>
  static void backward_row(const GroupNormBackwardArgs<T>& a, int64_t r, int64_t m, int64_t G, T* ca, T* cb) {
    const int64_t ch0 = (r % G) * m, base = r * m;
    const T* x = a.x + base;
    const T* dy = a.dy + base;
    const T* w = kWeight ? a.weight + ch0 : nullptr;
    const double mean = double(a.mean[r]), invstd = double(a.invstd[r]);
    const T mh = T(mean), inv = T(invstd);
    const double ml = mean - double(mh);
    const T nml = T(-ml * invstd);
    // Scalar math: xc = x - mh; xhat = xc * inv - ml * inv; ca += dy; cb += dy * xhat;
    //              g1 += w * dy; g2 += w * dy * xc
    const V vmh = V::set1(mh), vinv = V::set1(inv), vnml = V::set1(nml);
    double g1 = 0, g2 = 0;
    for (int64_t k0 = 0; k0 < m; k0 += kBlock) {
      const int64_t e = k0 + kBlock < m ? k0 + kBlock : m;
      V s1 = V::zero(), s2 = V::zero();
      int64_t k = k0;
      for (; k + W <= e; k += W) {
        const V d = V::load(dy + k), xc = V::sub(V::load(x + k), vmh);
        const V xhat = V::fmadd(xc, vinv, vnml);
        V wd = d;
        if constexpr (kWeight) wd = V::mul(d, V::load(w + k));
        V::store(ca + ch0 + k, V::add(V::load(ca + ch0 + k), d));
        V::store(cb + ch0 + k, V::fmadd(d, xhat, V::load(cb + ch0 + k)));
        s1 = V::add(s1, wd), s2 = V::fmadd(wd, xc, s2);
      }
      for (; k < e; ++k) {
        const T d = dy[k], xc = x[k] - mh, wd = kWeight ? d * w[k] : d;
        ca[ch0 + k] += d, cb[ch0 + k] += d * (xc * inv + nml);
        g1 += double(wd), g2 += double(wd) * double(xc);
      }
      g1 += V::hsum(s1), g2 += V::hsum(s2);
    }
    g2 -= ml * g1;  // sum(w * dy * (x - mean))
    if (!a.dx) return;
    T k2, k3;
    group_coeffs(invstd, g1, g2, double(m), ml, a.rms, k2, k3);
    T* dx = a.dx + base;
    if constexpr (!kWeight) return grad_run(x, dy, dx, m, mh, inv, k2, k3);
    // Scalar math: dx = dy * (inv * w[k]) + (x - mh) * k2 + k3
    const V vk2 = V::set1(k2), vk3 = V::set1(k3);
    int64_t k = 0;
    for (; k + W <= m; k += W)
      V::store(dx + k, V::fmadd(V::load(dy + k), V::mul(vinv, V::load(w + k)),
                                V::fmadd(V::sub(V::load(x + k), vmh), vk2, vk3)));
    for (; k < m; ++k) dx[k] = dy[k] * (inv * w[k]) + (x[k] - mh) * k2 + k3;
  }

  // Channels-last, S > 1: per sample, rows_reduce.h's per-channel sum(dy)
  // and sum(dy * (x - mh)) down its rows, then per group the dx
  // coefficients, then rows_passes.h's dx pass; each sample's rows in parallel.
  static void backward_channels_last(const GroupNormBackwardArgs<T>& a) {
    const GroupShape& sh = a.shape;
    const int64_t C = sh.c, S = sh.s, G = sh.groups, cg = sh.per_group(), m = sh.row_length();
    Scratch<double> pa(sh.n * C), pb(sh.n * C);
    Scratch<T> mh(C);
    Scratch<GradCoeffs<T>> k(C);
    for (int64_t i = 0; i < sh.n; ++i) {
      const T* x = a.x + i * S * C;
      const T* dy = a.dy + i * S * C;
      for (int64_t ch = 0; ch < C; ++ch) mh[ch] = a.mean[i * G + ch / cg];
      double* sa = pa.p + i * C;
      double* sb = pb.p + i * C;
      Rows::grad_sums(sample_shape(sh), x, dy, mh.p, sa, sb);
      for (int64_t g = 0; g < G; ++g) {
        const double mean = double(a.mean[i * G + g]), invstd = double(a.invstd[i * G + g]);
        const double ml = mean - double(mh[g * cg]);
        double g1 = 0, g2 = 0;
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
          const double w = weight_at(a.weight, ch), b = sb[ch] - ml * sa[ch];
          sb[ch] = b * invstd;  // the weight gradient's part: sum(dy * xhat)
          g1 += w * sa[ch], g2 += w * b;
        }
        T k2, k3;
        group_coeffs(invstd, g1, g2, double(m), ml, a.rms, k2, k3);
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch)
          k[ch] = GradCoeffs<T>{mh[ch], T(invstd * weight_at(a.weight, ch)), k2, k3};
      }
      // Scalar math: dx = dy * k1[ch] + (x - mh[ch]) * k2[ch] + k3[ch], row by row
      if (a.dx) RowsPass::template grad_input<false>(sample_shape(sh), x, dy, a.dx + i * S * C, k.p);
    }
    write_param_grads(a, pa.p, pb.p, sh.n, C);
  }

  static void backward(const GroupNormBackwardArgs<T>& a) {
    // (Split whatever the thread count: backward_rows gives one unit of long rows a
    // column-sum scratch as long as a row, zeroed and walked once per row.)
    if (a.shape.s == 1 && a.shape.groups == 1 && a.shape.rows() <= kGradRows &&
        a.shape.row_length() >= 2 * kSplitBlocks * kBlock)
      return a.weight ? backward_split<true>(a) : backward_split<false>(a);
    if (a.shape.s == 1) return backward_rows(a);
    if (a.shape.channels_last) return backward_channels_last(a);
    backward_planes(a);
  }
};

template <class V>
void group_norm_forward(const GroupNormForwardArgs<typename V::type>& a) {
  Norms<V>::forward(a);
}
template <class V>
void group_norm_backward(const GroupNormBackwardArgs<typename V::type>& a) {
  Norms<V>::backward(a);
}

template <class F32, class F64>
NormKernelTable make_norm_table(const char* isa) {
  return NormKernelTable{isa, &group_norm_forward<F32>, &group_norm_forward<F64>, &group_norm_backward<F32>,
                         &group_norm_backward<F64>};
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
