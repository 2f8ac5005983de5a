// The per-channel coefficients the elementwise passes apply, and the affine
// parameters they are made from.
#pragma once
#include "isa_ns.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

// Per-channel coefficients of one normalizing pass, in T:
//   y = (x - mean_hi) * scale + shift',  shift' = shift - mean_lo * scale
// mean_hi is the double mean rounded to T and mean_lo what that rounding lost:
// x - mean_hi is exact for x near the mean, and the correction rides in the
// shift, so a large mean with a small spread (mean 100, std 0.01) loses
// nothing to float32 cancellation.
template <class T>
struct Coeffs {
  T mean, scale, shift;
};

template <class T>
Coeffs<T> make_coeffs(double mean, double scale, double shift) {
  const T hi = T(mean);
  return Coeffs<T>{hi, T(scale), T(double(hi) == mean ? shift : shift - (mean - double(hi)) * scale)};
}

// Per-channel coefficients of a gradient pass: dx = dy * k1 + (x - mean) * k2 + k3.
template <class T>
struct GradCoeffs {
  T mean, k1, k2, k3;
};

// The affine parameters, either of which may be absent (weight 1, bias 0).
template <class T>
double weight_at(const T* w, int64_t c) {
  return w ? double(w[c]) : 1.0;
}
template <class T>
double bias_at(const T* b, int64_t c) {
  return b ? double(b[c]) : 0.0;
}

// i % C for 0 <= i < 2C, without a division: the elementwise passes step a
// channel index once per plane, or rotate it by less than C, for every plane
// or channel ((64,16,8,8) has 1024 planes of 64 values).
inline int64_t wrap(int64_t i, int64_t C) { return i < C ? i : i - C; }

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
