import type { Collective } from '../../lib/index.js';

export interface Case {
  /** The whole batch's shape; the ranks split dimension 0. */
  shape: number[];
  layout: 'channelsFirst' | 'channelsLast';
  dtype: 'float32' | 'float64';
  /** Samples per rank, adding up to shape[0]. */
  sizes: number[];
  seed: number;
}

export interface RankResult {
  y: number[];
  dx: number[];
  z: number[];
  weightGrad: number[];
  biasGrad: number[];
  runningMean: number[];
  runningVar: number[];
  numBatchesTracked: number | null;
}

export function runRank(pkg: unknown, collective: Collective, c: Case, options?: { convert?: boolean }): Promise<RankResult>;
export function runWhole(pkg: unknown, c: Case): RankResult;
