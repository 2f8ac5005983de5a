/**
 * tf.layers' own layer classes, which this package's layers extend: the one
 * registered under a class name in TF.js' serialization registry, past any
 * class of this package registered there already (a second copy of this
 * package, or installTfjsKernels called before the module loads again).
 */
import * as tf from '@tensorflow/tfjs-core';
// Loaded for its side effect too: tf.layers registers the stock classes.
import '@tensorflow/tfjs-layers';

/**
 * TF.js' class registered under `className`. This package's classes carry the
 * static marker `Symbol.for('batchnorm.tfjs.<className>')` (shared by every
 * copy of the package), and the search goes past them to their parent.
 */
export function stockClass<C>(className: string): C {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (!entry)
    throw new Error(
      `batchnorm/tfjs: tf.layers' ${className} class is not registered; is @tensorflow/tfjs-layers (>= 4.22) installed once, with the same @tensorflow/tfjs-core?`,
    );
  const marker = Symbol.for(`batchnorm.tfjs.${className}`);
  let cls = entry[0] as unknown as Record<symbol, unknown>;
  while (cls[marker]) cls = Object.getPrototypeOf(cls) as Record<symbol, unknown>;
  return cls as unknown as C;
}

/** The one input tensor of a layer's call. */
export function oneTensor(inputs: tf.Tensor | tf.Tensor[], layer: string): tf.Tensor {
  if (!Array.isArray(inputs)) return inputs;
  if (inputs.length !== 1) throw new RangeError(`${layer}: expected exactly one input tensor but received ${inputs.length}`);
  return inputs[0];
}

/** Makes `tf.loadLayersModel` and `tf.models.modelFromJSON` build `cls` for its class name. */
export function registerLayer(cls: unknown): void {
  tf.serialization.registerClass(cls as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
}
