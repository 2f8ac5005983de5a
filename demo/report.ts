/**
 * The demo's report: one self-contained HTML file with inline SVG charts (no
 * scripts, fonts or anything else fetched), and the terminal summary table.
 */
import type { BackendTiming, TimingResult } from './timing.js';
import type { Pitfall, RunResult, Watch } from './experiments.js';
import type { Shift, StartScale } from './lessons.js';
import type { Dashboard } from './monitoring.js';
import type { LstmExperiment } from './lstm.js';
import type { NormKey } from './norms.js';
import * as normsReport from './norms-report.js';
import * as lessonsReport from './lessons-report.js';
import { EXPERIMENTS } from './catalog.js';
import { COLORS, esc, ms, num, pct } from './format.js';
import * as prose from './prose.js';

// ---------------------------------------------------------------- summary types

export interface RunSummary {
  label: string;
  batchNorm: boolean;
  lr: number;
  finalAccuracy: number;
  epochAccuracy: number[];
  epochLoss: number[];
  diverged: boolean;
  divergedAtStep: number | null;
  peakLoss: number;
  ms: number;
}

export interface Summary {
  data: { name: string; source: string; trainSize: number; testSize: number; features: number; classes: number };
  config: { seed: number; epochs: number; batchSize: number; optimizer: 'sgd' | 'adam'; lr: number; sweep: number[]; quick: boolean; only: number[] };
  backend: { backend: string; isa: string; threads: number; version: string };
  /** Experiment 1: the same learning rate (config.lr) with and without BatchNorm (null when not run, as every experiment). */
  comparison: {
    lr: number;
    batchNorm: RunSummary;
    plain: RunSummary;
    /** Test accuracy after each epoch of the same pair trained from other seeds (the band); [] when none. */
    seeds: Array<{ seed: number; batchNorm: number[]; plain: number[] }>;
  } | null;
  /** Experiment 2: the learning-rate sweep. */
  sweep: Array<{ lr: number; batchNorm: RunSummary; plain: RunSummary }> | null;
  /** Experiment 3: train mode vs eval mode at test time. */
  pitfall: Pitfall | null;
  /** Experiment 4: running statistics of a few channels of the first BatchNorm1d. */
  runningStats: { channels: number[]; steps: number; finalMean: number[]; finalVar: number[] } | null;
  /** Experiment 5: time per epoch on each backend (null when skipped). */
  timing: { native: BackendTiming; js: BackendTiming } | null;
  /** Experiment 6: the small CNN with and without BatchNorm (null when skipped). */
  cnn: { description: string; runs: Array<{ lr: number; batchNorm: RunSummary; plain: RunSummary }> } | null;
  /** Experiments 7 to 12. */
  lessons: LessonsSummary;
  reportPath: string;
  seconds: number;
}

export interface LessonsSummary {
  /** Experiment 7: every initial weight ×0.1 and ×10. */
  init: { scales: number[]; runs: Array<{ scale: number; batchNorm: RunSummary; plain: RunSummary }> } | null;
  /** Experiments 8 and 10: the 10-layer MLP. */
  depth: {
    hidden: number[];
    initScale: number;
    startScale: StartScale[];
    batchNorm: RunSummary;
    plain: RunSummary;
    stepLoss: { batchNorm: number[]; plain: number[] };
    stepsPerEpoch: number;
    steps: number[];
    gradients: { batchNorm: number[][]; plain: number[][] };
  } | null;
  /** Experiment 9: quantiles of one unit's pre-activations in the runs of experiment 1. */
  shift: { batchNorm: Shift; plain: Shift; stepsPerEpoch: number } | null;
  /** Experiment 11: where BatchNorm goes in the CNN. */
  placement: { before: RunSummary; after: RunSummary; plain: RunSummary } | null;
  /** Experiment 12: BatchNorm, dropout, both, neither. */
  dropout: Array<{ name: string; batchNorm: boolean; dropout: number; trainAccuracy: number; run: RunSummary }> | null;
  /** Experiment 13: BatchNorm, GroupNorm and LayerNorm at each batch size. */
  norms: {
    batchSizes: number[];
    epochs: number;
    trainSize: number;
    lr: number;
    runs: Array<{ norm: NormKey; batchSize: number; lr: number; run: RunSummary }>;
  } | null;
  /** Experiment 14: the row-by-row LSTM with per-step BatchNorm, LayerNorm, and none. */
  lstm: LstmExperiment | null;
  /** Experiment 15: the monitor's records of the BatchNorm layers of experiment 1's run. */
  monitor: (Dashboard & { stepsPerEpoch: number }) | null;
}

export interface ReportInput {
  summary: Summary;
  comparison: { batchNorm: RunResult; plain: RunResult } | null;
  watch: Watch | null;
  commandLine: string;
}

export function summarizeRun(r: RunResult): RunSummary {
  return {
    label: r.label,
    batchNorm: r.batchNorm,
    lr: r.lr,
    finalAccuracy: r.finalAccuracy,
    epochAccuracy: r.epochAccuracy,
    epochLoss: r.epochLoss,
    diverged: r.diverged,
    divergedAtStep: r.divergedAtStep,
    peakLoss: r.peakLoss,
    ms: r.ms,
  };
}

// ---------------------------------------------------------------- charts

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
  dash?: string;
  width?: number;
  opacity?: number;
  markers?: boolean;
  /** Leave out of the legend. */
  hideLegend?: boolean;
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  xLog?: boolean;
  yLog?: boolean;
  xDomain?: [number, number];
  yDomain?: [number, number];
  xTicks?: number[];
  yTicks?: number[];
  xFormat?: (v: number) => string;
  yFormat?: (v: number) => string;
  /** Text placed at data coordinates. */
  notes?: Array<{ x: number; y: number; text: string; color: string; anchor?: 'start' | 'middle' | 'end'; dy?: number }>;
  /** Shaded areas between lo and hi at each x, drawn under the lines (e.g. the range over seeds). */
  bands?: Array<{ color: string; points: Array<[number, number, number]> }>;
  /** Crosses drawn at data coordinates (e.g. diverged runs). */
  crosses?: Array<{ x: number; y: number; color: string; label: string }>;
}

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

function linearTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, count);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  const decades = Math.log10(hi / lo);
  const mults = decades <= 2 ? [1, 2, 5] : [1];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of mults) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(Number(v.toPrecision(12)));
    }
  return out;
}

function extent(values: number[], log: boolean): [number, number] {
  const v = values.filter((x) => Number.isFinite(x) && (!log || x > 0));
  if (v.length === 0) return log ? [0.1, 1] : [0, 1];
  let lo = Math.min(...v),
    hi = Math.max(...v);
  if (lo === hi) {
    if (log) {
      lo /= 2;
      hi *= 2;
    } else {
      lo -= Math.abs(lo) * 0.1 || 1;
      hi += Math.abs(hi) * 0.1 || 1;
    }
  }
  return [lo, hi];
}

function renderPanel(p: Panel, x0: number, y0: number, w: number, h: number): string {
  const m = { left: 58, right: 14, top: 34, bottom: 70 };
  const pw = w - m.left - m.right,
    ph = h - m.top - m.bottom;
  // The bands count too: a band wider than its line must not be clipped.
  const all = [
    ...p.series.flatMap((s) => s.points),
    ...(p.bands ?? []).flatMap((b) => b.points.flatMap(([x, lo, hi]) => [[x, lo] as [number, number], [x, hi] as [number, number]])),
  ];
  const [xl, xh] =
    p.xDomain ??
    extent(
      all.map((q) => q[0]),
      !!p.xLog,
    );
  let [yl, yh] =
    p.yDomain ??
    extent(
      all.map((q) => q[1]),
      !!p.yLog,
    );
  if (!p.yDomain && !p.yLog) {
    const pad = (yh - yl) * 0.05;
    yl -= pad;
    yh += pad;
  }
  const tx = (v: number): number => (p.xLog ? (Math.log(v) - Math.log(xl)) / (Math.log(xh) - Math.log(xl)) : (v - xl) / (xh - xl));
  const ty = (v: number): number => (p.yLog ? (Math.log(v) - Math.log(yl)) / (Math.log(yh) - Math.log(yl)) : (v - yl) / (yh - yl));
  const clamp = (t: number): number => Math.max(0, Math.min(1, t));
  const X = (v: number): number => x0 + m.left + clamp(tx(v)) * pw;
  const Y = (v: number): number => y0 + m.top + (1 - clamp(ty(v))) * ph;
  const f = (v: number): string => v.toFixed(1);
  const xf = p.xFormat ?? ((v: number) => num(v));
  const yf = p.yFormat ?? ((v: number) => num(v));
  const out: string[] = [];
  out.push(`<text x="${f(x0 + m.left)}" y="${f(y0 + 20)}" class="pt">${esc(p.title)}</text>`);
  out.push(`<rect x="${f(x0 + m.left)}" y="${f(y0 + m.top)}" width="${f(pw)}" height="${f(ph)}" class="frame"/>`);
  const yTicks = p.yTicks ?? (p.yLog ? logTicks(yl, yh) : linearTicks(yl, yh));
  for (const t of yTicks) {
    if (t < yl - 1e-12 || t > yh + 1e-12) continue;
    out.push(`<line x1="${f(x0 + m.left)}" x2="${f(x0 + m.left + pw)}" y1="${f(Y(t))}" y2="${f(Y(t))}" class="grid"/>`);
    out.push(`<text x="${f(x0 + m.left - 6)}" y="${f(Y(t) + 4)}" class="tick" text-anchor="end">${esc(yf(t))}</text>`);
  }
  const xTicks = p.xTicks ?? (p.xLog ? logTicks(xl, xh) : linearTicks(xl, xh));
  for (const t of xTicks) {
    if (t < xl - 1e-12 || t > xh + 1e-12) continue;
    out.push(`<line y1="${f(y0 + m.top)}" y2="${f(y0 + m.top + ph)}" x1="${f(X(t))}" x2="${f(X(t))}" class="grid"/>`);
    out.push(`<text x="${f(X(t))}" y="${f(y0 + m.top + ph + 16)}" class="tick" text-anchor="middle">${esc(xf(t))}</text>`);
  }
  out.push(`<text x="${f(x0 + m.left + pw / 2)}" y="${f(y0 + m.top + ph + 34)}" class="axis" text-anchor="middle">${esc(p.xLabel)}</text>`);
  out.push(`<text transform="translate(${f(x0 + 14)} ${f(y0 + m.top + ph / 2)}) rotate(-90)" class="axis" text-anchor="middle">${esc(p.yLabel)}</text>`);
  for (const b of p.bands ?? []) {
    const pts = b.points.filter(([x, lo, hi]) => [x, lo, hi].every(Number.isFinite));
    if (pts.length < 2) continue;
    const upper = pts.map(([x, , hi]) => `${f(X(x))} ${f(Y(hi))}`);
    const lower = pts.map(([x, lo]) => `${f(X(x))} ${f(Y(lo))}`).reverse();
    out.push(`<path d="M${[...upper, ...lower].join('L')}Z" fill="${b.color}" fill-opacity="0.15" stroke="none"/>`);
  }
  for (const s of p.series) {
    let d = '';
    let pen = false;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y) || (p.yLog && y <= 0) || (p.xLog && x <= 0)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${f(X(x))} ${f(Y(y))}`;
      pen = true;
    }
    const attrs = `stroke="${s.color}" stroke-width="${s.width ?? 2}"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}${s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ''}`;
    if (d) out.push(`<path d="${d}" fill="none" ${attrs} stroke-linejoin="round"><title>${esc(s.name)}</title></path>`);
    if (s.markers)
      for (const [x, y] of s.points)
        if (Number.isFinite(x) && Number.isFinite(y))
          out.push(`<circle cx="${f(X(x))}" cy="${f(Y(y))}" r="3.5" fill="${s.color}"><title>${esc(`${s.name}: ${xf(x)} → ${yf(y)}`)}</title></circle>`);
  }
  for (const c of p.crosses ?? []) {
    const cx = X(c.x),
      cy = Y(c.y),
      r = 6;
    out.push(
      `<path d="M${f(cx - r)} ${f(cy - r)}L${f(cx + r)} ${f(cy + r)}M${f(cx - r)} ${f(cy + r)}L${f(cx + r)} ${f(cy - r)}" stroke="${c.color}" stroke-width="2.5"><title>${esc(c.label)}</title></path>`,
    );
  }
  for (const n of p.notes ?? [])
    out.push(
      `<text x="${f(X(n.x))}" y="${f(Y(n.y) + (n.dy ?? 0))}" class="note" fill="${n.color}" text-anchor="${n.anchor ?? 'middle'}">${esc(n.text)}</text>`,
    );
  // Legend under the axis label.
  let lx = x0 + m.left;
  const ly = y0 + m.top + ph + 56;
  for (const s of p.series) {
    if (s.hideLegend) continue;
    out.push(
      `<line x1="${f(lx)}" x2="${f(lx + 18)}" y1="${f(ly - 4)}" y2="${f(ly - 4)}" stroke="${s.color}" stroke-width="3"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    out.push(`<text x="${f(lx + 23)}" y="${f(ly)}" class="legend">${esc(s.name)}</text>`);
    lx += 23 + s.name.length * 6.6 + 16;
  }
  return out.join('\n');
}

const STYLE = `<style>.pt{font:600 13px system-ui,sans-serif;fill:#111}.tick{font:11px system-ui,sans-serif;fill:#555}.axis{font:12px system-ui,sans-serif;fill:#333}.legend{font:12px system-ui,sans-serif;fill:#333}.note{font:600 11px system-ui,sans-serif}.frame{fill:#fff;stroke:#ccc}.grid{stroke:#eee}</style>`;

/**
 * An SVG with the panels side by side (or in rows of `columns`, each row
 * `height` high); `experiment` tags it for tests and readers.
 */
export function lineChart(panels: Panel[], o: { experiment: number; title: string; width?: number; height?: number; columns?: number }): string {
  const width = o.width ?? 1000,
    rowH = o.height ?? 360;
  const columns = o.columns ?? panels.length;
  const pw = width / columns;
  const height = rowH * Math.ceil(panels.length / columns);
  const body = panels.map((p, i) => renderPanel(p, (i % columns) * pw, Math.floor(i / columns) * rowH, pw, rowH)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${esc(o.title)}" data-experiment="${o.experiment}">${STYLE}\n${body}\n</svg>`;
}

/** Experiment 5's chart: per backend, the epoch (BatchNorm time | everything else), then the BatchNorm time alone. */
export function timingChart(t: { native: BackendTiming; js: BackendTiming }, experiment: number): string {
  const width = 1000,
    rowH = 46,
    left = 150,
    right = 260;
  const rows = [t.native, t.js];
  const f = (v: number): string => v.toFixed(1);
  const name = (r: BackendTiming): string => ((r.ok ? r.result.backend : r.backend) === 'native' ? 'native addon' : 'pure JS');
  const out: string[] = [];
  let y = 0;
  const group = (
    title: string,
    value: (r: TimingResult) => number,
    bar: (r: TimingResult, x: number, y: number, scale: number) => string,
    label: (r: TimingResult) => [string, string],
  ): void => {
    out.push(`<text x="${left}" y="${f(y + 22)}" class="pt">${esc(title)}</text>`);
    y += 34;
    const max = Math.max(1e-9, ...rows.map((r) => (r.ok ? value(r.result) : 0)));
    const scale = (width - left - right) / max;
    for (const r of rows) {
      out.push(`<text x="${left - 10}" y="${f(y + 22)}" class="axis" text-anchor="end">${name(r)}</text>`);
      if (!r.ok)
        out.push(
          `<text x="${left}" y="${f(y + 22)}" class="note" fill="#b45309">${esc(`not measured: ${r.reason.replace(/^BATCHNORM_BACKEND=\w+, but the /, '').slice(0, 110)}…`)}</text>`,
        );
      else {
        out.push(bar(r.result, left, y + 6, scale));
        const [a, b] = label(r.result);
        const end = left + value(r.result) * scale + 8;
        out.push(`<text x="${f(end)}" y="${f(y + 18)}" class="legend">${esc(a)}</text>`);
        out.push(`<text x="${f(end)}" y="${f(y + 33)}" class="tick">${esc(b)}</text>`);
      }
      y += rowH;
    }
  };
  group(
    'One training epoch of the BatchNorm MLP (lower is better)',
    (r) => r.epochMs,
    (r, x, yy, sc) =>
      `<rect x="${f(x)}" y="${f(yy)}" width="${f(r.bnMs * sc)}" height="26" fill="${COLORS.bn}"><title>BatchNorm forward + backward: ${ms(r.bnMs)}</title></rect>` +
      `<rect x="${f(x + r.bnMs * sc)}" y="${f(yy)}" width="${f(Math.max(0, r.epochMs - r.bnMs) * sc)}" height="26" fill="#cbd5e1"><title>Linear, ReLU, loss, optimizer: ${ms(r.epochMs - r.bnMs)}</title></rect>`,
    (r) => [`${ms(r.epochMs)} per epoch`, `${r.steps} steps · BatchNorm ${ms(r.bnMs)} of it`],
  );
  y += 10;
  group(
    'The BatchNorm1d calls alone: forward + backward over the same epoch (lower is better)',
    (r) => r.bnMs,
    (r, x, yy, sc) => `<rect x="${f(x)}" y="${f(yy)}" width="${f(r.bnMs * sc)}" height="26" fill="${COLORS.bn}"><title>${ms(r.bnMs)}</title></rect>`,
    (r) => [
      `${ms(r.bnMs)} (${((1000 * r.bnMs) / Math.max(1, r.bnCalls)).toFixed(1)} µs per call)`,
      `${r.isa}, ${r.threads} thread${r.threads === 1 ? '' : 's'}, ${r.bnCalls} calls`,
    ],
  );
  y += 18;
  out.push(
    `<rect x="${left}" y="${f(y - 11)}" width="14" height="14" fill="${COLORS.bn}"/><text x="${left + 20}" y="${f(y)}" class="legend">BatchNorm1d forward + backward (the package)</text>`,
  );
  out.push(
    `<rect x="${left + 330}" y="${f(y - 11)}" width="14" height="14" fill="#cbd5e1"/><text x="${left + 350}" y="${f(y)}" class="legend">Linear, ReLU, loss and optimizer (the demo's own TypeScript)</text>`,
  );
  const height = y + 14;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${f(height)}" width="100%" role="img" aria-label="Time per epoch, native vs pure JS" data-experiment="${experiment}">${STYLE}\n${out.join('\n')}\n</svg>`;
}

// ---------------------------------------------------------------- series helpers

/** Moving average over `window` steps, then at most `maxPoints` points; x is in epochs. */
export function smoothCurve(values: number[], stepsPerEpoch: number, window: number, maxPoints = 300): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const stride = Math.max(1, Math.ceil(values.length / maxPoints));
  let sum = 0;
  const q: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out.push([(i + 1) / stepsPerEpoch, NaN]);
      break;
    }
    q.push(v);
    sum += v;
    if (q.length > window) sum -= q.shift()!;
    if (i % stride === stride - 1 || i === values.length - 1) out.push([(i + 1) / stepsPerEpoch, sum / q.length]);
  }
  return out;
}

function strided(steps: number[], values: number[], stepsPerEpoch: number, maxPoints = 400): Array<[number, number]> {
  const stride = Math.max(1, Math.ceil(values.length / maxPoints));
  const out: Array<[number, number]> = [];
  for (let i = 0; i < values.length; i += stride) out.push([steps[i] / stepsPerEpoch, values[i]]);
  return out;
}

// ---------------------------------------------------------------- the charts of the five experiments

export function comparisonChart(input: ReportInput): string {
  const { batchNorm: bn, plain } = input.comparison!;
  const spe = bn.stepsPerEpoch;
  const window = Math.max(5, Math.round(spe / 5));
  const epochs = bn.epochAccuracy.length;
  const epochsAxis = Array.from({ length: epochs + 1 }, (_, i) => i).filter((e) => epochs <= 10 || e % Math.ceil(epochs / 10) === 0);
  const loss: Panel = {
    title: `Training loss (moving average of ${window} steps)`,
    xLabel: 'epoch',
    yLabel: 'cross-entropy (log scale)',
    yLog: true,
    xDomain: [0, epochs],
    xTicks: epochsAxis,
    series: [
      { name: 'with BatchNorm', color: COLORS.bn, points: smoothCurve(bn.stepLoss, spe, window) },
      { name: 'without BatchNorm', color: COLORS.plain, points: smoothCurve(plain.stepLoss, spe, window) },
    ],
  };
  const seeds = input.summary.comparison?.seeds ?? [];
  const band = (key: 'batchNorm' | 'plain', own: number[]): Array<[number, number, number]> =>
    own.map((a, i) => {
      const all = [a, ...seeds.map((r) => r[key][i])];
      return [i + 1, Math.min(...all), Math.max(...all)];
    });
  const acc: Panel = {
    title: seeds.length ? `Test accuracy, zoomed; bands: min–max of ${seeds.length + 1} seeds` : 'Test accuracy after each epoch (eval mode; zoomed axis)',
    bands: seeds.length
      ? [
          { color: COLORS.bn, points: band('batchNorm', bn.epochAccuracy) },
          { color: COLORS.plain, points: band('plain', plain.epochAccuracy) },
        ]
      : undefined,
    xLabel: 'epoch',
    yLabel: 'accuracy',
    xDomain: [1, Math.max(2, epochs)],
    xTicks: Array.from({ length: epochs }, (_, i) => i + 1).filter((e) => epochs <= 10 || e % Math.ceil(epochs / 10) === 0),
    yFormat: (v) => `${Math.round(v * 100)}%`,
    series: [
      { name: 'with BatchNorm', color: COLORS.bn, markers: true, points: bn.epochAccuracy.map((a, i) => [i + 1, a]) },
      { name: 'without BatchNorm', color: COLORS.plain, markers: true, points: plain.epochAccuracy.map((a, i) => [i + 1, a]) },
    ],
  };
  return lineChart([loss, acc], { experiment: 1, title: 'With vs without BatchNorm at the same learning rate' });
}

export function sweepChart(s: Summary): string {
  const sweep = s.sweep!;
  const lrs = sweep.map((r) => r.lr);
  const crosses = sweep.flatMap((r) =>
    (
      [
        ['batchNorm', COLORS.bn, 'with BatchNorm'],
        ['plain', COLORS.plain, 'without BatchNorm'],
      ] as const
    )
      .filter(([k]) => r[k].diverged)
      .map(([k, color, name]) => ({ x: r.lr, y: r[k].finalAccuracy, color, label: `${name} at lr ${r.lr}: diverged (${pct(r[k].finalAccuracy)})` })),
  );
  const chance = 1 / s.data.classes;
  const panel: Panel = {
    title: `Final test accuracy after ${s.config.epochs} epoch${s.config.epochs === 1 ? '' : 's'} (× = diverged)`,
    xLabel: `learning rate (${s.config.optimizer === 'adam' ? 'Adam' : 'SGD, momentum 0.9'}; log scale)`,
    yLabel: 'test accuracy',
    xLog: true,
    xTicks: lrs,
    xDomain: [Math.min(...lrs) / 1.5, Math.max(...lrs) * 1.5],
    yDomain: [0, 1],
    yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1],
    yFormat: (v) => `${Math.round(v * 100)}%`,
    series: [
      { name: 'with BatchNorm', color: COLORS.bn, markers: true, points: sweep.map((r) => [r.lr, r.batchNorm.finalAccuracy]) },
      { name: 'without BatchNorm', color: COLORS.plain, markers: true, points: sweep.map((r) => [r.lr, r.plain.finalAccuracy]) },
      {
        name: `chance (${pct(chance)})`,
        color: '#9ca3af',
        dash: '4 4',
        width: 1.5,
        points: [
          [Math.min(...lrs) / 1.5, chance],
          [Math.max(...lrs) * 1.5, chance],
        ],
      },
    ],
    crosses,
    notes: sweep.flatMap((r) => [
      { x: r.lr, y: r.batchNorm.finalAccuracy, text: pct(r.batchNorm.finalAccuracy), color: COLORS.bn, dy: -10 },
      { x: r.lr, y: r.plain.finalAccuracy, text: pct(r.plain.finalAccuracy), color: COLORS.plain, dy: r.plain.finalAccuracy < 0.2 ? -12 : 18 },
    ]),
  };
  return lineChart([panel], { experiment: 2, title: 'Learning-rate sweep', width: 1000, height: 380 });
}

export function pitfallChart(s: Summary): string {
  const p = s.pitfall!;
  const sizes = p.trainMode.map((t) => t.batchSize);
  const lo = Math.min(...sizes),
    hi = Math.max(...sizes);
  const panel: Panel = {
    title: 'Test accuracy of the trained BatchNorm model, by test batch size',
    xLabel: 'test batch size (log scale)',
    yLabel: 'test accuracy',
    xLog: true,
    xTicks: sizes,
    xDomain: [lo / 1.3, hi * 1.3],
    yDomain: [0, 1],
    yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1],
    yFormat: (v) => `${Math.round(v * 100)}%`,
    series: [
      {
        name: 'eval mode: running statistics (model.eval())',
        color: COLORS.eval,
        width: 2.5,
        points: [
          [lo / 1.3, p.evalAccuracy],
          [hi * 1.3, p.evalAccuracy],
        ],
      },
      {
        name: 'left in train mode: statistics of each test batch',
        color: COLORS.plain,
        markers: true,
        points: p.trainMode.map((t) => [t.batchSize, t.accuracy]),
      },
    ],
    notes: [
      ...p.trainMode.map((t) => ({ x: t.batchSize, y: t.accuracy, text: pct(t.accuracy), color: COLORS.plain, dy: 18 })),
      { x: hi, y: p.evalAccuracy, text: pct(p.evalAccuracy), color: COLORS.eval, dy: -8, anchor: 'end' as const },
    ],
  };
  return lineChart([panel], { experiment: 3, title: 'Train mode vs eval mode at test time', width: 1000, height: 380 });
}

export function runningStatsChart(input: ReportInput): string {
  const w = input.watch!;
  const spe = input.comparison!.batchNorm.stepsPerEpoch;
  const epochs = input.comparison!.batchNorm.epochAccuracy.length;
  const mk = (key: 'runningMean' | 'runningVar', batchKey: 'batchMean' | 'batchVar'): Series[] =>
    w.channels.flatMap((c, i) => [
      {
        name: `batch, ch ${c}`,
        color: COLORS.channels[i % COLORS.channels.length],
        width: 1,
        opacity: 0.3,
        hideLegend: true,
        points: strided(w.steps, w[batchKey][i], spe),
      },
      { name: `channel ${c}`, color: COLORS.channels[i % COLORS.channels.length], width: 2.2, points: strided(w.steps, w[key][i], spe) },
    ]);
  const xTicks = Array.from({ length: epochs + 1 }, (_, i) => i).filter((e) => epochs <= 10 || e % Math.ceil(epochs / 10) === 0);
  return lineChart(
    [
      {
        title: 'running_mean (bold) and each batch’s mean (faint)',
        xLabel: 'epoch',
        yLabel: 'mean',
        xDomain: [0, epochs],
        xTicks,
        series: mk('runningMean', 'batchMean'),
      },
      {
        title: 'running_var (bold) and each batch’s variance (faint)',
        xLabel: 'epoch',
        yLabel: 'variance',
        xDomain: [0, epochs],
        xTicks,
        series: mk('runningVar', 'batchVar'),
      },
    ],
    { experiment: 4, title: 'Running statistics during training' },
  );
}

export function cnnChart(s: Summary): string {
  const runs = s.cnn!.runs;
  const epochs = s.config.epochs;
  const xTicks = Array.from({ length: epochs }, (_, i) => i + 1).filter((e) => epochs <= 10 || e % Math.ceil(epochs / 10) === 0);
  const panels: Panel[] = runs.map((r) => ({
    title: `lr ${r.lr}: test accuracy after each epoch`,
    xLabel: 'epoch',
    yLabel: 'test accuracy',
    xDomain: [1, Math.max(2, epochs)],
    xTicks,
    yDomain: [0, 1],
    yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1],
    yFormat: (v: number) => `${Math.round(v * 100)}%`,
    series: [
      { name: 'with BatchNorm', color: COLORS.bn, markers: true, points: r.batchNorm.epochAccuracy.map((a, i) => [i + 1, a] as [number, number]) },
      { name: 'without BatchNorm', color: COLORS.plain, markers: true, points: r.plain.epochAccuracy.map((a, i) => [i + 1, a] as [number, number]) },
    ],
    notes: [
      { x: epochs, y: r.batchNorm.finalAccuracy, text: pct(r.batchNorm.finalAccuracy), color: COLORS.bn, dy: -10, anchor: 'end' as const },
      {
        x: epochs,
        y: r.plain.finalAccuracy,
        text: pct(r.plain.finalAccuracy),
        color: COLORS.plain,
        dy: r.plain.finalAccuracy < r.batchNorm.finalAccuracy ? 18 : -10,
        anchor: 'end' as const,
      },
    ],
  }));
  return lineChart(panels, { experiment: 6, title: 'A small CNN with and without BatchNorm2d' });
}

// ---------------------------------------------------------------- the page

function table(headers: string[], rows: string[][]): string {
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

/** A section of the page: its anchor is experiment-N, as the table of contents links it. */
function section(n: number, body: string): string {
  return `<section id="experiment-${n}">\n${body}\n</section>\n`;
}

export function renderHtml(input: ReportInput): string {
  const s = input.summary;
  const c = s.comparison;
  const status = (r: RunSummary): string =>
    r.diverged ? `<span class="bad">diverged</span>${r.divergedAtStep ? ` (NaN at step ${r.divergedAtStep})` : ' (near chance)'}` : 'trained';
  const sweepRows = (s.sweep ?? []).map((r) => [
    String(r.lr),
    `<b>${pct(r.batchNorm.finalAccuracy)}</b>`,
    status(r.batchNorm),
    `<b>${pct(r.plain.finalAccuracy)}</b>`,
    status(r.plain),
    `${(100 * (r.batchNorm.finalAccuracy - r.plain.finalAccuracy)).toFixed(1)} points`,
  ]);
  const small = s.pitfall?.trainMode.filter((t) => t.batchSize <= 4) ?? [];
  const pitRows = s.pitfall?.trainMode.map((t) => [String(t.batchSize), pct(t.accuracy), pct(s.pitfall!.evalAccuracy)]) ?? [];
  const highest = s.sweep?.[s.sweep.length - 1];
  const L = s.lessons;
  const sections: Array<[number, string]> = [];
  if (c) sections.push([1, `${prose.comparison(s)}\n${comparisonChart(input)}`]);
  if (s.sweep) sections.push([2, `${prose.sweep(s)}\n${sweepChart(s)}\n${table(['lr', 'with BatchNorm', '', 'without', '', 'difference'], sweepRows)}`]);
  if (s.pitfall) sections.push([3, `${prose.pitfall(s)}\n${pitfallChart(s)}\n${table(['test batch size', 'train mode', 'eval mode'], pitRows)}`]);
  if (s.runningStats && input.watch) sections.push([4, `${prose.runningStats(s, input.watch.channels)}\n${runningStatsChart(input)}`]);
  if (s.timing) sections.push([5, `${prose.timingIntro()}\n${timingChart(s.timing, 5)}\n${prose.timingResult(s.timing)}`]);
  if (s.cnn) sections.push([6, `${prose.cnn(s.cnn)}\n${cnnChart(s)}`]);
  if (L.init) sections.push([7, lessonsReport.init(L.init, s)]);
  if (L.depth && s.config.only.includes(8)) sections.push([8, lessonsReport.depth(L.depth, s)]);
  if (L.shift) sections.push([9, lessonsReport.shift(L.shift, s)]);
  if (L.depth && s.config.only.includes(10)) sections.push([10, lessonsReport.gradients(L.depth, s)]);
  if (L.placement) sections.push([11, lessonsReport.placement(L.placement, s)]);
  if (L.dropout) sections.push([12, lessonsReport.dropout(L.dropout, s)]);
  if (L.norms) sections.push([13, normsReport.norms(L.norms, s)]);
  if (L.lstm) sections.push([14, normsReport.lstm(L.lstm)]);
  if (L.monitor) sections.push([15, normsReport.dashboard(L.monitor, s)]);
  const toc = `<nav class="toc"><b>Contents</b><ol>${sections.map(([n]) => `<li value="${n}"><a href="#experiment-${n}">${esc(EXPERIMENTS[n - 1].title)}</a></li>`).join('')}<li value="${EXPERIMENTS.length + 1}"><a href="#summary">Summary table</a></li></ol></nav>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>batchnorm demo: training ${esc(s.data.name)} with and without BatchNorm</title>
<style>
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2937;max-width:1060px;margin:0 auto;padding:24px;background:#f8fafc}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 6px}
.sub{color:#4b5563;margin:0 0 18px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:18px 20px;margin:16px 0}
table{border-collapse:collapse;margin:8px 0;font-size:14px}th,td{border-bottom:1px solid #e5e7eb;padding:4px 12px;text-align:left}th{background:#f1f5f9}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{flex:1 1 180px;background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:12px 14px}
.card .v{font-size:24px;font-weight:700}.card .k{color:#6b7280;font-size:13px}
.toc{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:10px 20px;margin:16px 0}.toc ol{margin:4px 0;columns:2}
.bad{color:#dc2626;font-weight:600}.warn{color:#b45309}code{background:#f1f5f9;padding:1px 4px;border-radius:4px}
.bn{color:${COLORS.bn};font-weight:600}.plain{color:${COLORS.plain};font-weight:600}
footer{color:#6b7280;font-size:13px;margin-top:24px}
</style>
</head>
<body>
${prose.intro(s)}

<div class="cards">
${c ? `<div class="card"><div class="k">lr ${c.lr}, with / without BatchNorm</div><div class="v"><span class="bn">${pct(c.batchNorm.finalAccuracy)}</span> / <span class="plain">${pct(c.plain.finalAccuracy)}</span></div></div>` : ''}
${highest ? `<div class="card"><div class="k">lr ${highest.lr}, with / without BatchNorm</div><div class="v"><span class="bn">${pct(highest.batchNorm.finalAccuracy)}</span> / <span class="plain">${pct(highest.plain.finalAccuracy)}</span></div></div>` : ''}
${s.pitfall && small.length ? `<div class="card"><div class="k">test batches of ${small.map((t) => t.batchSize).join(' and ')}: train mode vs eval mode</div><div class="v"><span class="plain">${small.map((t) => pct(t.accuracy)).join(' / ')}</span> vs <span style="color:${COLORS.eval}">${pct(s.pitfall.evalAccuracy)}</span></div></div>` : ''}
${s.timing && s.timing.native.ok && s.timing.js.ok ? `<div class="card"><div class="k">BatchNorm time per epoch, native vs JS</div><div class="v">${ms(s.timing.native.result.bnMs)} vs ${ms(s.timing.js.result.bnMs)}</div></div>` : ''}
</div>

${toc}

${sections.map(([n, body]) => section(n, body)).join('\n')}
<section id="summary">
<h2>Summary</h2>
<pre style="font-size:12px;overflow-x:auto">${esc(terminalSummary(s))}</pre>
</section>

<footer>Made by <code>${esc(input.commandLine)}</code> in ${s.seconds.toFixed(1)} s. Everything on this page is inline: it works offline. Same seed, same numbers (times aside).</footer>
</body>
</html>
`;
}

// ---------------------------------------------------------------- terminal

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

export function terminalSummary(s: Summary): string {
  const lines: string[] = [];
  const rows: string[][] = [['experiment', 'with BatchNorm', 'without', 'note']];
  if (s.comparison)
    rows.push([
      `1. same lr (${s.comparison.lr})`,
      pct(s.comparison.batchNorm.finalAccuracy),
      pct(s.comparison.plain.finalAccuracy),
      `test accuracy after ${s.config.epochs} epochs`,
    ]);
  for (const r of s.sweep ?? [])
    rows.push([
      `2. lr ${r.lr}`,
      `${pct(r.batchNorm.finalAccuracy)}${r.batchNorm.diverged ? ' ✗' : ''}`,
      `${pct(r.plain.finalAccuracy)}${r.plain.diverged ? ' ✗' : ''}`,
      r.plain.diverged || r.batchNorm.diverged ? '✗ = diverged' : '',
    ]);
  const pit = s.pitfall;
  for (const t of pit?.trainMode.filter((t) => t.batchSize <= 8 || t.batchSize >= 64) ?? [])
    rows.push([`3. test batch ${t.batchSize}`, `train ${pct(t.accuracy)}`, '', `eval mode: ${pct(pit!.evalAccuracy)}`]);
  if (s.runningStats)
    rows.push([
      `4. running stats`,
      `ch ${s.runningStats.channels[0]}: μ ${num(s.runningStats.finalMean[0])}`,
      '',
      `σ² ${num(s.runningStats.finalVar[0])} after ${s.runningStats.steps} steps`,
    ]);
  if (s.timing)
    for (const r of [s.timing.native, s.timing.js]) {
      if (r.ok)
        rows.push([
          `5. ${r.result.backend} epoch`,
          ms(r.result.epochMs),
          '',
          `BatchNorm part ${ms(r.result.bnMs)}, ${pct(r.result.bnMs / r.result.epochMs)} of it (${r.result.isa})`,
        ]);
      else rows.push([`5. ${r.backend} epoch`, 'not measured', '', `${r.reason.replace(/^BATCHNORM_BACKEND=\w+, but the /, '').slice(0, 70)}…`]);
    }
  if (s.cnn)
    for (const r of s.cnn.runs)
      rows.push([
        `6. CNN lr ${r.lr}`,
        `${pct(r.batchNorm.finalAccuracy)}${r.batchNorm.diverged ? ' ✗' : ''}`,
        `${pct(r.plain.finalAccuracy)}${r.plain.diverged ? ' ✗' : ''}`,
        'Conv → BatchNorm2d → ReLU',
      ]);
  rows.push(...lessonsReport.summaryRows(s), ...normsReport.summaryRows(s));
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const rule = widths.map((w) => '─'.repeat(w + 2)).join('┼');
  rows.forEach((r, i) => {
    lines.push(r.map((c, j) => ` ${pad(c, widths[j])} `).join('│'));
    if (i === 0) lines.push(rule);
  });
  return lines.join('\n');
}
