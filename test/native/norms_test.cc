// Standalone test of the LayerNorm / RMSNorm / GroupNorm kernels
// (native/kernels/groupnorm.h, interface norm_args.h), without Node-API: every
// norm table this build has and this CPU runs, float and double, against a
// float64 reference of norm_args.h's formulas, on every path groupnorm.h
// chooses (rows with a weight per value, NCHW rows of planes, channels-last
// columns), bitwise the same for 1-4 threads, plus constant rows (exactly 0)
// and rows near 1e30 (finite statistics). Prints one line per group, then
// "N passed, M failed"; exits 1 on any failure.
//
//   bash test/native/run.sh    (builds and runs it after kernels_test)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dispatch.h"
#include "kernels/norm_args.h"
#include "kernels/tables.h"
#include "threads.h"

using batchnorm::GroupNormBackwardArgs;
using batchnorm::GroupNormForwardArgs;
using batchnorm::GroupShape;
using batchnorm::NormKernelTable;

namespace {

int passed = 0, failed = 0;

struct Rng {
  uint64_t s;
  double uniform() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return double(s >> 11) / 9007199254740992.0;
  }
  double normal() {
    return std::sqrt(-2 * std::log(1 - uniform())) * std::cos(6.283185307179586 * uniform());
  }
};

struct Case {
  const char* name;
  int64_t n, c, s, groups;
  bool channels_last, rms;
};

struct Ref {
  std::vector<double> y, dx, gw, gb, mean, invstd;
};

// The float64 reference: per (sample, group) two passes, then y, dx and the
// parameter gradients from the formulas of norm_args.h.
Ref reference(const Case& k, const std::vector<double>& x, const std::vector<double>& dy,
              const std::vector<double>& w, const std::vector<double>& b, double eps) {
  const int64_t cg = k.c / k.groups, m = cg * k.s;
  auto at = [&](int64_t i, int64_t ch, int64_t j) {
    return k.channels_last ? (i * k.s + j) * k.c + ch : (i * k.c + ch) * k.s + j;
  };
  Ref r{std::vector<double>(x.size()),
        std::vector<double>(x.size()),
        std::vector<double>(k.c),
        std::vector<double>(k.c),
        std::vector<double>(k.n * k.groups),
        std::vector<double>(k.n * k.groups)};
  for (int64_t i = 0; i < k.n; ++i)
    for (int64_t g = 0; g < k.groups; ++g) {
      double mu = 0, v = 0, g1 = 0, g2 = 0;
      if (!k.rms) {
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch)
          for (int64_t j = 0; j < k.s; ++j) mu += x[at(i, ch, j)];
        mu /= double(m);
      }
      for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch)
        for (int64_t j = 0; j < k.s; ++j) v += (x[at(i, ch, j)] - mu) * (x[at(i, ch, j)] - mu);
      const double inv = 1 / std::sqrt(v / double(m) + eps);
      r.mean[i * k.groups + g] = mu, r.invstd[i * k.groups + g] = inv;
      for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch)
        for (int64_t j = 0; j < k.s; ++j) {
          const int64_t p = at(i, ch, j);
          const double xh = (x[p] - mu) * inv;
          r.y[p] = xh * w[ch] + b[ch];
          r.gw[ch] += dy[p] * xh, r.gb[ch] += dy[p];
          g1 += w[ch] * dy[p], g2 += w[ch] * dy[p] * xh;
        }
      for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch)
        for (int64_t j = 0; j < k.s; ++j) {
          const int64_t p = at(i, ch, j);
          r.dx[p] = inv * (w[ch] * dy[p] - (k.rms ? 0 : g1 / double(m)) - (x[p] - mu) * inv * g2 / double(m));
        }
    }
  return r;
}

struct Group {
  std::string name, first_failure;
  int fails = 0;
  void fail(const std::string& what) {
    if (!fails++) first_failure = what;
  }
  // Every |got - want| <= tol * scale, scale the largest |want| (at least 1).
  template <class T>
  void close(const char* what, const std::vector<T>& got, const std::vector<double>& want, double tol) {
    double scale = 1;
    for (double v : want) scale = std::fmax(scale, std::fabs(v));
    for (size_t i = 0; i < want.size(); ++i)
      if (!(std::fabs(double(got[i]) - want[i]) <= tol * scale)) {
        char b[160];
        snprintf(b, sizeof b, "%s[%zu] = %.9g, expected %.9g (tolerance %.3g)", what, i, double(got[i]),
                 want[i], tol * scale);
        return fail(b);
      }
  }
  void done() {
    printf("%s %s%s%s\n", fails ? "FAIL" : "ok  ", name.c_str(), fails ? ": " : "", first_failure.c_str());
    fails ? ++failed : ++passed;
  }
};

template <class T>
struct Outputs {
  std::vector<T> y, mean, invstd, dx, gw, gb;
  bool operator==(const Outputs& o) const {
    auto same = [](const std::vector<T>& a, const std::vector<T>& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
    };
    return same(y, o.y) && same(mean, o.mean) && same(invstd, o.invstd) && same(dx, o.dx) && same(gw, o.gw) &&
           same(gb, o.gb);
  }
};

template <class T>
Outputs<T> run(const NormKernelTable& t, const Case& k, const std::vector<T>& x, const std::vector<T>& dy,
               const std::vector<T>& w, const std::vector<T>& b, double eps) {
  GroupShape sh;
  sh.n = k.n, sh.c = k.c, sh.s = k.s, sh.groups = k.groups, sh.channels_last = k.channels_last;
  Outputs<T> o{std::vector<T>(x.size()), std::vector<T>(sh.rows()), std::vector<T>(sh.rows()),
               std::vector<T>(x.size()), std::vector<T>(k.c),       std::vector<T>(k.c)};
  GroupNormForwardArgs<T> f{
      sh,  x.data(), o.y.data(), w.data(), k.rms ? nullptr : b.data(), o.mean.data(), o.invstd.data(),
      eps, k.rms};
  GroupNormBackwardArgs<T> g{sh,          x.data(),      dy.data(),       o.dx.data(),
                             w.data(),    o.mean.data(), o.invstd.data(), o.gw.data(),
                             o.gb.data(), k.rms};
  if constexpr (sizeof(T) == 4)
    t.group_norm_forward_f32(f), t.group_norm_backward_f32(g);
  else
    t.group_norm_forward_f64(f), t.group_norm_backward_f64(g);
  return o;
}

template <class T>
void run_case(const std::vector<const NormKernelTable*>& tables, const Case& k, uint64_t seed) {
  const size_t numel = size_t(k.n * k.c * k.s);
  Rng r{seed};
  std::vector<double> x(numel), dy(numel), w(k.c), b(k.c, 0.0);
  for (auto& v : x) v = 3 + 2 * r.normal();
  for (auto& v : dy) v = r.normal();
  for (auto& v : w) v = r.normal();  // both signs
  if (!k.rms)
    for (auto& v : b) v = r.normal();
  // The reference sees the values the kernel sees (rounded to T).
  std::vector<T> xt(x.begin(), x.end()), dyt(dy.begin(), dy.end()), wt(w.begin(), w.end()),
      bt(b.begin(), b.end());
  for (size_t i = 0; i < numel; ++i) x[i] = double(xt[i]), dy[i] = double(dyt[i]);
  for (int64_t c = 0; c < k.c; ++c) w[c] = double(wt[c]), b[c] = double(bt[c]);
  const Ref ref = reference(k, x, dy, w, b, 1e-5);
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-11;
  for (const NormKernelTable* t : tables) {
    Group g;
    g.name = std::string(t->isa) + (sizeof(T) == 4 ? " float " : " double ") + k.name + ", threads 1 2 3 4";
    batchnorm::set_num_threads(1);
    const Outputs<T> o = run(*t, k, xt, dyt, wt, bt, 1e-5);
    g.close("y", o.y, ref.y, tol);
    g.close("mean", o.mean, ref.mean, tol);
    g.close("invstd", o.invstd, ref.invstd, tol);
    g.close("dx", o.dx, ref.dx, tol);
    g.close("grad_weight", o.gw, ref.gw, tol * 10);
    g.close("grad_bias", o.gb, ref.gb, tol * 10);
    for (int th : {2, 3, 4}) {
      batchnorm::set_num_threads(th);
      if (!(run(*t, k, xt, dyt, wt, bt, 1e-5) == o))
        g.fail("threads=" + std::to_string(th) + " not bitwise equal to threads=1");
    }
    g.done();
  }
}

// Constant rows give exactly 0 with eps 1e-6 (no folding of the mean into
// a*x + b); rows near 1e30 keep finite statistics (T sums would overflow).
template <class T>
void run_extremes(const std::vector<const NormKernelTable*>& tables) {
  const Case cases[] = {{"rows", 4, 300, 1, 1, false, false},
                        {"NCHW", 4, 6, 50, 3, false, false},
                        {"channels-last", 4, 6, 50, 3, true, false},
                        {"one long row (split)", 1, 70001, 1, 1, false, false}};
  for (const NormKernelTable* t : tables)
    for (const Case& k : cases) {
      Group g;
      g.name = std::string(t->isa) + (sizeof(T) == 4 ? " float " : " double ") + k.name +
               ": constant rows give 0, rows near 1e30 stay finite";
      const size_t numel = size_t(k.n * k.c * k.s);
      for (double v : {0.1, 1.0 / 3, 100.7, 2000.0, 1e8, -3.3e15}) {
        const std::vector<T> x(numel, T(v)), dy(numel, T(1)), w(k.c, T(1)), b(k.c, T(0));
        const Outputs<T> o = run(*t, k, x, dy, w, b, 1e-6);
        for (T y : o.y)
          if (y != T(0)) g.fail("constant " + std::to_string(v) + " gave " + std::to_string(double(y)));
      }
      Rng r{7};
      std::vector<T> x(numel), dy(numel, T(1)), w(k.c, T(1)), b(k.c, T(0));
      for (auto& v : x) v = T(1e30 * (1 + 0.25 * r.normal()));
      const Outputs<T> o = run(*t, k, x, dy, w, b, 1e-5);
      for (size_t i = 0; i < o.invstd.size(); ++i)
        if (!(std::isfinite(double(o.invstd[i])) && o.invstd[i] > 0))
          g.fail("invstd near 1e30 is " + std::to_string(double(o.invstd[i])));
      for (T y : o.y)
        if (!(std::fabs(double(y)) < 10)) g.fail("y near 1e30 is " + std::to_string(double(y)));
      g.done();
    }
}

}  // namespace

int main(int argc, char** argv) {
  const bool small = argc > 1 && std::strcmp(argv[1], "--small") == 0;  // under qemu
  std::vector<const NormKernelTable*> tables;
  const NormKernelTable* built[] = {
    batchnorm::scalar_norm_kernels(),
#if defined(BATCHNORM_HAVE_NEON)
    batchnorm::neon_norm_kernels(),
#endif
#if defined(BATCHNORM_HAVE_AVX2)
    batchnorm::avx2_norm_kernels(),
#endif
#if defined(BATCHNORM_HAVE_AVX512)
    batchnorm::avx512_norm_kernels(),
#endif
  };
  for (const NormKernelTable* t : built)
    for (const std::string& c : batchnorm::capabilities())
      if (c == t->isa) tables.push_back(t);
  const Case cases[] = {
      {"LayerNorm rows (9, 37)", 9, 37, 1, 1, false, false},
      {"LayerNorm rows, parallel (200, 768)", 200, 768, 1, 1, false, false},
      {"RMSNorm rows (33, 64)", 33, 64, 1, 1, false, true},
      {"GroupNorm NCHW (3, 12, 49) 4 groups", 3, 12, 49, 4, false, false},
      {"GroupNorm NCHW (2, 2, 35000) 1 group", 2, 2, 35000, 1, false, false},
      {"GroupNorm NCHW, parallel (8, 32, 400) 8 groups", 8, 32, 400, 8, false, false},
      {"GroupNorm channels-last (3, 12, 49) 3 groups", 3, 12, 49, 3, true, false},
      {"GroupNorm channels-last (4, 20, 1000) 20 groups", 4, 20, 1000, 20, true, false},
      {"GroupNorm (N, C) (17, 10) 2 groups", 17, 10, 1, 2, true, false},
      {"RMS over NCHW groups (2, 6, 20)", 2, 6, 20, 2, false, true},
      // Fewer rows than twice the threads, each long: split across the pool
      // (forward_split, backward_split); the forward's rows path at 1 thread.
      {"LayerNorm, two long rows split (2, 70001)", 2, 70001, 1, 1, false, false},
      {"RMSNorm, two long rows split (2, 40003)", 2, 40003, 1, 1, false, true},
      {"GroupNorm NCHW, two long groups split (2, 2, 35001) 1 group", 2, 2, 35001, 1, false, false},
  };
  uint64_t seed = 1;
  for (const Case& k : cases) {
    if (small && k.n * k.c * k.s > 20000) continue;
    run_case<float>(tables, k, seed++);
    run_case<double>(tables, k, seed++);
  }
  run_extremes<float>(tables);
  run_extremes<double>(tables);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
