// How the passes touch memory: prefetch hints, streaming (non-temporal)
// stores, and the tensor sizes that turn them on.
#pragma once
#include "isa_ns.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

// A hint to bring the line at p into the caches (no fault, whatever p is).
inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

// `arrays`: how many tensors of this shape a pass reads and writes.
template <class T>
bool bytes_at_least(const Shape& sh, int64_t arrays, int64_t bytes) {
  return arrays * sh.numel() * int64_t(sizeof(T)) >= bytes;
}
// The store policy, a build switch for the A/B of bench/ab.mjs --consumer
// only (CPPFLAGS=-DBATCHNORM_STORES=1 or 2 when building the addon): 0 (the
// default, every shipped build) chooses by size, as below; 1 writes with plain
// stores everywhere, 2 streams wherever a pass can. Stores never change a
// value: the outputs are the same bits under every policy.
#ifndef BATCHNORM_STORES
#define BATCHNORM_STORES 0
#endif
constexpr bool stores_stream(bool by_size) { return BATCHNORM_STORES == 0 ? by_size : BATCHNORM_STORES == 2; }

// Whether a pass over whole planes or rows writes with streaming stores (kStreamBytes).
template <class T>
bool streaming(const Shape& sh, int64_t arrays) {
  return stores_stream(bytes_at_least<T>(sh, arrays, kStreamBytes));
}

// Stores of vectors of V. NT: they bypass the caches (outputs larger than
// about half the L3 would only evict the input); the first values go through
// plain stores until the output is aligned for streaming (peel), and a
// streaming pass ends with V::fence().
template <class V>
struct Stores {
  using T = typename V::type;
  static constexpr int W = V::W;

  template <bool NT>
  static void put(T* p, V v) {
    if (NT)
      V::stream(p, v);
    else
      V::store(p, v);
  }
  // How many values of y to write one by one before y + them is aligned.
  template <bool NT>
  static int64_t peel(const T* y, int64_t len) {
    if (!NT) return 0;
    const int64_t mis = int64_t(reinterpret_cast<uintptr_t>(y) % (W * sizeof(T))) / int64_t(sizeof(T));
    const int64_t p = mis ? W - mis : 0;
    return p < len ? p : len;
  }
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
