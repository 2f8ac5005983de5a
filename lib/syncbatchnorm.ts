/**
 * SyncBatchNorm: batch normalization whose training statistics are those of
 * the whole batch split across the ranks of a Collective (worker_threads,
 * MPI processes, any transport), as PyTorch's `nn.SyncBatchNorm`. Each rank
 * normalizes its slice with the combined statistics and gets the input
 * gradient of the whole batch's BatchNorm; the weight and bias gradients stay
 * local, for the data-parallel gradient all-reduce (`allReduceGradients`),
 * as with PyTorch's DistributedDataParallel.
 *
 * Its state — parameters, running statistics, mode — lives in a BatchNorm
 * module (the one converted, or one made for it): `stateDict()` has the same
 * keys, and a module converted with `SyncBatchNorm.convert` shares its arrays
 * with the original, as PyTorch's `convert_sync_batchnorm` shares parameters.
 */
import type { FloatArray } from './backend/kernels.js';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, type BatchNormBase, type BatchNormModuleOptions, type Parameter, type StateDict } from './batchnorm.js';
import { checkCollective, runCollective, type Collective } from './collective/collective.js';
import { batchNormAsync, batchNormBackwardAsync } from './functional.js';
import {
  batchNormBackwardElemt,
  batchNormBackwardReduce,
  batchNormElemt,
  batchNormGatherStats,
  batchNormStats,
  invstdOf,
  packStats,
  unpackStats,
  updateRunningStats,
  type BatchNormStats,
} from './splitphase.js';
import {
  bufferOf,
  bufferOrNull,
  busyError,
  checkApart,
  checkArray,
  checkBothOrNeither,
  checkInPlaceOrApart,
  checkOneOf,
  checkOptions,
  checkRank,
  gradientShapeError,
  moduleShapeError,
  readTensor,
  sharesMemory,
  syncValuesPerChannelError,
  typedArrayName,
} from './check.js';
import { dimsOf, isChannelsLast, LAYOUTS, sameShape, type Dims, type Layout, type Tensor } from './tensor.js';

/** BatchNorm's options (eps, momentum, affine, trackRunningStats, layout, dtype, unbiasedRunningVar); layout any channels-first or channels-last name. */
export type SyncBatchNormOptions = Omit<BatchNormModuleOptions, 'checkFinite'>;

const OPTION_KEYS = ['eps', 'momentum', 'affine', 'trackRunningStats', 'layout', 'dtype', 'unbiasedRunningVar'];

/** What the last forward normalized with. */
interface Saved {
  x: FloatArray;
  shape: number[];
  dims: Dims;
  mean: Float64Array;
  invstd: Float64Array;
  /** Values per channel of the whole batch (all ranks). */
  count: number;
  /** Batch statistics (the backward differentiates through them) or frozen running ones. */
  batchStats: boolean;
  /** The statistics are the whole batch's (a training forward): the backward communicates too. */
  synced: boolean;
  /** The forward wrote its output over x (out: input.data): x is gone. */
  overwritten: boolean;
}

/** A per-channel array in `like`'s type: `a` itself when it is already. */
function asType(a: FloatArray | null, like: FloatArray): FloatArray | null {
  if (a === null || a.constructor === like.constructor) return a;
  return like instanceof Float64Array ? Float64Array.from(a) : Float32Array.from(a);
}

function isBatchNorm(m: unknown): m is BatchNormBase {
  return m instanceof BatchNorm1d || m instanceof BatchNorm2d || m instanceof BatchNorm3d;
}

/** The module SyncBatchNorm's constructor takes as its state instead of making one (convert). */
let adopting: BatchNormBase | null = null;

function adopt(bn: BatchNormBase, collective: Collective): SyncBatchNorm {
  adopting = bn;
  try {
    return new SyncBatchNorm(bn.numFeatures, collective, { layout: isChannelsLast(bn.layout) ? 'channelsLast' : 'channelsFirst' });
  } finally {
    adopting = null;
  }
}

export class SyncBatchNorm {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly layout: Layout;
  readonly unbiasedRunningVar: boolean;
  /** The group this module synchronizes over; replaceable between calls (checked at each). */
  collective: Collective;
  /** Parameters, buffers and mode (shared with the converted module). */
  readonly #state: BatchNormBase;
  #saved: Saved | null = null;
  #pending: string | null = null;

  /**
   * A SyncBatchNorm over `collective` for input (N, C, …) of any rank from 2
   * (every rank of the group holds a slice of the batch along N). Options as
   * BatchNorm's.
   */
  constructor(numFeatures: number, collective: Collective, options: SyncBatchNormOptions = {}) {
    checkOptions(options, 'SyncBatchNorm', OPTION_KEYS);
    const { layout = 'channelsFirst', ...rest } = options;
    checkOneOf(layout, 'layout', LAYOUTS);
    this.collective = checkCollective(collective);
    // The state: the converted module's, or a BatchNorm1d's (whose own
    // layout and shape checks are never used here).
    this.#state = adopting ?? new BatchNorm1d(numFeatures, rest);
    this.layout = layout;
    this.numFeatures = this.#state.numFeatures;
    this.eps = this.#state.eps;
    this.momentum = this.#state.momentum;
    this.affine = this.#state.affine;
    this.trackRunningStats = this.#state.trackRunningStats;
    this.unbiasedRunningVar = this.#state.unbiasedRunningVar;
  }

  /**
   * PyTorch's `SyncBatchNorm.convert_sync_batchnorm`: a BatchNorm1d/2d/3d
   * becomes a SyncBatchNorm sharing its parameters, running statistics and
   * mode; any other object has the BatchNorm modules among its own
   * properties (and arrays), at any depth, replaced in place, and is
   * returned. Every module converted uses `collective`.
   */
  static convert<M>(module: M, collective: Collective): M extends BatchNormBase ? SyncBatchNorm : M {
    checkCollective(collective);
    type R = M extends BatchNormBase ? SyncBatchNorm : M;
    if (isBatchNorm(module)) return adopt(module, collective) as R;
    const seen = new Set<object>();
    const walk = (o: unknown): void => {
      if (typeof o !== 'object' || o === null || seen.has(o) || ArrayBuffer.isView(o) || o instanceof SyncBatchNorm) return;
      seen.add(o);
      for (const k of Object.keys(o)) {
        const v = (o as Record<string, unknown>)[k];
        if (isBatchNorm(v)) (o as Record<string, unknown>)[k] = adopt(v, collective);
        else walk(v);
      }
    };
    walk(module);
    return module as R;
  }

  /** The layout in the functional API's words (SyncBatchNorm takes any rank). */
  get #generic(): Layout {
    return isChannelsLast(this.layout) ? 'channelsLast' : 'channelsFirst';
  }

  #checkInput(input: unknown): { x: Tensor; dims: Dims; type: string } {
    const x = readTensor(input, 'input');
    checkRank(x.shape, 'input', 2);
    const dims = dimsOf(x.shape, isChannelsLast(this.layout));
    if (dims.c !== this.numFeatures) {
      const cl = isChannelsLast(this.layout);
      throw moduleShapeError(
        'SyncBatchNorm',
        this.numFeatures,
        [x.shape.length],
        cl ? `[N, …, ${this.numFeatures}]` : `[N, ${this.numFeatures}, …]`,
        this.layout,
        cl ? null : 'channelsLast',
        x.shape,
      );
    }
    return { x, dims, type: typedArrayName(x.data)! };
  }

  /** `out`, checked before anything runs: the input's type and length, the input itself (in place) or apart from it and from the module's arrays. */
  #checkOut(options: unknown, like: FloatArray, type: string, method: string, likeName: string): FloatArray | undefined {
    checkOptions(options, `SyncBatchNorm.${method}`, ['out']);
    const out = (options as { out?: unknown }).out;
    if (out === undefined) return undefined;
    checkArray(out, 'out', type, like.length);
    const o = out as FloatArray,
      buffer = bufferOf(o);
    checkInPlaceOrApart(o, like, 'out', likeName);
    for (const [k, a] of [
      ['weight', this.weight?.data],
      ['bias', this.bias?.data],
      ['weight.grad', this.weight?.grad],
      ['bias.grad', this.bias?.grad],
      ['runningMean', this.runningMean],
      ['runningVar', this.runningVar],
    ] as const)
      checkApart(o, buffer, a, bufferOrNull(a), 'out', `the module's ${k}`);
    return o;
  }

  /**
   * Normalizes this rank's slice. Training mode: with the statistics of the
   * whole batch over every rank (one allGather of 1 + 2C values), updating
   * the running statistics with them (unbiased, with the whole batch's
   * count); every rank of the group must call it (a rank with an empty slice
   * too). Eval mode, as PyTorch's: no communication, the running statistics
   * (without them, the slice's own). A call that throws or rejects changes
   * nothing.
   */
  async forward<A extends FloatArray>(input: Tensor<A>, options: { out?: A } = {}): Promise<Tensor<A>> {
    this.#checkIdle('forward');
    const { x, dims, type } = this.#checkInput(input);
    const out = this.#checkOut(options, x.data, type, 'forward', 'input.data');
    const state = this.#state,
      C = this.numFeatures;
    checkBothOrNeither(state.runningMean, state.runningVar, 'runningMean of SyncBatchNorm', 'runningVar');
    const weight = asType(state.weight?.data ?? null, x.data),
      bias = asType(state.bias?.data ?? null, x.data);
    const shape = [...x.shape];
    if (!state.training) {
      // Eval: no communication, as PyTorch's (need_sync is false out of
      // training): the running statistics, or without them the slice's own.
      const batchStats = state.runningMean === null;
      const rm = asType(state.runningMean, x.data),
        rv = asType(state.runningVar, x.data);
      this.#pending = 'forward';
      let r: Awaited<ReturnType<typeof batchNormAsync>>;
      try {
        r = await batchNormAsync(x, rm, rv, { weight, bias, training: batchStats, eps: this.eps, layout: this.#generic, out });
      } finally {
        this.#pending = null;
      }
      const mean = Float64Array.from(r.saveMean),
        invstd = Float64Array.from(r.saveInvstd);
      if (!batchStats) for (let ch = 0; ch < C; ch++) invstd[ch] = 1 / Math.sqrt(rv![ch] + this.eps); // in double, not the saved T
      this.#saved = { x: x.data, shape, dims, mean, invstd, count: dims.n * dims.s, batchStats, synced: false, overwritten: sharesMemory(r.data, x.data) };
      return { data: r.data as A, shape };
    }
    const c = checkCollective(this.collective);
    const local = batchNormStats(x, { layout: this.#generic });
    this.#pending = 'forward';
    let gathered: Float64Array;
    try {
      gathered = await runCollective(c, 'allGather', packStats(local), c.worldSize * (1 + 2 * C));
    } finally {
      this.#pending = null;
    }
    const all = unpackStats(gathered, c.worldSize, C);
    if (all[c.rank].count !== local.count)
      throw new Error(
        `Expected collective.allGather to put this rank's data at rank ${c.rank}'s place, but the count there is ${all[c.rank].count}, not ${local.count}`,
      );
    const total: BatchNormStats = batchNormGatherStats(all);
    if (total.count === 1) throw syncValuesPerChannelError(c.worldSize, shape);
    const invstd = total.count > 0 ? invstdOf(total, this.eps) : new Float64Array(C);
    const y = batchNormElemt(x, total.mean, invstd, { weight, bias, layout: this.#generic, out });
    // Nothing below throws: the module's state changes only now.
    if (state.training && state.trackRunningStats && state.numBatchesTracked !== null) {
      const momentum = this.momentum ?? 1 / (state.numBatchesTracked + 1);
      if (state.runningMean && state.runningVar)
        updateRunningStats(total, state.runningMean, state.runningVar, { momentum, unbiased: this.unbiasedRunningVar });
      state.numBatchesTracked += 1;
    }
    this.#saved = {
      x: x.data,
      shape,
      dims,
      mean: total.mean,
      invstd,
      count: total.count,
      batchStats: true,
      synced: true,
      overwritten: sharesMemory(y.data, x.data),
    };
    return y as Tensor<A>;
  }

  /**
   * Gradient of the last forward for this rank's slice: dx of the whole
   * batch's BatchNorm (one allReduceSum of 2C values after a training
   * forward; none after an eval forward, whose statistics are constants, or
   * the slice's own without running statistics).
   * Adds this rank's weight and bias gradients into `.grad`: combine them
   * over the ranks with `allReduceGradients`. A call that throws or rejects
   * changes nothing.
   */
  async backward<A extends FloatArray>(gradOutput: Tensor<A>, options: { out?: A } = {}): Promise<Tensor<A>> {
    this.#checkIdle('backward');
    const saved = this.#saved;
    if (!saved) throw new Error('SyncBatchNorm.backward() needs a forward() first: there are no saved statistics');
    if (saved.overwritten && (saved.batchStats || this.affine))
      throw new Error(
        'SyncBatchNorm.backward() needs the input of the last forward, which that forward overwrote (out was input.data): give forward a separate out, or none, when a backward follows',
      );
    const dy = readTensor(gradOutput, 'gradOutput');
    if (!sameShape(dy.shape, saved.shape)) throw gradientShapeError("the last forward's shape", saved.shape, dy.shape);
    const type = typedArrayName(saved.x)!;
    checkArray(dy.data, 'gradOutput.data', type, saved.x.length);
    const out = this.#checkOut(options, dy.data, type, 'backward', 'gradOutput.data');
    if (out) checkInPlaceOrApart(out, saved.x, 'out', "the last forward's input");
    const x: Tensor = { data: saved.x, shape: saved.shape };
    const weight = asType(this.#state.weight?.data ?? null, saved.x),
      C = this.numFeatures;
    let dx: FloatArray, gw: Float64Array, gb: Float64Array;
    if (!saved.synced) {
      // After an eval forward: local, as its forward was.
      const T = saved.x instanceof Float64Array ? Float64Array : Float32Array;
      this.#pending = 'backward';
      try {
        const g = await batchNormBackwardAsync(dy, x, {
          weight,
          saveMean: T.from(saved.mean),
          saveInvstd: T.from(saved.invstd),
          training: saved.batchStats,
          layout: this.#generic,
          out,
        });
        dx = g.gradInput.data;
        gw = Float64Array.from(g.gradWeight);
        gb = Float64Array.from(g.gradBias);
      } finally {
        this.#pending = null;
      }
    } else {
      const c = checkCollective(this.collective);
      const local = batchNormBackwardReduce(dy, x, saved.mean, { layout: this.#generic });
      gb = local.sumDy;
      gw = new Float64Array(C);
      for (let ch = 0; ch < C; ch++) gw[ch] = saved.invstd[ch] * local.sumDyXmu[ch];
      if (saved.count === 0) {
        dx = out ?? new (saved.x.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(0);
      } else {
        const packed = new Float64Array(2 * C);
        packed.set(local.sumDy);
        packed.set(local.sumDyXmu, C);
        this.#pending = 'backward';
        let sum: Float64Array;
        try {
          sum = await runCollective(c, 'allReduceSum', packed, 2 * C);
        } finally {
          this.#pending = null;
        }
        const sums = { sumDy: sum.slice(0, C), sumDyXmu: sum.slice(C) };
        dx = batchNormBackwardElemt(dy, x, saved.mean, saved.invstd, sums, saved.count, { weight, layout: this.#generic, out }).data;
      }
    }
    if (this.weight && this.bias) {
      this.weight.grad ??= new (this.weight.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(C);
      this.bias.grad ??= new (this.bias.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(C);
      for (let ch = 0; ch < C; ch++) {
        this.weight.grad[ch] += gw[ch];
        this.bias.grad[ch] += gb[ch];
      }
    }
    return { data: dx as A, shape: [...saved.shape] };
  }

  /** γ (shared with the converted module); null without affine. */
  get weight(): Parameter | null {
    return this.#state.weight;
  }
  get bias(): Parameter | null {
    return this.#state.bias;
  }
  get runningMean(): FloatArray | null {
    return this.#state.runningMean;
  }
  set runningMean(v: FloatArray | null) {
    this.#state.runningMean = v;
  }
  get runningVar(): FloatArray | null {
    return this.#state.runningVar;
  }
  set runningVar(v: FloatArray | null) {
    this.#state.runningVar = v;
  }
  get numBatchesTracked(): number | null {
    return this.#state.numBatchesTracked;
  }
  get training(): boolean {
    return this.#state.training;
  }

  /** PyTorch's repr: `SyncBatchNorm(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)`. */
  toString(): string {
    return String(this.#state).replace(/^\w+\(/, 'SyncBatchNorm(');
  }

  /** util.inspect and console.log print the repr too. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  train(mode = true): this {
    this.#state.train(mode);
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  parameters(): Parameter[] {
    return this.#state.parameters();
  }
  zeroGrad(): void {
    this.#state.zeroGrad();
  }
  stateDict(): StateDict {
    this.#checkIdle('stateDict');
    return this.#state.stateDict();
  }
  loadStateDict(stateDict: StateDict, options: { strict?: boolean } = {}): { missingKeys: string[]; unexpectedKeys: string[] } {
    this.#checkIdle('loadStateDict');
    return this.#state.loadStateDict(stateDict, options);
  }

  #checkIdle(method: string): void {
    if (this.#pending) throw busyError('SyncBatchNorm', method, this.#pending);
  }
}
