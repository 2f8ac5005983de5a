// BatchNorm kernels, written once over a vector type V (native/simd/*.h) and
// instantiated per ISA by native/kernels/<isa>.cc. The math is in README.md
// beside this file.
//
// Each ISA translation unit defines BATCHNORM_ISA_NS before including this
// file, so every symbol below lives in a namespace of its own: code compiled
// with -mavx512f can never be merged into the scalar path by the linker.
#ifndef BATCHNORM_ISA_NS
#error "define BATCHNORM_ISA_NS (the ISA's namespace) before including kernels/batchnorm.h"
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../simd/scalar.h"
#include "../threads.h"
#include "args.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

// Values per float32 partial sum before it is handed to double: bounded, so
// the float32 rounding stays at the level of a few ulps of one block.
constexpr int64_t kBlock = 512;
// Contiguous values per unit of work in NCHW, and rows per unit in NHWC. Units
// are fixed by the shape alone (never by the thread count) and merged in
// order, which makes every result bitwise independent of the thread count.
constexpr int64_t kUnit = 16 * 1024;
constexpr int64_t kRowBlock = 128;
constexpr int64_t kRowUnit = 1024;
// Below this many elements a call runs on the calling thread.
constexpr int64_t kSerialBelow = 1 << 15;

// Count, mean and sum of squared deviations of a stretch of values.
struct Moments {
  double count = 0, mean = 0, m2 = 0;
};

// Chan et al.: combine two stretches, exactly in double.
inline void merge(Moments& a, const Moments& b) {
  if (b.count == 0) return;
  if (a.count == 0) {
    a = b;
    return;
  }
  const double n = a.count + b.count, delta = b.mean - a.mean;
  a.mean += delta * (b.count / n);
  a.m2 += b.m2 + delta * delta * (a.count / n) * b.count;
  a.count = n;
}

// Moments from a block's float sums taken around `shift` (corrected two-pass):
// mean = shift + sum(d) / n,  m2 = sum(d^2) - sum(d)^2 / n,  d = x - shift.
inline Moments moments_from_shifted(double n, double shift, double sd, double sd2) {
  const double m2 = sd2 - sd * sd / n;
  return Moments{n, shift + sd / n, m2 > 0 ? m2 : 0};
}

// Heap scratch without library templates (see the note at the top).
template <class U>
struct Scratch {
  explicit Scratch(int64_t n) : p(n > 0 ? new U[size_t(n)]() : nullptr) {}
  ~Scratch() { delete[] p; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  U& operator[](int64_t i) { return p[i]; }
  U* p;
};

// Runs f(begin, end) over [0, n) on the pool.
template <class F>
void parallel(int64_t n, int64_t grain, F&& f) {
  parallel_for(
      n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<F*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// Per-channel coefficients of one elementwise pass, in T:
//   y = ((x - mean_hi) - mean_lo) * scale + shift
// mean_hi + mean_lo carries the double mean, so that a large mean with a
// small spread (mean 100, std 0.01) loses nothing to float32 cancellation.
template <class T>
struct Coeffs {
  T mean_hi, mean_lo, scale, shift;
};

template <class T>
Coeffs<T> make_coeffs(double mean, double scale, double shift) {
  const T hi = T(mean);
  return Coeffs<T>{hi, T(mean - double(hi)), T(scale), T(shift)};
}

template <class V>
struct Kernels {
  using T = typename V::type;
  using S = simd::ScalarVec<T>;  // the lanes left over in NHWC rows
  static constexpr int W = V::W;

  // ---------------------------------------------------------------- moments

  // One block of contiguous values (len <= kBlock), two passes from L1.
  static Moments block_moments(const T* x, int64_t len) {
    // Scalar math: s = sum(x)
    V a0 = V::zero(), a1 = V::zero();
    int64_t i = 0;
    for (; i + 2 * W <= len; i += 2 * W) {
      a0 = V::add(a0, V::load(x + i));
      a1 = V::add(a1, V::load(x + i + W));
    }
    for (; i + W <= len; i += W) a0 = V::add(a0, V::load(x + i));
    double s = V::hsum(V::add(a0, a1));
    for (; i < len; ++i) s += double(x[i]);
    const T shift = T(s / double(len));

    // Scalar math: d = x - shift; sd += d; sd2 += d * d
    const V vs = V::set1(shift);
    V d0 = V::zero(), d1 = V::zero(), q0 = V::zero(), q1 = V::zero();
    i = 0;
    for (; i + 2 * W <= len; i += 2 * W) {
      const V e0 = V::sub(V::load(x + i), vs), e1 = V::sub(V::load(x + i + W), vs);
      d0 = V::add(d0, e0);
      d1 = V::add(d1, e1);
      q0 = V::fmadd(e0, e0, q0);
      q1 = V::fmadd(e1, e1, q1);
    }
    for (; i + W <= len; i += W) {
      const V e0 = V::sub(V::load(x + i), vs);
      d0 = V::add(d0, e0);
      q0 = V::fmadd(e0, e0, q0);
    }
    double sd = V::hsum(V::add(d0, d1)), sd2 = V::hsum(V::add(q0, q1));
    for (; i < len; ++i) {
      const double e = double(T(x[i] - shift));
      sd += e;
      sd2 += e * e;
    }
    return moments_from_shifted(double(len), double(shift), sd, sd2);
  }

  // One unit of contiguous values: blocks merged in order.
  static Moments run_moments(const T* x, int64_t len) {
    Moments m;
    for (int64_t b = 0; b < len; b += kBlock) merge(m, block_moments(x + b, len - b < kBlock ? len - b : kBlock));
    return m;
  }

  // NHWC: moments of `rows` rows (<= kRowBlock) for the lanes c0..c0+VV::W of
  // each row; out[l] for channel c0 + l.
  template <class VV>
  static void rows_moments(const T* x, int64_t C, int64_t c0, int64_t rows, Moments* out) {
    constexpr int L = VV::W;
    // Scalar math: s[c] = sum over rows of x[r][c]
    VV s = VV::zero();
    for (int64_t r = 0; r < rows; ++r) s = VV::add(s, VV::load(x + r * C + c0));
    T lane[L];
    VV::store(lane, s);
    for (int l = 0; l < L; ++l) lane[l] = T(double(lane[l]) / double(rows));
    const VV shift = VV::load(lane);

    // Scalar math: d = x[r][c] - shift[c]; sd[c] += d; sd2[c] += d * d
    VV sd = VV::zero(), sd2 = VV::zero();
    for (int64_t r = 0; r < rows; ++r) {
      const VV d = VV::sub(VV::load(x + r * C + c0), shift);
      sd = VV::add(sd, d);
      sd2 = VV::fmadd(d, d, sd2);
    }
    T lsd[L], lsd2[L];
    VV::store(lsd, sd);
    VV::store(lsd2, sd2);
    for (int l = 0; l < L; ++l) out[l] = moments_from_shifted(double(rows), double(lane[l]), double(lsd[l]), double(lsd2[l]));
  }

  // NHWC: moments of every channel over rows [r0, r1), row blocks merged in order.
  static void rows_unit_moments(const T* x, int64_t C, int64_t r0, int64_t r1, Moments* out) {
    Moments tmp[W];
    for (int64_t r = r0; r < r1; r += kRowBlock) {
      const int64_t rows = r1 - r < kRowBlock ? r1 - r : kRowBlock;
      const T* xr = x + r * C;
      int64_t c = 0;
      for (; c + W <= C; c += W) {
        rows_moments<V>(xr, C, c, rows, tmp);
        for (int l = 0; l < W; ++l) merge(out[c + l], tmp[l]);
      }
      for (; c < C; ++c) {
        rows_moments<S>(xr, C, c, rows, tmp);
        merge(out[c], tmp[0]);
      }
    }
  }

  // Moments of every channel, into `out` (C entries).
  static void channel_moments(const Shape& sh, const T* x, Moments* out) {
    const int64_t N = sh.n, C = sh.c, HW = sh.s;
    if (!sh.channels_last) {
      const int64_t per_run = (HW + kUnit - 1) / kUnit, units = N * per_run;
      // Enough channels to share: each thread takes whole channels.
      if (C >= get_num_threads() || sh.numel() < kSerialBelow) {
        parallel(C, sh.numel() < kSerialBelow ? C : 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            Moments m;
            for (int64_t u = 0; u < units; ++u) {
              const int64_t n = u / per_run, s0 = (u % per_run) * kUnit;
              merge(m, run_moments(x + (n * C + c) * HW + s0, HW - s0 < kUnit ? HW - s0 : kUnit));
            }
            out[c] = m;
          }
        });
        return;
      }
      // Few channels: units in parallel, then merged in the same order.
      Scratch<Moments> part(C * units);
      parallel(C * units, 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const int64_t c = k / units, u = k % units, n = u / per_run, s0 = (u % per_run) * kUnit;
          part[k] = run_moments(x + (n * C + c) * HW + s0, HW - s0 < kUnit ? HW - s0 : kUnit);
        }
      });
      for (int64_t c = 0; c < C; ++c) {
        Moments m;
        for (int64_t u = 0; u < units; ++u) merge(m, part[c * units + u]);
        out[c] = m;
      }
      return;
    }
    // NHWC / (N, C): units of rows in parallel, each over all channels.
    const int64_t rows = N * HW, units = (rows + kRowUnit - 1) / kRowUnit;
    Scratch<Moments> part(units * C);
    parallel(units, sh.numel() < kSerialBelow ? units : 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t r0 = u * kRowUnit, r1 = r0 + kRowUnit < rows ? r0 + kRowUnit : rows;
        rows_unit_moments(x, C, r0, r1, &part[u * C]);
      }
    });
    for (int64_t c = 0; c < C; ++c) {
      Moments m;
      for (int64_t u = 0; u < units; ++u) merge(m, part[u * C + c]);
      out[c] = m;
    }
  }

  // ------------------------------------------------------- elementwise passes

  // Scalar math: y = ((x - mean_hi) - mean_lo) * scale + shift
  static void affine_run(const T* x, T* y, int64_t len, const Coeffs<T>& k) {
    const V hi = V::set1(k.mean_hi), lo = V::set1(k.mean_lo), a = V::set1(k.scale), b = V::set1(k.shift);
    int64_t i = 0;
    for (; i + W <= len; i += W) V::store(y + i, V::fmadd(V::sub(V::sub(V::load(x + i), hi), lo), a, b));
    for (; i < len; ++i) y[i] = ((x[i] - k.mean_hi) - k.mean_lo) * k.scale + k.shift;
  }

  // NHWC row, coefficients per channel (arrays of C).
  // Scalar math: y[c] = ((x[c] - mean_hi[c]) - mean_lo[c]) * scale[c] + shift[c]
  static void affine_row(const T* x, T* y, int64_t C, const T* hi, const T* lo, const T* a, const T* b) {
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      const V d = V::sub(V::sub(V::load(x + c), V::load(hi + c)), V::load(lo + c));
      V::store(y + c, V::fmadd(d, V::load(a + c), V::load(b + c)));
    }
    for (; c < C; ++c) y[c] = ((x[c] - hi[c]) - lo[c]) * a[c] + b[c];
  }

  // y from per-channel coefficients, over the whole tensor.
  static void apply_affine(const Shape& sh, const T* x, T* y, const Coeffs<T>* k) {
    const int64_t C = sh.c, HW = sh.s, grain = sh.numel() < kSerialBelow ? INT64_MAX : 1;
    if (!sh.channels_last) {
      parallel(sh.n * C, grain == 1 ? (kUnit + HW - 1) / HW : sh.n * C, [&](int64_t b, int64_t e) {
        for (int64_t nc = b; nc < e; ++nc) affine_run(x + nc * HW, y + nc * HW, HW, k[nc % C]);
      });
      return;
    }
    Scratch<T> hi(C), lo(C), a(C), bb(C);
    for (int64_t c = 0; c < C; ++c) hi[c] = k[c].mean_hi, lo[c] = k[c].mean_lo, a[c] = k[c].scale, bb[c] = k[c].shift;
    const int64_t rows = sh.n * HW;
    parallel(rows, grain == 1 ? (kUnit + C - 1) / C : rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) affine_row(x + r * C, y + r * C, C, hi.p, lo.p, a.p, bb.p);
    });
  }

  // -------------------------------------------------------------- the ops

  static double weight_at(const T* w, int64_t c) { return w ? double(w[c]) : 1.0; }
  static double bias_at(const T* b, int64_t c) { return b ? double(b[c]) : 0.0; }

  static void finish_channel(const ForwardTrainingArgs<T>& a, int64_t c, const Moments& m, Coeffs<T>* k) {
    const double n = m.count, var = m.m2 / n, invstd = 1.0 / std::sqrt(var + a.eps);
    a.save_mean[c] = T(m.mean);
    a.save_invstd[c] = T(invstd);
    if (a.running_mean) {
      const double unbiased = a.unbiased && n > 1 ? var * n / (n - 1) : var;
      a.running_mean[c] = T((1 - a.momentum) * double(a.running_mean[c]) + a.momentum * m.mean);
      a.running_var[c] = T((1 - a.momentum) * double(a.running_var[c]) + a.momentum * unbiased);
    }
    k[c] = make_coeffs<T>(m.mean, invstd * weight_at(a.weight, c), bias_at(a.bias, c));
  }

  static void forward_training(const ForwardTrainingArgs<T>& a) {
    const Shape& sh = a.shape;
    const int64_t C = sh.c, HW = sh.s;
    Scratch<Coeffs<T>> k(C);
    // NCHW with enough channels: statistics and y of one channel while its
    // values are still in cache, so memory sees about one read and one write.
    if (!sh.channels_last && sh.numel() >= kSerialBelow && C >= get_num_threads()) {
      const int64_t per_run = (HW + kUnit - 1) / kUnit, units = sh.n * per_run;
      parallel(C, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          Moments m;
          for (int64_t u = 0; u < units; ++u) {
            const int64_t n = u / per_run, s0 = (u % per_run) * kUnit;
            merge(m, run_moments(a.x + (n * C + c) * HW + s0, HW - s0 < kUnit ? HW - s0 : kUnit));
          }
          finish_channel(a, c, m, k.p);
          for (int64_t n = 0; n < sh.n; ++n) affine_run(a.x + (n * C + c) * HW, a.y + (n * C + c) * HW, HW, k[c]);
        }
      });
      return;
    }
    Scratch<Moments> m(C);
    channel_moments(sh, a.x, m.p);
    for (int64_t c = 0; c < C; ++c) finish_channel(a, c, m[c], k.p);
    apply_affine(sh, a.x, a.y, k.p);
  }

  static void forward_eval(const ForwardEvalArgs<T>& a) {
    Scratch<Coeffs<T>> k(a.shape.c);
    for (int64_t c = 0; c < a.shape.c; ++c) {
      const double invstd = 1.0 / std::sqrt(double(a.var[c]) + a.eps);
      k[c] = make_coeffs<T>(double(a.mean[c]), invstd * weight_at(a.weight, c), bias_at(a.bias, c));
    }
    apply_affine(a.shape, a.x, a.y, k.p);
  }

  // ------------------------------------------------------------- backward

  // Sums of one contiguous block around the channel's mean.
  // Scalar math: sdy += dy; sdyx += dy * (x - mean)
  static void block_grad_sums(const T* x, const T* dy, int64_t len, T mean, double& sdy, double& sdyx) {
    const V vm = V::set1(mean);
    V g0 = V::zero(), g1 = V::zero(), h0 = V::zero(), h1 = V::zero();
    int64_t i = 0;
    for (; i + 2 * W <= len; i += 2 * W) {
      const V e0 = V::load(dy + i), e1 = V::load(dy + i + W);
      g0 = V::add(g0, e0);
      g1 = V::add(g1, e1);
      h0 = V::fmadd(e0, V::sub(V::load(x + i), vm), h0);
      h1 = V::fmadd(e1, V::sub(V::load(x + i + W), vm), h1);
    }
    for (; i + W <= len; i += W) {
      const V e0 = V::load(dy + i);
      g0 = V::add(g0, e0);
      h0 = V::fmadd(e0, V::sub(V::load(x + i), vm), h0);
    }
    double s = V::hsum(V::add(g0, g1)), t = V::hsum(V::add(h0, h1));
    for (; i < len; ++i) {
      s += double(dy[i]);
      t += double(dy[i]) * double(T(x[i] - mean));
    }
    sdy += s;
    sdyx += t;
  }

  static void run_grad_sums(const T* x, const T* dy, int64_t len, T mean, double& sdy, double& sdyx) {
    for (int64_t b = 0; b < len; b += kBlock) block_grad_sums(x + b, dy + b, len - b < kBlock ? len - b : kBlock, mean, sdy, sdyx);
  }

  // NHWC: sums for the lanes c0..c0+VV::W over `rows` rows, added into out.
  // Scalar math: sdy[c] += dy[r][c]; sdyx[c] += dy[r][c] * (x[r][c] - mean[c])
  template <class VV>
  static void rows_grad_sums(const T* x, const T* dy, int64_t C, int64_t c0, int64_t rows, const T* mean, double* sdy, double* sdyx) {
    constexpr int L = VV::W;
    const VV vm = VV::load(mean + c0);
    VV g = VV::zero(), h = VV::zero();
    for (int64_t r = 0; r < rows; ++r) {
      const VV e = VV::load(dy + r * C + c0);
      g = VV::add(g, e);
      h = VV::fmadd(e, VV::sub(VV::load(x + r * C + c0), vm), h);
    }
    T lg[L], lh[L];
    VV::store(lg, g);
    VV::store(lh, h);
    for (int l = 0; l < L; ++l) sdy[c0 + l] += double(lg[l]), sdyx[c0 + l] += double(lh[l]);
  }

  // Per channel: sdy = sum(dy), sdyx = sum(dy * (x - mean)).
  static void grad_sums(const BackwardArgs<T>& a, double* sdy, double* sdyx) {
    const Shape& sh = a.shape;
    const int64_t N = sh.n, C = sh.c, HW = sh.s;
    const int64_t serial = sh.numel() < kSerialBelow;
    if (!sh.channels_last) {
      const int64_t per_run = (HW + kUnit - 1) / kUnit, units = N * per_run;
      Scratch<double> pg(C * units), ph(C * units);
      parallel(C * units, serial ? C * units : 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const int64_t c = k / units, u = k % units, n = u / per_run, s0 = (u % per_run) * kUnit;
          const int64_t off = (n * C + c) * HW + s0;
          double g = 0, h = 0;
          run_grad_sums(a.x + off, a.dy + off, HW - s0 < kUnit ? HW - s0 : kUnit, a.mean[c], g, h);
          pg[k] = g, ph[k] = h;
        }
      });
      for (int64_t c = 0; c < C; ++c) {
        double g = 0, h = 0;
        for (int64_t u = 0; u < units; ++u) g += pg[c * units + u], h += ph[c * units + u];
        sdy[c] = g, sdyx[c] = h;
      }
      return;
    }
    const int64_t rows = N * HW, units = (rows + kRowUnit - 1) / kRowUnit;
    Scratch<double> pg(units * C), ph(units * C);
    parallel(units, serial ? units : 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t r1 = (u + 1) * kRowUnit < rows ? (u + 1) * kRowUnit : rows;
        for (int64_t r = u * kRowUnit; r < r1; r += kRowBlock) {
          const int64_t nr = r1 - r < kRowBlock ? r1 - r : kRowBlock;
          int64_t c = 0;
          for (; c + W <= C; c += W) rows_grad_sums<V>(a.x + r * C, a.dy + r * C, C, c, nr, a.mean, &pg[u * C], &ph[u * C]);
          for (; c < C; ++c) rows_grad_sums<S>(a.x + r * C, a.dy + r * C, C, c, nr, a.mean, &pg[u * C], &ph[u * C]);
        }
      }
    });
    for (int64_t c = 0; c < C; ++c) {
      double g = 0, h = 0;
      for (int64_t u = 0; u < units; ++u) g += pg[u * C + c], h += ph[u * C + c];
      sdy[c] = g, sdyx[c] = h;
    }
  }

  // Per-channel coefficients of dx = dy * k1 + (x - mean) * k2 + k3.
  struct GradCoeffs {
    T mean, k1, k2, k3;
  };

  // Scalar math: dx = dy * k1 + (x - mean) * k2 + k3
  static void grad_input_run(const T* x, const T* dy, T* dx, int64_t len, const GradCoeffs& k) {
    const V m = V::set1(k.mean), k1 = V::set1(k.k1), k2 = V::set1(k.k2), k3 = V::set1(k.k3);
    int64_t i = 0;
    for (; i + W <= len; i += W) {
      const V t = V::fmadd(V::sub(V::load(x + i), m), k2, k3);
      V::store(dx + i, V::fmadd(V::load(dy + i), k1, t));
    }
    for (; i < len; ++i) dx[i] = dy[i] * k.k1 + ((x[i] - k.mean) * k.k2 + k.k3);
  }

  // NHWC row. Scalar math: dx[c] = dy[c] * k1[c] + (x[c] - mean[c]) * k2[c] + k3[c]
  static void grad_input_row(const T* x, const T* dy, T* dx, int64_t C, const T* m, const T* k1, const T* k2, const T* k3) {
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      const V t = V::fmadd(V::sub(V::load(x + c), V::load(m + c)), V::load(k2 + c), V::load(k3 + c));
      V::store(dx + c, V::fmadd(V::load(dy + c), V::load(k1 + c), t));
    }
    for (; c < C; ++c) dx[c] = dy[c] * k1[c] + ((x[c] - m[c]) * k2[c] + k3[c]);
  }

  static void backward(const BackwardArgs<T>& a) {
    const Shape& sh = a.shape;
    const int64_t C = sh.c, HW = sh.s;
    const double n = double(sh.count_per_channel());
    Scratch<double> sdy(C), sdyx(C);
    grad_sums(a, sdy.p, sdyx.p);
    Scratch<GradCoeffs> k(C);
    Scratch<Coeffs<T>> frozen(C);
    for (int64_t c = 0; c < C; ++c) {
      const double invstd = double(a.invstd[c]), gw = invstd * sdyx[c];
      if (a.grad_weight) a.grad_weight[c] = T(gw);
      if (a.grad_bias) a.grad_bias[c] = T(sdy[c]);
      // dx = w*invstd*(dy - sdy/n - xhat*gw/n), xhat = (x - mean)*invstd
      const double k1 = weight_at(a.weight, c) * invstd;
      k[c] = GradCoeffs{a.mean[c], T(k1), T(-k1 * invstd * gw / n), T(-k1 * sdy[c] / n)};
      frozen[c] = Coeffs<T>{T(0), T(0), T(k1), T(0)};
    }
    if (!a.dx) return;
    // Frozen statistics: dx = dy * weight * invstd, an elementwise pass on dy.
    if (!a.use_batch_stats) return apply_affine(sh, a.dy, a.dx, frozen.p);
    const int64_t grain = sh.numel() < kSerialBelow ? INT64_MAX : 1;
    if (!sh.channels_last) {
      parallel(sh.n * C, grain == 1 ? (kUnit + HW - 1) / HW : sh.n * C, [&](int64_t b, int64_t e) {
        for (int64_t nc = b; nc < e; ++nc) grad_input_run(a.x + nc * HW, a.dy + nc * HW, a.dx + nc * HW, HW, k[nc % C]);
      });
      return;
    }
    Scratch<T> m(C), k1(C), k2(C), k3(C);
    for (int64_t c = 0; c < C; ++c) m[c] = k[c].mean, k1[c] = k[c].k1, k2[c] = k[c].k2, k3[c] = k[c].k3;
    const int64_t rows = sh.n * HW;
    parallel(rows, grain == 1 ? (kUnit + C - 1) / C : rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) grad_input_row(a.x + r * C, a.dy + r * C, a.dx + r * C, C, m.p, k1.p, k2.p, k3.p);
    });
  }
};

// (N, C) input and NCHW with one value per plane are the same memory as
// channels-last with N*HW rows; the row kernels vectorize across channels.
inline Shape effective(Shape s) {
  if (!s.channels_last && s.s == 1) s.channels_last = true;
  return s;
}

template <class V>
void forward_training(const ForwardTrainingArgs<typename V::type>& a) {
  auto b = a;
  b.shape = effective(a.shape);
  Kernels<V>::forward_training(b);
}
template <class V>
void forward_eval(const ForwardEvalArgs<typename V::type>& a) {
  auto b = a;
  b.shape = effective(a.shape);
  Kernels<V>::forward_eval(b);
}
template <class V>
void backward(const BackwardArgs<typename V::type>& a) {
  auto b = a;
  b.shape = effective(a.shape);
  Kernels<V>::backward(b);
}

// The table of one ISA: F32 and F64 are its float and double vector types.
template <class F32, class F64>
KernelTable make_table(const char* isa) {
  return KernelTable{isa,
                     &forward_training<F32>, &forward_training<F64>,
                     &forward_eval<F32>,     &forward_eval<F64>,
                     &backward<F32>,         &backward<F64>};
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
