/**
 * TF.js' own BatchNormalization layer tests (tfjs-layers
 * src/layers/normalization_test.ts: symbolic shapes, inference, center/scale,
 * fit of the layer alone, between dense layers, after conv2d and
 * conv2dTranspose, deserialization), run on the drop-in on its opt-in
 * backend 'cpu-bn', with TF.js' reference values (from Keras) and
 * tolerances. Each fit also checks that the native kernels ran.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchNormalization, batchNormalization, installTfjsKernels } from '../../lib/tfjs/index.js';
import { expectClose, kernelsRun, tf, useBackend } from './setup.js';

const T = { timeout: 120_000 };

beforeAll(async () => {
  installTfjsKernels({ backend: 'cpu-bn' });
  await useBackend('cpu-bn');
}, 300_000);

/** model.fit, checking that the training forward and backward ran natively. */
async function fitNatively(model: tfl.LayersModel, xs: tf.Tensor, ys: tf.Tensor, args: tfl.ModelFitArgs): Promise<tfl.History> {
  const { result, kernelNames } = await kernelsRun(() => model.fit(xs, ys, { ...args, verbose: 0 }));
  expect(kernelNames).toContain('BatchNormTraining');
  expect(kernelNames).toContain('BatchNormTrainingGrad');
  return result;
}

describe('BatchNormalization layer: symbolic (tfjs-layers normalization_test)', T, () => {
  for (const inputShape of [
    [4, 6],
    [2, 3, 4],
    [2, 3, 4, 5],
  ]) {
    it(`shape=${JSON.stringify(inputShape)}`, () => {
      const x = new tfl.SymbolicTensor('float32', inputShape, null as never, [], null as never);
      const y = batchNormalization({}).apply(x) as tfl.SymbolicTensor;
      expect(y.dtype).toBe(x.dtype);
      expect(y.shape).toEqual(x.shape);
    });
  }

  it('an undetermined dim on the axis is a ValueError', () => {
    const x = new tfl.SymbolicTensor('float32', [null as unknown as number, 2, 3], null as never, [], null as never);
    expect(() => batchNormalization({ axis: 0 }).apply(x)).toThrow(/Axis 0 of input tensor should have a defined dimension.*/);
  });

  it('the constructor works without an argument', () => {
    expect(batchNormalization().getConfig().axis).toBe(-1);
  });

  it("is TF.js' layer: same class name, config and weight names", () => {
    const ours = batchNormalization({ momentum: 0.9, epsilon: 1e-2, axis: 1 });
    const stock = tfl.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-2, axis: 1 });
    expect(ours).toBeInstanceOf(Object.getPrototypeOf(BatchNormalization));
    expect(ours.getClassName()).toBe('BatchNormalization');
    const { name: _a, ...oursConfig } = ours.getConfig();
    const { name: _b, ...stockConfig } = stock.getConfig();
    expect(oursConfig).toEqual(stockConfig);
    const x = tf.zeros([2, 3, 4]);
    (ours.apply(x), stock.apply(x));
    expect(ours.weights.map((w) => w.originalName.split('/').pop())).toEqual(['gamma', 'beta', 'moving_mean', 'moving_variance']);
    expect(ours.weights.map((w) => w.shape)).toEqual(stock.weights.map((w) => w.shape));
  });
});

describe('BatchNormalization layer: tensors (tfjs-layers normalization_test)', T, () => {
  for (const dim of [2, 3, 4])
    for (const axis of [0, -1]) {
      it(`inference, ${dim}D, axis=${axis}`, () => {
        const x =
          dim === 2
            ? tf.tensor2d(
                [
                  [1, 2],
                  [3, 4],
                ],
                [2, 2],
              )
            : dim === 3
              ? tf.tensor3d(
                  [
                    [
                      [1, 2],
                      [3, 4],
                    ],
                    [
                      [-1, -2],
                      [-3, -4],
                    ],
                  ],
                  [2, 2, 2],
                )
              : tf.tensor4d(
                  [
                    [
                      [
                        [1, 2],
                        [3, 4],
                      ],
                      [
                        [-1, -2],
                        [-3, -4],
                      ],
                    ],
                    [
                      [
                        [-1, -2],
                        [-3, -4],
                      ],
                      [
                        [1, 2],
                        [3, 4],
                      ],
                    ],
                  ],
                  [2, 2, 2, 2],
                );
        expectClose(batchNormalization({ axis }).apply(x, { training: false }) as tf.Tensor, x, 0.01);
      });
    }

  it('no center', () => {
    const layer = batchNormalization({ center: false, axis: 0 });
    const x = tf.tensor2d(
      [
        [1, 2],
        [3, 4],
      ],
      [2, 2],
    );
    expectClose(layer.apply(x) as tf.Tensor, x, 0.01);
    const w = layer.getWeights();
    expect(w.length).toBe(3);
    expectClose(w[0], tf.onesLike(w[0]));
    expectClose(w[1], tf.zerosLike(w[1]));
    expectClose(w[2], tf.onesLike(w[2]));
  });

  it('no scale', () => {
    const layer = batchNormalization({ scale: false, axis: 0 });
    const x = tf.tensor2d(
      [
        [1, 2],
        [3, 4],
      ],
      [2, 2],
    );
    expectClose(layer.apply(x) as tf.Tensor, x, 0.01);
    const w = layer.getWeights();
    expect(w.length).toBe(3);
    expectClose(w[0], tf.zerosLike(w[0]));
    expectClose(w[1], tf.zerosLike(w[1]));
    expectClose(w[2], tf.onesLike(w[2]));
  });

  it('no center, no scale', () => {
    const layer = batchNormalization({ scale: false, center: false });
    const x = tf.tensor2d(
      [
        [1, 2],
        [3, 4],
      ],
      [2, 2],
    );
    expectClose(layer.apply(x) as tf.Tensor, x, 0.01);
    const w = layer.getWeights();
    expect(w.length).toBe(2);
    expectClose(w[0], tf.zerosLike(w[0]));
    expectClose(w[1], tf.onesLike(w[1]));
  });

  it('fit: 2D, BatchNorm layer only', async () => {
    const layer1 = batchNormalization({ inputShape: [4] });
    const model = tfl.sequential({ layers: [layer1] });
    model.compile({ loss: 'meanSquaredError', optimizer: 'sgd' });
    const xs = tf.tensor2d(
      [
        [1, 2, 3, 4],
        [2, 4, 6, 8],
        [12, 11, 10, 9],
      ],
      [3, 4],
    );
    const history = await fitNatively(model, xs, tf.zeros([3, 4]), { epochs: 2, batchSize: 3 });
    expect(history.history.loss[0]).toBeCloseTo(0.9998891353607178);
    expect(history.history.loss[1]).toBeCloseTo(0.9899163246154785);
    const [gamma, beta, movingMean, movingVariance] = layer1.getWeights();
    expectClose(gamma, [0.9900254, 0.9900257, 0.9900262, 0.9900271]);
    expectClose(beta, [2.9802322e-10, 1.4901161e-10, 9.1269614e-10, -7.4505802e-10]);
    expectClose(movingMean, [0.09949999, 0.11276666, 0.12603334, 0.13929999]);
    expectClose(movingVariance, [1.4709667, 1.2763889, 1.1437222, 1.0729666]);
  });

  it('fit: 2D, BatchNorm layer between two dense layers', async () => {
    const layer1 = tfl.layers.dense({ units: 4, kernelInitializer: 'ones', useBias: false, inputShape: [4] });
    const layer2 = batchNormalization({ inputShape: [4] });
    const layer3 = tfl.layers.dense({ units: 1, kernelInitializer: 'ones', useBias: false });
    const model = tfl.sequential({ layers: [layer1, layer2, layer3] });
    model.compile({ loss: 'meanSquaredError', optimizer: tf.train.sgd(0.1) });
    const xs = tf.tensor2d(
      [
        [1, 2, 3, 4],
        [2, 4, 6, 8],
        [12, 11, 10, 9],
      ],
      [3, 4],
    );
    const history = await fitNatively(model, xs, tf.zeros([3, 1]), { epochs: 3, batchSize: 3 });
    expect(history.history.loss[0]).toBeCloseTo(15.999907493591309);
    expect(history.history.loss[1]).toBeCloseTo(0.025602197274565697);
    expect(history.history.loss[2]).toBeCloseTo(0.022478966042399406);
    expectClose(
      layer1.getWeights()[0],
      tf.tensor2d(
        [
          [0.99999833, 0.99999833, 0.99999833, 0.99999833],
          [0.9999987, 0.9999987, 0.9999987, 0.9999987],
          [0.999999, 0.999999, 0.999999, 0.999999],
          [0.99999934, 0.99999934, 0.99999934, 0.99999934],
        ],
        [4, 4],
      ),
    );
    const [gamma, beta, movingMean, movingVariance] = layer2.getWeights();
    expectClose(gamma, [0.18779878, 0.18779878, 0.18779878, 0.18779878]);
    expectClose(beta, [5.5367128e-8, 5.5367128e-8, 5.5367128e-8, 5.5367128e-8]);
    expectClose(movingMean, [0.7128234, 0.7128234, 0.7128234, 0.7128234]);
    expectClose(movingVariance, [6.276868, 6.276868, 6.276868, 6.276868]);
    expectClose(layer3.getWeights()[0], tf.tensor2d([[0.18779878], [0.18779878], [0.18779878], [0.18779878]], [4, 1]));
  });

  it('fit: with a conv2d layer', async () => {
    const model = tfl.sequential();
    model.add(tfl.layers.conv2d({ filters: 4, kernelSize: 2, kernelInitializer: 'ones', biasInitializer: 'zeros', inputShape: [5, 5, 1] }));
    model.add(batchNormalization());
    model.add(tfl.layers.flatten());
    model.add(tfl.layers.dense({ units: 1, kernelInitializer: 'ones', biasInitializer: 'zeros' }));
    model.compile({ loss: 'meanSquaredError', optimizer: 'sgd' });
    const xs = tf.tensor4d([...Array(2 * 5 * 5).keys()], [2, 5, 5, 1]);
    const h = await fitNatively(model, xs, tf.tensor2d([0, 1], [2, 1]), { epochs: 2 });
    expectClose(h.history.loss as number[], [3332.9971, 2122.5361], 0.01);
  });

  it('fit: with a conv2dTranspose layer', async () => {
    const model = tfl.sequential();
    model.add(tfl.layers.conv2dTranspose({ filters: 4, kernelSize: 2, kernelInitializer: 'ones', biasInitializer: 'zeros', inputShape: [5, 5, 1] }));
    model.add(batchNormalization());
    model.add(tfl.layers.flatten());
    model.add(tfl.layers.dense({ units: 1, kernelInitializer: 'ones', biasInitializer: 'zeros' }));
    model.compile({ loss: 'meanSquaredError', optimizer: 'sgd' });
    const xs = tf.div(tf.sub(tf.tensor4d([...Array(2 * 5 * 5).keys()], [2, 5, 5, 1]), 25), 100);
    const h = await fitNatively(model, xs, tf.tensor2d([0, 1], [2, 1]), { epochs: 2 });
    expect(h.history.loss[0]).toBeCloseTo(13922.4492);
    expect(h.history.loss[1]).toBeCloseTo(106532048, -3);
    const weights = model.layers[1].getWeights();
    expect(weights.length).toBe(4);
    expectClose(weights[0], tf.tensor1d([7661.0874, 7661.0874, 7661.0874, 7661.0874]), 1e-2);
    expectClose(weights[1], tf.tensor1d([-118.35103, -118.35103, -118.35103, -118.35103]), 1e-2);
    expectClose(weights[2], tf.tensor1d([-0.00026271, -0.00026271, -0.00026271, -0.00026271]));
    expectClose(weights[3], tf.tensor1d([0.98333836, 0.98333836, 0.98333836, 0.98333836]));
  });

  it('fit: 3D, BatchNorm layer only', async () => {
    const layer1 = batchNormalization({ inputShape: [2, 2] });
    const model = tfl.sequential({ layers: [layer1] });
    model.compile({ loss: 'meanSquaredError', optimizer: 'sgd' });
    const xs = tf.tensor3d(
      [
        [
          [1, 2],
          [3, 4],
        ],
        [
          [2, 4],
          [6, 8],
        ],
        [
          [12, 11],
          [10, 9],
        ],
      ],
      [3, 2, 2],
    );
    const history = await fitNatively(model, xs, tf.zeros([3, 2, 2]), { epochs: 2, batchSize: 3 });
    expect(history.history.loss[0]).toBeCloseTo(0.9999215006828308);
    expect(history.history.loss[1]).toBeCloseTo(0.980024516582489);
    const [gamma, beta, movingMean, movingVariance] = layer1.getWeights();
    expectClose(gamma, [0.98010117, 0.98010194]);
    expectClose(beta, [-1.117587e-9, 8.1956386e-10]);
    expectClose(movingMean, [0.11276666, 0.12603334]);
    expectClose(movingVariance, [1.3161889, 1.1835222], 1e-5);
  });

  it('deserializes a Keras model with a BatchNormalization layer (axis [1]) into this class', async () => {
    installTfjsKernels({ backend: 'cpu-bn' }); // registers the class (again: harmless)
    const json = {
      class_name: 'Sequential',
      config: {
        name: 'sequential',
        layers: [
          {
            class_name: 'Dense',
            config: {
              name: 'dense',
              trainable: true,
              batch_input_shape: [null, 5],
              dtype: 'float32',
              units: 10,
              activation: 'linear',
              use_bias: true,
              kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
              bias_initializer: { class_name: 'Zeros', config: {} },
              kernel_regularizer: null,
              bias_regularizer: null,
              activity_regularizer: null,
              kernel_constraint: null,
              bias_constraint: null,
            },
          },
          {
            class_name: 'BatchNormalization',
            config: {
              name: 'batch_normalization',
              trainable: true,
              dtype: 'float32',
              axis: [1],
              momentum: 0.99,
              epsilon: 0.001,
              center: true,
              scale: true,
              beta_initializer: { class_name: 'Zeros', config: {} },
              gamma_initializer: { class_name: 'Ones', config: {} },
              moving_mean_initializer: { class_name: 'Zeros', config: {} },
              moving_variance_initializer: { class_name: 'Ones', config: {} },
              beta_regularizer: null,
              gamma_regularizer: null,
              beta_constraint: null,
              gamma_constraint: null,
            },
          },
          {
            class_name: 'Dense',
            config: {
              name: 'dense_1',
              trainable: true,
              dtype: 'float32',
              units: 1,
              activation: 'sigmoid',
              use_bias: true,
              kernel_initializer: { class_name: 'GlorotUniform', config: { seed: null } },
              bias_initializer: { class_name: 'Zeros', config: {} },
              kernel_regularizer: null,
              bias_regularizer: null,
              activity_regularizer: null,
              kernel_constraint: null,
              bias_constraint: null,
            },
          },
        ],
      },
      keras_version: '2.2.4-tf',
      backend: 'tensorflow',
    };
    const model = await tfl.models.modelFromJSON(json as never);
    expect(model.layers[1]).toBeInstanceOf(BatchNormalization);
    const ys = model.predict(tf.zeros([3, 5])) as tf.Tensor;
    expect(ys.shape).toEqual([3, 1]);
    expect(model.layers[1].getWeights().length).toBe(4);
    // The Keras axis [1] of a 2-D input trains on the native kernels too.
    model.compile({ loss: 'meanSquaredError', optimizer: 'sgd' });
    await fitNatively(model, tf.randomNormal([8, 5]), tf.zeros([8, 1]), { epochs: 1 });
  });
});
