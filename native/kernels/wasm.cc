// The WebAssembly kernels: the templates of batchnorm.h over WasmF32 / WasmF64
// (simd/wasm.h), built by scripts/build-wasm.sh into wasm/batchnorm.wasm.
#define BATCHNORM_ISA_NS wasm
#include "../simd/wasm.h"
#include "batchnorm.h"

namespace batchnorm {
const KernelTable* wasm_kernels() {
  static const KernelTable table = wasm::make_table<simd::WasmF32, simd::WasmF64>("simd128");
  return &table;
}
}  // namespace batchnorm
