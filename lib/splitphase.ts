/**
 * Split-phase batch normalization: the training forward and backward cut
 * where the statistics must be combined across ranks, as PyTorch's
 * SyncBatchNorm does with `batch_norm_stats`, `batch_norm_gather_stats_with_counts`,
 * `batch_norm_elemt`, `batch_norm_backward_reduce` and `batch_norm_backward_elemt`
 * (camelCased here). SyncBatchNorm (./syncbatchnorm.ts) runs them with a
 * Collective in between; they are public for users with their own transport
 * or their own graph.
 *
 *   forward:  batchNormStats (local)  → allGather(packStats) → batchNormGatherStats
 *             → batchNormElemt (local) and updateRunningStats
 *   backward: batchNormBackwardReduce (local) → allReduceSum → batchNormBackwardElemt (local)
 *
 * The statistics are count, mean and M2 = Σ(x − mean)² per channel in
 * float64 — not PyTorch's mean and invstd, from which a tiny variance cannot
 * be recovered exactly — combined with Chan et al.'s formula in rank order,
 * so that every rank computes identical bits. A rank with an empty slice
 * takes part with count 0 (it changes nothing).
 */
import type { FloatArray } from './backend/kernels.js';
import { splitKernels as split } from './backend/split.js';
import {
  checkArray,
  checkBoolean,
  checkCount,
  checkMomentum,
  checkOneOf,
  checkOptions,
  checkRank,
  checkStatistic,
  gradientShapeError,
  readTensor,
  typedArrayName,
  typeError,
} from './check.js';
import { allocLike, dimsOf, isChannelsLast, LAYOUTS, sameShape, type Dims, type Layout, type Tensor } from './tensor.js';

/** The statistics of a slice (or of the whole batch): count values per channel, their mean and M2 = Σ(x − mean)². */
export interface BatchNormStats {
  count: number;
  mean: Float64Array;
  m2: Float64Array;
}

function checkInput(input: unknown, name: string, layout: Layout): { x: Tensor; dims: Dims; type: string } {
  const x = readTensor(input, name);
  checkRank(x.shape, name, 2);
  return { x, dims: dimsOf(x.shape, isChannelsLast(layout)), type: typedArrayName(x.data)! };
}

function layoutOf(v: unknown): Layout {
  return v === undefined ? 'channelsFirst' : checkOneOf(v, 'layout', LAYOUTS);
}

/** Per channel: count, mean and M2 of the input's values (count 0 for an empty input). */
export function batchNormStats(input: Tensor, options: { layout?: Layout } = {}): BatchNormStats {
  checkOptions(options, 'batchNormStats', ['layout']);
  const { x, dims } = checkInput(input, 'input', layoutOf(options.layout));
  const { n, c, s, channelsLast } = dims;
  const mean = new Float64Array(c),
    m2 = new Float64Array(c);
  const count = n * s;
  if (x.data.length > 0) split.localMoments(x.data, mean, m2, n, c, s, channelsLast);
  return { count, mean, m2 };
}

/** `stats` as one array for a collective: [count, mean…, m2…] (1 + 2C values). */
export function packStats(stats: BatchNormStats): Float64Array {
  const c = stats.mean.length,
    out = new Float64Array(1 + 2 * c);
  out[0] = stats.count;
  out.set(stats.mean, 1);
  out.set(stats.m2, 1 + c);
  return out;
}

/**
 * The statistics of each rank from what allGather returned for packStats:
 * `gathered` holds worldSize packs of 1 + 2C values. A count that is not a
 * non-negative integer (a rank that sent something else) is an error.
 */
export function unpackStats(gathered: Float64Array, worldSize: number, c: number): BatchNormStats[] {
  const len = 1 + 2 * c;
  checkStatistic(gathered, 'gathered', worldSize * len);
  const out: BatchNormStats[] = [];
  for (let r = 0; r < worldSize; r++) {
    const p = gathered.subarray(r * len, (r + 1) * len),
      count = checkCount(p[0], `the count of rank ${r}`);
    out.push({ count, mean: p.slice(1, 1 + c), m2: p.slice(1 + c) });
  }
  return out;
}

/**
 * The statistics of the union of the slices, combined in array order (rank
 * order) with Chan et al.'s formula in float64:
 * `n = na + nb, δ = mb − ma, mean = ma + δ·nb/n, M2 = M2a + M2b + δ²·na·nb/n`.
 * Empty slices are skipped. The same inputs in the same order give the same bits.
 */
export function batchNormGatherStats(all: readonly BatchNormStats[]): BatchNormStats {
  if (!Array.isArray(all) || all.length === 0) throw typeError('all', 'a non-empty array of statistics { count, mean, m2 }', all);
  const c = (all[0] as Partial<BatchNormStats> | undefined)?.mean instanceof Float64Array ? all[0].mean.length : 0;
  all.forEach((st, r) => {
    if (typeof st !== 'object' || st === null) throw typeError(`all[${r}]`, 'statistics { count, mean, m2 }', st);
    checkCount(st.count, `all[${r}].count`);
    checkStatistic(st.mean, `all[${r}].mean`, c);
    checkStatistic(st.m2, `all[${r}].m2`, c);
  });
  const mean = new Float64Array(c),
    m2 = new Float64Array(c);
  let count = 0;
  for (const st of all) {
    if (st.count === 0) continue;
    if (count === 0) {
      mean.set(st.mean);
      m2.set(st.m2);
      count = st.count;
      continue;
    }
    const n = count + st.count,
      wb = st.count / n;
    for (let ch = 0; ch < c; ch++) {
      const delta = st.mean[ch] - mean[ch];
      mean[ch] += delta * wb;
      m2[ch] += st.m2[ch] + delta * delta * count * wb;
    }
    count = n;
  }
  return { count, mean, m2 };
}

/** 1/√(M2/count + eps) per channel (the biased variance, as the training forward normalizes with). */
export function invstdOf(stats: BatchNormStats, eps: number): Float64Array {
  const out = new Float64Array(stats.mean.length);
  for (let ch = 0; ch < out.length; ch++) out[ch] = 1 / Math.sqrt(stats.m2[ch] / stats.count + eps);
  return out;
}

/**
 * Updates the running statistics in place from the combined ones, PyTorch's
 * way: `running_mean ← (1 − momentum)·running_mean + momentum·mean`,
 * `running_var ← (1 − momentum)·running_var + momentum·M2/(count − 1)`
 * (`M2/count` with `unbiased: false`). A count of 0 (every slice empty)
 * changes nothing.
 */
export function updateRunningStats(
  stats: BatchNormStats,
  runningMean: FloatArray,
  runningVar: FloatArray,
  options: { momentum?: number; unbiased?: boolean } = {},
): void {
  checkOptions(options, 'updateRunningStats', ['momentum', 'unbiased']);
  const momentum = options.momentum === undefined ? 0.1 : checkMomentum(options.momentum, false)!;
  const unbiased = options.unbiased === undefined ? true : checkBoolean(options.unbiased, 'unbiased');
  const c = stats.mean.length,
    type = typedArrayName(runningMean);
  if (type !== 'Float32Array' && type !== 'Float64Array') throw typeError('runningMean', `a Float32Array or Float64Array of length ${c}`, runningMean);
  checkArray(runningMean, 'runningMean', type, c);
  checkArray(runningVar, 'runningVar', type, c);
  if (stats.count === 0) return;
  const { count } = stats;
  for (let ch = 0; ch < c; ch++) {
    const v = stats.m2[ch] / count,
      runVar = unbiased && count > 1 ? (v * count) / (count - 1) : v;
    runningMean[ch] = (1 - momentum) * runningMean[ch] + momentum * stats.mean[ch];
    runningVar[ch] = (1 - momentum) * runningVar[ch] + momentum * runVar;
  }
}

export interface ElemtOptions<A extends FloatArray = FloatArray> {
  weight?: A | null;
  bias?: A | null;
  layout?: Layout;
  /** Write y here (the input's type and length; may be input.data itself). */
  out?: A;
}

/** y = (x − mean)·invstd·weight + bias with the given (combined) statistics. */
export function batchNormElemt<A extends FloatArray>(input: Tensor<A>, mean: Float64Array, invstd: Float64Array, options: ElemtOptions<A> = {}): Tensor<A> {
  checkOptions(options, 'batchNormElemt', ['weight', 'bias', 'layout', 'out']);
  const o = options;
  const { x, dims, type } = checkInput(input, 'input', layoutOf(o.layout));
  const { n, c, s, channelsLast } = dims;
  checkStatistic(mean, 'mean', c);
  checkStatistic(invstd, 'invstd', c);
  checkArray(o.weight, 'weight', type, c, true);
  checkArray(o.bias, 'bias', type, c, true);
  checkArray(o.out, 'out', type, x.data.length, true);
  const y = o.out ?? allocLike(x.data, x.data.length);
  if (x.data.length > 0) split.normalize(x.data, y, o.weight ?? null, o.bias ?? null, mean, invstd, n, c, s, channelsLast);
  return { data: y as A, shape: [...x.shape] };
}

/** The local sums of a backward, to be added over ranks: Σdy and Σdy·(x − mean) per channel. */
export interface BackwardSums {
  sumDy: Float64Array;
  sumDyXmu: Float64Array;
}

function checkGradOutput(gradOutput: unknown, x: Tensor, type: string): Tensor {
  const dy = readTensor(gradOutput, 'gradOutput');
  if (!sameShape(dy.shape, x.shape)) throw gradientShapeError("the input's shape", x.shape, dy.shape);
  checkArray(dy.data, 'gradOutput.data', type, x.data.length);
  return dy;
}

/**
 * Σdy and Σdy·(x − mean) per channel over this slice, in float64. The local
 * weight and bias gradients are `invstd·sumDyXmu` and `sumDy` (PyTorch's
 * SyncBatchNorm leaves them local: the data-parallel gradient all-reduce
 * combines them).
 */
export function batchNormBackwardReduce(gradOutput: Tensor, input: Tensor, mean: Float64Array, options: { layout?: Layout } = {}): BackwardSums {
  checkOptions(options, 'batchNormBackwardReduce', ['layout']);
  const { x, dims, type } = checkInput(input, 'input', layoutOf(options.layout));
  const dy = checkGradOutput(gradOutput, x, type);
  const { n, c, s, channelsLast } = dims;
  checkStatistic(mean, 'mean', c);
  const sumDy = new Float64Array(c),
    sumDyXmu = new Float64Array(c);
  if (x.data.length > 0) split.backwardReduce(x.data, dy.data, mean, sumDy, sumDyXmu, n, c, s, channelsLast);
  return { sumDy, sumDyXmu };
}

/**
 * dx of this slice from the sums over the whole batch and its count:
 * `dx = weight·invstd·(dy − sumDy/count − (x − mean)·invstd²·sumDyXmu/count)`.
 */
export function batchNormBackwardElemt<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  mean: Float64Array,
  invstd: Float64Array,
  sums: BackwardSums,
  count: number,
  options: { weight?: A | null; layout?: Layout; out?: A } = {},
): Tensor<A> {
  checkOptions(options, 'batchNormBackwardElemt', ['weight', 'layout', 'out']);
  const o = options;
  const { x, dims, type } = checkInput(input, 'input', layoutOf(o.layout));
  const dy = checkGradOutput(gradOutput, x, type);
  const { n, c, s, channelsLast } = dims;
  checkStatistic(mean, 'mean', c);
  checkStatistic(invstd, 'invstd', c);
  if (typeof sums !== 'object' || sums === null) throw typeError('sums', 'the sums { sumDy, sumDyXmu } of the whole batch', sums);
  checkStatistic(sums.sumDy, 'sums.sumDy', c);
  checkStatistic(sums.sumDyXmu, 'sums.sumDyXmu', c);
  checkCount(count, "count (the values per channel of the whole batch, at least this slice's)", Math.max(1, n * s));
  checkArray(o.weight, 'weight', type, c, true);
  checkArray(o.out, 'out', type, x.data.length, true);
  const dx = o.out ?? allocLike(x.data, x.data.length);
  if (x.data.length > 0) split.backwardElemt(x.data, dy.data, dx, o.weight ?? null, mean, invstd, sums.sumDy, sums.sumDyXmu, count, n, c, s, channelsLast);
  return { data: dx as A, shape: [...x.shape] };
}
