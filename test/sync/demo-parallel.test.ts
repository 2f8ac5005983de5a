/**
 * The data-parallel demo (demo/parallel.ts): the MLP trained on 2 worker
 * threads with SyncBatchNorm and summed gradients reaches the accuracy of
 * one process on the whole batch with the same seed (and 1 thread too); the
 * per-layer communication cost comes out as a number. (The MPI run of the
 * same demo is in the MPI test's reach only: see test/sync/mpi.test.ts.)
 * Runs the compiled demo (demo/dist; `npm test` builds it first).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

it('2 worker threads train the MLP to the accuracy of one process on the whole batch', { timeout: 600_000 }, () => {
  const script = fileURLToPath(new URL('../../demo/dist/parallel.js', import.meta.url));
  const r = spawnSync(process.execPath, [script, '--epochs', '1', '--train', '640', '--test', '200', '--workers', '2', '--json'], {
    encoding: 'utf8',
    timeout: 550_000,
  });
  expect(r.status, r.stderr).toBe(0);
  const rows = JSON.parse(r.stdout.trim().split('\n').pop()!) as Array<{
    ranks: number;
    accuracy: number;
    imagesPerSecond?: number;
    commUs?: { c128: number };
  }>;
  expect(rows.map((row) => row.ranks)).toEqual([1, 1, 2]);
  expect(rows[0].accuracy).toBeGreaterThan(0.5);
  // The same weights, batches and statistics: the same predictions, up to float rounding (a test image or two).
  for (const row of rows.slice(1)) {
    expect(Math.abs(row.accuracy - rows[0].accuracy)).toBeLessThanOrEqual(2 / 200);
    expect(row.imagesPerSecond).toBeGreaterThan(0);
    expect(row.commUs!.c128).toBeGreaterThan(0);
  }
});
