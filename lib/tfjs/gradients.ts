/**
 * The gradients of this package's TF.js kernels, for TF.js' autodiff
 * (`tf.grads`, `optimizer.minimize`, `model.fit`). That of
 * `BatchNormTraining`: one `BatchNormTrainingGrad` call gives dx, dscale and
 * doffset together.
 *
 * Only y's gradient flows back. The batch mean and invstd outputs exist for
 * the backward and the new moving statistics for the layer's update; none of
 * them is differentiated (as in Keras, where the moving averages are
 * assignments outside the gradient).
 */
import { engine, zerosLike, type GradConfig, type NamedAttrMap, type Tensor } from '@tensorflow/tfjs-core';
import { LayerNormRows, LayerNormRowsGrad } from './layernorm-kernels.js';
import { BatchNormTraining, BatchNormTrainingGrad } from './training.js';

function gradFunc(dys: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) {
  const dy = Array.isArray(dys) ? dys[0] : dys;
  const [x, scale, mean, invstd] = saved;
  const [dx, dscale, doffset] = engine().runKernel(BatchNormTrainingGrad, { dy, x, scale, mean, invstd }, { axis: attrs.axis }) as Tensor[];
  return {
    x: () => dx,
    scale: () => dscale,
    offset: () => doffset,
    movingMean: () => zerosLike(mean),
    movingVariance: () => zerosLike(mean),
  };
}

export const batchNormTrainingGradConfig: GradConfig = {
  kernelName: BatchNormTraining,
  inputsToSave: ['x', 'scale'],
  outputsToSave: [false, true, true, false, false],
  gradFunc,
};

/**
 * `LayerNormRows`: one `LayerNormRowsGrad` call gives dx, dscale and doffset.
 * Only y's gradient flows back; the per-row mean and invstd are for the
 * backward (their gradient is part of dx already).
 */
export const layerNormRowsGradConfig: GradConfig = {
  kernelName: LayerNormRows,
  inputsToSave: ['x', 'scale'],
  outputsToSave: [false, true, true],
  gradFunc: (dys: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const dy = Array.isArray(dys) ? dys[0] : dys;
    const [x, scale, mean, invstd] = saved;
    const [dx, dscale, doffset] = engine().runKernel(LayerNormRowsGrad, { dy, x, scale, mean, invstd }, { normalizedSize: attrs.normalizedSize }) as Tensor[];
    return { x: () => dx, scale: () => dscale, offset: () => doffset };
  },
};
