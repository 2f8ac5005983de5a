// What each rank of the worker_threads and MPI tests runs, after joining its
// group: every case of casesFor(worldSize) through runRank, then the checks
// that need real concurrency — the event loop runs while a collective waits
// for a late rank, and bad calls reject on every rank instead of hanging.
import { runRank } from './rank-job.mjs';
import { casesFor } from './reference-values.mjs';

async function rejection(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return `${e.name}: ${e.message}`;
  }
}

export async function runGroupJob(pkg, collective) {
  const { rank, worldSize } = collective;
  const results = [];
  // Half the cases through SyncBatchNorm.convert of a BatchNorm2d.
  for (const [i, c] of casesFor(worldSize).entries()) results.push(await runRank(pkg, collective, c, { convert: i % 2 === 1 }));
  // Rank 0 comes 300 ms late: the others' timers keep firing meanwhile.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  if (rank === 0) await new Promise((resolve) => setTimeout(resolve, 300));
  const sum = await collective.allReduceSum(Float64Array.of(rank + 0.1, 1));
  clearInterval(timer);
  // Bad calls: lengths that differ, another collective, an argument that is not a Float64Array.
  const errors = {
    lengths: await rejection(collective.allGather(new Float64Array(rank + 1))),
    ops: worldSize > 1 ? await rejection(rank === 0 ? collective.allGather(new Float64Array(2)) : collective.allReduceSum(new Float64Array(2))) : null,
    invalid: await rejection(rank === worldSize - 1 ? collective.allGather([1, 2]) : collective.allGather(new Float64Array(2))),
  };
  // The group still works after them.
  const after = Array.from(await collective.allGather(Float64Array.of(rank)));
  return { rank, results, ticks, sum: Array.from(sum), errors, after };
}
