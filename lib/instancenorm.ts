/**
 * InstanceNorm1d, InstanceNorm2d and InstanceNorm3d: PyTorch's modules, thin
 * stateful wrappers over `instanceNorm`. Each (sample, channel) is normalized
 * with its own statistics; with trackRunningStats the running ones are
 * updated in training (the batch's average, unbiased variance) and used in eval.
 */
import type { FloatArray } from './backend/kernels.js';
import type { Parameter } from './batchnorm.js';
import { checkEps, checkPositiveInteger, instanceNormBackwardPlan, instanceNormPlan, type NormGradients, type Plan } from './norm-functional.js';
import {
  NormModule,
  checkDtype,
  checkFlag,
  checkModuleOptions,
  convert,
  pyBool,
  pyFloat,
  type DtypeOption,
  type Saved,
  type StateEntry,
} from './norm-module.js';
import { LAYOUTS, isChannelsLast, sameShape, type Layout, type Tensor } from './tensor.js';
import { checkMomentum, checkOneOf, gradientShapeError, instanceChannelsError, instanceRankError, readTensor } from './check.js';

export interface InstanceNormModuleOptions extends DtypeOption {
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
  /**
   * Weight of each new batch in the running statistics, PyTorch's convention:
   * `running = (1 − momentum)·running + momentum·batch`. Default 0.1.
   */
  momentum?: number;
  /** Learnable per-channel weight and bias. Default false (as PyTorch's InstanceNorm). */
  affine?: boolean;
  /** Keep running statistics and use them in eval mode. Default false. */
  trackRunningStats?: boolean;
  /** Memory order: channels-first (the default) or channels-last. */
  layout?: Layout;
}

abstract class InstanceNormBase extends NormModule {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly layout: Layout;
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  /** Null without trackRunningStats. */
  readonly runningMean: FloatArray | null;
  readonly runningVar: FloatArray | null;
  /** Kept for PyTorch's state dict (PyTorch's InstanceNorm never counts); null without trackRunningStats. */
  numBatchesTracked: number | null;
  /** Input ranks without and with the batch dimension. */
  protected abstract get rank(): number;

  constructor(numFeatures: number, options: InstanceNormModuleOptions = {}) {
    const name = new.target.name;
    const o = checkModuleOptions(options, name, ['eps', 'momentum', 'affine', 'trackRunningStats', 'layout', 'dtype']);
    super(checkDtype(o.dtype ?? 'float32'));
    this.numFeatures = checkPositiveInteger(numFeatures, 'numFeatures');
    this.eps = checkEps(o.eps ?? 1e-5);
    this.momentum = checkMomentum(o.momentum ?? 0.1, false)!;
    this.affine = checkFlag(o.affine ?? false, 'affine');
    this.trackRunningStats = checkFlag(o.trackRunningStats ?? false, 'trackRunningStats');
    this.layout = o.layout === undefined ? 'channelsFirst' : checkOneOf(o.layout, 'layout', LAYOUTS);
    const C = numFeatures;
    this.weight = this.affine ? { data: new this.ctor(C).fill(1), grad: null, requiresGrad: true } : null;
    this.bias = this.affine ? { data: new this.ctor(C), grad: null, requiresGrad: true } : null;
    this.runningMean = this.trackRunningStats ? new this.ctor(C) : null;
    this.runningVar = this.trackRunningStats ? new this.ctor(C).fill(1) : null;
    this.numBatchesTracked = this.trackRunningStats ? 0 : null;
  }

  protected namedParameters(): Array<[string, Parameter]> {
    return this.weight && this.bias
      ? [
          ['weight', this.weight],
          ['bias', this.bias],
        ]
      : [];
  }

  protected stateEntries(): StateEntry[] {
    const e: StateEntry[] = this.namedParameters().map(([key, p]) => ({ key, array: p.data, shape: [this.numFeatures] }));
    if (this.runningMean && this.runningVar)
      e.push(
        { key: 'running_mean', array: this.runningMean, shape: [this.numFeatures] },
        { key: 'running_var', array: this.runningVar, shape: [this.numFeatures] },
      );
    return e;
  }

  protected override counter() {
    return this.numBatchesTracked === null
      ? null
      : { key: 'num_batches_tracked', get: () => this.numBatchesTracked ?? 0, set: (v: number) => void (this.numBatchesTracked = v) };
  }

  /**
   * PyTorch's checks (the rank, the channel count), and unbatched input
   * (C, …) seen as a batch of one.
   */
  private batched(input: Tensor): Tensor {
    const x = readTensor(input, 'input'),
      r = this.rank,
      name = this.constructor.name;
    if (x.shape.length !== r && x.shape.length !== r + 1) throw instanceRankError(name, r, x.shape.length);
    const shape = x.shape.length === r ? [1, ...x.shape] : [...x.shape];
    const dim = isChannelsLast(this.layout) ? shape.length - 1 : 1;
    if (shape[dim] !== this.numFeatures) throw instanceChannelsError(name, dim - (x.shape.length === r ? 1 : 0), this.numFeatures, shape[dim], this.layout);
    return { data: x.data, shape };
  }

  /** The plan's result in the caller's shape (unbatched stays unbatched). */
  private reshaped<R extends { gradInput: Tensor } | Tensor>(plan: Plan<R>, shape: readonly number[], grad: boolean): Plan<R> {
    return {
      calls: plan.calls,
      finish: () => {
        const r = plan.finish();
        if (grad) (r as NormGradients).gradInput = { data: (r as NormGradients).gradInput.data, shape: [...shape] };
        else (r as Tensor).shape = [...shape];
        return r;
      },
    };
  }

  protected planForward(input: Tensor, out: FloatArray | undefined) {
    const x = this.batched(input);
    const useInputStats = this.training || !this.trackRunningStats;
    // Running statistics of the input's type: the module's own arrays, or copies written back after the call.
    const rm = convert(this.runningMean, x),
      rv = convert(this.runningVar, x);
    const opts = {
      weight: convert(this.weight?.data ?? null, x),
      bias: convert(this.bias?.data ?? null, x),
      useInputStats,
      momentum: this.momentum,
      eps: this.eps,
      layout: this.layout,
      out,
    };
    const plan = instanceNormPlan(x, rm, rv, opts, `${this.constructor.name}.forward`);
    const commit = () => {
      if (rm && rm !== this.runningMean) this.runningMean!.set(rm);
      if (rv && rv !== this.runningVar) this.runningVar!.set(rv);
    };
    return { plan: this.reshaped(plan, input.shape, false), inputStats: useInputStats, commit };
  }

  protected planBackward(gradOutput: Tensor, saved: Saved, out: FloatArray | undefined) {
    const x = this.batched(saved.x);
    const g = readTensor(gradOutput, 'gradOutput');
    if (!sameShape(g.shape, saved.x.shape)) throw gradientShapeError("the last forward's shape", saved.x.shape, g.shape);
    const dy = { data: g.data, shape: x.shape };
    const opts = {
      weight: convert(this.weight?.data ?? null, x),
      saveMean: saved.saveMean,
      saveInvstd: saved.saveInvstd,
      useInputStats: saved.inputStats,
      layout: this.layout,
      out,
    };
    return this.reshaped(instanceNormBackwardPlan(dy, x, opts, `${this.constructor.name}.backward`), saved.x.shape, true);
  }

  protected extraRepr(): string {
    return `${this.numFeatures}, eps=${pyFloat(this.eps)}, momentum=${pyFloat(this.momentum)}, affine=${pyBool(this.affine)}, track_running_stats=${pyBool(this.trackRunningStats)}`;
  }
}

/** Instance normalization of (N, C, L) or unbatched (C, L) input. */
export class InstanceNorm1d extends InstanceNormBase {
  protected get rank(): number {
    return 2;
  }
}

/** Instance normalization of (N, C, H, W) or unbatched (C, H, W) input. */
export class InstanceNorm2d extends InstanceNormBase {
  protected get rank(): number {
    return 3;
  }
}

/** Instance normalization of (N, C, D, H, W) or unbatched (C, D, H, W) input. */
export class InstanceNorm3d extends InstanceNormBase {
  protected get rank(): number {
    return 4;
  }
}

export type { InstanceNormBase };
