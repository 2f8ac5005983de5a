// The avx512 kernels: the templates of batchnorm.h over Avx512F32 / Avx512F64 (simd/avx512.h).
// Only this file is compiled with the ISA's flags; the binding never is.
#define BATCHNORM_ISA_NS avx512
#include "../simd/avx512.h"
#include "batchnorm.h"
#include "split_phase.h"

namespace batchnorm {
const KernelTable* avx512_kernels() {
  static const KernelTable table = [] {
    KernelTable t = avx512::make_table<simd::Avx512F32, simd::Avx512F64>("avx512");
    t.split = avx512::split_table<simd::Avx512F32, simd::Avx512F64>();
    return t;
  }();
  return &table;
}
}  // namespace batchnorm
