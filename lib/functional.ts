/**
 * The functional API, like `torch.nn.functional.batch_norm`, with its backward
 * spelled out for users who keep their own tensors and autograd — and the one
 * place that builds kernel calls: the modules (batchnorm.ts) plan their calls
 * here too, as PyTorch's `_BatchNorm.forward` ends in `F.batch_norm`.
 *
 * A call goes in three steps: read every input once into locals and check
 * everything (plan*), run the kernel (execute: one runner for the sync and the
 * async forms), then finish (eval's saved statistics, an empty batch's zeros).
 * Nothing is written before the kernel runs, and the kernel writes nothing
 * when its own checks fail: a call that throws changes nothing.
 */
import { markAsUntransferable } from 'node:worker_threads';
import type { FloatArray, Kernels } from './backend/kernels.js';
import { kernels } from './backend/loader.js';
import {
  bufferOf,
  bufferOrNull,
  channelCountError,
  checkApart,
  checkArray,
  checkBothOrNeither,
  evalNeedsStatisticsError,
  gradientShapeError,
  checkBoolean,
  checkEps,
  checkFinite,
  checkInPlaceOrApart,
  checkMomentum,
  checkNotResizable,
  checkOneOf,
  checkOptions,
  checkRank,
  checkValuesPerChannel,
  lengthOf,
  readTensor,
  typedArrayName,
  type ReadTensor,
} from './check.js';
import { allocLike, dimsOf, isChannelsLast, LAYOUTS, sameShape, zerosLike, type Dims, type Layout, type Tensor } from './tensor.js';

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
  /** Added to the variance before the square root: a number in [0, 1]. Default 1e-5. */
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
  /** 'relu': y = max(bn(x) + residual, 0), PyTorch's relu(bn(x) + r). Default null: none. */
  activation?: Activation;
  /** Added to bn(x) before the activation (a skip connection): the input's shape and type. */
  residual?: Tensor<A> | null;
}

/** The activation after the BatchNorm (and the residual add). */
export type Activation = 'relu' | null;
const ACTIVATIONS: readonly string[] = ['relu'];

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
  /** The forward's activation ('relu': dy is masked by y > 0). Default null. */
  activation?: Activation;
  /** With an activation: the forward's output y (its `data`), whose y > 0 is the ReLU's mask. */
  output?: A;
  /** The forward added a residual: return its gradient as gradResidual. Default false. */
  residual?: boolean;
}

export interface BatchNormGradients<A extends FloatArray = FloatArray> {
  gradInput: Tensor<A>;
  gradWeight: A;
  gradBias: A;
  /** With `residual: true`: the residual's gradient (dy masked by the ReLU; dy's own array without an activation). */
  gradResidual?: Tensor<A>;
}

const FORWARD_OPTIONS = [
  'weight',
  'bias',
  'training',
  'momentum',
  'eps',
  'layout',
  'out',
  'saveMeanOut',
  'saveInvstdOut',
  'unbiasedRunningVar',
  'checkFinite',
  'activation',
  'residual',
] as const;
const BACKWARD_OPTIONS = [
  'weight',
  'saveMean',
  'saveInvstd',
  'training',
  'layout',
  'out',
  'gradWeightOut',
  'gradBiasOut',
  'activation',
  'output',
  'residual',
] as const;

/** An activation option: 'relu', or null/undefined for none. */
export function checkActivation(v: unknown, name: string): boolean {
  if (v === undefined || v === null) return false;
  checkOneOf(v, name, ACTIVATIONS);
  return true;
}
/** Keras' and TF.js' names for this package's options. */
export const OPTION_HINTS: Readonly<Record<string, string>> = {
  epsilon: "did you mean eps? (Keras' epsilon; fromKeras converts a whole Keras config)",
  dataFormat: "did you mean layout? ('channelsLast' or 'channelsFirst')",
  axis: "did you mean layout? (axis -1 is layout 'channelsLast')",
  center: 'did you mean bias? (fromKeras converts a whole Keras config)',
  scale: 'did you mean weight? (fromKeras converts a whole Keras config)',
};

// ------------------------------------------------------------ plans: every input read once and checked

/** A forward, every input read once and checked; nothing written yet. */
export interface ForwardPlan {
  x: FloatArray;
  shape: number[];
  dims: Dims;
  y: FloatArray;
  /** y is x itself (out: input.data). */
  inPlace: boolean;
  /** y is the caller's `out`, the save arrays the caller's (else this call allocated them). */
  outGiven: boolean;
  savesGiven: boolean;
  weight: FloatArray | null;
  bias: FloatArray | null;
  /** Training: the running statistics to update (or null); eval: the ones to normalize with. */
  runningMean: FloatArray | null;
  runningVar: FloatArray | null;
  saveMean: FloatArray;
  saveInvstd: FloatArray;
  batchStats: boolean;
  eps: number;
  momentum: number;
  unbiased: boolean;
  /** Fused into the kernel's pass that writes y: y = max(y + residual, 0) (relu), y + residual, or nothing. */
  relu: boolean;
  residual: FloatArray | null;
}

/** What a forward is asked, as locals (from the functional options or from a module's state). */
export interface ForwardSpec {
  x: ReadTensor;
  /** Layout already checked; channelsLast decides the channel dimension. */
  channelsLast: boolean;
  /** The layout's channels-last name for hints ('NHWC', …), or null when already channels-last. */
  channelsLastName: string | null;
  out: unknown;
  weight: unknown;
  bias: unknown;
  runningMean: unknown;
  runningVar: unknown;
  /** Whether the running statistics are updated (training) or used (eval). */
  batchStats: boolean;
  eps: number;
  momentum: number;
  unbiased: boolean;
  checkFinite: boolean;
  saveMeanOut: unknown;
  saveInvstdOut: unknown;
  relu?: boolean;
  residual?: ReadTensor | null;
  /** Names for messages: 'out', 'weight', … or the module's. */
  names: ForwardNames;
  /**
   * Check the per-channel arrays, and out and the save arrays against the
   * others (the functional form). A module has checked its own arrays, its
   * save arrays are private, and it checks out against its arrays: false.
   */
  apart: boolean;
  async: boolean;
}

export interface ForwardNames {
  out: string;
  weight: string;
  bias: string;
  runningMean: string;
  runningVar: string;
}
const FUNCTIONAL_NAMES: ForwardNames = { out: 'out', weight: 'weight', bias: 'bias', runningMean: 'runningMean', runningVar: 'runningVar' };

function perChannel(x: FloatArray, c: number, given: unknown): FloatArray {
  if (given !== undefined && given !== null) return given as FloatArray;
  try {
    return zerosLike(x, c);
  } catch {
    throw channelCountError('input.shape', c);
  }
}

/** Checks a forward and allocates its outputs; writes nothing. */
export function planForward(sp: ForwardSpec): ForwardPlan {
  const { x, names } = sp;
  const data = x.data,
    numel = lengthOf(data);
  checkRank(x.shape, 'input', 2);
  const dims = dimsOf(x.shape, sp.channelsLast);
  const { c } = dims;
  const type = typedArrayName(data)!;
  // A per-channel array as long as the input's last dimension (not C): the input is likely channels-last.
  const last = x.shape[x.shape.length - 1];
  const hintLayout = last !== c ? sp.channelsLastName : null;
  if (sp.apart) {
    if (!sp.batchStats && (sp.runningMean === null || sp.runningMean === undefined || sp.runningVar === null || sp.runningVar === undefined))
      throw evalNeedsStatisticsError();
    checkArray(sp.weight, names.weight, type, c, true, last, hintLayout);
    checkArray(sp.bias, names.bias, type, c, true, last, hintLayout);
    checkArray(sp.runningMean, names.runningMean, type, c, sp.batchStats, last, hintLayout);
    checkArray(sp.runningVar, names.runningVar, type, c, sp.batchStats, last, hintLayout);
    checkBothOrNeither(sp.runningMean, sp.runningVar, names.runningMean, names.runningVar);
    checkArray(sp.saveMeanOut, 'saveMeanOut', type, c, true);
    checkArray(sp.saveInvstdOut, 'saveInvstdOut', type, c, true);
  }
  checkArray(sp.out, names.out, type, numel, true);
  const weight = (sp.weight ?? null) as FloatArray | null,
    bias = (sp.bias ?? null) as FloatArray | null;
  const runningMean = (sp.runningMean ?? null) as FloatArray | null,
    runningVar = (sp.runningVar ?? null) as FloatArray | null;
  const out = (sp.out ?? null) as FloatArray | null;
  const saveMeanOut = (sp.saveMeanOut ?? null) as FloatArray | null,
    saveInvstdOut = (sp.saveInvstdOut ?? null) as FloatArray | null;
  // Overlaps under the user's names (the kernels check again under theirs).
  // A module checks `out` against its own arrays, and its saved statistics are private: `apart` false.
  const inPlace = out !== null && checkInPlaceOrApart(out, data, names.out, 'input.data');
  if (sp.apart && (out || saveMeanOut || saveInvstdOut)) {
    const bx = bufferOf(data),
      bo = bufferOrNull(out),
      bw = bufferOrNull(weight),
      bb = bufferOrNull(bias),
      brm = bufferOrNull(runningMean),
      brv = bufferOrNull(runningVar);
    if (out) {
      checkApart(out, bo!, weight, bw, names.out, names.weight);
      checkApart(out, bo!, bias, bb, names.out, names.bias);
      checkApart(out, bo!, runningMean, brm, names.out, names.runningMean);
      checkApart(out, bo!, runningVar, brv, names.out, names.runningVar);
    }
    // saveMeanOut and saveInvstdOut are written (by the kernel in training, by
    // the finish in eval) while the others are read: nothing may share them.
    for (let k = 0; k < 2; k++) {
      const a = k === 0 ? saveMeanOut : saveInvstdOut,
        name = k === 0 ? 'saveMeanOut' : 'saveInvstdOut';
      if (!a) continue;
      const ba = bufferOf(a);
      checkApart(a, ba, data, bx, name, 'input');
      checkApart(a, ba, out, bo, name, names.out);
      checkApart(a, ba, weight, bw, name, names.weight);
      checkApart(a, ba, bias, bb, name, names.bias);
      checkApart(a, ba, runningMean, brm, name, names.runningMean);
      checkApart(a, ba, runningVar, brv, name, names.runningVar);
      if (k === 1) checkApart(a, ba, saveMeanOut, bufferOrNull(saveMeanOut), name, 'saveMeanOut');
    }
  }
  // The kernel reads the residual while it writes y: y must not be it (not even in place).
  const residual = sp.residual ? sp.residual.data : null;
  if (sp.residual && residual) {
    if (!sameShape(sp.residual.shape, x.shape)) throw gradientShapeError("the input's shape", x.shape, sp.residual.shape, 'residual');
    checkArray(residual, 'residual.data', type, numel);
    if (out) checkApart(out, bufferOf(out), residual, bufferOf(residual), names.out, 'residual.data');
    else if (inPlace) checkApart(data, bufferOf(data), residual, bufferOf(residual), 'input.data', 'residual.data');
    if (sp.async) checkNotResizable(residual, 'residual.data');
  }
  if (sp.batchStats) checkValuesPerChannel(x.shape, dims.n * dims.s);
  if (sp.checkFinite) checkFinite(data, x.shape, dims.c, dims.s, dims.channelsLast, 'input');
  if (sp.async) {
    checkNotResizable(data, 'input.data');
    if (out) checkNotResizable(out, names.out);
    if (weight) checkNotResizable(weight, names.weight);
    if (bias) checkNotResizable(bias, names.bias);
    if (runningMean) checkNotResizable(runningMean, names.runningMean);
    if (runningVar) checkNotResizable(runningVar, names.runningVar);
    if (saveMeanOut) checkNotResizable(saveMeanOut, 'saveMeanOut');
    if (saveInvstdOut) checkNotResizable(saveInvstdOut, 'saveInvstdOut');
  }
  const y = out ?? allocLike(data, numel);
  const saveMean = perChannel(data, c, saveMeanOut),
    saveInvstd = perChannel(data, c, saveInvstdOut);
  return {
    x: data,
    shape: x.shape,
    dims,
    y,
    inPlace,
    outGiven: out !== null,
    savesGiven: sp.apart && (saveMeanOut !== null || saveInvstdOut !== null),
    weight,
    bias,
    runningMean,
    runningVar,
    saveMean,
    saveInvstd,
    batchStats: sp.batchStats,
    eps: sp.eps,
    momentum: sp.momentum,
    unbiased: sp.unbiased,
    relu: sp.relu === true,
    residual,
  };
}

/** A backward, every input read once and checked; nothing written yet. */
export interface BackwardPlan {
  x: FloatArray;
  dy: FloatArray;
  /** With relu: the forward's y; the kernel masks dy by y > 0 in every pass that reads it. */
  output: FloatArray | null;
  /** The residual's gradient: dy·(y > 0), which the kernel's dx pass writes (relu), or dy itself without an activation; null without a residual. */
  gradResidual: FloatArray | null;
  shape: number[];
  dims: Dims;
  dx: FloatArray;
  /** dx is x itself (out: the forward's input). */
  overwritesX: boolean;
  /** dx is the caller's `out` (else this call allocated it). */
  outGiven: boolean;
  weight: FloatArray | null;
  mean: FloatArray;
  invstd: FloatArray;
  gradWeight: FloatArray | null;
  gradBias: FloatArray | null;
  batchStats: boolean;
}

export interface BackwardSpec {
  x: ReadTensor;
  dy: ReadTensor;
  dims: Dims;
  out: unknown;
  weight: unknown;
  mean: unknown;
  invstd: unknown;
  gradWeightOut: unknown;
  gradBiasOut: unknown;
  /** The module computes its own weight and bias gradients only when affine. */
  gradients: boolean;
  batchStats: boolean;
  checkFinite: boolean;
  /** The shape the gradient must have, and what to call it in the message. */
  shapeName: string;
  /** Check the per-channel arrays, and the outputs against the others (the functional form); a module checks its own: false. */
  apart: boolean;
  names: { x: string; mean: string; invstd: string; weight: string };
  async: boolean;
  relu?: boolean;
  /** With relu: the forward's output. */
  output?: unknown;
  outputName?: string;
  residual?: boolean;
}

/** Checks a backward and allocates its outputs; writes nothing. */
export function planBackward(sp: BackwardSpec): BackwardPlan {
  const { x, dy, dims, names } = sp;
  const data = x.data,
    numel = lengthOf(data),
    c = dims.c;
  if (!sameShape(dy.shape, x.shape)) throw gradientShapeError(sp.shapeName, x.shape, dy.shape);
  const type = typedArrayName(data)!;
  checkArray(dy.data, 'gradOutput.data', type, numel);
  if (sp.apart) {
    checkArray(sp.weight, names.weight, type, c, true);
    checkArray(sp.mean, names.mean, type, c);
    checkArray(sp.invstd, names.invstd, type, c);
    checkArray(sp.gradWeightOut, 'gradWeightOut', type, c, true);
    checkArray(sp.gradBiasOut, 'gradBiasOut', type, c, true);
  }
  checkArray(sp.out, 'out', type, numel, true);
  const out = (sp.out ?? null) as FloatArray | null;
  let overwritesX = false;
  if (out) {
    checkInPlaceOrApart(out, dy.data, 'out', 'gradOutput.data');
    overwritesX = checkInPlaceOrApart(out, data, 'out', names.x);
  }
  const weight = (sp.weight ?? null) as FloatArray | null,
    mean = sp.mean as FloatArray,
    invstd = sp.invstd as FloatArray;
  const gwOut = (sp.gradWeightOut ?? null) as FloatArray | null,
    gbOut = (sp.gradBiasOut ?? null) as FloatArray | null;
  // The outputs share no memory with what the kernel reads, or with each other (dx may be dy or x itself, above).
  // A module's gradient scratch is private: it passes them as gradWeightOut/gradBiasOut with `apart` false.
  if (sp.apart && (out || gwOut || gbOut)) {
    const bx = bufferOf(data),
      bdy = bufferOf(dy.data),
      bo = bufferOrNull(out),
      bw = bufferOrNull(weight),
      bm = bufferOf(mean),
      bi = bufferOf(invstd);
    if (out) {
      checkApart(out, bo!, weight, bw, 'out', names.weight);
      checkApart(out, bo!, mean, bm, 'out', names.mean);
      checkApart(out, bo!, invstd, bi, 'out', names.invstd);
    }
    for (let k = 0; k < 2; k++) {
      const a = k === 0 ? gwOut : gbOut,
        name = k === 0 ? 'gradWeightOut' : 'gradBiasOut';
      if (!a) continue;
      const ba = bufferOf(a);
      checkApart(a, ba, data, bx, name, names.x);
      checkApart(a, ba, dy.data, bdy, name, 'gradOutput.data');
      checkApart(a, ba, out, bo, name, 'out');
      checkApart(a, ba, weight, bw, name, names.weight);
      checkApart(a, ba, mean, bm, name, names.mean);
      checkApart(a, ba, invstd, bi, name, names.invstd);
      if (k === 1) checkApart(a, ba, gwOut, bufferOrNull(gwOut), name, 'gradWeightOut');
    }
  }
  if (sp.checkFinite) checkFinite(dy.data, dy.shape, c, dims.s, dims.channelsLast, 'gradOutput');
  if (sp.async) {
    checkNotResizable(data, names.x);
    checkNotResizable(dy.data, 'gradOutput.data');
    if (out) checkNotResizable(out, 'out');
    if (weight) checkNotResizable(weight, names.weight);
    if (gwOut) checkNotResizable(gwOut, 'gradWeightOut');
    if (gbOut) checkNotResizable(gbOut, 'gradBiasOut');
  }
  let output: FloatArray | null = null;
  if (sp.relu) {
    checkArray(sp.output, sp.outputName ?? 'output', type, numel);
    output = sp.output as FloatArray;
    if (sp.async) checkNotResizable(output, sp.outputName ?? 'output');
  }
  const dx = out ?? allocLike(data, numel);
  const gradWeight = sp.gradients ? perChannel(data, c, sp.gradWeightOut) : null,
    gradBias = sp.gradients ? perChannel(data, c, sp.gradBiasOut) : null;
  const gradResidual = sp.residual ? (output ? allocLike(data, numel) : dy.data) : null;
  return {
    x: data,
    dy: dy.data,
    output,
    gradResidual,
    shape: x.shape,
    dims,
    dx,
    overwritesX,
    outGiven: out !== null,
    weight,
    mean,
    invstd,
    gradWeight,
    gradBias,
    batchStats: sp.batchStats,
  };
}

// ------------------------------------------------------------ the runner

/**
 * Running statistics that an async training call is updating, by buffer: the
 * promise settles when it is done. Calls sharing them are serialized (async)
 * or refused (sync) so that no update is lost: two kernels updating one
 * running mean at once on the thread pool would each read the old value.
 */
const updating = new WeakMap<ArrayBufferLike, Promise<unknown>>();
/** How many async training calls are updating running statistics: a sync call looks them up only when there are some. */
let updatingCalls = 0;

function statBuffers(p: ForwardPlan): ArrayBufferLike[] {
  return p.runningMean && p.runningVar ? [bufferOf(p.runningMean), bufferOf(p.runningVar)] : [];
}

function refuseWhileUpdating(p: ForwardPlan): void {
  if (updatingCalls === 0 || !p.runningMean || !p.runningVar) return;
  if (updating.has(bufferOf(p.runningMean)) || updating.has(bufferOf(p.runningVar)))
    throw new Error(
      'batchNorm() called with runningMean or runningVar that a batchNormAsync() (or forwardAsync()) training call is still updating; await it first (async calls sharing them run one after another)',
    );
}

/**
 * Makes every buffer an async call holds untransferable for good
 * (worker_threads.markAsUntransferable): a transfer (postMessage,
 * structuredClone with `transfer`) then copies it, or throws on newer Node
 * versions (ArrayBuffer.prototype.transfer too), instead of detaching it and
 * letting the garbage collector free memory the kernel is still writing on
 * the thread pool. About 1 us for a buffer not yet marked, tens of ns after.
 */
function pin(arrays: ReadonlyArray<FloatArray | null>): void {
  for (const a of arrays) if (a) markAsUntransferable(bufferOf(a));
}

function zeroStats(p: ForwardPlan): void {
  p.saveMean.fill(0);
  p.saveInvstd.fill(0);
}

/** After a forward's kernel: in eval the saved statistics are the running ones (read now, after any update before it). */
function finishForward(p: ForwardPlan): void {
  if (lengthOf(p.x) === 0 && p.batchStats) zeroStats(p);
  else if (p.batchStats && p.eps === 0) constantChannels(p);
  else if (!p.batchStats) {
    const rm = p.runningMean!,
      rv = p.runningVar!;
    p.saveMean.set(rm);
    for (let c = 0; c < p.saveInvstd.length; c++) p.saveInvstd[c] = 1 / Math.sqrt(rv[c] + p.eps);
  }
}

/**
 * The fused ReLU and residual add (relu(bn(x) + r), PyTorch's) run inside the
 * kernels' pass that writes y, on every backend; the backward's ReLU gradient
 * dy·(y > 0) inside every pass that reads dy, from the saved output: y > 0
 * exactly where relu's input was > 0, so no mask is kept (oneDNN's
 * fuse_norm_relu keeps a bit-mask workspace instead, which costs memory until
 * the backward and a write in the forward; reading y costs one read in the
 * backward). native/kernels/fused.h has the details.
 *
 * Here, only the value of one element the kernel's y is overwritten with
 * (constantChannels): v, then + residual[i], then max(·, 0) (a NaN stays NaN).
 */
function postOp(v: number, residual: FloatArray | null, relu: boolean, i: number): number {
  const t = residual ? v + residual[i] : v;
  return relu && t < 0 ? 0 : t;
}

/**
 * PyTorch's rule for a channel of zero variance with eps 0 (InvStd in
 * ATen's Normalization.cpp): invstd is 0, not 1/√0, so that the channel's
 * output is its bias (0 without one) and its gradients 0 — not the NaNs of
 * (x − mean)·∞. The kernels compute 1/√(var + eps); this finish applies the
 * rule on both backends, and costs a scan of C values only when eps is 0.
 */
function constantChannels(p: ForwardPlan): void {
  const { n, c, s, channelsLast } = p.dims,
    y = p.y;
  for (let ch = 0; ch < c; ch++) {
    if (p.saveInvstd[ch] !== Infinity) continue;
    p.saveInvstd[ch] = 0;
    const v = p.bias ? p.bias[ch] : 0;
    if (p.residual || p.relu) {
      if (channelsLast) for (let i = ch; i < n * s * c; i += c) y[i] = postOp(v, p.residual, p.relu, i);
      else for (let k = 0; k < n; k++) for (let i = (k * c + ch) * s, e = i + s; i < e; i++) y[i] = postOp(v, p.residual, p.relu, i);
    } else if (channelsLast) for (let i = ch; i < n * s * c; i += c) y[i] = v;
    else for (let k = 0; k < n; k++) y.fill(v, (k * c + ch) * s, (k * c + ch + 1) * s);
  }
}

function forwardArgs(p: ForwardPlan): Parameters<Kernels['forwardTraining']> {
  const { n, c, s, channelsLast } = p.dims;
  return [
    p.x,
    p.y,
    p.weight,
    p.bias,
    p.runningMean,
    p.runningVar,
    p.saveMean,
    p.saveInvstd,
    n,
    c,
    s,
    channelsLast,
    p.eps,
    p.momentum,
    p.unbiased,
    p.residual,
    p.relu,
  ];
}
function evalArgs(p: ForwardPlan): Parameters<Kernels['forwardEval']> {
  const { n, c, s, channelsLast } = p.dims;
  return [p.x, p.y, p.weight, p.bias, p.runningMean!, p.runningVar!, n, c, s, channelsLast, p.eps, p.residual, p.relu];
}
function backwardArgs(p: BackwardPlan): Parameters<Kernels['backward']> {
  const { n, c, s, channelsLast } = p.dims;
  // With relu, the residual's gradient is the masked dy the kernel writes; without, dy's own array (nothing to write).
  return [
    p.x,
    p.dy,
    p.dx,
    p.weight,
    p.mean,
    p.invstd,
    p.gradWeight,
    p.gradBias,
    n,
    c,
    s,
    channelsLast,
    p.batchStats,
    p.output,
    p.output ? p.gradResidual : null,
  ];
}

export type Plan = { forward: ForwardPlan } | { backward: BackwardPlan };

/**
 * Runs a checked plan: the kernel (none for an empty batch), then its finish.
 * Sync: on this thread, now. Async: its buffers pinned, after any async
 * training call updating the same running statistics, on the thread pool.
 */
export function execute(plan: Plan, async: false): void;
export function execute(plan: Plan, async: true): Promise<void>;
export function execute(plan: Plan, async: boolean): void | Promise<void> {
  if ('forward' in plan) {
    const p = plan.forward,
      empty = lengthOf(p.x) === 0;
    if (!async) {
      refuseWhileUpdating(p);
      if (!empty) p.batchStats ? kernels.forwardTraining(...forwardArgs(p)) : kernels.forwardEval(...evalArgs(p));
      finishForward(p);
      return;
    }
    // Arrays this call allocated reach the caller only once it settles: no need to pin them.
    pin([
      p.x,
      p.inPlace || p.outGiven ? p.y : null,
      p.weight,
      p.bias,
      p.runningMean,
      p.runningVar,
      p.savesGiven ? p.saveMean : null,
      p.savesGiven ? p.saveInvstd : null,
    ]);
    const keys = statBuffers(p);
    const before = keys.map((k) => updating.get(k)).filter((w) => w !== undefined);
    const run = async (): Promise<void> => {
      if (before.length) await Promise.allSettled(before);
      if (!empty) await (p.batchStats ? kernels.forwardTrainingAsync(...forwardArgs(p)) : kernels.forwardEvalAsync(...evalArgs(p)));
      finishForward(p);
    };
    const done = run();
    if (p.batchStats && keys.length && !empty) {
      for (const k of keys) updating.set(k, done);
      updatingCalls++;
      const release = () => {
        updatingCalls--;
        for (const k of keys) if (updating.get(k) === done) updating.delete(k);
      };
      done.then(release, release);
    }
    return done;
  }
  const p = plan.backward,
    empty = lengthOf(p.x) === 0;
  if (!async) {
    if (empty) zeroGradients(p);
    else kernels.backward(...backwardArgs(p));
    return;
  }
  pin([p.x, p.dy, p.outGiven ? p.dx : null, p.weight, p.mean, p.invstd, p.gradWeight, p.gradBias, p.output]);
  return (async () => {
    if (empty) zeroGradients(p);
    else await kernels.backwardAsync(...backwardArgs(p));
  })();
}

/** An empty batch: no kernel; the weight and bias gradients are sums over nothing. */
function zeroGradients(p: BackwardPlan): void {
  p.gradWeight?.fill(0);
  p.gradBias?.fill(0);
}

// ------------------------------------------------------------ the public functions

function readLayout(v: unknown): Layout {
  return v === undefined ? 'channelsFirst' : checkOneOf(v, 'layout', LAYOUTS);
}

function channelsLastNameFor(layout: Layout, rank: number): string | null {
  if (isChannelsLast(layout)) return null;
  return rank === 3 ? 'NLC' : rank === 4 ? 'NHWC' : rank === 5 ? 'NDHWC' : 'channelsLast';
}

/** Reads the forward options once, into locals, and plans the call. */
function planFunctionalForward(input: unknown, runningMean: unknown, runningVar: unknown, options: unknown, fn: string, async: boolean): ForwardPlan {
  checkOptions(options, fn, FORWARD_OPTIONS, OPTION_HINTS);
  const o = options as BatchNormOptions;
  const {
    weight = null,
    bias = null,
    training = false,
    momentum = 0.1,
    eps = 1e-5,
    layout,
    out,
    saveMeanOut,
    saveInvstdOut,
    unbiasedRunningVar = true,
    checkFinite = false,
    activation,
    residual,
  } = o;
  const relu = checkActivation(activation, 'activation');
  checkBoolean(training, 'training');
  checkBoolean(unbiasedRunningVar, 'unbiasedRunningVar');
  checkBoolean(checkFinite, 'checkFinite');
  checkEps(eps);
  checkMomentum(momentum, false);
  const l = readLayout(layout);
  const x = readTensor(input, 'input', "'channelsLast'");
  return planForward({
    x,
    channelsLast: isChannelsLast(l),
    channelsLastName: channelsLastNameFor(l, x.shape.length),
    out,
    weight,
    bias,
    runningMean,
    runningVar,
    batchStats: training,
    eps,
    momentum,
    unbiased: unbiasedRunningVar,
    checkFinite,
    saveMeanOut,
    saveInvstdOut,
    names: FUNCTIONAL_NAMES,
    apart: true,
    async,
    relu,
    residual: residual === undefined || residual === null ? null : readTensor(residual, 'residual'),
  });
}

function result<A extends FloatArray>(p: ForwardPlan): BatchNormResult<A> {
  return { data: p.y as A, shape: p.shape, saveMean: p.saveMean as A, saveInvstd: p.saveInvstd as A };
}

/**
 * Batch normalization of `input` (N, C, …), like `torch.nn.functional.batch_norm`.
 * Training: normalizes with the batch statistics and, if runningMean and
 * runningVar are given, updates them in place. Eval: uses them.
 */
export function batchNorm<A extends FloatArray>(
  input: Tensor<A>,
  runningMean: A | null,
  runningVar: A | null,
  options: BatchNormOptions<A> = {},
): BatchNormResult<A> {
  const p = planFunctionalForward(input, runningMean, runningVar, options, 'batchNorm', false);
  execute({ forward: p }, false);
  return result(p);
}

/**
 * `batchNorm` off the event loop (native path); rejects on bad input. Its
 * buffers become untransferable (see README: a transfer then copies), and
 * calls that update the same running statistics run one after another.
 */
export async function batchNormAsync<A extends FloatArray>(
  input: Tensor<A>,
  runningMean: A | null,
  runningVar: A | null,
  options: BatchNormOptions<A> = {},
): Promise<BatchNormResult<A>> {
  const p = planFunctionalForward(input, runningMean, runningVar, options, 'batchNormAsync', true);
  await execute({ forward: p }, true);
  return result(p);
}

function planFunctionalBackward(gradOutput: unknown, input: unknown, options: unknown, fn: string, async: boolean): BackwardPlan {
  checkOptions(options, fn, BACKWARD_OPTIONS, OPTION_HINTS);
  const o = options as BatchNormBackwardOptions;
  const { weight = null, saveMean, saveInvstd, training = false, layout, out, gradWeightOut, gradBiasOut, activation, output, residual = false } = o;
  const relu = checkActivation(activation, 'activation');
  checkBoolean(residual, 'residual');
  checkBoolean(training, 'training');
  const l = readLayout(layout);
  const x = readTensor(input, 'input');
  checkRank(x.shape, 'input', 2);
  const dy = readTensor(gradOutput, 'gradOutput');
  return planBackward({
    x,
    dy,
    dims: dimsOf(x.shape, isChannelsLast(l)),
    out,
    weight,
    mean: saveMean,
    invstd: saveInvstd,
    gradWeightOut,
    gradBiasOut,
    gradients: true,
    batchStats: training,
    checkFinite: false,
    shapeName: "the input's shape",
    apart: true,
    names: { x: 'input.data', mean: 'saveMean', invstd: 'saveInvstd', weight: 'weight' },
    async,
    relu,
    output,
    outputName: 'output',
    residual,
  });
}

function gradients<A extends FloatArray>(p: BackwardPlan): BatchNormGradients<A> {
  const g: BatchNormGradients<A> = { gradInput: { data: p.dx as A, shape: p.shape }, gradWeight: p.gradWeight as A, gradBias: p.gradBias as A };
  if (p.gradResidual) g.gradResidual = { data: p.gradResidual as A, shape: p.shape.slice() };
  return g;
}

/**
 * Gradients of `batchNorm` given dy: input, weight and bias gradients, from the
 * statistics the forward returned (`saveMean`, `saveInvstd`). With
 * `training: false` the statistics are treated as constants (frozen BN).
 */
export function batchNormBackward<A extends FloatArray>(gradOutput: Tensor<A>, input: Tensor<A>, options: BatchNormBackwardOptions<A>): BatchNormGradients<A> {
  const p = planFunctionalBackward(gradOutput, input, options, 'batchNormBackward', false);
  execute({ backward: p }, false);
  return gradients(p);
}

/** `batchNormBackward` off the event loop (native path); rejects on bad input. */
export async function batchNormBackwardAsync<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  options: BatchNormBackwardOptions<A>,
): Promise<BatchNormGradients<A>> {
  const p = planFunctionalBackward(gradOutput, input, options, 'batchNormBackwardAsync', true);
  await execute({ backward: p }, true);
  return gradients(p);
}
