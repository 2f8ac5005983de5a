/**
 * BatchNorm1d, BatchNorm2d and BatchNorm3d: PyTorch's modules — parameters,
 * running statistics, train/eval modes, state dicts — over the kernels.
 */
import type { FloatArray, Kernels } from './backend/kernels.js';
import { kernels } from './backend/loader.js';
import { describe } from './backend/validate.js';
import { checkValuesPerChannel, saveRunningStats } from './functional.js';
import { allocLike, zerosLike, checkArray, checkFinite, checkLayout, checkTensor, dimsOf, formatShape, isChannelsLast, sameShape, sharesMemory, type Dims, type Layout, type Tensor } from './tensor.js';

export interface BatchNormModuleOptions {
  /** Added to the variance before the square root. Default 1e-5 (Keras and TF.js: 1e-3). */
  eps?: number;
  /**
   * Weight of each new batch in the running statistics, PyTorch's convention:
   * `running = (1 − momentum)·running + momentum·batch`. Default 0.1.
   * `null` gives a cumulative moving average (factor 1/numBatchesTracked).
   * Keras' and TF.js' momentum is the other weight: 0.99 there is 0.01 here.
   */
  momentum?: number | null;
  /** Learnable weight (γ, initialised to 1) and bias (β, to 0). Default true. */
  affine?: boolean;
  /** Keep running statistics and use them in eval mode. Default true; false: batch statistics in eval too. */
  trackRunningStats?: boolean;
  /**
   * Memory order of the input. Default channels-first (NCL, NCHW, NCDHW) as in
   * PyTorch; channels-last (NLC, NHWC, NDHWC) as in TF.js and Keras.
   */
  layout?: Layout;
  /** Element type of parameters and buffers. Default 'float32'; inputs of the other type work too. */
  dtype?: 'float32' | 'float64';
  /**
   * Update running_var with the unbiased batch variance (PyTorch, default) or
   * the biased one (Keras and TF.js).
   */
  unbiasedRunningVar?: boolean;
  /**
   * Check inputs (and gradients in backward) for NaN and infinities first, and
   * throw naming the first bad channel. Default false: non-finite values
   * propagate as in PyTorch (a NaN in a channel makes that channel's output
   * and statistics NaN).
   */
  checkFinite?: boolean;
}

/** A learnable per-channel array and its accumulated gradient. */
export interface Parameter<A extends FloatArray = FloatArray> {
  data: A;
  /** Null until the first backward; backward adds into it until zeroGrad(). */
  grad: A | null;
}

/**
 * PyTorch's state-dict keys: weight, bias, running_mean, running_var,
 * num_batches_tracked. Values are typed arrays (or plain number arrays when
 * loading, e.g. after a JSON round trip) and a number.
 */
export type StateDict = Record<string, ArrayLike<number> | number | bigint | ArrayLike<bigint>>;

export interface CallOptions<A extends FloatArray = FloatArray> {
  /** Write the result here instead of allocating (the input's type and length). */
  out?: A;
}

/** What the last forward normalized with; the backward uses it. */
interface Saved {
  x: FloatArray;
  shape: number[];
  dims: Dims;
  mean: FloatArray;
  invstd: FloatArray;
  batchStats: boolean;
  /** The forward wrote its output over x (out: input.data): x is gone. */
  overwritten: boolean;
}

type ForwardCall =
  | { op: 'forwardTraining'; args: Parameters<Kernels['forwardTraining']> }
  | { op: 'forwardEval'; args: Parameters<Kernels['forwardEval']> };

function convert(a: FloatArray | null, to: Float32ArrayConstructor | Float64ArrayConstructor): FloatArray | null {
  return a === null || a instanceof to ? a : to.from(a);
}

/** `out` (whose buffer is `buffer`: a typed array's `.buffer` getter costs tens of ns) and one of the module's arrays (named `name`) share no memory. */
function checkApart(out: FloatArray, buffer: ArrayBufferLike, a: FloatArray | null | undefined, name: string): void {
  if (a && a.buffer === buffer && sharesMemory(out, a)) throw new RangeError(`Expected out not to share memory with the module's ${name}, but it overlaps it`);
}

/** `out` is the input `a` itself (in place) or shares no memory with it; the kernels would refuse this too, but under their own names (y, x). */
function checkInPlaceOrApart(out: FloatArray, a: FloatArray, name: string): void {
  if (sharesMemory(out, a) && !(out.byteOffset === a.byteOffset && out.length === a.length))
    throw new RangeError(`Expected out not to share memory with ${name} unless it is the same array (in place), but it overlaps it`);
}

function isNumberArrayLike(v: unknown): v is ArrayLike<number> {
  if (v instanceof Float32Array || v instanceof Float64Array) return true;
  return Array.isArray(v) && v.every((e) => typeof e === 'number');
}

abstract class BatchNormBase {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly layout: Layout;
  readonly unbiasedRunningVar: boolean;
  readonly checkFinite: boolean;
  /** γ; null when affine is false. */
  readonly weight: Parameter | null;
  /** β; null when affine is false. */
  readonly bias: Parameter | null;
  /** Null when trackRunningStats is false. */
  runningMean: FloatArray | null;
  runningVar: FloatArray | null;
  /** Training forwards so far; null when trackRunningStats is false. */
  numBatchesTracked: number | null;
  /** Training mode (batch statistics) or eval mode (running statistics). */
  training = true;

  private saved: Saved | null = null;
  /** The weight and bias gradients of the last backward, before commit added them into .grad. */
  private gradScratch: [FloatArray, FloatArray] | null = null;
  private pending: string | null = null;
  private readonly ctor: Float32ArrayConstructor | Float64ArrayConstructor;

  // Accessors, not fields: the base constructor reads them before subclass fields exist.
  protected abstract get ranks(): readonly number[];
  protected abstract get layouts(): readonly Layout[];
  /** Spatial dimension names for messages, per rank: e.g. ['H', 'W']. */
  protected abstract spatial(rank: number): string[];

  constructor(numFeatures: number, options: BatchNormModuleOptions = {}) {
    const name = new.target.name;
    if (typeof numFeatures !== 'number' || !Number.isInteger(numFeatures) || numFeatures < 1)
      throw new (typeof numFeatures === 'number' ? RangeError : TypeError)(`Expected a positive integer for numFeatures of ${name} but received ${describe(numFeatures)}`);
    if (typeof options !== 'object' || options === null) throw new TypeError(`Expected an options object for ${name} but received ${describe(options)}`);
    const { eps = 1e-5, momentum = 0.1, affine = true, trackRunningStats = true, dtype = 'float32', unbiasedRunningVar = true, checkFinite = false } = options;
    if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps))
      throw new (typeof eps === 'number' ? RangeError : TypeError)(`Expected eps to be a positive finite number but received ${describe(eps)}`);
    if (momentum !== null && (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)))
      throw new (typeof momentum === 'number' ? RangeError : TypeError)(`Expected momentum to be a number in [0, 1] or null but received ${describe(momentum)}`);
    for (const [k, v] of [['affine', affine], ['trackRunningStats', trackRunningStats], ['unbiasedRunningVar', unbiasedRunningVar], ['checkFinite', checkFinite]] as const)
      if (typeof v !== 'boolean') throw new TypeError(`Expected a boolean for ${k} but received ${describe(v)}`);
    if (dtype !== 'float32' && dtype !== 'float64')
      throw new (typeof dtype === 'string' ? RangeError : TypeError)(`Expected dtype to be 'float32' or 'float64' but received ${describe(dtype)}`);
    this.numFeatures = numFeatures;
    this.eps = eps;
    this.momentum = momentum;
    this.affine = affine;
    this.trackRunningStats = trackRunningStats;
    this.unbiasedRunningVar = unbiasedRunningVar;
    this.checkFinite = checkFinite;
    this.ctor = dtype === 'float64' ? Float64Array : Float32Array;
    this.layout = options.layout ?? this.defaultLayout();
    this.checkOwnLayout(this.layout);
    const alloc = (fill: number) => {
      try {
        return new this.ctor(numFeatures).fill(fill);
      } catch {
        throw new RangeError(`Expected numFeatures of ${name} small enough for ${dtype} arrays of that length but received ${numFeatures}`);
      }
    };
    this.weight = affine ? { data: alloc(1), grad: null } : null;
    this.bias = affine ? { data: alloc(0), grad: null } : null;
    this.runningMean = trackRunningStats ? alloc(0) : null;
    this.runningVar = trackRunningStats ? alloc(1) : null;
    this.numBatchesTracked = trackRunningStats ? 0 : null;
  }

  protected abstract defaultLayout(): Layout;

  private checkOwnLayout(layout: unknown): void {
    checkLayout(layout);
    if (!this.layouts.includes(layout as Layout))
      throw new RangeError(`Expected layout of ${this.constructor.name} to be one of ${this.layouts.join(', ')} but received ${JSON.stringify(layout)}`);
  }

  /** Training mode (true, the default) or eval mode. Returns this. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw new TypeError(`Expected a boolean for mode but received ${describe(mode)}`);
    this.training = mode;
    return this;
  }

  /** Eval mode: running statistics. Returns this. */
  eval(): this {
    return this.train(false);
  }

  /** [weight, bias] when affine, else []. */
  parameters(): Parameter[] {
    return this.weight && this.bias ? [this.weight, this.bias] : [];
  }

  /** Zeroes the gradients (keeping their arrays, so a training loop does not allocate). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad?.fill(0);
  }

  private expectedShape(rank: number): string {
    const sp = this.spatial(rank);
    const dims = isChannelsLast(this.layout) ? ['N', ...sp, String(this.numFeatures)] : ['N', String(this.numFeatures), ...sp];
    return `[${dims.join(', ')}]`;
  }

  private checkShape(shape: readonly number[]): Dims {
    // The messages are built only on the way to an error: a call on a small tensor takes microseconds.
    const expected = () => this.ranks.map((r) => this.expectedShape(r)).join(' or ');
    if (!this.ranks.includes(shape.length))
      throw new RangeError(
        `${this.constructor.name} expected ${this.ranks.map((r) => `${r}D`).join(' or ')} input (got ${shape.length}D input): expected shape ${expected()} (layout ${this.layout}) but received ${formatShape(shape)}`,
      );
    const dims = dimsOf(shape, isChannelsLast(this.layout));
    if (dims.c !== this.numFeatures)
      throw new RangeError(`${this.constructor.name} expected input with ${this.numFeatures} channels: expected shape ${expected()} (layout ${this.layout}) but received ${formatShape(shape)}`);
    return dims;
  }

  /**
   * A per-channel array of x's type: `prev` when it fits, else a new one. A
   * call's per-channel results (saved statistics, weight and bias gradients)
   * go into arrays only this module holds, kept from the last call: at C =
   * 512 a pair of fresh arrays costs about 2.6 us, a tenth of a (256,512)
   * forward. Only one call runs at a time (checkIdle), a kernel that throws
   * writes nothing, and an async one writes only once it runs, so a call
   * never overwrites arrays another call still reads.
   */
  private channelArray(prev: FloatArray | undefined, x: FloatArray): FloatArray {
    return prev && prev.constructor === x.constructor && prev.length === this.numFeatures ? prev : zerosLike(x, this.numFeatures);
  }

  private checkIdle(method: string): void {
    if (this.pending) throw new Error(`${this.constructor.name}.${method}() called while ${this.pending}() is still running; await it first`);
  }

  /**
   * `out` must not share memory with the module's parameters, gradients or
   * running statistics: the kernels never see most of them (gradients are
   * added after the call, and a buffer of the other float type goes in as a
   * copy), so they could not catch it. (Checked one by one: a call on a small
   * tensor takes microseconds, and arrays of names would be allocations.)
   */
  private checkOut(arg: unknown, like: FloatArray): FloatArray {
    if (arg === undefined) return allocLike(like, like.length);
    checkArray(arg, 'out', like, like.length);
    const out = arg as FloatArray, buffer = out.buffer;
    checkApart(out, buffer, this.weight?.data, 'weight');
    checkApart(out, buffer, this.bias?.data, 'bias');
    checkApart(out, buffer, this.weight?.grad, 'weight.grad');
    checkApart(out, buffer, this.bias?.grad, 'bias.grad');
    checkApart(out, buffer, this.runningMean, 'runningMean');
    checkApart(out, buffer, this.runningVar, 'runningVar');
    return out;
  }

  /** Both running statistics or neither (PyTorch's `running_mean = None` trick: batch statistics in eval too). */
  private checkRunningStats(): void {
    if (!this.runningMean !== !this.runningVar)
      throw new TypeError(
        `Expected runningMean and runningVar of ${this.constructor.name} to be both arrays or both null but received ${this.runningMean ? 'an array and null' : 'null and an array'}`,
      );
  }

  /** Every check and allocation of a forward; nothing of the module changes here. */
  private prepareForward(input: Tensor, options: CallOptions) {
    const x = checkTensor(input, 'input');
    const dims = this.checkShape(x.shape);
    if (this.checkFinite) checkFinite(x.data, x.shape, dims, 'input');
    const y = this.checkOut(options?.out, x.data);
    checkInPlaceOrApart(y, x.data, 'input.data');
    this.checkRunningStats();
    const T = x.data instanceof Float64Array ? Float64Array : Float32Array;
    // PyTorch's _BatchNorm.forward: batch statistics in training mode, and in
    // eval mode when there are no running ones (trackRunningStats false, or
    // both set to null); the running statistics are updated only in training
    // mode with trackRunningStats.
    // An empty batch (a dimension 0) runs no kernel and leaves the running
    // statistics exactly as they are; a training forward still counts it, as
    // in PyTorch.
    const empty = x.data.length === 0;
    const batchStats = this.training || (this.runningMean === null && this.runningVar === null);
    const counting = this.training && this.trackRunningStats && this.numBatchesTracked !== null;
    const updateRunning = this.training && this.trackRunningStats && this.runningMean !== null && !empty;
    if (batchStats) checkValuesPerChannel(x.shape, dims);
    const weight = convert(this.weight?.data ?? null, T), bias = convert(this.bias?.data ?? null, T);
    const rm = convert(this.runningMean, T), rv = convert(this.runningVar, T);
    // The last forward's saved statistics are overwritten in place: this
    // forward replaces them anyway (see channelArray).
    const saveMean = this.channelArray(this.saved?.mean, x.data), saveInvstd = this.channelArray(this.saved?.invstd, x.data);
    const { n, c, s, channelsLast } = dims;
    let call: ForwardCall;
    if (batchStats) {
      const momentum = this.momentum ?? 1 / ((this.numBatchesTracked ?? 0) + 1);
      call = {
        op: 'forwardTraining',
        args: [x.data, y, weight, bias, updateRunning ? rm : null, updateRunning ? rv : null, saveMean, saveInvstd, n, c, s, channelsLast, this.eps, momentum, this.unbiasedRunningVar],
      };
    } else {
      call = { op: 'forwardEval', args: [x.data, y, weight, bias, rm!, rv!, n, c, s, channelsLast, this.eps] };
    }
    // Runs only after the kernel succeeded.
    const commit = (): Tensor => {
      if (updateRunning) {
        if (rm !== this.runningMean) this.runningMean!.set(rm!);
        if (rv !== this.runningVar) this.runningVar!.set(rv!);
      }
      if (counting) this.numBatchesTracked! += 1;
      if (!batchStats) saveRunningStats(rm!, rv!, this.eps, saveMean, saveInvstd);
      this.saved = { x: x.data, shape: [...x.shape], dims, mean: saveMean, invstd: saveInvstd, batchStats, overwritten: sharesMemory(y, x.data) };
      return { data: y, shape: [...x.shape] };
    };
    return { call, commit, T, empty };
  }

  /**
   * Normalizes `input`: with the batch statistics in training mode (updating
   * the running ones), with the running statistics in eval mode.
   * Returns `{ data, shape }` of the input's type.
   */
  forward<A extends FloatArray>(input: Tensor<A>, options: CallOptions<A> = {}): Tensor<A> {
    this.checkIdle('forward');
    const p = this.prepareForward(input, options);
    if (!p.empty) {
      if (p.call.op === 'forwardTraining') kernels.forwardTraining(...p.call.args);
      else kernels.forwardEval(...p.call.args);
    }
    return p.commit() as Tensor<A>;
  }

  /** `forward` off the event loop (native path); rejects on bad input. */
  async forwardAsync<A extends FloatArray>(input: Tensor<A>, options: CallOptions<A> = {}): Promise<Tensor<A>> {
    this.checkIdle('forwardAsync');
    const p = this.prepareForward(input, options);
    this.pending = 'forwardAsync';
    try {
      if (!p.empty) {
        if (p.call.op === 'forwardTraining') await kernels.forwardTrainingAsync(...p.call.args);
        else await kernels.forwardEvalAsync(...p.call.args);
      }
    } finally {
      this.pending = null;
    }
    return p.commit() as Tensor<A>;
  }

  private prepareBackward(gradOutput: Tensor, options: CallOptions) {
    const name = this.constructor.name;
    const saved = this.saved;
    if (!saved) throw new Error(`${name}.backward() needs a forward() first: there are no saved statistics`);
    // PyTorch's autograd refuses the same ("a variable needed for gradient
    // computation has been modified by an inplace operation"). Only a frozen
    // (eval) backward without affine parameters does without x.
    if (saved.overwritten && (saved.batchStats || this.affine))
      throw new Error(
        `${name}.backward() needs the input of the last forward, which that forward overwrote (out was input.data): give forward a separate out, or none, when a backward follows`,
      );
    const dy = checkTensor(gradOutput, 'gradOutput');
    if (!sameShape(dy.shape, saved.shape))
      throw new RangeError(`Expected gradOutput of the last forward's shape ${formatShape(saved.shape)} but received shape ${formatShape(dy.shape)}`);
    if (dy.data.constructor !== saved.x.constructor)
      throw new TypeError(`Expected a ${saved.x.constructor.name} for gradOutput.data (the last forward's type) but received ${describe(dy.data)}`);
    if (this.checkFinite) checkFinite(dy.data, dy.shape, saved.dims, 'gradOutput');
    const dx = this.checkOut(options?.out, saved.x);
    checkInPlaceOrApart(dx, dy.data, 'gradOutput.data');
    checkInPlaceOrApart(dx, saved.x, "the last forward's input");
    const T = saved.x instanceof Float64Array ? Float64Array : Float32Array;
    const weight = convert(this.weight?.data ?? null, T);
    // The kernel overwrites gw and gb (zeros for an empty batch, which runs
    // none), and commit adds them into .grad: the last backward's serve again.
    const gw = this.affine ? this.channelArray(this.gradScratch?.[0], saved.x) : null, gb = this.affine ? this.channelArray(this.gradScratch?.[1], saved.x) : null;
    if (gw && gb) {
      this.gradScratch = [gw, gb];
      if (saved.x.length === 0) gw.fill(0), gb.fill(0);
    }
    const { n, c, s, channelsLast } = saved.dims;
    const args: Parameters<Kernels['backward']> = [saved.x, dy.data, dx, weight, saved.mean, saved.invstd, gw, gb, n, c, s, channelsLast, saved.batchStats];
    const commit = (): Tensor => {
      if (this.weight && this.bias && gw && gb) {
        this.weight.grad ??= new this.ctor(this.numFeatures);
        this.bias.grad ??= new this.ctor(this.numFeatures);
        for (let i = 0; i < this.numFeatures; i++) {
          this.weight.grad[i] += gw[i];
          this.bias.grad[i] += gb[i];
        }
      }
      return { data: dx, shape: [...saved.shape] };
    };
    return { args, commit, empty: saved.x.length === 0 };
  }

  /**
   * Gradient of the last forward: returns dx (`{ data, shape }`) and adds the
   * weight and bias gradients into `.grad`. After a training forward the batch
   * statistics are differentiated through; after an eval forward they are
   * constants (frozen BatchNorm, as in fine-tuning).
   */
  backward<A extends FloatArray>(gradOutput: Tensor<A>, options: CallOptions<A> = {}): Tensor<A> {
    this.checkIdle('backward');
    const p = this.prepareBackward(gradOutput, options);
    if (!p.empty) kernels.backward(...p.args);
    return p.commit() as Tensor<A>;
  }

  /** `backward` off the event loop (native path); rejects on bad input. */
  async backwardAsync<A extends FloatArray>(gradOutput: Tensor<A>, options: CallOptions<A> = {}): Promise<Tensor<A>> {
    this.checkIdle('backwardAsync');
    const p = this.prepareBackward(gradOutput, options);
    this.pending = 'backwardAsync';
    try {
      if (!p.empty) await kernels.backwardAsync(...p.args);
    } finally {
      this.pending = null;
    }
    return p.commit() as Tensor<A>;
  }

  /** PyTorch's: the parameters, then the buffers that are not null. */
  private stateKeys(): string[] {
    const present: Array<[string, unknown]> = [
      ['weight', this.weight], ['bias', this.bias], ['running_mean', this.runningMean], ['running_var', this.runningVar], ['num_batches_tracked', this.numBatchesTracked],
    ];
    return present.filter(([, v]) => v !== null).map(([k]) => k);
  }

  /**
   * Copies of the parameters and buffers under PyTorch's keys. `JSON.stringify`
   * writes the arrays as plain number arrays, which loadStateDict takes back.
   */
  stateDict(): StateDict {
    this.checkIdle('stateDict');
    const sd: StateDict = {};
    if (this.weight && this.bias) {
      sd.weight = this.weight.data.slice();
      sd.bias = this.bias.data.slice();
    }
    if (this.runningMean) sd.running_mean = this.runningMean.slice();
    if (this.runningVar) sd.running_var = this.runningVar.slice();
    if (this.numBatchesTracked !== null) sd.num_batches_tracked = this.numBatchesTracked;
    Object.defineProperty(sd, 'toJSON', {
      enumerable: false,
      value: () => Object.fromEntries(Object.entries(sd).map(([k, v]) => [k, typeof v === 'number' ? v : Array.from(v as ArrayLike<number>)])),
    });
    return sd;
  }

  /**
   * Loads a state dict (PyTorch's keys; typed or plain arrays). `strict`
   * (default true): the keys must be exactly this module's. Sizes are always
   * checked. Nothing changes when it throws. A dict without
   * num_batches_tracked (PyTorch before 0.4.1) sets it to 0, as PyTorch does.
   */
  loadStateDict(stateDict: StateDict, options: { strict?: boolean } = {}): { missingKeys: string[]; unexpectedKeys: string[] } {
    const name = this.constructor.name;
    this.checkIdle('loadStateDict');
    if (typeof options !== 'object' || options === null) throw new TypeError(`Expected an options object for loadStateDict but received ${describe(options)}`);
    const { strict = true } = options;
    if (typeof strict !== 'boolean') throw new TypeError(`Expected a boolean for strict but received ${describe(strict)}`);
    if (typeof stateDict !== 'object' || stateDict === null) throw new TypeError(`Expected a state dict object but received ${describe(stateDict)}`);
    const keys = this.stateKeys();
    if (this.trackRunningStats && !('num_batches_tracked' in stateDict)) stateDict = { ...stateDict, num_batches_tracked: 0 };
    const missingKeys = keys.filter((k) => !(k in stateDict));
    const unexpectedKeys = Object.keys(stateDict).filter((k) => !keys.includes(k));
    if (strict && (missingKeys.length || unexpectedKeys.length)) {
      const parts = [];
      if (missingKeys.length) parts.push(`Missing key(s) in state_dict: ${missingKeys.map((k) => `"${k}"`).join(', ')}.`);
      if (unexpectedKeys.length) parts.push(`Unexpected key(s) in state_dict: ${unexpectedKeys.map((k) => `"${k}"`).join(', ')}.`);
      throw new TypeError(`Error(s) in loading state_dict for ${name}: ${parts.join(' ')}`);
    }
    // Each value is read once, into a copy, before anything changes: a
    // getter or Proxy cannot make a later read differ from the checked one.
    const updates: Array<() => void> = [];
    for (const k of keys) {
      if (!(k in stateDict)) continue;
      const v = stateDict[k];
      if (k === 'num_batches_tracked') {
        const raw = typeof v === 'number' || typeof v === 'bigint' ? v : (v as ArrayLike<number | bigint>)?.length === 1 ? (v as ArrayLike<number | bigint>)[0] : undefined;
        if (typeof raw !== 'number' && typeof raw !== 'bigint')
          throw new TypeError(`Expected a number, a bigint or an array of one for num_batches_tracked but received ${describe(v)}`);
        const count = Number(raw);
        if (!Number.isSafeInteger(count) || count < 0)
          throw new RangeError(`Expected a non-negative integer of at most 2^53 - 1 for num_batches_tracked but received ${String(raw)}`);
        updates.push(() => (this.numBatchesTracked = count));
        continue;
      }
      const values = v instanceof Float32Array || v instanceof Float64Array ? v : Array.isArray(v) ? Array.from(v) : null;
      if (!values || !isNumberArrayLike(values)) throw new TypeError(`Expected a Float32Array, Float64Array or array of numbers for ${k} but received ${describe(v)}`);
      const copy = this.ctor.from(values);
      if (copy.length !== this.numFeatures)
        throw new RangeError(`size mismatch for ${k}: copying a param with shape [${copy.length}] from checkpoint, the shape in current model is [${this.numFeatures}].`);
      const target = { weight: this.weight?.data, bias: this.bias?.data, running_mean: this.runningMean, running_var: this.runningVar }[k]!;
      updates.push(() => target.set(copy));
    }
    for (const u of updates) u();
    return { missingKeys, unexpectedKeys };
  }
}

/** Batch normalization over (N, C) or (N, C, L) input (NLC with layout 'NLC'). */
export class BatchNorm1d extends BatchNormBase {
  protected get ranks() {
    return [2, 3];
  }
  protected get layouts(): readonly Layout[] {
    return ['NCL', 'NLC', 'NC', 'channelsFirst', 'channelsLast'];
  }
  protected defaultLayout(): Layout {
    return 'NCL';
  }
  protected spatial(rank: number): string[] {
    return rank === 3 ? ['L'] : [];
  }
}

/** Batch normalization over (N, C, H, W) input (NHWC with layout 'NHWC'). */
export class BatchNorm2d extends BatchNormBase {
  protected get ranks() {
    return [4];
  }
  protected get layouts(): readonly Layout[] {
    return ['NCHW', 'NHWC', 'channelsFirst', 'channelsLast'];
  }
  protected defaultLayout(): Layout {
    return 'NCHW';
  }
  protected spatial(): string[] {
    return ['H', 'W'];
  }
}

/** Batch normalization over (N, C, D, H, W) input (NDHWC with layout 'NDHWC'). */
export class BatchNorm3d extends BatchNormBase {
  protected get ranks() {
    return [5];
  }
  protected get layouts(): readonly Layout[] {
    return ['NCDHW', 'NDHWC', 'channelsFirst', 'channelsLast'];
  }
  protected defaultLayout(): Layout {
    return 'NCDHW';
  }
  protected spatial(): string[] {
    return ['D', 'H', 'W'];
  }
}

export type { BatchNormBase };
