/**
 * The functional forms of the norms beside BatchNorm, like
 * `torch.nn.functional.layer_norm`, `group_norm` and `instance_norm` (and
 * PyTorch 2.4's `rms_norm`), each with its backward spelled out and an async
 * twin. Every check and kernel call of these norms is made here; the modules
 * (layernorm.ts, rmsnorm.ts, groupnorm.ts, instancenorm.ts) are thin stateful
 * wrappers over these functions.
 *
 * A call is planned first (every argument checked, every output allocated,
 * nothing written), then its kernel calls run through one runner, sync or
 * async, then it finishes (running statistics averaged, gradients summed).
 */
import type { FloatArray, Kernels } from './backend/kernels.js';
import { kernels } from './backend/loader.js';
import {
  checkArray as checkArrayOf,
  checkBoolean,
  checkBothOrNeither,
  checkEps,
  checkMomentum,
  checkNormalizedShape,
  checkOneOf,
  checkOptions,
  checkPositiveInteger,
  checkRank,
  gradientShapeError,
  groupsNotDividingError,
  instanceNeedsStatisticsError,
  normalizedShapeError,
  readTensor,
  spatialError,
  typedArrayName,
} from './check.js';
import { LAYOUTS, allocLike, dimsOf, isChannelsLast, sameShape, zerosLike, type Layout, type Tensor } from './tensor.js';

export { checkBoolean, checkEps, checkNormalizedShape, checkPositiveInteger };

// ----------------------------------------------------------------- options and results

/** LayerNorm's affine parameters: normalizedShape's values each. */
export interface LayerNormOptions<A extends FloatArray = FloatArray> {
  /** γ, one per normalized value (normalizedShape's product); default none (1). */
  weight?: A | null;
  /** β, likewise; default none (0). */
  bias?: A | null;
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
  /** Write y here instead of allocating (the input's type and length). */
  out?: A;
}

export interface RMSNormOptions<A extends FloatArray = FloatArray> {
  /** γ, one per normalized value; default none (1). */
  weight?: A | null;
  /**
   * Added to mean(x²) before the square root. Default null: the machine
   * epsilon of the input's type (2⁻²³ for float32, 2⁻⁵² for float64), as
   * `torch.nn.RMSNorm`'s `torch.finfo(x.dtype).eps`.
   */
  eps?: number | null;
  out?: A;
}

export interface GroupNormOptions<A extends FloatArray = FloatArray> {
  /** γ, one per channel; default none (1). */
  weight?: A | null;
  /** β, one per channel; default none (0). */
  bias?: A | null;
  /** Default 1e-5. */
  eps?: number;
  /** Memory order of the input; default channels-first (N, C, …). */
  layout?: Layout;
  out?: A;
}

export interface InstanceNormOptions<A extends FloatArray = FloatArray> {
  weight?: A | null;
  bias?: A | null;
  /**
   * Normalize with each instance's own statistics (true, the default) or with
   * runningMean/runningVar (false, which needs them), as PyTorch's `use_input_stats`.
   */
  useInputStats?: boolean;
  /**
   * With useInputStats and running statistics: their update, PyTorch's convention
   * `running = (1 − momentum)·running + momentum·batch`, the batch's value being
   * the average over the samples (unbiased variance). Default 0.1.
   */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
  layout?: Layout;
  out?: A;
}

/**
 * y and the statistics it was normalized with, for the backward: one mean and
 * 1/√(var + eps) per row (LayerNorm), per (sample, group) (GroupNorm, index
 * n·groups + g), per (sample, channel) (InstanceNorm with input statistics),
 * or per channel (InstanceNorm with running statistics).
 */
export interface NormResult<A extends FloatArray = FloatArray> extends Tensor<A> {
  saveMean: A;
  saveInvstd: A;
}

/** RMSNorm has no mean: 1/√(mean(x²) + eps) per row. */
export interface RMSNormResult<A extends FloatArray = FloatArray> extends Tensor<A> {
  saveInvstd: A;
}

export interface NormBackwardOptions<A extends FloatArray = FloatArray> {
  /** γ of the forward; default none (1). */
  weight?: A | null;
  /** The forward result's saveMean and saveInvstd. */
  saveMean: A;
  saveInvstd: A;
  layout?: Layout;
  /** Write the input gradient here instead of allocating. */
  out?: A;
}

export interface RMSNormBackwardOptions<A extends FloatArray = FloatArray> {
  weight?: A | null;
  saveInvstd: A;
  out?: A;
}

export interface InstanceNormBackwardOptions<A extends FloatArray = FloatArray> extends NormBackwardOptions<A> {
  /** Whether the forward used the instances' own statistics (default true, as the forward). */
  useInputStats?: boolean;
}

/** gradWeight and gradBias are null when the forward had no weight (bias). */
export interface NormGradients<A extends FloatArray = FloatArray> {
  gradInput: Tensor<A>;
  gradWeight: A | null;
  gradBias: A | null;
}

// ----------------------------------------------------------------- checks

/** An array argument of x's type (check.ts's checkArray, x's type read once). */
function checkArray(v: unknown, name: string, x: FloatArray, length: number, nullable = false): void {
  checkArrayOf(v, name, typedArrayName(x)!, length, nullable);
}

function readLayout(v: unknown): Layout {
  return v === undefined ? 'channelsFirst' : checkOneOf(v, 'layout', LAYOUTS);
}

/** PyTorch's LayerNorm check: the input's last dimensions are normalizedShape. */
function checkEndsWith(shape: readonly number[], normalizedShape: readonly number[]): void {
  const k = normalizedShape.length;
  if (shape.length < k || !sameShape(shape.slice(shape.length - k), normalizedShape)) throw normalizedShapeError(normalizedShape, shape);
}

function checkGradOutput(gradOutput: unknown, x: Tensor): Tensor {
  const dy = readTensor(gradOutput, 'gradOutput');
  if (!sameShape(dy.shape, x.shape)) throw gradientShapeError("the input's shape", x.shape, dy.shape);
  checkArray(dy.data, 'gradOutput.data', x.data, x.data.length);
  return dy;
}

export function channelsInput(input: unknown, layout: Layout) {
  const x = readTensor(input, 'input');
  checkRank(x.shape, 'input', 2);
  return { x, dims: dimsOf(x.shape, isChannelsLast(layout)) };
}

/** PyTorch's check: instance statistics need two or more values per instance. */
export function checkSpatial(shape: readonly number[], s: number): void {
  if (s === 1) throw spatialError(shape);
}

/** PyTorch's check of F.group_norm. */
export function checkGroups(shape: readonly number[], c: number, groups: number): void {
  if (c % groups !== 0) throw groupsNotDividingError(shape, groups);
}

// ----------------------------------------------------------------- the runner

type KernelOp = 'groupNormForward' | 'groupNormBackward' | 'forwardTraining' | 'forwardEval' | 'backward';
type Call = { [K in KernelOp]: { op: K; args: Parameters<Kernels[K]> } }[KernelOp];

/** A checked call: its kernel calls (none for an empty input), then what finishes it. */
export interface Plan<R> {
  calls: Call[];
  finish: () => R;
}

export function runSync<R>(p: Plan<R>): R {
  for (const c of p.calls) (kernels[c.op] as (...a: unknown[]) => void)(...c.args);
  return p.finish();
}

export async function runAsync<R>(p: Plan<R>): Promise<R> {
  for (const c of p.calls) await (kernels[`${c.op}Async`] as (...a: unknown[]) => Promise<void>)(...c.args);
  return p.finish();
}

// ----------------------------------------------------------------- the group-statistics forms

/** Shared by LayerNorm, RMSNorm and GroupNorm: (n, c, s) in `groups` groups. */
function groupPlan(
  x: Tensor,
  weight: FloatArray | null,
  bias: FloatArray | null,
  out: unknown,
  eps: number,
  rms: boolean,
  n: number,
  c: number,
  s: number,
  groups: number,
  channelsLast: boolean,
): Plan<NormResult> {
  checkArray(weight, 'weight', x.data, c, true);
  checkArray(bias, 'bias', x.data, c, true);
  checkArray(out, 'out', x.data, x.data.length, true);
  const y = (out as FloatArray | undefined) ?? allocLike(x.data, x.data.length);
  const saveMean = zerosLike(x.data, n * groups),
    saveInvstd = zerosLike(x.data, n * groups);
  const calls: Call[] =
    x.data.length === 0 ? [] : [{ op: 'groupNormForward', args: [x.data, y, weight, bias, saveMean, saveInvstd, n, c, s, groups, channelsLast, eps, rms] }];
  return { calls, finish: () => ({ data: y, shape: [...x.shape], saveMean, saveInvstd }) };
}

function groupBackwardPlan(
  gradOutput: unknown,
  x: Tensor,
  o: Record<string, unknown>,
  rms: boolean,
  n: number,
  c: number,
  s: number,
  groups: number,
  channelsLast: boolean,
): Plan<NormGradients> {
  const dy = checkGradOutput(gradOutput, x);
  const weight = (o.weight ?? null) as FloatArray | null;
  checkArray(weight, 'weight', x.data, c, true);
  if (!rms) checkArray(o.saveMean, 'saveMean', x.data, n * groups);
  checkArray(o.saveInvstd, 'saveInvstd', x.data, n * groups);
  checkArray(o.out, 'out', x.data, x.data.length, true);
  const saveMean = rms ? zerosLike(x.data, n * groups) : (o.saveMean as FloatArray);
  const dx = (o.out as FloatArray | undefined) ?? allocLike(x.data, x.data.length);
  const gradWeight = weight ? zerosLike(x.data, c) : null,
    gradBias = weight && !rms ? zerosLike(x.data, c) : null;
  const calls: Call[] =
    x.data.length === 0
      ? []
      : [
          {
            op: 'groupNormBackward',
            args: [x.data, dy.data, dx, weight, saveMean, o.saveInvstd as FloatArray, gradWeight, gradBias, n, c, s, groups, channelsLast, rms],
          },
        ];
  return { calls, finish: () => ({ gradInput: { data: dx, shape: [...x.shape] }, gradWeight, gradBias }) };
}

const LAYER_NORM_KEYS = ['weight', 'bias', 'eps', 'out'] as const;

export function layerNormPlan(input: unknown, normalizedShape: unknown, options: unknown, fn: string): Plan<NormResult> {
  checkOptions(options, fn, LAYER_NORM_KEYS);
  const o = options as Record<string, unknown>;
  const ns = checkNormalizedShape(normalizedShape);
  const eps = checkEps(o.eps ?? 1e-5);
  const x = readTensor(input, 'input');
  checkEndsWith(x.shape, ns);
  const d = ns.reduce((a, b) => a * b, 1);
  return groupPlan(x, (o.weight ?? null) as FloatArray | null, (o.bias ?? null) as FloatArray | null, o.out, eps, false, x.data.length / d, d, 1, 1, false);
}

/** Layer normalization over the last dimensions (`normalizedShape`), like `torch.nn.functional.layer_norm`. */
export function layerNorm<A extends FloatArray>(
  input: Tensor<A>,
  normalizedShape: number | readonly number[],
  options: LayerNormOptions<A> = {},
): NormResult<A> {
  return runSync(layerNormPlan(input, normalizedShape, options, 'layerNorm')) as NormResult<A>;
}

/** `layerNorm` off the event loop (native path); rejects on bad input. */
export function layerNormAsync<A extends FloatArray>(
  input: Tensor<A>,
  normalizedShape: number | readonly number[],
  options: LayerNormOptions<A> = {},
): Promise<NormResult<A>> {
  return tryAsync(() => runAsync(layerNormPlan(input, normalizedShape, options, 'layerNormAsync'))) as Promise<NormResult<A>>;
}

const NORM_BACKWARD_KEYS = ['weight', 'saveMean', 'saveInvstd', 'out'] as const;

export function layerNormBackwardPlan(gradOutput: unknown, input: unknown, normalizedShape: unknown, options: unknown, fn: string): Plan<NormGradients> {
  checkOptions(options, fn, NORM_BACKWARD_KEYS);
  const o = options as Record<string, unknown>;
  const ns = checkNormalizedShape(normalizedShape);
  const x = readTensor(input, 'input');
  checkEndsWith(x.shape, ns);
  const d = ns.reduce((a, b) => a * b, 1);
  return groupBackwardPlan(gradOutput, x, o, false, x.data.length / d, d, 1, 1, false);
}

/**
 * Gradients of `layerNorm` given dy, from the forward's saveMean and
 * saveInvstd: the input's, and the weight's and bias' (null without weight).
 */
export function layerNormBackward<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  normalizedShape: number | readonly number[],
  options: NormBackwardOptions<A>,
): NormGradients<A> {
  return runSync(layerNormBackwardPlan(gradOutput, input, normalizedShape, options, 'layerNormBackward')) as NormGradients<A>;
}

export function layerNormBackwardAsync<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  normalizedShape: number | readonly number[],
  options: NormBackwardOptions<A>,
): Promise<NormGradients<A>> {
  return tryAsync(() => runAsync(layerNormBackwardPlan(gradOutput, input, normalizedShape, options, 'layerNormBackwardAsync'))) as Promise<NormGradients<A>>;
}

const RMS_NORM_KEYS = ['weight', 'eps', 'out'] as const;

/** RMSNorm's default eps: the machine epsilon of x's type. */
export function rmsEps(eps: unknown, x: FloatArray): number {
  return eps === null || eps === undefined ? (x instanceof Float64Array ? 2 ** -52 : 2 ** -23) : checkEps(eps);
}

export function rmsNormPlan(input: unknown, normalizedShape: unknown, options: unknown, fn: string): Plan<RMSNormResult> {
  checkOptions(options, fn, RMS_NORM_KEYS);
  const o = options as Record<string, unknown>;
  const ns = checkNormalizedShape(normalizedShape);
  const x = readTensor(input, 'input');
  const eps = rmsEps(o.eps, x.data);
  checkEndsWith(x.shape, ns);
  const d = ns.reduce((a, b) => a * b, 1);
  const p = groupPlan(x, (o.weight ?? null) as FloatArray | null, null, o.out, eps, true, x.data.length / d, d, 1, 1, false);
  return {
    calls: p.calls,
    finish: () => {
      const { data, shape, saveInvstd } = p.finish();
      return { data, shape, saveInvstd };
    },
  };
}

/** RMS normalization, as PyTorch 2.4's `torch.nn.functional.rms_norm`: y = x / √(mean(x²) + eps) · weight. */
export function rmsNorm<A extends FloatArray>(
  input: Tensor<A>,
  normalizedShape: number | readonly number[],
  options: RMSNormOptions<A> = {},
): RMSNormResult<A> {
  return runSync(rmsNormPlan(input, normalizedShape, options, 'rmsNorm')) as RMSNormResult<A>;
}

export function rmsNormAsync<A extends FloatArray>(
  input: Tensor<A>,
  normalizedShape: number | readonly number[],
  options: RMSNormOptions<A> = {},
): Promise<RMSNormResult<A>> {
  return tryAsync(() => runAsync(rmsNormPlan(input, normalizedShape, options, 'rmsNormAsync'))) as Promise<RMSNormResult<A>>;
}

const RMS_BACKWARD_KEYS = ['weight', 'saveInvstd', 'out'] as const;

export function rmsNormBackwardPlan(gradOutput: unknown, input: unknown, normalizedShape: unknown, options: unknown, fn: string): Plan<NormGradients> {
  checkOptions(options, fn, RMS_BACKWARD_KEYS);
  const o = options as Record<string, unknown>;
  const ns = checkNormalizedShape(normalizedShape);
  const x = readTensor(input, 'input');
  checkEndsWith(x.shape, ns);
  const d = ns.reduce((a, b) => a * b, 1);
  return groupBackwardPlan(gradOutput, x, o, true, x.data.length / d, d, 1, 1, false);
}

/** Gradients of `rmsNorm`: the input's and the weight's (gradBias is null: RMSNorm has no bias). */
export function rmsNormBackward<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  normalizedShape: number | readonly number[],
  options: RMSNormBackwardOptions<A>,
): NormGradients<A> {
  return runSync(rmsNormBackwardPlan(gradOutput, input, normalizedShape, options, 'rmsNormBackward')) as NormGradients<A>;
}

export function rmsNormBackwardAsync<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  normalizedShape: number | readonly number[],
  options: RMSNormBackwardOptions<A>,
): Promise<NormGradients<A>> {
  return tryAsync(() => runAsync(rmsNormBackwardPlan(gradOutput, input, normalizedShape, options, 'rmsNormBackwardAsync'))) as Promise<NormGradients<A>>;
}

const GROUP_NORM_KEYS = ['weight', 'bias', 'eps', 'layout', 'out'] as const;

export function groupNormPlan(input: unknown, numGroups: unknown, options: unknown, fn: string): Plan<NormResult> {
  checkOptions(options, fn, GROUP_NORM_KEYS);
  const o = options as Record<string, unknown>;
  const groups = checkPositiveInteger(numGroups, 'numGroups');
  const eps = checkEps(o.eps ?? 1e-5);
  const { x, dims } = channelsInput(input, readLayout(o.layout));
  checkGroups(x.shape, dims.c, groups);
  return groupPlan(
    x,
    (o.weight ?? null) as FloatArray | null,
    (o.bias ?? null) as FloatArray | null,
    o.out,
    eps,
    false,
    dims.n,
    dims.c,
    dims.s,
    groups,
    dims.channelsLast,
  );
}

/** Group normalization of (N, C, …) input, like `torch.nn.functional.group_norm`; channels-last with `layout`. */
export function groupNorm<A extends FloatArray>(input: Tensor<A>, numGroups: number, options: GroupNormOptions<A> = {}): NormResult<A> {
  return runSync(groupNormPlan(input, numGroups, options, 'groupNorm')) as NormResult<A>;
}

export function groupNormAsync<A extends FloatArray>(input: Tensor<A>, numGroups: number, options: GroupNormOptions<A> = {}): Promise<NormResult<A>> {
  return tryAsync(() => runAsync(groupNormPlan(input, numGroups, options, 'groupNormAsync'))) as Promise<NormResult<A>>;
}

const GROUP_BACKWARD_KEYS = ['weight', 'saveMean', 'saveInvstd', 'layout', 'out'] as const;

export function groupNormBackwardPlan(gradOutput: unknown, input: unknown, numGroups: unknown, options: unknown, fn: string): Plan<NormGradients> {
  checkOptions(options, fn, GROUP_BACKWARD_KEYS);
  const o = options as Record<string, unknown>;
  const groups = checkPositiveInteger(numGroups, 'numGroups');
  const { x, dims } = channelsInput(input, readLayout(o.layout));
  checkGroups(x.shape, dims.c, groups);
  return groupBackwardPlan(gradOutput, x, o, false, dims.n, dims.c, dims.s, groups, dims.channelsLast);
}

/** Gradients of `groupNorm` given dy, from the forward's saveMean and saveInvstd (N·numGroups values each). */
export function groupNormBackward<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  numGroups: number,
  options: NormBackwardOptions<A>,
): NormGradients<A> {
  return runSync(groupNormBackwardPlan(gradOutput, input, numGroups, options, 'groupNormBackward')) as NormGradients<A>;
}

export function groupNormBackwardAsync<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  numGroups: number,
  options: NormBackwardOptions<A>,
): Promise<NormGradients<A>> {
  return tryAsync(() => runAsync(groupNormBackwardPlan(gradOutput, input, numGroups, options, 'groupNormBackwardAsync'))) as Promise<NormGradients<A>>;
}

// ----------------------------------------------------------------- InstanceNorm: BatchNorm over (1, N·C, S)

/** `a` (C values) repeated n times. */
function repeat(a: FloatArray | null, n: number): FloatArray | null {
  if (!a) return null;
  const r = zerosLike(a, a.length * n);
  for (let i = 0; i < n; i++) r.set(a, i * a.length);
  return r;
}

/** out[c] = mean (or sum) over the n samples of rep[i·C + c]. */
function reduceSamples(rep: FloatArray, out: FloatArray, n: number, mean: boolean): void {
  const c = out.length;
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += rep[i * c + ch];
    out[ch] = mean ? s / n : s;
  }
}

/**
 * The per-sample BatchNorm calls of instance statistics: one call on (1, N·C, S)
 * in NCHW; one per sample of (S, C) channels-last.
 */
function perSample<K extends 'forwardTraining' | 'backward'>(
  op: K,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  args: (sub: (a: FloatArray | null, per: number) => FloatArray | null, i: number) => Parameters<Kernels[K]>,
): Call[] {
  if (!channelsLast) return [{ op, args: args((a) => a, 0) } as Call];
  const calls: Call[] = [];
  for (let i = 0; i < n; i++) calls.push({ op, args: args((a, per) => a && a.subarray(i * per, (i + 1) * per), i) } as Call);
  return calls;
}

/**
 * eps = 0 and a constant instance: PyTorch's batch_norm (which its
 * instance_norm runs) takes invstd as 0 where var and eps are both 0, so
 * the instance gives its bias, not 0 · inf = NaN. As BatchNorm's
 * constantChannels (functional.ts), per (sample, channel).
 */
function constantInstances(y: FloatArray, bias: FloatArray | null, saveInvstd: FloatArray, n: number, c: number, s: number, channelsLast: boolean): void {
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      if (saveInvstd[i * c + ch] !== Infinity) continue;
      saveInvstd[i * c + ch] = 0;
      const v = bias ? bias[ch] : 0;
      if (channelsLast) for (let j = 0; j < s; j++) y[(i * s + j) * c + ch] = v;
      else y.fill(v, (i * c + ch) * s, (i * c + ch + 1) * s);
    }
  }
}

const INSTANCE_NORM_KEYS = ['weight', 'bias', 'useInputStats', 'momentum', 'eps', 'layout', 'out'] as const;

export function instanceNormPlan(input: unknown, runningMean: unknown, runningVar: unknown, options: unknown, fn: string): Plan<NormResult> {
  checkOptions(options, fn, INSTANCE_NORM_KEYS);
  const o = options as Record<string, unknown>;
  const useInputStats = checkBoolean(o.useInputStats ?? true, 'useInputStats');
  const eps = checkEps(o.eps ?? 1e-5);
  const momentum = checkMomentum(o.momentum ?? 0.1, false)!;
  const { x, dims } = channelsInput(input, readLayout(o.layout));
  const { n, c, s, channelsLast } = dims;
  const weight = (o.weight ?? null) as FloatArray | null,
    bias = (o.bias ?? null) as FloatArray | null;
  checkArray(weight, 'weight', x.data, c, true);
  checkArray(bias, 'bias', x.data, c, true);
  checkArray(runningMean, 'runningMean', x.data, c, true);
  checkArray(runningVar, 'runningVar', x.data, c, true);
  checkBothOrNeither(runningMean, runningVar, 'runningMean', 'runningVar');
  if (!useInputStats && !runningMean) throw instanceNeedsStatisticsError();
  checkArray(o.out, 'out', x.data, x.data.length, true);
  const y = (o.out as FloatArray | undefined) ?? allocLike(x.data, x.data.length);
  const rm = runningMean as FloatArray | null,
    rv = runningVar as FloatArray | null;
  const shape = [...x.shape],
    empty = x.data.length === 0;
  if (!useInputStats) {
    // Running statistics: BatchNorm's eval over (N, C, S).
    const saveMean = zerosLike(x.data, c),
      saveInvstd = zerosLike(x.data, c);
    const calls: Call[] = empty ? [] : [{ op: 'forwardEval', args: [x.data, y, weight, bias, rm!, rv!, n, c, s, channelsLast, eps] }];
    return {
      calls,
      finish: () => {
        for (let ch = 0; ch < c; ch++) ((saveMean[ch] = rm![ch]), (saveInvstd[ch] = 1 / Math.sqrt(rv![ch] + eps)));
        return { data: y, shape, saveMean, saveInvstd };
      },
    };
  }
  checkSpatial(x.shape, s);
  const saveMean = zerosLike(x.data, n * c),
    saveInvstd = zerosLike(x.data, n * c);
  if (empty) return { calls: [], finish: () => ({ data: y, shape, saveMean, saveInvstd }) };
  // PyTorch's instance_norm: the running statistics repeated per sample, updated as BatchNorm's, then averaged over the samples.
  const w = channelsLast ? weight : repeat(weight, n),
    b = channelsLast ? bias : repeat(bias, n);
  const rmRep = repeat(rm, n),
    rvRep = repeat(rv, n);
  const cc = channelsLast ? c : n * c;
  const calls = perSample('forwardTraining', n, c, s, channelsLast, (sub) => [
    sub(x.data, s * c)!,
    sub(y, s * c)!,
    w,
    b,
    sub(rmRep, c),
    sub(rvRep, c),
    sub(saveMean, c)!,
    sub(saveInvstd, c)!,
    1,
    cc,
    s,
    channelsLast,
    eps,
    momentum,
    true,
  ]);
  return {
    calls,
    finish: () => {
      if (rm && rv && rmRep && rvRep) (reduceSamples(rmRep, rm, n, true), reduceSamples(rvRep, rv, n, true));
      if (eps === 0) constantInstances(y, bias, saveInvstd, n, c, s, channelsLast);
      return { data: y, shape, saveMean, saveInvstd };
    },
  };
}

/**
 * Instance normalization of (N, C, …) input, like `torch.nn.functional.instance_norm`:
 * each (sample, channel) normalized with its own statistics (and, given
 * runningMean/runningVar, those updated in place with the batch's average),
 * or with the running statistics when useInputStats is false.
 */
export function instanceNorm<A extends FloatArray>(
  input: Tensor<A>,
  runningMean: A | null = null,
  runningVar: A | null = null,
  options: InstanceNormOptions<A> = {},
): NormResult<A> {
  return runSync(instanceNormPlan(input, runningMean, runningVar, options, 'instanceNorm')) as NormResult<A>;
}

export function instanceNormAsync<A extends FloatArray>(
  input: Tensor<A>,
  runningMean: A | null = null,
  runningVar: A | null = null,
  options: InstanceNormOptions<A> = {},
): Promise<NormResult<A>> {
  return tryAsync(() => runAsync(instanceNormPlan(input, runningMean, runningVar, options, 'instanceNormAsync'))) as Promise<NormResult<A>>;
}

const INSTANCE_BACKWARD_KEYS = ['weight', 'saveMean', 'saveInvstd', 'useInputStats', 'layout', 'out'] as const;

export function instanceNormBackwardPlan(gradOutput: unknown, input: unknown, options: unknown, fn: string): Plan<NormGradients> {
  checkOptions(options, fn, INSTANCE_BACKWARD_KEYS);
  const o = options as Record<string, unknown>;
  const useInputStats = checkBoolean(o.useInputStats ?? true, 'useInputStats');
  const { x, dims } = channelsInput(input, readLayout(o.layout));
  const { n, c, s, channelsLast } = dims;
  const dy = checkGradOutput(gradOutput, x);
  const weight = (o.weight ?? null) as FloatArray | null;
  const stats = useInputStats ? n * c : c;
  checkArray(weight, 'weight', x.data, c, true);
  checkArray(o.saveMean, 'saveMean', x.data, stats);
  checkArray(o.saveInvstd, 'saveInvstd', x.data, stats);
  checkArray(o.out, 'out', x.data, x.data.length, true);
  const saveMean = o.saveMean as FloatArray,
    saveInvstd = o.saveInvstd as FloatArray;
  const dx = (o.out as FloatArray | undefined) ?? allocLike(x.data, x.data.length);
  const gradWeight = weight ? zerosLike(x.data, c) : null,
    gradBias = weight ? zerosLike(x.data, c) : null;
  const shape = [...x.shape];
  const finished = () => ({ gradInput: { data: dx, shape }, gradWeight, gradBias });
  if (x.data.length === 0) return { calls: [], finish: finished };
  if (!useInputStats)
    return {
      calls: [{ op: 'backward', args: [x.data, dy.data, dx, weight, saveMean, saveInvstd, gradWeight, gradBias, n, c, s, channelsLast, false] }],
      finish: finished,
    };
  const w = channelsLast ? weight : repeat(weight, n);
  const gwRep = weight ? zerosLike(x.data, n * c) : null,
    gbRep = weight ? zerosLike(x.data, n * c) : null;
  const cc = channelsLast ? c : n * c;
  const calls = perSample('backward', n, c, s, channelsLast, (sub) => [
    sub(x.data, s * c)!,
    sub(dy.data, s * c)!,
    sub(dx, s * c),
    w,
    sub(saveMean, c)!,
    sub(saveInvstd, c)!,
    sub(gwRep, c),
    sub(gbRep, c),
    1,
    cc,
    s,
    channelsLast,
    true,
  ]);
  return {
    calls,
    finish: () => {
      if (gradWeight && gradBias && gwRep && gbRep) (reduceSamples(gwRep, gradWeight, n, false), reduceSamples(gbRep, gradBias, n, false));
      return finished();
    },
  };
}

/** Gradients of `instanceNorm` given dy, from the forward's saveMean and saveInvstd. */
export function instanceNormBackward<A extends FloatArray>(gradOutput: Tensor<A>, input: Tensor<A>, options: InstanceNormBackwardOptions<A>): NormGradients<A> {
  return runSync(instanceNormBackwardPlan(gradOutput, input, options, 'instanceNormBackward')) as NormGradients<A>;
}

export function instanceNormBackwardAsync<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  options: InstanceNormBackwardOptions<A>,
): Promise<NormGradients<A>> {
  return tryAsync(() => runAsync(instanceNormBackwardPlan(gradOutput, input, options, 'instanceNormBackwardAsync'))) as Promise<NormGradients<A>>;
}

/** An async form rejects (never throws synchronously) on bad input. */
function tryAsync<R>(f: () => Promise<R>): Promise<R> {
  try {
    return f();
  } catch (e) {
    return Promise.reject(e);
  }
}
