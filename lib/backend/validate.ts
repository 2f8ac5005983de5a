/**
 * Argument checks of the kernel calls, for the JS path; they say the same as
 * the native binding's (native/addon.cc), so that both paths throw the same
 * error class with the same words: the argument, what was expected, what came.
 * The words themselves are made in ../check.ts.
 */
import type { FloatArray } from './kernels.js';
import {
  checkBothOrNeither,
  checkNotResizable,
  describe,
  detachedError,
  groupsError,
  isDetached,
  kernelNumberError,
  kernelSizeError,
  lengthOf,
  overlapError,
  sharesMemory,
  sameMemory,
  typeError,
  rangeError,
  typedArrayName,
} from '../check.js';

export { describe, isDetached };

/** The kind of an array argument: read or written, and whether null (or undefined) may stand for none. */
export const Arg = {
  input: { nullable: false, written: false },
  output: { nullable: false, written: true },
  optionalInput: { nullable: true, written: false },
  optionalOutput: { nullable: true, written: true },
} as const;
export type ArgKind = (typeof Arg)[keyof typeof Arg];

interface View {
  name: string;
  array: FloatArray;
  written: boolean;
}

/**
 * One call's arguments, checked in the native binding's order. `async`: the
 * call outlives this turn of the event loop (an async form), so buffers JS
 * could shrink meanwhile (resizable ones) are refused, as the binding does.
 */
export class ArgReader {
  private readonly views: View[] = [];
  private constructor(
    private readonly type: 'Float32Array' | 'Float64Array',
    private readonly async: boolean,
  ) {}

  /** The element type is x's. */
  static forX(x: unknown, async: boolean): ArgReader {
    const t = typedArrayName(x);
    if (t === 'Float32Array' || t === 'Float64Array') return new ArgReader(t, async);
    throw typeError('x', 'a Float32Array or Float64Array', x);
  }

  dim(v: unknown, name: string): number {
    if (typeof v !== 'number') throw typeError(name, 'a positive integer', v);
    if (!(v >= 1) || !Number.isInteger(v) || v > Number.MAX_SAFE_INTEGER) throw rangeError(name, 'a positive integer', v);
    return v;
  }

  /** A bounded number, in the binding's words. */
  number(v: unknown, name: string, lo: number, hi: number, openLo: boolean): number {
    if (typeof v !== 'number') throw typeError(name, 'a number', v);
    if (!(openLo ? v > lo : v >= lo) || !(v <= hi)) throw kernelNumberError(name, lo, hi, openLo, v);
    return v;
  }

  boolean(v: unknown, name: string): boolean {
    if (typeof v !== 'boolean') throw typeError(name, 'a boolean', v);
    return v;
  }

  /** n, c, s and channelsLast, with n · c · s checked. */
  shape(n: unknown, c: unknown, s: unknown, channelsLast: unknown): number {
    const dn = this.dim(n, 'n'),
      dc = this.dim(c, 'c'),
      ds = this.dim(s, 's');
    this.boolean(channelsLast, 'channelsLast');
    const numel = dn * dc * ds;
    if (numel > 2 ** 53) throw kernelSizeError(dn, dc, ds);
    return numel;
  }

  array(v: unknown, name: string, length: number, kind: typeof Arg.input | typeof Arg.output): FloatArray;
  array(v: unknown, name: string, length: number, kind: ArgKind): FloatArray | null;
  array(v: unknown, name: string, length: number, kind: ArgKind): FloatArray | null {
    const { nullable, written } = kind;
    if (nullable && (v === null || v === undefined)) return null;
    const want = `a ${this.type} of length ${length}`;
    if (typedArrayName(v) !== this.type) throw typeError(name, `${want}${nullable ? ' or null' : ''}`, v);
    const a = v as FloatArray;
    if (isDetached(a)) throw detachedError(name, want);
    if (lengthOf(a) !== length) throw rangeError(name, want, v);
    if (this.async) checkNotResizable(a, name);
    this.views.push({ name, array: a, written });
    return a;
  }

  /** Outputs may not overlap anything, except an elementwise output that is exactly one of `inPlace`. */
  checkOverlaps(inPlace: ReadonlyArray<readonly [string, string]>): void {
    const vs = this.views;
    for (let i = 0; i < vs.length; i++) {
      for (let j = 0; j < vs.length; j++) {
        const a = vs[i],
          b = vs[j];
        if (i === j || !a.written || (b.written && j < i)) continue;
        if (!sharesMemory(a.array, b.array)) continue;
        const allowed = inPlace.some(([p, q]) => p === a.name && q === b.name);
        if (!(allowed && sameMemory(a.array, b.array))) throw overlapError(a.name, b.name, allowed);
      }
    }
  }
}

/**
 * The argument checks of each kernel op, in the binding's order, shared by the
 * JS and WebAssembly paths (the binding makes the same in native/addon.cc).
 * Each returns the element count.
 */
export function checkForwardTrainingArgs(
  async: boolean,
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  runningMean: FloatArray | null,
  runningVar: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  eps: number,
  momentum: number,
  unbiased: boolean,
  residual: FloatArray | null = null,
  relu = false,
): number {
  const r = ArgReader.forX(x, async);
  const numel = r.shape(n, c, s, channelsLast);
  r.number(eps, 'eps', 0, Infinity, false);
  r.number(momentum, 'momentum', 0, 1, false);
  r.boolean(unbiased, 'unbiased');
  r.array(x, 'x', numel, Arg.input);
  r.array(y, 'y', numel, Arg.output);
  r.array(weight, 'weight', c, Arg.optionalInput);
  r.array(bias, 'bias', c, Arg.optionalInput);
  r.array(runningMean, 'runningMean', c, Arg.optionalOutput);
  r.array(runningVar, 'runningVar', c, Arg.optionalOutput);
  checkBothOrNeither(runningMean, runningVar, 'runningMean', 'runningVar');
  r.array(saveMean, 'saveMean', c, Arg.output);
  r.array(saveInvstd, 'saveInvstd', c, Arg.output);
  r.array(residual, 'residual', numel, Arg.optionalInput);
  r.boolean(relu, 'relu');
  r.checkOverlaps([['y', 'x']]);
  return numel;
}

export function checkForwardEvalArgs(
  async: boolean,
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  mean: FloatArray,
  variance: FloatArray,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  eps: number,
  residual: FloatArray | null = null,
  relu = false,
): number {
  const r = ArgReader.forX(x, async);
  const numel = r.shape(n, c, s, channelsLast);
  r.number(eps, 'eps', 0, Infinity, false);
  r.array(x, 'x', numel, Arg.input);
  r.array(y, 'y', numel, Arg.output);
  r.array(weight, 'weight', c, Arg.optionalInput);
  r.array(bias, 'bias', c, Arg.optionalInput);
  r.array(mean, 'mean', c, Arg.input);
  r.array(variance, 'var', c, Arg.input);
  r.array(residual, 'residual', numel, Arg.optionalInput);
  r.boolean(relu, 'relu');
  r.checkOverlaps([['y', 'x']]);
  return numel;
}

export function checkBackwardArgs(
  async: boolean,
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray | null,
  weight: FloatArray | null,
  mean: FloatArray,
  invstd: FloatArray,
  gradWeight: FloatArray | null,
  gradBias: FloatArray | null,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  useBatchStats: boolean,
  output: FloatArray | null = null,
  gradResidual: FloatArray | null = null,
): number {
  const r = ArgReader.forX(x, async);
  const numel = r.shape(n, c, s, channelsLast);
  r.boolean(useBatchStats, 'useBatchStats');
  r.array(x, 'x', numel, Arg.input);
  r.array(dy, 'dy', numel, Arg.input);
  r.array(dx, 'dx', numel, Arg.optionalOutput);
  r.array(weight, 'weight', c, Arg.optionalInput);
  r.array(mean, 'mean', c, Arg.input);
  r.array(invstd, 'invstd', c, Arg.input);
  r.array(gradWeight, 'gradWeight', c, Arg.optionalOutput);
  r.array(gradBias, 'gradBias', c, Arg.optionalOutput);
  r.array(output, 'output', numel, Arg.optionalInput);
  r.array(gradResidual, 'gradResidual', numel, Arg.optionalOutput);
  if (gradResidual && !output) throw new TypeError(`Expected output (the forward's y under a ReLU) with gradResidual but received ${describe(output)}`);
  r.checkOverlaps([
    ['dx', 'dy'],
    ['dx', 'x'],
    ['dx', 'output'],
  ]);
  return numel;
}

/**
 * The group-statistics norms' ops (norm-kernels.ts), as the binding reads
 * them: n, c, s and channelsLast, then groups (a divisor of c). Each returns
 * the element count.
 */
function readGroupShape(r: ArgReader, n: number, c: number, s: number, groups: number, channelsLast: boolean): number {
  const numel = r.shape(n, c, s, channelsLast);
  r.dim(groups, 'groups');
  if (c % groups !== 0) throw groupsError(c, groups);
  return numel;
}

export function checkGroupNormForwardArgs(
  async: boolean,
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  n: number,
  c: number,
  s: number,
  groups: number,
  channelsLast: boolean,
  eps: number,
  rms: boolean,
): number {
  const r = ArgReader.forX(x, async);
  const numel = readGroupShape(r, n, c, s, groups, channelsLast);
  r.number(eps, 'eps', 0, Infinity, false);
  if (eps === Infinity) throw rangeError('eps', 'a finite number \u2265 0', eps);
  r.boolean(rms, 'rms');
  r.array(x, 'x', numel, Arg.input);
  r.array(y, 'y', numel, Arg.output);
  r.array(weight, 'weight', c, Arg.optionalInput);
  r.array(bias, 'bias', c, Arg.optionalInput);
  r.array(saveMean, 'saveMean', n * groups, Arg.output);
  r.array(saveInvstd, 'saveInvstd', n * groups, Arg.output);
  r.checkOverlaps([['y', 'x']]);
  return numel;
}

export function checkGroupNormBackwardArgs(
  async: boolean,
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray | null,
  weight: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  gradWeight: FloatArray | null,
  gradBias: FloatArray | null,
  n: number,
  c: number,
  s: number,
  groups: number,
  channelsLast: boolean,
  rms: boolean,
): number {
  const r = ArgReader.forX(x, async);
  const numel = readGroupShape(r, n, c, s, groups, channelsLast);
  r.boolean(rms, 'rms');
  r.array(x, 'x', numel, Arg.input);
  r.array(dy, 'dy', numel, Arg.input);
  r.array(dx, 'dx', numel, Arg.optionalOutput);
  r.array(weight, 'weight', c, Arg.optionalInput);
  r.array(saveMean, 'saveMean', n * groups, Arg.input);
  r.array(saveInvstd, 'saveInvstd', n * groups, Arg.input);
  r.array(gradWeight, 'gradWeight', c, Arg.optionalOutput);
  r.array(gradBias, 'gradBias', c, Arg.optionalOutput);
  r.checkOverlaps([
    ['dx', 'dy'],
    ['dx', 'x'],
  ]);
  return numel;
}

/** The sync form of a kernel op whose first argument says whether the call is async: checks as a call that ends in this turn. */
export function syncForm<A extends unknown[]>(f: (async: boolean, ...args: A) => void): (...args: A) => void {
  return (...args: A) => f(false, ...args);
}

/**
 * The async form, for the paths that compute on the calling thread (JS,
 * WebAssembly): after the current turn of the event loop, with the checks of
 * the native async forms.
 */
export function deferredForm<A extends unknown[]>(f: (async: boolean, ...args: A) => void): (...args: A) => Promise<void> {
  return (...args: A) =>
    new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        try {
          f(true, ...args);
          resolve();
        } catch (e) {
          reject(e);
        }
      });
    });
}
