// BatchNorm: which reduction and which elementwise pass run for which shape,
// for each op (forward-training, forward-eval, backward), and the ISA's
// kernel table. The one place where a path is chosen; the paths themselves
// are in the files named by their memory order (README.md has the table),
// the per-channel math in batchnorm_finish.h.
//
// Instantiated per ISA by native/kernels/<isa>.cc over a vector type V
// (native/simd/*.h), inside the namespace BATCHNORM_ISA_NS (isa_ns.h).
#pragma once
#include "batchnorm_finish.h"
#include "coeffs.h"
#include "fused.h"
#include "isa_ns.h"
#include "memory.h"
#include "moments.h"
#include "nchw_passes.h"
#include "nchw_reduce.h"
#include "nchw_units.h"
#include "parallel.h"
#include "rows_passes.h"
#include "rows_reduce.h"
#include "scratch.h"
#include "short_planes.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

template <class V>
struct BatchNorm {
  using T = typename V::type;
  using Fin = BatchNormFinish<V>;
  using Nchw = NchwReduce<V>;
  using NchwPass = NchwPasses<V>;
  using Rows = RowsReduce<V>;
  using RowsPass = RowsPasses<V>;
  using Short = ShortPlanes<V>;

  // The statistics (forward-training) and the gradient sums (backward with
  // batch statistics) of a shape go one of these ways:
  enum class Path {
    rows,              // channels-last: blocks of rows across all channels (rows_reduce.h)
    short_planes,      // NCHW planes of a cache line or less: samples in memory order (short_planes.h)
    planes,            // NCHW: units of planes, all channels in parallel (nchw_reduce.h)
    by_channel,        // NCHW, kFuseFrom and C >= threads: whole channels, y while in cache
    by_channel_large,  // the same from kPrefetchBytes: prefetching the next channel, streaming stores
  };

  // NCHW with channels to share among the threads: each thread takes whole
  // channels and writes y while the channel is still in its cache, so memory
  // sees about one read and one write of the tensor.
  static bool fuse_by_channel(const Shape& sh) {
    return !sh.channels_last && sh.numel() >= kFuseFrom && sh.c >= get_num_threads();
  }

  static Path training_path(const Shape& sh) {
    if (sh.channels_last) return Path::rows;
    if (Short::applies(sh)) return Path::short_planes;
    if (fuse_by_channel(sh))
      return bytes_at_least<T>(sh, 2, kPrefetchBytes) ? Path::by_channel_large : Path::by_channel;
    return Path::planes;
  }

  // The backward goes channel by channel only where x and dy are not all in
  // the L3 (kPrefetchBytes): a backward the caches hold goes through the
  // plain passes, whose dx pass walks memory in order.
  static Path backward_path(const BackwardArgs<T>& a) {
    const Shape& sh = a.shape;
    if (sh.channels_last) return Path::rows;
    if (Short::applies(sh)) return Path::short_planes;
    if (a.use_batch_stats && fuse_by_channel(sh) && bytes_at_least<T>(sh, 2, kPrefetchBytes))
      return Path::by_channel_large;
    return Path::planes;
  }

  // The fused ops of a forward (residual add, ReLU) and of a backward (the
  // ReLU's gradient from the saved output, and the residual's gradient).
  template <class A>
  static Fuse<T> post_ops(const A& a) {
    Fuse<T> f;
    f.residual = a.residual, f.relu = a.relu;
    return f;
  }
  static Fuse<T> gate_ops(const BackwardArgs<T>& a) {
    Fuse<T> f;
    f.gate = a.output, f.gate_out = a.output ? a.grad_residual : nullptr;
    return f;
  }

  // y from per-channel coefficients over the whole tensor, streaming from
  // kStreamBytes (x and y), with the fused ops of f (fused.h): a forward's
  // post-ops, or the frozen backward's gate (x is then dy).
  static void affine(const Shape& sh, const T* x, T* y, const Coeffs<T>* k, const Fuse<T>& f = Fuse<T>{}) {
    with_op<0, kAdd, kRelu, kAdd | kRelu, kGate, kGate | kGateOut>(f.op(), [&](auto op) {
      constexpr int Op = decltype(op)::value;
      if (!sh.channels_last) {
        if (streaming<T>(sh, 2)) return NchwPass::template affine<true, Op>(sh, x, y, k, f);
        return NchwPass::template affine<false, Op>(sh, x, y, k, f);
      }
      if (RowsPass::stream(sh, 2)) return RowsPass::template affine<true, Op>(sh, x, y, k, f);
      RowsPass::template affine<false, Op>(sh, x, y, k, f);
    });
  }

  // Whole channels per thread: statistics, then y while the channel is in
  // cache. Large: prefetch the next channel and stream y.
  template <bool Large, int Op>
  static void forward_training_by_channel(const ForwardTrainingArgs<T>& a) {
    constexpr bool NT = stores_stream(Large);
    const Shape& sh = a.shape;
    const Fuse<T> f = post_ops(a);
    const typename NchwUnits<V>::Units us = NchwUnits<V>::units_of(sh);
    parallel(sh.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const Moments m = Nchw::channel_moments(sh, us, a.x, c);
        NchwPass::template affine_channel<NT, Op>(sh, a.x, a.y, c, Fin::finish_channel(a, c, m),
                                                  Large && c + 1 < c1, f);
      }
      if (NT) V::fence();
    });
  }

  static void forward_training(const ForwardTrainingArgs<T>& a) {
    const Shape& sh = a.shape;
    const Path path = training_path(sh);
    if (path == Path::by_channel_large || path == Path::by_channel) {
      with_op<0, kAdd, kRelu, kAdd | kRelu>(post_ops(a).op(), [&](auto op) {
        constexpr int Op = decltype(op)::value;
        if (path == Path::by_channel_large) return forward_training_by_channel<true, Op>(a);
        forward_training_by_channel<false, Op>(a);
      });
      return;
    }
    Scratch<Coeffs<T>> k(sh.c);
    auto finish_one = [&](int64_t c, const Moments& m) { k[c] = Fin::finish_channel(a, c, m); };
    auto finish_range = [&](const RowStats<T>& rs, int64_t c0, int64_t c1) {
      Fin::finish_rows(a, rs, c0, c1, k.p);
    };
    if (path == Path::rows) {
      Rows::statistics(sh, a.x, finish_one, finish_range);
    } else if (path == Path::short_planes) {
      Short::statistics(sh, a.x, finish_one, finish_range);
    } else {
      Scratch<Moments> m(sh.c);
      Nchw::moments(sh, a.x, m.p);
      each_channel(sh, [&](int64_t c) { finish_one(c, m[c]); });
    }
    affine(sh, a.x, a.y, k.p, post_ops(a));
  }

  static void forward_eval(const ForwardEvalArgs<T>& a) {
    Scratch<Coeffs<T>> k(a.shape.c);
    channel_ranges(a.shape, [&](int64_t c0, int64_t c1) { Fin::eval_coeffs(a, c0, c1, k.p); });
    affine(a.shape, a.x, a.y, k.p, post_ops(a));
  }

  // Sums and dx of one channel while its x and dy are still in cache, the sums
  // prefetching the next sample's run; dx with streaming stores. Op: the
  // backward's fused ops (gate_ops).
  template <int Op>
  static void backward_by_channel(const BackwardArgs<T>& a) {
    constexpr bool NT = stores_stream(true);
    const Shape& sh = a.shape;
    const Fuse<T> f = gate_ops(a);
    const typename NchwUnits<V>::Units us = NchwUnits<V>::units_of(sh);
    parallel(sh.c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double sdy, sdyx;
        Nchw::template channel_grad_sums<Op & kGate>(sh, us, a.x, a.dy, a.mean[c], c, sdy, sdyx, f);
        const GradCoeffs<T> k = Fin::finish_grad(a, c, sdy, sdyx);
        if (a.dx) NchwPass::template grad_input_channel<NT, Op>(sh, a.x, a.dy, a.dx, c, k, f);
      }
      if (NT) V::fence();
    });
  }

  // The residual's gradient without an input gradient (no dx pass to write
  // it): dy' = output > 0 ? dy : 0, a pass of its own.
  static void gate_only(const BackwardArgs<T>& a) {
    const int64_t n = a.shape.numel();
    parallel(n, serial(a.shape) ? n : kUnit, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) a.grad_residual[i] = a.output[i] > 0 ? a.dy[i] : T(0);
    });
  }

  static void backward(const BackwardArgs<T>& a) {
    const Shape& sh = a.shape;
    const int64_t C = sh.c;
    const Path path = backward_path(a);
    const Fuse<T> f = gate_ops(a);
    if (path == Path::by_channel_large) {
      with_op<0, kGate, kGate | kGateOut>(f.op(),
                                          [&](auto op) { backward_by_channel<decltype(op)::value>(a); });
      if (!a.dx && a.grad_residual && a.output) gate_only(a);
      return;
    }
    Scratch<double> sdy(C), sdyx(C);
    with_op<0, kGate>(f.op() & kGate, [&](auto op) {
      constexpr int Op = decltype(op)::value;
      if (path == Path::rows) {
        Rows::template grad_sums<Op>(sh, a.x, a.dy, a.mean, sdy.p, sdyx.p, f);
      } else if (path == Path::short_planes) {
        Short::template grad_sums<Op>(sh, a.x, a.dy, a.mean, sdy.p, sdyx.p, f);
      } else {
        Nchw::template grad_sums<Op>(sh, a.x, a.dy, a.mean, sdy.p, sdyx.p, f);
      }
    });
    // Serial: the backward's per-channel math (no square root) measured no
    // faster shared among the threads.
    Scratch<GradCoeffs<T>> k(C);
    Scratch<Coeffs<T>> frozen(C);
    for (int64_t c = 0; c < C; ++c) {
      k[c] = Fin::finish_grad(a, c, sdy[c], sdyx[c]);
      frozen[c] = Coeffs<T>{T(0), k[c].k1, T(0)};
    }
    if (!a.dx) {
      if (a.grad_residual && a.output) gate_only(a);
      return;
    }
    // Frozen statistics: dx = dy * weight * invstd, an elementwise pass on dy.
    if (!a.use_batch_stats) return affine(sh, a.dy, a.dx, frozen.p, f);
    with_op<0, kGate, kGate | kGateOut>(f.op(), [&](auto op) {
      constexpr int Op = decltype(op)::value;
      if (sh.channels_last) {
        if (RowsPass::stream(sh, 3))
          return RowsPass::template grad_input<true, Op>(sh, a.x, a.dy, a.dx, k.p, f);
        return RowsPass::template grad_input<false, Op>(sh, a.x, a.dy, a.dx, k.p, f);
      }
      if (streaming<T>(sh, 3)) return NchwPass::template grad_input<true, Op>(sh, a.x, a.dy, a.dx, k.p, f);
      NchwPass::template grad_input<false, Op>(sh, a.x, a.dy, a.dx, k.p, f);
    });
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
  BatchNorm<V>::forward_training(b);
}
template <class V>
void forward_eval(const ForwardEvalArgs<typename V::type>& a) {
  auto b = a;
  b.shape = effective(a.shape);
  BatchNorm<V>::forward_eval(b);
}
template <class V>
void backward(const BackwardArgs<typename V::type>& a) {
  auto b = a;
  b.shape = effective(a.shape);
  BatchNorm<V>::backward(b);
}

// The table of one ISA: F32 and F64 are its float and double vector types.
template <class F32, class F64>
KernelTable make_table(const char* isa) {
  // clang-format off: the table's columns are float and double
  return KernelTable{isa,
                     &forward_training<F32>,
                     &forward_training<F64>,
                     &forward_eval<F32>,
                     &forward_eval<F64>,
                     &backward<F32>,
                     &backward<F64>};
  // clang-format on
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
