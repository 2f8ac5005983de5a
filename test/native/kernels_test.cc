// Standalone test of the BatchNorm kernels (no Node-API): every ISA table this
// build has and this CPU can run, float and double, against a float64
// reference written straight from the formulas in native/kernels/args.h.
//
//   - forward_training (y, save_mean, save_invstd, running statistics),
//     forward_eval and backward (dx, grad_weight, grad_bias; batch or frozen
//     statistics; weight, bias, running statistics, dx and grads nullptr);
//   - bitwise the same results for 1, 2, 3 and 4 threads, and in place
//     (y === x, dx === dy, dx === x);
//   - shapes sized from the kernels' own constants (serial threshold, unit,
//     block, streaming size), so they keep reaching every code path when the
//     constants are tuned; arrays at misaligned offsets;
//   - a float channel of 2^22 values with mean 100 and std 0.01 (NCHW and
//     (N, C)), and NCHW channels whose samples' means move away from the
//     first one's: mean, var, invstd and y within 1e-6 of the float64 reference;
//   - channels with +inf, -inf, both or NaN values, on every statistics path:
//     PyTorch's mean (+inf, -inf or NaN) and a NaN variance, invstd and y.
//
// Usage: kernels_test [--small | --quick] [--threads 1,2,3,4]
//   (default)  everything, every runnable ISA
//   --quick    for the sanitizer builds: threads 1 and 4, the 2^22 case at
//              2^18 values, the prefetch- and streaming-size cases on the best ISA in float only
//   --small    for qemu (emulated floating point is slow): no input above 1e6
//              elements (the 2^22 case at 2^18, no prefetch- or streaming-size case), below
//              kSerialBelow one thread count, at and above it the best ISA only,
//              two shapes, and only the thread-dependent calls repeated
//   --threads  the thread counts compared bitwise (default 1,2,3,4; --quick
//              1,4); the first one's results are also checked against the reference
// Prints one line per check group and "N passed, M failed"; exits 1 on failure.
// Build: see test/native/README.md (test/native/run.sh, .ci/arm64.sh).
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "dispatch.h"
#include "kernels/args.h"
#include "kernels/tables.h"
#include "threads.h"
// The constants that decide the code paths (kSerialBelow, kUnit, ...).
#include "kernels/tuning.h"

namespace {

using batchnorm::BackwardArgs;
using batchnorm::ForwardEvalArgs;
using batchnorm::ForwardTrainingArgs;
using batchnorm::KernelTable;
using batchnorm::Shape;

int g_passed = 0, g_failed = 0;

// ------------------------------------------------------------------ helpers

// splitmix64: the same data on every architecture.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double sym() { return 2 * uniform() - 1; }                     // [-1, 1)
  // Mean 0, std 1, bell-shaped (Irwin-Hall, 4 terms): no log/cos, which
  // matters under qemu.
  double normal() { return (uniform() + uniform() + uniform() + uniform() - 2) * 1.7320508075688772; }
};

int64_t index_of(const Shape& sh, int64_t n, int64_t c, int64_t s) {
  return sh.channels_last ? (n * sh.s + s) * sh.c + c : (n * sh.c + c) * sh.s + s;
}

template <class T>
const char* type_name() {
  return sizeof(T) == 4 ? "f32" : "f64";
}

std::string shape_name(const Shape& sh) {
  char b[96];
  snprintf(b, sizeof b, "(%" PRId64 ",%" PRId64 ",%" PRId64 ") %s", sh.n, sh.c, sh.s,
           sh.channels_last ? "NHWC" : "NCHW");
  return b;
}

// One check group: many comparisons, one printed line.
struct Group {
  std::string name;
  bool ok = true;
  double worst = 0;  // max over comparisons of error / tolerance
  std::string why;

  int failures = 0;
  void fail(const std::string& what) {
    if (++failures <= 3) why += (why.empty() ? "" : "; ") + what;
    ok = false;
  }
  void require(bool cond, const char* what) {
    if (!cond) fail(what);
  }
  // max |got - ref| <= rtol * max(max |ref|, floor), and no NaN.
  template <class T>
  void close(const char* what, const T* got, const std::vector<double>& ref, double rtol, double floor = 0) {
    double scale = floor, err = 0;
    int64_t at = -1;
    for (double r : ref) scale = std::fmax(scale, std::fabs(r));
    if (scale == 0) scale = 1;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double e = std::fabs(double(got[i]) - ref[i]);
      if (!(e <= err)) err = e, at = int64_t(i);  // NaN wins
    }
    const double tol = rtol * scale, ratio = err / tol;
    worst = std::fmax(worst, ratio);
    if (!(err <= tol)) {
      char b[256];
      snprintf(b, sizeof b, "%s: |err| %.3g at [%" PRId64 "] (got %.9g, want %.9g) > tol %.3g", what, err, at,
               at >= 0 ? double(got[at]) : 0.0, at >= 0 ? ref[size_t(at)] : 0.0, tol);
      fail(b);
    }
  }
  void done() {
    if (ok)
      ++g_passed, printf("ok    %-58s max err/tol %.3f\n", name.c_str(), worst);
    else
      ++g_failed, printf("FAIL  %-58s %s\n", name.c_str(), why.c_str());
    fflush(stdout);
  }
};

// ---------------------------------------------------------------- reference

struct RefStats {
  std::vector<double> mean, var;
};

// Per channel, float64, two passes (with the first pass's rounding corrected).
template <class T>
RefStats ref_moments(const Shape& sh, const T* x) {
  RefStats r{std::vector<double>(size_t(sh.c)), std::vector<double>(size_t(sh.c))};
  const double cnt = double(sh.count_per_channel());
  for (int64_t c = 0; c < sh.c; ++c) {
    double s = 0;
    for (int64_t n = 0; n < sh.n; ++n)
      for (int64_t j = 0; j < sh.s; ++j) s += double(x[index_of(sh, n, c, j)]);
    double m = s / cnt, d1 = 0, d2 = 0;
    for (int64_t n = 0; n < sh.n; ++n)
      for (int64_t j = 0; j < sh.s; ++j) {
        const double d = double(x[index_of(sh, n, c, j)]) - m;
        d1 += d, d2 += d * d;
      }
    r.mean[size_t(c)] = m + d1 / cnt;
    r.var[size_t(c)] = std::fmax(0.0, (d2 - d1 * d1 / cnt) / cnt);
  }
  return r;
}

template <class T>
double at_or(const T* p, int64_t c, double dflt) {
  return p ? double(p[c]) : dflt;
}

// y = (x - mean) * a + b per channel, a = weight * invstd.
template <class T>
std::vector<double> ref_affine(const Shape& sh, const T* x, const std::vector<double>& mean,
                               const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> y(size_t(sh.numel()));
  for (int64_t n = 0; n < sh.n; ++n)
    for (int64_t c = 0; c < sh.c; ++c)
      for (int64_t j = 0; j < sh.s; ++j) {
        const int64_t i = index_of(sh, n, c, j);
        y[size_t(i)] = (double(x[i]) - mean[size_t(c)]) * a[size_t(c)] + b[size_t(c)];
      }
  return y;
}

struct RefTraining {
  std::vector<double> y, mean, invstd, rmean, rvar;
};

template <class T>
RefTraining ref_forward_training(const ForwardTrainingArgs<T>& a, const T* rm0, const T* rv0) {
  const Shape& sh = a.shape;
  const RefStats st = ref_moments(sh, a.x);
  const double cnt = double(sh.count_per_channel());
  RefTraining r;
  std::vector<double> scale(size_t(sh.c)), shift(size_t(sh.c));
  for (int64_t c = 0; c < sh.c; ++c) {
    const size_t k = size_t(c);
    const double invstd = 1 / std::sqrt(st.var[k] + a.eps);
    r.mean.push_back(st.mean[k]);
    r.invstd.push_back(invstd);
    if (rm0) {
      const double v = a.unbiased && cnt > 1 ? st.var[k] * cnt / (cnt - 1) : st.var[k];
      r.rmean.push_back((1 - a.momentum) * double(rm0[c]) + a.momentum * st.mean[k]);
      r.rvar.push_back((1 - a.momentum) * double(rv0[c]) + a.momentum * v);
    }
    scale[k] = invstd * at_or(a.weight, c, 1.0);
    shift[k] = at_or(a.bias, c, 0.0);
  }
  r.y = ref_affine(sh, a.x, st.mean, scale, shift);
  return r;
}

template <class T>
std::vector<double> ref_forward_eval(const ForwardEvalArgs<T>& a) {
  std::vector<double> mean(size_t(a.shape.c)), scale(mean), shift(mean);
  for (int64_t c = 0; c < a.shape.c; ++c) {
    mean[size_t(c)] = double(a.mean[c]);
    scale[size_t(c)] = at_or(a.weight, c, 1.0) / std::sqrt(double(a.var[c]) + a.eps);
    shift[size_t(c)] = at_or(a.bias, c, 0.0);
  }
  return ref_affine(a.shape, a.x, mean, scale, shift);
}

struct RefBackward {
  std::vector<double> dx, gw, gb;
  double dx_scale = 0;  // max |w * invstd * dy|
};

template <class T>
RefBackward ref_backward(const BackwardArgs<T>& a) {
  const Shape& sh = a.shape;
  const double cnt = double(sh.count_per_channel());
  RefBackward r{std::vector<double>(size_t(sh.numel())), std::vector<double>(size_t(sh.c)),
                std::vector<double>(size_t(sh.c))};
  for (int64_t c = 0; c < sh.c; ++c) {
    const double m = double(a.mean[c]), is = double(a.invstd[c]), w = at_or(a.weight, c, 1.0);
    double gb = 0, gw = 0;
    for (int64_t n = 0; n < sh.n; ++n)
      for (int64_t j = 0; j < sh.s; ++j) {
        const int64_t i = index_of(sh, n, c, j);
        gb += double(a.dy[i]);
        gw += double(a.dy[i]) * (double(a.x[i]) - m) * is;
      }
    r.gb[size_t(c)] = gb, r.gw[size_t(c)] = gw;
    for (int64_t n = 0; n < sh.n; ++n)
      for (int64_t j = 0; j < sh.s; ++j) {
        const int64_t i = index_of(sh, n, c, j);
        const double dy = double(a.dy[i]), xhat = (double(a.x[i]) - m) * is;
        r.dx_scale = std::fmax(r.dx_scale, std::fabs(w * is * dy));
        r.dx[size_t(i)] = a.use_batch_stats ? w * is * (dy - gb / cnt - xhat * gw / cnt) : dy * w * is;
      }
  }
  return r;
}

// ------------------------------------------------------------- the op suite

namespace K = batchnorm::tuning;

struct Case {
  int64_t n, c, s;
  double offset, spread;  // channel means ~ offset * U(-1, 1), stds ~ spread * U(0.5, 2)
};

// An array of n values `skew` elements past a 64-byte boundary (the addon
// gets views at any offset; the streaming stores care about alignment), that
// ends where its allocation ends (so ASan sees any access past it).
template <class T>
struct Arr {
  T* base = nullptr;
  size_t n = 0, skew = 0;
  Arr() = default;
  Arr(size_t len, size_t sk, T fill) : n(len), skew(sk) {
    void* q = nullptr;
    if (posix_memalign(&q, 64, (len + sk) * sizeof(T)) != 0) abort();
    base = static_cast<T*>(q);
    for (size_t i = 0; i < len + sk; ++i) base[i] = fill;
  }
  Arr(const Arr& o) : Arr(o.n, o.skew, T(0)) { std::memcpy(p(), o.p(), n * sizeof(T)); }
  Arr(Arr&& o) noexcept : base(o.base), n(o.n), skew(o.skew) { o.base = nullptr; }
  Arr& operator=(Arr o) noexcept {
    std::swap(base, o.base), std::swap(n, o.n), std::swap(skew, o.skew);
    return *this;
  }
  ~Arr() { free(base); }
  // The same values at another skew.
  Arr at_skew(size_t sk) const {
    Arr a(n, sk, T(0));
    std::memcpy(a.p(), p(), n * sizeof(T));
    return a;
  }
  T* p() { return base + skew; }
  const T* p() const { return base + skew; }
  size_t size() const { return n; }
};

template <class T>
bool same_bits(const T* a, const T* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(T)) == 0;
}
template <class T>
bool same_bits(const Arr<T>& a, const Arr<T>& b) {
  return a.size() == b.size() && same_bits(a.p(), b.p(), a.size());
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && same_bits(a.data(), b.data(), a.size());
}

// Reference results of the suite's calls, computed once per input and shared by the ISAs.
struct RefCache {
  std::unique_ptr<RefTraining> train[3];
  std::unique_ptr<std::vector<double>> eval[2];
  std::unique_ptr<RefBackward> back[4];
};
template <class P, class F>
const P& cached(std::unique_ptr<P>& slot, F&& compute) {
  if (!slot) slot.reset(new P(compute()));
  return *slot;
}

// Inputs of one (shape, type): shared by every ISA and thread count.
template <class T>
struct Inputs {
  Shape sh;
  size_t skew;
  Arr<T> x, dy;
  std::vector<T> w, b, rm0, rv0, emean, evar, bmean, binvstd;
  mutable RefCache ref;
};

template <class T>
Inputs<T> make_inputs(const Shape& sh, const Case& k, uint64_t seed, size_t skew) {
  Rng r(seed);
  Inputs<T> in;
  in.sh = sh, in.skew = skew;
  const size_t N = size_t(sh.numel()), C = size_t(sh.c);
  std::vector<double> mu(C), sd(C), dmu(C);
  for (size_t c = 0; c < C; ++c)
    mu[c] = k.offset * r.sym(), sd[c] = k.spread * (0.5 + 1.5 * r.uniform()), dmu[c] = 0.3 * r.sym();
  in.x = Arr<T>(N, skew, T(0)), in.dy = Arr<T>(N, skew, T(0));
  for (int64_t n = 0; n < sh.n; ++n)
    for (int64_t c = 0; c < sh.c; ++c)
      for (int64_t j = 0; j < sh.s; ++j) {
        const int64_t i = index_of(sh, n, c, j);
        in.x.p()[i] = T(mu[size_t(c)] + sd[size_t(c)] * r.normal());
        in.dy.p()[i] = T(dmu[size_t(c)] + r.normal());
      }
  for (size_t c = 0; c < C; ++c) {
    in.w.push_back(T((r.uniform() < 0.2 ? -1 : 1) * (0.5 + r.uniform())));
    in.b.push_back(T(r.sym()));
    in.rm0.push_back(T(r.sym()));
    in.rv0.push_back(T(0.5 + r.uniform()));
    in.emean.push_back(T(mu[c] + 0.1 * sd[c] * r.sym()));
    in.evar.push_back(T(sd[c] * sd[c] * (0.8 + 0.4 * r.uniform())));
  }
  // Backward takes the statistics of the forward: the float64 ones, rounded to T.
  const RefStats st = ref_moments(sh, in.x.p());
  for (size_t c = 0; c < C; ++c)
    in.bmean.push_back(T(st.mean[c])), in.binvstd.push_back(T(1 / std::sqrt(st.var[c] + 1e-5)));
  return in;
}

template <class T>
struct Fns {
  void (*train)(const ForwardTrainingArgs<T>&);
  void (*eval)(const ForwardEvalArgs<T>&);
  void (*back)(const BackwardArgs<T>&);
};
Fns<float> fns_of(const KernelTable* t, float) {
  return {t->forward_training_f32, t->forward_eval_f32, t->backward_f32};
}
Fns<double> fns_of(const KernelTable* t, double) {
  return {t->forward_training_f64, t->forward_eval_f64, t->backward_f64};
}

constexpr double kSentinel = -1234.5;  // outputs start as this: a value never written shows up

template <class T>
std::vector<T> fresh(size_t n) {
  return std::vector<T>(n, T(kSentinel));
}

// 64-bit fingerprint of an array's bytes, for the bitwise comparisons.
template <class T>
uint64_t fingerprint(const T* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
  const unsigned char* b = reinterpret_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n * sizeof(T); i += 8) {
    uint64_t w = 0;
    std::memcpy(&w, b + i, n * sizeof(T) - i < 8 ? n * sizeof(T) - i : 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  return h;
}

// Runs the suite once; with g != nullptr also checks every result against the
// reference. Returns a fingerprint of every output, for the bitwise comparisons.
// lite (repeats under --small): only the calls whose work is split in a
// thread-dependent way — training forward and batch-statistics backward.
template <class T>
std::vector<uint64_t> run_suite(const Fns<T>& f, const Inputs<T>& in, Group* g, bool lite = false) {
  const Shape& sh = in.sh;
  const size_t N = size_t(sh.numel()), C = size_t(sh.c), sk = in.skew;
  const double rtol = sizeof(T) == 4 ? 1e-5 : 1e-12;
  std::vector<uint64_t> out;
  auto keep = [&](const T* p, size_t n) { out.push_back(fingerprint(p, n)); };
  auto keepv = [&](const std::vector<T>& v) { keep(v.data(), v.size()); };
  const Arr<T> unset(N, sk, T(kSentinel));

  // 1. training: weight, bias, running statistics, unbiased, momentum 0.1
  {
    Arr<T> y(N, sk, T(kSentinel));
    auto sm = fresh<T>(C), si = fresh<T>(C);
    std::vector<T> rm = in.rm0, rv = in.rv0;
    ForwardTrainingArgs<T> a{sh,        in.x.p(),  y.p(),     in.w.data(), in.b.data(), rm.data(),
                             rv.data(), sm.data(), si.data(), 1e-5,        0.1,         true};
    f.train(a);
    keep(y.p(), N), keepv(sm), keepv(si), keepv(rm), keepv(rv);
    if (g) {
      const RefTraining& r =
          cached(in.ref.train[0], [&] { return ref_forward_training(a, in.rm0.data(), in.rv0.data()); });
      g->close("train y", y.p(), r.y, rtol);
      g->close("train save_mean", sm.data(), r.mean, rtol);
      g->close("train save_invstd", si.data(), r.invstd, rtol);
      g->close("train running_mean", rm.data(), r.rmean, rtol);
      g->close("train running_var", rv.data(), r.rvar, rtol);
      // the same in place (y === x): bitwise the same
      Arr<T> xy = in.x;
      std::vector<T> sm2 = fresh<T>(C), si2 = fresh<T>(C), rm2 = in.rm0, rv2 = in.rv0;
      ForwardTrainingArgs<T> b = a;
      b.x = xy.p(), b.y = xy.p(), b.save_mean = sm2.data(), b.save_invstd = si2.data(),
      b.running_mean = rm2.data(), b.running_var = rv2.data();
      f.train(b);
      g->require(same_bits(xy, y) && same_bits(sm2, sm) && same_bits(si2, si) && same_bits(rm2, rm) &&
                     same_bits(rv2, rv),
                 "train in place (y === x) differs from out of place");
      // y at another alignment: bitwise the same
      Arr<T> y3(N, sk + 5, T(kSentinel));
      std::vector<T> rm3 = in.rm0, rv3 = in.rv0;
      ForwardTrainingArgs<T> c = a;
      c.y = y3.p(), c.save_mean = sm2.data(), c.save_invstd = si2.data(), c.running_mean = rm3.data(),
      c.running_var = rv3.data();
      f.train(c);
      g->require(same_bits(y3, y), "train: y at another alignment differs (alignment-dependent rounding)");
    }
  }
  // 2. training: no weight, no bias, running statistics biased, momentum 1, eps 1e-3
  if (!lite) {
    Arr<T> y(N, sk, T(kSentinel));
    auto sm = fresh<T>(C), si = fresh<T>(C);
    std::vector<T> rm = in.rm0, rv = in.rv0;
    ForwardTrainingArgs<T> a{sh,        in.x.p(),  y.p(),     nullptr, nullptr, rm.data(),
                             rv.data(), sm.data(), si.data(), 1e-3,    1.0,     false};
    f.train(a);
    keep(y.p(), N), keepv(sm), keepv(si), keepv(rm), keepv(rv);
    if (g) {
      const RefTraining& r =
          cached(in.ref.train[1], [&] { return ref_forward_training(a, in.rm0.data(), in.rv0.data()); });
      g->close("train2 y", y.p(), r.y, rtol);
      g->close("train2 save_mean", sm.data(), r.mean, rtol);
      g->close("train2 save_invstd", si.data(), r.invstd, rtol);
      g->close("train2 running_mean", rm.data(), r.rmean, rtol);
      g->close("train2 running_var", rv.data(), r.rvar, rtol);
    }
  }
  // 3. training: weight only, no running statistics
  if (!lite) {
    Arr<T> y(N, sk, T(kSentinel));
    auto sm = fresh<T>(C), si = fresh<T>(C);
    ForwardTrainingArgs<T> a{sh,      in.x.p(),  y.p(),     in.w.data(), nullptr, nullptr,
                             nullptr, sm.data(), si.data(), 1e-5,        0.1,     true};
    f.train(a);
    keep(y.p(), N), keepv(sm), keepv(si);
    if (g) {
      const RefTraining& r =
          cached(in.ref.train[2], [&] { return ref_forward_training<T>(a, nullptr, nullptr); });
      g->close("train3 y", y.p(), r.y, rtol);
      g->close("train3 save_mean", sm.data(), r.mean, rtol);
      g->close("train3 save_invstd", si.data(), r.invstd, rtol);
    }
  }
  // 4. eval: with and without weight and bias
  for (int v = 0; v < (lite ? 0 : 2); ++v) {
    Arr<T> y(N, sk, T(kSentinel));
    ForwardEvalArgs<T> a{sh,
                         in.x.p(),
                         y.p(),
                         v ? nullptr : in.w.data(),
                         v ? nullptr : in.b.data(),
                         in.emean.data(),
                         in.evar.data(),
                         1e-5};
    f.eval(a);
    keep(y.p(), N);
    if (g) {
      g->close(v ? "eval (no affine) y" : "eval y", y.p(),
               cached(in.ref.eval[v], [&] { return ref_forward_eval(a); }), rtol);
      if (v == 0) {  // in place
        Arr<T> xy = in.x;
        ForwardEvalArgs<T> b = a;
        b.x = xy.p(), b.y = xy.p();
        f.eval(b);
        g->require(same_bits(xy, y), "eval in place (y === x) differs from out of place");
        Arr<T> y3(N, sk + 5, T(kSentinel));
        b.x = a.x, b.y = y3.p();
        f.eval(b);
        g->require(same_bits(y3, y), "eval: y at another alignment differs (alignment-dependent rounding)");
      }
    }
  }
  // 5. backward: batch statistics / frozen; weight or nullptr; dx or nullptr;
  //    grad_weight / grad_bias or nullptr.
  struct BwVariant {
    const char* name;
    bool batch, weight, dx, gw, gb;
  };
  static const BwVariant variants[] = {
      {"backward", true, true, true, true, true},
      {"backward frozen", false, true, true, false, true},
      {"backward no-dx no-weight", true, false, false, true, true},
      {"backward frozen no-weight", false, false, true, true, false},
  };
  for (int vi = 0; vi < 4; ++vi) {
    const BwVariant& v = variants[vi];
    if (lite && !v.batch) continue;
    Arr<T> dx(N, sk, T(kSentinel));
    auto gw = fresh<T>(C), gb = fresh<T>(C);
    BackwardArgs<T> a{sh,
                      in.x.p(),
                      in.dy.p(),
                      v.dx ? dx.p() : nullptr,
                      v.weight ? in.w.data() : nullptr,
                      in.bmean.data(),
                      in.binvstd.data(),
                      v.gw ? gw.data() : nullptr,
                      v.gb ? gb.data() : nullptr,
                      v.batch};
    f.back(a);
    keep(dx.p(), N), keepv(gw), keepv(gb);
    if (!g) continue;
    const RefBackward& r = cached(in.ref.back[vi], [&] { return ref_backward(a); });
    const std::string n(v.name);
    // dx = w*invstd*dy - (terms that cancel it when the count is small): its
    // rounding is relative to |w*invstd*dy|, whatever dx's own size.
    if (v.dx)
      g->close((n + " dx").c_str(), dx.p(), r.dx, rtol, r.dx_scale);
    else
      g->require(same_bits(dx, unset), "backward wrote dx although it is nullptr");
    if (v.gw)
      g->close((n + " grad_weight").c_str(), gw.data(), r.gw, rtol);
    else
      g->require(gw == fresh<T>(C), "backward wrote grad_weight although it is nullptr");
    if (v.gb)
      g->close((n + " grad_bias").c_str(), gb.data(), r.gb, rtol);
    else
      g->require(gb == fresh<T>(C), "backward wrote grad_bias although it is nullptr");
    if (v.dx) {  // dx at another alignment: bitwise the same
      Arr<T> dx3(N, sk + 5, T(kSentinel));
      BackwardArgs<T> b = a;
      b.dx = dx3.p(), b.grad_weight = nullptr, b.grad_bias = nullptr;
      f.back(b);
      g->require(same_bits(dx3, dx),
                 "backward: dx at another alignment differs (alignment-dependent rounding)");
    }
    if (v.dx) {  // in place: dx === dy, and (batch statistics) dx === x; bitwise the same
      for (int which = 0; which < (v.batch ? 2 : 1); ++which) {
        Arr<T> io = which ? in.x : in.dy;
        auto gw2 = fresh<T>(C), gb2 = fresh<T>(C);
        BackwardArgs<T> b = a;
        (which ? b.x : b.dy) = io.p();
        b.dx = io.p(), b.grad_weight = v.gw ? gw2.data() : nullptr, b.grad_bias = v.gb ? gb2.data() : nullptr;
        f.back(b);
        g->require(same_bits(io, dx) && same_bits(gw2, gw) && same_bits(gb2, gb),
                   which ? "backward in place (dx === x) differs from out of place"
                         : "backward in place (dx === dy) differs from out of place");
      }
    }
  }
  return out;
}

struct Isa {
  std::string name;
  const KernelTable* table;
};

template <class T>
void run_case(const std::vector<Isa>& isas, const Case& k, bool channels_last, uint64_t seed,
              const std::vector<int>& threads, bool lite = false) {
  Shape sh;
  sh.n = k.n, sh.c = k.c, sh.s = k.s, sh.channels_last = channels_last;
  const size_t skew = size_t(seed % 4);  // 0..3 elements off the allocation's alignment
  const Inputs<T> in = make_inputs<T>(sh, k, seed, skew);
  for (const Isa& isa : isas) {
    Group g;
    char tag[40];
    snprintf(tag, sizeof tag, " skew %zu, threads", skew);
    g.name = isa.name + " " + type_name<T>() + " " + shape_name(sh) + tag;
    for (int t : threads) g.name += " " + std::to_string(t);
    const Fns<T> f = fns_of(isa.table, T());
    batchnorm::set_num_threads(threads[0]);
    std::vector<uint64_t> first = run_suite(f, in, &g);
    if (lite) first = run_suite(f, in, nullptr, true);
    for (size_t i = 1; i < threads.size(); ++i) {
      batchnorm::set_num_threads(threads[i]);
      if (run_suite<T>(f, in, nullptr, lite) != first) {
        char b[80];
        snprintf(b, sizeof b, "threads=%d not bitwise equal to threads=%d", threads[i], threads[0]);
        g.fail(b);
      }
    }
    g.done();
  }
}

// Channels of `x` (shape `sh`, weight 1.5 and bias -0.25 each): mean, var,
// invstd and y within 1e-6 (relative) of the float64 reference, and threads 4
// bitwise equal to 1.
template <class T>
void check_channel(const std::vector<Isa>& isas, const Shape& sh, const std::vector<T>& x,
                   const std::string& what) {
  const size_t C = size_t(sh.c);
  ForwardTrainingArgs<T> a{sh,      x.data(), nullptr, nullptr, nullptr, nullptr,
                           nullptr, nullptr,  nullptr, 1e-10,   1.0,     false};
  const std::vector<T> w(C, T(1.5)), b(C, T(-0.25)), zero(C, T(0));
  a.weight = w.data(), a.bias = b.data();
  const RefTraining ref = ref_forward_training(a, zero.data(), zero.data());
  for (const Isa& isa : isas) {
    Group g;
    g.name = isa.name + " " + type_name<T>() + " " + what + ", threads 1 4";
    const Fns<T> f = fns_of(isa.table, T());
    std::vector<uint64_t> out[2];
    for (int t : {1, 4}) {  // 4: the units in parallel
      batchnorm::set_num_threads(t);
      Arr<T> y(size_t(sh.numel()), 0, T(kSentinel));  // the same alignment for both
      std::vector<T> sm(C, T(kSentinel)), si(C, T(kSentinel)), rm(C, T(0)), rv(C, T(0));
      ForwardTrainingArgs<T> c = a;
      c.y = y.p(), c.save_mean = sm.data(), c.save_invstd = si.data(), c.running_mean = rm.data(),
      c.running_var = rv.data();
      f.train(c);
      if (t == 1) {
        // momentum 1, biased: running_mean = mean and running_var = var, as T.
        g.close("mean", rm.data(), ref.rmean, 1e-6);
        g.close("save_mean", sm.data(), ref.mean, 1e-6);
        g.close("var", rv.data(), ref.rvar, 1e-6);
        g.close("save_invstd", si.data(), ref.invstd, 1e-6);
        g.close("y", y.p(), ref.y, 1e-6);
      }
      std::vector<T> stats(sm);
      stats.insert(stats.end(), si.begin(), si.end());
      stats.insert(stats.end(), rm.begin(), rm.end());
      stats.insert(stats.end(), rv.begin(), rv.end());
      out[t == 1 ? 0 : 1] = {fingerprint(y.p(), y.size()), fingerprint(stats.data(), stats.size())};
    }
    g.require(out[0] == out[1], "threads=4 not bitwise equal to threads=1");
    g.done();
  }
}

// A channel with a large mean and a small spread (float32 cancellation).
template <class T>
void run_large_mean(const std::vector<Isa>& isas, int64_t count, bool channels_last,
                    bool short_planes = false) {
  Shape sh;
  sh.channels_last = channels_last;
  if (channels_last)
    sh.n = count, sh.c = 1, sh.s = 1;  // (N, C) = (count, 1)
  else if (short_planes)
    sh.n = count / 4, sh.c = 1, sh.s = 4;  // planes of 4: ShortPlanes::statistics on most ISAs
  else
    sh.n = 1, sh.c = 1, sh.s = count;
  Rng r(4242);
  std::vector<T> x(static_cast<size_t>(count));
  for (auto& v : x) v = T(100 + 0.01 * r.normal());
  char nm[64];
  snprintf(nm, sizeof nm, "mean 100 std 0.01, %" PRId64 " values %s", count,
           channels_last  ? "(N,C)"
           : short_planes ? "NCHW, planes of 4"
                          : "NCHW");
  check_channel(isas, sh, x, nm);
}

// NCHW, one block per sample, 2 units. The kernels take a unit's later
// blocks in one pass around its first block's mean, and sum a block again
// around its own mean when its mean lies further than its own std from that
// shift. Each case puts blocks on both sides of that bound:
//   drift    sample n: mean 100 + 0.5 * n / N, std 0.01 (up to 50 std away);
//   edge     every other sample 0.95 std away (some blocks just inside the
//            bound, some just outside);
//   outlier  sample 0: 1 +- 0.5; every other sample the constant -3 * 2^-22,
//            so that d = -(1 + 3 * 2^-22) and the float32 partial sums of d
//            and d^2 round the same way again and again: summed in one pass
//            around sample 0's mean, mean and variance came out 4e-6 to 2e-5
//            (relative) off, 4 to 20 times the tolerance.
// Channels-last (N, C) with C = 35 (vector lanes and scalar ones), 8 row
// blocks and a few rows: the same three along the rows, row blocks in place
// of samples (the first row block gives the shifts). Without the fallback,
// the outlier case fails there too, on every ISA.
template <class T>
void run_shift_cases(const std::vector<Isa>& isas) {
  Shape nchw, nc, planes;
  nchw.channels_last = false, nchw.n = 2 * K::kUnit / K::kBlock, nchw.c = 1, nchw.s = K::kBlock;
  nc.channels_last = true, nc.n = 8 * K::kRowBlockMax + 17, nc.c = 35, nc.s = 1;
  // Planes of 3 values (ShortPlanes::statistics where W >= 3), several blocks of
  // samples; planes of 20 (80 bytes: channel by channel, short runs grouped
  // into blocks whose lanes sum up to 64 values with AVX2).
  planes.channels_last = false, planes.n = 4 * K::kBlock + 9, planes.c = 7, planes.s = 3;
  Shape planes20 = planes;
  planes20.n = K::kBlock + 9, planes20.s = 20;
  for (const Shape& sh : {nchw, nc, planes, planes20})
    for (const char* kind : {"drift", "edge", "outlier"}) {
      // The blocks of ShortPlanes::statistics depend on the vector width: no edge there.
      if (!sh.channels_last && sh.s == planes.s && kind[0] == 'e') continue;
      Rng r(77);
      // n: the sample (NCHW) or the row (N, C); `block` of them share a block of the sums.
      const int64_t block = sh.channels_last ? K::rows_per_block(sh.c) : 1;
      std::vector<T> x(static_cast<size_t>(sh.numel()));
      for (int64_t n = 0; n < sh.n; ++n)
        for (int64_t i = 0; i < sh.c * sh.s; ++i) {
          T& v = x[size_t(n * sh.c * sh.s + i)];
          if (kind[0] == 'd')
            v = T(100 + 0.5 * double(n) / double(sh.n) + 0.01 * r.normal());
          else if (kind[0] == 'e')
            v = T(100 + ((n / block) % 2 ? 0.0095 : 0.0) + 0.01 * r.normal());
          else
            v = n == 0 ? T(i % 2 ? 1.5 : 0.5) : T(-3.0 / (1 << 22));
        }
      char nm[64];
      snprintf(nm, sizeof nm, "shift, %s across %s %s", kind, sh.channels_last ? "rows" : "samples",
               shape_name(sh).c_str());
      check_channel(isas, sh, x, nm);
    }
}

// Channels with infinite or NaN values, as PyTorch (1.13, CPU) computes
// their statistics: mean = sum(x) / n in double, var = sum((x - mean)^2) / n.
// So +inf values (besides finite ones) give mean +inf, -inf values -inf, both
// or any NaN a NaN mean; the variance, invstd and y are NaN, running_mean
// takes the mean's value, running_var NaN. Channels 1, 3, 5, ... of each
// shape hold the kind's values: channel 1 one value, its first (the start of
// the first block, or the first rows that give the shifts), channel 3 two,
// its last and its middle one, the others four at random places; the even
// channels stay finite and within 1e-6 of the float64 reference (a
// non-finite neighbour costs them nothing). Threads 1 to 4 bitwise the same.
template <class T>
void run_nonfinite_cases(const std::vector<Isa>& isas, bool small) {
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  const double dnan = std::numeric_limits<double>::quiet_NaN();
  struct Layout {
    int64_t n, c, s;
    bool channels_last;
    const char* path;
  };
  const int64_t P = K::kSerialBelow;
  const Layout layouts[] = {
      {3, 5, 35, false, "serial"},
      {7, 5, 1, false, "serial (N,C)"},
      {3, 6, 35, true, "serial"},
      {4, 3, P / 12 + 5, false, "units"},                  // C < threads: a channel's units in parallel
      {2, 8, K::kFuseFrom / 16 + 3, false, "by channel"},  // from kFuseFrom with C >= threads
      {P / 33 + 1, 33, 1, true, "rows"},                   // (N, C): the row blocks in parallel
      {9, 19, P / 171 + 7, true, "rows"},
      {11, 6, 4, false, "serial short planes"},   // ShortPlanes::statistics where W >= 4
      {P / 20 + 3, 5, 4, false, "short planes"},  // its blocks of samples in parallel
  };
  const struct {
    const char* name;
    T a, b;  // placed in turn: a, b, a, b
  } kinds[] = {{"+inf", inf, inf}, {"-inf", -inf, -inf}, {"+inf and -inf", inf, -inf}, {"NaN", nan, nan}};
  for (const Layout& l : layouts) {
    Shape sh;
    sh.n = l.n, sh.c = l.c, sh.s = l.s, sh.channels_last = l.channels_last;
    if (small && sh.numel() >= P) continue;  // qemu: the serial paths only
    const int64_t m = sh.count_per_channel();
    const size_t C = size_t(sh.c);
    for (const auto& kind : kinds) {
      Rng r(99);
      std::vector<T> x(size_t(sh.numel()));
      std::vector<double> mean(C);  // PyTorch's mean of the odd channels
      for (int64_t c = 0; c < sh.c; ++c) {
        const double mu = 3 * r.sym(), sd = 0.5 + r.uniform();
        for (int64_t n = 0; n < sh.n; ++n)
          for (int64_t j = 0; j < sh.s; ++j) x[size_t(index_of(sh, n, c, j))] = T(mu + sd * r.normal());
        if (c % 2 == 0) continue;
        const int64_t places = c == 1 ? 1 : c == 3 ? 2 : 4;
        for (int64_t k = 0; k < places; ++k) {
          const int64_t at = c == 1 ? 0 : c == 3 ? (k ? m / 2 : m - 1) : int64_t(r.uniform() * double(m));
          x[size_t(index_of(sh, at / sh.s, c, at % sh.s))] = k % 2 ? kind.b : kind.a;
        }
        bool pos = false, neg = false, any_nan = false;
        for (int64_t i = 0; i < m; ++i) {
          const T v = x[size_t(index_of(sh, i / sh.s, c, i % sh.s))];
          pos = pos || v == inf, neg = neg || v == -inf, any_nan = any_nan || v != v;
        }
        mean[size_t(c)] = any_nan || (pos && neg) ? dnan : pos ? double(inf) : -double(inf);
      }
      const std::vector<T> w(C, T(1.5)), b(C, T(-0.25)), rm0(C, T(0.5)), rv0(C, T(2));
      ForwardTrainingArgs<T> a{sh,      x.data(), nullptr, w.data(), b.data(), nullptr,
                               nullptr, nullptr,  nullptr, 1e-5,     0.1,      true};
      const RefTraining ref = ref_forward_training(a, rm0.data(), rv0.data());  // for the even channels
      std::vector<double> want_y(ref.y);
      for (int64_t n = 0; n < sh.n; ++n)
        for (int64_t c = 1; c < sh.c; c += 2)
          for (int64_t j = 0; j < sh.s; ++j) want_y[size_t(index_of(sh, n, c, j))] = dnan;
      for (const Isa& isa : isas) {
        Group g;
        g.name = isa.name + " " + type_name<T>() + " " + kind.name + ", " + l.path + " " + shape_name(sh) +
                 ", threads 1-4";
        const Fns<T> f = fns_of(isa.table, T());
        std::vector<uint64_t> first;
        for (int t = 1; t <= 4; ++t) {
          batchnorm::set_num_threads(t);
          Arr<T> y(size_t(sh.numel()), 0, T(kSentinel));
          std::vector<T> sm(C, T(kSentinel)), si(C, T(kSentinel)), rm(rm0), rv(rv0);
          ForwardTrainingArgs<T> c = a;
          c.y = y.p(), c.save_mean = sm.data(), c.save_invstd = si.data(), c.running_mean = rm.data(),
          c.running_var = rv.data();
          f.train(c);
          std::vector<T> stats(sm);
          for (const std::vector<T>* v : {&si, &rm, &rv}) stats.insert(stats.end(), v->begin(), v->end());
          const std::vector<uint64_t> out = {fingerprint(y.p(), y.size()),
                                             fingerprint(stats.data(), stats.size())};
          if (t > 1) {
            if (out != first) g.fail("threads=" + std::to_string(t) + " not bitwise equal to threads=1");
            continue;
          }
          first = out;
          // want(i): a finite value (within 1e-6, relative to the largest
          // finite one) or exactly +inf, -inf or NaN.
          auto check = [&](const char* what, const T* got, size_t count, auto&& want) {
            double scale = 1;
            for (size_t i = 0; i < count; ++i)
              if (std::isfinite(want(i))) scale = std::fmax(scale, std::fabs(want(i)));
            for (size_t i = 0; i < count; ++i) {
              const double gv = double(got[i]), wv = want(i);
              if (std::isfinite(wv)) g.worst = std::fmax(g.worst, std::fabs(gv - wv) / (1e-6 * scale));
              if (std::isnan(wv)   ? std::isnan(gv)
                  : std::isinf(wv) ? gv == wv
                                   : std::fabs(gv - wv) <= 1e-6 * scale)
                continue;
              char buf[160];
              snprintf(buf, sizeof buf, "%s[%zu]: got %.9g, want %.9g", what, i, gv, wv);
              return g.fail(buf);
            }
          };
          auto odd = [](size_t c) { return c % 2 == 1; };
          check("save_mean", sm.data(), C, [&](size_t c) { return odd(c) ? mean[c] : ref.mean[c]; });
          check("running_mean", rm.data(), C,
                [&](size_t c) { return odd(c) ? 0.9 * 0.5 + 0.1 * mean[c] : ref.rmean[c]; });
          check("save_invstd", si.data(), C, [&](size_t c) { return odd(c) ? dnan : ref.invstd[c]; });
          check("running_var", rv.data(), C, [&](size_t c) { return odd(c) ? dnan : ref.rvar[c]; });
          check("y", y.p(), want_y.size(), [&](size_t i) { return want_y[i]; });
        }
        g.done();
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // Keep freed large buffers for reuse instead of unmapping them: the test
  // allocates many arrays of up to 32 MB, and fresh pages cost more than the kernels.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  bool small = false, quick = false, threads_given = false;
  std::vector<int> threads = {1, 2, 3, 4};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--small") == 0) {
      small = true;
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads_given = true;
      threads.clear();
      for (const char* p = argv[++i]; *p;) {
        char* end;
        const long t = std::strtol(p, &end, 10);
        if (end == p || t < 1 || t > 256) return fprintf(stderr, "bad --threads list: %s\n", argv[i]), 2;
        threads.push_back(int(t));
        p = *end == ',' ? end + 1 : end;
      }
      if (threads.empty()) return fprintf(stderr, "empty --threads list\n"), 2;
    } else {
      fprintf(stderr, "usage: %s [--small | --quick] [--threads 1,2,3,4]\n", argv[0]);
      return 2;
    }
  }
  if (quick && !threads_given) threads = {1, 4};

  // ---- which ISAs: every table of this build that this CPU can run
  std::vector<Isa> built = {{"scalar", batchnorm::scalar_kernels()}};
#if defined(BATCHNORM_HAVE_NEON)
  built.push_back({"neon", batchnorm::neon_kernels()});
#endif
#if defined(BATCHNORM_HAVE_AVX2)
  built.push_back({"avx2", batchnorm::avx2_kernels()});
#endif
#if defined(BATCHNORM_HAVE_AVX512)
  built.push_back({"avx512", batchnorm::avx512_kernels()});
#endif
  const std::vector<std::string>& caps = batchnorm::capabilities();
  std::vector<Isa> isas;
  std::string caps_list, skipped;
  for (const std::string& c : caps) caps_list += (caps_list.empty() ? "" : ", ") + c;
  for (const Isa& i : built) {
    bool runs = false;
    for (const std::string& c : caps) runs = runs || c == i.name;
    if (runs)
      isas.push_back(i);
    else
      skipped += " " + i.name;
  }
  {
    Group g;
    std::string err;
    const KernelTable* chosen = batchnorm::kernels(&err);
    const char* forced = std::getenv("BATCHNORM_ISA");
    const std::string want = forced && *forced ? forced : (caps.empty() ? "" : caps.back());
    g.name = "dispatch: capabilities [" + caps_list + "], kernels() " +
             (chosen ? chosen->isa : ("error: " + err)) + (skipped.empty() ? "" : ", cannot run:" + skipped);
    g.require(!caps.empty() && caps.front() == "scalar", "capabilities() must start with scalar");
    g.require(chosen && want == chosen->isa, "kernels() is not the best capability (or BATCHNORM_ISA)");
    for (const Isa& i : built) g.require(std::string(i.table->isa) == i.name, "a table's isa name is wrong");
#if defined(__aarch64__) && defined(BATCHNORM_HAVE_NEON)
    g.require(caps.back() == "neon", "neon must run on arm64");
#endif
    g.done();
  }

  // ---- shapes, from the kernels' constants: P = kSerialBelow (at and above
  // it calls go parallel), U = kUnit (values per unit of work), B = kBlock
  // (values per float32 partial sum), RB = kRowBlockMax (most NHWC rows per
  // row block, the NHWC unit of work).
  const int64_t P = K::kSerialBelow, U = K::kUnit, B = K::kBlock, RB = K::kRowBlockMax;
  // Below P: one thread whatever the setting.
  const Case serial_cases[] = {
      {1, 5, 1, 1, 1},        // one value per channel: var 0
      {4, 1, 35, 2, 1},       // C = 1
      {1, 3, 35, 2, 1},       // N = 1, S > 1
      {7, 5, 1, 2, 1},        // S = 1: (N, C)
      {3, 17, 35, 3, 2},      // sizes that are multiples of no lane count
      {2, 2, 17, 50, 0.5},    // mean 100 std: float cancellation
      {16, 7, 13, 1, 1},      // short runs, one block of them
      {2, 64, 49, 1, 3},      // C a multiple of every lane count
      {50, 3, 20, 1, 1},      // short runs, several blocks of them
      {2, 3, B + 5, 1, 1},    // runs longer than a block
      {1, 1, U + 100, 5, 2},  // one run split into units
      {3, 1, U + 1, 1, 1},    // runs split into units, several samples
      {RB + 5, 33, 1, 2, 1},  // (N, C): two NHWC row blocks
      {5, 19, 1030, 1, 1},    // several NHWC row blocks
  };
  // At or above P: the parallel paths (channels shared among threads, or
  // units of one channel when C < threads).
  // (--small, under qemu, only the first kSmallParallel: emulated floating
  // point is slow, and the 2^18-values channel below is at P too.)
  constexpr size_t kSmallParallel = 2;
  const Case parallel_cases[] = {
      {4, 3, P / 12 + 5, 1, 1},     // C = 3 < 4 threads; runs split into units
      {P / 480 + 50, 8, 60, 1, 2},  // short runs: blocks of runs, several units per channel
      {1, 1, P + 7, 3, 1},          // one channel, one run: the unit split
      {9, 19, P / 171 + 7, 1, 1},   // medium runs; NHWC: many row blocks
      {2, 8, U + 3, 2, 1},          // C = 8 >= threads; runs just over a unit
      {2, 8, K::kFuseFrom / 16 + 3, 1,
       1},                        // at kFuseFrom: NCHW forward channel by channel (C = 8 >= threads)
      {P / 33 + 1, 33, 1, 1, 1},  // (N, C) in parallel
  };
  // NCHW planes of at most kShortPlaneBytes (64): the forward's statistics and
  // the backward's sums sample by sample (ShortPlanes). Last, so that
  // the cases above keep their seeds.
  const Case short_plane_cases[] = {
      {11, 6, 2, 1, 1},             // planes of 2, serial
      {P / 36 + 9, 9, 4, 1, 1},     // blocks of samples in parallel
      {P / 256 + 3, 16, 16, 2, 1},  // planes of 64 bytes in float (short), 128 in double (not)
  };
  // From kPrefetchBytes (x and y; x and dy), the NCHW forward and backward go
  // channel by channel, prefetching and with streaming stores; C = 19: the
  // runs take the peel, the vector loop and the tail. Eval's plane passes
  // stay below kStreamBytes here, with plain stores (float; double gets to
  // kStreamBytes).
  // From kStreamBytes, the plane and row passes stream too: forward streams
  // x and y, so a float tensor of kStreamBytes / 8 bytes (backward streams
  // three arrays; double gets there with half). C = 3 goes channel by channel
  // at 1 thread and through the plane passes at 4 (C < threads), the backward
  // included; NHWC rows stream when C is a multiple of the lanes: C = 32, with
  // y placed at each alignment (rows then start at y's first aligned value).
  const Case prefetch_case = {2, 19, K::kPrefetchBytes / 8 / 38 + 1, 2, 1};
  const Case stream_cases[] = {{2, 3, K::kStreamBytes / 8 / 6 + 1, 2, 1},
                               {2, 32, K::kStreamBytes / 8 / 64 + 1, 2, 1}};
  const Case big_cases[] = {prefetch_case, stream_cases[0], stream_cases[1]};

  {
    Group g;
    g.name = "shapes: kSerialBelow " + std::to_string(P) + ", kUnit " + std::to_string(U) + ", kBlock " +
             std::to_string(B) + ", kRowBlockMax " + std::to_string(RB) + ", kPrefetchBytes " +
             std::to_string(K::kPrefetchBytes) + ", kStreamBytes " + std::to_string(K::kStreamBytes);
    for (const Case& k : parallel_cases)
      g.require(k.n * k.c * k.s >= P, "a parallel-size shape is below kSerialBelow");
    g.require(K::kFuseFrom >= P, "kFuseFrom is below kSerialBelow");
    const int64_t pn = prefetch_case.n * prefetch_case.c * prefetch_case.s;
    g.require(2 * pn * 4 >= K::kPrefetchBytes && 2 * pn * 4 < K::kStreamBytes,
              "the prefetch shape is not between kPrefetchBytes and kStreamBytes");
    for (const Case& k : stream_cases) {
      g.require(2 * k.n * k.c * k.s * 4 >= K::kStreamBytes, "a streaming shape is too small");
      g.require(k.n * k.c * k.s <= 7000000, "a streaming shape is needlessly large");
    }
    g.done();
  }

  uint64_t seed = 1;
  auto both = [&](const std::vector<Isa>& on, const Case& k, const std::vector<int>& th, bool lite) {
    for (bool cl : {false, true}) {
      run_case<float>(on, k, cl, seed, th, lite);
      run_case<double>(on, k, cl, seed, th, lite);
      ++seed;
    }
  };
  // --small (qemu, where floating point is emulated and slow): below P, one
  // thread count (the kernels run serially whatever the setting); at P and
  // above, the best ISA only (the scalar table's parallel paths are the same
  // source, checked natively) and lite repeats for the other thread counts.
  const std::vector<Isa> best = {isas.back()};
  for (const Case& k : serial_cases) both(isas, k, small ? std::vector<int>{threads[0]} : threads, false);
  for (size_t i = 0; i < sizeof parallel_cases / sizeof *parallel_cases; ++i)
    if (!small || i < kSmallParallel) both(small ? best : isas, parallel_cases[i], threads, small);
  if (quick) {
    for (const Case& k : big_cases)
      for (bool cl : {false, true}) run_case<float>(best, k, cl, seed++, {threads.front()});
  } else if (!small) {
    for (const Case& k : big_cases) both(isas, k, {threads.front(), threads.back()}, false);
  }
  both(isas, short_plane_cases[0], small ? std::vector<int>{threads[0]} : threads, false);
  if (!small)
    for (size_t i = 1; i < sizeof short_plane_cases / sizeof *short_plane_cases; ++i)
      both(isas, short_plane_cases[i], threads, false);

  // ---- the 2^22-values channel (2^18 with --small or --quick)
  const int64_t big = small || quick ? int64_t(1) << 18 : int64_t(1) << 22;
  for (bool cl : {false, true}) {
    run_large_mean<float>(isas, big, cl);
    run_large_mean<double>(isas, big, cl);
  }
  run_large_mean<float>(isas, big, false, true);
  run_large_mean<double>(isas, big, false, true);
  run_shift_cases<float>(isas);
  run_shift_cases<double>(isas);
  run_nonfinite_cases<float>(isas, small);
  run_nonfinite_cases<double>(isas, small);

  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
