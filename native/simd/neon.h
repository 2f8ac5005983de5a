// NEON (arm64 Advanced SIMD) vectors: 4 floats, 2 doubles. Same interface as scalar.h.
#pragma once
#include <arm_neon.h>

#include <cstdint>

namespace batchnorm::simd {

struct NeonF64;

struct NeonF32 {
  using type = float;
  using f64 = NeonF64;
  static constexpr int W = 4;
  float32x4_t v;
  static NeonF32 zero() { return {vdupq_n_f32(0.f)}; }
  static NeonF32 set1(float a) { return {vdupq_n_f32(a)}; }
  static NeonF32 load(const float* p) { return {vld1q_f32(p)}; }
  static void store(float* p, NeonF32 a) { vst1q_f32(p, a.v); }
  static void stream(float* p, NeonF32 a) { vst1q_f32(p, a.v); }
  static void fence() {}
  static NeonF32 add(NeonF32 a, NeonF32 b) { return {vaddq_f32(a.v, b.v)}; }
  static NeonF32 sub(NeonF32 a, NeonF32 b) { return {vsubq_f32(a.v, b.v)}; }
  static NeonF32 mul(NeonF32 a, NeonF32 b) { return {vmulq_f32(a.v, b.v)}; }
  static NeonF32 fmadd(NeonF32 a, NeonF32 b, NeonF32 c) { return {vfmaq_f32(c.v, a.v, b.v)}; }
  static NeonF32 nonneg(NeonF32 a) { return {vbslq_f32(vcltzq_f32(a.v), vdupq_n_f32(0.f), a.v)}; }
  static NeonF32 if_positive(NeonF32 a, NeonF32 g) {
    return {vreinterpretq_f32_u32(vandq_u32(vcgtzq_f32(g.v), vreinterpretq_u32_f32(a.v)))};
  }
  static NeonF32 load_partial(const float* p, int64_t n, float fill) {
    float t[W] = {fill, fill, fill, fill};
    for (int64_t i = 0; i < n; ++i) t[i] = p[i];
    return {vld1q_f32(t)};
  }
  // Lanes widened to double: (l0+l2) + (l1+l3).
  static double hsum(NeonF32 a) {
    const float64x2_t s = vaddq_f64(vcvt_f64_f32(vget_low_f32(a.v)), vcvt_high_f64_f32(a.v));
    return vgetq_lane_f64(s, 0) + vgetq_lane_f64(s, 1);
  }
};

struct NeonF64 {
  using type = double;
  using f64 = NeonF64;
  static constexpr int W = 2;
  float64x2_t v;
  static NeonF64 zero() { return {vdupq_n_f64(0.0)}; }
  static NeonF64 set1(double a) { return {vdupq_n_f64(a)}; }
  static NeonF64 load(const double* p) { return {vld1q_f64(p)}; }
  static void store(double* p, NeonF64 a) { vst1q_f64(p, a.v); }
  static void stream(double* p, NeonF64 a) { vst1q_f64(p, a.v); }
  static void fence() {}
  static NeonF64 add(NeonF64 a, NeonF64 b) { return {vaddq_f64(a.v, b.v)}; }
  static NeonF64 sub(NeonF64 a, NeonF64 b) { return {vsubq_f64(a.v, b.v)}; }
  static NeonF64 mul(NeonF64 a, NeonF64 b) { return {vmulq_f64(a.v, b.v)}; }
  static NeonF64 fmadd(NeonF64 a, NeonF64 b, NeonF64 c) { return {vfmaq_f64(c.v, a.v, b.v)}; }
  static NeonF64 load_partial(const double* p, int64_t n, double fill) {
    double t[W] = {fill, fill};
    for (int64_t i = 0; i < n; ++i) t[i] = p[i];
    return {vld1q_f64(t)};
  }
  static NeonF64 div(NeonF64 a, NeonF64 b) { return {vdivq_f64(a.v, b.v)}; }
  static NeonF64 sqrt(NeonF64 a) { return {vsqrtq_f64(a.v)}; }
  static NeonF64 nonneg(NeonF64 a) { return {vbslq_f64(vcltzq_f64(a.v), vdupq_n_f64(0.0), a.v)}; }
  static NeonF64 if_positive(NeonF64 a, NeonF64 g) {
    return {vreinterpretq_f64_u64(vandq_u64(vcgtzq_f64(g.v), vreinterpretq_u64_f64(a.v)))};
  }
  static double hsum(NeonF64 a) { return vgetq_lane_f64(a.v, 0) + vgetq_lane_f64(a.v, 1); }
};

}  // namespace batchnorm::simd
