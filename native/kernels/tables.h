// The kernel table of each ISA, defined in native/kernels/<isa>.cc; which of
// them exist is decided by the build (BATCHNORM_HAVE_*).
#pragma once
#include "args.h"
#include "norm_args.h"

namespace batchnorm {
const KernelTable* scalar_kernels();
const NormKernelTable* scalar_norm_kernels();
#if defined(BATCHNORM_HAVE_AVX2)
const KernelTable* avx2_kernels();
const NormKernelTable* avx2_norm_kernels();
#endif
#if defined(BATCHNORM_HAVE_AVX512)
const KernelTable* avx512_kernels();
const NormKernelTable* avx512_norm_kernels();
#endif
#if defined(BATCHNORM_HAVE_NEON)
const KernelTable* neon_kernels();
const NormKernelTable* neon_norm_kernels();
#endif
}  // namespace batchnorm
