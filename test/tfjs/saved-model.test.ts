/**
 * A model trained and saved by stock TF.js (model.json + weights.bin, written
 * by a file IO handler) loads with the drop-in, predicts the same and trains
 * on the native kernels; saved again, its model.json is stock TF.js'.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cnnData, smallCnn } from '../../bench/lib/tfjs-cnn.mjs';
import { BatchNormalization, installTfjsKernels } from '../../lib/tfjs/index.js';
import { expectRelClose, kernelsRun, tf, useBackend } from './setup.js';

const dir = mkdtempSync(join(tmpdir(), 'batchnorm-tfjs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** tfjs-node's file format: model.json with the weights manifest, and weights.bin. */
function fileSaver(path: string): tf.io.IOHandler {
  return tf.io.withSaveHandler(async (artifacts) => {
    const weightData = artifacts.weightData as ArrayBuffer;
    writeFileSync(join(path, 'weights.bin'), new Uint8Array(weightData));
    const { modelTopology, format, generatedBy, convertedBy, trainingConfig } = artifacts;
    const json = {
      modelTopology,
      format,
      generatedBy,
      convertedBy,
      trainingConfig,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    };
    writeFileSync(join(path, 'model.json'), JSON.stringify(json));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  });
}

function fileLoader(path: string): tf.io.IOHandler {
  const json = JSON.parse(readFileSync(join(path, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const bin = readFileSync(join(path, 'weights.bin'));
  return tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest[0].weights,
    weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
  });
}

describe('a model saved with stock TF.js', { timeout: 300_000 }, () => {
  const data = () => cnnData(tf, 24, { height: 8, width: 8, classes: 4 });
  let stockPredictions: Float32Array;

  beforeAll(async () => {
    // Stock TF.js alone: the drop-in is not installed yet.
    await useBackend('cpu');
    const model = smallCnn(tfl, (args) => tfl.layers.batchNormalization(args), { height: 8, width: 8, filters: [4, 8], classes: 4 });
    model.compile({ loss: 'categoricalCrossentropy', optimizer: 'sgd' });
    const { xs, ys } = data();
    await model.fit(xs, ys, { epochs: 3, batchSize: 8, verbose: 0 }); // moving statistics away from 0 and 1
    await model.save(fileSaver(dir));
    stockPredictions = (model.predict(xs) as tf.Tensor).dataSync() as Float32Array;
    installTfjsKernels({ backend: 'cpu-bn' });
  }, 300_000);

  it('loads into the drop-in class and predicts the same', async () => {
    await useBackend('cpu-bn');
    const model = await tfl.loadLayersModel(fileLoader(dir));
    expect(model.layers.filter((l) => l instanceof BatchNormalization).length).toBe(2);
    const moving = model.layers[1].getWeights()[2].dataSync();
    expect(Math.max(...moving.map(Math.abs))).toBeGreaterThan(1e-3);
    const { result, kernelNames } = await kernelsRun(() => model.predict(data().xs) as tf.Tensor);
    expect(kernelNames).toContain('FusedBatchNorm');
    expectRelClose(result, stockPredictions, 1e-4);
  });

  it('trains on the native kernels as the stock path does, and saves the same model.json', async () => {
    const losses: number[][] = [];
    const topologies: unknown[] = [];
    for (const backend of ['cpu', 'cpu-bn']) {
      // The class is registered: on 'cpu' (not installed there) it runs the stock code.
      await useBackend(backend);
      const model = await tfl.loadLayersModel(fileLoader(dir));
      model.compile({ loss: 'categoricalCrossentropy', optimizer: 'sgd' });
      const { xs, ys } = data();
      const { result, kernelNames } = await kernelsRun(() => model.fit(xs, ys, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 }));
      expect(kernelNames.includes('BatchNormTraining')).toBe(backend === 'cpu-bn');
      losses.push(result.history.loss as number[]);
      await model.save(
        tf.io.withSaveHandler(async (a) => (topologies.push(a.modelTopology), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })),
      );
    }
    expectRelClose(losses[1], losses[0], 1e-3);
    const saved = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
    expect(topologies[1]).toEqual(saved.modelTopology);
  });
});
