/**
 * Argument checks of the kernel calls, for the JS path; they say the same as
 * the native binding's (native/addon.cc), so that both paths throw the same
 * error class with the same words: the argument, what was expected, what came.
 */
import type { FloatArray } from './kernels.js';

/** "a Float32Array of length 3", "an Array", "the number -1", "null", … */
export function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    const name = v.constructor.name;
    const article = /^(Int|[AEIO])/.test(name) ? 'an' : 'a';  // "a Uint8Array": a "you" sound
    return `${article} ${name} of length ${(v as unknown as { length: number }).length}`;
  }
  if (Array.isArray(v)) return 'an Array';
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'function') return 'a function';
  if (v instanceof ArrayBuffer) return 'an ArrayBuffer';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** True when the view's buffer was transferred or detached. */
export function isDetached(a: ArrayBufferView): boolean {
  if (a.buffer instanceof ArrayBuffer) {
    try {
      new Uint8Array(a.buffer, 0, 0);
    } catch {
      return true;
    }
  }
  return false;
}

interface View { name: string; array: FloatArray; written: boolean }

/**
 * True while an async form runs its checks: such a call outlives the JS turn
 * on the native path, so both paths refuse buffers JS could shrink meanwhile.
 */
let checkingAsync = false;

/** Runs `f` with the async checks on. */
export function asAsyncCall<R>(f: () => R): R {
  checkingAsync = true;
  try {
    return f();
  } finally {
    checkingAsync = false;
  }
}

/** One call's arguments, checked in the native binding's order. */
export class ArgReader {
  private readonly views: View[] = [];
  constructor(private readonly ctor: Float32ArrayConstructor | Float64ArrayConstructor) {}

  /** The element type is x's. */
  static forX(x: unknown): ArgReader {
    if (x instanceof Float32Array) return new ArgReader(Float32Array);
    if (x instanceof Float64Array) return new ArgReader(Float64Array);
    throw new TypeError(`Expected a Float32Array or Float64Array for x but received ${describe(x)}`);
  }

  dim(v: unknown, name: string): number {
    if (typeof v !== 'number') throw new TypeError(`Expected a positive integer for ${name} but received ${describe(v)}`);
    if (!(v >= 1) || !Number.isInteger(v) || v > Number.MAX_SAFE_INTEGER)
      throw new RangeError(`Expected a positive integer for ${name} but received ${describe(v)}`);
    return v;
  }

  number(v: unknown, name: string, lo: number, hi: number, openLo: boolean): number {
    if (typeof v !== 'number') throw new TypeError(`Expected a number for ${name} but received ${describe(v)}`);
    if (!(openLo ? v > lo : v >= lo) || !(v <= hi))
      throw new RangeError(`Expected ${name} to be a number in ${openLo ? '(' : '['}${lo}, ${hi}] but received ${describe(v)}`);
    return v;
  }

  boolean(v: unknown, name: string): boolean {
    if (typeof v !== 'boolean') throw new TypeError(`Expected a boolean for ${name} but received ${describe(v)}`);
    return v;
  }

  /** n, c, s and channelsLast, with n · c · s checked. */
  shape(n: unknown, c: unknown, s: unknown, channelsLast: unknown): { n: number; c: number; s: number; channelsLast: boolean; numel: number } {
    const d = { n: this.dim(n, 'n'), c: this.dim(c, 'c'), s: this.dim(s, 's'), channelsLast: this.boolean(channelsLast, 'channelsLast') };
    const numel = d.n * d.c * d.s;
    if (numel > 2 ** 53) throw new RangeError(`Expected n * c * s to be at most 2^53 but received ${d.n} * ${d.c} * ${d.s}`);
    return { ...d, numel };
  }

  array(v: unknown, name: string, length: number, nullable: false, written: boolean): FloatArray;
  array(v: unknown, name: string, length: number, nullable: true, written: boolean): FloatArray | null;
  array(v: unknown, name: string, length: number, nullable: boolean, written: boolean): FloatArray | null {
    if (nullable && (v === null || v === undefined)) return null;
    const want = `a ${this.ctor.name} of length ${length}`;
    if (!(v instanceof this.ctor))
      throw new TypeError(`Expected ${want}${nullable ? ' or null' : ''} for ${name} but received ${describe(v)}`);
    const a = v as FloatArray;
    if (isDetached(a)) throw new TypeError(`Expected ${want} for ${name} but received one whose buffer is detached`);
    if (a.length !== length) throw new RangeError(`Expected ${want} for ${name} but received ${describe(v)}`);
    if (checkingAsync && (a.buffer as ArrayBuffer & { resizable?: boolean }).resizable === true)
      throw new TypeError(`Expected ${want} for ${name} but received one backed by a resizable ArrayBuffer, which an async call cannot hold (use the sync form)`);
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
        if (a.array.buffer !== b.array.buffer) continue;
        const a0 = a.array.byteOffset, a1 = a0 + a.array.byteLength, b0 = b.array.byteOffset, b1 = b0 + b.array.byteLength;
        if (a0 >= b1 || b0 >= a1) continue;
        const allowed = inPlace.some(([p, q]) => p === a.name && q === b.name);
        if (!(allowed && a0 === b0 && a1 === b1))
          throw new RangeError(`Expected ${a.name} not to share memory with ${b.name}${allowed ? ' unless it is the same array (in place)' : ''}, but it overlaps it`);
      }
    }
  }
}
