/**
 * tf.layers' `LayerNormalization` on this package's LayerNorm.
 *
 * The class extends TF.js' own (the one registered under the class name
 * `LayerNormalization`), so the config, the weights (`gamma`, `beta`, their
 * shape the input's sizes on `axis` in the order given, only with
 * `scale`/`center`), the initializers and regularizers, and the saved JSON
 * are TF.js' exactly. Its semantics, which this class keeps: `axis` (default
 * −1) is one axis or a list of them, the statistics of each position on the
 * other axes are taken over all of them together (mean and biased variance),
 * `y = (x − mean)/√(var + ε)·gamma + beta`, `epsilon` default 1e-3; gamma's
 * values are read in the order of the sorted axes (TF.js reshapes gamma to
 * the input's rank without transposing it).
 *
 * On a backend with this package's kernels (`installTfjsKernels`), `call`
 * moves the normalized axes last (a transpose, when they are not last
 * already), normalizes each row of their values with one `LayerNormRows`
 * kernel (the package's `layerNorm`) and moves them back; its gradient is one
 * `LayerNormRowsGrad` (`layerNormBackward`). Training and inference are the
 * same computation. Elsewhere, and for an input that is not float32, it runs
 * TF.js' code, except where that one cannot be differentiated: without gamma
 * or beta (`scale`/`center` false) tf.batchNorm's gradient meets the missing
 * input and throws, and the same computation runs in elementwise TF.js ops.
 *
 * The arguments are checked when the layer is made, and `axis` against the
 * input's rank when it is built, with this package's messages (TF.js' own
 * accepts an empty axis list, any epsilon and any center/scale value). Keys
 * it does not know are left to TF.js, which ignores them: configs converted
 * from Keras carry some (beta_constraint).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerVariable, layers } from '@tensorflow/tfjs-layers';
import { checkBoolean, checkEps, describe, invalidParameterError } from '../check.js';
import { LayerNormRows, layerNormInstalledOn } from './layernorm-kernels.js';
import { oneTensor, registerLayer, stockClass } from './stock.js';

type StockLayerNormalization = ReturnType<typeof layers.layerNormalization>;
/** tf.layers.layerNormalization's arguments. */
export type LayerNormalizationLayerArgs = NonNullable<Parameters<typeof layers.layerNormalization>[0]>;
type Kwargs = Parameters<StockLayerNormalization['call']>[1];
type Shape = Parameters<StockLayerNormalization['build']>[0];

/** The stock layer's fields this class reads (private in TF.js' typings). */
interface Fields {
  /** As given before build; a list of non-negative axes after. */
  axis: number | number[];
  epsilon: number;
  gamma: LayerVariable | null;
  beta: LayerVariable | null;
}

type StockClass = new (args?: LayerNormalizationLayerArgs) => StockLayerNormalization;
/** Marks this class for stockClass (./stock.ts), which looks past it. */
const DROP_IN: unique symbol = Symbol.for('batchnorm.tfjs.LayerNormalization');
const Stock = stockClass<StockClass>('LayerNormalization');
const LAYER = 'LayerNormalization';

const AXIS_EXPECTED = 'an integer or a non-empty array of distinct integers';

/** The constructor's arguments, as far as this class reads them. */
function checkArgs(args: unknown): void {
  if (args == null) return;
  if (typeof args !== 'object' || Array.isArray(args)) throw new TypeError(invalidParameterError(`${LAYER}'s arguments`, 'an object', describe(args)));
  const { axis, epsilon, center, scale } = args as Record<string, unknown>;
  if (axis != null) {
    const axes = typeof axis === 'number' ? [axis] : axis;
    const text = Array.isArray(axis) ? JSON.stringify(axis) : describe(axis);
    if (!Array.isArray(axes) || !axes.every((a) => typeof a === 'number'))
      throw new TypeError(invalidParameterError(`${LAYER}'s axis`, AXIS_EXPECTED, text, 'for example -1 (the last axis) or [-2, -1]'));
    if (axes.length === 0 || !axes.every((a) => Number.isInteger(a)) || new Set(axes).size !== axes.length)
      throw new RangeError(invalidParameterError(`${LAYER}'s axis`, AXIS_EXPECTED, text, 'for example -1 (the last axis) or [-2, -1]'));
  }
  if (epsilon != null) checkEps(epsilon, `${LAYER}'s epsilon`);
  if (center != null) checkBoolean(center, `${LAYER}'s center`);
  if (scale != null) checkBoolean(scale, `${LAYER}'s scale`);
}

/** The axes as non-negative indices for an input of the given shape, checked against it. */
function resolveAxes(axis: number | number[], shape: readonly (number | null)[]): number[] {
  const rank = shape.length;
  const given = typeof axis === 'number' ? [axis] : axis;
  const axes = given.map((a) => (a < 0 ? a + rank : a));
  const text = `${JSON.stringify(axis)} for an input of shape [${shape.map((d) => (d === null ? 'null' : d)).join(', ')}]`;
  if (!axes.every((a) => a >= 0 && a < rank))
    throw new RangeError(invalidParameterError(`${LAYER}'s axis`, `axes in [${-rank}, ${rank - 1}] (the input's rank is ${rank})`, text));
  if (new Set(axes).size !== axes.length)
    throw new RangeError(invalidParameterError(`${LAYER}'s axis`, 'distinct axes', text, `${given.join(' and ')} name the same axes at rank ${rank}`));
  const undefinedDim = axes.find((a) => shape[a] == null);
  if (undefinedDim !== undefined)
    throw new RangeError(
      invalidParameterError(
        `${LAYER}'s axis`,
        'axes whose sizes the input shape defines (gamma and beta have those sizes)',
        text,
        `axis ${undefinedDim} is null`,
      ),
    );
  return axes;
}

export class LayerNormalization extends Stock {
  static readonly [DROP_IN] = true;

  constructor(args?: LayerNormalizationLayerArgs) {
    checkArgs(args);
    super(args);
  }

  override build(inputShape: Shape): void {
    const shape = (Array.isArray(inputShape[0]) ? (inputShape as unknown[])[0] : inputShape) as (number | null)[];
    resolveAxes((this as unknown as Fields).axis, shape);
    super.build(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const x = oneTensor(inputs, LAYER);
    if (x.dtype !== 'float32') return super.call(inputs, kwargs);
    const f = this as unknown as Fields;
    const axes = resolveAxes(f.axis, x.shape).sort((a, b) => a - b);
    const d = axes.reduce((p, a) => p * x.shape[a], 1);
    if (d > 0 && layerNormInstalledOn(tf.getBackend())) return tf.tidy(() => this.normalizeNatively(x, axes, d, f));
    // TF.js' code, but where its gradient fails (no gamma or no beta: tf.batchNorm's gradient meets the missing input).
    if (d > 0 && (!f.gamma || !f.beta)) return tf.tidy(() => this.normalizeWithOps(x, axes, f));
    return super.call(inputs, kwargs);
  }

  /** TF.js' computation in elementwise ops, which differentiate without gamma or beta. */
  private normalizeWithOps(x: tf.Tensor, axes: number[], f: Fields): tf.Tensor {
    const { mean, variance } = tf.moments(x, axes, true);
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, f.epsilon)));
    // TF.js' broadcast of gamma and beta: reshaped (not transposed) to the input's rank.
    const shape = x.shape.map((n, i) => (axes.includes(i) ? n : 1));
    if (f.gamma) y = tf.mul(y, tf.reshape(f.gamma.read(), shape));
    if (f.beta) y = tf.add(y, tf.reshape(f.beta.read(), shape));
    return y;
  }

  private normalizeNatively(x: tf.Tensor, axes: number[], d: number, f: Fields): tf.Tensor {
    // The other axes first, in their order, then the normalized ones, sorted: rows of d values, gamma's order.
    const perm = [...[...Array(x.rank).keys()].filter((i) => !axes.includes(i)), ...axes];
    const moved = perm.some((p, i) => p !== i);
    const [y] = tf.engine().runKernel(
      LayerNormRows,
      {
        x: moved ? tf.transpose(x, perm) : x,
        scale: f.gamma ? tf.reshape(f.gamma.read(), [d]) : tf.ones([d]),
        offset: f.beta ? tf.reshape(f.beta.read(), [d]) : tf.zeros([d]),
      },
      { normalizedSize: d, epsilon: f.epsilon },
    ) as tf.Tensor[];
    if (!moved) return y;
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    return tf.transpose(y, inverse);
  }
}

/** tf.layers.layerNormalization, made with this package's class: `layerNormalization({ axis: -1 })`. */
export function layerNormalization(args?: LayerNormalizationLayerArgs): LayerNormalization {
  return new LayerNormalization(args);
}

/** Makes `tf.loadLayersModel` and `tf.models.modelFromJSON` build this class for "LayerNormalization". */
export function registerLayerNormalizationClass(): void {
  registerLayer(LayerNormalization);
}
