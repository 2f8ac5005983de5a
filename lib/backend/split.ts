/**
 * The kernels of split-phase (synchronized) batch normalization: the pieces
 * of a training forward and backward with the statistics combined across
 * ranks in between (see ../splitphase.ts). Statistics and sums are float64
 * whatever the input's type: they travel between ranks and are combined
 * there, and float32 would lose what Chan's formula keeps.
 *
 * (n, c, s) and channelsLast as in kernels.ts. The native ones (native/
 * kernels/split_phase.h) check every argument, as the other kernels do; the
 * JS ones only compute: their one caller (splitphase.ts) checks first.
 */
import type { FloatArray } from './kernels.js';
import { applyAffine, channelMoments, gradInput, gradSums } from './js.js';
import { addon } from './loader.js';

export interface SplitKernels {
  /** Per channel: mean and M2 = Σ(x − mean)² of the n·s values, in float64 (written). */
  localMoments(x: FloatArray, mean: Float64Array, m2: Float64Array, n: number, c: number, s: number, channelsLast: boolean): void;
  /** y = (x − mean)·invstd·weight + bias, from given statistics (weight, bias null: 1, 0). y may be x. */
  normalize(
    x: FloatArray,
    y: FloatArray,
    weight: FloatArray | null,
    bias: FloatArray | null,
    mean: Float64Array,
    invstd: Float64Array,
    n: number,
    c: number,
    s: number,
    channelsLast: boolean,
  ): void;
  /** Per channel: sumDy = Σdy and sumDyXmu = Σdy·(x − mean), in float64 (written). */
  backwardReduce(
    x: FloatArray,
    dy: FloatArray,
    mean: Float64Array,
    sumDy: Float64Array,
    sumDyXmu: Float64Array,
    n: number,
    c: number,
    s: number,
    channelsLast: boolean,
  ): void;
  /**
   * dx from the sums over the whole batch (of `count` values per channel):
   * `dx = weight·invstd·(dy − sumDy/count − (x − mean)·invstd²·sumDyXmu/count)`.
   * dx may be dy or x.
   */
  backwardElemt(
    x: FloatArray,
    dy: FloatArray,
    dx: FloatArray,
    weight: FloatArray | null,
    mean: Float64Array,
    invstd: Float64Array,
    sumDy: Float64Array,
    sumDyXmu: Float64Array,
    count: number,
    n: number,
    c: number,
    s: number,
    channelsLast: boolean,
  ): void;
}

function localMoments(x: FloatArray, mean: Float64Array, m2: Float64Array, n: number, c: number, s: number, channelsLast: boolean): void {
  mean.fill(0);
  m2.fill(0);
  channelMoments(x, n, c, s, channelsLast, mean, m2);
}

function normalize(
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  mean: Float64Array,
  invstd: Float64Array,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
): void {
  // The coefficients as the training forward of kernels.ts takes them: a = invstd·weight.
  const a = new Float64Array(c),
    b = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    a[ch] = invstd[ch] * (weight ? weight[ch] : 1);
    b[ch] = bias ? bias[ch] : 0;
  }
  applyAffine(x, y, n, c, s, channelsLast, mean, a, b);
}

function backwardReduce(
  x: FloatArray,
  dy: FloatArray,
  mean: Float64Array,
  sumDy: Float64Array,
  sumDyXmu: Float64Array,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
): void {
  sumDy.fill(0);
  sumDyXmu.fill(0);
  gradSums(x, dy, mean, sumDy, sumDyXmu, n, c, s, channelsLast);
}

function backwardElemt(
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray,
  weight: FloatArray | null,
  mean: Float64Array,
  invstd: Float64Array,
  sumDy: Float64Array,
  sumDyXmu: Float64Array,
  count: number,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
): void {
  // The coefficients in the order of the single-process backward (js.ts),
  // with the sums and count of the whole batch.
  const k1 = new Float64Array(c),
    k2 = new Float64Array(c),
    k3 = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    const is = invstd[ch],
      gw = is * sumDyXmu[ch];
    k1[ch] = (weight ? weight[ch] : 1) * is;
    k2[ch] = (-k1[ch] * is * gw) / count;
    k3[ch] = (-k1[ch] * sumDy[ch]) / count;
  }
  gradInput(x, dy, dx, mean, k1, k2, k3, n, c, s, channelsLast);
}

export const jsSplitKernels: SplitKernels = { localMoments, normalize, backwardReduce, backwardElemt };

/** The split kernels of the backend in use: the addon's (it has them from this version on), else the JS ones. */
export const splitKernels: SplitKernels =
  addon && typeof (addon as Partial<SplitKernels>).localMoments === 'function'
    ? (() => {
        const a = addon as unknown as SplitKernels;
        return { localMoments: a.localMoments, normalize: a.normalize, backwardReduce: a.backwardReduce, backwardElemt: a.backwardElemt };
      })()
    : jsSplitKernels;
