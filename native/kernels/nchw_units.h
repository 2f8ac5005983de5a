// NCHW: how a channel's values are cut into units of work and blocks. A
// channel's values are N runs of HW, `C * HW` apart. A unit is a stretch of
// one channel: up to kUnit values of one run (HW > kUnit), or whole runs
// adding up to at most kUnit values. A block, the stretch one set of float32
// partial sums covers, is up to B values of one run, or whole short runs
// adding up to at most B. Both depend on the shape only, never on the thread
// count, and are merged in order: results are bitwise the same on any number
// of threads.
#pragma once
#include "isa_ns.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct NchwUnits {
  static constexpr int W = V::W;
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
      const int64_t n = u / us.pieces_per_run, s0 = (u % us.pieces_per_run) * kUnit,
                    s1 = s0 + kUnit < HW ? s0 + kUnit : HW;
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
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
