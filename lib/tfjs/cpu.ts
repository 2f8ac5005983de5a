/**
 * The TF.js `cpu` backend's own arrays: a kernel registered on it receives the
 * backend object, whose `data` store holds each tensor's values as a typed
 * array. Reading them there (and handing a new Float32Array to
 * `makeTensorInfo`, which stores it as it is) runs the native kernels on
 * TF.js' memory without a copy either way.
 */
import type { DataType, TensorInfo } from '@tensorflow/tfjs-core';
import { describe } from '../backend/validate.js';

/** What this package uses of tfjs-backend-cpu's `MathBackendCPU`. */
export interface CpuBackend {
  data: { get(dataId: object): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: DataType, values?: Float32Array): TensorInfo;
}

/** The backend of a kernel call, when it stores its values as the cpu backend does. */
export function asCpuBackend(backend: unknown, kernel: string): CpuBackend {
  const b = backend as Partial<CpuBackend> | null;
  if (typeof b?.data?.get !== 'function' || typeof b.makeTensorInfo !== 'function')
    throw new TypeError(
      `${kernel}: expected TF.js' cpu backend (a MathBackendCPU) but received ${describe(backend)}; these kernels are registered on 'cpu' and 'cpu-bn' only`,
    );
  return b as CpuBackend;
}

/** A float32 tensor's values, as the backend holds them (not a copy). */
export function valuesOf(backend: CpuBackend, t: TensorInfo, name: string, kernel: string): Float32Array {
  if (t.dtype !== 'float32') throw new TypeError(`${kernel}: expected a float32 tensor for ${name} but received a ${t.dtype} tensor`);
  const values = backend.data.get(t.dataId)?.values;
  if (!(values instanceof Float32Array))
    throw new TypeError(`${kernel}: expected the cpu backend to hold ${name} as a Float32Array but it holds ${describe(values)}`);
  return values;
}

/** The number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The kernels' (n, c, s) view of x with its channels on `axis`: the last axis
 * is channels-last (rows of c values, as TF.js' NHWC), any other axis
 * channels-first (planes of s values, as NCHW).
 */
export function dimsOnAxis(shape: readonly number[], axis: number): { n: number; c: number; s: number; channelsLast: boolean } {
  const c = shape[axis];
  const before = sizeOf(shape.slice(0, axis)),
    after = sizeOf(shape.slice(axis + 1));
  if (axis === shape.length - 1) return { n: shape.length > 1 ? shape[0] : 1, c, s: shape.length > 1 ? before / shape[0] : 1, channelsLast: true };
  return { n: before, c, s: after, channelsLast: false };
}

/**
 * TF.js accepts an epsilon of 0; the kernels require eps > 0 (PyTorch's
 * check). The smallest positive double changes no normal variance when added
 * to it, and a zero variance still gives 1/√0 = ∞, as 0 would.
 */
export function kernelEps(epsilon: number, kernel: string): number {
  if (typeof epsilon !== 'number' || !(epsilon >= 0) || epsilon === Infinity)
    throw new RangeError(`${kernel}: expected the epsilon to be a finite number ≥ 0 but received ${describe(epsilon)}`);
  return epsilon > 0 ? epsilon : Number.MIN_VALUE;
}
