/**
 * tf.layers' `BatchNormalization`, training on this package's kernels.
 *
 * The class extends TF.js' own (the one registered under the class name
 * `BatchNormalization`), so the config, the weights (`gamma`, `beta`,
 * `moving_mean`, `moving_variance`, in that order, gamma/beta only with
 * `scale`/`center`), the initializers, regularizers and constraints, and the
 * saved JSON are TF.js' exactly. Only `call` in training changes:
 *
 * - on a backend with this package's kernels (`installTfjsKernels`): one
 *   `BatchNormTraining` kernel (batch statistics, y, new moving statistics)
 *   and its fused gradient, Keras' semantics (momentum the weight of the old
 *   value, default 0.99; epsilon default 1e-3; the biased batch variance in
 *   the moving variance); `center`/`scale` false work (TF.js #2868);
 * - elsewhere: TF.js' stock code; where that one throws — without gamma or
 *   beta (TF.js #2868), or with the channels on any axis but the last (the
 *   gradient of tf.batchNorm with [1, C, 1, 1] parameters fails to reshape) —
 *   the same computation in elementwise TF.js ops.
 *
 * Inference is TF.js' code, which runs `FusedBatchNorm`: the native one on
 * an installed backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerVariable, layers } from '@tensorflow/tfjs-layers';
import { oneTensor, registerLayer, stockClass } from './stock.js';
import { BatchNormTraining, channelAxis, installedOn } from './training.js';

type StockBatchNormalization = ReturnType<typeof layers.batchNormalization>;
/** tf.layers.batchNormalization's arguments. */
export type BatchNormalizationLayerArgs = NonNullable<Parameters<typeof layers.batchNormalization>[0]>;
type Kwargs = Parameters<StockBatchNormalization['call']>[1];

/** The stock layer's fields this class reads (private in TF.js' typings, stable since 2018). */
interface Fields {
  axis: number | number[];
  momentum: number;
  epsilon: number;
  gamma?: LayerVariable;
  beta?: LayerVariable;
  movingMean: LayerVariable;
  movingVariance: LayerVariable;
}

type StockClass = new (args?: BatchNormalizationLayerArgs) => StockBatchNormalization;
/** Marks this class for stockClass (./stock.ts), which looks past it. */
const DROP_IN: unique symbol = Symbol.for('batchnorm.tfjs.BatchNormalization');
const Stock = stockClass<StockClass>('BatchNormalization');

export class BatchNormalization extends Stock {
  static readonly [DROP_IN] = true;

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const training = (kwargs['training'] as boolean | undefined) ?? false;
    const x = oneTensor(inputs, 'BatchNormalization');
    if (!training || x.dtype !== 'float32') return super.call(inputs, kwargs);
    const f = this as unknown as Fields;
    if (installedOn(tf.getBackend())) return tf.tidy(() => this.trainNative(x, f));
    if (f.gamma && f.beta && channelAxis(f.axis, x.rank, 'BatchNormalization') === x.rank - 1) return super.call(inputs, kwargs);
    return tf.tidy(() => this.trainWithOps(x, f));
  }

  private trainNative(x: tf.Tensor, f: Fields): tf.Tensor {
    const axis = channelAxis(f.axis, x.rank, 'BatchNormalization');
    const c = x.shape[axis];
    const [y, , , movingMean, movingVariance] = tf.engine().runKernel(
      BatchNormTraining,
      {
        x,
        scale: f.gamma ? f.gamma.read() : tf.ones([c]),
        offset: f.beta ? f.beta.read() : tf.zeros([c]),
        movingMean: f.movingMean.read(),
        movingVariance: f.movingVariance.read(),
      },
      { axis, epsilon: f.epsilon, momentum: f.momentum },
    ) as tf.Tensor[];
    f.movingMean.write(movingMean);
    f.movingVariance.write(movingVariance);
    return y;
  }

  /**
   * Training in TF.js ops where the stock code throws, on a backend without
   * these kernels: it reads a missing gamma, and tf.batchNorm's gradient
   * fails without a scale (TF.js #2868) and with parameters of rank > 1 (any
   * channel axis but the last); elementwise ops have neither problem.
   */
  private trainWithOps(x: tf.Tensor, f: Fields): tf.Tensor {
    const axis = channelAxis(f.axis, x.rank, 'BatchNormalization');
    const reduction = [...Array(x.rank).keys()].filter((i) => i !== axis);
    const shape = x.shape.map((d, i) => (i === axis ? d : 1));
    const { mean, variance } = tf.moments(x, reduction, true);
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, f.epsilon)));
    if (f.gamma) y = tf.mul(y, tf.reshape(f.gamma.read(), shape));
    if (f.beta) y = tf.add(y, tf.reshape(f.beta.read(), shape));
    for (const [v, batch] of [
      [f.movingMean, mean],
      [f.movingVariance, variance],
    ] as const) {
      const old = v.read();
      v.write(tf.sub(old, tf.mul(tf.sub(old, tf.reshape(batch, old.shape)), 1 - f.momentum)));
    }
    return y;
  }
}

/** tf.layers.batchNormalization, made with this package's class: `batchNormalization({ axis: 1 })`. */
export function batchNormalization(args?: BatchNormalizationLayerArgs): BatchNormalization {
  return new BatchNormalization(args);
}

/** Makes `tf.loadLayersModel` and `tf.models.modelFromJSON` build this class for "BatchNormalization". */
export function registerLayerClass(): void {
  registerLayer(BatchNormalization);
}
