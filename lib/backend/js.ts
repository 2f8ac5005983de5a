/**
 * The pure-JavaScript kernels: the fallback when the addon cannot load, and
 * the baseline the benchmarks measure the native path against — so written as
 * fast as plain JS allows: statistics in float64 (two passes, exact enough for
 * any data), per-channel coefficients precomputed, one multiply-add per element
 * in the elementwise passes, no allocation inside loops.
 */
import type { FloatArray, Kernels } from './kernels.js';
import { checkBackwardArgs, checkForwardEvalArgs, checkForwardTrainingArgs, deferredForm, syncForm } from './validate.js';
import { jsNormKernels } from './js-norms.js';
import { lengthOf } from '../check.js';

/**
 * Per channel: mean and sum of squared deviations, two passes in float64, the
 * second correcting the first's mean by Σ(x − mean)/m: a constant channel's
 * mean is then its value exactly (float64 sums of a repeated value round), so
 * it normalizes to exactly 0 (PyTorch #108072).
 */
export function channelMoments(x: FloatArray, n: number, c: number, s: number, channelsLast: boolean, mean: Float64Array, m2: Float64Array): void {
  const count = n * s;
  if (!channelsLast) {
    for (let ch = 0; ch < c; ch++) {
      let sum = 0;
      for (let k = 0; k < n; k++) {
        for (let i = (k * c + ch) * s, e = i + s; i < e; i++) sum += x[i];
      }
      const m = sum / count;
      let sd = 0,
        q = 0;
      for (let k = 0; k < n; k++) {
        for (let i = (k * c + ch) * s, e = i + s; i < e; i++) {
          const d = x[i] - m;
          sd += d;
          q += d * d;
        }
      }
      mean[ch] = Number.isFinite(sd) ? m + sd / count : m; // a non-finite channel keeps Σx/m, as PyTorch
      m2[ch] = Math.max(q - (sd * sd) / count, 0);
    }
    return;
  }
  const rows = n * s;
  for (let r = 0, i = 0; r < rows; r++) {
    for (let ch = 0; ch < c; ch++, i++) mean[ch] += x[i];
  }
  for (let ch = 0; ch < c; ch++) mean[ch] /= count;
  const sd = new Float64Array(c);
  for (let r = 0, i = 0; r < rows; r++) {
    for (let ch = 0; ch < c; ch++, i++) {
      const d = x[i] - mean[ch];
      sd[ch] += d;
      m2[ch] += d * d;
    }
  }
  for (let ch = 0; ch < c; ch++) {
    if (Number.isFinite(sd[ch])) mean[ch] += sd[ch] / count; // a non-finite channel keeps Σx/m, as PyTorch
    m2[ch] = Math.max(m2[ch] - (sd[ch] * sd[ch]) / count, 0);
  }
}

/**
 * y = (x − m[ch])·a[ch] + b[ch]. The mean is taken off x first, as PyTorch
 * does: folding it into b (x·a + (b − m·a)) would cancel catastrophically when
 * the mean is large beside the spread (a constant channel of 1e8 with bias 0.3
 * came out 0.2999992, one of 1e15 gave 0).
 */
export function applyAffine(
  x: FloatArray,
  y: FloatArray,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  m: ArrayLike<number>,
  a: Float64Array,
  b: Float64Array,
  fuse: Fuse | null = null,
): void {
  if (fuse) return applyAffineFused(x, y, n, c, s, channelsLast, m, a, b, fuse);
  if (!channelsLast) {
    for (let k = 0; k < n; k++) {
      for (let ch = 0; ch < c; ch++) {
        const mk = m[ch],
          ak = a[ch],
          bk = b[ch];
        for (let i = (k * c + ch) * s, e = i + s; i < e; i++) y[i] = (x[i] - mk) * ak + bk;
      }
    }
    return;
  }
  const rows = n * s;
  for (let r = 0, i = 0; r < rows; r++) {
    for (let ch = 0; ch < c; ch++, i++) y[i] = (x[i] - m[ch]) * a[ch] + b[ch];
  }
}

/**
 * What the passes fuse (issue 21), as the native kernels do (native/kernels/fused.h):
 * the forward's y = max(y + residual, 0) in the pass that writes y; the
 * backward's dy' = gate > 0 ? dy : 0 (gate: the forward's y) in every pass
 * that reads dy, the dx pass also writing dy' to gateOut (the residual's gradient).
 */
export interface Fuse {
  residual: FloatArray | null;
  relu: boolean;
  gate: FloatArray | null;
  gateOut: FloatArray | null;
}

/** applyAffine with its input gated and its output added to and rectified, per fuse. */
function applyAffineFused(
  x: FloatArray,
  y: FloatArray,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  m: ArrayLike<number>,
  a: Float64Array,
  b: Float64Array,
  fuse: Fuse,
): void {
  const { residual: r, relu, gate: g, gateOut: go } = fuse;
  // One element: the fused ops around (v − mk)·ak + bk; a NaN stays NaN, -0 stays -0 (torch.relu).
  const one = (i: number, mk: number, ak: number, bk: number): void => {
    let v = x[i];
    if (g) {
      v = g[i] > 0 ? v : 0;
      if (go) go[i] = v;
    }
    let t = (v - mk) * ak + bk;
    if (r) t += r[i];
    y[i] = relu && t < 0 ? 0 : t;
  };
  if (!channelsLast) {
    for (let k = 0; k < n; k++) {
      for (let ch = 0; ch < c; ch++) {
        const mk = m[ch],
          ak = a[ch],
          bk = b[ch];
        const e = (k * c + ch) * s + s;
        if (r && relu && !g)
          for (let i = e - s; i < e; i++) {
            const t = (x[i] - mk) * ak + bk + r[i];
            y[i] = t < 0 ? 0 : t;
          }
        else if (relu && !r && !g)
          for (let i = e - s; i < e; i++) {
            const t = (x[i] - mk) * ak + bk;
            y[i] = t < 0 ? 0 : t;
          }
        else for (let i = e - s; i < e; i++) one(i, mk, ak, bk);
      }
    }
    return;
  }
  const rows = n * s;
  for (let rr = 0, i = 0; rr < rows; rr++) {
    for (let ch = 0; ch < c; ch++, i++) one(i, m[ch], a[ch], b[ch]);
  }
}

/** Per channel, added into sdy and sdyx (zeroed by the caller): Σdy and Σdy·(x − mean); dy gated by gate > 0 if given. */
export function gradSums(
  x: FloatArray,
  dy: FloatArray,
  mean: ArrayLike<number>,
  sdy: Float64Array,
  sdyx: Float64Array,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  gate: FloatArray | null = null,
): void {
  if (gate) return gatedGradSums(x, dy, mean, sdy, sdyx, n, c, s, channelsLast, gate);
  if (!channelsLast) {
    for (let ch = 0; ch < c; ch++) {
      const m = mean[ch];
      let g = 0,
        h = 0;
      for (let k = 0; k < n; k++) {
        for (let i = (k * c + ch) * s, e = i + s; i < e; i++) {
          const d = dy[i];
          g += d;
          h += d * (x[i] - m);
        }
      }
      sdy[ch] = g;
      sdyx[ch] = h;
    }
    return;
  }
  const rows = n * s;
  for (let rr = 0, i = 0; rr < rows; rr++) {
    for (let ch = 0; ch < c; ch++, i++) {
      const d = dy[i];
      sdy[ch] += d;
      sdyx[ch] += d * (x[i] - mean[ch]);
    }
  }
}

/** gradSums over dy' = gate > 0 ? dy : 0 (a fused ReLU's gradient). */
function gatedGradSums(
  x: FloatArray,
  dy: FloatArray,
  mean: ArrayLike<number>,
  sdy: Float64Array,
  sdyx: Float64Array,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  gate: FloatArray,
): void {
  if (!channelsLast) {
    for (let ch = 0; ch < c; ch++) {
      const m = mean[ch];
      let g = 0,
        h = 0;
      for (let k = 0; k < n; k++) {
        for (let i = (k * c + ch) * s, e = i + s; i < e; i++) {
          const d = gate[i] > 0 ? dy[i] : 0;
          g += d;
          h += d * (x[i] - m);
        }
      }
      sdy[ch] = g;
      sdyx[ch] = h;
    }
    return;
  }
  const rows = n * s;
  for (let rr = 0, i = 0; rr < rows; rr++) {
    for (let ch = 0; ch < c; ch++, i++) {
      const d = gate[i] > 0 ? dy[i] : 0;
      sdy[ch] += d;
      sdyx[ch] += d * (x[i] - mean[ch]);
    }
  }
}

/**
 * dx = dy·k1 + (x − mean)·k2 + k3 per channel (the mean taken off x first, as
 * in applyAffine); with a gate, dy' = gate > 0 ? dy : 0 in place of dy, also
 * written to gateOut if given.
 */
export function gradInput(
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray,
  mean: ArrayLike<number>,
  k1: Float64Array,
  k2: Float64Array,
  k3: Float64Array,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  gate: FloatArray | null = null,
  gateOut: FloatArray | null = null,
): void {
  if (gate) return gatedGradInput(x, dy, dx, mean, k1, k2, k3, n, c, s, channelsLast, gate, gateOut);
  if (!channelsLast) {
    for (let k = 0; k < n; k++) {
      for (let ch = 0; ch < c; ch++) {
        const a = k1[ch],
          b = k2[ch],
          d = k3[ch],
          m = mean[ch];
        for (let i = (k * c + ch) * s, e = i + s; i < e; i++) dx[i] = dy[i] * a + (x[i] - m) * b + d;
      }
    }
    return;
  }
  const rows = n * s;
  for (let rr = 0, i = 0; rr < rows; rr++) {
    for (let ch = 0; ch < c; ch++, i++) dx[i] = dy[i] * k1[ch] + (x[i] - mean[ch]) * k2[ch] + k3[ch];
  }
}

function gatedGradInput(
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray,
  mean: ArrayLike<number>,
  k1: Float64Array,
  k2: Float64Array,
  k3: Float64Array,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  gate: FloatArray,
  gateOut: FloatArray | null,
): void {
  if (!channelsLast) {
    for (let k = 0; k < n; k++) {
      for (let ch = 0; ch < c; ch++) {
        const a = k1[ch],
          b = k2[ch],
          d = k3[ch],
          m = mean[ch];
        const e = (k * c + ch) * s + s;
        if (gateOut)
          for (let i = e - s; i < e; i++) {
            const g = gate[i] > 0 ? dy[i] : 0;
            gateOut[i] = g;
            dx[i] = g * a + (x[i] - m) * b + d;
          }
        else for (let i = e - s; i < e; i++) dx[i] = (gate[i] > 0 ? dy[i] : 0) * a + (x[i] - m) * b + d;
      }
    }
    return;
  }
  const rows = n * s;
  for (let rr = 0, i = 0; rr < rows; rr++) {
    for (let ch = 0; ch < c; ch++, i++) {
      const g = gate[i] > 0 ? dy[i] : 0;
      if (gateOut) gateOut[i] = g;
      dx[i] = g * k1[ch] + (x[i] - mean[ch]) * k2[ch] + k3[ch];
    }
  }
}

/** The fuse of a forward's post-ops, or null for none. */
function postOps(residual: FloatArray | null, relu: boolean): Fuse | null {
  return residual || relu ? { residual, relu, gate: null, gateOut: null } : null;
}

function forwardTraining(
  async: boolean,
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  runningMean: FloatArray | null,
  runningVar: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  eps: number,
  momentum: number,
  unbiased = true,
  residual: FloatArray | null = null,
  relu = false,
): void {
  checkForwardTrainingArgs(
    async,
    x,
    y,
    weight,
    bias,
    runningMean,
    runningVar,
    saveMean,
    saveInvstd,
    n,
    c,
    s,
    channelsLast,
    eps,
    momentum,
    unbiased,
    residual,
    relu,
  );

  const count = n * s;
  const mean = new Float64Array(c),
    m2 = new Float64Array(c),
    a = new Float64Array(c),
    b = new Float64Array(c);
  channelMoments(x, n, c, s, channelsLast, mean, m2);
  for (let ch = 0; ch < c; ch++) {
    const v = m2[ch] / count,
      invstd = 1 / Math.sqrt(v + eps);
    saveMean[ch] = mean[ch];
    saveInvstd[ch] = invstd;
    if (runningMean && runningVar) {
      const runVar = unbiased && count > 1 ? (v * count) / (count - 1) : v;
      runningMean[ch] = (1 - momentum) * runningMean[ch] + momentum * mean[ch];
      runningVar[ch] = (1 - momentum) * runningVar[ch] + momentum * runVar;
    }
    a[ch] = invstd * (weight ? weight[ch] : 1);
    b[ch] = bias ? bias[ch] : 0;
  }
  applyAffine(x, y, n, c, s, channelsLast, mean, a, b, postOps(residual, relu));
}

function forwardEval(
  async: boolean,
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  mean: FloatArray,
  variance: FloatArray,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  eps: number,
  residual: FloatArray | null = null,
  relu = false,
): void {
  checkForwardEvalArgs(async, x, y, weight, bias, mean, variance, n, c, s, channelsLast, eps, residual, relu);

  const a = new Float64Array(c),
    b = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    a[ch] = (weight ? weight[ch] : 1) / Math.sqrt(variance[ch] + eps);
    b[ch] = bias ? bias[ch] : 0;
  }
  applyAffine(x, y, n, c, s, channelsLast, mean, a, b, postOps(residual, relu));
}

function backward(
  async: boolean,
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray | null,
  weight: FloatArray | null,
  mean: FloatArray,
  invstd: FloatArray,
  gradWeight: FloatArray | null,
  gradBias: FloatArray | null,
  n: number,
  c: number,
  s: number,
  channelsLast: boolean,
  useBatchStats: boolean,
  output: FloatArray | null = null,
  gradResidual: FloatArray | null = null,
): void {
  checkBackwardArgs(async, x, dy, dx, weight, mean, invstd, gradWeight, gradBias, n, c, s, channelsLast, useBatchStats, output, gradResidual);

  // Per channel: sdy = Σdy, sdyx = Σdy·(x − mean); with a fused ReLU, dy' = output > 0 ? dy : 0 throughout.
  const sdy = new Float64Array(c),
    sdyx = new Float64Array(c);
  gradSums(x, dy, mean, sdy, sdyx, n, c, s, channelsLast, output);

  // dx = dy·k1 + (x − mean)·k2 + k3, with k2 = k3 = 0 for frozen statistics
  // (the mean taken off x first, as in applyAffine).
  const count = n * s;
  const k1 = new Float64Array(c),
    k2 = new Float64Array(c),
    k3 = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    const is = invstd[ch],
      gw = is * sdyx[ch];
    if (gradWeight) gradWeight[ch] = gw;
    if (gradBias) gradBias[ch] = sdy[ch];
    k1[ch] = (weight ? weight[ch] : 1) * is;
    if (useBatchStats) {
      k2[ch] = (-k1[ch] * is * gw) / count;
      k3[ch] = (-k1[ch] * sdy[ch]) / count;
    }
  }
  if (!dx) {
    if (output && gradResidual) for (let i = 0; i < lengthOf(dy); i++) gradResidual[i] = output[i] > 0 ? dy[i] : 0;
    return;
  }
  if (!useBatchStats) {
    // k2 is all zeros here: dx = dy·k1
    applyAffine(dy, dx, n, c, s, channelsLast, k2, k1, k3, output ? { residual: null, relu: false, gate: output, gateOut: gradResidual } : null);
    return;
  }
  gradInput(x, dy, dx, mean, k1, k2, k3, n, c, s, channelsLast, output, gradResidual);
}

export const jsKernels: Kernels = {
  forwardTraining: syncForm(forwardTraining),
  forwardEval: syncForm(forwardEval),
  backward: syncForm(backward),
  forwardTrainingAsync: deferredForm(forwardTraining),
  forwardEvalAsync: deferredForm(forwardEval),
  backwardAsync: deferredForm(backward),
  ...jsNormKernels,
};
