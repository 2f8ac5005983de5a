/** GroupNorm: PyTorch's `torch.nn.GroupNorm`, a thin stateful wrapper over `groupNorm`. */
import type { FloatArray } from './backend/kernels.js';
import type { Parameter } from './batchnorm.js';
import { channelsInput, checkEps, checkPositiveInteger, groupNormBackwardPlan, groupNormPlan } from './norm-functional.js';
import { NormModule, checkDtype, checkFlag, checkModuleOptions, convert, pyBool, pyFloat, type DtypeOption, type Saved, type StateEntry } from './norm-module.js';
import { checkLayout, formatShape, type Layout, type Tensor } from './tensor.js';

export interface GroupNormModuleOptions extends DtypeOption {
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
  /** Learnable per-channel weight (initialised to 1) and bias (to 0). Default true. */
  affine?: boolean;
  /** Memory order of the input: channels-first (N, C, …, the default) or channels-last (N, …, C). */
  layout?: Layout;
}

/**
 * Group normalization of (N, C, …) input: the C channels in numGroups groups,
 * each (sample, group) normalized with its own statistics; good where batches
 * are small.
 */
export class GroupNorm extends NormModule {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  readonly affine: boolean;
  readonly layout: Layout;
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;

  constructor(numGroups: number, numChannels: number, options: GroupNormModuleOptions = {}) {
    const o = checkModuleOptions(options, 'GroupNorm', ['eps', 'affine', 'layout', 'dtype']);
    super(checkDtype(o.dtype ?? 'float32'));
    this.numGroups = checkPositiveInteger(numGroups, 'numGroups');
    this.numChannels = checkPositiveInteger(numChannels, 'numChannels');
    if (numChannels % numGroups !== 0) throw new RangeError('num_channels must be divisible by num_groups');
    this.eps = checkEps(o.eps ?? 1e-5);
    this.affine = checkFlag(o.affine ?? true, 'affine');
    this.layout = checkLayout(o.layout ?? 'channelsFirst');
    this.weight = this.affine ? { data: new this.ctor(numChannels).fill(1), grad: null } : null;
    this.bias = this.affine ? { data: new this.ctor(numChannels), grad: null } : null;
  }

  protected namedParameters(): Array<[string, Parameter]> {
    return this.weight && this.bias ? [['weight', this.weight], ['bias', this.bias]] : [];
  }

  protected stateEntries(): StateEntry[] {
    return this.namedParameters().map(([key, p]) => ({ key, array: p.data, shape: [this.numChannels] }));
  }

  /** The input's channels are this module's. */
  private checkChannels(input: Tensor): void {
    const { x, dims } = channelsInput(input, this.layout, 'GroupNorm');
    if (dims.c !== this.numChannels)
      throw new RangeError(`GroupNorm expected input with ${this.numChannels} channels (layout ${this.layout}) but received shape ${formatShape(x.shape)}`);
  }

  protected planForward(input: Tensor, out: FloatArray | undefined) {
    this.checkChannels(input);
    const opts = { weight: convert(this.weight?.data ?? null, input), bias: convert(this.bias?.data ?? null, input), eps: this.eps, layout: this.layout, out };
    return { plan: groupNormPlan(input, this.numGroups, opts, 'GroupNorm.forward'), inputStats: true };
  }

  protected planBackward(gradOutput: Tensor, saved: Saved, out: FloatArray | undefined) {
    const opts = { weight: convert(this.weight?.data ?? null, saved.x), saveMean: saved.saveMean, saveInvstd: saved.saveInvstd, layout: this.layout, out };
    return groupNormBackwardPlan(gradOutput, saved.x, this.numGroups, opts, 'GroupNorm.backward');
  }

  protected extraRepr(): string {
    return `${this.numGroups}, ${this.numChannels}, eps=${pyFloat(this.eps)}, affine=${pyBool(this.affine)}`;
  }
}
