// NCHW with planes of a cache line or less (kShortPlaneBytes: up to 4x4
// floats), where vectors have lanes to spare: the per-channel reductions go
// through memory in order, sample by sample, four channels at a time with
// their sums in registers: the scheme of the channels-last rows
// (rows_reduce.h), each sample a "row" of C planes. Channel by channel, each
// plane would be a run too short to stream, C * HW values after the last, in
// the same cache sets.
#pragma once
#include "fused.h"
#include "isa_ns.h"
#include "moments.h"
#include "parallel.h"
#include "row_blocks.h"
#include "run_sums.h"
#include "scratch.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct ShortPlanes {
  using T = typename V::type;
  static constexpr int W = V::W;

  // Whether this shape's planes are short (in this layout, on this ISA).
  static bool applies(const Shape& sh) {
    return !sh.channels_last && sh.s > 1 && sh.s * int64_t(sizeof(T)) <= kShortPlaneBytes && W > 1;
  }

  // Samples per unit: about kRowBlockValues values, and at most kBlock / W
  // terms in a lane's float sums (as an NCHW block of AVX-512).
  static int64_t samples_per_block(const Shape& sh) {
    const int64_t r = kRowBlockValues / (sh.c * sh.s), most = kBlock / W / ((sh.s + W - 1) / W);
    return r < 1 ? 1 : r > most ? most : r;
  }

  // Sums around shift[g] of channels c0 .. c0 + G over `rows` samples.
  // Scalar math: d = x[n][c][s] - shift[c]; sd[c] += d; sd2[c] += d * d
  template <int G>
  static void group_sums(const T* x, int64_t C, int64_t HW, int64_t rows, int64_t c0, const T* shift,
                         double* sd, double* sd2) {
    V vs[G], a[G], b[G];
    for (int g = 0; g < G; ++g) vs[g] = V::set1(shift[g]), a[g] = V::zero(), b[g] = V::zero();
    for (int64_t n = 0; n < rows; ++n)
      for (int g = 0; g < G; ++g) {
        const T* p = x + (n * C + c0 + g) * HW;
        int64_t i = 0;
        for (; i + W <= HW; i += W) {
          const V d = V::sub(V::load(p + i), vs[g]);
          a[g] = V::add(a[g], d);
          b[g] = V::fmadd(d, d, b[g]);
        }
        if (i < HW) {  // the lanes past HW hold the shift: d = 0
          const V d = V::sub(V::load_partial(p + i, HW - i, shift[g]), vs[g]);
          a[g] = V::add(a[g], d);
          b[g] = V::fmadd(d, d, b[g]);
        }
      }
    for (int g = 0; g < G; ++g) sd[g] = V::hsum(a[g]), sd2[g] = V::hsum(b[g]);
  }
  // group_sums over every channel, G = 4 at a time.
  static void sums(const T* x, int64_t C, int64_t HW, int64_t rows, const T* shift, double* sd, double* sd2) {
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) group_sums<4>(x, C, HW, rows, c, shift + c, sd + c, sd2 + c);
    for (; c < C; ++c) group_sums<1>(x, C, HW, rows, c, shift + c, sd + c, sd2 + c);
  }

  // Every channel's statistics, finished as RowsReduce::statistics does
  // (finish_one, finish_range). The first samples (at least 16 values a
  // channel), in two passes as RunSums::block_moments, give each channel its
  // shift; the blocks after them one pass around it, or their own two where
  // far_from_shift.
  template <class FinishOne, class FinishRange>
  static void statistics(const Shape& sh, const T* x, FinishOne&& finish_one, FinishRange&& finish_range) {
    const int64_t C = sh.c, HW = sh.s, N = sh.n, R = samples_per_block(sh);
    const int64_t want = (16 + HW - 1) / HW, r_first = N < want ? N : want, units = (N - r_first + R - 1) / R;
    const double n1 = double(r_first * HW);
    Scratch<Moments> out(C);
    Scratch<T> shift(C);
    Scratch<double> sd(C), sd2(C);
    sums(x, C, HW, r_first, shift.p, sd.p, sd2.p);  // around 0 (Scratch zeroes): the sums of x
    for (int64_t c = 0; c < C; ++c) shift[c] = T(sd[c] / n1);
    sums(x, C, HW, r_first, shift.p, sd.p, sd2.p);
    for (int64_t c = 0; c < C; ++c) out[c] = moments_from_shifted(n1, double(shift[c]), sd[c], sd2[c]);
    if (units == 0) return each_channel(sh, [&](int64_t c) { finish_one(c, out[c]); });
    Scratch<RowPart> part(units * C);
    parallel(units, serial(sh) ? units : 1, [&](int64_t b, int64_t e) {
      Scratch<double> usd(C), usd2(C);
      for (int64_t u = b; u < e; ++u) {
        const int64_t r0 = r_first + u * R, nr = N - r0 < R ? N - r0 : R;
        const T* xu = x + r0 * C * HW;
        const double count = double(nr * HW);
        sums(xu, C, HW, nr, shift.p, usd.p, usd2.p);
        for (int64_t c = 0; c < C; ++c) {
          if (!far_from_shift(count, usd[c], usd2[c])) {
            part[u * C + c] = RowPart{count, usd[c], usd2[c], true};
            continue;
          }
          const Moments m = RunSums<V>::block_moments(xu + c * HW, C * HW, nr, HW);
          part[u * C + c] = RowPart{m.count, m.mean, m.m2, false};
        }
      }
    });
    parallel(C, serial(sh) ? C : 16, [&](int64_t c0, int64_t c1) {
      finish_range(RowStats<T>{part.p, units, shift.p, out.p}, c0, c1);
    });
  }

  // Gradient sums of channels c0 .. c0 + G over `rows` samples, their sums in registers.
  // Scalar math: sdy[c] += dy[n][c][s]; sdyx[c] += dy[n][c][s] * (x[n][c][s] - mean[c])
  // Op kGate (fused.h): dy gated by gate > 0 (the forward's y, indexed as x).
  template <int G, int Op>
  static void group_grad_sums(const T* x, const T* dy, int64_t C, int64_t HW, int64_t rows, int64_t c0,
                              const T* mean, double* sdy, double* sdyx, const T* gate) {
    constexpr bool gated = (Op & kGate) != 0;
    V vm[G], g[G], h[G];
    for (int j = 0; j < G; ++j) vm[j] = V::set1(mean[j]), g[j] = V::zero(), h[j] = V::zero();
    for (int64_t n = 0; n < rows; ++n)
      for (int j = 0; j < G; ++j) {
        const int64_t o = (n * C + c0 + j) * HW;
        int64_t i = 0;
        for (; i + W <= HW; i += W) {
          V e = V::load(dy + o + i);
          if constexpr (gated) e = V::if_positive(e, V::load(gate + o + i));
          g[j] = V::add(g[j], e);
          h[j] = V::fmadd(e, V::sub(V::load(x + o + i), vm[j]), h[j]);
        }
        if (i < HW) {  // the lanes past HW: dy = 0 and x = mean
          V e = V::load_partial(dy + o + i, HW - i, T(0));
          if constexpr (gated) e = V::if_positive(e, V::load_partial(gate + o + i, HW - i, T(0)));
          g[j] = V::add(g[j], e);
          h[j] = V::fmadd(e, V::sub(V::load_partial(x + o + i, HW - i, mean[j]), vm[j]), h[j]);
        }
      }
    for (int j = 0; j < G; ++j) sdy[j] = V::hsum(g[j]), sdyx[j] = V::hsum(h[j]);
  }

  // Per channel: sdy = sum(dy), sdyx = sum(dy * (x - mean[c])), over blocks of samples.
  // Op kGate: dy gated by f.gate > 0 (fused.h), f indexed as x.
  template <int Op = 0>
  static void grad_sums(const Shape& sh, const T* x, const T* dy, const T* mean, double* sdy, double* sdyx,
                        const Fuse<T>& f = Fuse<T>{}) {
    const int64_t C = sh.c, HW = sh.s, row = C * HW;
    auto unit = [&](int64_t r0, int64_t nr, double* g, double* h) {
      const T *xu = x + r0 * row, *du = dy + r0 * row, *gu = f.gate ? f.gate + r0 * row : nullptr;
      int64_t c = 0;
      for (; c + 4 <= C; c += 4) group_grad_sums<4, Op>(xu, du, C, HW, nr, c, mean + c, g + c, h + c, gu);
      for (; c < C; ++c) group_grad_sums<1, Op>(xu, du, C, HW, nr, c, mean + c, g + c, h + c, gu);
    };
    row_block_grad_sums(sh, sh.n, samples_per_block(sh), unit, sdy, sdyx);
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
