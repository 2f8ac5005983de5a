// AVX2 + FMA vectors: 8 floats, 4 doubles. Same interface as scalar.h.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace batchnorm::simd {

struct Avx2F64;

struct Avx2F32 {
  using type = float;
  using f64 = Avx2F64;
  static constexpr int W = 8;
  __m256 v;
  static Avx2F32 zero() { return {_mm256_setzero_ps()}; }
  static Avx2F32 set1(float a) { return {_mm256_set1_ps(a)}; }
  static Avx2F32 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static void store(float* p, Avx2F32 a) { _mm256_storeu_ps(p, a.v); }
  static void stream(float* p, Avx2F32 a) { _mm256_stream_ps(p, a.v); }
  static void fence() { _mm_sfence(); }
  static Avx2F32 add(Avx2F32 a, Avx2F32 b) { return {_mm256_add_ps(a.v, b.v)}; }
  static Avx2F32 sub(Avx2F32 a, Avx2F32 b) { return {_mm256_sub_ps(a.v, b.v)}; }
  static Avx2F32 mul(Avx2F32 a, Avx2F32 b) { return {_mm256_mul_ps(a.v, b.v)}; }
  static Avx2F32 fmadd(Avx2F32 a, Avx2F32 b, Avx2F32 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static Avx2F32 nonneg(Avx2F32 a) {
    return {_mm256_blendv_ps(a.v, _mm256_setzero_ps(), _mm256_cmp_ps(a.v, _mm256_setzero_ps(), _CMP_LT_OQ))};
  }
  static Avx2F32 if_positive(Avx2F32 a, Avx2F32 g) {
    return {_mm256_and_ps(a.v, _mm256_cmp_ps(g.v, _mm256_setzero_ps(), _CMP_GT_OQ))};
  }
  static Avx2F32 load_partial(const float* p, int64_t n, float fill) {
    const __m256i first =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return {_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, first), _mm256_castsi256_ps(first))};
  }
  // Lanes widened to double, then ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
  static double hsum(Avx2F32 a) {
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(a.v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(a.v, 1));
    const __m256d s = _mm256_add_pd(lo, hi);
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
  }
};

struct Avx2F64 {
  using type = double;
  using f64 = Avx2F64;
  static constexpr int W = 4;
  __m256d v;
  static Avx2F64 zero() { return {_mm256_setzero_pd()}; }
  static Avx2F64 set1(double a) { return {_mm256_set1_pd(a)}; }
  static Avx2F64 load(const double* p) { return {_mm256_loadu_pd(p)}; }
  static void store(double* p, Avx2F64 a) { _mm256_storeu_pd(p, a.v); }
  static void stream(double* p, Avx2F64 a) { _mm256_stream_pd(p, a.v); }
  static void fence() { _mm_sfence(); }
  static Avx2F64 add(Avx2F64 a, Avx2F64 b) { return {_mm256_add_pd(a.v, b.v)}; }
  static Avx2F64 sub(Avx2F64 a, Avx2F64 b) { return {_mm256_sub_pd(a.v, b.v)}; }
  static Avx2F64 mul(Avx2F64 a, Avx2F64 b) { return {_mm256_mul_pd(a.v, b.v)}; }
  static Avx2F64 fmadd(Avx2F64 a, Avx2F64 b, Avx2F64 c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
  static Avx2F64 if_positive(Avx2F64 a, Avx2F64 g) {
    return {_mm256_and_pd(a.v, _mm256_cmp_pd(g.v, _mm256_setzero_pd(), _CMP_GT_OQ))};
  }
  static Avx2F64 load_partial(const double* p, int64_t n, double fill) {
    const __m256i first = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    return {_mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, first), _mm256_castsi256_pd(first))};
  }
  static Avx2F64 div(Avx2F64 a, Avx2F64 b) { return {_mm256_div_pd(a.v, b.v)}; }
  static Avx2F64 sqrt(Avx2F64 a) { return {_mm256_sqrt_pd(a.v)}; }
  static Avx2F64 nonneg(Avx2F64 a) {
    return {_mm256_blendv_pd(a.v, _mm256_setzero_pd(), _mm256_cmp_pd(a.v, _mm256_setzero_pd(), _CMP_LT_OQ))};
  }
  static double hsum(Avx2F64 a) {
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
  }
};

}  // namespace batchnorm::simd
