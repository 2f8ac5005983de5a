/**
 * Level 2: the two kernels of a training step, registered in TF.js' kernel
 * registry under this package's names (TF.js has none that fit: in training
 * tf.layers computes the moments with separate kernels, and the FusedBatchNorm
 * gradient treats mean and variance as inputs, not as functions of x).
 *
 * - `BatchNormTraining` (x, scale, offset, movingMean, movingVariance; attrs
 *   axis, epsilon, momentum) → [y, mean, invstd, newMovingMean,
 *   newMovingVariance]: normalizes with the batch statistics in one native
 *   call that also computes the new moving statistics with Keras' rule,
 *   `moving ← momentum·moving + (1 − momentum)·batch` and the biased batch
 *   variance, from float64-quality statistics.
 * - `BatchNormTrainingGrad` (dy, x, scale, mean, invstd; attr axis) →
 *   [dx, dscale, doffset], in one fused pass.
 *
 * `axis` is the channel axis of x (any; the last is channels-last); the
 * parameters are 1-D of x.shape[axis] values.
 */
import { getKernel, type KernelConfig, type NamedAttrMap, type NamedTensorInfoMap, type TensorInfo } from '@tensorflow/tfjs-core';
import { kernels } from '../backend/loader.js';
import { describe } from '../backend/validate.js';
import { asCpuBackend, dimsOnAxis, kernelEps, valuesOf, type CpuBackend } from './cpu.js';

export const BatchNormTraining = 'BatchNormTraining';
export const BatchNormTrainingGrad = 'BatchNormTrainingGrad';

/** Whether these kernels are registered on the named backend (the layer asks before using them). */
export function installedOn(backendName: string): boolean {
  return getKernel(BatchNormTraining, backendName) != null;
}

/** The channel axis of an attrs map, as a non-negative index into x's shape. */
export function channelAxis(axis: unknown, rank: number, kernel: string): number {
  // Keras writes a one-element list ([1]) in saved configs; TF.js keeps it as it came.
  const a = Array.isArray(axis) && axis.length === 1 ? (axis[0] as unknown) : axis;
  if (typeof a !== 'number' || !Number.isInteger(a) || a < -rank || a >= rank)
    throw new RangeError(
      `${kernel}: expected axis to be an integer in [${-rank}, ${rank - 1}] for an input of rank ${rank} but received ${Array.isArray(axis) ? JSON.stringify(axis) : describe(axis)}`,
    );
  return a < 0 ? a + rank : a;
}

function parameter(backend: CpuBackend, inputs: NamedTensorInfoMap, name: string, c: number, kernel: string): Float32Array {
  const t = inputs[name];
  if (t == null) throw new TypeError(`${kernel}: expected a float32 tensor of shape [${c}] for ${name} but received none`);
  if (t.shape.length !== 1 || t.shape[0] !== c)
    throw new RangeError(`${kernel}: expected ${name} of shape [${c}] (x's size on the channel axis) but received shape [${t.shape.join(', ')}]`);
  return valuesOf(backend, t, name, kernel);
}

function trainingForward(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo[] {
  const backend = asCpuBackend(args.backend, BatchNormTraining);
  const { inputs, attrs = {} } = args;
  const x = inputs.x!;
  const xValues = valuesOf(backend, x, 'x', BatchNormTraining);
  const axis = channelAxis(attrs.axis, x.shape.length, BatchNormTraining);
  const eps = kernelEps(attrs.epsilon as number, BatchNormTraining);
  const momentum = attrs.momentum as number;
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1))
    throw new RangeError(`${BatchNormTraining}: expected momentum (Keras': the weight of the old moving value) in [0, 1] but received ${describe(momentum)}`);
  const { n, c, s, channelsLast } = dimsOnAxis(x.shape, axis);
  const [scale, offset, movingMean, movingVariance] = ['scale', 'offset', 'movingMean', 'movingVariance'].map((p) =>
    parameter(backend, inputs, p, c, BatchNormTraining),
  );
  const y = new Float32Array(xValues.length);
  const mean = new Float32Array(c),
    invstd = new Float32Array(c);
  const newMean = movingMean.slice(),
    newVariance = movingVariance.slice();
  // An empty batch: nothing to normalize; the moving statistics stay as they are.
  if (xValues.length > 0)
    kernels.forwardTraining(xValues, y, scale, offset, newMean, newVariance, mean, invstd, n, c, s, channelsLast, eps, 1 - momentum, false);
  const out = (shape: number[], v: Float32Array) => backend.makeTensorInfo(shape, 'float32', v);
  return [out([...x.shape], y), out([c], mean), out([c], invstd), out([c], newMean), out([c], newVariance)];
}

function trainingBackward(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo[] {
  const backend = asCpuBackend(args.backend, BatchNormTrainingGrad);
  const { inputs, attrs = {} } = args;
  const x = inputs.x!,
    dy = inputs.dy!;
  if (dy.shape.length !== x.shape.length || dy.shape.some((d, i) => d !== x.shape[i]))
    throw new RangeError(`${BatchNormTrainingGrad}: expected dy of x's shape [${x.shape.join(', ')}] but received shape [${dy.shape.join(', ')}]`);
  const xValues = valuesOf(backend, x, 'x', BatchNormTrainingGrad),
    dyValues = valuesOf(backend, dy, 'dy', BatchNormTrainingGrad);
  const axis = channelAxis(attrs.axis, x.shape.length, BatchNormTrainingGrad);
  const { n, c, s, channelsLast } = dimsOnAxis(x.shape, axis);
  const [scale, mean, invstd] = ['scale', 'mean', 'invstd'].map((p) => parameter(backend, inputs, p, c, BatchNormTrainingGrad));
  const dx = new Float32Array(xValues.length),
    dscale = new Float32Array(c),
    doffset = new Float32Array(c);
  if (xValues.length > 0) kernels.backward(xValues, dyValues, dx, scale, mean, invstd, dscale, doffset, n, c, s, channelsLast, true);
  return [backend.makeTensorInfo([...x.shape], 'float32', dx), backend.makeTensorInfo([c], 'float32', dscale), backend.makeTensorInfo([c], 'float32', doffset)];
}

/** The two kernel configs for one backend. */
export function trainingKernelConfigs(backendName: string): KernelConfig[] {
  return [
    { kernelName: BatchNormTraining, backendName, kernelFunc: trainingForward as KernelConfig['kernelFunc'] },
    { kernelName: BatchNormTrainingGrad, backendName, kernelFunc: trainingBackward as KernelConfig['kernelFunc'] },
  ];
}
