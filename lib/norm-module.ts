/**
 * What the modules of the norms beside BatchNorm share (LayerNorm, RMSNorm,
 * GroupNorm, InstanceNorm1d/2d/3d): parameters and their gradients, train and
 * eval modes, the one-call-at-a-time guard, the last forward's saved input and
 * statistics, state dicts under PyTorch's keys, PyTorch's repr. Each module
 * only says how its forward and backward call the functional form
 * (norm-functional.ts), whose plans run here through one sync/async runner.
 */
import { inspect } from 'node:util';
import type { FloatArray } from './backend/kernels.js';
import type { Parameter, StateDict } from './batchnorm.js';
import {
  busyError,
  checkBoolean,
  checkDtype as checkDtypeOf,
  checkOptions,
  isFloatArray,
  overlapError,
  sharesMemory,
  sizeMismatchError,
  stateDictKeysError,
  typeError,
  rangeError,
} from './check.js';
import { runAsync, runSync, type NormGradients, type Plan } from './norm-functional.js';
import { shapeOf, withShape } from './safetensors.js';
import type { Tensor } from './tensor.js';

export type Dtype = 'float32' | 'float64';

/** Module options every norm takes. */
export interface DtypeOption {
  /** Element type of parameters and buffers. Default 'float32'; inputs of the other type work too. */
  dtype?: Dtype;
}

/** Per-call options of forward and backward. */
export interface NormCallOptions<A extends FloatArray = FloatArray> {
  /** Write the result here instead of allocating (the input's type and length). */
  out?: A;
}

/** What a forward plan returns: y and its statistics (RMSNorm has no mean). */
type ForwardResult = Tensor & { saveMean?: FloatArray; saveInvstd: FloatArray };

/** What the last forward kept for the backward. */
export interface Saved {
  x: Tensor;
  saveMean: FloatArray | null;
  saveInvstd: FloatArray;
  /** Whether the statistics were the input's own (training forms) or running ones. */
  inputStats: boolean;
  /** The forward wrote its output over x (out: input.data): x is gone. */
  overwritten: boolean;
}

/** A state-dict entry: PyTorch's key, the module's array and its PyTorch shape. */
export interface StateEntry {
  key: string;
  array: FloatArray;
  shape: readonly number[];
}

/** `a` in the type of input.data: itself, or a copy (input unchecked yet: left alone if it is not a tensor). */
export function convert(a: FloatArray | null, input: unknown): FloatArray | null {
  const to = (input as { data?: unknown } | null)?.data;
  if (a === null || !(to instanceof Float32Array || to instanceof Float64Array) || a.constructor === to.constructor) return a;
  return (to instanceof Float64Array ? Float64Array : Float32Array).from(a);
}

export function checkModuleOptions(options: unknown, name: string, keys: readonly string[]): Record<string, unknown> {
  checkOptions(options, name, keys);
  return options as Record<string, unknown>;
}

export function checkDtype(v: unknown): Dtype {
  return checkDtypeOf(v);
}

export function checkFlag(v: unknown, name: string): boolean {
  return checkBoolean(v, name);
}

/** Python's float repr: 1e-05, 0.1, 1.0 (scientific below 1e-4 and from 1e16, two exponent digits at least). */
export function pyFloat(v: number): string {
  if (v !== 0 && (Math.abs(v) < 1e-4 || Math.abs(v) >= 1e16)) return v.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
  return Number.isInteger(v) ? `${v}.0` : String(v);
}

/** Python's tuple repr: (768,) for one element, (4, 5) for more. */
export function pyTuple(v: readonly number[]): string {
  return v.length === 1 ? `(${v[0]},)` : `(${v.join(', ')})`;
}

export function pyBool(v: boolean): string {
  return v ? 'True' : 'False';
}

export abstract class NormModule {
  /** Training mode (the input's statistics) or eval mode (running ones, where the module keeps them). */
  training = true;
  #pending: string | null = null;
  #saved: Saved | null = null;
  protected readonly ctor: Float32ArrayConstructor | Float64ArrayConstructor;

  constructor(dtype: Dtype) {
    this.ctor = dtype === 'float64' ? Float64Array : Float32Array;
  }

  /** The learnable parameters by PyTorch name ([] without affine). */
  protected abstract namedParameters(): Array<[string, Parameter]>;
  /** Parameters and buffers under PyTorch's state-dict keys, in PyTorch's order. */
  protected abstract stateEntries(): StateEntry[];
  /** The forward's plan; `x` is checked by it. Nothing of the module changes. */
  protected abstract planForward(input: Tensor, out: FloatArray | undefined): { plan: Plan<ForwardResult>; inputStats: boolean; commit?: () => void };
  /** The backward's plan from the saved forward. */
  protected abstract planBackward(gradOutput: Tensor, saved: Saved, out: FloatArray | undefined): Plan<NormGradients>;
  /** PyTorch's repr arguments: "768, eps=1e-05, …". */
  protected abstract extraRepr(): string;
  /** Whether a backward needs the forward's input (not for a frozen, parameter-free backward). */
  protected needsInput(saved: Saved): boolean {
    return saved.inputStats || this.namedParameters().length > 0;
  }

  /** Training mode (true, the default) or eval mode. Returns this. */
  train(mode = true): this {
    checkBoolean(mode, 'mode');
    this.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Zeroes the gradients (keeping their arrays). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad?.fill(0);
  }

  protected checkIdle(method: string): void {
    if (this.#pending) throw busyError(this.constructor.name, method, this.#pending);
  }

  /** `out` shares no memory with the module's parameters, gradients or buffers. */
  private checkOut(out: unknown): FloatArray | undefined {
    if (out === undefined) return undefined;
    if (!isFloatArray(out)) return out as FloatArray; // the plan says what is wrong
    for (const [name, p] of this.namedParameters()) {
      if (sharesMemory(out, p.data)) throw overlapError('out', `the module's ${name}`, false);
      if (p.grad && sharesMemory(out, p.grad)) throw overlapError('out', `the module's ${name}.grad`, false);
    }
    for (const e of this.stateEntries()) if (sharesMemory(out, e.array)) throw overlapError('out', `the module's ${e.key}`, false);
    return out;
  }

  private callOptions(options: unknown): FloatArray | undefined {
    const o = checkModuleOptions(options, `${this.constructor.name} call`, ['out']);
    return this.checkOut(o.out);
  }

  private startForward(input: Tensor, options: unknown) {
    const out = this.callOptions(options);
    const p = this.planForward(input, out);
    const done = (r: ForwardResult): Tensor => {
      p.commit?.();
      this.#saved = {
        x: { data: input.data, shape: [...input.shape] },
        saveMean: r.saveMean ?? null,
        saveInvstd: r.saveInvstd,
        inputStats: p.inputStats,
        overwritten: sharesMemory(r.data, input.data),
      };
      return { data: r.data, shape: r.shape };
    };
    return { plan: p.plan, done };
  }

  /** Normalizes `input`; returns `{ data, shape }` of the input's type. */
  forward<A extends FloatArray>(input: Tensor<A>, options: NormCallOptions<A> = {}): Tensor<A> {
    this.checkIdle('forward');
    const s = this.startForward(input, options);
    return s.done(runSync(s.plan)) as Tensor<A>;
  }

  /** `forward` off the event loop (native path); rejects on bad input. */
  async forwardAsync<A extends FloatArray>(input: Tensor<A>, options: NormCallOptions<A> = {}): Promise<Tensor<A>> {
    this.checkIdle('forwardAsync');
    const s = this.startForward(input, options);
    this.#pending = 'forwardAsync';
    try {
      return s.done(await runAsync(s.plan)) as Tensor<A>;
    } finally {
      this.#pending = null;
    }
  }

  private startBackward(gradOutput: Tensor, options: unknown) {
    const name = this.constructor.name,
      saved = this.#saved;
    if (!saved) throw new Error(`${name}.backward() needs a forward() first: there are no saved statistics`);
    if (saved.overwritten && this.needsInput(saved))
      throw new Error(
        `${name}.backward() needs the input of the last forward, which that forward overwrote (out was input.data): give forward a separate out, or none, when a backward follows`,
      );
    const out = this.callOptions(options);
    const plan = this.planBackward(gradOutput, saved, out);
    const done = (g: NormGradients): Tensor => {
      for (const [pname, p] of this.namedParameters()) {
        const grad = pname === 'bias' ? g.gradBias : g.gradWeight;
        // A frozen parameter (requiresGrad false) keeps its .grad, as BatchNorm's do.
        if (!grad || p.requiresGrad === false) continue;
        p.grad ??= new this.ctor(p.data.length);
        for (let i = 0; i < grad.length; i++) p.grad[i] += grad[i];
      }
      return g.gradInput;
    };
    return { plan, done };
  }

  /**
   * Gradient of the last forward: returns dx and adds the parameters'
   * gradients into `.grad`.
   */
  backward<A extends FloatArray>(gradOutput: Tensor<A>, options: NormCallOptions<A> = {}): Tensor<A> {
    this.checkIdle('backward');
    const s = this.startBackward(gradOutput, options);
    return s.done(runSync(s.plan)) as Tensor<A>;
  }

  async backwardAsync<A extends FloatArray>(gradOutput: Tensor<A>, options: NormCallOptions<A> = {}): Promise<Tensor<A>> {
    this.checkIdle('backwardAsync');
    const s = this.startBackward(gradOutput, options);
    this.#pending = 'backwardAsync';
    try {
      return s.done(await runAsync(s.plan)) as Tensor<A>;
    } finally {
      this.#pending = null;
    }
  }

  /** Extra entries beyond the arrays (InstanceNorm's num_batches_tracked). */
  protected counter(): { key: string; get: () => number; set: (v: number) => void } | null {
    return null;
  }

  /**
   * Copies of the parameters and buffers under PyTorch's keys. Each array
   * carries its PyTorch shape in a non-enumerable `shape` (a LayerNorm([4, 5])
   * weight: [4, 5]), which `writeSafetensors` writes.
   */
  stateDict(): StateDict {
    this.checkIdle('stateDict');
    const sd: StateDict = {};
    for (const e of this.stateEntries()) sd[e.key] = withShape(e.array.slice(), e.shape);
    const k = this.counter();
    if (k) sd[k.key] = k.get();
    Object.defineProperty(sd, 'toJSON', {
      enumerable: false,
      value: () => Object.fromEntries(Object.entries(sd).map(([key, v]) => [key, typeof v === 'number' ? v : Array.from(v as ArrayLike<number>)])),
    });
    return sd;
  }

  /**
   * Loads a state dict (PyTorch's keys; typed or plain arrays). `strict`
   * (default true): the keys must be exactly this module's. Sizes are always
   * checked; an array that carries a shape (from `readSafetensors`) must have
   * PyTorch's shape or be flat (as files written before shapes were kept).
   * Nothing changes when it throws.
   */
  loadStateDict(stateDict: StateDict, options: { strict?: boolean } = {}): { missingKeys: string[]; unexpectedKeys: string[] } {
    const name = this.constructor.name;
    this.checkIdle('loadStateDict');
    const { strict = true } = checkModuleOptions(options, 'loadStateDict', ['strict']);
    checkFlag(strict, 'strict');
    if (typeof stateDict !== 'object' || stateDict === null || Array.isArray(stateDict)) throw typeError('the state dict', 'an object', stateDict);
    const entries = this.stateEntries(),
      counter = this.counter();
    const keys = [...entries.map((e) => e.key), ...(counter ? [counter.key] : [])];
    if (counter && !(counter.key in stateDict)) stateDict = { ...stateDict, [counter.key]: 0 };
    const missingKeys = keys.filter((k) => !(k in stateDict));
    const unexpectedKeys = Object.keys(stateDict).filter((k) => !keys.includes(k));
    if (strict && (missingKeys.length || unexpectedKeys.length)) throw stateDictKeysError(name, missingKeys, unexpectedKeys);
    const updates: Array<() => void> = [];
    for (const e of entries) {
      if (!(e.key in stateDict)) continue;
      const v = stateDict[e.key];
      const values =
        v instanceof Float32Array || v instanceof Float64Array ? v : Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : null;
      if (!values) throw typeError(e.key, 'a Float32Array, Float64Array or array of numbers', v);
      const copy = this.ctor.from(values);
      const shape = shapeOf(v);
      if (copy.length !== e.array.length) throw sizeMismatchError(e.key, shape ?? copy.length, e.shape);
      if (shape && shape.length !== 1 && !(shape.length === e.shape.length && shape.every((d, i) => d === e.shape[i])))
        throw sizeMismatchError(e.key, shape, e.shape);
      updates.push(() => e.array.set(copy));
    }
    if (counter && counter.key in stateDict) {
      const v = stateDict[counter.key];
      const raw =
        typeof v === 'number' || typeof v === 'bigint' ? v : (v as ArrayLike<number | bigint>)?.length === 1 ? (v as ArrayLike<number | bigint>)[0] : undefined;
      if (typeof raw !== 'number' && typeof raw !== 'bigint') throw typeError(counter.key, 'a number, a bigint or an array of one', v);
      const count = Number(raw);
      if (!Number.isSafeInteger(count) || count < 0) throw rangeError(counter.key, 'a non-negative integer of at most 2^53 - 1', raw);
      updates.push(() => counter.set(count));
    }
    for (const u of updates) u();
    return { missingKeys, unexpectedKeys };
  }

  /** PyTorch's repr: `LayerNorm((768,), eps=1e-05, elementwise_affine=True)`. */
  toString(): string {
    return `${this.constructor.name}(${this.extraRepr()})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
