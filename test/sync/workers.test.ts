/**
 * SyncBatchNorm over 1 to 4 worker_threads joined by one WorkerCollective:
 * every case of casesFor (equal, unequal, one empty slice) equals one
 * BatchNorm on the whole batch, bitwise the same on every rank; a late rank
 * does not block the others' event loops; bad calls reject on every rank.
 * The workers import the compiled package (dist/; `npm test` builds it first).
 */
import { Worker } from 'node:worker_threads';
import { it } from 'vitest';
import { WorkerCollective } from '../../lib/index.js';
import { checkGroup } from './check-group.js';
import type { GroupResult } from './group-job.mjs';

const JOB = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const pkg = await import(workerData.dist);
  const { runGroupJob } = await import(workerData.job);
  const collective = pkg.WorkerCollective.join(workerData.group, workerData.rank);
  parentPort.postMessage({ result: await runGroupJob(pkg, collective) });
})().catch((e) => parentPort.postMessage({ error: String((e && e.stack) || e) }));
`;

/** Runs the job on `ranks` workers; a worker that fails aborts the group, so that the others do not wait for it. */
function runWorkers(ranks: number): Promise<GroupResult[]> {
  const group = WorkerCollective.createGroup(ranks, { slotLength: 64 });
  const dist = new URL('../../dist/index.js', import.meta.url).href,
    job = new URL('./group-job.mjs', import.meta.url).href;
  return Promise.all(
    Array.from(
      { length: ranks },
      (_, rank) =>
        new Promise<GroupResult>((resolve, reject) => {
          const w = new Worker(JOB, { eval: true, workerData: { dist, job, group, rank } });
          const fail = (e: unknown) => {
            WorkerCollective.abort(group);
            reject(e instanceof Error ? e : new Error(String(e)));
          };
          w.once('message', (m: { result?: GroupResult; error?: string }) => {
            if (m.error) fail(new Error(`rank ${rank}: ${m.error}`));
            else resolve(m.result!);
            w.removeAllListeners('exit');
            void w.terminate();
          });
          w.once('error', fail);
          w.once('exit', (code) => fail(new Error(`rank ${rank} exited (code ${code}) before it posted its result`)));
        }),
    ),
  );
}

for (const ranks of [1, 2, 3, 4]) {
  it(`${ranks} worker thread(s)`, { timeout: 120_000 }, async () => {
    checkGroup(await runWorkers(ranks));
  });
}
