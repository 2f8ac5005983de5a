// The portable kernels: the templates of batchnorm.h over one-lane vectors.
#define BATCHNORM_ISA_NS scalar
#include "batchnorm.h"
#include "split_phase.h"

namespace batchnorm {
const KernelTable* scalar_kernels() {
  static const KernelTable table = [] {
    KernelTable t = scalar::make_table<simd::ScalarVec<float>, simd::ScalarVec<double>>("scalar");
    t.split = scalar::split_table<simd::ScalarVec<float>, simd::ScalarVec<double>>();
    return t;
  }();
  return &table;
}
}  // namespace batchnorm
