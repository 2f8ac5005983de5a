/** The checks of the worker_threads and MPI tests on what every rank's runGroupJob returned. */
import { expect } from 'vitest';
import * as pkg from '../../lib/index.js';
import { expectSameAsWhole } from './compare.js';
import type { GroupResult } from './group-job.mjs';
import { runWhole } from './rank-job.mjs';
import { casesFor } from './reference-values.mjs';

export function checkGroup(byRank: GroupResult[]): void {
  const W = byRank.length;
  expect(byRank.map((g) => g.rank)).toEqual([...Array(W).keys()]);
  casesFor(W).forEach((c, i) => {
    expectSameAsWhole(
      runWhole(pkg, c),
      byRank.map((g) => g.results[i]),
      c.dtype,
    );
  });
  const sum = [0, 0];
  for (let r = 0; r < W; r++) ((sum[0] += r + 0.1), (sum[1] += 1));
  for (const g of byRank) {
    expect(g.sum).toEqual(sum);
    if (g.rank !== 0) expect(g.ticks, `rank ${g.rank}'s timers ran while it waited`).toBeGreaterThan(0);
    expect(g.after).toEqual([...Array(W).keys()]);
    if (W > 1) {
      expect(g.errors.lengths).toMatch(/Expected every rank to pass the same length to allGather, but the ranks passed 1 \(rank 0\), 2 \(rank 1\)/);
      expect(g.errors.ops).toMatch(/Expected every rank to call the same collective, but the ranks called allGather \(rank 0\), allReduceSum \(rank 1\)/);
    } else {
      expect(g.errors.lengths).toBeNull();
    }
    if (g.rank === W - 1) expect(g.errors.invalid).toMatch(/^TypeError: Expected a Float64Array for data of allGather but received an Array/);
    else expect(g.errors.invalid).toMatch(new RegExp(`^Error: allGather failed on rank ${g.rank} because rank ${W - 1}'s call was invalid`));
  }
}
