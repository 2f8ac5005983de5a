// What BatchNorm's elementwise passes fuse (issue 21): the forward's
// residual add and ReLU, y = max((x - mean) * scale + shift + residual, 0),
// as a post-op of the pass that writes y; and the backward's ReLU gradient,
// dy' = y > 0 ? dy : 0, as a pre-op of every pass that reads dy (the
// gradient sums and the dx pass), which also writes dy' out (the residual's
// gradient) where asked.
//
// The mask comes from the saved output y, not from a workspace: y > 0
// exactly where relu's input was > 0 (relu maps the rest to 0, and keeps a
// NaN, which is not > 0), so it is recomputable at the cost of reading y in
// the backward, and the forward keeps no extra memory and writes nothing
// more. (oneDNN's fuse_norm_relu keeps a bit-mask workspace instead: a
// tensor-sized allocation per layer that lives until its backward, and a
// write in every forward.)
//
// The runtime choice (which pointers are set) becomes a compile-time Op
// (`with_op`), so a pass with nothing to fuse is the plain pass, instruction
// for instruction, and its results are the same bits.
#pragma once
#include <cstdint>

#include "isa_ns.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

// The bits of a pass's Op.
enum : int {
  kAdd = 1,      // forward: y += residual
  kRelu = 2,     // forward: y = max(y, 0) (after the add)
  kGate = 4,     // backward: the pass's input dy is gate > 0 ? dy : 0
  kGateOut = 8,  // backward: ... and written to gate_out (the dx pass)
};

// The arrays of the fused ops, indexed as the pass's input (x or dy).
template <class T>
struct Fuse {
  const T* residual = nullptr;  // forward: added before the ReLU
  bool relu = false;            // forward
  const T* gate = nullptr;      // backward: the forward's y
  T* gate_out = nullptr;        // backward: where dy' goes (the residual's gradient)

  int op() const {
    return (residual ? kAdd : 0) | (relu ? kRelu : 0) | (gate ? kGate : 0) | (gate_out ? kGateOut : 0);
  }
  // The same arrays from value `off` on (a run or a row block of the pass).
  Fuse at(int64_t off) const {
    return Fuse{residual ? residual + off : nullptr, relu, gate ? gate + off : nullptr,
                gate_out ? gate_out + off : nullptr};
  }
};

// The fused ops of one compile-time Op, on vectors VV and on single values.
template <int Op>
struct Fused {
  // A pass's input at i. Scalar math: v = x[i]; gated: v = gate[i] > 0 ? v : 0,
  // and gate_out[i] = v.
  template <class VV, class T>
  static VV input(const T* x, const Fuse<T>& f, int64_t i) {
    VV v = VV::load(x + i);
    if constexpr ((Op & kGate) != 0) {
      v = VV::if_positive(v, VV::load(f.gate + i));
      if constexpr ((Op & kGateOut) != 0) VV::store(f.gate_out + i, v);
    }
    return v;
  }
  template <class T>
  static T input1(const T* x, const Fuse<T>& f, int64_t i) {
    T v = x[i];
    if constexpr ((Op & kGate) != 0) {
      v = f.gate[i] > 0 ? v : T(0);
      if constexpr ((Op & kGateOut) != 0) f.gate_out[i] = v;
    }
    return v;
  }
  // A forward pass's output y at i. Scalar math: y += residual[i]; y = y < 0 ? 0 : y
  // (torch.relu: a NaN stays NaN, -0 stays -0).
  template <class VV, class T>
  static VV output(VV y, const Fuse<T>& f, int64_t i) {
    if constexpr ((Op & kAdd) != 0) y = VV::add(y, VV::load(f.residual + i));
    if constexpr ((Op & kRelu) != 0) y = VV::nonneg(y);
    return y;
  }
  template <class T>
  static T output1(T y, const Fuse<T>& f, int64_t i) {
    if constexpr ((Op & kAdd) != 0) y = y + f.residual[i];
    if constexpr ((Op & kRelu) != 0) y = y < 0 ? T(0) : y;
    return y;
  }
};

// An Op as a type (<type_traits> is not in the freestanding wasm build).
template <int Op>
struct OpTag {
  static constexpr int value = Op;
};

// Calls fn(OpTag<Op>{}) for the Op among Ops that equals `op` (a pass
// instantiated only for the combinations it can meet).
template <int... Ops, class F>
void with_op(int op, F&& fn) {
  const bool found = ((op == Ops ? (fn(OpTag<Ops>{}), true) : false) || ...);
  (void)found;
}

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
