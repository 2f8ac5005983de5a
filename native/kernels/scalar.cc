// The portable kernels: the templates of batchnorm.h over one-lane vectors.
#define BATCHNORM_ISA_NS scalar
#include "batchnorm.h"

namespace batchnorm {
const KernelTable* scalar_kernels() {
  static const KernelTable table =
      scalar::make_table<simd::ScalarVec<float>, simd::ScalarVec<double>>("scalar");
  return &table;
}
}  // namespace batchnorm
