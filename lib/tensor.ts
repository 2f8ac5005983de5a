/**
 * Tensors as this package takes them — `{ data, shape }` with row-major data —
 * and the small pure functions that map a shape and layout onto the kernels'
 * (n, c, s) view.
 */
import type { FloatArray } from './backend/kernels.js';
import { describe, isDetached } from './backend/validate.js';

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

const CHANNELS_LAST = new Set<string>(['NLC', 'NHWC', 'NDHWC', 'channelsLast']);
const LAYOUTS = new Set<string>(['NC', 'NCL', 'NLC', 'NCHW', 'NHWC', 'NCDHW', 'NDHWC', 'channelsFirst', 'channelsLast']);

export function isChannelsLast(layout: Layout): boolean {
  return CHANNELS_LAST.has(layout);
}

export function checkLayout(layout: unknown, name = 'layout'): Layout {
  if (typeof layout !== 'string' || !LAYOUTS.has(layout))
    throw new RangeError(`Expected ${name} to be one of ${[...LAYOUTS].join(', ')} but received ${typeof layout === 'string' ? JSON.stringify(layout) : describe(layout)}`);
  return layout as Layout;
}

/** The kernels' view of a tensor. */
export interface Dims {
  n: number;
  c: number;
  s: number;
  channelsLast: boolean;
}

/**
 * Checks a tensor argument: a Float32Array/Float64Array, a shape of
 * non-negative integers whose product is its length. A dimension may be 0 (an
 * empty batch), as in PyTorch: the ops then run no kernel.
 */
export function checkTensor(t: unknown, name: string): Tensor {
  if (typeof t !== 'object' || t === null || !('data' in t) || !('shape' in t))
    throw new TypeError(`Expected a tensor { data, shape } for ${name} but received ${describe(t)}`);
  const { data, shape } = t as Tensor;
  if (!(data instanceof Float32Array) && !(data instanceof Float64Array))
    throw new TypeError(`Expected a Float32Array or Float64Array for ${name}.data but received ${describe(data)}`);
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0))
    throw new RangeError(`Expected ${name}.shape to be an array of non-negative integers but received ${formatShapeValue(shape)}`);
  const numel = shape.reduce((a, b) => a * b, 1);
  // A detached buffer's views have length 0: the probe (an allocation) runs
  // only on the way to an error. (An empty shape with a detached buffer
  // passes: nothing of it is read or written.)
  if (numel !== data.length) {
    if (isDetached(data)) throw new TypeError(`Expected ${name}.data to be readable but its buffer is detached`);
    throw new RangeError(`Expected ${name}.data to have ${numel} elements for shape ${formatShape(shape)} but received ${describe(data)}`);
  }
  return { data, shape };
}

/** (n, c, s) of a checked tensor; c is the last dimension when channels-last. */
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

function formatShapeValue(shape: unknown): string {
  return Array.isArray(shape) ? `[${shape.map((d) => (typeof d === 'number' ? String(d) : describe(d))).join(', ')}]` : describe(shape);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * An output array of `length` elements of x's type, without V8's zero fill:
 * the kernels write every element, so the fill would be a wasted pass.
 */
export function allocLike(x: FloatArray, length: number): FloatArray {
  if (x instanceof Float64Array) {
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
  return x instanceof Float64Array ? new Float64Array(length) : new Float32Array(length);
}

/**
 * For the `checkFinite` option: throws a RangeError naming the first channel
 * (lowest index) holding a NaN or an infinity, and where.
 */
export function checkFinite(data: FloatArray, shape: readonly number[], d: Dims, name: string): void {
  let bad = -1;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      if (bad < 0 || channelOf(i, d) < channelOf(bad, d)) bad = i;
    }
  }
  if (bad < 0) return;
  const ch = channelOf(bad, d);
  const at: number[] = [];
  for (let k = shape.length - 1, r = bad; k >= 0; k--) {
    at.unshift(r % shape[k]);
    r = Math.floor(r / shape[k]);
  }
  throw new RangeError(`Expected finite values in ${name} (checkFinite) but channel ${ch} holds ${data[bad]} at index [${at.join(', ')}]`);
}

function channelOf(i: number, d: Dims): number {
  return d.channelsLast ? i % d.c : Math.floor(i / d.s) % d.c;
}

/** Whether two arrays share any memory (views of one buffer whose byte ranges meet). */
export function sharesMemory(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/**
 * An array argument of x's type and `length` elements, checked under the name
 * the user gave it (out, runningMean, saveMean, …): the kernels check again
 * under their own names (y, mean, invstd, …), which would not say which
 * argument was wrong. The kernels still check overlaps. A typed array of the
 * other float type is a TypeError, a wrong length a RangeError.
 */
export function checkArray(v: unknown, name: string, x: FloatArray, length: number, nullable = false): void {
  if (nullable && v == null) return;
  const ctor = x instanceof Float64Array ? Float64Array : Float32Array;
  if (!(v instanceof ctor)) throw new TypeError(`Expected ${arrayOf(ctor, length)}${nullable ? ' or null' : ''} for ${name} but received ${describe(v)}`);
  if (v.length !== length) {
    if (isDetached(v)) throw new TypeError(`Expected ${arrayOf(ctor, length)} for ${name} but received one whose buffer is detached`);
    throw new RangeError(`Expected ${arrayOf(ctor, length)} for ${name} but received ${describe(v)}`);
  }
}

// checkArray's words, made only on the way to an error: a call checks several arrays.
function arrayOf(ctor: typeof Float32Array | typeof Float64Array, length: number): string {
  return `a ${ctor.name} of length ${length}`;
}
