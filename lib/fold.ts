/**
 * Folding a BatchNorm in eval into the Linear or convolution before it, for
 * inference: PyTorch's `fuse_linear_bn_eval` / `fuse_conv_bn_eval`.
 *
 * BN(eval)(layer(x)) = s ⊙ (W x + b − μ) + β with s = γ / √(σ² + eps), per
 * output channel o: the folded layer has W'[o, …] = s[o]·W[o, …] and
 * b'[o] = s[o]·(b[o] − μ[o]) + β[o]. Computed in float64, returned in the
 * layer weight's type.
 */
import type { FloatArray } from './backend/kernels.js';
import type { BatchNormBase } from './batchnorm.js';
import { checkBoolean, checkOptions, checkPositiveInteger, isFloat64, isFloatArray, lengthOf, rangeError, readTensor, typeError } from './check.js';
import { formatShape, type Tensor } from './tensor.js';

/** The layer before the BatchNorm: its weight (with its shape) and bias (null or absent: none). */
export interface FoldLayer<A extends FloatArray = FloatArray> {
  /**
   * Linear: [out, in]. Conv: [Cout, Cin/groups, …kernel]. ConvTranspose
   * (`transpose: true`): [Cin, Cout/groups, …kernel], PyTorch's layouts.
   */
  weight: Tensor<A>;
  bias?: A | null;
}

export interface FoldOptions {
  /** The layer is a transposed convolution (weight [Cin, Cout/groups, …]). Default false. */
  transpose?: boolean;
  /** Its groups (a transposed convolution's output channel o of group g is g·Cout/groups + j). Default 1. */
  groups?: number;
}

const FOLD_OPTIONS = ['transpose', 'groups'] as const;

/**
 * A new `{ weight, bias }` for `layer` followed by `bn` in eval mode: the
 * folded layer alone gives what layer → bn.eval() gave. The layer may have no
 * bias (the folded one has one), `bn` no affine parameters (γ 1, β 0); `bn`
 * needs running statistics.
 */
export function foldBatchNorm<A extends FloatArray>(layer: FoldLayer<A>, bn: BatchNormBase, options: FoldOptions = {}): { weight: Tensor<A>; bias: A } {
  checkOptions(options, 'foldBatchNorm', FOLD_OPTIONS);
  const { transpose = false, groups = 1 } = options;
  checkBoolean(transpose, 'transpose');
  checkPositiveInteger(groups, 'groups');
  if (typeof layer !== 'object' || layer === null) throw typeError('layer', 'an object { weight: { data, shape }, bias }', layer);
  const w = readTensor(layer.weight, 'layer.weight');
  const shape = w.shape,
    C = bn.numFeatures;
  if (shape.length < 2) throw rangeError('layer.weight.shape', 'a shape of rank 2 or more ([out, in] or a convolution weight)', formatShape(shape));
  const bias0 = layer.bias ?? null;
  // Output channels of the layer, and how to find an element's.
  const perGroupOut = transpose ? shape[1] : 0,
    inPerGroup = transpose ? shape[0] / groups : 0;
  if (transpose && !Number.isInteger(inPerGroup))
    throw rangeError('groups', `a divisor of layer.weight.shape[0] (${shape[0]}, the input channels of a transposed convolution)`, groups);
  const cout = transpose ? perGroupOut * groups : shape[0];
  if (cout !== C)
    throw new RangeError(
      `Expected the layer's ${cout} output channels (${transpose ? `weight.shape[1] × groups = ${shape[1]} × ${groups}` : 'weight.shape[0]'}) to equal the numFeatures of ${bn.constructor.name} (${C})` +
        (transpose ? '' : '; a transposed convolution needs { transpose: true }'),
    );
  if (bias0 !== null && (!isFloatArray(bias0) || lengthOf(bias0) !== C))
    throw typeError('layer.bias', `a Float32Array or Float64Array of length ${C}, or null`, bias0);
  const rm = bn.runningMean,
    rv = bn.runningVar;
  if (rm === null || rv === null)
    throw new TypeError(
      `Expected running statistics in ${bn.constructor.name} for foldBatchNorm but received none (trackRunningStats false, or set to null): a BatchNorm that normalizes with batch statistics in eval cannot be folded`,
    );

  // Per output channel, in float64: scale s and shift.
  const scale = new Float64Array(C),
    shift = new Float64Array(C);
  for (let o = 0; o < C; o++) {
    const s = (bn.weight ? bn.weight.data[o] : 1) / Math.sqrt(rv[o] + bn.eps);
    scale[o] = s;
    shift[o] = ((bias0 ? bias0[o] : 0) - rm[o]) * s + (bn.bias ? bn.bias.data[o] : 0);
  }
  const f64 = isFloat64(w.data),
    n = lengthOf(w.data);
  const out = (f64 ? new Float64Array(n) : new Float32Array(n)) as A,
    bias = (f64 ? new Float64Array(C) : new Float32Array(C)) as A;
  let inner = 1;
  for (let i = 2; i < shape.length; i++) inner *= shape[i];
  const rowLen = shape[1] * inner; // elements per weight.shape[0] index
  for (let i = 0; i < shape[0]; i++)
    for (let j = 0; j < shape[1]; j++) {
      const o = transpose ? Math.floor(i / inPerGroup) * perGroupOut + j : i;
      const s = scale[o],
        base = i * rowLen + j * inner;
      for (let k = 0; k < inner; k++) out[base + k] = w.data[base + k] * s;
    }
  bias.set(shift);
  return { weight: { data: out, shape: shape.slice() }, bias };
}
