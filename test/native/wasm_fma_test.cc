// The WebAssembly build's std::fma (native/wasm/include/cmath: WebAssembly has
// no scalar fused multiply-add) against the C library's, bit for bit, on the
// host: random triples, and the hard ones: products cancelled by z (the
// result is the product's rounding error), z a few ulps off the cancelling
// value, z far below the product, and products that are exact ties of the
// final rounding with z just tipping them (the cases two roundings get
// wrong). Float too. Outside the range the emulation states (products beyond
// about 2^+-960), only that it returns. Exit status 1 on any difference.
// Built and run by test/native/wasm-fma.sh.
#include <stdint.h>
#include <stdio.h>

#include "../../native/wasm/include/cmath"

namespace {

uint64_t state = 0x9e3779b97f4a7c15ull;
uint64_t next() {  // xorshift64*
  state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
  return state * 0x2545f4914f6cdd1dull;
}
// A double with a random mantissa and sign, exponent in [lo, hi].
double rnd(int lo, int hi) {
  const uint64_t e = uint64_t(lo + int(next() % uint64_t(hi - lo + 1)) + 1023);
  return __builtin_bit_cast(double, (next() & 0x800fffffffffffffull) | (e << 52));
}
// An odd `bits`-bit integer times 2^e, random sign: products of two such
// values with bits = 27 (float: 13) are exact ties of double (float).
double odd(int bits, int e) {
  const uint64_t m = (uint64_t(1) << (bits - 1)) | (next() & ((uint64_t(1) << (bits - 1)) - 1)) | 1;
  return __builtin_ldexp(double(m), e) * ((next() & 1) ? 1 : -1);
}
double nudge(double a, int ulps) {
  return __builtin_bit_cast(double, __builtin_bit_cast(uint64_t, a) + int64_t(ulps));
}

template <class T>
bool same(T a, T b) {
  return (a != a && b != b) || (a == b && __builtin_signbit(a) == __builtin_signbit(b));
}

}  // namespace

int main() {
  long bad = 0, checked = 0;
  for (int i = 0; i < 4000000; ++i) {
    const int mode = i % 5;
    const double a = mode == 4 ? odd(27, -int(next() % 40)) : rnd(-300, 300),
                 b = mode == 4 ? odd(27, int(next() % 40)) : rnd(-300, 300), p = a * b;
    double c;
    if (mode == 0)
      c = rnd(-620, 620);
    else if (mode == 1)
      c = -p;
    else if (mode == 2)
      c = nudge(-p, int(next() % 9) - 4);
    else if (mode == 3)
      c = p * __builtin_ldexp(1.0, -int(next() % 60) - 1) * ((next() & 1) ? 1 : -1);
    else
      c = p * __builtin_ldexp(1.0, -60 - int(next() % 200)) * ((next() & 1) ? 1 : -1);
    const double got = std::fma(a, b, c), want = __builtin_fma(a, b, c);
    ++checked;
    if (!same(got, want) && bad++ < 10) printf("double fma(%a, %a, %a): %a, want %a\n", a, b, c, got, want);

    const float fa = float(mode == 4 ? odd(13, -int(next() % 20)) : rnd(-60, 60)),
                fb = float(mode == 4 ? odd(13, int(next() % 20)) : rnd(-60, 60));
    const float fp = fa * fb;
    float fc;
    if (mode == 0)
      fc = float(rnd(-120, 120));
    else if (mode == 1)
      fc = -fp;
    else if (mode == 2)
      fc = __builtin_bit_cast(float, __builtin_bit_cast(uint32_t, -fp) + int32_t(next() % 9) - 4);
    else if (mode == 3)
      fc = float(double(fp) * __builtin_ldexp(1.0, -int(next() % 30) - 1));
    else
      fc = float(double(fa) * double(fb) * __builtin_ldexp(1.0, -30 - int(next() % 60)) *
                 ((next() & 1) ? 1 : -1));
    const float fgot = std::fma(fa, fb, fc), fwant = __builtin_fmaf(fa, fb, fc);
    ++checked;
    if (!same(fgot, fwant) && bad++ < 10)
      printf("float fma(%a, %a, %a): %a, want %a\n", fa, fb, fc, fgot, fwant);
  }
  // Edges: zeros, infinities, NaN (the emulation's plain path) must agree too.
  const double edge[] = {0.0,
                         -0.0,
                         1.0,
                         -1.5,
                         __builtin_inf(),
                         -__builtin_inf(),
                         __builtin_nan(""),
                         0x1p-1074,
                         0x1.fffffffffffffp1023};
  for (double a : edge)
    for (double b : edge)
      for (double c : edge) {
        ++checked;
        const double got = std::fma(a, b, c), want = __builtin_fma(a, b, c);
        const bool exact_range =
            !(__builtin_fabs(a) > 0x1p900 || __builtin_fabs(b) > 0x1p900 ||
              (a != 0 && __builtin_fabs(a) < 0x1p-900) || (b != 0 && __builtin_fabs(b) < 0x1p-900));
        if (exact_range && !same(got, want) && bad++ < 20)
          printf("edge fma(%a, %a, %a): %a, want %a\n", a, b, c, got, want);
      }
  // Beyond the stated range: it returns (no trap, no hang).
  double sink = 0;
  for (int i = 0; i < 100000; ++i)
    sink += std::fma(rnd(-1022, 1023), rnd(-1022, 1023), rnd(-1022, 1023)) != 0;
  printf("%s: %ld of %ld fma results differ from the C library's (%g)\n", bad ? "FAIL" : "ok", bad, checked,
         sink > 0 ? 1.0 : 0.0);
  return bad ? 1 : 0;
}
