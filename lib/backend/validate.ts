/**
 * Argument checks of the kernel calls, for the JS path; they say the same as
 * the native binding's (native/addon.cc), so that both paths throw the same
 * error class with the same words: the argument, what was expected, what came.
 * The words themselves are made in ../check.ts.
 */
import type { FloatArray } from './kernels.js';
import { checkNotResizable, describe, detachedError, isDetached, kernelNumberError, kernelSizeError, lengthOf, overlapError, sharesMemory, sameMemory, typeError, rangeError, typedArrayName } from '../check.js';

export { describe, isDetached };

/** The kind of an array argument: read or written, and whether null (or undefined) may stand for none. */
export const Arg = {
  input: { nullable: false, written: false },
  output: { nullable: false, written: true },
  optionalInput: { nullable: true, written: false },
  optionalOutput: { nullable: true, written: true },
} as const;
export type ArgKind = (typeof Arg)[keyof typeof Arg];

interface View { name: string; array: FloatArray; written: boolean }

/**
 * One call's arguments, checked in the native binding's order. `async`: the
 * call outlives this turn of the event loop (an async form), so buffers JS
 * could shrink meanwhile (resizable ones) are refused, as the binding does.
 */
export class ArgReader {
  private readonly views: View[] = [];
  private constructor(private readonly type: 'Float32Array' | 'Float64Array', private readonly async: boolean) {}

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
    if (!(openLo ? v > lo : v >= lo) || !(v <= hi))
      throw kernelNumberError(name, lo, hi, openLo, v);
    return v;
  }

  boolean(v: unknown, name: string): boolean {
    if (typeof v !== 'boolean') throw typeError(name, 'a boolean', v);
    return v;
  }

  /** n, c, s and channelsLast, with n · c · s checked. */
  shape(n: unknown, c: unknown, s: unknown, channelsLast: unknown): number {
    const dn = this.dim(n, 'n'), dc = this.dim(c, 'c'), ds = this.dim(s, 's');
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
        const a = vs[i], b = vs[j];
        if (i === j || !a.written || (b.written && j < i)) continue;
        if (!sharesMemory(a.array, b.array)) continue;
        const allowed = inPlace.some(([p, q]) => p === a.name && q === b.name);
        if (!(allowed && sameMemory(a.array, b.array)))
          throw overlapError(a.name, b.name, allowed);
      }
    }
  }
}
