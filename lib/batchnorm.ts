/**
 * BatchNorm1d, BatchNorm2d and BatchNorm3d: PyTorch's modules — parameters,
 * running statistics, train/eval modes, state dicts. A thin stateful wrapper
 * over the functional form, as PyTorch's `_BatchNorm.forward` ends in
 * `F.batch_norm`: a module works out its call (momentum factor, batch or
 * running statistics) from its state, functional.ts plans and runs it, and the
 * module commits the results to its state only once the call succeeded.
 */
import type { FloatArray } from './backend/kernels.js';
import {
  bufferOf,
  bufferOrNull,
  busyError,
  contextDetachedError,
  contextOverwrittenError,
  contextUsedError,
  noForwardError,
  notAContextError,
  checkApart,
  checkBoolean,
  checkBothOrNeither,
  sizeMismatchError,
  stateDictKeysError,
  checkDtype,
  checkEps,
  checkMomentum,
  checkOneOf,
  checkOptions,
  checkPositiveInteger,
  checkStatisticAssignment,
  invalidParameterError,
  isFloat64,
  isFloatArray,
  lengthOf,
  typedArrayName,
  moduleShapeError,
  readTensor,
  typeError,
  rangeError,
} from './check.js';
import { checkActivation, execute, OPTION_HINTS, planBackward, planForward, type Activation, type ForwardNames } from './functional.js';
import { HookList, type BackwardHook, type ForwardHook, type RemovableHandle } from './hooks.js';
import { dimsOf, isChannelsLast, type Dims, type Layout, type Tensor } from './tensor.js';

export interface BatchNormModuleOptions<Affine extends boolean = boolean> {
  /** Added to the variance before the square root: a number in [0, 1]. Default 1e-5 (Keras and TF.js: 1e-3). */
  eps?: number;
  /**
   * Weight of each new batch in the running statistics, PyTorch's convention:
   * `running = (1 − momentum)·running + momentum·batch`. Default 0.1.
   * `null` gives a cumulative moving average (factor 1/numBatchesTracked).
   * Keras' and TF.js' momentum is the other weight: 0.99 there is 0.01 here.
   */
  momentum?: number | null;
  /** Learnable weight (γ, initialised to 1) and bias (β, to 0). Default true. */
  affine?: Affine;
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
  /**
   * 'relu': the module computes relu(bn(x) + residual) (residual: forward's
   * option, else relu(bn(x))), and its backward differentiates through the
   * ReLU, masking dy by the saved output (y > 0). Default null: none.
   */
  activation?: Activation;
}

/** A learnable per-channel array and its accumulated gradient. */
export interface Parameter<A extends FloatArray = FloatArray> {
  data: A;
  /** Null until the first backward; backward adds into it until zeroGrad(). */
  grad: A | null;
  /** Default true; false freezes it: backward leaves `grad` as it is (PyTorch's `requires_grad_(False)`). */
  requiresGrad: boolean;
}

/**
 * PyTorch's state-dict keys: weight, bias, running_mean, running_var,
 * num_batches_tracked. Values are typed arrays (or plain number arrays when
 * loading, e.g. after a JSON round trip, where `null` stands for NaN, as
 * JSON writes it) and a number.
 */
export type StateDict = Record<string, ArrayLike<number> | ArrayLike<number | null> | number | bigint | ArrayLike<bigint>>;

export interface CallOptions<A extends FloatArray = FloatArray> {
  /** Write the result here instead of allocating (the input's type and length). */
  out?: A;
}

export interface ForwardCallOptions<A extends FloatArray = FloatArray> extends CallOptions<A> {
  /** Added to bn(x) before the activation (a skip connection): the input's shape and type; its gradient comes back from backward as gradResidual. */
  residual?: Tensor<A> | null;
}

/** A backward's result: dx, and with a residual in the forward its gradient. */
export interface GradInput<A extends FloatArray = FloatArray> extends Tensor<A> {
  /** The residual's gradient (dy masked by the ReLU, or dy's own array without an activation); absent when the forward had no residual. */
  gradResidual?: Tensor<A>;
}

export interface BackwardCallOptions<A extends FloatArray = FloatArray> extends CallOptions<A> {
  /**
   * Which forward to differentiate: the object a forward() of this module
   * returned. Default: the last forward. Several forwards can wait for their
   * backwards, taken in any order (last-in first-out through the time steps
   * of an RNN, or interleaved), as autograd's saved tensors; each one once.
   */
  of?: Tensor<A>;
  /**
   * Keep the forward's context for another backward (PyTorch's
   * `retain_graph=True`): for differentiating one forward with several
   * gradients, or timing a backward. Default false.
   */
  retainGraph?: boolean;
}

/**
 * What one forward normalized with, for its backward (autograd's saved
 * tensors): the input, its shape and the statistics used.
 */
interface Context {
  module: object;
  x: FloatArray;
  numel: number;
  shape: number[];
  dims: Dims;
  mean: FloatArray;
  invstd: FloatArray;
  batchStats: boolean;
  /** The output (for the ReLU's mask, y > 0), when the module has an activation, and its buffer's version then. */
  y: FloatArray | null;
  yVersion: number;
  residual: boolean;
  /** The version of x's buffer when the forward read it (see `versions`). */
  version: number;
  /** Its backward ran: a second one throws, and its statistics arrays went back to the module's pool. */
  used: boolean;
}

/** What wrote over a saved array: a forward in place, a forward into it as its out, a backward into it as its out. */
type Overwriter = 'inPlace' | 'out' | 'backward';

/** The context of each forward's result object (the key is the object forward returned). */
const contexts = new WeakMap<object, Context>();

/**
 * PyTorch's version counters, for the writes this package makes over an
 * input it saved: a module's forward with `out: input.data`, or a backward
 * whose `out` is a saved input, bumps the count of that buffer; a backward
 * whose context saw another count throws instead of reading overwritten
 * values. (Writes by the caller's own code cannot be seen, as in PyTorch
 * they can through `.data`.) A forward given an `out` counts as a write
 * over that array too: a context that saved it (as its input, or as its
 * output for the ReLU's mask) sees it changed.
 */
const versions = new WeakMap<ArrayBufferLike, { n: number; by: Overwriter }>();

function versionOf(a: FloatArray): number {
  return versions.get(bufferOf(a))?.n ?? 0;
}

function bumpVersion(a: FloatArray, by: Overwriter): void {
  const buffer = bufferOf(a),
    v = versions.get(buffer);
  if (v) {
    v.n++;
    v.by = by;
  } else versions.set(buffer, { n: 1, by });
}

const MODULE_OPTIONS = ['eps', 'momentum', 'affine', 'trackRunningStats', 'layout', 'dtype', 'unbiasedRunningVar', 'checkFinite', 'activation'] as const;
const CALL_OPTIONS = ['out', 'residual'] as const;
const BACKWARD_CALL_OPTIONS = ['out', 'of', 'retainGraph'] as const;
const LOAD_OPTIONS = ['strict'] as const;

/** a of the type `f64` says, converted (copied) when it is of the other float type. */
function convert(a: FloatArray, f64: boolean): FloatArray;
function convert(a: FloatArray | null, f64: boolean): FloatArray | null;
function convert(a: FloatArray | null, f64: boolean): FloatArray | null {
  if (a === null || isFloat64(a) === f64) return a;
  return f64 ? Float64Array.from(a) : Float32Array.from(a);
}

/** A float the way Python's repr writes it (PyTorch's module repr): 1e-05, 0.1, 0.0, 1e+16. */
export function pyFloat(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  const [mantissa, exp] = v.toExponential().split('e');
  const e = Number(exp);
  if (e < -4 || e >= 16) return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  const fixed = String(v);
  return fixed.includes('.') ? fixed : `${fixed}.0`;
}

abstract class BatchNormBase<Affine extends boolean = boolean> {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: Affine;
  readonly trackRunningStats: boolean;
  readonly layout: Layout;
  readonly unbiasedRunningVar: boolean;
  readonly checkFinite: boolean;
  /** 'relu' or null (see the option). */
  readonly activation: Activation;
  /** γ; null when affine is false. */
  readonly weight: Affine extends true ? Parameter : Parameter | null;
  /** β; null when affine is false. */
  readonly bias: Affine extends true ? Parameter : Parameter | null;
  /** Training mode (batch statistics) or eval mode (running statistics). */
  training = true;

  #runningMean: FloatArray | null;
  #runningVar: FloatArray | null;
  #numBatchesTracked: number | null;
  /** The last forward's context: what backward differentiates by default. */
  #last: Context | null = null;
  /**
   * Statistics arrays of contexts whose backward ran, for the next forwards
   * to write into: a loop of forwards and backwards (one or many forwards
   * deep) allocates none once warm.
   */
  #pool: FloatArray[] = [];
  /** The weight and bias gradients of the last backward, before they were added into .grad. */
  #gradWeight: FloatArray | null = null;
  #gradBias: FloatArray | null = null;
  /** The call running now (a sync one, or an async one until it settles), or null. */
  #busy: string | null = null;
  #f64: boolean;
  // Typed with unknown modules, not `this`: a list typed by its module would make BatchNorm2d<true> unassignable to BatchNormBase.
  #forwardHooks: HookList<unknown> | null = null;
  #backwardHooks: HookList<unknown> | null = null;
  /** The names a call's messages give this module's arrays (made once: a call allocates no strings). */
  readonly #names: ForwardNames;
  readonly #backwardNames: { x: string; mean: string; invstd: string; weight: string };
  /** The layout a tf.Tensor's data needs here, for the message (made at the first call). */
  #tfLayout: string | undefined;

  // Accessors, not fields: the base constructor reads them before subclass fields exist.
  protected abstract get ranks(): readonly number[];
  protected abstract get layouts(): readonly Layout[];
  /** Spatial dimension names for messages, per rank: e.g. ['H', 'W']. */
  protected abstract spatial(rank: number): string[];
  protected abstract defaultLayout(): Layout;

  constructor(numFeatures: number, options: BatchNormModuleOptions<Affine> = {}) {
    const name = new.target.name;
    checkPositiveInteger(numFeatures, `numFeatures of ${name}`);
    checkOptions(options, name, MODULE_OPTIONS, OPTION_HINTS);
    const {
      eps = 1e-5,
      momentum = 0.1,
      affine = true,
      trackRunningStats = true,
      layout,
      dtype = 'float32',
      unbiasedRunningVar = true,
      checkFinite = false,
    } = options;
    checkEps(eps);
    checkMomentum(momentum, true);
    checkBoolean(affine, 'affine');
    checkBoolean(trackRunningStats, 'trackRunningStats');
    checkBoolean(unbiasedRunningVar, 'unbiasedRunningVar');
    checkBoolean(checkFinite, 'checkFinite');
    checkDtype(dtype);
    this.activation = checkActivation(options.activation, `activation of ${name}`) ? 'relu' : null;
    this.layout = layout === undefined ? this.defaultLayout() : this.#checkLayout(layout);
    this.numFeatures = numFeatures;
    this.eps = eps;
    this.momentum = momentum;
    this.affine = affine as Affine;
    this.trackRunningStats = trackRunningStats;
    this.unbiasedRunningVar = unbiasedRunningVar;
    this.checkFinite = checkFinite;
    this.#f64 = dtype === 'float64';
    this.#names = {
      out: 'out',
      weight: `${name}.weight.data`,
      bias: `${name}.bias.data`,
      runningMean: `${name}.runningMean`,
      runningVar: `${name}.runningVar`,
    };
    this.#backwardNames = { x: "the last forward's input", mean: 'saveMean', invstd: 'saveInvstd', weight: `${name}.weight.data` };
    const alloc = (fill: number): FloatArray => {
      try {
        return (this.#f64 ? new Float64Array(numFeatures) : new Float32Array(numFeatures)).fill(fill);
      } catch {
        throw new RangeError(invalidParameterError(`numFeatures of ${name}`, `a count small enough for ${dtype} arrays of that length`, String(numFeatures)));
      }
    };
    this.weight = (affine ? { data: alloc(1), grad: null, requiresGrad: true } : null) as this['weight'];
    this.bias = (affine ? { data: alloc(0), grad: null, requiresGrad: true } : null) as this['bias'];
    this.#runningMean = trackRunningStats ? alloc(0) : null;
    this.#runningVar = trackRunningStats ? alloc(1) : null;
    this.#numBatchesTracked = trackRunningStats ? 0 : null;
  }

  #checkLayout(layout: unknown): Layout {
    return checkOneOf(layout, `layout of ${this.constructor.name}`, this.layouts);
  }

  /** Null when trackRunningStats is false, or set so (batch statistics in eval too, as PyTorch's running_mean = None). */
  get runningMean(): FloatArray | null {
    return this.#runningMean;
  }
  set runningMean(v: FloatArray | null) {
    this.#assign('runningMean', v);
    this.#runningMean = v;
  }
  get runningVar(): FloatArray | null {
    return this.#runningVar;
  }
  set runningVar(v: FloatArray | null) {
    this.#assign('runningVar', v);
    this.#runningVar = v;
  }
  /** Training forwards so far; null when trackRunningStats is false. */
  get numBatchesTracked(): number | null {
    return this.#numBatchesTracked;
  }
  set numBatchesTracked(v: number | null) {
    this.#idle('numBatchesTracked =');
    if (v !== null && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0))
      throw (typeof v === 'number' ? rangeError : typeError)(`${this.constructor.name}.numBatchesTracked`, 'a non-negative integer or null', v);
    this.#numBatchesTracked = v;
  }

  /** A running statistic is assigned: a float array of numFeatures values, or null; never while a call runs. */
  #assign(name: string, v: unknown): void {
    this.#idle(`${name} =`);
    checkStatisticAssignment(v, this.constructor.name, name, this.numFeatures);
  }

  /** PyTorch's repr: `BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)`. */
  toString(): string {
    const py = (b: boolean) => (b ? 'True' : 'False');
    return `${this.constructor.name}(${this.numFeatures}, eps=${pyFloat(this.eps)}, momentum=${this.momentum === null ? 'None' : pyFloat(this.momentum)}, affine=${py(this.affine)}, track_running_stats=${py(this.trackRunningStats)})`;
  }

  /** util.inspect and console.log print the repr too. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  /** Training mode (true, the default) or eval mode. Returns this. */
  train(mode = true): this {
    checkBoolean(mode, 'mode');
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

  /** [['weight', γ], ['bias', β]] when affine, else [] (PyTorch's named_parameters; the names are the state dict's). */
  namedParameters(): Array<[string, Parameter]> {
    return this.weight && this.bias
      ? [
          ['weight', this.weight],
          ['bias', this.bias],
        ]
      : [];
  }

  /** Zeroes the gradients (keeping their arrays, so a training loop does not allocate). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad?.fill(0);
  }

  /** Running mean 0, running variance 1, numBatchesTracked 0 (PyTorch's reset_running_stats); in place. */
  resetRunningStats(): void {
    this.#idle('resetRunningStats');
    this.#runningMean?.fill(0);
    this.#runningVar?.fill(1);
    if (this.#numBatchesTracked !== null) this.#numBatchesTracked = 0;
  }

  /** resetRunningStats(), and weight 1, bias 0 (PyTorch's reset_parameters); in place; gradients stay. */
  resetParameters(): void {
    this.resetRunningStats();
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  /** Element type of the parameters and buffers. */
  get dtype(): 'float32' | 'float64' {
    return this.#f64 ? 'float64' : 'float32';
  }

  /**
   * Converts the parameters, their gradients and the running statistics to
   * `dtype` (new arrays of it, as PyTorch's `module.to(torch.float64)`; the
   * Parameter objects stay). Returns this. Forwards waiting for their
   * backward keep their own arrays and still work.
   */
  to(dtype: 'float32' | 'float64'): this {
    this.#idle('to');
    const f64 = checkDtype(dtype) === 'float64';
    if (f64 === this.#f64) return this;
    for (const p of this.parameters()) {
      p.data = convert(p.data, f64);
      p.grad = convert(p.grad, f64);
    }
    this.#runningMean = convert(this.#runningMean, f64);
    this.#runningVar = convert(this.#runningVar, f64);
    this.#f64 = f64;
    return this;
  }

  /**
   * Calls fn(module, input, output) after each forward that succeeded (PyTorch's
   * register_forward_hook; its return value is ignored). Returns `{ remove() }`.
   */
  registerForwardHook(fn: ForwardHook<this>): RemovableHandle {
    return (this.#forwardHooks ??= new HookList<unknown>()).add(fn, 'the forward hook');
  }

  /**
   * Calls fn(module, gradInput, gradOutput) after each backward that
   * succeeded: dx and dy (PyTorch's register_full_backward_hook). Returns `{ remove() }`.
   */
  registerBackwardHook(fn: BackwardHook<this>): RemovableHandle {
    return (this.#backwardHooks ??= new HookList<unknown>()).add(fn, 'the backward hook');
  }

  // ------------------------------------------------------------ one call at a time

  #idle(what: string): void {
    const busy = this.#busy;
    if (!busy) return;
    if (what.endsWith(' =')) throw new Error(`${this.constructor.name}.${what.slice(0, -2)} assigned while ${busy}() is still running; await it first`);
    throw busyError(this.constructor.name, what, busy);
  }

  /**
   * Starts a call: refuses one while another runs (an async one not yet
   * settled, or a re-entrant one from a getter of this call's arguments).
   */
  #enter(method: string): void {
    this.#idle(method);
    this.#busy = method;
  }

  // ------------------------------------------------------------ forward

  #channelsLastName(): string | null {
    if (isChannelsLast(this.layout)) return null;
    const rank = this.ranks[this.ranks.length - 1];
    return rank === 3 ? 'NLC' : rank === 4 ? 'NHWC' : rank === 5 ? 'NDHWC' : null;
  }

  #expectedShapes(): string {
    return this.ranks
      .map((rank) => {
        const sp = this.spatial(rank);
        const dims = isChannelsLast(this.layout) ? ['N', ...sp, String(this.numFeatures)] : ['N', String(this.numFeatures), ...sp];
        return `[${dims.join(', ')}]`;
      })
      .join(' or ');
  }

  #dims(shape: readonly number[]): Dims {
    if (this.ranks.includes(shape.length)) {
      const dims = dimsOf(shape, isChannelsLast(this.layout));
      if (dims.c === this.numFeatures) return dims;
    }
    throw moduleShapeError(this.constructor.name, this.numFeatures, this.ranks, this.#expectedShapes(), this.layout, this.#channelsLastName(), shape);
  }

  /** One of the module's arrays (read once by the caller): a float array of numFeatures values. */
  #own(v: unknown, name: string): FloatArray {
    const type = typedArrayName(v);
    if ((type !== 'Float32Array' && type !== 'Float64Array') || lengthOf(v as FloatArray) !== this.numFeatures)
      throw (isFloatArray(v) ? rangeError : typeError)(`${this.constructor.name}.${name}`, `a Float32Array or Float64Array of length ${this.numFeatures}`, v);
    return v as FloatArray;
  }

  /**
   * `out` must not share memory with the module's parameters, gradients or
   * running statistics: the kernels never see most of them (gradients are
   * added after the call, and arrays of the other float type go in as
   * copies), so they could not catch it.
   */
  #outApart(out: unknown, weight: FloatArray | null, bias: FloatArray | null, rm: FloatArray | null, rv: FloatArray | null): void {
    if (!isFloatArray(out)) return; // checked with its words in planForward/planBackward
    const bo = bufferOf(out),
      gw = this.weight?.grad,
      gb = this.bias?.grad;
    checkApart(out, bo, weight, bufferOrNull(weight), 'out', "the module's weight");
    checkApart(out, bo, bias, bufferOrNull(bias), 'out', "the module's bias");
    checkApart(out, bo, gw, bufferOrNull(gw), 'out', "the module's weight.grad");
    checkApart(out, bo, gb, bufferOrNull(gb), 'out', "the module's bias.grad");
    checkApart(out, bo, rm, bufferOrNull(rm), 'out', "the module's runningMean");
    checkApart(out, bo, rv, bufferOrNull(rv), 'out', "the module's runningVar");
  }

  /** A per-channel array of the input's type for this call's results: the spare one when it fits. */
  #perChannel(spare: FloatArray | null, f64: boolean): FloatArray {
    return spare && isFloat64(spare) === f64 ? spare : f64 ? new Float64Array(this.numFeatures) : new Float32Array(this.numFeatures);
  }

  /** A per-channel array from the pool (taken out only when the call commits), or a new one. */
  #fromPool(f64: boolean, skip: FloatArray | null): FloatArray {
    const pool = this.#pool;
    for (let i = pool.length - 1; i >= 0; i--) if (isFloat64(pool[i]) === f64 && pool[i] !== skip) return pool[i];
    return f64 ? new Float64Array(this.numFeatures) : new Float32Array(this.numFeatures);
  }

  #release(a: FloatArray): void {
    const i = this.#pool.indexOf(a);
    if (i >= 0) this.#pool.splice(i, 1);
  }

  /**
   * One forward, sync or async. Every input — the options, the tensor, the
   * module's state — is read once into locals and checked; the kernel writes
   * into the spare saved statistics and into the running statistics (copies
   * for an input of the other float type); the module's state changes only
   * after the kernel succeeded.
   */
  #forward(input: unknown, options: unknown, method: string, async: boolean): Tensor | Promise<Tensor> {
    const name = this.constructor.name;
    this.#enter(method);
    let settlesLater = false;
    try {
      checkOptions(options, `${name}.${method}`, CALL_OPTIONS);
      const { out, residual } = options as ForwardCallOptions;
      const training = checkBoolean(this.training, `${name}.training`);
      const x = readTensor(input, 'input', (this.#tfLayout ??= `'${this.#channelsLastName() ?? this.layout}'`));
      const dims = this.#dims(x.shape);
      const numel = lengthOf(x.data),
        f64 = isFloat64(x.data);
      const rm0 = this.#runningMean,
        rv0 = this.#runningVar,
        count = this.#numBatchesTracked;
      checkBothOrNeither(rm0, rv0, 'runningMean', `runningVar of ${name}`);
      const w0 = this.weight ? this.#own(this.weight.data, 'weight.data') : null,
        b0 = this.bias ? this.#own(this.bias.data, 'bias.data') : null;
      if (rm0 && rv0) (this.#own(rm0, 'runningMean'), this.#own(rv0, 'runningVar'));
      this.#outApart(out, w0, b0, rm0, rv0);
      // PyTorch's _BatchNorm.forward: batch statistics in training mode, and in
      // eval mode when there are no running ones (trackRunningStats false, or
      // both set to null); the running statistics are updated only in training
      // mode with trackRunningStats. An empty batch (a dimension 0) runs no
      // kernel and leaves the running statistics as they are; a training
      // forward still counts it, as in PyTorch.
      const batchStats = training || rm0 === null;
      const updateRunning = training && this.trackRunningStats && rm0 !== null && numel > 0;
      const counting = training && this.trackRunningStats && count !== null;
      const momentum = this.momentum ?? 1 / ((count ?? 0) + 1);
      const rm = convert(rm0, f64),
        rv = convert(rv0, f64);
      const saveMean = this.#fromPool(f64, null),
        saveInvstd = this.#fromPool(f64, saveMean);
      const plan = planForward({
        x,
        channelsLast: dims.channelsLast,
        channelsLastName: null,
        out,
        weight: convert(w0, f64),
        bias: convert(b0, f64),
        runningMean: batchStats && !updateRunning ? null : rm,
        runningVar: batchStats && !updateRunning ? null : rv,
        batchStats,
        eps: this.eps,
        momentum,
        unbiased: this.unbiasedRunningVar,
        checkFinite: this.checkFinite,
        saveMeanOut: saveMean,
        saveInvstdOut: saveInvstd,
        names: this.#names,
        apart: false,
        async,
        relu: this.activation === 'relu',
        residual: residual === undefined || residual === null ? null : readTensor(residual, 'residual'),
      });
      const commit = (): Tensor => {
        if (updateRunning) {
          if (rm !== rm0) rm0!.set(rm!);
          if (rv !== rv0) rv0!.set(rv!);
        }
        if (counting) this.#numBatchesTracked = count + 1;
        this.#release(saveMean);
        this.#release(saveInvstd);
        const ctx: Context = {
          module: this,
          x: x.data,
          numel,
          shape: x.shape,
          dims,
          mean: plan.saveMean,
          invstd: plan.saveInvstd,
          batchStats,
          y: plan.relu ? plan.y : null,
          yVersion: 0,
          residual: plan.residual !== null,
          version: versionOf(x.data),
          used: false,
        };
        // y written over x: this forward's own backward would read y as x.
        // Written into the caller's out: whatever context saved that array sees it.
        if (plan.inPlace) bumpVersion(x.data, 'inPlace');
        else if (out !== undefined) bumpVersion(plan.y, 'out');
        if (ctx.y) ctx.yVersion = versionOf(ctx.y);
        this.#last = ctx;
        const result = { data: plan.y, shape: x.shape.slice() };
        contexts.set(result, ctx);
        return result;
      };
      if (!async) {
        execute({ forward: plan }, false);
        return commit();
      }
      settlesLater = true;
      return execute({ forward: plan }, true)
        .then(commit)
        .finally(() => {
          this.#busy = null;
        });
    } finally {
      if (!settlesLater) this.#busy = null;
    }
  }

  /**
   * Normalizes `input`: with the batch statistics in training mode (updating
   * the running ones), with the running statistics in eval mode; then adds
   * `residual` and applies the module's activation, if any.
   * Returns `{ data, shape }` of the input's type; `backward(dy, { of })` takes it.
   */
  forward<A extends FloatArray>(input: Tensor<A>, options: ForwardCallOptions<A> = {}): Tensor<A> {
    const y = this.#forward(input, options, 'forward', false) as Tensor<A>;
    if (this.#forwardHooks !== null) this.#forwardHooks.call(this, input, y);
    return y;
  }

  /** `forward` off the event loop (native path); rejects on bad input. Its buffers become untransferable (see batchNormAsync). */
  async forwardAsync<A extends FloatArray>(input: Tensor<A>, options: ForwardCallOptions<A> = {}): Promise<Tensor<A>> {
    const y = await (this.#forward(input, options, 'forwardAsync', true) as Promise<Tensor<A>>);
    if (this.#forwardHooks !== null) this.#forwardHooks.call(this, input, y);
    return y;
  }

  // ------------------------------------------------------------ backward

  /** The context a backward differentiates: of's, or the last forward's. */
  #context(of: unknown, method: string): Context {
    const name = this.constructor.name;
    if (of === undefined) {
      if (!this.#last) throw noForwardError(name, method);
      return this.#last;
    }
    const ctx = typeof of === 'object' && of !== null ? contexts.get(of) : undefined;
    if (!ctx || ctx.module !== this) throw notAContextError(name, method, of, ctx !== undefined);
    return ctx;
  }

  #backward(gradOutput: unknown, options: unknown, method: string, async: boolean): Tensor | Promise<Tensor> {
    const name = this.constructor.name;
    this.#enter(method);
    let settlesLater = false;
    try {
      checkOptions(options, `${name}.${method}`, BACKWARD_CALL_OPTIONS);
      const { out, of, retainGraph = false } = options as BackwardCallOptions;
      checkBoolean(retainGraph, 'retainGraph');
      const saved = this.#context(of, method);
      const which = of === undefined ? 'the last forward' : 'the forward given as of';
      if (saved.used) throw contextUsedError(name, method, which);
      // PyTorch's autograd refuses the same ("a variable needed for gradient
      // computation has been modified by an inplace operation"). Only a frozen
      // (eval) backward without affine parameters does without x.
      const needsX = saved.batchStats || this.affine;
      const version = versionOf(saved.x);
      if (version !== saved.version && needsX) throw contextOverwrittenError(name, method, which, 'input', versions.get(bufferOf(saved.x))!.by);
      if (saved.y && versionOf(saved.y) !== saved.yVersion) throw contextOverwrittenError(name, method, which, 'output', versions.get(bufferOf(saved.y))!.by);
      if (lengthOf(saved.x) !== saved.numel) throw contextDetachedError(name, method, of === undefined ? "the last forward's" : "that forward's");
      const dy = readTensor(gradOutput, 'gradOutput');
      const f64 = isFloat64(saved.x);
      const w0 = this.weight ? this.#own(this.weight.data, 'weight.data') : null,
        b0 = this.bias ? this.#own(this.bias.data, 'bias.data') : null;
      const gw0 = this.weight?.grad ?? null,
        gb0 = this.bias?.grad ?? null;
      if (gw0 !== null) this.#own(gw0, 'weight.grad');
      if (gb0 !== null) this.#own(gb0, 'bias.grad');
      this.#outApart(out, w0, b0, this.#runningMean, this.#runningVar);
      // The kernel overwrites this module's scratch (zeros for an empty batch),
      // and commit adds it into .grad.
      // Frozen parameters (requiresGrad false) keep their .grad; with both frozen the kernel skips the sums.
      const wantW = this.weight !== null && this.weight.requiresGrad !== false,
        wantB = this.bias !== null && this.bias.requiresGrad !== false;
      const gradients = wantW || wantB;
      const gw = gradients ? (this.#gradWeight = this.#perChannel(this.#gradWeight, f64)) : null;
      const gb = gradients ? (this.#gradBias = this.#perChannel(this.#gradBias, f64)) : null;
      const plan = planBackward({
        x: { data: saved.x, shape: saved.shape },
        dy,
        dims: saved.dims,
        out,
        weight: convert(w0, f64),
        mean: saved.mean,
        invstd: saved.invstd,
        gradWeightOut: gw,
        gradBiasOut: gb,
        gradients,
        batchStats: saved.batchStats,
        checkFinite: this.checkFinite,
        shapeName: "the last forward's shape",
        apart: false,
        names: this.#backwardNames,
        async,
        relu: saved.y !== null,
        output: saved.y,
        outputName: "the forward's output",
        residual: saved.residual,
      });
      const commit = (): Tensor => {
        const C = this.numFeatures;
        if (this.weight && gw && wantW) {
          const gradW = gw0 ?? (this.#f64 ? new Float64Array(C) : new Float32Array(C));
          for (let i = 0; i < C; i++) gradW[i] += gw[i];
          this.weight.grad = gradW;
        }
        if (this.bias && gb && wantB) {
          const gradB = gb0 ?? (this.#f64 ? new Float64Array(C) : new Float32Array(C));
          for (let i = 0; i < C; i++) gradB[i] += gb[i];
          this.bias.grad = gradB;
        }
        // dx written over x: another forward of the same x would read dx as x.
        if (plan.overwritesX) bumpVersion(saved.x, 'backward');
        // Differentiated (and not retained): the statistics arrays go back to the pool.
        if (!retainGraph) {
          saved.used = true;
          this.#pool.push(saved.mean, saved.invstd);
        }
        const dx: GradInput = { data: plan.dx, shape: saved.shape.slice() };
        if (plan.gradResidual) dx.gradResidual = { data: plan.gradResidual, shape: saved.shape.slice() };
        return dx;
      };
      if (!async) {
        execute({ backward: plan }, false);
        return commit();
      }
      settlesLater = true;
      return execute({ backward: plan }, true)
        .then(commit)
        .finally(() => {
          this.#busy = null;
        });
    } finally {
      if (!settlesLater) this.#busy = null;
    }
  }

  /**
   * Gradient of the last forward (or of the one `of` names): returns dx
   * (`{ data, shape }`, with `gradResidual` when that forward added a
   * residual) and adds the weight and bias gradients into `.grad` (of the
   * parameters whose requiresGrad is not false). After a training forward the batch
   * statistics are differentiated through; after an eval forward they are
   * constants (frozen BatchNorm, as in fine-tuning).
   */
  backward<A extends FloatArray>(gradOutput: Tensor<A>, options: BackwardCallOptions<A> = {}): GradInput<A> {
    const dx = this.#backward(gradOutput, options, 'backward', false) as GradInput<A>;
    if (this.#backwardHooks !== null) this.#backwardHooks.call(this, dx, gradOutput);
    return dx;
  }

  /** `backward` off the event loop (native path); rejects on bad input. */
  async backwardAsync<A extends FloatArray>(gradOutput: Tensor<A>, options: BackwardCallOptions<A> = {}): Promise<GradInput<A>> {
    const dx = await (this.#backward(gradOutput, options, 'backwardAsync', true) as Promise<GradInput<A>>);
    if (this.#backwardHooks !== null) this.#backwardHooks.call(this, dx, gradOutput);
    return dx;
  }

  // ------------------------------------------------------------ state dicts

  /** PyTorch's: the parameters, then the buffers that are not null. */
  #stateKeys(): string[] {
    const present: Array<[string, unknown]> = [
      ['weight', this.weight],
      ['bias', this.bias],
      ['running_mean', this.#runningMean],
      ['running_var', this.#runningVar],
      ['num_batches_tracked', this.#numBatchesTracked],
    ];
    return present.filter(([, v]) => v !== null).map(([k]) => k);
  }

  /**
   * Copies of the parameters and buffers under PyTorch's keys. `JSON.stringify`
   * writes the arrays as plain number arrays (NaN as null), which loadStateDict takes back.
   */
  stateDict(): StateDict {
    this.#idle('stateDict');
    const sd: StateDict = {};
    if (this.weight && this.bias) {
      sd.weight = this.weight.data.slice();
      sd.bias = this.bias.data.slice();
    }
    if (this.#runningMean) sd.running_mean = this.#runningMean.slice();
    if (this.#runningVar) sd.running_var = this.#runningVar.slice();
    if (this.#numBatchesTracked !== null) sd.num_batches_tracked = this.#numBatchesTracked;
    Object.defineProperty(sd, 'toJSON', {
      enumerable: false,
      value: () => Object.fromEntries(Object.entries(sd).map(([k, v]) => [k, typeof v === 'number' ? v : Array.from(v as ArrayLike<number>)])),
    });
    return sd;
  }

  /**
   * Loads a state dict (PyTorch's keys; typed or plain arrays, where `null`
   * is NaN, as JSON writes it). `strict` (default true): the keys must be
   * exactly this module's. Sizes are always checked. Nothing changes when it
   * throws. A dict without num_batches_tracked (PyTorch before 0.4.1) sets it
   * to 0, as PyTorch does.
   */
  loadStateDict(stateDict: StateDict, options: { strict?: boolean } = {}): { missingKeys: string[]; unexpectedKeys: string[] } {
    const name = this.constructor.name;
    this.#enter('loadStateDict');
    try {
      checkOptions(options, `${name}.loadStateDict`, LOAD_OPTIONS);
      const { strict = true } = options;
      checkBoolean(strict, 'strict');
      if (typeof stateDict !== 'object' || stateDict === null || Array.isArray(stateDict)) throw typeError('the state dict', 'an object', stateDict);
      return this.#load(stateDict, strict);
    } finally {
      this.#busy = null;
    }
  }

  #load(stateDict: StateDict, strict: boolean): { missingKeys: string[]; unexpectedKeys: string[] } {
    const keys = this.#stateKeys();
    if (this.trackRunningStats && !('num_batches_tracked' in stateDict)) stateDict = { ...stateDict, num_batches_tracked: 0 };
    const missingKeys = keys.filter((k) => !(k in stateDict));
    const unexpectedKeys = Object.keys(stateDict).filter((k) => !keys.includes(k));
    if (strict && (missingKeys.length || unexpectedKeys.length)) throw stateDictKeysError(this.constructor.name, missingKeys, unexpectedKeys);
    // Each value is read once, into a copy, before anything changes: a
    // getter or Proxy cannot make a later read differ from the checked one.
    const updates: Array<() => void> = [];
    for (const k of keys) {
      if (!(k in stateDict)) continue;
      const v = stateDict[k];
      if (k === 'num_batches_tracked') {
        const raw = typeof v === 'number' || typeof v === 'bigint' ? v : (v as ArrayLike<unknown>)?.length === 1 ? (v as ArrayLike<unknown>)[0] : undefined;
        if (typeof raw !== 'number' && typeof raw !== 'bigint') throw typeError('num_batches_tracked', 'a number, a bigint or an array of one', v);
        const count = Number(raw);
        if (!Number.isSafeInteger(count) || count < 0)
          throw new RangeError(invalidParameterError('num_batches_tracked', 'a non-negative integer of at most 2^53 - 1', String(raw)));
        updates.push(() => (this.#numBatchesTracked = count));
        continue;
      }
      const copy = this.#readValues(v, k);
      if (copy.length !== this.numFeatures) throw sizeMismatchError(k, copy.length, this.numFeatures);
      const target = { weight: this.weight?.data, bias: this.bias?.data, running_mean: this.#runningMean, running_var: this.#runningVar }[k]!;
      updates.push(() => target.set(copy));
    }
    for (const u of updates) u();
    return { missingKeys, unexpectedKeys };
  }

  /** A state-dict value as a copy of the module's type: a float array, or an array of numbers where null is NaN (JSON's NaN). */
  #readValues(v: unknown, key: string): FloatArray {
    const out = (n: number) => (this.#f64 ? new Float64Array(n) : new Float32Array(n));
    if (isFloatArray(v)) {
      const copy = out(lengthOf(v));
      copy.set(v);
      return copy;
    }
    if (!Array.isArray(v)) throw typeError(key, 'a Float32Array, Float64Array or array of numbers', v);
    const n = v.length,
      copy = out(n);
    for (let i = 0; i < n; i++) {
      const e = v[i] as unknown;
      if (typeof e === 'number') copy[i] = e;
      else if (e === null) copy[i] = NaN;
      else throw typeError(`${key}[${i}]`, 'a number (or null for NaN, as JSON writes it)', e);
    }
    return copy;
  }
}

/** Batch normalization over (N, C) or (N, C, L) input (NLC with layout 'NLC'). */
export class BatchNorm1d<Affine extends boolean = true> extends BatchNormBase<Affine> {
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
export class BatchNorm2d<Affine extends boolean = true> extends BatchNormBase<Affine> {
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
export class BatchNorm3d<Affine extends boolean = true> extends BatchNormBase<Affine> {
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
