// Channels-last rows of C values: the elementwise passes, over tiles of rows
// with each sweep's per-channel coefficients in registers, or row by row in
// memory order where a row is wider than a sweep. Their outputs stream only
// with C a multiple of the vector width: the rows are then taken from the
// output's first aligned value on (coefficients rotated), so that every
// streaming store lands aligned whatever the buffer's alignment.
#pragma once
#include "coeffs.h"
#include "fused.h"
#include "isa_ns.h"
#include "memory.h"
#include "parallel.h"
#include "rows_sweeps.h"
#include "scratch.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct RowsPasses {
  using T = typename V::type;
  using St = Stores<V>;
  using Sw = RowsSweeps<V>;
  static constexpr int W = V::W;

  // Whether the passes stream (see above; `arrays` as streaming()).
  static bool stream(const Shape& sh, int64_t arrays) { return streaming<T>(sh, arrays) && sh.c % W == 0; }

  // With y p = peel(y, C) values short of alignment, the passes run over
  // "rows" that start at channel p (x + p, y + p, one row fewer, with the
  // coefficients rotated by p). Calls f(i, c) for the values left out, index
  // i of channel c: the p before them and the C - p after them.
  template <class F>
  static void for_skew_edges(int64_t rows, int64_t C, int64_t p, F&& f) {
    if (!p) return;
    for (int64_t c = 0; c < p; ++c) f(c, c);                   // row 0, channels before p
    for (int64_t c = p; c < C; ++c) f((rows - 1) * C + c, c);  // last row, channels from p
  }

  // `rows` rows from channel c0, G vectors of VV wide, the channels'
  // coefficients held in registers down the rows (arrays of C).
  // Scalar math: y[r][c] = (x[r][c] - mean[c]) * scale[c] + shift[c]
  template <class VV, int G, bool NT, int Op>
  static void affine_sweep(const T* x, T* y, int64_t C, int64_t c0, int64_t rows, const T* m, const T* a,
                           const T* b, const Fuse<T>& f) {
    using F = Fused<Op>;
    constexpr int L = VV::W;
    VV vm[G], va[G], vb[G];
    for (int g = 0; g < G; ++g)
      vm[g] = VV::load(m + c0 + g * L), va[g] = VV::load(a + c0 + g * L), vb[g] = VV::load(b + c0 + g * L);
    for (int64_t r = 0; r < rows; ++r)
      for (int g = 0; g < G; ++g) {
        const int64_t o = r * C + c0 + g * L;
        const VV v = F::template output<VV>(
            VV::fmadd(VV::sub(F::template input<VV>(x, f, o), vm[g]), va[g], vb[g]), f, o);
        if (NT)
          VV::stream(y + o, v);
        else
          VV::store(y + o, v);
      }
  }

  // y from per-channel coefficients over every row. Op and f: the fused ops
  // (fused.h), f's arrays indexed as x.
  template <bool NT, int Op = 0>
  static void affine(const Shape& sh, const T* x, T* y, const Coeffs<T>* k, const Fuse<T>& f = Fuse<T>{}) {
    using F = Fused<Op>;
    const int64_t C = sh.c, p = St::template peel<NT>(y, C), rows = sh.n * sh.s - (p ? 1 : 0);
    Scratch<T> m(C), a(C), b(C);
    for (int64_t c = 0; c < C; ++c) {
      const Coeffs<T>& kc = k[wrap(c + p, C)];
      m[c] = kc.mean, a[c] = kc.scale, b[c] = kc.shift;
    }
    for_skew_edges(rows + 1, C, p, [&](int64_t i, int64_t c) {
      y[i] = F::output1(std::fma(F::input1(x, f, i) - k[c].mean, k[c].scale, k[c].shift), f, i);
    });
    const T* xs = x + p;
    T* ys = y + p;
    const Fuse<T> fs = f.at(p);
    parallel(rows, serial(sh) ? rows : (kUnit + C - 1) / C, [&](int64_t r0, int64_t r1) {
      Sw::for_each_tile_sweep(C, r0, r1, [&](auto sweep, int64_t c0, int64_t r, int64_t nr) {
        using VV = typename decltype(sweep)::vec;
        affine_sweep<VV, decltype(sweep)::groups, NT, Op>(xs + r * C, ys + r * C, C, c0, nr, m.p, a.p, b.p,
                                                          fs.at(r * C));
      });
      if (NT) V::fence();
    });
  }

  // One row. Scalar math: dx[c] = dy[c] * k1[c] + (x[c] - mean[c]) * k2[c] + k3[c]
  template <bool NT, int Op>
  static void grad_input_row(const T* x, const T* dy, T* dx, int64_t C, const T* m, const T* k1, const T* k2,
                             const T* k3, const Fuse<T>& f) {
    using F = Fused<Op>;
    int64_t c = 0;
    for (const int64_t p = St::template peel<NT>(dx, C); c < p; ++c)
      dx[c] = std::fma(F::input1(dy, f, c), k1[c], std::fma(x[c] - m[c], k2[c], k3[c]));
    for (; c + W <= C; c += W) {
      const V t = V::fmadd(V::sub(V::load(x + c), V::load(m + c)), V::load(k2 + c), V::load(k3 + c));
      St::template put<NT>(dx + c, V::fmadd(F::template input<V>(dy, f, c), V::load(k1 + c), t));
    }
    for (; c < C; ++c) dx[c] = std::fma(F::input1(dy, f, c), k1[c], std::fma(x[c] - m[c], k2[c], k3[c]));
  }

  // `rows` rows from channel c0, G vectors of VV wide, coefficients in registers.
  // Scalar math: dx[r][c] = dy[r][c] * k1[c] + (x[r][c] - mean[c]) * k2[c] + k3[c]
  template <class VV, int G, bool NT, int Op>
  static void grad_input_sweep(const T* x, const T* dy, T* dx, int64_t C, int64_t c0, int64_t rows,
                               const T* const* k, const Fuse<T>& f) {
    using F = Fused<Op>;
    constexpr int L = VV::W;
    VV m[G], k1[G], k2[G], k3[G];
    for (int g = 0; g < G; ++g) {
      const int64_t c = c0 + g * L;
      m[g] = VV::load(k[0] + c), k1[g] = VV::load(k[1] + c), k2[g] = VV::load(k[2] + c),
      k3[g] = VV::load(k[3] + c);
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int g = 0; g < G; ++g) {
        const int64_t o = r * C + c0 + g * L;
        const VV t = VV::fmadd(VV::sub(VV::load(x + o), m[g]), k2[g], k3[g]);
        const VV v = VV::fmadd(F::template input<VV>(dy, f, o), k1[g], t);
        if (NT)
          VV::stream(dx + o, v);
        else
          VV::store(dx + o, v);
      }
  }

  // dx from per-channel gradient coefficients over every row. Rows of one
  // sweep go tile by tile with the coefficients in registers; wider rows in
  // memory order, which measured faster once x, dy and dx outgrow L2. Op
  // and f: the fused ops (fused.h), f's arrays indexed as x.
  template <bool NT, int Op = 0>
  static void grad_input(const Shape& sh, const T* x, const T* dy, T* dx, const GradCoeffs<T>* k,
                         const Fuse<T>& f = Fuse<T>{}) {
    using F = Fused<Op>;
    const int64_t C = sh.c, p = St::template peel<NT>(dx, C), rows = sh.n * sh.s - (p ? 1 : 0);
    Scratch<T> m(C), k1(C), k2(C), k3(C);
    for (int64_t c = 0; c < C; ++c) {
      const GradCoeffs<T>& kc = k[wrap(c + p, C)];
      m[c] = kc.mean, k1[c] = kc.k1, k2[c] = kc.k2, k3[c] = kc.k3;
    }
    for_skew_edges(rows + 1, C, p, [&](int64_t i, int64_t c) {
      dx[i] = std::fma(F::input1(dy, f, i), k[c].k1, std::fma(x[i] - k[c].mean, k[c].k2, k[c].k3));
    });
    const T* const ks[4] = {m.p, k1.p, k2.p, k3.p};
    const T *xs = x + p, *dys = dy + p;
    T* dxs = dx + p;
    const Fuse<T> fs = f.at(p);
    const bool tiles = C <= 4 * W;
    parallel(rows, serial(sh) ? rows : (kUnit + C - 1) / C, [&](int64_t r0, int64_t r1) {
      if (tiles) {
        Sw::for_each_tile_sweep(C, r0, r1, [&](auto sweep, int64_t c0, int64_t r, int64_t nr) {
          using VV = typename decltype(sweep)::vec;
          grad_input_sweep<VV, decltype(sweep)::groups, NT, Op>(xs + r * C, dys + r * C, dxs + r * C, C, c0,
                                                                nr, ks, fs.at(r * C));
        });
      } else {
        for (int64_t r = r0; r < r1; ++r)
          grad_input_row<NT, Op>(xs + r * C, dys + r * C, dxs + r * C, C, m.p, k1.p, k2.p, k3.p,
                                 fs.at(r * C));
      }
      if (NT) V::fence();
    });
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
