/** The SyncBatchNorm tests' comparison of the ranks' results with the whole batch's. */
import { expect } from 'vitest';
import type { Case, RankResult } from './rank-job.mjs';
import { worst } from './reference-values.mjs';

// Measured worst about 8e-7 (float32); the rounding of float32 values of about 3 is 1.2e-7 a step.
export const TOLERANCE = { float32: 5e-6, float64: 1e-12 };

/** Checks the ranks' results against the whole batch's. */
export function expectSameAsWhole(whole: RankResult, ranks: RankResult[], dtype: Case['dtype']): void {
  const tol = TOLERANCE[dtype];
  for (const k of ['y', 'dx', 'z'] as const)
    expect(
      worst(
        ranks.flatMap((r) => r[k]),
        whole[k],
      ),
      k,
    ).toBeLessThanOrEqual(tol);
  for (const k of ['weightGrad', 'biasGrad', 'runningMean', 'runningVar'] as const) {
    expect(worst(ranks[0][k], whole[k]), k).toBeLessThanOrEqual(tol);
    for (const r of ranks) expect(r[k], `${k} is bitwise the same on every rank`).toEqual(ranks[0][k]);
  }
  for (const r of ranks) expect(r.numBatchesTracked).toBe(whole.numBatchesTracked);
}
