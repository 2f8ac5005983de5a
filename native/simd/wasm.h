// WebAssembly SIMD128 vectors: 4 floats, 2 doubles. Same interface as scalar.h.
// WebAssembly has no fused multiply-add (relaxed SIMD's is not deterministic),
// so fmadd is a multiply and an add, as scalar.h's; no cache-bypassing store
// either, so stream is a plain store.
#pragma once
#include <wasm_simd128.h>

#include <cstdint>

namespace batchnorm::simd {

struct WasmF64;

struct WasmF32 {
  using type = float;
  using f64 = WasmF64;
  static constexpr int W = 4;
  v128_t v;
  static WasmF32 zero() { return {wasm_f32x4_splat(0.f)}; }
  static WasmF32 set1(float a) { return {wasm_f32x4_splat(a)}; }
  static WasmF32 load(const float* p) { return {wasm_v128_load(p)}; }
  static void store(float* p, WasmF32 a) { wasm_v128_store(p, a.v); }
  static void stream(float* p, WasmF32 a) { wasm_v128_store(p, a.v); }
  static void fence() {}
  static WasmF32 add(WasmF32 a, WasmF32 b) { return {wasm_f32x4_add(a.v, b.v)}; }
  static WasmF32 sub(WasmF32 a, WasmF32 b) { return {wasm_f32x4_sub(a.v, b.v)}; }
  static WasmF32 mul(WasmF32 a, WasmF32 b) { return {wasm_f32x4_mul(a.v, b.v)}; }
  static WasmF32 fmadd(WasmF32 a, WasmF32 b, WasmF32 c) {
    return {wasm_f32x4_add(wasm_f32x4_mul(a.v, b.v), c.v)};
  }
  static WasmF32 nonneg(WasmF32 a) {
    return {wasm_v128_bitselect(wasm_f32x4_splat(0.f), a.v, wasm_f32x4_lt(a.v, wasm_f32x4_splat(0.f)))};
  }
  static WasmF32 if_positive(WasmF32 a, WasmF32 g) {
    return {wasm_v128_and(a.v, wasm_f32x4_gt(g.v, wasm_f32x4_splat(0.f)))};
  }
  static WasmF32 load_partial(const float* p, int64_t n, float fill) {
    float t[W] = {fill, fill, fill, fill};
    for (int64_t i = 0; i < n; ++i) t[i] = p[i];
    return {wasm_v128_load(t)};
  }
  // Lanes widened to double: (l0+l2) + (l1+l3), as NEON's.
  static double hsum(WasmF32 a) {
    const v128_t s = wasm_f64x2_add(wasm_f64x2_promote_low_f32x4(a.v),
                                    wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a.v, a.v, 2, 3, 2, 3)));
    return wasm_f64x2_extract_lane(s, 0) + wasm_f64x2_extract_lane(s, 1);
  }
};

struct WasmF64 {
  using type = double;
  using f64 = WasmF64;
  static constexpr int W = 2;
  v128_t v;
  static WasmF64 zero() { return {wasm_f64x2_splat(0.0)}; }
  static WasmF64 set1(double a) { return {wasm_f64x2_splat(a)}; }
  static WasmF64 load(const double* p) { return {wasm_v128_load(p)}; }
  static void store(double* p, WasmF64 a) { wasm_v128_store(p, a.v); }
  static void stream(double* p, WasmF64 a) { wasm_v128_store(p, a.v); }
  static void fence() {}
  static WasmF64 add(WasmF64 a, WasmF64 b) { return {wasm_f64x2_add(a.v, b.v)}; }
  static WasmF64 sub(WasmF64 a, WasmF64 b) { return {wasm_f64x2_sub(a.v, b.v)}; }
  static WasmF64 mul(WasmF64 a, WasmF64 b) { return {wasm_f64x2_mul(a.v, b.v)}; }
  static WasmF64 fmadd(WasmF64 a, WasmF64 b, WasmF64 c) {
    return {wasm_f64x2_add(wasm_f64x2_mul(a.v, b.v), c.v)};
  }
  static WasmF64 load_partial(const double* p, int64_t n, double fill) {
    double t[W] = {fill, fill};
    for (int64_t i = 0; i < n; ++i) t[i] = p[i];
    return {wasm_v128_load(t)};
  }
  static WasmF64 div(WasmF64 a, WasmF64 b) { return {wasm_f64x2_div(a.v, b.v)}; }
  static WasmF64 sqrt(WasmF64 a) { return {wasm_f64x2_sqrt(a.v)}; }
  // a < 0 ? 0 : a (NaN and -0 fail the test: kept).
  static WasmF64 nonneg(WasmF64 a) {
    return {wasm_v128_bitselect(wasm_f64x2_splat(0.0), a.v, wasm_f64x2_lt(a.v, wasm_f64x2_splat(0.0)))};
  }
  static WasmF64 if_positive(WasmF64 a, WasmF64 g) {
    return {wasm_v128_and(a.v, wasm_f64x2_gt(g.v, wasm_f64x2_splat(0.0)))};
  }
  static double hsum(WasmF64 a) { return wasm_f64x2_extract_lane(a.v, 0) + wasm_f64x2_extract_lane(a.v, 1); }
};

}  // namespace batchnorm::simd
