/** GroupNorm: PyTorch's `torch.nn.GroupNorm`, a thin stateful wrapper over `groupNorm`. */
import type { FloatArray } from './backend/kernels.js';
import type { Parameter } from './batchnorm.js';
import { channelsInput, checkEps, checkPositiveInteger, groupNormBackwardPlan, groupNormPlan } from './norm-functional.js';
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
import { LAYOUTS, isChannelsLast, type Layout, type Tensor } from './tensor.js';
import { checkOneOf, groupNormModuleError, moduleShapeError } from './check.js';

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
    if (numChannels % numGroups !== 0) throw groupNormModuleError();
    this.eps = checkEps(o.eps ?? 1e-5);
    this.affine = checkFlag(o.affine ?? true, 'affine');
    this.layout = o.layout === undefined ? 'channelsFirst' : checkOneOf(o.layout, 'layout', LAYOUTS);
    this.weight = this.affine ? { data: new this.ctor(numChannels).fill(1), grad: null, requiresGrad: true } : null;
    this.bias = this.affine ? { data: new this.ctor(numChannels), grad: null, requiresGrad: true } : null;
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
    return this.namedParameters().map(([key, p]) => ({ key, array: p.data, shape: [this.numChannels] }));
  }

  /** The input's channels are this module's. */
  private checkChannels(input: Tensor): void {
    const { x, dims } = channelsInput(input, this.layout);
    if (dims.c !== this.numChannels) {
      const last = isChannelsLast(this.layout),
        rank = x.shape.length;
      const dimsText = last ? ['N', ...Array(rank - 2).fill('…'), String(this.numChannels)] : ['N', String(this.numChannels), ...Array(rank - 2).fill('…')];
      throw moduleShapeError('GroupNorm', this.numChannels, [rank], `[${dimsText.join(', ')}]`, this.layout, last ? null : 'channelsLast', x.shape);
    }
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
