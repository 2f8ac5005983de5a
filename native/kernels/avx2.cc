// The avx2 kernels: the templates of batchnorm.h over Avx2F32 / Avx2F64 (simd/avx2.h).
// Only this file is compiled with the ISA's flags; the binding never is.
#define BATCHNORM_ISA_NS avx2
#include "../simd/avx2.h"
#include "batchnorm.h"
#include "split_phase.h"

namespace batchnorm {
const KernelTable* avx2_kernels() {
  static const KernelTable table = [] {
    KernelTable t = avx2::make_table<simd::Avx2F32, simd::Avx2F64>("avx2");
    t.split = avx2::split_table<simd::Avx2F32, simd::Avx2F64>();
    return t;
  }();
  return &table;
}
}  // namespace batchnorm
