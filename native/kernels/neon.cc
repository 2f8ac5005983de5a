// The neon kernels: the templates of batchnorm.h over NeonF32 / NeonF64 (simd/neon.h).
// Only this file is compiled with the ISA's flags; the binding never is.
#define BATCHNORM_ISA_NS neon
#include "../simd/neon.h"
#include "batchnorm.h"
#include "split_phase.h"

namespace batchnorm {
const KernelTable* neon_kernels() {
  static const KernelTable table = [] {
    KernelTable t = neon::make_table<simd::NeonF32, simd::NeonF64>("neon");
    t.split = neon::split_table<simd::NeonF32, simd::NeonF64>();
    return t;
  }();
  return &table;
}
}  // namespace batchnorm
