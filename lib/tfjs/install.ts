/**
 * `installTfjsKernels()`: puts this package's kernels into TF.js' registries.
 *
 * - `backend: 'cpu'` (default) replaces `FusedBatchNorm` on TF.js' own cpu
 *   backend and adds the training and layer-norm kernels there: every model
 *   on `cpu` uses them.
 * - `backend: 'cpu-bn'` registers a backend of that name instead — a copy of
 *   `cpu` (the same backend class and every kernel registered for `cpu`) with
 *   this package's kernels — and leaves `cpu` as it was; `tf.setBackend('cpu-bn')`
 *   opts in.
 *
 * Either way the gradients of the training and layer-norm kernels are
 * registered and the `BatchNormalization` and `LayerNormalization` layer
 * classes replace tf.layers' in the serialization registry, so models loaded
 * from JSON use them. Calling it again is harmless.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe } from '../backend/validate.js';
import { fusedBatchNormConfig } from './fused.js';
import { batchNormTrainingGradConfig, layerNormRowsGradConfig } from './gradients.js';
import { registerLayerClass } from './layer.js';
import { layerNormKernelConfigs, LayerNormRows } from './layernorm-kernels.js';
import { registerLayerNormalizationClass } from './layernorm-layer.js';
import { BatchNormTraining, installedOn, trainingKernelConfigs } from './training.js';

export interface InstallOptions {
  /**
   * `'cpu'` (default): TF.js' cpu backend itself. `'cpu-bn'`: a separate
   * backend, a copy of `cpu` with these kernels; `cpu` stays stock.
   */
  backend?: 'cpu' | 'cpu-bn';
}

const BACKENDS = ['cpu', 'cpu-bn'];
/** Below cpu's priority (1): registering 'cpu-bn' never changes which backend TF.js picks by itself. */
const CPU_BN_PRIORITY = 0;

function registerCpuBn(): void {
  if (tf.findBackendFactory('cpu-bn')) return;
  const cpuFactory = tf.findBackendFactory('cpu')!;
  tf.registerBackend('cpu-bn', () => cpuFactory(), CPU_BN_PRIORITY);
  tf.copyRegisteredKernels('cpu', 'cpu-bn');
}

function replaceKernel(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, config.backendName)) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
}

/**
 * Runs TF.js' batch normalization — `tf.batchNorm`, and tf.layers'
 * `BatchNormalization` in inference and training — and tf.layers'
 * `LayerNormalization` on this package's
 * kernels, on the `cpu` backend or on an opt-in copy of it, `cpu-bn`.
 * Needs TF.js' cpu backend to be registered: import `@tensorflow/tfjs` or
 * `@tensorflow/tfjs-backend-cpu` first.
 */
export function installTfjsKernels(options: InstallOptions = {}): void {
  if (typeof options !== 'object' || options === null)
    throw new TypeError(`Expected an options object for installTfjsKernels but received ${describe(options)}`);
  const unknown = Object.keys(options).filter((k) => k !== 'backend');
  if (unknown.length > 0)
    throw new TypeError(
      `installTfjsKernels: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')}; the only option is backend ('cpu' or 'cpu-bn')`,
    );
  const backend = options.backend ?? 'cpu';
  if (!BACKENDS.includes(backend))
    throw new RangeError(
      `installTfjsKernels: expected backend to be 'cpu' or 'cpu-bn' (the kernels read the cpu backend's arrays) but received ${typeof backend === 'string' ? JSON.stringify(backend) : describe(backend)}`,
    );
  if (!tf.findBackendFactory('cpu'))
    throw new Error(
      "installTfjsKernels: TF.js' cpu backend is not registered. To fix, import '@tensorflow/tfjs' or '@tensorflow/tfjs-backend-cpu' before calling it.",
    );
  if (backend === 'cpu-bn') registerCpuBn();
  if (!installedOn(backend)) {
    // The stock kernel still serves what the native one does not take (non-float32 tensors).
    const stock = tf.getKernel('FusedBatchNorm', backend)?.kernelFunc ?? null;
    replaceKernel(fusedBatchNormConfig(backend, stock));
    for (const config of [...trainingKernelConfigs(backend), ...layerNormKernelConfigs(backend)]) replaceKernel(config);
  }
  if (!tf.getGradient(BatchNormTraining)) tf.registerGradient(batchNormTrainingGradConfig);
  if (!tf.getGradient(LayerNormRows)) tf.registerGradient(layerNormRowsGradConfig);
  registerLayerClass();
  registerLayerNormalizationClass();
}
