/**
 * The native kernels: the addon's functions, unwrapped. The binding validates
 * every argument itself (native/addon.cc), so nothing is checked twice here.
 */
import type { Kernels } from './kernels.js';

/** What build/Release/batchnorm.node exports. */
export interface Addon extends Kernels {
  info(): { isa: string; threads: number; capabilities: string[] };
  setNumThreads(n: number): void;
  getNumThreads(): number;
}

export function nativeKernels(addon: Addon): Kernels {
  return {
    forwardTraining: addon.forwardTraining,
    forwardEval: addon.forwardEval,
    backward: addon.backward,
    forwardTrainingAsync: addon.forwardTrainingAsync,
    forwardEvalAsync: addon.forwardEvalAsync,
    backwardAsync: addon.backwardAsync,
    groupNormForward: addon.groupNormForward,
    groupNormBackward: addon.groupNormBackward,
    groupNormForwardAsync: addon.groupNormForwardAsync,
    groupNormBackwardAsync: addon.groupNormBackwardAsync,
  };
}
