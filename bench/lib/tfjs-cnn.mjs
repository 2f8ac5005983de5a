import { fillUniform } from './common.mjs';

/**
 * The small CNN of the TF.js drop-in's test and benchmark (issue 23):
 * Conv2D → BatchNormalization → ReLU, twice, then Flatten → Dense (softmax),
 * on NHWC images, with seeded initializers so that two builds start equal.
 * The convolutions have no bias, as usual before a batch norm: the norm
 * subtracts it again, so its gradient is zero but for rounding, which an
 * optimizer like Adam would amplify into a drift of the moving means.
 * `bn` makes the normalization layers: tf.layers' own factory (stock) or
 * batchnorm/tfjs' `batchNormalization` (the drop-in).
 *
 * @param {typeof import('@tensorflow/tfjs-layers')} tfl
 * @param {(args: object) => import('@tensorflow/tfjs-layers').layers.Layer} bn
 * @param {{ height?: number, width?: number, channels?: number, filters?: [number, number], classes?: number, seed?: number }} [options]
 */
export function smallCnn(tfl, bn, options = {}) {
  const { height = 16, width = 16, channels = 3, filters = [16, 32], classes = 10, seed = 1 } = options;
  const init = (/** @type {number} */ k) => tfl.initializers.glorotUniform({ seed: seed + k });
  const model = tfl.sequential();
  model.add(
    tfl.layers.conv2d({
      inputShape: [height, width, channels],
      filters: filters[0],
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      kernelInitializer: init(0),
    }),
  );
  model.add(bn({}));
  model.add(tfl.layers.reLU());
  model.add(tfl.layers.conv2d({ filters: filters[1], kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(1) }));
  model.add(bn({}));
  model.add(tfl.layers.reLU());
  model.add(tfl.layers.flatten());
  model.add(tfl.layers.dense({ units: classes, activation: 'softmax', kernelInitializer: init(2) }));
  return model;
}

/**
 * Seeded images in [−1, 1) and one-hot labels that depend on them (so that
 * the model has something to learn).
 *
 * @param {typeof import('@tensorflow/tfjs-core')} tf
 * @param {number} n images
 * @param {{ height?: number, width?: number, channels?: number, classes?: number, seed?: number }} [options]
 */
export function cnnData(tf, n, { height = 16, width = 16, channels = 3, classes = 10, seed = 7 } = {}) {
  const per = height * width * channels;
  const x = fillUniform(new Float32Array(n * per), seed, -1, 1),
    labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < per; j++) s += x[i * per + j];
    // The image's sum over √(per/3) is about standard normal: split it into `classes` bins.
    labels[i] = Math.max(0, Math.min(classes - 1, Math.floor((s / Math.sqrt(per / 3) / 4 + 0.5) * classes)));
  }
  return { xs: tf.tensor4d(x, [n, height, width, channels]), ys: tf.oneHot(tf.tensor1d(labels, 'int32'), classes) };
}
