/** LayerNorm: PyTorch's `torch.nn.LayerNorm`, a thin stateful wrapper over `layerNorm`. */
import type { FloatArray } from './backend/kernels.js';
import type { Parameter } from './batchnorm.js';
import { checkEps, checkNormalizedShape, layerNormBackwardPlan, layerNormPlan } from './norm-functional.js';
import {
  NormModule,
  checkDtype,
  checkFlag,
  checkModuleOptions,
  convert,
  pyBool,
  pyTuple,
  pyFloat,
  type DtypeOption,
  type Saved,
  type StateEntry,
} from './norm-module.js';
import type { Tensor } from './tensor.js';

export interface LayerNormModuleOptions extends DtypeOption {
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
  /** Learnable weight (initialised to 1) and bias (to 0), one per normalized value. Default true. */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine: a learnable bias too. Default true. */
  bias?: boolean;
}

/** Layer normalization over the last dimensions, `normalizedShape` (an integer or an array). */
export class LayerNorm extends NormModule {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  readonly elementwiseAffine: boolean;
  /** γ, normalizedShape's values; null without elementwiseAffine. */
  readonly weight: Parameter | null;
  /** β; null without elementwiseAffine or with `bias: false`. */
  readonly bias: Parameter | null;

  constructor(normalizedShape: number | readonly number[], options: LayerNormModuleOptions = {}) {
    const o = checkModuleOptions(options, 'LayerNorm', ['eps', 'elementwiseAffine', 'bias', 'dtype']);
    const dtype = checkDtype(o.dtype ?? 'float32');
    super(dtype);
    this.normalizedShape = checkNormalizedShape(normalizedShape);
    this.eps = checkEps(o.eps ?? 1e-5);
    this.elementwiseAffine = checkFlag(o.elementwiseAffine ?? true, 'elementwiseAffine');
    const bias = checkFlag(o.bias ?? true, 'bias');
    const d = this.normalizedShape.reduce((a, b) => a * b, 1);
    this.weight = this.elementwiseAffine ? { data: new this.ctor(d).fill(1), grad: null, requiresGrad: true } : null;
    this.bias = this.elementwiseAffine && bias ? { data: new this.ctor(d), grad: null, requiresGrad: true } : null;
  }

  protected namedParameters(): Array<[string, Parameter]> {
    const ps: Array<[string, Parameter]> = [];
    if (this.weight) ps.push(['weight', this.weight]);
    if (this.bias) ps.push(['bias', this.bias]);
    return ps;
  }

  protected stateEntries(): StateEntry[] {
    return this.namedParameters().map(([key, p]) => ({ key, array: p.data, shape: this.normalizedShape }));
  }

  protected planForward(input: Tensor, out: FloatArray | undefined) {
    const opts = { weight: convert(this.weight?.data ?? null, input), bias: convert(this.bias?.data ?? null, input), eps: this.eps, out };
    return { plan: layerNormPlan(input, this.normalizedShape, opts, 'LayerNorm.forward'), inputStats: true };
  }

  protected planBackward(gradOutput: Tensor, saved: Saved, out: FloatArray | undefined) {
    const opts = { weight: convert(this.weight?.data ?? null, saved.x), saveMean: saved.saveMean, saveInvstd: saved.saveInvstd, out };
    return layerNormBackwardPlan(gradOutput, saved.x, this.normalizedShape, opts, 'LayerNorm.backward');
  }

  protected extraRepr(): string {
    return `${pyTuple(this.normalizedShape)}, eps=${pyFloat(this.eps)}, elementwise_affine=${pyBool(this.elementwiseAffine)}`;
  }
}
