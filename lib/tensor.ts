/**
 * Tensors as this package takes them — `{ data, shape }` with row-major data —
 * and the small pure functions that map a shape and layout onto the kernels'
 * (n, c, s) view. (Their checks are in check.ts.)
 */
import type { FloatArray } from './backend/kernels.js';
import { isFloat64 } from './check.js';

/** A dense row-major tensor: `data.length` equals the product of `shape`. */
export interface Tensor<A extends FloatArray = FloatArray> {
  data: A;
  shape: readonly number[];
}

/**
 * Memory order of the input. Channels-first is PyTorch's (NC, NCL, NCHW,
 * NCDHW); channels-last is TensorFlow.js' and Keras' default (NLC, NHWC,
 * NDHWC). `'channelsFirst'`/`'channelsLast'` (TF.js' names) fit any rank.
 */
export type Layout = 'NC' | 'NCL' | 'NLC' | 'NCHW' | 'NHWC' | 'NCDHW' | 'NDHWC' | 'channelsFirst' | 'channelsLast';

export const LAYOUTS: readonly Layout[] = ['NC', 'NCL', 'NLC', 'NCHW', 'NHWC', 'NCDHW', 'NDHWC', 'channelsFirst', 'channelsLast'];

export function isChannelsLast(layout: Layout): boolean {
  return layout === 'NLC' || layout === 'NHWC' || layout === 'NDHWC' || layout === 'channelsLast';
}

/** The kernels' view of a tensor. */
export interface Dims {
  n: number;
  c: number;
  s: number;
  channelsLast: boolean;
}

/** (n, c, s) of a checked shape of rank 2 or more; c is the last dimension when channels-last. */
export function dimsOf(shape: readonly number[], channelsLast: boolean): Dims {
  const n = shape[0];
  const c = channelsLast ? shape[shape.length - 1] : shape[1];
  let s = 1;
  for (let i = channelsLast ? 1 : 2; i < shape.length - (channelsLast ? 1 : 0); i++) s *= shape[i];
  return { n, c, s, channelsLast };
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * An output array of `length` elements of x's type, without V8's zero fill:
 * the kernels write every element, so the fill would be a wasted pass.
 */
export function allocLike(x: FloatArray, length: number): FloatArray {
  if (isFloat64(x)) {
    const b = Buffer.allocUnsafeSlow(length * 8);
    return new Float64Array(b.buffer, b.byteOffset, length);
  }
  const b = Buffer.allocUnsafeSlow(length * 4);
  return new Float32Array(b.buffer, b.byteOffset, length);
}

/**
 * A small zeroed array of x's type (per-channel values): for a few thousand
 * values the fill costs less than allocLike's extra Buffer object.
 */
export function zerosLike(x: FloatArray, length: number): FloatArray {
  return isFloat64(x) ? new Float64Array(length) : new Float32Array(length);
}
