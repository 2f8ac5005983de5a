/**
 * fit() of a small CNN (Conv2D → BatchNormalization → ReLU, twice, then
 * Dense) gives the same loss history with the drop-in on 'cpu-bn' as with
 * stock TF.js on 'cpu': same initial weights, same batches, same optimizer.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { cnnData, smallCnn } from '../../bench/lib/tfjs-cnn.mjs';
import { batchNormalization, installTfjsKernels } from '../../lib/tfjs/index.js';
import { expectRelClose, kernelsRun, tf, useBackend } from './setup.js';

beforeAll(() => installTfjsKernels({ backend: 'cpu-bn' }), 60_000);

describe('a small CNN trains as with stock TF.js', { timeout: 300_000 }, () => {
  for (const optimizer of ['sgd', 'adam'] as const)
    it(`loss history, moving statistics and predictions (${optimizer})`, async () => {
      const run = async (backend: string, bn: (args: object) => tfl.layers.Layer) => {
        await useBackend(backend);
        const model = smallCnn(tfl, bn, { height: 8, width: 8, filters: [4, 8], classes: 4 });
        model.compile({ loss: 'categoricalCrossentropy', optimizer: optimizer === 'sgd' ? tf.train.sgd(0.1) : tf.train.adam(0.01) });
        const { xs, ys } = cnnData(tf, 48, { height: 8, width: 8, classes: 4 });
        const { result: h, kernelNames } = await kernelsRun(() => model.fit(xs, ys, { epochs: 4, batchSize: 12, shuffle: false, verbose: 0 }));
        return {
          loss: h.history.loss as number[],
          kernelNames,
          bnWeights: [1, 4].flatMap((i) => model.layers[i].getWeights()),
          predictions: model.predict(xs) as tf.Tensor,
        };
      };
      const stock = await run('cpu', (args) => tfl.layers.batchNormalization(args));
      const ours = await run('cpu-bn', batchNormalization);
      expect(stock.kernelNames).not.toContain('BatchNormTraining');
      expect(ours.kernelNames).toEqual(expect.arrayContaining(['BatchNormTraining', 'BatchNormTrainingGrad']));
      expect(ours.loss.length).toBe(4);
      // The model learns (so that the comparison means something), and both learn the same.
      expect(stock.loss[3]).toBeLessThan(stock.loss[0]);
      expectRelClose(ours.loss, stock.loss, 1e-3);
      for (let i = 0; i < stock.bnWeights.length; i++) expectRelClose(ours.bnWeights[i], stock.bnWeights[i], 1e-3);
      expectRelClose(ours.predictions, stock.predictions, 1e-3);
    });
});
