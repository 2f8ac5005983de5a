// AVX-512F vectors: 16 floats, 8 doubles. Same interface as scalar.h.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace batchnorm::simd {

struct Avx512F64;

struct Avx512F32 {
  using type = float;
  using f64 = Avx512F64;
  static constexpr int W = 16;
  __m512 v;
  static Avx512F32 zero() { return {_mm512_setzero_ps()}; }
  static Avx512F32 set1(float a) { return {_mm512_set1_ps(a)}; }
  static Avx512F32 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static void store(float* p, Avx512F32 a) { _mm512_storeu_ps(p, a.v); }
  static void stream(float* p, Avx512F32 a) { _mm512_stream_ps(p, a.v); }
  static void fence() { _mm_sfence(); }
  static Avx512F32 add(Avx512F32 a, Avx512F32 b) { return {_mm512_add_ps(a.v, b.v)}; }
  static Avx512F32 sub(Avx512F32 a, Avx512F32 b) { return {_mm512_sub_ps(a.v, b.v)}; }
  static Avx512F32 mul(Avx512F32 a, Avx512F32 b) { return {_mm512_mul_ps(a.v, b.v)}; }
  static Avx512F32 fmadd(Avx512F32 a, Avx512F32 b, Avx512F32 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  static Avx512F32 nonneg(Avx512F32 a) {
    return {_mm512_mask_blend_ps(_mm512_cmp_ps_mask(a.v, _mm512_setzero_ps(), _CMP_LT_OQ), a.v,
                                 _mm512_setzero_ps())};
  }
  static Avx512F32 if_positive(Avx512F32 a, Avx512F32 g) {
    return {_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(g.v, _mm512_setzero_ps(), _CMP_GT_OQ), a.v)};
  }
  static Avx512F32 load_partial(const float* p, int64_t n, float fill) {
    return {_mm512_mask_loadu_ps(_mm512_set1_ps(fill), __mmask16((1u << n) - 1), p)};
  }
  // Lanes widened to double (two halves of 8), added lane-wise, then reduced.
  static double hsum(Avx512F32 a) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(a.v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a.v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
  }
};

struct Avx512F64 {
  using type = double;
  using f64 = Avx512F64;
  static constexpr int W = 8;
  __m512d v;
  static Avx512F64 zero() { return {_mm512_setzero_pd()}; }
  static Avx512F64 set1(double a) { return {_mm512_set1_pd(a)}; }
  static Avx512F64 load(const double* p) { return {_mm512_loadu_pd(p)}; }
  static void store(double* p, Avx512F64 a) { _mm512_storeu_pd(p, a.v); }
  static void stream(double* p, Avx512F64 a) { _mm512_stream_pd(p, a.v); }
  static void fence() { _mm_sfence(); }
  static Avx512F64 add(Avx512F64 a, Avx512F64 b) { return {_mm512_add_pd(a.v, b.v)}; }
  static Avx512F64 sub(Avx512F64 a, Avx512F64 b) { return {_mm512_sub_pd(a.v, b.v)}; }
  static Avx512F64 mul(Avx512F64 a, Avx512F64 b) { return {_mm512_mul_pd(a.v, b.v)}; }
  static Avx512F64 fmadd(Avx512F64 a, Avx512F64 b, Avx512F64 c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
  static Avx512F64 if_positive(Avx512F64 a, Avx512F64 g) {
    return {_mm512_maskz_mov_pd(_mm512_cmp_pd_mask(g.v, _mm512_setzero_pd(), _CMP_GT_OQ), a.v)};
  }
  static Avx512F64 load_partial(const double* p, int64_t n, double fill) {
    return {_mm512_mask_loadu_pd(_mm512_set1_pd(fill), __mmask8((1u << n) - 1), p)};
  }
  static Avx512F64 div(Avx512F64 a, Avx512F64 b) { return {_mm512_div_pd(a.v, b.v)}; }
  static Avx512F64 sqrt(Avx512F64 a) { return {_mm512_sqrt_pd(a.v)}; }
  static Avx512F64 nonneg(Avx512F64 a) {
    return {_mm512_mask_blend_pd(_mm512_cmp_pd_mask(a.v, _mm512_setzero_pd(), _CMP_LT_OQ), a.v,
                                 _mm512_setzero_pd())};
  }
  static double hsum(Avx512F64 a) { return _mm512_reduce_add_pd(a.v); }
};

}  // namespace batchnorm::simd
