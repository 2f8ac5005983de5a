/**
 * batchnorm: Batch Normalization for Node.js with PyTorch's semantics, on
 * SIMD native kernels with a pure-JS fallback.
 */
export { BatchNorm1d, BatchNorm2d, BatchNorm3d } from './batchnorm.js';
export type {
  BackwardCallOptions,
  ForwardCallOptions,
  GradInput,
  BatchNormBase,
  BatchNormModuleOptions,
  CallOptions,
  Parameter,
  StateDict,
} from './batchnorm.js';
export { batchNorm, batchNormAsync, batchNormBackward, batchNormBackwardAsync } from './functional.js';
export type { Activation, BatchNormBackwardOptions, BatchNormGradients, BatchNormOptions, BatchNormResult } from './functional.js';
export { fromKeras } from './keras.js';
export type { KerasBatchNormConfig } from './keras.js';
export { readSafetensors, writeSafetensors } from './safetensors.js';
export type { Layout, Tensor } from './tensor.js';
export { backendInfo, capabilities, setNumThreads, getNumThreads } from './backend/loader.js';
export type { BackendInfo, FloatArray, Kernels } from './backend/kernels.js';
export { LayerNorm } from './layernorm.js';
export type { LayerNormModuleOptions } from './layernorm.js';
export { RMSNorm } from './rmsnorm.js';
export type { RMSNormModuleOptions } from './rmsnorm.js';
export { GroupNorm } from './groupnorm.js';
export type { GroupNormModuleOptions } from './groupnorm.js';
export { InstanceNorm1d, InstanceNorm2d, InstanceNorm3d } from './instancenorm.js';
export type { InstanceNormBase, InstanceNormModuleOptions } from './instancenorm.js';
export type { NormModule, NormCallOptions, Dtype } from './norm-module.js';
export {
  layerNorm,
  layerNormAsync,
  layerNormBackward,
  layerNormBackwardAsync,
  rmsNorm,
  rmsNormAsync,
  rmsNormBackward,
  rmsNormBackwardAsync,
  groupNorm,
  groupNormAsync,
  groupNormBackward,
  groupNormBackwardAsync,
  instanceNorm,
  instanceNormAsync,
  instanceNormBackward,
  instanceNormBackwardAsync,
} from './norm-functional.js';
export type {
  LayerNormOptions,
  RMSNormOptions,
  GroupNormOptions,
  InstanceNormOptions,
  NormResult,
  RMSNormResult,
  NormBackwardOptions,
  RMSNormBackwardOptions,
  InstanceNormBackwardOptions,
  NormGradients,
} from './norm-functional.js';
export type { NormKernels } from './backend/norm-kernels.js';
export { SyncBatchNorm } from './syncbatchnorm.js';
export type { SyncBatchNormOptions } from './syncbatchnorm.js';
export {
  batchNormStats,
  batchNormGatherStats,
  batchNormElemt,
  batchNormBackwardReduce,
  batchNormBackwardElemt,
  packStats,
  unpackStats,
  invstdOf,
  updateRunningStats,
} from './splitphase.js';
export type { BatchNormStats, BackwardSums, ElemtOptions } from './splitphase.js';
export { allReduceGradients, checkCollective, sumInRankOrder } from './collective/collective.js';
export type { Collective, GradParameter, AllReduceGradientsOptions } from './collective/collective.js';
export { WorkerCollective } from './collective/worker.js';
export type { WorkerGroup, WorkerGroupOptions } from './collective/worker.js';
export { MpiCollective, mpiAddonPath } from './collective/mpi.js';
export { foldBatchNorm } from './fold.js';
export type { FoldLayer, FoldOptions } from './fold.js';
export type { BackwardHook, ForwardHook, RemovableHandle } from './hooks.js';
export { monitor } from './monitor.js';
export type { BackwardRecord, ForwardRecord, Monitor } from './monitor.js';
