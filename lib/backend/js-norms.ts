/**
 * The pure-JavaScript kernels of the group-statistics norms (see
 * norm-kernels.ts): LayerNorm, RMSNorm and GroupNorm, NCHW and channels-last.
 * Written as fast as plain JS allows: statistics in float64, two passes with
 * the second correcting the first's mean (so a constant group's mean is its
 * value exactly, and x − mean is exactly 0), per-channel coefficients
 * precomputed, one multiply-add per element in the elementwise passes.
 */
import type { FloatArray } from './kernels.js';
import type { NormKernels } from './norm-kernels.js';
import { checkGroupNormBackwardArgs, checkGroupNormForwardArgs, deferredForm, syncForm } from './validate.js';

interface GroupShape {
  n: number;
  c: number;
  s: number;
  groups: number;
  cg: number;
  channelsLast: boolean;
  numel: number;
}

function groupShape(n: number, c: number, s: number, groups: number, channelsLast: boolean, numel: number): GroupShape {
  return { n, c, s, channelsLast, numel, groups, cg: c / groups };
}

/**
 * Mean and invstd of the contiguous row x[base, base + m): the first pass's
 * mean, corrected by the second's Σ(x − mean0) (exact for a constant row,
 * where the correction lands the mean on the value itself).
 */
function rowStats(x: FloatArray, base: number, m: number, eps: number, rms: boolean, out: Float64Array): void {
  const end = base + m;
  if (rms) {
    let q = 0;
    for (let i = base; i < end; i++) q += x[i] * x[i];
    out[0] = 0;
    out[1] = 1 / Math.sqrt(q / m + eps);
    return;
  }
  let sum = 0;
  for (let i = base; i < end; i++) sum += x[i];
  const m0 = sum / m;
  let sd = 0,
    sd2 = 0;
  for (let i = base; i < end; i++) {
    const d = x[i] - m0;
    sd += d;
    sd2 += d * d;
  }
  const m2 = Math.max(sd2 - (sd * sd) / m, 0);
  out[0] = Number.isFinite(sd) ? m0 + sd / m : m0; // a non-finite row keeps Σx/m
  out[1] = 1 / Math.sqrt(m2 / m + eps);
}

function groupNormForward(
  async: boolean,
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  n: number,
  c: number,
  s: number,
  groups: number,
  channelsLast: boolean,
  eps: number,
  rms: boolean,
): void {
  const d = groupShape(
    n,
    c,
    s,
    groups,
    channelsLast,
    checkGroupNormForwardArgs(async, x, y, weight, bias, saveMean, saveInvstd, n, c, s, groups, channelsLast, eps, rms),
  );
  if (d.channelsLast && d.s > 1) forwardChannelsLast(x, y, weight, bias, saveMean, saveInvstd, d, eps, rms);
  else forwardRows(x, y, weight, bias, saveMean, saveInvstd, d, eps, rms);
}

/** NCHW (and channels-last with s = 1, the same memory): a group is a row of cg·s values. */
function forwardRows(
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  d: GroupShape,
  eps: number,
  rms: boolean,
): void {
  const { n, groups, cg, s } = d,
    m = cg * s,
    st = new Float64Array(2);
  for (let row = 0; row < n * groups; row++) {
    const base = row * m,
      g = row % groups;
    rowStats(x, base, m, eps, rms, st);
    const mean = st[0],
      invstd = st[1];
    saveMean[row] = mean;
    saveInvstd[row] = invstd;
    if (s === 1) {
      // y = (x − mean)·invstd·w[ch] + b[ch], a channel per value (LayerNorm)
      const ch0 = g * cg;
      if (weight && bias) for (let k = 0; k < m; k++) y[base + k] = (x[base + k] - mean) * invstd * weight[ch0 + k] + bias[ch0 + k];
      else if (weight) for (let k = 0; k < m; k++) y[base + k] = (x[base + k] - mean) * invstd * weight[ch0 + k];
      else if (bias) for (let k = 0; k < m; k++) y[base + k] = (x[base + k] - mean) * invstd + bias[ch0 + k];
      else for (let k = base, e = base + m; k < e; k++) y[k] = (x[k] - mean) * invstd;
      continue;
    }
    // y = (x − mean)·a + b per channel run of s values, a = invstd·w[ch]
    for (let k = 0; k < cg; k++) {
      const ch = g * cg + k,
        a = invstd * (weight ? weight[ch] : 1),
        b = bias ? bias[ch] : 0;
      for (let i = base + k * s, e = i + s; i < e; i++) y[i] = (x[i] - mean) * a + b;
    }
  }
}

/**
 * Channels-last: a sample is s rows of c values; a group is a column block of
 * cg channels across its rows. Per-channel sums first (memory order), then
 * added up per group.
 */
function forwardChannelsLast(
  x: FloatArray,
  y: FloatArray,
  weight: FloatArray | null,
  bias: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  d: GroupShape,
  eps: number,
  rms: boolean,
): void {
  const { n, c, s, groups, cg } = d,
    m = cg * s;
  const acc = new Float64Array(c),
    acc2 = new Float64Array(c),
    meanC = new Float64Array(c),
    a = new Float64Array(c),
    b = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    const base = i * s * c;
    if (!rms) {
      acc.fill(0);
      for (let j = 0, p = base; j < s; j++) for (let ch = 0; ch < c; ch++, p++) acc[ch] += x[p];
      for (let g = 0; g < groups; g++) {
        let sum = 0;
        for (let k = g * cg; k < (g + 1) * cg; k++) sum += acc[k];
        meanC.fill(sum / m, g * cg, (g + 1) * cg);
      }
    }
    acc.fill(0);
    acc2.fill(0);
    for (let j = 0, p = base; j < s; j++) {
      for (let ch = 0; ch < c; ch++, p++) {
        const v = x[p] - meanC[ch];
        acc[ch] += v;
        acc2[ch] += v * v;
      }
    }
    for (let g = 0; g < groups; g++) {
      let sd = 0,
        sd2 = 0;
      for (let k = g * cg; k < (g + 1) * cg; k++) ((sd += acc[k]), (sd2 += acc2[k]));
      const mean = rms ? 0 : Number.isFinite(sd) ? meanC[g * cg] + sd / m : meanC[g * cg];
      const invstd = rms ? 1 / Math.sqrt(sd2 / m + eps) : 1 / Math.sqrt(Math.max(sd2 - (sd * sd) / m, 0) / m + eps);
      saveMean[i * groups + g] = mean;
      saveInvstd[i * groups + g] = invstd;
      for (let k = g * cg; k < (g + 1) * cg; k++) {
        meanC[k] = mean;
        a[k] = invstd * (weight ? weight[k] : 1);
        b[k] = bias ? bias[k] : 0;
      }
    }
    // y = (x − mean)·a[ch] + b[ch]
    for (let j = 0, p = base; j < s; j++) for (let ch = 0; ch < c; ch++, p++) y[p] = (x[p] - meanC[ch]) * a[ch] + b[ch];
    if (rms) meanC.fill(0);
  }
}

function groupNormBackward(
  async: boolean,
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray | null,
  weight: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  gradWeight: FloatArray | null,
  gradBias: FloatArray | null,
  n: number,
  c: number,
  s: number,
  groups: number,
  channelsLast: boolean,
  rms: boolean,
): void {
  const d = groupShape(
    n,
    c,
    s,
    groups,
    channelsLast,
    checkGroupNormBackwardArgs(async, x, dy, dx, weight, saveMean, saveInvstd, gradWeight, gradBias, n, c, s, groups, channelsLast, rms),
  );
  const gw = new Float64Array(d.c),
    gb = new Float64Array(d.c);
  if (d.channelsLast && d.s > 1) backwardChannelsLast(x, dy, dx, weight, saveMean, saveInvstd, gw, gb, d, rms);
  else if (d.s === 1) backwardRows(x, dy, dx, weight, saveMean, saveInvstd, gw, gb, d, rms);
  else backwardPlanes(x, dy, dx, weight, saveMean, saveInvstd, gw, gb, d, rms);
  if (gradWeight) for (let ch = 0; ch < d.c; ch++) gradWeight[ch] = gw[ch];
  if (gradBias) for (let ch = 0; ch < d.c; ch++) gradBias[ch] = gb[ch];
}

/**
 * A group of m values with sums G1 = Σ w·dy and G2 = Σ w·dy·(x − mean):
 * dx = dy·invstd·w[ch] + (x − mean)·k2 + k3, k2 = −invstd³·G2/m,
 * k3 = −invstd·G1/m (0 for rms).
 */
function k2Of(invstd: number, g2: number, m: number): number {
  return (-invstd * invstd * invstd * g2) / m;
}

/** One value per channel (LayerNorm, RMSNorm): a row of cg values, a weight each. */
function backwardRows(
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray | null,
  weight: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  gw: Float64Array,
  gb: Float64Array,
  d: GroupShape,
  rms: boolean,
): void {
  const { n, groups, cg: m } = d;
  for (let row = 0; row < n * groups; row++) {
    const base = row * m,
      ch0 = (row % groups) * m,
      mean = saveMean[row],
      invstd = saveInvstd[row];
    let g1 = 0,
      g2 = 0;
    for (let k = 0; k < m; k++) {
      const e = dy[base + k],
        xc = x[base + k] - mean,
        w = weight ? weight[ch0 + k] : 1;
      gb[ch0 + k] += e;
      gw[ch0 + k] += e * xc * invstd;
      g1 += w * e;
      g2 += w * e * xc;
    }
    if (!dx) continue;
    const k2 = k2Of(invstd, g2, m),
      k3 = rms ? 0 : (-invstd * g1) / m;
    if (weight) for (let k = 0; k < m; k++) dx[base + k] = dy[base + k] * invstd * weight[ch0 + k] + (x[base + k] - mean) * k2 + k3;
    else for (let k = base, e = base + m; k < e; k++) dx[k] = dy[k] * invstd + (x[k] - mean) * k2 + k3;
  }
}

/** NCHW with planes of s values: per (sample, channel) sums over the plane, then per group. */
function backwardPlanes(
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray | null,
  weight: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  gw: Float64Array,
  gb: Float64Array,
  d: GroupShape,
  rms: boolean,
): void {
  const { n, groups, cg, s } = d,
    m = cg * s;
  for (let row = 0; row < n * groups; row++) {
    const base = row * m,
      ch0 = (row % groups) * cg,
      mean = saveMean[row],
      invstd = saveInvstd[row];
    let g1 = 0,
      g2 = 0;
    for (let k = 0; k < cg; k++) {
      let a = 0,
        b = 0;
      for (let i = base + k * s, e = i + s; i < e; i++) {
        const v = dy[i];
        a += v;
        b += v * (x[i] - mean);
      }
      const w = weight ? weight[ch0 + k] : 1;
      gb[ch0 + k] += a;
      gw[ch0 + k] += b * invstd;
      g1 += w * a;
      g2 += w * b;
    }
    if (!dx) continue;
    const k2 = k2Of(invstd, g2, m),
      k3 = rms ? 0 : (-invstd * g1) / m;
    for (let k = 0; k < cg; k++) {
      const k1 = invstd * (weight ? weight[ch0 + k] : 1);
      for (let i = base + k * s, e = i + s; i < e; i++) dx[i] = dy[i] * k1 + (x[i] - mean) * k2 + k3;
    }
  }
}

function backwardChannelsLast(
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray | null,
  weight: FloatArray | null,
  saveMean: FloatArray,
  saveInvstd: FloatArray,
  gw: Float64Array,
  gb: Float64Array,
  d: GroupShape,
  rms: boolean,
): void {
  const { n, c, s, groups, cg } = d,
    m = cg * s;
  const a = new Float64Array(c),
    b = new Float64Array(c),
    meanC = new Float64Array(c),
    k1 = new Float64Array(c),
    k2 = new Float64Array(c),
    k3 = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    const base = i * s * c;
    for (let g = 0; g < groups; g++) meanC.fill(saveMean[i * groups + g], g * cg, (g + 1) * cg);
    a.fill(0);
    b.fill(0);
    for (let j = 0, p = base; j < s; j++) {
      for (let ch = 0; ch < c; ch++, p++) {
        const v = dy[p];
        a[ch] += v;
        b[ch] += v * (x[p] - meanC[ch]);
      }
    }
    for (let g = 0; g < groups; g++) {
      const invstd = saveInvstd[i * groups + g];
      let g1 = 0,
        g2 = 0;
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
        const w = weight ? weight[ch] : 1;
        gb[ch] += a[ch];
        gw[ch] += b[ch] * invstd;
        g1 += w * a[ch];
        g2 += w * b[ch];
      }
      const kk2 = k2Of(invstd, g2, m),
        kk3 = rms ? 0 : (-invstd * g1) / m;
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
        k1[ch] = invstd * (weight ? weight[ch] : 1);
        k2[ch] = kk2;
        k3[ch] = kk3;
      }
    }
    if (!dx) continue;
    for (let j = 0, p = base; j < s; j++) for (let ch = 0; ch < c; ch++, p++) dx[p] = dy[p] * k1[ch] + (x[p] - meanC[ch]) * k2[ch] + k3[ch];
  }
}

export const jsNormKernels: NormKernels = {
  groupNormForward: syncForm(groupNormForward),
  groupNormBackward: syncForm(groupNormBackward),
  groupNormForwardAsync: deferredForm(groupNormForward),
  groupNormBackwardAsync: deferredForm(groupNormBackward),
};
