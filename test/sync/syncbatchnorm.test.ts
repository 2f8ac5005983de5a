/**
 * SyncBatchNorm over N ∈ {1, 2, 3, 4} ranks, with equal, unequal and one
 * empty slice, gives what one BatchNorm gives on the whole batch — outputs,
 * input gradients, weight and bias gradients (summed over the ranks),
 * running statistics after two steps, and the eval output — within float32
 * (float64) rounding, and identical bits on every rank. The ranks run in
 * this thread, over one WorkerCollective group (the worker_threads and MPI
 * tests run the same job in threads and processes).
 */
import { describe, it } from 'vitest';
import * as pkg from '../../lib/index.js';
import { runRank, runWhole, type Case, type RankResult } from './rank-job.mjs';
import { splits } from './reference-values.mjs';
import { expectSameAsWhole } from './compare.js';

const SHAPES: Array<Pick<Case, 'shape' | 'layout' | 'dtype'>> = [
  { shape: [12, 5], layout: 'channelsFirst', dtype: 'float32' },
  { shape: [12, 3, 7], layout: 'channelsFirst', dtype: 'float32' },
  { shape: [12, 7, 3], layout: 'channelsLast', dtype: 'float32' },
  { shape: [12, 4, 3, 5], layout: 'channelsFirst', dtype: 'float32' },
  { shape: [12, 3, 5, 4], layout: 'channelsLast', dtype: 'float32' },
  { shape: [12, 2, 3, 2, 2], layout: 'channelsFirst', dtype: 'float32' },
  { shape: [12, 4, 3, 5], layout: 'channelsFirst', dtype: 'float64' },
  { shape: [12, 3, 5, 4], layout: 'channelsLast', dtype: 'float64' },
];

async function inThread(c: Case, convert = false): Promise<RankResult[]> {
  const group = pkg.WorkerCollective.createGroup(c.sizes.length, { slotLength: 7 }); // short slots: several rounds per call
  return Promise.all(c.sizes.map((_, rank) => runRank(pkg, pkg.WorkerCollective.join(group, rank), c, { convert })));
}

describe('SyncBatchNorm equals one BatchNorm on the whole batch', () => {
  for (const base of SHAPES) {
    for (const ranks of [1, 2, 3, 4]) {
      for (const { name, sizes } of splits(base.shape[0], ranks)) {
        const c: Case = { ...base, sizes, seed: 7 + ranks };
        it(`${base.dtype} ${base.layout} [${base.shape}], ${ranks} rank(s), ${name} [${sizes}]`, async () => {
          expectSameAsWhole(runWhole(pkg, c), await inThread(c), c.dtype);
        });
      }
    }
  }

  it('SyncBatchNorm.convert of a BatchNorm2d gives the same', async () => {
    const c: Case = { shape: [12, 4, 3, 5], layout: 'channelsLast', dtype: 'float32', sizes: [5, 0, 7], seed: 3 };
    expectSameAsWhole(runWhole(pkg, c), await inThread(c, true), c.dtype);
  });
});
