// Moments of stretches of values and how they combine: the statistics every
// norm's reductions produce, in double.
#pragma once
#include "isa_ns.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

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

// PyTorch's statistics of channel c, two plain passes in double:
//   mean = sum(x) / n,  m2 = sum((x - mean)^2)
// For a channel with an infinite or NaN value, whose shifted sums and
// merges give inf - inf = NaN for the mean: PyTorch's mean is +inf when the
// channel holds +inf (and no -inf or NaN), -inf likewise, else NaN; m2 is
// then NaN. Rare, so plain loops, in a fixed order (any thread count), in
// either layout.
template <class T>
Moments plain_moments(const Shape& sh, const T* x, int64_t c) {
  auto at = [&](int64_t n, int64_t j) {
    return double(x[sh.channels_last ? (n * sh.s + j) * sh.c + c : (n * sh.c + c) * sh.s + j]);
  };
  const double count = double(sh.count_per_channel());
  double s = 0, m2 = 0;
  for (int64_t n = 0; n < sh.n; ++n)
    for (int64_t j = 0; j < sh.s; ++j) s += at(n, j);
  const double mean = s / count;
  for (int64_t n = 0; n < sh.n; ++n)
    for (int64_t j = 0; j < sh.s; ++j) m2 += (at(n, j) - mean) * (at(n, j) - mean);
  return Moments{count, mean, m2};
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
