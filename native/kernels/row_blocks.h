// Rows of C values (channels-last rows, or NCHW samples of short planes) cut
// into blocks of rows, the units of work of their reductions: what a block
// leaves for each channel, and how the blocks of a channel add up in order
// (fixed by the shape, so bitwise the same on any number of threads).
#pragma once
#include "isa_ns.h"
#include "moments.h"
#include "parallel.h"
#include "scratch.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

// One row block of one channel: its sums around the channel's shift
// (shifted: a = sum(d), b = sum(d^2)) or, where the fallback took it, its
// Moments (a = mean, b = m2).
struct RowPart {
  double count, a, b;
  bool shifted;
};

// The statistics of rows, before each channel's row blocks are added up:
// out[c] holds the first rows' Moments, part[u * C + c] the row blocks after
// them (RowPart: summed around shift[c], or a fallback's Moments).
template <class T>
struct RowStats {
  const RowPart* part;
  int64_t units;
  const T* shift;
  const Moments* out;
};

// Gradient sums of `rows` rows of C channels in blocks of R rows:
// unit_sums(r0, nr, g, h) adds the sums of rows [r0, r0 + nr) into g[0 .. C)
// and h[0 .. C) (zeroed); the blocks run in parallel, then each channel's
// are added up in order into sdy and sdyx.
template <class F>
void row_block_grad_sums(const Shape& sh, int64_t rows, int64_t R, F&& unit_sums, double* sdy, double* sdyx) {
  const int64_t C = sh.c, units = (rows + R - 1) / R;
  Scratch<double> pg(units * C), ph(units * C);
  parallel(units, serial(sh) ? units : 1, [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t r0 = u * R, nr = rows - r0 < R ? rows - r0 : R;
      unit_sums(r0, nr, &pg[u * C], &ph[u * C]);
    }
  });
  parallel(C, serial(sh) ? C : 16, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double g = 0, h = 0;
      for (int64_t u = 0; u < units; ++u) g += pg[u * C + c], h += ph[u * C + c];
      sdy[c] = g, sdyx[c] = h;
    }
  });
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
