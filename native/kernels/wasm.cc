// The WebAssembly kernels: the templates of batchnorm.h over WasmF32 / WasmF64
// (simd/wasm.h), built by scripts/build-wasm.sh into wasm/batchnorm.wasm.
#define BATCHNORM_ISA_NS wasm
#include "../simd/wasm.h"
#include "batchnorm.h"
#include "groupnorm.h"

namespace batchnorm {
const KernelTable* wasm_kernels() {
  static const KernelTable table = wasm::make_table<simd::WasmF32, simd::WasmF64>("simd128");
  return &table;
}
const NormKernelTable* wasm_norm_kernels() {
  static const NormKernelTable table = wasm::make_norm_table<simd::WasmF32, simd::WasmF64>("simd128");
  return &table;
}
}  // namespace batchnorm
