/**
 * tf.layers' LayerNormalization on the package's LayerNorm (batchnorm/tfjs'
 * `LayerNormalization`, on the opt-in backend 'cpu-bn') against stock TF.js'
 * LayerNormalization on its 'cpu' backend: outputs on random inputs for the
 * axis forms (last, several, unsorted, not last, not adjacent), with and
 * without center/scale; gradients against tf.grads of the stock layer; a
 * model's weights after fit(); a saved model.json loading onto the drop-in;
 * and bad configs, refused in this package's words.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  installTfjsKernels,
  LayerNormalization,
  layerNormalization,
  LayerNormRows,
  LayerNormRowsGrad,
  type LayerNormalizationLayerArgs,
} from '../../lib/tfjs/index.js';
import { expectRelClose, kernelsRun, randn, tf, useBackend } from './setup.js';

const T = { timeout: 120_000 };

beforeAll(() => installTfjsKernels({ backend: 'cpu-bn' }), 300_000);

type Args = LayerNormalizationLayerArgs;
type Make = (args: Args) => tfl.layers.Layer;
const stock: Make = (args) => tfl.layers.layerNormalization(args);

/**
 * A layer built for `shape`, its weights set to random values (gamma partly
 * negative), the same for the same seed whichever of them the layer has; with
 * `absent`, gamma at 1 and beta at 0 where args leave them out.
 */
function layerWith(make: Make, args: Args, shape: number[], seed: number, absent?: Args): tfl.layers.Layer {
  const layer = make(absent ? { ...args, center: true, scale: true } : args);
  layer.build(shape);
  layer.setWeights(
    layer.weights.map((w) => {
      const gamma = w.originalName.endsWith('gamma');
      const shape = w.shape as number[]; // a built layer's weights have defined sizes
      if (absent?.[gamma ? 'scale' : 'center'] === false) return gamma ? tf.ones(shape) : tf.zeros(shape);
      return tf.tensor(
        randn(
          shape.reduce((a, b) => a * b, 1),
          gamma ? seed : seed + 1,
          gamma ? 0.5 : 0,
          1,
        ),
        shape,
      );
    }),
  );
  return layer;
}

const CASES: Array<[string, number[], Args]> = [
  ['2-D, default axis', [8, 12], {}],
  ['3-D, axis -1', [3, 5, 16], { axis: -1 }],
  ['3-D, axes [-2, -1]', [3, 5, 16], { axis: [-2, -1] }],
  ['3-D, axes [2, 1] (unsorted: gamma read in sorted order)', [3, 4, 6], { axis: [2, 1] }],
  ['3-D, axis 1 (not last: transposed)', [3, 7, 5], { axis: 1 }],
  ['4-D, axes [1, 3] (not adjacent)', [2, 3, 4, 5], { axis: [1, 3] }],
  ['4-D, axis 0', [6, 2, 3, 2], { axis: 0 }],
  ['no center', [4, 10], { center: false }],
  ['no scale', [4, 10], { scale: false }],
  ['neither center nor scale, epsilon 0', [4, 10], { center: false, scale: false, epsilon: 0 }],
  ['epsilon 0.5, input shifted far from 0', [4, 10], { epsilon: 0.5 }],
];

/** x for a case: standard normal, or mean 100 for the shifted one (float32 statistics of the stock code lose digits there). */
function inputFor(name: string, shape: number[], seed: number): Float32Array {
  return randn(
    shape.reduce((a, b) => a * b, 1),
    seed,
    name.includes('shifted') ? 100 : 0,
    name.includes('shifted') ? 3 : 1,
  );
}

describe('LayerNormalization: outputs vs stock TF.js', T, () => {
  for (const [name, shape, args] of CASES)
    it(name, async () => {
      const x = inputFor(name, shape, 1);
      await useBackend('cpu');
      const expected = (layerWith(stock, args, shape, 10).apply(tf.tensor(x, shape)) as tf.Tensor).dataSync();
      await useBackend('cpu-bn');
      const layer = layerWith(layerNormalization, args, shape, 10);
      const { result, kernelNames } = await kernelsRun(() => layer.apply(tf.tensor(x, shape)) as tf.Tensor);
      expect(kernelNames).toContain(LayerNormRows);
      expect(result.shape).toEqual(shape);
      expectRelClose(result, expected, 1e-4);
    });

  it('inference (model.predict) runs the same kernel', async () => {
    const model = tfl.sequential({ layers: [layerNormalization({ inputShape: [6] })] });
    const { result, kernelNames } = await kernelsRun(() => model.predict(tf.tensor(randn(12, 3), [2, 6])) as tf.Tensor);
    expect(kernelNames).toContain(LayerNormRows);
    const rows = result.arraySync() as number[][];
    for (const row of rows) expect(Math.abs(row.reduce((a, b) => a + b, 0))).toBeLessThan(1e-5);
  });

  it("on a backend without the kernels (stock 'cpu'), TF.js' code runs", async () => {
    await useBackend('cpu');
    const { kernelNames } = await kernelsRun(() => layerNormalization({}).apply(tf.ones([2, 3])) as tf.Tensor);
    expect(kernelNames).not.toContain(LayerNormRows);
    await useBackend('cpu-bn');
  });
});

describe('LayerNormalization: gradients vs tf.grads of the stock layer', T, () => {
  /** dx, dgamma, dbeta (those there are) of the layer applied to x, for a given dy. */
  function grads(layer: tfl.layers.Layer, x: tf.Tensor, dy: tf.Tensor): tf.Tensor[] {
    const weights = layer.trainableWeights.map((w) => w.read());
    // tf.grads differentiates with respect to every argument; the layer reads its weights itself.
    return tf.grads((input: tf.Tensor) => layer.apply(input) as tf.Tensor)([x, ...weights], dy);
  }

  // Stock TF.js cannot differentiate the layer without center or scale (the
  // tape meets the missing offset or scale of tf.batchNorm): the reference
  // there is the same function with beta at 0 or gamma at 1, its gradients
  // for them left out.
  it('stock TF.js fails without center or scale; the drop-in differentiates it', async () => {
    await useBackend('cpu');
    for (const args of [{ center: false }, { scale: false }])
      expect(() => grads(layerWith(stock, args, [4, 10], 20), tf.ones([4, 10]), tf.ones([4, 10]))).toThrow(TypeError);
    await useBackend('cpu-bn');
  });

  it("without center or scale on a backend without the kernels (stock 'cpu'), the drop-in differentiates in TF.js ops", async () => {
    await useBackend('cpu');
    const shape = [3, 4, 5];
    const x = tf.tensor(randn(60, 4), shape),
      dy = tf.tensor(randn(60, 5), shape);
    for (const args of [{ center: false, axis: [1, 2] }, { scale: false }, { center: false, scale: false }] as Args[]) {
      const reference = layerWith(stock, args, shape, 30, args);
      const present = reference.weights.map((w) => args[w.originalName.endsWith('gamma') ? 'scale' : 'center'] !== false);
      const expected = grads(reference, x, dy).filter((_, i) => i === 0 || present[i - 1]);
      const { result, kernelNames } = await kernelsRun(() => grads(layerWith(layerNormalization, args, shape, 30), x, dy));
      expect(kernelNames).not.toContain(LayerNormRows);
      expect(result.length).toBe(expected.length);
      result.forEach((g, i) => expectRelClose(g, expected[i], 1e-5));
    }
    await useBackend('cpu-bn');
  });

  for (const [name, shape, args] of CASES)
    it(name, async () => {
      const x = inputFor(name, shape, 2),
        dy = randn(x.length, 3);
      await useBackend('cpu');
      const reference = layerWith(stock, args, shape, 20, args);
      const present = reference.weights.map((w) => args[w.originalName.endsWith('gamma') ? 'scale' : 'center'] !== false);
      const expected = grads(reference, tf.tensor(x, shape), tf.tensor(dy, shape))
        .filter((_, i) => i === 0 || present[i - 1])
        .map((g) => g.dataSync());
      await useBackend('cpu-bn');
      const layer = layerWith(layerNormalization, args, shape, 20);
      const { result, kernelNames } = await kernelsRun(() => grads(layer, tf.tensor(x, shape), tf.tensor(dy, shape)));
      expect(kernelNames).toContain(LayerNormRowsGrad);
      expect(result.length).toBe(expected.length);
      expect(result.length).toBe(1 + (args.center === false ? 0 : 1) + (args.scale === false ? 0 : 1));
      result.forEach((g, i) => expectRelClose(g, expected[i], name.includes('shifted') ? 2e-3 : 2e-4));
    });
});

describe('LayerNormalization: fit() gives stock TF.js’ weights', { timeout: 300_000 }, () => {
  /**
   * Dense → LayerNormalization → ReLU → Dense (softmax), seeded, on [8, 6]
   * sequences. The first Dense has a bias only where the norm does not
   * subtract it again (its features on a normalized axis): else its gradient
   * is zero but for rounding, which Adam amplifies into steps of ±lr.
   */
  function model(ln: Make, args: Args): tfl.Sequential {
    const init = (k: number) => tfl.initializers.glorotUniform({ seed: 5 + k });
    const axes = typeof args.axis === 'number' ? [args.axis] : (args.axis ?? [-1]);
    return tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [8, 6], units: 12, kernelInitializer: init(0), useBias: axes.some((a) => a === -1 || a === 2) }),
        ln(args),
        tfl.layers.reLU(),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(1) }),
      ],
    });
  }

  const fits: Array<[string, Args, 'sgd' | 'adam']> = [
    ['default axis, sgd', {}, 'sgd'],
    [
      'axes [1, 2], regularizers and initializers, adam',
      { axis: [1, 2], gammaRegularizer: 'l1l2', betaRegularizer: tfl.regularizers.l2({ l2: 0.05 }), gammaInitializer: 'randomNormal' },
      'adam',
    ],
    ['axis 1 (transposed), adam', { axis: 1 }, 'adam'],
  ];
  for (const [name, args, optimizer] of fits)
    it(name, async () => {
      const xs = randn(32 * 8 * 6, 7),
        labels = Array.from(randn(32, 8), (v) => Math.min(3, Math.max(0, Math.floor(v + 2))));
      const run = async (backend: string, ln: Make) => {
        await useBackend(backend);
        // Seeded initializers for gamma, so that both start equal.
        const a = { ...args, ...(args.gammaInitializer ? { gammaInitializer: tfl.initializers.randomNormal({ seed: 3 }) } : {}) };
        const m = model(ln, a);
        m.compile({ loss: 'categoricalCrossentropy', optimizer: optimizer === 'sgd' ? tf.train.sgd(0.1) : tf.train.adam(0.01) });
        const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 4);
        const { result, kernelNames } = await kernelsRun(() => m.fit(tf.tensor(xs, [32, 8, 6]), ys, { epochs: 3, batchSize: 8, shuffle: false, verbose: 0 }));
        return { loss: result.history.loss as number[], kernelNames, weights: m.getWeights().map((w) => w.dataSync()) };
      };
      const before = await run('cpu', stock);
      const ours = await run('cpu-bn', layerNormalization);
      expect(before.kernelNames).not.toContain(LayerNormRows);
      expect(ours.kernelNames).toEqual(expect.arrayContaining([LayerNormRows, LayerNormRowsGrad]));
      expect(before.loss[2]).toBeLessThan(before.loss[0]);
      expectRelClose(ours.loss, before.loss, 1e-4);
      expect(ours.weights.length).toBe(before.weights.length);
      ours.weights.forEach((w, i) => expectRelClose(w, before.weights[i], 1e-4));
    });
});

describe('LayerNormalization: a model saved with stock TF.js', T, () => {
  it('loads onto the drop-in, predicts the same, and saves the same model.json', async () => {
    await useBackend('cpu');
    const saved: tf.io.ModelArtifacts[] = [];
    const saver = tf.io.withSaveHandler(async (a) => (saved.push(a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }));
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [5, 4], units: 6 }),
        stock({ axis: [-2, -1], epsilon: 1e-2, gammaRegularizer: 'l1l2' }),
        stock({ axis: 1, epsilon: 0.1 }),
      ],
    });
    m.compile({ loss: 'meanSquaredError', optimizer: 'sgd' });
    const xs = tf.tensor(randn(6 * 5 * 4, 11), [6, 5, 4]);
    await m.fit(xs, tf.tensor(randn(6 * 5 * 6, 12), [6, 5, 6]), { epochs: 2, verbose: 0 }); // gamma and beta away from 1 and 0
    await m.save(saver);
    const expected = (m.predict(xs) as tf.Tensor).dataSync();

    await useBackend('cpu-bn');
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved[0]));
    expect(loaded.layers.filter((l) => l instanceof LayerNormalization).length).toBe(2);
    const { result, kernelNames } = await kernelsRun(() => loaded.predict(xs) as tf.Tensor);
    expect(kernelNames).toContain(LayerNormRows);
    expectRelClose(result, expected, 1e-4);
    await loaded.save(saver);
    expect(saved[1].modelTopology).toEqual(saved[0].modelTopology);
    expect(saved[1].weightSpecs).toEqual(saved[0].weightSpecs);
    expect(new Uint8Array(saved[1].weightData as ArrayBuffer)).toEqual(new Uint8Array(saved[0].weightData as ArrayBuffer));
  });

  it("has TF.js' config and weight names", () => {
    const args: Args = { axis: [1, 2], epsilon: 1e-2, center: false, gammaInitializer: 'zeros', gammaRegularizer: 'l1l2' };
    const ours = layerNormalization(args),
      theirs = stock(args);
    expect(ours.getClassName()).toBe('LayerNormalization');
    expect(ours).toBeInstanceOf(Object.getPrototypeOf(LayerNormalization));
    ours.build([2, 3, 4]);
    theirs.build([2, 3, 4]);
    const { name: _a, ...oursConfig } = ours.getConfig();
    const { name: _b, ...theirsConfig } = theirs.getConfig();
    expect(oursConfig).toEqual(theirsConfig);
    expect(ours.weights.map((w) => [w.originalName.split('/').pop(), w.shape])).toEqual([['gamma', [3, 4]]]);
    expect(ours.losses.length).toBe(theirs.losses.length);
  });
});

describe('LayerNormalization: bad configs', T, () => {
  const refused: Array<[Args | unknown, ErrorConstructor, RegExp]> = [
    [{ axis: 1.5 }, RangeError, /^Expected an integer or a non-empty array of distinct integers for LayerNormalization's axis but received the number 1\.5/],
    [{ axis: '1' }, TypeError, /for LayerNormalization's axis but received a string: for example -1/],
    [{ axis: [] }, RangeError, /for LayerNormalization's axis but received \[\]/],
    [{ axis: [1, 1] }, RangeError, /for LayerNormalization's axis but received \[1,1\]/],
    [{ epsilon: -1e-3 }, RangeError, /^Expected a number in \[0, 1\] for LayerNormalization's epsilon but received the number -0\.001/],
    [{ epsilon: 1e3 }, RangeError, /for LayerNormalization's epsilon .*Keras' 1e-3/],
    [{ epsilon: '1e-3' }, TypeError, /for LayerNormalization's epsilon but received a string/],
    [{ center: 'yes' }, TypeError, /^Expected a boolean for LayerNormalization's center but received a string/],
    [{ scale: 1 }, TypeError, /^Expected a boolean for LayerNormalization's scale but received the number 1/],
    ['-1', TypeError, /^Expected an object for LayerNormalization's arguments but received a string/],
  ];
  for (const [args, type, message] of refused)
    it(`refuses ${JSON.stringify(args)} when made`, () => {
      let error: unknown;
      try {
        layerNormalization(args as Args);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(type);
      expect((error as Error).message).toMatch(message);
    });

  const refusedAtBuild: Array<[Args, Array<number | null>, RegExp]> = [
    [
      { axis: 3 },
      [2, 3, 4],
      /^Expected axes in \[-3, 2\] \(the input's rank is 3\) for LayerNormalization's axis but received 3 for an input of shape \[2, 3, 4\]/,
    ],
    [{ axis: [-4] }, [2, 3, 4], /axes in \[-3, 2\]/],
    [
      { axis: [-1, 2] },
      [2, 3, 4],
      /^Expected distinct axes for LayerNormalization's axis but received \[-1,2\] for an input of shape \[2, 3, 4\]: -1 and 2 name the same axes/,
    ],
    [{ axis: 1 }, [2, null, 4], /sizes the input shape defines .* received 1 for an input of shape \[2, null, 4\]: axis 1 is null/],
  ];
  for (const [args, shape, message] of refusedAtBuild)
    it(`refuses ${JSON.stringify(args)} for shape ${JSON.stringify(shape)} when built, and stays unbuilt`, () => {
      const layer = layerNormalization(args);
      expect(() => layer.build(shape)).toThrow(RangeError);
      expect(() => layer.build(shape)).toThrow(message);
      expect(layer.built).toBe(false);
      expect(layer.weights.length).toBe(0);
      expect(layer.getConfig().axis).toEqual(args.axis);
    });

  it('refuses a bad axis in a loaded model.json', async () => {
    const json = tfl.sequential({ layers: [stock({ inputShape: [4] })] }).toJSON(null, false) as unknown as { config: { layers: Array<{ config: Args }> } };
    json.config.layers[0].config.axis = [0.5];
    await expect(tfl.models.modelFromJSON({ modelTopology: json } as never)).rejects.toThrow(/LayerNormalization's axis but received \[0\.5\]/);
  });
});
