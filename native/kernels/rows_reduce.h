// Channels-last rows of C values ((N, C) input, NHWC, NCHW with one value a
// plane): per-channel reductions down the columns of the rows, in blocks of
// rows (rows_per_block(C), the unit of work), each block sweeping up to four
// vectors of channels across its rows in registers. The moments of x, and the
// gradient sums of dy and dy * (x - mean): a per-feature weight gradient of
// any norm over rows is the same sum.
#pragma once
#include "fused.h"
#include "isa_ns.h"
#include "moments.h"
#include "parallel.h"
#include "row_blocks.h"
#include "rows_sweeps.h"
#include "scratch.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct RowsReduce {
  using T = typename V::type;
  using Sw = RowsSweeps<V>;

  // Means of channels c0 .. c0 + G * VV::W over `rows` rows, into mean[0 .. G * VV::W).
  // Scalar math: mean[c] = sum over rows of x[r][c] / rows
  template <class VV, int G>
  static void mean(const T* x, int64_t C, int64_t c0, int64_t rows, T* mean) {
    constexpr int L = VV::W;
    VV s[G];
    for (int g = 0; g < G; ++g) s[g] = VV::zero();
    for (int64_t r = 0; r < rows; ++r)
      for (int g = 0; g < G; ++g) s[g] = VV::add(s[g], VV::load(x + r * C + c0 + g * L));
    for (int g = 0; g < G; ++g) VV::store(mean + g * L, s[g]);
    for (int l = 0; l < G * L; ++l) mean[l] = T(double(mean[l]) / double(rows));
  }

  // Float sums around shift[0 .. G * VV::W) of channels c0 .. over `rows` rows.
  // Scalar math: d = x[r][c] - shift[c]; sd[c] += d; sd2[c] += d * d
  // Each lane sums its rows in stretches of kRowStretch, which then add up.
  template <class VV, int G>
  static void sums(const T* x, int64_t C, int64_t c0, int64_t rows, const T* shift, T* sd, T* sd2) {
    constexpr int L = VV::W;
    VV vs[G], a[G], b[G], ta[G], tb[G];
    for (int g = 0; g < G; ++g) vs[g] = VV::load(shift + g * L), ta[g] = VV::zero(), tb[g] = VV::zero();
    for (int64_t r0 = 0; r0 < rows; r0 += kRowStretch) {
      const int64_t r1 = r0 + kRowStretch < rows ? r0 + kRowStretch : rows;
      for (int g = 0; g < G; ++g) a[g] = VV::zero(), b[g] = VV::zero();
      for (int64_t r = r0; r < r1; ++r)
        for (int g = 0; g < G; ++g) {
          const VV d = VV::sub(VV::load(x + r * C + c0 + g * L), vs[g]);
          a[g] = VV::add(a[g], d);
          b[g] = VV::fmadd(d, d, b[g]);
        }
      for (int g = 0; g < G; ++g) ta[g] = VV::add(ta[g], a[g]), tb[g] = VV::add(tb[g], b[g]);
    }
    for (int g = 0; g < G; ++g) VV::store(sd + g * L, ta[g]), VV::store(sd2 + g * L, tb[g]);
  }

  // Moments of channels c0 .. c0 + G * VV::W over `rows` rows, in two passes
  // (the block's own means, then the sums around them); out[l] for channel c0 + l.
  template <class VV, int G>
  static void moments(const T* x, int64_t C, int64_t c0, int64_t rows, Moments* out) {
    constexpr int L = VV::W;
    T m[G * L], sd[G * L], sd2[G * L];
    mean<VV, G>(x, C, c0, rows, m);
    sums<VV, G>(x, C, c0, rows, m, sd, sd2);
    for (int l = 0; l < G * L; ++l)
      out[l] = moments_from_shifted(double(rows), double(m[l]), double(sd[l]), double(sd2[l]));
  }

  // Channels c0 .. c0 + G * VV::W over `rows` rows in one pass around
  // shift[c0 ..]; a sweep with a channel far_from_shift takes moments' two
  // passes.
  template <class VV, int G>
  static void shifted(const T* x, int64_t C, int64_t c0, int64_t rows, const T* shift, RowPart* out) {
    constexpr int L = VV::W;
    T sd[G * L], sd2[G * L];
    sums<VV, G>(x, C, c0, rows, shift + c0, sd, sd2);
    const double n = double(rows);
    bool far = false;
    for (int l = 0; l < G * L; ++l) far = far || far_from_shift(n, double(sd[l]), double(sd2[l]));
    if (!far) {
      for (int l = 0; l < G * L; ++l) out[l] = RowPart{n, double(sd[l]), double(sd2[l]), true};
      return;
    }
    Moments m[G * L];
    moments<VV, G>(x, C, c0, rows, m);
    for (int l = 0; l < G * L; ++l) out[l] = RowPart{m[l].count, m[l].mean, m[l].m2, false};
  }

  // Every channel's statistics: the first rows (an eighth of a row block, at
  // least 16) in two passes, which gives each channel its shift (as
  // NchwReduce::unit_moments: the first stretch exact, the rest around its
  // means, with the same fallback); then the row blocks after them in
  // parallel, each over all channels in one pass. Many small units keep the
  // threads evenly loaded; the first rows are few because they run on one
  // thread. Then finish_range(RowStats, c0, c1) adds up each channel's blocks
  // in order, channels in parallel; or, with no block after the first rows,
  // finish_one(c, Moments) takes each channel's.
  template <class FinishOne, class FinishRange>
  static void statistics(const Shape& sh, const T* x, FinishOne&& finish_one, FinishRange&& finish_range) {
    const int64_t C = sh.c;
    Scratch<Moments> out(C);
    const int64_t rows = sh.n * sh.s, R = rows_per_block(C), first = R / 8 > 16 ? R / 8 : 16;
    const int64_t r_first = rows < first ? rows : first, units = (rows - r_first + R - 1) / R;
    Sw::for_each_sweep(C, [&](auto sweep, int64_t c0) {
      using VV = typename decltype(sweep)::vec;
      moments<VV, decltype(sweep)::groups>(x, C, c0, r_first, &out[c0]);
    });
    if (units == 0) return each_channel(sh, [&](int64_t c) { finish_one(c, out[c]); });
    Scratch<T> shift(C);
    for (int64_t c = 0; c < C; ++c) shift[c] = T(out[c].mean);
    Scratch<RowPart> part(units * C);
    parallel(units, serial(sh) ? units : 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t r0 = r_first + u * R, nr = rows - r0 < R ? rows - r0 : R;
        Sw::for_each_sweep(C, [&](auto sweep, int64_t c0) {
          using VV = typename decltype(sweep)::vec;
          shifted<VV, decltype(sweep)::groups>(x + r0 * C, C, c0, nr, shift.p, &part[u * C + c0]);
        });
      }
    });
    parallel(C, serial(sh) ? C : 16, [&](int64_t c0, int64_t c1) {
      finish_range(RowStats<T>{part.p, units, shift.p, out.p}, c0, c1);
    });
  }

  // Gradient sums for channels c0 .. c0 + G * VV::W over `rows` rows, added into sdy, sdyx.
  // Scalar math: sdy[c] += dy[r][c]; sdyx[c] += dy[r][c] * (x[r][c] - mean[c])
  // The rows in stretches of kRowStretch, as sums.
  // Op kGate (fused.h): dy gated by f.gate > 0, f indexed as x.
  template <class VV, int G, int Op = 0>
  static void sweep_grad_sums(const T* x, const T* dy, int64_t C, int64_t c0, int64_t rows, const T* mean,
                              double* sdy, double* sdyx, const Fuse<T>& f = Fuse<T>{}) {
    using F = Fused<Op & kGate>;
    constexpr int L = VV::W;
    VV m[G], g[G], h[G], tg[G], th[G];
    for (int k = 0; k < G; ++k) m[k] = VV::load(mean + c0 + k * L), tg[k] = VV::zero(), th[k] = VV::zero();
    for (int64_t r0 = 0; r0 < rows; r0 += kRowStretch) {
      const int64_t r1 = r0 + kRowStretch < rows ? r0 + kRowStretch : rows;
      for (int k = 0; k < G; ++k) g[k] = VV::zero(), h[k] = VV::zero();
      for (int64_t r = r0; r < r1; ++r)
        for (int k = 0; k < G; ++k) {
          const VV e = F::template input<VV>(dy, f, r * C + c0 + k * L);
          g[k] = VV::add(g[k], e);
          h[k] = VV::fmadd(e, VV::sub(VV::load(x + r * C + c0 + k * L), m[k]), h[k]);
        }
      for (int k = 0; k < G; ++k) tg[k] = VV::add(tg[k], g[k]), th[k] = VV::add(th[k], h[k]);
    }
    T lg[G * L], lh[G * L];
    for (int k = 0; k < G; ++k) VV::store(lg + k * L, tg[k]), VV::store(lh + k * L, th[k]);
    for (int l = 0; l < G * L; ++l) sdy[c0 + l] += double(lg[l]), sdyx[c0 + l] += double(lh[l]);
  }

  // Per channel: sdy = sum(dy), sdyx = sum(dy * (x - mean[c])), over blocks of rows.
  template <int Op = 0>
  static void grad_sums(const Shape& sh, const T* x, const T* dy, const T* mean, double* sdy, double* sdyx,
                        const Fuse<T>& f = Fuse<T>{}) {
    const int64_t C = sh.c;
    auto unit = [&](int64_t r0, int64_t nr, double* g, double* h) {
      Sw::for_each_sweep(C, [&](auto sweep, int64_t c0) {
        using VV = typename decltype(sweep)::vec;
        sweep_grad_sums<VV, decltype(sweep)::groups, Op>(x + r0 * C, dy + r0 * C, C, c0, nr, mean, g, h,
                                                         f.at(r0 * C));
      });
    };
    row_block_grad_sums(sh, sh.n * sh.s, rows_per_block(C), unit, sdy, sdyx);
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
