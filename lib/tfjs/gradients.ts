/**
 * The gradient of `BatchNormTraining`, for TF.js' autodiff (`tf.grads`,
 * `optimizer.minimize`, `model.fit`): one `BatchNormTrainingGrad` call gives
 * dx, dscale and doffset together.
 *
 * Only y's gradient flows back. The batch mean and invstd outputs exist for
 * the backward and the new moving statistics for the layer's update; none of
 * them is differentiated (as in Keras, where the moving averages are
 * assignments outside the gradient).
 */
import { engine, zerosLike, type GradConfig, type NamedAttrMap, type Tensor } from '@tensorflow/tfjs-core';
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
