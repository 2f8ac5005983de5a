/**
 * Settings as Keras and TensorFlow.js write them, turned into this package's
 * (PyTorch's) options: `new BatchNorm2d(64, fromKeras({ momentum: 0.99 }))`.
 */
import { centerScaleError, checkBoolean, checkEps, checkMomentum, checkOptions, rangeError } from './check.js';
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

const KERAS_OPTIONS = ['momentum', 'epsilon', 'center', 'scale', 'axis'] as const;

/**
 * 1 − m, rounded to m's decimal places: the momentum a user wrote as 0.99
 * becomes exactly 0.01, not 0.010000000000000009 (binary rounding of 1 − 0.99).
 */
export function complement(m: number): number {
  const [mantissa, exp] = m.toExponential().split('e');
  const decimals = Math.min(100, Math.max(0, (mantissa.split('.')[1]?.length ?? 0) - Number(exp)));
  return Number((1 - m).toFixed(decimals));
}

/**
 * Options reproducing a Keras/TF.js BatchNormalization layer: momentum 1 − m,
 * its epsilon, channels-last by default, and the biased batch variance in the
 * moving variance (as Keras keeps it).
 */
export function fromKeras(config: KerasBatchNormConfig = {}): BatchNormModuleOptions {
  checkOptions(config, 'fromKeras', KERAS_OPTIONS);
  const { momentum = 0.99, epsilon = 1e-3, center = true, scale = true, axis = -1 } = config;
  checkMomentum(momentum, false, 'Keras momentum');
  checkEps(epsilon, 'epsilon');
  checkBoolean(center, 'center');
  checkBoolean(scale, 'scale');
  if (center !== scale) throw centerScaleError(center, scale);
  if (axis !== -1 && axis !== 1) throw rangeError('axis', '-1 (channels-last) or 1 (channels-first)', axis);
  return {
    momentum: complement(momentum),
    eps: epsilon,
    affine: center,
    layout: axis === -1 ? 'channelsLast' : 'channelsFirst',
    unbiasedRunningVar: false,
  };
}
