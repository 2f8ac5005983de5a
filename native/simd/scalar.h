// Scalar "vector" of one lane: the portable path, and the reference the SIMD
// types must agree with. Every vector type in this folder has this interface:
//   T, W                    element type and lane count
//   zero, set1, load, store  (unaligned loads and stores)
//   stream, fence            store bypassing the caches (p aligned to W * sizeof(T)), and the
//                            fence that orders such stores before the call returns
//   add, sub, mul, fmadd     fmadd(a, b, c) = a * b + c, fused where the ISA has it
//   load_partial(p, n, fill) lanes [0, n) from p (0 <= n < W; nothing past them is read), the rest fill
//   hsum                     sum of the lanes, in double, in a fixed order
//   f64                      the ISA's vector of doubles, for the per-channel math
//   nonneg                   a < 0 ? 0 : a, lane by lane (NaN and -0 kept): ReLU as torch.relu
//   if_positive(a, g)        g > 0 ? a : 0, lane by lane (a NaN g gives 0): ReLU's gradient from its output
// and the double types (whose f64 is themselves) also:
//   div, sqrt                correctly rounded, as the scalar operators: the same bits on every ISA
#pragma once
#include <cmath>
#include <cstdint>

namespace batchnorm::simd {

template <class T>
struct ScalarVec {
  using type = T;
  using f64 = ScalarVec<double>;
  static constexpr int W = 1;
  T v;
  static ScalarVec zero() { return {T(0)}; }
  static ScalarVec set1(T a) { return {a}; }
  static ScalarVec load(const T* p) { return {*p}; }
  static void store(T* p, ScalarVec a) { *p = a.v; }
  static void stream(T* p, ScalarVec a) { *p = a.v; }  // no cache-bypassing store here
  static void fence() {}
  static ScalarVec add(ScalarVec a, ScalarVec b) { return {a.v + b.v}; }
  static ScalarVec sub(ScalarVec a, ScalarVec b) { return {a.v - b.v}; }
  static ScalarVec mul(ScalarVec a, ScalarVec b) { return {a.v * b.v}; }
  static ScalarVec fmadd(ScalarVec a, ScalarVec b, ScalarVec c) { return {a.v * b.v + c.v}; }
  static ScalarVec load_partial(const T* p, int64_t n, T fill) { return {n > 0 ? *p : fill}; }
  static ScalarVec div(ScalarVec a, ScalarVec b) { return {a.v / b.v}; }
  static ScalarVec sqrt(ScalarVec a) { return {std::sqrt(a.v)}; }
  static ScalarVec nonneg(ScalarVec a) { return {a.v < 0 ? T(0) : a.v}; }
  static ScalarVec if_positive(ScalarVec a, ScalarVec g) { return {g.v > 0 ? a.v : T(0)}; }
  static double hsum(ScalarVec a) { return double(a.v); }
};

}  // namespace batchnorm::simd
