/**
 * Level 1: installTfjsKernels({ backend: 'cpu' }) replaces FusedBatchNorm on
 * TF.js' own cpu backend. tf.batchNorm keeps TF.js' semantics (tfjs-layers'
 * batchNormalization tests, with their values), and parameters that
 * broadcast against channels-first data ([1, C, 1, 1]) are right (TF.js
 * #1106); checked against a float64 reference.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { batchNormalization, installTfjsKernels } from '../../lib/tfjs/index.js';
import { expectClose, kernelsRun, randn, tf, useBackend } from './setup.js';

const T = { timeout: 120_000 };

/** y = offset + (x − mean)·scale/√(var + eps) with numpy broadcasting, in float64. */
function reference(x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, offset: tf.Tensor | null, scale: tf.Tensor | null, eps: number): Float64Array {
  const xs = x.shape,
    rank = xs.length;
  const read = (t: tf.Tensor | null, fallback: number) => {
    if (!t) return () => fallback;
    const v = t.dataSync(),
      shape = [...new Array<number>(rank - t.rank).fill(1), ...t.shape];
    return (idx: number[]) => v[idx.reduce((at, i, d) => at * shape[d] + (shape[d] === 1 ? 0 : i), 0)];
  };
  const [m, va, o, s] = [read(mean, 0), read(variance, 1), read(offset, 0), read(scale, 1)];
  const xv = x.dataSync(),
    out = new Float64Array(xv.length),
    idx = new Array<number>(rank).fill(0);
  for (let k = 0; k < xv.length; k++) {
    out[k] = o(idx) + ((xv[k] - m(idx)) * s(idx)) / Math.sqrt(va(idx) + eps);
    for (let d = rank - 1; d >= 0 && ++idx[d] === xs[d]; d--) idx[d] = 0;
  }
  return out;
}

/** tf.batchNorm on the installed cpu backend, checking that the native kernel is what ran. */
async function nativeBatchNorm(...args: Parameters<typeof tf.batchNorm>): Promise<tf.Tensor> {
  const { result, kernelNames } = await kernelsRun(() => tf.batchNorm(...args));
  expect(kernelNames).toContain('FusedBatchNorm');
  return result;
}

let stockNchw: Float32Array;
const nchw = () => {
  const x = tf.tensor4d(randn(2 * 3 * 4 * 5, 1), [2, 3, 4, 5]);
  const p = (seed: number, lo = 0) =>
    tf.tensor4d(
      randn(3, seed).map((v) => lo + Math.abs(v)),
      [1, 3, 1, 1],
    );
  return { x, mean: p(2), variance: p(3, 0.5), offset: p(4), scale: p(5) };
};

beforeAll(async () => {
  await useBackend('cpu');
  const { x, mean, variance, offset, scale } = nchw();
  stockNchw = tf.batchNorm(x, mean, variance, offset, scale, 1e-3).dataSync() as Float32Array;
  installTfjsKernels({ backend: 'cpu' });
}, 300_000);

describe("FusedBatchNorm on 'cpu': TF.js' semantics (tfjs-layers batchNormalization tests)", T, () => {
  it('2D, no broadcast, no gamma, no beta (epsilon 0)', async () => {
    const x = tf.tensor2d([
        [10, 20],
        [30, 40],
      ]),
      mean = tf.tensor2d([
        [5, 5],
        [5, 5],
      ]),
      variance = tf.tensor2d([
        [4, 16],
        [4, 16],
      ]);
    expectClose(
      await nativeBatchNorm(x, mean, variance, undefined, undefined, 0),
      tf.tensor2d([
        [2.5, 3.75],
        [12.5, 8.75],
      ]),
    );
  });
  it('2D, no broadcast, custom epsilon', async () => {
    const x = tf.tensor2d([
        [30, 30],
        [60, 60],
      ]),
      mean = tf.tensor2d([
        [0, 0],
        [0, 0],
      ]),
      variance = tf.tensor2d([
        [7, 7],
        [7, 7],
      ]);
    expectClose(
      await nativeBatchNorm(x, mean, variance, undefined, undefined, 2),
      tf.tensor2d([
        [10, 10],
        [20, 20],
      ]),
    );
  });
  it('2D, no broadcast, gamma, no beta', async () => {
    const x = tf.tensor2d([
        [10, 20],
        [30, 40],
      ]),
      mean = tf.tensor2d([
        [5, 5],
        [5, 5],
      ]),
      variance = tf.tensor2d([
        [4, 16],
        [4, 16],
      ]);
    expectClose(
      await nativeBatchNorm(
        x,
        mean,
        variance,
        undefined,
        tf.tensor2d([
          [1, 2],
          [3, 4],
        ]),
        0,
      ),
      tf.tensor2d([
        [2.5, 7.5],
        [37.5, 35],
      ]),
    );
  });
  it('2D, no broadcast, gamma, beta', async () => {
    const x = tf.tensor2d([
        [10, 20],
        [30, 40],
      ]),
      mean = tf.tensor2d([
        [5, 5],
        [5, 5],
      ]),
      variance = tf.tensor2d([
        [4, 16],
        [4, 16],
      ]);
    expectClose(
      await nativeBatchNorm(
        x,
        mean,
        variance,
        tf.tensor2d([
          [-1, -1],
          [-2, -2],
        ]),
        tf.tensor2d([
          [1, 2],
          [3, 4],
        ]),
        0,
      ),
      tf.tensor2d([
        [1.5, 6.5],
        [35.5, 33],
      ]),
    );
  });
  it('2D, broadcast, gamma, beta', async () => {
    const x = tf.tensor2d([
      [10, 20],
      [30, 40],
    ]);
    expectClose(
      await nativeBatchNorm(x, tf.tensor1d([2, 5]), tf.tensor1d([1, 4]), tf.tensor1d([-1, -2]), tf.tensor1d([3, 4]), 0),
      tf.tensor2d([
        [23, 28],
        [83, 68],
      ]),
    );
  });
  it('3D, no broadcast, gamma, beta', async () => {
    const x = tf.tensor3d([
      [
        [10, 20],
        [30, 40],
      ],
      [
        [10, 20],
        [30, 40],
      ],
    ]);
    const mean = tf.tensor3d([
        [
          [5, 5],
          [5, 5],
        ],
        [
          [5, 5],
          [5, 5],
        ],
      ]),
      variance = tf.tensor3d([
        [
          [4, 16],
          [4, 16],
        ],
        [
          [16, 25],
          [16, 25],
        ],
      ]);
    const gamma = tf.tensor3d([
        [
          [2, 2],
          [2, 2],
        ],
        [
          [4, 4],
          [4, 4],
        ],
      ]),
      beta = tf.tensor3d([
        [
          [-1, -1],
          [-2, -2],
        ],
        [
          [-1, -1],
          [-2, -2],
        ],
      ]);
    expectClose(
      await nativeBatchNorm(x, mean, variance, beta, gamma, 0),
      tf.tensor3d([
        [
          [4, 6.5],
          [23, 15.5],
        ],
        [
          [4, 11],
          [23, 26],
        ],
      ]),
    );
  });
  it('3D, broadcast, gamma, beta', async () => {
    const x = tf.tensor3d([
      [
        [10, 20],
        [30, 40],
      ],
      [
        [10, 20],
        [30, 40],
      ],
    ]);
    expectClose(
      await nativeBatchNorm(x, tf.tensor1d([5, 5]), tf.tensor1d([4, 16]), tf.tensor1d([-1, -2]), tf.tensor1d([2, 4]), 0),
      tf.tensor3d([
        [
          [4, 13],
          [24, 33],
        ],
        [
          [4, 13],
          [24, 33],
        ],
      ]),
    );
  });
  it('4D, no broadcast, gamma, beta', async () => {
    const x = tf.tensor4d([
      [
        [
          [10, 20],
          [30, 40],
        ],
        [
          [10, 20],
          [30, 40],
        ],
      ],
      [
        [
          [-10, -20],
          [-30, -40],
        ],
        [
          [-10, -20],
          [-30, -40],
        ],
      ],
    ]);
    const mean = tf.tensor4d([
      [
        [
          [5, 5],
          [5, 5],
        ],
        [
          [5, 5],
          [5, 5],
        ],
      ],
      [
        [
          [-5, -5],
          [-5, -5],
        ],
        [
          [-5, -5],
          [-5, -5],
        ],
      ],
    ]);
    const variance = tf.tensor4d([
      [
        [
          [4, 16],
          [4, 16],
        ],
        [
          [16, 25],
          [16, 25],
        ],
      ],
      [
        [
          [4, 16],
          [4, 16],
        ],
        [
          [16, 25],
          [16, 25],
        ],
      ],
    ]);
    const gamma = tf.tensor4d([
      [
        [
          [2, 2],
          [2, 2],
        ],
        [
          [4, 4],
          [4, 4],
        ],
      ],
      [
        [
          [2, 2],
          [2, 2],
        ],
        [
          [4, 4],
          [4, 4],
        ],
      ],
    ]);
    const beta = tf.tensor4d([
      [
        [
          [-1, -1],
          [-2, -2],
        ],
        [
          [-1, -1],
          [-2, -2],
        ],
      ],
      [
        [
          [1, 1],
          [2, 2],
        ],
        [
          [1, 1],
          [2, 2],
        ],
      ],
    ]);
    expectClose(
      await nativeBatchNorm(x, mean, variance, beta, gamma, 0),
      tf.tensor4d([
        [
          [
            [4, 6.5],
            [23, 15.5],
          ],
          [
            [4, 11],
            [23, 26],
          ],
        ],
        [
          [
            [-4, -6.5],
            [-23, -15.5],
          ],
          [
            [-4, -11],
            [-23, -26],
          ],
        ],
      ]),
    );
  });
  it('4D, broadcast, gamma, beta', async () => {
    const x = tf.tensor4d(
      [
        [
          [
            [10, 20],
            [30, 40],
          ],
        ],
        [
          [
            [10, 20],
            [30, 40],
          ],
        ],
      ],
      [2, 1, 2, 2],
    );
    expectClose(
      await nativeBatchNorm(x, tf.tensor1d([5, 5]), tf.tensor1d([4, 16]), tf.tensor1d([-1, -2]), tf.tensor1d([2, 4]), 0),
      tf.tensor4d(
        [
          [
            [
              [4, 13],
              [24, 33],
            ],
          ],
          [
            [
              [4, 13],
              [24, 33],
            ],
          ],
        ],
        [2, 1, 2, 2],
      ),
    );
  });
});

describe("FusedBatchNorm on 'cpu': broadcasting against a float64 reference", T, () => {
  it('channels-first [1, C, 1, 1] parameters normalize each channel (TF.js #1106; the stock kernel does not)', async () => {
    const { x, mean, variance, offset, scale } = nchw();
    const ref = reference(x, mean, variance, offset, scale, 1e-3);
    expectClose(await nativeBatchNorm(x, mean, variance, offset, scale, 1e-3), ref, 1e-5);
    // The stock kernel cycled the 3 values along W (5): far off.
    expect(Math.max(...stockNchw.map((v, i) => Math.abs(v - ref[i])))).toBeGreaterThan(0.1);
  });

  const cases: Array<[string, number[], number[]]> = [
    ['NHWC with [C]', [3, 4, 5, 6], [6]],
    ['NCHW with [C, 1, 1]', [3, 6, 4, 5], [6, 1, 1]],
    ['a middle axis of a 3-D input, [C, 1]', [4, 6, 5], [6, 1]],
    ['2-D with [C]', [7, 6], [6]],
    ['5-D channels-first [1, C, 1, 1, 1]', [2, 3, 2, 3, 4], [1, 3, 1, 1, 1]],
    ['full-size parameters', [2, 3, 4, 5], [2, 3, 4, 5]],
    ['parameters along two axes, [H, 1, C]', [2, 4, 3, 5], [4, 1, 5]],
    ['a single value', [2, 3, 4], [1]],
  ];
  for (const [name, xShape, pShape] of cases)
    it(name, async () => {
      const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
      const x = tf.tensor(randn(size(xShape), 11, 3, 2), xShape);
      const p = (seed: number, lo: number, abs: boolean) =>
        tf.tensor(
          randn(size(pShape), seed).map((v) => lo + (abs ? Math.abs(v) : v)),
          pShape,
        );
      const [mean, variance, offset, scale] = [p(12, 0, false), p(13, 0.1, true), p(14, 0, false), p(15, 0, false)];
      expectClose(await nativeBatchNorm(x, mean, variance, offset, scale, 1e-3), reference(x, mean, variance, offset, scale, 1e-3), 1e-4);
      expectClose(await nativeBatchNorm(x, mean, variance, undefined, undefined, 1e-2), reference(x, mean, variance, null, null, 1e-2), 1e-4);
    });

  it('a zero variance with epsilon 0 gives ±Infinity, as the stock kernel', async () => {
    const y = await nativeBatchNorm(tf.tensor2d([[1, 2]]), tf.tensor1d([0, 0]), tf.tensor1d([0, 4]), undefined, undefined, 0);
    expect(Array.from(y.dataSync())).toEqual([Infinity, 1]);
  });

  it('an empty input gives an empty output', async () => {
    const y = await nativeBatchNorm(tf.zeros([0, 3]), tf.zeros([3]), tf.ones([3]));
    expect(y.shape).toEqual([0, 3]);
  });

  it('int32 tensors run the stock kernel (the native one takes float32)', () => {
    const y = tf.batchNorm(
      tf.tensor2d(
        [
          [1, 2],
          [3, 4],
        ],
        [2, 2],
        'int32',
      ),
      tf.tensor1d([1, 2], 'int32'),
      tf.tensor1d([4, 4], 'int32'),
      undefined,
      undefined,
      0,
    );
    expectClose(y, [0, 0, 1, 1]);
  });

  it('a parameter that does not broadcast is a RangeError naming it', () => {
    expect(() => tf.batchNorm(tf.zeros([2, 3, 4, 5]), tf.zeros([3]), tf.ones([3]))).toThrow(
      /FusedBatchNorm: expected mean of shape \[5\].*received shape \[3\]/,
    );
  });

  it("tf.layers' stock inference of a channels-first (axis 1) layer is right on the installed cpu", () => {
    const x = tf.tensor4d(randn(2 * 3 * 4 * 4, 21, 1, 2), [2, 3, 4, 4]);
    for (const layer of [tfl.layers.batchNormalization({ axis: 1 }), batchNormalization({ axis: 1 })]) {
      layer.build(x.shape);
      layer.setWeights([tf.tensor1d([1, -2, 3]), tf.tensor1d([0.5, 0, -0.5]), tf.tensor1d([1, 0, -1]), tf.tensor1d([1, 2, 4])]);
      const y = layer.apply(x, { training: false }) as tf.Tensor;
      const bshape: [number, number, number, number] = [1, 3, 1, 1];
      const t = (v: number[]) => tf.tensor4d(v, bshape);
      expectClose(y, reference(x, t([1, 0, -1]), t([1, 2, 4]), t([0.5, 0, -0.5]), t([1, -2, 3]), 1e-3), 1e-5);
    }
  });
});

describe("installTfjsKernels({ backend: 'cpu' }) also trains on 'cpu'", T, () => {
  it('a model loaded from JSON fits with the native training kernels', async () => {
    const stock = tfl.sequential({ layers: [tfl.layers.dense({ units: 6, inputShape: [5] }), tfl.layers.batchNormalization({ axis: 1 })] });
    const model = await tfl.models.modelFromJSON(JSON.parse(JSON.stringify(stock.toJSON(null, false))));
    model.compile({ loss: 'meanSquaredError', optimizer: 'sgd' });
    const { result, kernelNames } = await kernelsRun(() => model.fit(tf.tensor2d(randn(40, 31), [8, 5]), tf.zeros([8, 6]), { epochs: 2, verbose: 0 }));
    expect(kernelNames).toEqual(expect.arrayContaining(['BatchNormTraining', 'BatchNormTrainingGrad']));
    const loss = result.history.loss as number[]; // fit() reports numbers (tf.History holds number | Tensor)
    expect(loss[1]).toBeLessThan(loss[0]);
  });

  it('bad options are errors that name them', () => {
    expect(() => installTfjsKernels({ backend: 'wasm' as 'cpu' })).toThrow(/expected backend to be 'cpu' or 'cpu-bn'.*received "wasm"/);
    expect(() => installTfjsKernels({ backends: 'cpu' } as never)).toThrow(/unknown option "backends"/);
    expect(() => installTfjsKernels(null as never)).toThrow(TypeError);
  });
});
