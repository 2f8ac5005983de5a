// Standalone test of BatchNorm's fused ops (native/kernels/fused.h, issue 21)
// on every ISA table this build has and this CPU can run, float and double:
//
//   - forward-training and forward-eval with a residual and/or a ReLU give
//     bitwise the plain kernel's y followed by y = max(y + r, 0) in T (the
//     fused post-op changes nothing before it), with the same statistics;
//   - the backward with the forward's output (the ReLU's mask y > 0) gives
//     bitwise the plain backward of dy' = y > 0 ? dy : 0, with batch and with
//     frozen statistics, and writes dy' as the residual's gradient (also with
//     no dx, and with dx written over the output in place);
//   - the fused results are bitwise the same for 1 to 4 threads, and within
//     float tolerance of the scalar table's (fed the same mask);
//   - shapes that reach every path: (N, C) rows, channels-last, short NCHW
//     planes, planes, channel by channel (kFuseFrom), prefetching and streaming
//     (kPrefetchBytes, kStreamBytes; skipped by --small), outputs one value off
//     alignment; a channel with a NaN (relu keeps it, the mask drops it).
//
// Usage: fused_test [--small]   (--small: for qemu, inputs up to 1e5 values)
// Prints one line per check group and "N passed, M failed"; exits 1 on failure.
// Build: KT_MAIN=test/native/fused_test.cc build_kernel_test (test/native/run.sh).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dispatch.h"
#include "kernels/args.h"
#include "kernels/tables.h"
#include "threads.h"

namespace {

using batchnorm::BackwardArgs;
using batchnorm::ForwardEvalArgs;
using batchnorm::ForwardTrainingArgs;
using batchnorm::KernelTable;
using batchnorm::Shape;

int passed = 0, failed = 0;

struct Rng {  // splitmix64: the same data on every architecture
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  double sym() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return 2 * double((z ^ (z >> 31)) >> 11) * 0x1.0p-53 - 1;
  }
};

// Bitwise equal, or both NaN.
template <class T>
bool same(const T* a, const T* b, int64_t n, int64_t* at) {
  for (int64_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(T)) != 0 && !(std::isnan(a[i]) && std::isnan(b[i]))) {
      *at = i;
      return false;
    }
  return true;
}
template <class T>
bool close(const T* a, const T* b, int64_t n, double tol, int64_t* at) {
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (!(std::fabs(double(a[i]) - double(b[i])) <= tol * (1 + std::fabs(double(b[i]))))) {
      *at = i;
      return false;
    }
  }
  return true;
}

struct Check {
  std::string name;
  bool ok = true;
  void expect(bool c, const std::string& what, int64_t at = -1) {
    if (c || !ok) return;
    ok = false;
    printf("FAIL %s: %s%s\n", name.c_str(), what.c_str(),
           at >= 0 ? (" at " + std::to_string(at)).c_str() : "");
  }
  ~Check() {
    if (ok) printf("ok %s\n", name.c_str());
    (ok ? passed : failed)++;
  }
};

// An array of n values at `off` values past a 64-byte boundary (off 1: the
// passes' peeling and the rows' skew run).
template <class T>
struct Buf {
  std::vector<T> mem;
  T* p;
  Buf(int64_t n, int off) : mem(size_t(n + 64 / sizeof(T) + off)) {
    const uintptr_t a = (reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63);
    p = reinterpret_cast<T*>(a) + off;
  }
};

template <class T>
struct Results {
  std::vector<T> y, ye, dx, dxf, gr;
};

template <class T>
void fwd_train(const KernelTable& t, const ForwardTrainingArgs<T>& a) {
  if constexpr (sizeof(T) == 4)
    t.forward_training_f32(a);
  else
    t.forward_training_f64(a);
}
template <class T>
void fwd_eval(const KernelTable& t, const ForwardEvalArgs<T>& a) {
  if constexpr (sizeof(T) == 4)
    t.forward_eval_f32(a);
  else
    t.forward_eval_f64(a);
}
template <class T>
void bwd(const KernelTable& t, const BackwardArgs<T>& a) {
  if constexpr (sizeof(T) == 4)
    t.backward_f32(a);
  else
    t.backward_f64(a);
}

struct Case {
  const char* name;
  int64_t n, c, s;
  bool channels_last;
  int off;
};

// One table, one case: the fused calls against plain + separate passes
// (bitwise); returns the fused results (the gate: `gate`, or its own y).
template <class T>
Results<T> run(const KernelTable& t, const Case& k, Check& g, const std::vector<T>* gate, bool residual,
               bool relu) {
  Shape sh;
  sh.n = k.n, sh.c = k.c, sh.s = k.s, sh.channels_last = k.channels_last;
  const int64_t N = sh.numel(), C = sh.c;
  Rng rng(uint64_t(N * 7 + C));
  std::vector<T> x(N), r(N), dy(N), w(C), b(C), rm(C), rv(C);
  for (int64_t i = 0; i < N; ++i) x[i] = T(1.5 * rng.sym() + 0.3), r[i] = T(rng.sym()), dy[i] = T(rng.sym());
  for (int64_t c = 0; c < C; ++c)
    w[c] = T(1 + 0.5 * rng.sym()), b[c] = T(0.2 * rng.sym()), rm[c] = T(0.1 * rng.sym()),
    rv[c] = T(1 + 0.5 * rng.sym());
  if (C > 1)
    x[k.channels_last ? 1 : sh.s] = T(NAN);  // channel 1 is all NaN: relu keeps it, the mask drops it
  Buf<T> yp(N, k.off), yf(N, k.off), ye(N, k.off), yef(N, k.off), dxp(N, k.off), dxf(N, k.off), gr(N, k.off);
  std::vector<T> sm(C), si(C), smf(C), sif(C), gw(C), gb(C), gwf(C), gbf(C);
  int64_t at = -1;
  auto post = [&](T v, int64_t i) {
    if (residual) v = v + r[i];
    return relu && v < 0 ? T(0) : v;
  };

  // Forward-training: plain, then the post-op in T; fused.
  ForwardTrainingArgs<T> a;
  a.shape = sh, a.x = x.data(), a.weight = w.data(), a.bias = b.data(), a.running_mean = nullptr,
  a.running_var = nullptr, a.eps = 1e-5, a.momentum = 0.1;
  a.y = yp.p, a.save_mean = sm.data(), a.save_invstd = si.data();
  fwd_train(t, a);
  for (int64_t i = 0; i < N; ++i) yp.p[i] = post(yp.p[i], i);
  a.y = yf.p, a.save_mean = smf.data(), a.save_invstd = sif.data();
  a.residual = residual ? r.data() : nullptr, a.relu = relu;
  fwd_train(t, a);
  g.expect(same(yp.p, yf.p, N, &at), "forward-training y != plain y then the post-op", at);
  g.expect(same(sm.data(), smf.data(), C, &at) && same(si.data(), sif.data(), C, &at), "saved statistics");

  // Forward-eval.
  ForwardEvalArgs<T> e;
  e.shape = sh, e.x = x.data(), e.weight = w.data(), e.bias = b.data(), e.mean = rm.data(), e.var = rv.data(),
  e.eps = 1e-5;
  e.y = ye.p;
  fwd_eval(t, e);
  for (int64_t i = 0; i < N; ++i) ye.p[i] = post(ye.p[i], i);
  e.y = yef.p, e.residual = residual ? r.data() : nullptr, e.relu = relu;
  fwd_eval(t, e);
  g.expect(same(ye.p, yef.p, N, &at), "forward-eval y != plain y then the post-op", at);

  // Backward, batch and frozen statistics: plain of dy' vs fused (gate: the
  // given one, so that every table masks alike, or this table's y).
  const T* out = gate ? gate->data() : yf.p;
  std::vector<T> masked(N);
  for (int64_t i = 0; i < N; ++i) masked[i] = out[i] > 0 ? dy[i] : T(0);
  Results<T> res;
  res.y.assign(yf.p, yf.p + N), res.ye.assign(yef.p, yef.p + N);
  for (const bool batch : {true, false}) {
    BackwardArgs<T> d;
    d.shape = sh, d.x = x.data(), d.weight = w.data(), d.mean = sm.data(), d.invstd = si.data(),
    d.use_batch_stats = batch;
    d.dy = masked.data(), d.dx = dxp.p, d.grad_weight = gw.data(), d.grad_bias = gb.data();
    bwd(t, d);
    d.dy = dy.data(), d.dx = dxf.p, d.grad_weight = gwf.data(), d.grad_bias = gbf.data();
    d.output = out, d.grad_residual = gr.p;
    bwd(t, d);
    const std::string what = batch ? "backward" : "backward, frozen statistics";
    g.expect(same(dxp.p, dxf.p, N, &at), what + ": dx != plain dx of the masked dy", at);
    g.expect(same(gw.data(), gwf.data(), C, &at) && same(gb.data(), gbf.data(), C, &at), what + ": grads");
    g.expect(same(masked.data(), gr.p, N, &at), what + ": the residual's gradient != the masked dy", at);
    (batch ? res.dx : res.dxf).assign(dxf.p, dxf.p + N);
  }
  res.gr.assign(gr.p, gr.p + N);
  // No dx: the residual's gradient all the same. dx over the output in place.
  {
    BackwardArgs<T> d;
    d.shape = sh, d.x = x.data(), d.dy = dy.data(), d.dx = nullptr, d.weight = w.data(), d.mean = sm.data(),
    d.invstd = si.data(), d.grad_weight = gwf.data(), d.grad_bias = gbf.data(), d.use_batch_stats = true;
    d.output = out;
    std::fill(gr.p, gr.p + N, T(7));
    d.grad_residual = gr.p;
    bwd(t, d);
    g.expect(same(masked.data(), gr.p, N, &at), "no dx: the residual's gradient", at);
    std::vector<T> o(out, out + N);
    d.output = o.data(), d.dx = o.data(), d.grad_residual = nullptr;
    bwd(t, d);
    g.expect(same(res.dx.data(), o.data(), N, &at), "dx written over the output in place", at);
  }
  return res;
}

template <class T>
void run_case(const std::vector<const KernelTable*>& tables, const Case& k) {
  for (const int op : {1, 2, 3}) {
    const bool residual = op & 1, relu = op & 2;
    batchnorm::set_num_threads(1);
    Results<T> ref;
    {
      Check g;
      g.name = std::string("scalar ") + (sizeof(T) == 4 ? "float " : "double ") + k.name +
               (relu ? " relu" : "") + (residual ? " residual" : "");
      ref = run<T>(*tables[0], k, g, nullptr, residual, relu);
    }
    for (const KernelTable* t : tables) {
      Check g;
      g.name = std::string(t->isa) + (sizeof(T) == 4 ? " float " : " double ") + k.name +
               (relu ? " relu" : "") + (residual ? " residual" : "") + ", threads 1 2 3 4, against scalar";
      const Shape sh{k.n, k.c, k.s, k.channels_last};
      const int64_t N = sh.numel();
      Results<T> first;
      for (int th = 1; th <= 4 && g.ok; ++th) {
        batchnorm::set_num_threads(th);
        Results<T> got = run<T>(*t, k, g, &ref.y, residual, relu);
        int64_t at = -1;
        if (th == 1) {
          first = got;
          const double tol = sizeof(T) == 4 ? 1e-4 : 1e-10;
          g.expect(close(got.y.data(), ref.y.data(), N, tol, &at), "y far from scalar's", at);
          g.expect(close(got.dx.data(), ref.dx.data(), N, tol, &at), "dx far from scalar's", at);
          g.expect(close(got.dxf.data(), ref.dxf.data(), N, tol, &at), "frozen dx far from scalar's", at);
          g.expect(same(got.gr.data(), ref.gr.data(), N, &at), "the residual's gradient != scalar's", at);
          continue;
        }
        g.expect(same(got.y.data(), first.y.data(), N, &at) && same(got.ye.data(), first.ye.data(), N, &at) &&
                     same(got.dx.data(), first.dx.data(), N, &at) &&
                     same(got.dxf.data(), first.dxf.data(), N, &at),
                 "threads=" + std::to_string(th) + " not bitwise equal to threads=1", at);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool small = argc > 1 && std::strcmp(argv[1], "--small") == 0;
  std::vector<const KernelTable*> tables;
  const KernelTable* built[] = {
    batchnorm::scalar_kernels(),
#if defined(BATCHNORM_HAVE_NEON)
    batchnorm::neon_kernels(),
#endif
#if defined(BATCHNORM_HAVE_AVX2)
    batchnorm::avx2_kernels(),
#endif
#if defined(BATCHNORM_HAVE_AVX512)
    batchnorm::avx512_kernels(),
#endif
  };
  for (const KernelTable* t : built)
    for (const std::string& c : batchnorm::capabilities())
      if (c == t->isa) tables.push_back(t);
  const Case cases[] = {
      {"(N, C) rows (37, 21)", 37, 21, 1, true, 0},
      {"channels-last (6, 40, 33), off by one", 6, 40, 33, true, 1},
      {"channels-last, parallel (16, 64, 100), off by one", 16, 64, 100, true, 1},
      {"short NCHW planes (40, 12, 9)", 40, 12, 9, false, 0},
      {"NCHW planes (3, 5, 37), off by one", 3, 5, 37, false, 1},
      {"NCHW by channel (16, 8, 3136)", 16, 8, 3136, false, 0},
      {"NCHW by channel, prefetching and streaming (16, 64, 3136), off by one", 16, 64, 3136, false, 1},
      {"channels-last, streaming (32, 64, 1600), off by one", 32, 64, 1600, true, 1},
  };
  for (const Case& k : cases) {
    if (small && k.n * k.c * k.s > 100000) continue;
    run_case<float>(tables, k);
    run_case<double>(tables, k);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
