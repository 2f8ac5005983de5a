/**
 * batchnorm/tfjs: TensorFlow.js' batch and layer normalization on this package's
 * native kernels. Needs `@tensorflow/tfjs-core` and `@tensorflow/tfjs-layers`
 * (>= 4.22, optional peer dependencies) and TF.js' cpu backend.
 *
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { installTfjsKernels } from 'batchnorm/tfjs';
 * installTfjsKernels({ backend: 'cpu' });      // or 'cpu-bn', then tf.setBackend('cpu-bn')
 * const model = await tf.loadLayersModel(...);  // its BatchNormalization and LayerNormalization layers train and infer natively
 * ```
 */
export { installTfjsKernels } from './install.js';
export type { InstallOptions } from './install.js';
export { BatchNormalization, batchNormalization } from './layer.js';
export type { BatchNormalizationLayerArgs } from './layer.js';
export { BatchNormTraining, BatchNormTrainingGrad } from './training.js';
export { LayerNormalization, layerNormalization } from './layernorm-layer.js';
export type { LayerNormalizationLayerArgs } from './layernorm-layer.js';
export { LayerNormRows, LayerNormRowsGrad } from './layernorm-kernels.js';
