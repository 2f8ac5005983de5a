// Included first by every kernel header: the kernels are compiled once per
// ISA, each ISA's translation unit (<isa>.cc) defining BATCHNORM_ISA_NS before
// it includes batchnorm.h, so every symbol lives in a namespace of its own:
// code compiled with -mavx512f can never be merged into the scalar path by the
// linker. The tuning constants are the same for all (tuning.h).
#pragma once
#ifndef BATCHNORM_ISA_NS
#error "define BATCHNORM_ISA_NS (the ISA's namespace) before including the kernel headers"
#endif

#include <cmath>
#include <cstdint>

#include "../simd/scalar.h"
#include "args.h"
#include "tuning.h"

namespace batchnorm {
namespace BATCHNORM_ISA_NS {
using namespace tuning;
}  // namespace BATCHNORM_ISA_NS
}  // namespace batchnorm
