/**
 * Experiment 15: a monitoring dashboard. The package's `monitor` (forward and
 * backward hooks on each BatchNorm module) records, at every call, the mean and
 * std of the module's output and of the gradient that flows back into it; the
 * demo keeps one record of each about every `every` training steps.
 */
import { monitor, type Monitor } from 'batchnorm';
import type { Net } from './model.js';

/** [layer][record] series of one statistic. */
export interface Dashboard {
  /** The BatchNorm layers' names, first first. */
  layers: string[];
  steps: number[];
  outMean: number[][];
  outStd: number[][];
  gradNorm: number[][];
  gradStd: number[][];
}

function lastOf<R extends { module: string }>(records: readonly R[], module: string): R | undefined {
  for (let i = records.length - 1; i >= 0; i--) if (records[i].module === module) return records[i];
  return undefined;
}

/**
 * `attach` puts the monitor on a model's BatchNorms before training;
 * `onStep` (after each optimizer step) keeps the training forward's and the
 * backward's statistics every `every` steps and empties the monitor.
 */
export function dashboardRecorder(every: number): { attach(model: Net): void; onStep(step: number): void; dashboard: Dashboard; remove(): void } {
  const d: Dashboard = { layers: [], steps: [], outMean: [], outStd: [], gradNorm: [], gradStd: [] };
  let mon: Monitor | null = null;
  return {
    dashboard: d,
    attach(model: Net): void {
      d.layers = model.batchNorms.map((bn, i) => `BatchNorm1d ${i + 1} (${bn.numFeatures} channels)`);
      for (const k of ['outMean', 'outStd', 'gradNorm', 'gradStd'] as const) d[k] = d.layers.map(() => []);
      mon = monitor(Object.fromEntries(model.batchNorms.map((bn, i) => [String(i), bn])));
    },
    onStep(step: number): void {
      if (!mon) return;
      if (step % every === 0) {
        d.steps.push(step);
        d.layers.forEach((_, i) => {
          // The last forward of each module is this step's training forward (an evaluation between
          // epochs comes before it), and its only backward is this step's.
          const f = lastOf(mon!.forward, String(i));
          const b = lastOf(mon!.backward, String(i));
          d.outMean[i].push(f?.mean ?? NaN);
          d.outStd[i].push(f?.std ?? NaN);
          d.gradNorm[i].push(b?.norm ?? NaN);
          d.gradStd[i].push(b?.std ?? NaN);
        });
      }
      mon.clear();
    },
    remove(): void {
      mon?.remove();
      mon = null;
    },
  };
}
