// Per-call scratch arrays.
#pragma once
#include <cstddef>

#include "isa_ns.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {

// Zeroed scratch without library templates (no std::vector in the kernels):
// up to 512 bytes on the stack, more from the heap, so that a small tensor's
// call (a few channels) does not pay for malloc and free.
template <class U>
struct Scratch {
  static constexpr int64_t kLocal = 512 / int64_t(sizeof(U)) > 0 ? 512 / int64_t(sizeof(U)) : 1;
  explicit Scratch(int64_t n) : p(n > kLocal ? new U[std::size_t(n)]() : local) {
    if (p == local)
      for (int64_t i = 0; i < n; ++i) local[i] = U();
  }
  ~Scratch() {
    if (p != local) delete[] p;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  U& operator[](int64_t i) { return p[i]; }
  U local[kLocal];
  U* p;
};

}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
