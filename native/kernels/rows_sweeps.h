// Channels-last rows of C values: how a kernel walks the channels of a row
// with vectors held in registers down many rows.
#pragma once
#include "isa_ns.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct RowsSweeps {
  using T = typename V::type;
  using S = simd::ScalarVec<T>;  // the lanes left over in a row
  static constexpr int W = V::W;

  // G vectors of VV: the channels one sweep holds in registers.
  template <class VV, int G>
  struct Sweep {
    using vec = VV;
    static constexpr int groups = G;
  };

  // Calls f(Sweep<VV, G>{}, c0) with G vectors of VV from channel c0, for
  // every channel of a row, in order: sweeps of 4 x W, then 1..3 x W, then the
  // scalar lanes left over (VV = S).
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

  // Calls f(sweep, c0, r, rows) for the tiles of rows [r0, r1) (kTileValues
  // values, at most kRowBlockMax rows), tile by tile, each tile sweep by
  // sweep: memory sees the rows nearly in order, and each sweep's
  // coefficients load once per tile.
  template <class F>
  static void for_each_tile_sweep(int64_t C, int64_t r0, int64_t r1, F&& f) {
    const int64_t R = kTileValues / C < 1              ? 1
                      : kTileValues / C > kRowBlockMax ? kRowBlockMax
                                                       : kTileValues / C;
    for (int64_t r = r0; r < r1; r += R) {
      const int64_t rows = r1 - r < R ? r1 - r : R;
      for_each_sweep(C, [&](auto sweep, int64_t c0) { f(sweep, c0, r, rows); });
    }
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
