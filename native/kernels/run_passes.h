// Elementwise passes over one run of contiguous values with one set of
// coefficients: the inner loop of every pass over NCHW planes (and of any
// layout whose runs share their coefficients).
#pragma once
#include "coeffs.h"
#include "fused.h"
#include "isa_ns.h"
#include "memory.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct RunPasses {
  using T = typename V::type;
  using St = Stores<V>;
  static constexpr int W = V::W;

  // Scalar math: y = (x - mean) * scale + shift
  // With a `next` run, also asks for it as it goes (one cache line per line
  // of x), so that its reads from memory overlap this run's writes. Op
  // (fused.h): x gated (the frozen backward's dy), y with the residual and
  // the ReLU; f's arrays indexed as x.
  template <bool NT, int Op = 0>
  static void affine(const T* x, T* y, int64_t len, const Coeffs<T>& k, const T* next = nullptr,
                     const Fuse<T>& f = Fuse<T>{}) {
    using F = Fused<Op>;
    constexpr int64_t kLine = 64 / sizeof(T);
    const V m = V::set1(k.mean), a = V::set1(k.scale), b = V::set1(k.shift);
    int64_t i = 0;
    for (const int64_t p = St::template peel<NT>(y, len); i < p; ++i)
      y[i] = F::output1(std::fma(F::input1(x, f, i) - k.mean, k.scale, k.shift), f, i);
    for (; i + W <= len; i += W) {
      if (next && i % kLine < W) prefetch(next + i);
      const V v = V::fmadd(V::sub(F::template input<V>(x, f, i), m), a, b);
      St::template put<NT>(y + i, F::template output<V>(v, f, i));
    }
    for (; i < len; ++i) y[i] = F::output1(std::fma(F::input1(x, f, i) - k.mean, k.scale, k.shift), f, i);
  }

  // Scalar math: dx = dy * k1 + (x - mean) * k2 + k3
  // Op (fused.h): dy gated by f.gate > 0 (and written to f.gate_out); f indexed as x.
  template <bool NT, int Op = 0>
  static void grad_input(const T* x, const T* dy, T* dx, int64_t len, const GradCoeffs<T>& k,
                         const Fuse<T>& f = Fuse<T>{}) {
    using F = Fused<Op>;
    const V m = V::set1(k.mean), k1 = V::set1(k.k1), k2 = V::set1(k.k2), k3 = V::set1(k.k3);
    int64_t i = 0;
    for (const int64_t p = St::template peel<NT>(dx, len); i < p; ++i)
      dx[i] = std::fma(F::input1(dy, f, i), k.k1, std::fma(x[i] - k.mean, k.k2, k.k3));
    for (; i + W <= len; i += W) {
      const V t = V::fmadd(V::sub(V::load(x + i), m), k2, k3);
      St::template put<NT>(dx + i, V::fmadd(F::template input<V>(dy, f, i), k1, t));
    }
    for (; i < len; ++i) dx[i] = std::fma(F::input1(dy, f, i), k.k1, std::fma(x[i] - k.mean, k.k2, k.k3));
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
