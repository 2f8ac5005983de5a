/**
 * batchnorm: Batch Normalization for Node.js with PyTorch's semantics, on
 * SIMD native kernels with a pure-JS fallback.
 */
export { backendInfo, capabilities, setNumThreads, getNumThreads } from './backend/loader.js';
export type { BackendInfo, FloatArray, Kernels } from './backend/kernels.js';
