/**
 * Level 1: TF.js' `FusedBatchNorm` kernel (what `tf.batchNorm` and
 * tf.layers' inference run) on the native forward-eval kernel.
 *
 * TF.js' semantics: `y = offset + (x − mean)·scale/√(variance + ε)`, every
 * parameter broadcast against x — a 1-D [C] against the last axis
 * (channels-last), a [1, C, 1, 1] against the channels of NCHW, a full-size
 * one element by element; scale and offset may be absent. (The stock cpu
 * kernel instead cycles each parameter's values along the flat index, which
 * is right for [C] on channels-last and full-size parameters and wrong for
 * [1, C, 1, 1] on NCHW, TF.js issue #1106.)
 */
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { kernels } from '../backend/loader.js';
import { asCpuBackend, dimsOnAxis, kernelEps, sizeOf, valuesOf, type CpuBackend } from './cpu.js';

const KERNEL = 'FusedBatchNorm';
const PARAMS = ['mean', 'variance', 'scale', 'offset'] as const;
type Param = (typeof PARAMS)[number];

/** A parameter's shape, padded with leading 1s to x's rank; null when it does not broadcast against x. */
function aligned(shape: readonly number[], xShape: readonly number[]): number[] | null {
  if (shape.length > xShape.length) {
    // Leading 1s beyond x's rank broadcast away (a [1, 1, C] against a 2-D x).
    const extra = shape.slice(0, shape.length - xShape.length);
    if (!extra.every((d) => d === 1)) return null;
    shape = shape.slice(shape.length - xShape.length);
  }
  const padded = [...new Array<number>(xShape.length - shape.length).fill(1), ...shape];
  return padded.every((d, i) => d === 1 || d === xShape[i]) ? padded : null;
}

/**
 * The one axis along which every parameter varies, if there is one (−1 when
 * all of them are single values): then the call is a per-channel batch norm.
 */
function channelAxis(shapes: number[][], xShape: readonly number[]): number | null {
  let axis = -1;
  for (const shape of shapes)
    for (let i = 0; i < shape.length; i++) {
      if (shape[i] === 1 || xShape[i] === 1) continue;
      if (axis !== -1 && axis !== i) return null;
      axis = i;
    }
  return axis;
}

/** A parameter broadcast to `length` values along `axis` (or to all of x's elements), reusing its array when it already is that. */
function expand(values: Float32Array, shape: number[], xShape: readonly number[], axis: number | null): Float32Array {
  if (axis !== null) {
    const c = xShape[axis];
    return values.length === c ? values : new Float32Array(c).fill(values[0]);
  }
  const size = sizeOf(xShape);
  if (values.length === size) return values;
  // General broadcasting: walk x's index and the parameter's strides (0 where it is 1).
  const strides = new Array<number>(shape.length);
  for (let i = shape.length - 1, st = 1; i >= 0; st *= shape[i], i--) strides[i] = shape[i] === 1 ? 0 : st;
  const out = new Float32Array(size),
    index = new Array<number>(xShape.length).fill(0);
  let at = 0;
  for (let k = 0; k < size; k++) {
    out[k] = values[at];
    for (let i = xShape.length - 1; i >= 0; i--) {
      at += strides[i];
      if (++index[i] < xShape[i]) break;
      at -= strides[i] * xShape[i];
      index[i] = 0;
    }
  }
  return out;
}

/**
 * The native FusedBatchNorm for a cpu-like backend; `stock` (the kernel it
 * replaces) still runs what the native one cannot: non-float32 tensors.
 */
export function fusedBatchNormKernel(stock: KernelFunc | null): KernelFunc {
  return (args) => {
    const { inputs, attrs } = args as { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap };
    const x = inputs.x!;
    const given = PARAMS.filter((p) => inputs[p] != null);
    if (stock && [x, ...given.map((p) => inputs[p]!)].some((t) => t.dtype !== 'float32')) return stock(args);
    const backend = asCpuBackend(args.backend, KERNEL);
    const eps = kernelEps((attrs?.varianceEpsilon as number | undefined) ?? 1e-3, KERNEL);
    return fusedBatchNorm(backend, x, inputs as Partial<Record<Param, TensorInfo>>, eps);
  };
}

function fusedBatchNorm(backend: CpuBackend, x: TensorInfo, params: Partial<Record<Param, TensorInfo>>, eps: number): TensorInfo {
  const xValues = valuesOf(backend, x, 'x', KERNEL);
  const y = new Float32Array(xValues.length);
  if (xValues.length === 0) return backend.makeTensorInfo([...x.shape], 'float32', y);
  const given = PARAMS.filter((p) => params[p] != null);
  const shapes = {} as Record<Param, number[] | null>;
  for (const p of given) shapes[p] = aligned(params[p]!.shape, x.shape);
  for (const p of given) {
    // The stock kernel's reading of a parameter that does not broadcast but has x's size: element by element.
    if (shapes[p] === null && sizeOf(params[p]!.shape) === xValues.length) shapes[p] = [...x.shape];
    if (shapes[p] === null)
      throw new RangeError(
        `${KERNEL}: expected ${p} of shape [${x.shape[x.shape.length - 1]}] (the last axis of x), x's shape [${x.shape.join(', ')}], or a shape that broadcasts against it, but received shape [${params[p]!.shape.join(', ')}]`,
      );
  }
  const axis = channelAxis(
    given.map((p) => shapes[p]!),
    x.shape,
  );
  const values = (p: Param): Float32Array | null =>
    params[p] ? expand(valuesOf(backend, params[p]!, p, KERNEL), shapes[p]!, x.shape, axis === -1 ? x.shape.length - 1 : axis) : null;
  const [mean, variance, scale, offset] = PARAMS.map(values);
  if (axis === null) {
    // Parameters that vary along more than one axis: each element is its own channel.
    kernels.forwardEval(xValues, y, scale, offset, mean!, variance!, 1, xValues.length, 1, false, eps);
  } else {
    const { n, c, s, channelsLast } = dimsOnAxis(x.shape, axis === -1 ? x.shape.length - 1 : axis);
    kernels.forwardEval(xValues, y, scale, offset, mean!, variance!, n, c, s, channelsLast, eps);
  }
  return backend.makeTensorInfo([...x.shape], 'float32', y);
}

/** The kernel config for one backend. */
export function fusedBatchNormConfig(backendName: string, stock: KernelFunc | null): KernelConfig {
  return { kernelName: KERNEL, backendName, kernelFunc: fusedBatchNormKernel(stock) };
}
