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
#include "tuning.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

using namespace tuning;

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
  const double n = a.count + b.count, delta = b.mean - a.mean, wb = b.count / n;
  a.mean += delta * wb;
  a.m2 += b.m2 + delta * delta * a.count * wb;
  a.count = n;
}

// Moments from a block's float sums taken around `shift` (corrected two-pass):
// mean = shift + sum(d) / n,  m2 = sum(d^2) - sum(d)^2 / n,  d = x - shift.
inline Moments moments_from_shifted(double n, double shift, double sd, double sd2) {
  const double mean_d = sd / n, m2 = sd2 - sd * mean_d;
  return Moments{n, shift + mean_d, m2 < 0 ? 0 : m2};
}

// One pass around a shared shift serves a block only while the block's mean
// lies within its own standard deviation of the shift (sum(d)^2 / n <= m2,
// that is 2 sum(d)^2 <= n sum(d^2)): the cancellation in m2 = sum(d^2) -
// sum(d)^2 / n then at most doubles the rounding error. A block past it is
// summed again around its own mean.
inline bool far_from_shift(double n, double sd, double sd2) { return 2 * sd * sd > n * sd2; }

// The blocks summed around one shift: their sums added up in double, and one
// Moments at the end rather than one merge (a division) per block. The bound
// holds for the total: sum(d)^2 / n <= the sum of the blocks' sum(d)^2 / n_b
// (Cauchy-Schwarz) <= half the sum of their sum(d^2) (each block's bound).
struct ShiftedSums {
  double n = 0, sd = 0, sd2 = 0;
  void add(double count, double s, double s2) { n += count, sd += s, sd2 += s2; }
  void merge_into(Moments& m, double shift) const {
    if (n > 0) merge(m, moments_from_shifted(n, shift, sd, sd2));
  }
};

// A hint to bring the line at p into the caches (no fault, whatever p is).
inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

// Zeroed scratch without library templates (see the note at the top): up to
// 512 bytes on the stack, more from the heap, so that a small tensor's call
// (a few channels) does not pay for malloc and free.
template <class U>
struct Scratch {
  static constexpr int64_t kLocal = 512 / int64_t(sizeof(U)) > 0 ? 512 / int64_t(sizeof(U)) : 1;
  explicit Scratch(int64_t n) : p(n > kLocal ? new U[size_t(n)]() : local) {
    if (p == local)
      for (int64_t i = 0; i < n; ++i) local[i] = U();
  }
  ~Scratch() {
    if (p != local) delete[] p;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  U& operator[](int64_t i) { return p[i]; }
  U local[kLocal];
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
//   y = (x - mean_hi) * scale + shift',  shift' = shift - mean_lo * scale
// mean_hi is the double mean rounded to T and mean_lo what that rounding lost:
// x - mean_hi is exact for x near the mean, and the correction rides in the
// shift, so a large mean with a small spread (mean 100, std 0.01) loses
// nothing to float32 cancellation.
template <class T>
struct Coeffs {
  T mean, scale, shift;
};

// i % C for 0 <= i < 2C, without a division: the elementwise passes step a
// channel index once per plane, or rotate it by less than C, for every plane
// or channel ((64,16,8,8) has 1024 planes of 64 values).
inline int64_t wrap(int64_t i, int64_t C) { return i < C ? i : i - C; }

template <class T>
Coeffs<T> make_coeffs(double mean, double scale, double shift) {
  const T hi = T(mean);
  return Coeffs<T>{hi, T(scale), T(double(hi) == mean ? shift : shift - (mean - double(hi)) * scale)};
}

template <class V>
struct Kernels {
  using T = typename V::type;
  using S = simd::ScalarVec<T>;  // the lanes left over in NHWC rows
  static constexpr int W = V::W;

  // ------------------------------------------------------------ the units
  //
  // NCHW: a channel's values are N runs of HW, `C * HW` apart. A unit is a
  // stretch of one channel: up to kUnit values of one run (HW > kUnit), or
  // whole runs adding up to at most kUnit values. A block, the stretch one
  // set of float32 partial sums covers, is up to B values of one run, or
  // whole short runs adding up to at most B. Both depend on the shape only.

  static constexpr int64_t B = block_values(W);  // values per block (tuning.h)

  struct Units {
    int64_t per_channel, runs_per_unit, pieces_per_run;
  };

  static Units units_of(const Shape& sh) {
    if (sh.s > kUnit) {
      const int64_t pieces = (sh.s + kUnit - 1) / kUnit;
      return Units{sh.n * pieces, 1, pieces};
    }
    const int64_t runs = kUnit / sh.s;
    return Units{(sh.n + runs - 1) / runs, runs, 1};
  }

  // Calls f(offset, runs, len) for each block of unit u of channel c, in order:
  // `runs` runs of `len` values starting at x + offset, C * HW apart.
  template <class F>
  static void unit_blocks(const Shape& sh, const Units& us, int64_t c, int64_t u, F&& f) {
    const int64_t C = sh.c, HW = sh.s;
    if (us.pieces_per_run > 1) {
      const int64_t n = u / us.pieces_per_run, s0 = (u % us.pieces_per_run) * kUnit, s1 = s0 + kUnit < HW ? s0 + kUnit : HW;
      for (int64_t b = s0; b < s1; b += B) f((n * C + c) * HW + b, int64_t(1), s1 - b < B ? s1 - b : B);
      return;
    }
    const int64_t n0 = u * us.runs_per_unit, n1 = n0 + us.runs_per_unit < sh.n ? n0 + us.runs_per_unit : sh.n;
    if (HW >= B) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t b = 0; b < HW; b += B) f((n * C + c) * HW + b, int64_t(1), HW - b < B ? HW - b : B);
      return;
    }
    const int64_t group = B / HW;
    for (int64_t n = n0; n < n1; n += group) f((n * C + c) * HW, n1 - n < group ? n1 - n : group, HW);
  }

  // ---------------------------------------------------------------- moments

  // Sums of d = x - shift over one block: `runs` runs of `len` values, `stride` apart.
  // Scalar math: d = x - shift; sd += d; sd2 += d * d
  static void shifted_sums(const T* x, int64_t stride, int64_t runs, int64_t len, T shift, double& sd, double& sd2) {
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

  // A unit's first block takes two passes; the blocks after it one pass,
  // around the first block's mean, unless far_from_shift (then their own),
  // so a channel that drifts along the batch costs time, never accuracy.
  // The one-pass blocks add up in ShiftedSums (one merge a unit, not one a
  // block: forward-training, 2 and 1 threads, (64,16,8,8), 8 blocks a
  // channel, 0.93x both; (32,256,14,14) 0.93x and 0.90x).
  static Moments unit_moments(const Shape& sh, const Units& us, const T* x, int64_t c, int64_t u) {
    const int64_t stride = sh.c * sh.s;
    Moments m;
    T shift = 0;
    ShiftedSums rest;
    unit_blocks(sh, us, c, u, [&](int64_t off, int64_t runs, int64_t len) {
      if (m.count == 0) {
        merge(m, block_moments(x + off, stride, runs, len));
        shift = T(m.mean);
        return;
      }
      const double count = double(runs * len);
      double sd, sd2;
      shifted_sums(x + off, stride, runs, len, shift, sd, sd2);
      if (far_from_shift(count, sd, sd2)) return merge(m, block_moments(x + off, stride, runs, len));
      rest.add(count, sd, sd2);
    });
    rest.merge_into(m, double(shift));
    return m;
  }

  // NHWC: rows of C values. A block is `rows_per_block(C)` rows (tuning.h);
  // a sweep covers up to four
  // vectors of channels across the block's rows in registers. Calls
  // f(Sweep<VV, G>{}, c0) with G vectors of VV from channel c0, for
  // every channel of a row, in order: sweeps of 4 x W, then 1..3 x W, then
  // the scalar lanes left over (VV = S).

  template <class VV, int G>
  struct Sweep {
    using vec = VV;
    static constexpr int groups = G;
  };

  template <class F>
  static void for_each_sweep(int64_t C, F&& f) {
    int64_t c = 0;
    for (; c + 4 * W <= C; c += 4 * W) f(Sweep<V, 4>{}, c);
    switch ((C - c) / W) {
      case 3: f(Sweep<V, 3>{}, c); break;
      case 2: f(Sweep<V, 2>{}, c); break;
      case 1: f(Sweep<V, 1>{}, c); break;
      default: break;
    }
    for (c += (C - c) / W * W; c < C; ++c) f(Sweep<S, 1>{}, c);
  }

  // Means of channels c0 .. c0 + G * VV::W over `rows` rows, into mean[0 .. G * VV::W).
  // Scalar math: mean[c] = sum over rows of x[r][c] / rows
  template <class VV, int G>
  static void rows_mean(const T* x, int64_t C, int64_t c0, int64_t rows, T* mean) {
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
  // Each lane sums its rows in stretches of kRowStretch, which then add up:
  // a lane's float rounding then spans at most kRowStretch + rows /
  // kRowStretch terms, not the block's up to kRowBlockMax (256) rows: about
  // as few as a lane of an NCHW block sums with AVX2 or AVX-512 (alternating
  // +-d rows: invstd 1.9e-6 off before, 1.7e-8 now; no cost measurable in
  // bench/ab.mjs on (256,512), (32,256,14,14) and (32,64,56,56) NHWC).
  template <class VV, int G>
  static void rows_sums(const T* x, int64_t C, int64_t c0, int64_t rows, const T* shift, T* sd, T* sd2) {
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
  static void rows_moments(const T* x, int64_t C, int64_t c0, int64_t rows, Moments* out) {
    constexpr int L = VV::W;
    T mean[G * L], sd[G * L], sd2[G * L];
    rows_mean<VV, G>(x, C, c0, rows, mean);
    rows_sums<VV, G>(x, C, c0, rows, mean, sd, sd2);
    for (int l = 0; l < G * L; ++l) out[l] = moments_from_shifted(double(rows), double(mean[l]), double(sd[l]), double(sd2[l]));
  }

  // One row block of one channel: its sums around the channel's shift
  // (shifted: a = sum(d), b = sum(d^2)) or, where the fallback took it, its
  // Moments (a = mean, b = m2).
  struct RowPart {
    double count, a, b;
    bool shifted;
  };

  // Channels c0 .. c0 + G * VV::W over `rows` rows in one pass around
  // shift[c0 ..]; a sweep with a channel far_from_shift takes rows_moments'
  // two passes.
  template <class VV, int G>
  static void rows_shifted(const T* x, int64_t C, int64_t c0, int64_t rows, const T* shift, RowPart* out) {
    constexpr int L = VV::W;
    T sd[G * L], sd2[G * L];
    rows_sums<VV, G>(x, C, c0, rows, shift + c0, sd, sd2);
    const double n = double(rows);
    bool far = false;
    for (int l = 0; l < G * L; ++l) far = far || far_from_shift(n, double(sd[l]), double(sd2[l]));
    if (!far) {
      for (int l = 0; l < G * L; ++l) out[l] = RowPart{n, double(sd[l]), double(sd2[l]), true};
      return;
    }
    Moments m[G * L];
    rows_moments<VV, G>(x, C, c0, rows, m);
    for (int l = 0; l < G * L; ++l) out[l] = RowPart{m[l].count, m[l].mean, m[l].m2, false};
  }

  // NCHW: the moments of every channel, into `out` (C entries).
  static void plane_moments(const Shape& sh, const T* x, Moments* out) {
    const int64_t C = sh.c;
    const bool serial = sh.numel() < kSerialBelow;
    const Units us = units_of(sh);
    const int64_t units = us.per_channel;
    Scratch<Moments> part(C * units);
    parallel(C * units, serial ? C * units : 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) part[k] = unit_moments(sh, us, x, k / units, k % units);
    });
    for (int64_t c = 0; c < C; ++c) {
      Moments m;
      for (int64_t u = 0; u < units; ++u) merge(m, part[c * units + u]);
      out[c] = m;
    }
  }

  // NHWC / (N, C) forward-training: every channel's statistics (written as
  // finish_channel does) and its coefficients of y, into k (C entries).
  static void row_statistics(const ForwardTrainingArgs<T>& a, Coeffs<T>* k) {
    const Shape& sh = a.shape;
    const T* x = a.x;
    const int64_t C = sh.c;
    const bool serial = sh.numel() < kSerialBelow;
    Scratch<Moments> out(C);
    // NHWC / (N, C): the first rows (an eighth of a row block, at least 16)
    // in two passes, which gives each channel its shift (as unit_moments: the
    // first stretch exact, the rest around its means, with the same
    // fallback); then the row blocks after them in parallel, each over all
    // channels in one pass; then each channel's blocks added up in order,
    // channels in parallel (finish_rows). Many small units keep the threads evenly loaded;
    // the first rows are few because they run on one thread ((256,512), two
    // row blocks, measured 1.23x at 2 threads with a whole block there).
    const int64_t rows = sh.n * sh.s, R = rows_per_block(C), first = R / 8 > 16 ? R / 8 : 16;
    const int64_t r_first = rows < first ? rows : first, units = (rows - r_first + R - 1) / R;
    for_each_sweep(C, [&](auto sweep, int64_t c0) {
      using VV = typename decltype(sweep)::vec;
      rows_moments<VV, decltype(sweep)::groups>(x, C, c0, r_first, &out[c0]);
    });
    if (units == 0) return each_channel(sh, [&](int64_t c) { k[c] = finish_channel(a, c, out[c]); });
    Scratch<T> shift(C);
    for (int64_t c = 0; c < C; ++c) shift[c] = T(out[c].mean);
    Scratch<RowPart> part(units * C);
    parallel(units, serial ? units : 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t r0 = r_first + u * R, nr = rows - r0 < R ? rows - r0 : R;
        for_each_sweep(C, [&](auto sweep, int64_t c0) {
          using VV = typename decltype(sweep)::vec;
          rows_shifted<VV, decltype(sweep)::groups>(x + r0 * C, C, c0, nr, shift.p, &part[u * C + c0]);
        });
      }
    });
    parallel(C, serial ? C : 16, [&](int64_t c0, int64_t c1) { finish_rows(a, RowStats{part.p, units, shift.p, out.p}, c0, c1, k); });
  }

  // NCHW with planes of a cache line or less (kShortPlaneBytes: up to 4x4
  // floats), where vectors have lanes to spare: the scheme of
  // row_statistics, each sample a "row" of C planes. Channel by channel
  // (unit_moments), each plane is a run too short to stream, C * HW values
  // after the last, in the same cache sets: (32,512,4,4) forward-training
  // took 6x its eval. Here four channels at a time go down the samples of a
  // block, their sums in registers. Longer planes measured slower this way
  // ((32,512,7,7) 1.25x, (64,16,8,8) 1.16x at 2 threads).
  static bool short_planes(const Shape& sh) { return !sh.channels_last && sh.s > 1 && sh.s * int64_t(sizeof(T)) <= kShortPlaneBytes && W > 1; }
  // Samples per unit: about kRowBlockValues values, and at most kBlock / W
  // terms in a lane's float sums (as an NCHW block of AVX-512).
  static int64_t samples_per_block(const Shape& sh) {
    const int64_t r = kRowBlockValues / (sh.c * sh.s), most = kBlock / W / ((sh.s + W - 1) / W);
    return r < 1 ? 1 : r > most ? most : r;
  }

  // Sums around shift[g] of channels c0 .. c0 + G over `rows` samples.
  // Scalar math: d = x[n][c][s] - shift[c]; sd[c] += d; sd2[c] += d * d
  template <int G>
  static void plane_group_sums(const T* x, int64_t C, int64_t HW, int64_t rows, int64_t c0, const T* shift, double* sd, double* sd2) {
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
  // plane_group_sums over every channel, G = 4 at a time.
  static void plane_sums(const T* x, int64_t C, int64_t HW, int64_t rows, const T* shift, double* sd, double* sd2) {
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) plane_group_sums<4>(x, C, HW, rows, c, shift + c, sd + c, sd2 + c);
    for (; c < C; ++c) plane_group_sums<1>(x, C, HW, rows, c, shift + c, sd + c, sd2 + c);
  }

  // NCHW short planes: every channel's statistics and coefficients, into k.
  static void sample_statistics(const ForwardTrainingArgs<T>& a, Coeffs<T>* k) {
    const Shape& sh = a.shape;
    const int64_t C = sh.c, HW = sh.s, N = sh.n, R = samples_per_block(sh);
    const bool serial = sh.numel() < kSerialBelow;
    // The first samples (at least 16 values a channel), in two passes as
    // block_moments, give each channel its shift; the blocks after them one
    // pass around it, or their own two where far_from_shift.
    const int64_t want = (16 + HW - 1) / HW, r_first = N < want ? N : want, units = (N - r_first + R - 1) / R;
    const double n1 = double(r_first * HW);
    Scratch<Moments> out(C);
    Scratch<T> shift(C);
    Scratch<double> sd(C), sd2(C);
    plane_sums(a.x, C, HW, r_first, shift.p, sd.p, sd2.p);  // around 0 (Scratch zeroes): the sums of x
    for (int64_t c = 0; c < C; ++c) shift[c] = T(sd[c] / n1);
    plane_sums(a.x, C, HW, r_first, shift.p, sd.p, sd2.p);
    for (int64_t c = 0; c < C; ++c) out[c] = moments_from_shifted(n1, double(shift[c]), sd[c], sd2[c]);
    if (units == 0) return each_channel(sh, [&](int64_t c) { k[c] = finish_channel(a, c, out[c]); });
    Scratch<RowPart> part(units * C);
    parallel(units, serial ? units : 1, [&](int64_t b, int64_t e) {
      Scratch<double> usd(C), usd2(C);
      for (int64_t u = b; u < e; ++u) {
        const int64_t r0 = r_first + u * R, nr = N - r0 < R ? N - r0 : R;
        const T* xu = a.x + r0 * C * HW;
        const double count = double(nr * HW);
        plane_sums(xu, C, HW, nr, shift.p, usd.p, usd2.p);
        for (int64_t c = 0; c < C; ++c) {
          if (!far_from_shift(count, usd[c], usd2[c])) {
            part[u * C + c] = RowPart{count, usd[c], usd2[c], true};
            continue;
          }
          const Moments m = block_moments(xu + c * HW, C * HW, nr, HW);
          part[u * C + c] = RowPart{m.count, m.mean, m.m2, false};
        }
      }
    });
    parallel(C, serial ? C : 16, [&](int64_t c0, int64_t c1) { finish_rows(a, RowStats{part.p, units, shift.p, out.p}, c0, c1, k); });
  }

  // The row statistics of channels-last, before each channel's row blocks
  // are added up: out[c] holds the first rows' Moments, part[u * C + c] the
  // row blocks after them (RowPart: summed around shift[c], or a fallback's
  // Moments).
  struct RowStats {
    const RowPart* part;
    int64_t units;
    const T* shift;
    const Moments* out;
  };

  // Channels [c0, c1) of the row statistics: each channel's row blocks
  // added up in order (the shifted ones' sums in ShiftedSums, merged once at
  // the end; a fallback block merged as it comes), then finish_channel. Up
  // to kFinishChannels channels at a time, in three passes: the blocks, unit
  // by unit, into arrays; the five divisions and the square root of
  // finish_channel's math in the ISA's double vectors, D::W channels at a
  // time (the same operations in the same order, so the same bits); the
  // results written out. One channel at a time, the merge and the finish
  // took about a fifth of (256,512) forward-training's cycles. A channel with
  // a fallback block, with moments that are not finite (finish_channel takes
  // them again), or short of a whole vector goes one by one.
  static void finish_rows(const ForwardTrainingArgs<T>& a, const RowStats& rs, int64_t c0, int64_t c1, Coeffs<T>* k) {
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
      // its columns ((1024,2048): 32 units, a channel's entries 64 KB apart,
      // in the same cache sets): the shifted blocks' sums as ShiftedSums
      // adds them, a fallback block merged into the channel's Moments (n1,
      // mean1, m2_1) as it comes.
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
        const D vn = D::load(n + i), vn1 = D::load(n1 + i), vsd = D::load(sd + i), vmean1 = D::load(mean1 + i);
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
          k[c] = store_channel(a, c, o_mean[i], o_invstd[i], a.unbiased && o_n[i] > 1 ? o_unbiased[i] : o_var[i]);
        }
      }
    }
  }

  // ------------------------------------------------------- elementwise passes
  // NT: stores bypass the caches (outputs larger than about half the L3 would
  // only evict the input); the first values go through plain stores until the
  // output is aligned for streaming.

  template <bool NT>
  static void put(T* p, V v) {
    if (NT) V::stream(p, v);
    else V::store(p, v);
  }
  template <bool NT>
  static int64_t peel(const T* y, int64_t len) {
    if (!NT) return 0;
    const int64_t mis = int64_t(reinterpret_cast<uintptr_t>(y) % (W * sizeof(T))) / int64_t(sizeof(T));
    const int64_t p = mis ? W - mis : 0;
    return p < len ? p : len;
  }

  // Scalar math: y = (x - mean) * scale + shift
  // With a `next` run, also asks for it as it goes (one cache line per line
  // of x), so that its reads from memory overlap this run's writes.
  template <bool NT>
  static void affine_run(const T* x, T* y, int64_t len, const Coeffs<T>& k, const T* next = nullptr) {
    constexpr int64_t kLine = 64 / sizeof(T);
    const V m = V::set1(k.mean), a = V::set1(k.scale), b = V::set1(k.shift);
    int64_t i = 0;
    for (const int64_t p = peel<NT>(y, len); i < p; ++i) y[i] = std::fma(x[i] - k.mean, k.scale, k.shift);
    for (; i + W <= len; i += W) {
      if (next && i % kLine < W) prefetch(next + i);
      put<NT>(y + i, V::fmadd(V::sub(V::load(x + i), m), a, b));
    }
    for (; i < len; ++i) y[i] = std::fma(x[i] - k.mean, k.scale, k.shift);
  }

  // `arrays`: how many tensors of this shape the pass reads and writes.
  static bool bytes_at_least(const Shape& sh, int64_t arrays, int64_t bytes) { return arrays * sh.numel() * int64_t(sizeof(T)) >= bytes; }
  static bool streaming(const Shape& sh, int64_t arrays) { return bytes_at_least(sh, arrays, kStreamBytes); }

  // NHWC: `rows` rows from channel c0, G vectors of VV wide, the channels'
  // coefficients held in registers down the rows (arrays of C).
  // Scalar math: y[r][c] = (x[r][c] - mean[c]) * scale[c] + shift[c]
  template <class VV, int G, bool NT>
  static void affine_rows(const T* x, T* y, int64_t C, int64_t c0, int64_t rows, const T* m, const T* a, const T* b) {
    constexpr int L = VV::W;
    VV vm[G], va[G], vb[G];
    for (int g = 0; g < G; ++g) vm[g] = VV::load(m + c0 + g * L), va[g] = VV::load(a + c0 + g * L), vb[g] = VV::load(b + c0 + g * L);
    for (int64_t r = 0; r < rows; ++r)
      for (int g = 0; g < G; ++g) {
        const int64_t o = r * C + c0 + g * L;
        const VV v = VV::fmadd(VV::sub(VV::load(x + o), vm[g]), va[g], vb[g]);
        if (NT) VV::stream(y + o, v);
        else VV::store(y + o, v);
      }
  }

  // NHWC: calls f(sweep, c0, r, rows) for the tiles of rows [r0, r1), tile
  // by tile, each tile sweep by sweep. Tiles of a few KB: memory sees the
  // rows nearly in order, and each sweep's coefficients load once per tile.
  template <class F>
  static void for_each_tile_sweep(int64_t C, int64_t r0, int64_t r1, F&& f) {
    const int64_t R = kTileValues / C < 1 ? 1 : kTileValues / C > kRowBlockMax ? kRowBlockMax : kTileValues / C;
    for (int64_t r = r0; r < r1; r += R) {
      const int64_t rows = r1 - r < R ? r1 - r : R;
      for_each_sweep(C, [&](auto sweep, int64_t c0) { f(sweep, c0, r, rows); });
    }
  }

  // NHWC outputs stream when C is a multiple of the vector width: the rows are
  // then taken from y's first aligned value on (see for_skew_edges), so that
  // every vector store lands aligned.
  static bool rows_stream(const Shape& sh, int64_t arrays) { return streaming(sh, arrays) && sh.c % W == 0; }

  // NHWC with y p = peel<NT>(y, C) values short of alignment: the passes run
  // over "rows" that start at channel p (x + p, y + p, one row fewer, with
  // the coefficients rotated by p). Calls f(i, c) for the values left out,
  // index i of channel c: the p before them and the C - p after them.
  template <class F>
  static void for_skew_edges(int64_t rows, int64_t C, int64_t p, F&& f) {
    if (!p) return;
    for (int64_t c = 0; c < p; ++c) f(c, c);                    // row 0, channels before p
    for (int64_t c = p; c < C; ++c) f((rows - 1) * C + c, c);  // last row, channels from p
  }

  // The runs of channel c: y from its coefficients. With `prefetch_next`,
  // channel c + 1 (each of its runs follows the same run of c) is fetched on
  // the way, so that its statistics pass reads from L2: with a tensor the L3
  // does not hold (kPrefetchBytes), memory then reads and writes at once
  // instead of taking turns ((32,64,56,56) forward-training 23% faster at 2
  // threads, 30% at 1; (32,128,28,28) 0.74-0.83x). The backward's dx pass
  // (x and dy of two channels overflow L2) measured no gain, so it does not.
  // The runs go last sample first: the statistics pass read that one last, so
  // the pass starts on what L1 and L2 still hold, and what they dropped
  // first comes last ((32,64,56,56) 0.91-0.95x at 1 thread, 0.98-1.00x at 2,
  // 0.96x cold; the backward's dx pass likewise, below).
  template <bool NT>
  static void affine_channel(const Shape& sh, const T* x, T* y, int64_t c, const Coeffs<T>& k, bool prefetch_next) {
    for (int64_t n = sh.n - 1; n >= 0; --n) {
      const int64_t off = (n * sh.c + c) * sh.s;
      affine_run<NT>(x + off, y + off, sh.s, k, prefetch_next ? x + off + sh.s : nullptr);
    }
  }

  // y from per-channel coefficients, over the whole tensor.
  static void apply_affine(const Shape& sh, const T* x, T* y, const Coeffs<T>* k) {
    if (!sh.channels_last) {
      if (streaming(sh, 2)) return affine_planes<true>(sh, x, y, k);
      return affine_planes<false>(sh, x, y, k);
    }
    if (rows_stream(sh, 2)) return affine_rows_all<true>(sh, x, y, k);
    affine_rows_all<false>(sh, x, y, k);
  }
  // Streamed, each plane prefetches the next: runs of a few KB are too short
  // for the hardware prefetcher to get ahead. (32,64,56,56) eval measured
  // 0.88x at 2 threads and 0.90x at 1 in one A/B, 1.0x in a later one (the
  // share of x the L3 still holds from the previous call decides).
  template <bool NT>
  static void affine_planes(const Shape& sh, const T* x, T* y, const Coeffs<T>* k) {
    const int64_t C = sh.c, HW = sh.s;
    const bool serial = sh.numel() < kSerialBelow;
    parallel(sh.n * C, serial ? sh.n * C : (kUnit + HW - 1) / HW, [&](int64_t b, int64_t e) {
      // c = nc % C, counted (wrap) rather than divided per plane: (64,16,8,8)
      // eval 0.98x, backward 0.97x at 2 threads.
      for (int64_t nc = b, c = b % C; nc < e; ++nc, c = wrap(c + 1, C))
        affine_run<NT>(x + nc * HW, y + nc * HW, HW, k[c], NT && nc + 1 < e ? x + (nc + 1) * HW : nullptr);
      if (NT) V::fence();
    });
  }
  template <bool NT>
  static void affine_rows_all(const Shape& sh, const T* x, T* y, const Coeffs<T>* k) {
    const int64_t C = sh.c, p = peel<NT>(y, C), rows = sh.n * sh.s - (p ? 1 : 0);
    Scratch<T> m(C), a(C), b(C);
    for (int64_t c = 0; c < C; ++c) {
      const Coeffs<T>& kc = k[wrap(c + p, C)];
      m[c] = kc.mean, a[c] = kc.scale, b[c] = kc.shift;
    }
    for_skew_edges(rows + 1, C, p, [&](int64_t i, int64_t c) { y[i] = std::fma(x[i] - k[c].mean, k[c].scale, k[c].shift); });
    const T* xs = x + p;
    T* ys = y + p;
    parallel(rows, sh.numel() < kSerialBelow ? rows : (kUnit + C - 1) / C, [&](int64_t r0, int64_t r1) {
      for_each_tile_sweep(C, r0, r1, [&](auto sweep, int64_t c0, int64_t r, int64_t nr) {
        using VV = typename decltype(sweep)::vec;
        affine_rows<VV, decltype(sweep)::groups, NT>(xs + r * C, ys + r * C, C, c0, nr, m.p, a.p, b.p);
      });
      if (NT) V::fence();
    });
  }

  // -------------------------------------------------------------- the ops

  static double weight_at(const T* w, int64_t c) { return w ? double(w[c]) : 1.0; }
  static double bias_at(const T* b, int64_t c) { return b ? double(b[c]) : 0.0; }

  // PyTorch's statistics of channel c, two plain passes in double:
  //   mean = sum(x) / n,  m2 = sum((x - mean)^2)
  // For a channel with an infinite or NaN value, whose shifted sums and
  // merges give inf - inf = NaN for the mean: PyTorch's mean is +inf when the
  // channel holds +inf (and no -inf or NaN), -inf likewise, else NaN; m2 is
  // then NaN. Rare, so plain loops, in a fixed order (any thread count).
  static Moments plain_moments(const Shape& sh, const T* x, int64_t c) {
    auto at = [&](int64_t n, int64_t j) { return double(x[sh.channels_last ? (n * sh.s + j) * sh.c + c : (n * sh.c + c) * sh.s + j]); };
    const double count = double(sh.count_per_channel());
    double s = 0, m2 = 0;
    for (int64_t n = 0; n < sh.n; ++n)
      for (int64_t j = 0; j < sh.s; ++j) s += at(n, j);
    const double mean = s / count;
    for (int64_t n = 0; n < sh.n; ++n)
      for (int64_t j = 0; j < sh.s; ++j) m2 += (at(n, j) - mean) * (at(n, j) - mean);
    return Moments{count, mean, m2};
  }

  // Writes channel c's statistics; returns its coefficients of y. Moments
  // that are not finite come from a channel with an infinite or NaN value,
  // or with finite values whose float sums or squares overflow (|x - shift|
  // above about 1.8e19, or a block's sum of values near 1e36; in double,
  // squares past 1e154): that channel's are taken again by plain_moments,
  // PyTorch's formula in double, so they are PyTorch's (and exact where float
  // overflowed). A finite channel pays one test.
  static Coeffs<T> finish_channel(const ForwardTrainingArgs<T>& a, int64_t c, const Moments& moments) {
    const Moments m = std::isfinite(moments.mean) && std::isfinite(moments.m2) ? moments : plain_moments(a.shape, a.x, c);
    const double n = m.count, var = m.m2 / n, invstd = 1.0 / std::sqrt(var + a.eps);
    return store_channel(a, c, m.mean, invstd, a.unbiased && n > 1 ? var * n / (n - 1) : var);
  }

  // Channel c's saved and running statistics from its mean, its invstd and
  // the variance the running statistics take (unbiased or not); returns its
  // coefficients of y.
  static Coeffs<T> store_channel(const ForwardTrainingArgs<T>& a, int64_t c, double mean, double invstd, double running) {
    a.save_mean[c] = T(mean);
    a.save_invstd[c] = T(invstd);
    if (a.running_mean) {
      a.running_mean[c] = T((1 - a.momentum) * double(a.running_mean[c]) + a.momentum * mean);
      a.running_var[c] = T((1 - a.momentum) * double(a.running_var[c]) + a.momentum * running);
    }
    return make_coeffs<T>(mean, invstd * weight_at(a.weight, c), bias_at(a.bias, c));
  }

  // f(c) for every channel (channel_ranges: f(c0, c1) for ranges of them),
  // channels in parallel: the forward's per-channel
  // coefficients (a square root and a few divisions each, about 6 ns) were a
  // tenth of (256,512) forward-training on one thread, all of it serial
  // (bench/ab.mjs, 2 threads: forward-training (256,512) 0.96-0.97x,
  // (1024,2048) 0.98x; eval 0.94x and 0.97x; 1 thread 1.00x). The
  // backward's (no square root) measured 1.01x this way, so it stays serial.
  // Each channel writes only its own entries.
  template <class F>
  static void each_channel(const Shape& sh, F&& f) {
    channel_ranges(sh, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) f(c);
    });
  }
  template <class F>
  static void channel_ranges(const Shape& sh, F&& f) {
    parallel(sh.c, sh.numel() < kSerialBelow ? sh.c : 64, [&](int64_t c0, int64_t c1) { f(c0, c1); });
  }

  // NCHW with channels to share among the threads: each thread takes whole
  // channels and writes y while the channel is still in its cache, so memory
  // sees about one read and one write of the tensor.
  static bool fuse_by_channel(const Shape& sh) {
    return !sh.channels_last && sh.numel() >= kFuseFrom && sh.c >= get_num_threads();
  }

  // Large: from kPrefetchBytes, prefetch the next channel and stream y.
  template <bool Large>
  static void forward_training_by_channel(const ForwardTrainingArgs<T>& a) {
    constexpr bool NT = Large;
    const Shape& sh = a.shape;
    const Units us = units_of(sh);
    parallel(sh.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        Moments m;
        for (int64_t u = 0; u < us.per_channel; ++u) merge(m, unit_moments(sh, us, a.x, c, u));
        affine_channel<NT>(sh, a.x, a.y, c, finish_channel(a, c, m), Large && c + 1 < c1);
      }
      if (NT) V::fence();
    });
  }

  static void forward_training(const ForwardTrainingArgs<T>& a) {
    const Shape& sh = a.shape;
    if (!short_planes(sh) && fuse_by_channel(sh)) {
      if (bytes_at_least(sh, 2, kPrefetchBytes)) return forward_training_by_channel<true>(a);
      return forward_training_by_channel<false>(a);
    }
    Scratch<Coeffs<T>> k(sh.c);
    if (sh.channels_last) {
      row_statistics(a, k.p);
    } else if (short_planes(sh)) {
      sample_statistics(a, k.p);
    } else {
      Scratch<Moments> m(sh.c);
      plane_moments(sh, a.x, m.p);
      each_channel(sh, [&](int64_t c) { k[c] = finish_channel(a, c, m[c]); });
    }
    apply_affine(sh, a.x, a.y, k.p);
  }

  static void forward_eval(const ForwardEvalArgs<T>& a) {
    using D = typename V::f64;
    constexpr int L = D::W, K = kFinishChannels;
    Scratch<Coeffs<T>> k(a.shape.c);
    // The coefficients as each_channel would make them, with the square
    // roots and divisions in double vectors (as finish_rows).
    channel_ranges(a.shape, [&](int64_t c0, int64_t c1) {
      double var[K], invstd[K];
      for (int64_t b = c0; b < c1; b += K) {
        const int cs = int(c1 - b < K ? c1 - b : K), vs = cs / L * L;
        for (int i = 0; i < cs; ++i) var[i] = double(a.var[b + i]);
        // Scalar math: invstd = 1 / sqrt(var + eps)
        for (int i = 0; i < vs; i += L) D::store(invstd + i, D::div(D::set1(1.0), D::sqrt(D::add(D::load(var + i), D::set1(a.eps)))));
        for (int i = vs; i < cs; ++i) invstd[i] = 1.0 / std::sqrt(var[i] + a.eps);
        for (int i = 0; i < cs; ++i) k[b + i] = make_coeffs<T>(double(a.mean[b + i]), invstd[i] * weight_at(a.weight, b + i), bias_at(a.bias, b + i));
      }
    });
    apply_affine(a.shape, a.x, a.y, k.p);
  }

  // ------------------------------------------------------------- backward

  // Sums of one block around the channel's mean, added into sdy, sdyx.
  // Scalar math: sdy += dy; sdyx += dy * (x - mean)
  // `ahead` (0: none): also prefetches the values that far ahead (the same
  // stretch of the next sample), so that memory never waits for a new run.
  static void block_grad_sums(const T* x, const T* dy, int64_t stride, int64_t runs, int64_t len, T mean, double& sdy, double& sdyx, int64_t ahead = 0) {
    constexpr int64_t kLine = 64 / sizeof(T);
    const V vm = V::set1(mean);
    V g0 = V::zero(), g1 = V::zero(), h0 = V::zero(), h1 = V::zero();
    double s = 0, t = 0;
    for (int64_t r = 0; r < runs; ++r) {
      const T *px = x + r * stride, *pd = dy + r * stride;
      int64_t i = 0;
      for (; i + 2 * W <= len; i += 2 * W) {
        if (ahead && i % kLine < 2 * W)
          for (int64_t j = 0; j < 2 * W; j += kLine) prefetch(px + ahead + i + j), prefetch(pd + ahead + i + j);
        const V e0 = V::load(pd + i), e1 = V::load(pd + i + W);
        g0 = V::add(g0, e0);
        g1 = V::add(g1, e1);
        h0 = V::fmadd(e0, V::sub(V::load(px + i), vm), h0);
        h1 = V::fmadd(e1, V::sub(V::load(px + i + W), vm), h1);
      }
      for (; i + W <= len; i += W) {
        const V e0 = V::load(pd + i);
        g0 = V::add(g0, e0);
        h0 = V::fmadd(e0, V::sub(V::load(px + i), vm), h0);
      }
      for (; i < len; ++i) {
        s += double(pd[i]);
        t += double(pd[i]) * double(T(px[i] - mean));
      }
    }
    sdy += s + V::hsum(V::add(g0, g1));
    sdyx += t + V::hsum(V::add(h0, h1));
  }

  // `prefetch_next`: for a tensor larger than the caches, each run's block
  // prefetches the same block of the next sample (NCHW backward 0.89x at 2
  // threads, 0.82x at 1 on (32,64,56,56); on a cached tensor it only costs).
  static void unit_grad_sums(const Shape& sh, const Units& us, const BackwardArgs<T>& a, int64_t c, int64_t u, double& g, double& h, bool prefetch_next) {
    g = 0, h = 0;
    unit_blocks(sh, us, c, u, [&](int64_t off, int64_t runs, int64_t len) {
      const int64_t next = sh.c * sh.s;  // the same place in the next sample
      block_grad_sums(a.x + off, a.dy + off, next, runs, len, a.mean[c], g, h, prefetch_next && runs == 1 && off + next < sh.numel() ? next : 0);
    });
  }

  // NHWC: sums for channels c0 .. c0 + G * VV::W over `rows` rows, added into sdy, sdyx.
  // Scalar math: sdy[c] += dy[r][c]; sdyx[c] += dy[r][c] * (x[r][c] - mean[c])
  // The rows in stretches of kRowStretch, as rows_sums.
  template <class VV, int G>
  static void rows_grad_sums(const T* x, const T* dy, int64_t C, int64_t c0, int64_t rows, const T* mean, double* sdy, double* sdyx) {
    constexpr int L = VV::W;
    VV m[G], g[G], h[G], tg[G], th[G];
    for (int k = 0; k < G; ++k) m[k] = VV::load(mean + c0 + k * L), tg[k] = VV::zero(), th[k] = VV::zero();
    for (int64_t r0 = 0; r0 < rows; r0 += kRowStretch) {
      const int64_t r1 = r0 + kRowStretch < rows ? r0 + kRowStretch : rows;
      for (int k = 0; k < G; ++k) g[k] = VV::zero(), h[k] = VV::zero();
      for (int64_t r = r0; r < r1; ++r)
        for (int k = 0; k < G; ++k) {
          const VV e = VV::load(dy + r * C + c0 + k * L);
          g[k] = VV::add(g[k], e);
          h[k] = VV::fmadd(e, VV::sub(VV::load(x + r * C + c0 + k * L), m[k]), h[k]);
        }
      for (int k = 0; k < G; ++k) tg[k] = VV::add(tg[k], g[k]), th[k] = VV::add(th[k], h[k]);
    }
    T lg[G * L], lh[G * L];
    for (int k = 0; k < G; ++k) VV::store(lg + k * L, tg[k]), VV::store(lh + k * L, th[k]);
    for (int l = 0; l < G * L; ++l) sdy[c0 + l] += double(lg[l]), sdyx[c0 + l] += double(lh[l]);
  }

  // Per channel: sdy = sum(dy), sdyx = sum(dy * (x - mean)).
  // NCHW short planes (see short_planes): the backward's sums of channels
  // c0 .. c0 + G over `rows` samples, their sums in registers.
  // Scalar math: sdy[c] += dy[n][c][s]; sdyx[c] += dy[n][c][s] * (x[n][c][s] - mean[c])
  template <int G>
  static void plane_group_grad_sums(const T* x, const T* dy, int64_t C, int64_t HW, int64_t rows, int64_t c0, const T* mean, double* sdy, double* sdyx) {
    V vm[G], g[G], h[G];
    for (int j = 0; j < G; ++j) vm[j] = V::set1(mean[j]), g[j] = V::zero(), h[j] = V::zero();
    for (int64_t n = 0; n < rows; ++n)
      for (int j = 0; j < G; ++j) {
        const int64_t o = (n * C + c0 + j) * HW;
        int64_t i = 0;
        for (; i + W <= HW; i += W) {
          const V e = V::load(dy + o + i);
          g[j] = V::add(g[j], e);
          h[j] = V::fmadd(e, V::sub(V::load(x + o + i), vm[j]), h[j]);
        }
        if (i < HW) {  // the lanes past HW: dy = 0 and x = mean
          const V e = V::load_partial(dy + o + i, HW - i, T(0));
          g[j] = V::add(g[j], e);
          h[j] = V::fmadd(e, V::sub(V::load_partial(x + o + i, HW - i, mean[j]), vm[j]), h[j]);
        }
      }
    for (int j = 0; j < G; ++j) sdy[j] = V::hsum(g[j]), sdyx[j] = V::hsum(h[j]);
  }
  static void plane_grad_sums(const T* x, const T* dy, int64_t C, int64_t HW, int64_t rows, const T* mean, double* sdy, double* sdyx) {
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) plane_group_grad_sums<4>(x, dy, C, HW, rows, c, mean + c, sdy + c, sdyx + c);
    for (; c < C; ++c) plane_group_grad_sums<1>(x, dy, C, HW, rows, c, mean + c, sdy + c, sdyx + c);
  }

  static void grad_sums(const BackwardArgs<T>& a, double* sdy, double* sdyx) {
    const Shape& sh = a.shape;
    const int64_t C = sh.c;
    const bool serial = sh.numel() < kSerialBelow;
    if (!sh.channels_last && !short_planes(sh)) {
      const Units us = units_of(sh);
      const int64_t units = us.per_channel;
      Scratch<double> pg(C * units), ph(C * units);
      parallel(C * units, serial ? C * units : 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) unit_grad_sums(sh, us, a, k / units, k % units, pg[k], ph[k], false);
      });
      for (int64_t c = 0; c < C; ++c) {
        double g = 0, h = 0;
        for (int64_t u = 0; u < units; ++u) g += pg[c * units + u], h += ph[c * units + u];
        sdy[c] = g, sdyx[c] = h;
      }
      return;
    }
    // NHWC: units of rows, each over all channels; NCHW short planes the
    // same with samples as the rows (as sample_statistics).
    const bool planes = !sh.channels_last;
    const int64_t rows = planes ? sh.n : sh.n * sh.s, R = planes ? samples_per_block(sh) : rows_per_block(C), units = (rows + R - 1) / R;
    const int64_t row = planes ? C * sh.s : C;
    Scratch<double> pg(units * C), ph(units * C);
    parallel(units, serial ? units : 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t r0 = u * R, nr = rows - r0 < R ? rows - r0 : R;
        if (planes) {
          plane_grad_sums(a.x + r0 * row, a.dy + r0 * row, C, sh.s, nr, a.mean, &pg[u * C], &ph[u * C]);
          continue;
        }
        for_each_sweep(C, [&](auto sweep, int64_t c0) {
          using VV = typename decltype(sweep)::vec;
          rows_grad_sums<VV, decltype(sweep)::groups>(a.x + r0 * C, a.dy + r0 * C, C, c0, nr, a.mean, &pg[u * C], &ph[u * C]);
        });
      }
    });
    parallel(C, serial ? C : 16, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double g = 0, h = 0;
        for (int64_t u = 0; u < units; ++u) g += pg[u * C + c], h += ph[u * C + c];
        sdy[c] = g, sdyx[c] = h;
      }
    });
  }

  // Per-channel coefficients of dx = dy * k1 + (x - mean) * k2 + k3.
  struct GradCoeffs {
    T mean, k1, k2, k3;
  };

  // Writes the weight and bias gradients of channel c; returns its dx coefficients.
  static GradCoeffs finish_grad(const BackwardArgs<T>& a, int64_t c, double sdy, double sdyx) {
    const double n = double(a.shape.count_per_channel()), invstd = double(a.invstd[c]), gw = invstd * sdyx;
    if (a.grad_weight) a.grad_weight[c] = T(gw);
    if (a.grad_bias) a.grad_bias[c] = T(sdy);
    // dx = w*invstd*(dy - sdy/n - xhat*gw/n), xhat = (x - mean)*invstd
    const double k1 = weight_at(a.weight, c) * invstd;
    return GradCoeffs{a.mean[c], T(k1), T(-k1 * invstd * gw / n), T(-k1 * sdy / n)};
  }

  // Scalar math: dx = dy * k1 + (x - mean) * k2 + k3
  template <bool NT>
  static void grad_input_run(const T* x, const T* dy, T* dx, int64_t len, const GradCoeffs& k) {
    const V m = V::set1(k.mean), k1 = V::set1(k.k1), k2 = V::set1(k.k2), k3 = V::set1(k.k3);
    int64_t i = 0;
    for (const int64_t p = peel<NT>(dx, len); i < p; ++i) dx[i] = std::fma(dy[i], k.k1, std::fma(x[i] - k.mean, k.k2, k.k3));
    for (; i + W <= len; i += W) {
      const V t = V::fmadd(V::sub(V::load(x + i), m), k2, k3);
      put<NT>(dx + i, V::fmadd(V::load(dy + i), k1, t));
    }
    for (; i < len; ++i) dx[i] = std::fma(dy[i], k.k1, std::fma(x[i] - k.mean, k.k2, k.k3));
  }

  // NHWC row. Scalar math: dx[c] = dy[c] * k1[c] + (x[c] - mean[c]) * k2[c] + k3[c]
  template <bool NT>
  static void grad_input_row(const T* x, const T* dy, T* dx, int64_t C, const T* m, const T* k1, const T* k2, const T* k3) {
    int64_t c = 0;
    for (const int64_t p = peel<NT>(dx, C); c < p; ++c) dx[c] = std::fma(dy[c], k1[c], std::fma(x[c] - m[c], k2[c], k3[c]));
    for (; c + W <= C; c += W) {
      const V t = V::fmadd(V::sub(V::load(x + c), V::load(m + c)), V::load(k2 + c), V::load(k3 + c));
      put<NT>(dx + c, V::fmadd(V::load(dy + c), V::load(k1 + c), t));
    }
    for (; c < C; ++c) dx[c] = std::fma(dy[c], k1[c], std::fma(x[c] - m[c], k2[c], k3[c]));
  }

  // NHWC: `rows` rows from channel c0, G vectors of VV wide, coefficients in registers.
  // Scalar math: dx[r][c] = dy[r][c] * k1[c] + (x[r][c] - mean[c]) * k2[c] + k3[c]
  template <class VV, int G, bool NT>
  static void grad_input_rows(const T* x, const T* dy, T* dx, int64_t C, int64_t c0, int64_t rows, const T* const* k) {
    constexpr int L = VV::W;
    VV m[G], k1[G], k2[G], k3[G];
    for (int g = 0; g < G; ++g) {
      const int64_t c = c0 + g * L;
      m[g] = VV::load(k[0] + c), k1[g] = VV::load(k[1] + c), k2[g] = VV::load(k[2] + c), k3[g] = VV::load(k[3] + c);
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int g = 0; g < G; ++g) {
        const int64_t o = r * C + c0 + g * L;
        const VV t = VV::fmadd(VV::sub(VV::load(x + o), m[g]), k2[g], k3[g]);
        const VV v = VV::fmadd(VV::load(dy + o), k1[g], t);
        if (NT) VV::stream(dx + o, v);
        else VV::store(dx + o, v);
      }
  }

  template <bool NT>
  static void grad_input(const BackwardArgs<T>& a, const GradCoeffs* k) {
    const Shape& sh = a.shape;
    const int64_t C = sh.c, HW = sh.s;
    const bool serial = sh.numel() < kSerialBelow;
    if (!sh.channels_last) {
      parallel(sh.n * C, serial ? sh.n * C : (kUnit + HW - 1) / HW, [&](int64_t b, int64_t e) {
        for (int64_t nc = b, c = b % C; nc < e; ++nc, c = wrap(c + 1, C))  // c = nc % C
          grad_input_run<NT>(a.x + nc * HW, a.dy + nc * HW, a.dx + nc * HW, HW, k[c]);
        if (NT) V::fence();
      });
      return;
    }
    const int64_t p = peel<NT>(a.dx, C), rows = sh.n * sh.s - (p ? 1 : 0);
    Scratch<T> m(C), k1(C), k2(C), k3(C);
    for (int64_t c = 0; c < C; ++c) {
      const GradCoeffs& kc = k[wrap(c + p, C)];
      m[c] = kc.mean, k1[c] = kc.k1, k2[c] = kc.k2, k3[c] = kc.k3;
    }
    for_skew_edges(rows + 1, C, p, [&](int64_t i, int64_t c) {
      a.dx[i] = std::fma(a.dy[i], k[c].k1, std::fma(a.x[i] - k[c].mean, k[c].k2, k[c].k3));
    });
    const T* const ks[4] = {m.p, k1.p, k2.p, k3.p};
    const T *xs = a.x + p, *dys = a.dy + p;
    T* dxs = a.dx + p;
    // Rows of one sweep go tile by tile with the coefficients in registers;
    // wider rows in memory order, which measured faster once x, dy and dx
    // outgrow L2 (bench: (256,512) 38 vs 44 us).
    const bool tiles = C <= 4 * W;
    parallel(rows, serial ? rows : (kUnit + C - 1) / C, [&](int64_t r0, int64_t r1) {
      if (tiles) {
        for_each_tile_sweep(C, r0, r1, [&](auto sweep, int64_t c0, int64_t r, int64_t nr) {
          using VV = typename decltype(sweep)::vec;
          grad_input_rows<VV, decltype(sweep)::groups, NT>(xs + r * C, dys + r * C, dxs + r * C, C, c0, nr, ks);
        });
      } else {
        for (int64_t r = r0; r < r1; ++r) grad_input_row<NT>(xs + r * C, dys + r * C, dxs + r * C, C, m.p, k1.p, k2.p, k3.p);
      }
      if (NT) V::fence();
    });
  }


  // NCHW, batch statistics, channels to share, x and dy not all in the L3
  // (kPrefetchBytes): sums and dx of one channel while x and dy of that
  // channel are still in cache, the sums prefetching the next sample's run;
  // dx with streaming stores (see kPrefetchBytes), last sample first (see
  // affine_channel: (32,64,56,56) 0.87-0.92x at 2 threads, 0.85-0.92x at 1;
  // (24,128,28,28) 0.94x; (32,128,28,28) 1.02x).
  // (Channel by channel against the plain passes: (24,128,28,28), x and dy
  // 19 MB, 0.75-0.82x. A tensor the caches hold goes through the plain
  // passes, whose dx pass walks memory in order:
  // (32,256,14,14), 12.8 MB, measured 1.21x at 1 thread and 1.33x at 2
  // channel by channel.)
  static void backward_by_channel(const BackwardArgs<T>& a) {
    constexpr bool NT = true;
    const Shape& sh = a.shape;
    const Units us = units_of(sh);
    parallel(sh.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double sdy = 0, sdyx = 0;
        for (int64_t u = 0; u < us.per_channel; ++u) {
          double g, h;
          unit_grad_sums(sh, us, a, c, u, g, h, true);
          sdy += g, sdyx += h;
        }
        const GradCoeffs k = finish_grad(a, c, sdy, sdyx);
        if (!a.dx) continue;
        for (int64_t n = sh.n - 1; n >= 0; --n) {
          const int64_t off = (n * sh.c + c) * sh.s;
          grad_input_run<NT>(a.x + off, a.dy + off, a.dx + off, sh.s, k);
        }
      }
      if (NT) V::fence();
    });
  }

  static void backward(const BackwardArgs<T>& a) {
    const Shape& sh = a.shape;
    const int64_t C = sh.c;
    if (a.use_batch_stats && !short_planes(sh) && fuse_by_channel(sh) && bytes_at_least(sh, 2, kPrefetchBytes)) return backward_by_channel(a);
    Scratch<double> sdy(C), sdyx(C);
    grad_sums(a, sdy.p, sdyx.p);
    Scratch<GradCoeffs> k(C);
    Scratch<Coeffs<T>> frozen(C);
    for (int64_t c = 0; c < C; ++c) {
      k[c] = finish_grad(a, c, sdy[c], sdyx[c]);
      frozen[c] = Coeffs<T>{T(0), k[c].k1, T(0)};
    }
    if (!a.dx) return;
    // Frozen statistics: dx = dy * weight * invstd, an elementwise pass on dy.
    if (!a.use_batch_stats) return apply_affine(sh, a.dy, a.dx, frozen.p);
    if (sh.channels_last ? rows_stream(sh, 3) : streaming(sh, 3)) return grad_input<true>(a, k.p);
    grad_input<false>(a, k.p);
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
