/**
 * The functional API, like `torch.nn.functional.batch_norm`, with its backward
 * spelled out for users who keep their own tensors and autograd.
 */
import type { FloatArray, Kernels } from './backend/kernels.js';
import { kernels } from './backend/loader.js';
import { describe } from './backend/validate.js';
import { allocLike, zerosLike, checkArray, checkFinite, checkLayout, checkTensor, dimsOf, formatShape, isChannelsLast, sameShape, sharesMemory, type Dims, type Layout, type Tensor } from './tensor.js';

export interface BatchNormOptions<A extends FloatArray = FloatArray> {
  /** γ, one per channel; default none (1). */
  weight?: A | null;
  /** β, one per channel; default none (0). */
  bias?: A | null;
  /** Batch statistics (true) or the running ones (false, the default, as in PyTorch). */
  training?: boolean;
  /**
   * Weight of the new batch in the running statistics, PyTorch's convention:
   * `running = (1 − momentum)·running + momentum·batch`. Default 0.1.
   * (Keras' momentum is 1 − this.)
   */
  momentum?: number;
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
  /** Memory order of the input; default channels-first (NCHW). */
  layout?: Layout;
  /** Write y here instead of allocating (same type and length as the input). */
  out?: A;
  /**
   * Write the result's saveMean and saveInvstd here instead of allocating them
   * (C values each, the input's type; overwritten): with `out`, a call in a
   * loop allocates nothing but the result object.
   */
  saveMeanOut?: A;
  saveInvstdOut?: A;
  /** Running variance update with the unbiased batch variance (PyTorch, default) or the biased one (Keras, TF.js). */
  unbiasedRunningVar?: boolean;
  /** Throw on NaN or infinities in the input, naming the first bad channel (default false: they propagate, as in PyTorch). */
  checkFinite?: boolean;
}

/** y, and the statistics it was normalized with (batch or running), for the backward. */
export interface BatchNormResult<A extends FloatArray = FloatArray> extends Tensor<A> {
  /** Mean used per channel. */
  saveMean: A;
  /** 1/√(var + eps) used per channel. */
  saveInvstd: A;
}

export interface BatchNormBackwardOptions<A extends FloatArray = FloatArray> {
  /** γ of the forward; default none (1). */
  weight?: A | null;
  /** `saveMean` of the forward's result. */
  saveMean: A;
  /** `saveInvstd` of the forward's result. */
  saveInvstd: A;
  /** Whether the forward used batch statistics (default false, as the forward). */
  training?: boolean;
  layout?: Layout;
  /** Write the input gradient here instead of allocating. */
  out?: A;
  /** Write the weight and bias gradients here instead of allocating (they are overwritten, not accumulated). */
  gradWeightOut?: A;
  gradBiasOut?: A;
}

export interface BatchNormGradients<A extends FloatArray = FloatArray> {
  gradInput: Tensor<A>;
  gradWeight: A;
  gradBias: A;
}

/** PyTorch's check: batch statistics need two or more values per channel (none, an empty batch, is fine). */
export function checkValuesPerChannel(shape: readonly number[], d: Dims): void {
  if (d.n * d.s === 1) throw new RangeError(`Expected more than 1 value per channel when training, got input size ${formatShape(shape)}`);
}

function checkInput(input: unknown, name: string, layout: Layout): { x: Tensor; dims: Dims } {
  const x = checkTensor(input, name);
  if (x.shape.length < 2) throw new RangeError(`Expected ${name} of at least 2 dimensions (N, C, …) but received shape ${formatShape(x.shape)}`);
  return { x, dims: dimsOf(x.shape, isChannelsLast(layout)) };
}

/** Options come as an object; anything else (null, a string) is a TypeError, not a property read of null. */
function checkOptions(options: unknown, fn: string): void {
  if (typeof options !== 'object' || options === null) throw new TypeError(`Expected an options object for ${fn} but received ${describe(options)}`);
}

/** Boolean options are booleans: the string 'false' is truthy and would switch the mode. */
function checkBoolean(v: unknown, name: string): void {
  if (typeof v !== 'boolean') throw new TypeError(`Expected a boolean for ${name} but received ${describe(v)}`);
}

/** A number option: a TypeError if it is not a number, a RangeError if `ok` refuses it. */
function checkNumber(v: unknown, name: string, what: string, ok: (v: number) => boolean): void {
  if (typeof v !== 'number' || !ok(v)) throw new (typeof v === 'number' ? RangeError : TypeError)(`Expected ${name} to be ${what} but received ${describe(v)}`);
}
// The tests of checkNumber, made once: a call then allocates nothing.
const positiveFinite = (v: number): boolean => v > 0 && v < Infinity;
const unitInterval = (v: number): boolean => v >= 0 && v <= 1;

/** In eval the statistics a backward needs are the running ones: writes them as saveMean and saveInvstd. */
export function saveRunningStats(runningMean: FloatArray, runningVar: FloatArray, eps: number, saveMean: FloatArray, saveInvstd: FloatArray): void {
  saveMean.set(runningMean);
  for (let c = 0; c < saveInvstd.length; c++) saveInvstd[c] = 1 / Math.sqrt(runningVar[c] + eps);
}

/**
 * saveMeanOut and saveInvstdOut are written (by the kernel in training, by
 * saveRunningStats in eval) while the other arrays are read: neither may
 * share memory with them or with each other. Checked here, under the
 * options' names, because the eval kernel never sees them.
 */
function checkSaveOverlaps(saveMeanOut: FloatArray | undefined, saveInvstdOut: FloatArray | undefined, others: Array<[string, FloatArray | null | undefined]>): void {
  const outs: Array<[string, FloatArray | undefined]> = [['saveMeanOut', saveMeanOut], ['saveInvstdOut', saveInvstdOut]];
  for (const [name, a] of outs) {
    if (!a) continue;
    for (const [other, b] of name === 'saveInvstdOut' ? [...others, outs[0]] : others)
      if (b && sharesMemory(a, b)) throw new RangeError(`Expected ${name} not to share memory with ${other}, but it overlaps it`);
  }
}

/** Shared by the sync and async forms: checks, allocates and returns the kernel call. */
function prepareForward(
  input: Tensor, runningMean: FloatArray | null, runningVar: FloatArray | null, options: BatchNormOptions,
  fn: string,
): { args: Parameters<Kernels['forwardTraining']> | Parameters<Kernels['forwardEval']>; training: boolean; empty: boolean; result: BatchNormResult } {
  checkOptions(options, fn);
  const { weight = null, bias = null, training = false, momentum = 0.1, eps = 1e-5, out, saveMeanOut, saveInvstdOut, unbiasedRunningVar = true, checkFinite: finite = false } = options;
  checkBoolean(training, 'training');
  checkBoolean(unbiasedRunningVar, 'unbiasedRunningVar');
  checkBoolean(finite, 'checkFinite');
  checkNumber(eps, 'eps', 'a positive finite number', positiveFinite);
  checkNumber(momentum, 'momentum', 'a number in [0, 1]', unitInterval);
  const layout = checkLayout(options.layout ?? 'channelsFirst');
  const { x, dims } = checkInput(input, 'input', layout);
  const { n, c, s, channelsLast } = dims;
  if (!training && (!runningMean || !runningVar))
    throw new TypeError('Expected runningMean and runningVar when training is false (evaluation uses the running statistics) but received null');
  checkArray(weight, 'weight', x.data, c, true);
  checkArray(bias, 'bias', x.data, c, true);
  checkArray(runningMean, 'runningMean', x.data, c, training);
  checkArray(runningVar, 'runningVar', x.data, c, training);
  checkArray(out, 'out', x.data, x.data.length, true);
  checkArray(saveMeanOut, 'saveMeanOut', x.data, c, true);
  checkArray(saveInvstdOut, 'saveInvstdOut', x.data, c, true);
  if (saveMeanOut || saveInvstdOut) checkSaveOverlaps(saveMeanOut, saveInvstdOut, [['input', x.data], ['out', out], ['weight', weight], ['bias', bias], ['runningMean', runningMean], ['runningVar', runningVar]]);
  if (training) checkValuesPerChannel(x.shape, dims);
  if (finite) checkFinite(x.data, x.shape, dims, 'input');
  const y = out ?? allocLike(x.data, x.data.length);
  const saveMean = saveMeanOut ?? zerosLike(x.data, c), saveInvstd = saveInvstdOut ?? zerosLike(x.data, c);
  const result: BatchNormResult = { data: y, shape: [...x.shape], saveMean, saveInvstd };
  // An empty batch (a dimension 0) runs no kernel and leaves the running statistics as they are, as in PyTorch.
  const empty = x.data.length === 0;
  if (empty && training) saveMean.fill(0), saveInvstd.fill(0); // what allocated ones would hold
  if (training) {
    return {
      training,
      empty,
      result,
      args: [x.data, y, weight, bias, runningMean, runningVar, saveMean, saveInvstd, n, c, s, channelsLast, eps, momentum, unbiasedRunningVar],
    };
  }
  return { training, empty, result, args: [x.data, y, weight, bias, runningMean!, runningVar!, n, c, s, channelsLast, eps] };
}

/** After the kernel ran: in eval the saved statistics are the running ones. */
function finishForward(result: BatchNormResult, training: boolean, runningMean: FloatArray | null, runningVar: FloatArray | null, eps: number): BatchNormResult {
  if (!training && runningMean && runningVar) saveRunningStats(runningMean, runningVar, eps, result.saveMean, result.saveInvstd);
  return result;
}

/**
 * Batch normalization of `input` (N, C, …), like `torch.nn.functional.batch_norm`.
 * Training: normalizes with the batch statistics and, if runningMean and
 * runningVar are given, updates them in place. Eval: uses them.
 */
export function batchNorm<A extends FloatArray>(
  input: Tensor<A>, runningMean: A | null, runningVar: A | null, options: BatchNormOptions<A> = {}
): BatchNormResult<A> {
  const p = prepareForward(input, runningMean, runningVar, options, 'batchNorm');
  if (!p.empty) {
    if (p.training) kernels.forwardTraining(...(p.args as Parameters<Kernels['forwardTraining']>));
    else kernels.forwardEval(...(p.args as Parameters<Kernels['forwardEval']>));
  }
  return finishForward(p.result, p.training, runningMean, runningVar, options.eps ?? 1e-5) as BatchNormResult<A>;
}

/** `batchNorm` off the event loop (native path); rejects on bad input. */
export async function batchNormAsync<A extends FloatArray>(
  input: Tensor<A>, runningMean: A | null, runningVar: A | null, options: BatchNormOptions<A> = {}
): Promise<BatchNormResult<A>> {
  const p = prepareForward(input, runningMean, runningVar, options, 'batchNormAsync');
  if (!p.empty) {
    if (p.training) await kernels.forwardTrainingAsync(...(p.args as Parameters<Kernels['forwardTraining']>));
    else await kernels.forwardEvalAsync(...(p.args as Parameters<Kernels['forwardEval']>));
  }
  return finishForward(p.result, p.training, runningMean, runningVar, options.eps ?? 1e-5) as BatchNormResult<A>;
}

function prepareBackward(
  gradOutput: Tensor, input: Tensor, options: BatchNormBackwardOptions, fn: string,
): { args: Parameters<Kernels['backward']>; empty: boolean; result: BatchNormGradients } {
  checkOptions(options, fn);
  const { weight = null, saveMean, saveInvstd, training = false, out, gradWeightOut, gradBiasOut } = options;
  checkBoolean(training, 'training');
  const layout = checkLayout(options.layout ?? 'channelsFirst');
  const { x, dims } = checkInput(input, 'input', layout);
  const dy = checkTensor(gradOutput, 'gradOutput');
  if (!sameShape(dy.shape, x.shape))
    throw new RangeError(`Expected gradOutput of the input's shape ${formatShape(x.shape)} but received shape ${formatShape(dy.shape)}`);
  const { n, c, s, channelsLast } = dims;
  checkArray(dy.data, 'gradOutput.data', x.data, x.data.length);
  checkArray(weight, 'weight', x.data, c, true);
  checkArray(saveMean, 'saveMean', x.data, c);
  checkArray(saveInvstd, 'saveInvstd', x.data, c);
  checkArray(out, 'out', x.data, x.data.length, true);
  checkArray(gradWeightOut, 'gradWeightOut', x.data, c, true);
  checkArray(gradBiasOut, 'gradBiasOut', x.data, c, true);
  const dx = out ?? allocLike(x.data, x.data.length);
  const gradWeight = gradWeightOut ?? zerosLike(x.data, c), gradBias = gradBiasOut ?? zerosLike(x.data, c);
  const args: Parameters<Kernels['backward']> = [x.data, dy.data, dx, weight, saveMean, saveInvstd, gradWeight, gradBias, n, c, s, channelsLast, training];
  // An empty batch: no kernel; the weight and bias gradients are sums over nothing.
  const empty = x.data.length === 0;
  if (empty) gradWeight.fill(0), gradBias.fill(0);
  return { args, empty, result: { gradInput: { data: dx, shape: [...x.shape] }, gradWeight, gradBias } };
}

/**
 * Gradients of `batchNorm` given dy: input, weight and bias gradients, from the
 * statistics the forward returned (`saveMean`, `saveInvstd`). With
 * `training: false` the statistics are treated as constants (frozen BN).
 */
export function batchNormBackward<A extends FloatArray>(
  gradOutput: Tensor<A>, input: Tensor<A>, options: BatchNormBackwardOptions<A>
): BatchNormGradients<A> {
  const p = prepareBackward(gradOutput, input, options, 'batchNormBackward');
  if (!p.empty) kernels.backward(...p.args);
  return p.result as BatchNormGradients<A>;
}

/** `batchNormBackward` off the event loop (native path); rejects on bad input. */
export async function batchNormBackwardAsync<A extends FloatArray>(
  gradOutput: Tensor<A>, input: Tensor<A>, options: BatchNormBackwardOptions<A>
): Promise<BatchNormGradients<A>> {
  const p = prepareBackward(gradOutput, input, options, 'batchNormBackwardAsync');
  if (!p.empty) await kernels.backwardAsync(...p.args);
  return p.result as BatchNormGradients<A>;
}
