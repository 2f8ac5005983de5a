/**
 * The training kernel's registered gradient against stock TF.js' tf.grads of
 * the same computation (tf.moments + tf.batchNorm on the stock cpu backend),
 * with random, partly negative gamma; and the layer's gradients, with and
 * without gamma/beta (TF.js #2868), on 'cpu-bn' and on the stock fallback.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { batchNormalization, BatchNormTraining, installTfjsKernels } from '../../lib/tfjs/index.js';
import { expectRelClose, kernelsRun, randn, tf, useBackend } from './setup.js';

const T = { timeout: 120_000 };
const EPS = 1e-3;

beforeAll(async () => {
  installTfjsKernels({ backend: 'cpu-bn' });
  await useBackend('cpu');
}, 300_000);

/**
 * Stock TF.js: batch statistics with tf.moments; on the last axis tf.batchNorm
 * with 1-D parameters (tf.layers' path), elsewhere broadcasting ops (the
 * gradient of tf.batchNorm with [1, C, 1, 1] parameters fails in TF.js 4.22).
 */
function stockTraining(axis: number) {
  return (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor => {
    const reduction = [...Array(x.rank).keys()].filter((i) => i !== axis);
    if (axis === x.rank - 1) {
      const { mean, variance } = tf.moments(x, reduction);
      return tf.batchNorm(x, mean, variance, beta, gamma, EPS);
    }
    const shape = x.shape.map((d, i) => (i === axis ? d : 1));
    const { mean, variance } = tf.moments(x, reduction, true);
    const normalized = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, EPS)));
    return tf.add(tf.mul(normalized, tf.reshape(gamma, shape)), tf.reshape(beta, shape));
  };
}

function nativeTraining(axis: number) {
  return (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor => {
    const c = x.shape[axis];
    const out = tf
      .engine()
      .runKernel(
        BatchNormTraining,
        { x, scale: gamma, offset: beta, movingMean: tf.zeros([c]), movingVariance: tf.ones([c]) },
        { axis, epsilon: EPS, momentum: 0.99 },
      ) as tf.Tensor[];
    return out[0];
  };
}

describe('BatchNormTraining gradient vs stock tf.grads', T, () => {
  const cases: Array<[string, number[], number]> = [
    ['NHWC (axis 3)', [4, 5, 6, 7], 3],
    ['NCHW (axis 1)', [4, 7, 5, 6], 1],
    ['2-D (axis 1)', [16, 9], 1],
    ['3-D, middle axis', [3, 8, 10], 1],
    ['3-D, axis 0', [6, 4, 5], 0],
  ];
  for (const [name, shape, axis] of cases)
    it(name, async () => {
      const size = shape.reduce((a, b) => a * b, 1),
        c = shape[axis];
      const x = tf.tensor(randn(size, 1, 2, 3), shape),
        dy = tf.tensor(randn(size, 2), shape);
      const gamma = tf.tensor1d(randn(c, 3)),
        beta = tf.tensor1d(randn(c, 4));
      expect(Math.min(...gamma.dataSync())).toBeLessThan(0);
      await useBackend('cpu');
      const stockY = stockTraining(axis)(x, gamma, beta);
      const stock = tf.grads(stockTraining(axis))([x, gamma, beta], dy);
      await useBackend('cpu-bn');
      const { result: ours, kernelNames } = await kernelsRun(() => tf.grads(nativeTraining(axis))([x, gamma, beta], dy));
      expect(kernelNames).toEqual(expect.arrayContaining(['BatchNormTraining', 'BatchNormTrainingGrad']));
      expectRelClose(nativeTraining(axis)(x, gamma, beta), stockY, 1e-5);
      for (let i = 0; i < 3; i++) {
        expect(ours[i].shape).toEqual(stock[i].shape);
        expectRelClose(ours[i], stock[i], 1e-4);
      }
    });
});

/** Gradients of sum(layer(x)·w) with respect to x and the layer's trainable weights, in training mode. */
function layerGrads(layer: tfl.layers.Layer, x: tf.Tensor, w: tf.Tensor): tf.Tensor[] {
  const vars = layer.trainableWeights.map((v) => v.read() as tf.Variable);
  const f = (x: tf.Tensor) => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, w));
  const dx = tf.grad(f)(x);
  if (vars.length === 0) return [dx];
  const { grads } = tf.variableGrads(() => f(x) as tf.Scalar, vars);
  return [dx, ...vars.map((v) => grads[v.name])];
}

describe('the layer in training: gradients and moving statistics as the stock layer', T, () => {
  const x = tf.tensor4d(randn(4 * 5 * 5 * 6, 7, 1, 2), [4, 5, 5, 6]);
  const w = tf.tensor4d(randn(4 * 5 * 5 * 6, 8), [4, 5, 5, 6]);
  const weights = () => [tf.tensor1d(randn(6, 9)), tf.tensor1d(randn(6, 10)), tf.tensor1d(randn(6, 11)), tf.tensor1d(randn(6, 12).map((v) => 1 + Math.abs(v)))];

  it('with gamma and beta', async () => {
    await useBackend('cpu');
    const stock = tfl.layers.batchNormalization({ momentum: 0.9 });
    (stock.build(x.shape), stock.setWeights(weights()));
    const expected = layerGrads(stock, x, w);
    await useBackend('cpu-bn');
    const ours = batchNormalization({ momentum: 0.9 });
    (ours.build(x.shape), ours.setWeights(weights()));
    const { result: got, kernelNames } = await kernelsRun(() => layerGrads(ours, x, w));
    expect(kernelNames).toContain('BatchNormTrainingGrad');
    expect(got.length).toBe(3);
    for (let i = 0; i < 3; i++) expectRelClose(got[i], expected[i], 1e-4);
    // Each layer applied twice in training (tf.grad, tf.variableGrads): the same moving statistics.
    for (let i = 2; i < 4; i++) expectRelClose(ours.getWeights()[i], stock.getWeights()[i], 1e-5);
  });

  const variants: Array<[string, { center: boolean; scale: boolean; axis: number }]> = [
    ['center true, scale false (TF.js #2868)', { center: true, scale: false, axis: -1 }],
    ['center false, scale true', { center: false, scale: true, axis: -1 }],
    ['center false, scale false', { center: false, scale: false, axis: -1 }],
    ['channels on axis 1 (the stock gradient fails to reshape [1, C, 1, 1])', { center: true, scale: true, axis: 1 }],
  ];
  for (const [name, args] of variants)
    it(`${name}: native and the fallback in TF.js ops agree`, async () => {
      const { center, scale, axis } = args;
      const xs = axis === 1 ? tf.transpose(x, [0, 3, 1, 2]) : x,
        ws = axis === 1 ? tf.transpose(w, [0, 3, 1, 2]) : w;
      const pick = (all: tf.Tensor[]) => all.filter((_, i) => (i === 0 ? scale : i === 1 ? center : true));
      const run = async (backend: string) => {
        await useBackend(backend);
        const layer = batchNormalization({ ...args, momentum: 0.9 });
        (layer.build(xs.shape), layer.setWeights(pick(weights())));
        const { result, kernelNames } = await kernelsRun(() => layerGrads(layer, xs, ws));
        expect(kernelNames.includes('BatchNormTraining')).toBe(backend === 'cpu-bn');
        return { grads: result, moving: layer.getWeights().slice(-2) };
      };
      const fallback = await run('cpu'); // not installed there: TF.js ops
      const native = await run('cpu-bn');
      expect(native.grads.length).toBe(1 + Number(center) + Number(scale));
      for (let i = 0; i < native.grads.length; i++) expectRelClose(native.grads[i], fallback.grads[i], 1e-4);
      for (let i = 0; i < 2; i++) expectRelClose(native.moving[i], fallback.moving[i], 1e-5);
    });
});
