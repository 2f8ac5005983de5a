/**
 * Settings as Keras and TensorFlow.js write them, turned into this package's
 * (PyTorch's) options: `new BatchNorm2d(64, fromKeras({ momentum: 0.99 }))`.
 */
import { describe } from './backend/validate.js';
import type { BatchNormModuleOptions } from './batchnorm.js';

export interface KerasBatchNormConfig {
  /** Keras' momentum: the weight of the OLD running value. Default 0.99 (PyTorch momentum 0.01). */
  momentum?: number;
  /** Default 1e-3, Keras' and TF.js' default. */
  epsilon?: number;
  /** Learn β. Default true. */
  center?: boolean;
  /** Learn γ. Default true. */
  scale?: boolean;
  /** The channel axis: -1 (channels-last, the default) or 1 (channels-first). */
  axis?: -1 | 1;
}

/**
 * Options reproducing a Keras/TF.js BatchNormalization layer: momentum 1 − m,
 * its epsilon, channels-last by default, and the biased batch variance in the
 * moving variance (as Keras keeps it).
 */
export function fromKeras(config: KerasBatchNormConfig = {}): BatchNormModuleOptions {
  const { momentum = 0.99, epsilon = 1e-3, center = true, scale = true, axis = -1 } = config;
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1))
    throw new RangeError(`Expected Keras momentum to be a number in [0, 1] but received ${describe(momentum)}`);
  if (center !== scale)
    throw new RangeError(`Expected center and scale to be equal (this package learns γ and β together, as PyTorch's affine) but received center ${center} and scale ${scale}`);
  if (axis !== -1 && axis !== 1) throw new RangeError(`Expected axis -1 (channels-last) or 1 (channels-first) but received ${describe(axis)}`);
  return {
    momentum: 1 - momentum,
    eps: epsilon,
    affine: center,
    layout: axis === -1 ? 'channelsLast' : 'channelsFirst',
    unbiasedRunningVar: false,
  };
}
