/**
 * The transport recipe of docs/data-parallel.md: the MessagePort adapter
 * printed there is examples/port-collective.mjs, verbatim, and SyncBatchNorm
 * over it (3 ranks, unequal slices) equals one BatchNorm on the whole batch.
 * The example imports the package by name (the compiled dist/).
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import * as pkg from '../../lib/index.js';
import { PortCollective, portMesh } from '../../examples/port-collective.mjs';
import { expectSameAsWhole } from './compare.js';
import { runRank, runWhole, type Case } from './rank-job.mjs';

const read = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8');

it('the docs print the example as it is', () => {
  expect(read('../../docs/data-parallel.md')).toContain('```js\n' + read('../../examples/port-collective.mjs') + '```');
});

it('SyncBatchNorm over the MessagePort adapter equals one BatchNorm on the whole batch', { timeout: 60_000 }, async () => {
  const c: Case = { shape: [12, 4, 3, 5], layout: 'channelsFirst', dtype: 'float32', sizes: [2, 0, 10], seed: 5 };
  const collectives = portMesh(3).map((ports, rank) => new PortCollective(rank, ports));
  try {
    expectSameAsWhole(runWhole(pkg, c), await Promise.all(collectives.map((col) => runRank(pkg, col, c))), c.dtype);
    const bad = await Promise.allSettled(collectives.map((col) => col.allGather(new Float64Array(col.rank))));
    for (const r of bad) expect(r.status === 'rejected' && String(r.reason)).toMatch(/the ranks passed 0, 1, 2/);
  } finally {
    for (const col of collectives) col.close();
  }
});
