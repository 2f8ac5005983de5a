// CPU feature detection and the choice of one kernel table, made once.
#pragma once
#include <string>
#include <vector>

#include "kernels/args.h"
#include "kernels/norm_args.h"

namespace batchnorm {

// The ISAs this build has kernels for and this CPU (and OS) can run, best last.
const std::vector<std::string>& capabilities();

// The kernel table in use: BATCHNORM_ISA if set (an error if unavailable),
// else the best of capabilities(). Chosen on first call, then fixed.
// Returns nullptr and sets *error when BATCHNORM_ISA names an ISA that cannot run.
const KernelTable* kernels(std::string* error);

// The norm kernels (LayerNorm, RMSNorm, GroupNorm) of the same ISA as kernels();
// nullptr exactly when kernels() is.
const NormKernelTable* norm_kernels();

}  // namespace batchnorm
