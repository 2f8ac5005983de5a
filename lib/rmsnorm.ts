/**
 * RMSNorm: PyTorch 2.4's `torch.nn.RMSNorm`, y = x / √(mean(x²) + eps) · weight
 * over the last dimensions, a thin stateful wrapper over `rmsNorm`.
 */
import type { FloatArray } from './backend/kernels.js';
import type { Parameter } from './batchnorm.js';
import { checkEps, checkNormalizedShape, rmsNormBackwardPlan, rmsNormPlan } from './norm-functional.js';
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

export interface RMSNormModuleOptions extends DtypeOption {
  /** Added to mean(x²). Default null: the machine epsilon of the input's type, as torch.nn.RMSNorm. */
  eps?: number | null;
  /** Learnable weight, initialised to 1, one per normalized value. Default true. */
  elementwiseAffine?: boolean;
}

export class RMSNorm extends NormModule {
  readonly normalizedShape: readonly number[];
  readonly eps: number | null;
  readonly elementwiseAffine: boolean;
  readonly weight: Parameter | null;

  constructor(normalizedShape: number | readonly number[], options: RMSNormModuleOptions = {}) {
    const o = checkModuleOptions(options, 'RMSNorm', ['eps', 'elementwiseAffine', 'dtype']);
    super(checkDtype(o.dtype ?? 'float32'));
    this.normalizedShape = checkNormalizedShape(normalizedShape);
    this.eps = o.eps === null || o.eps === undefined ? null : checkEps(o.eps);
    this.elementwiseAffine = checkFlag(o.elementwiseAffine ?? true, 'elementwiseAffine');
    const d = this.normalizedShape.reduce((a, b) => a * b, 1);
    this.weight = this.elementwiseAffine ? { data: new this.ctor(d).fill(1), grad: null, requiresGrad: true } : null;
  }

  protected namedParameters(): Array<[string, Parameter]> {
    return this.weight ? [['weight', this.weight]] : [];
  }

  protected stateEntries(): StateEntry[] {
    return this.weight ? [{ key: 'weight', array: this.weight.data, shape: this.normalizedShape }] : [];
  }

  protected planForward(input: Tensor, out: FloatArray | undefined) {
    const opts = { weight: convert(this.weight?.data ?? null, input), eps: this.eps, out };
    return { plan: rmsNormPlan(input, this.normalizedShape, opts, 'RMSNorm.forward'), inputStats: true };
  }

  protected planBackward(gradOutput: Tensor, saved: Saved, out: FloatArray | undefined) {
    const opts = { weight: convert(this.weight?.data ?? null, saved.x), saveInvstd: saved.saveInvstd, out };
    return rmsNormBackwardPlan(gradOutput, saved.x, this.normalizedShape, opts, 'RMSNorm.backward');
  }

  protected extraRepr(): string {
    return `${pyTuple(this.normalizedShape)}, eps=${this.eps === null ? 'None' : pyFloat(this.eps)}, elementwise_affine=${pyBool(this.elementwiseAffine)}`;
  }
}
