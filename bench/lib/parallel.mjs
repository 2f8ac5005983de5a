// The data-parallel rows of `npm run bench`: images per second of the demo's
// MLP trained on 1 and 2 worker_threads (WorkerCollective) and, where MPI and
// the MPI addon are present, on 1 and 2 MPI processes (MpiCollective), with
// the median time of one SyncBatchNorm layer's communication (a forward's
// allGather of 1 + 2C values and a backward's allReduceSum of 2C) for C = 128
// and 256. Each run is demo/dist/parallel.js in a child process (see
// demo/parallel.ts); the accuracy column shows the runs train alike.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEMO = join(ROOT, 'demo', 'dist', 'parallel.js');
const MPI_ADDON = join(ROOT, 'native', 'mpi', 'build', 'Release', 'batchnorm_mpi.node');

/**
 * @typedef {{ collective: string, ranks: number, accuracy: number, imagesPerSecond: number, commUs: { c128: number, c256: number } }} ParallelRow
 * @typedef {{ impl: string, reason: string }} Skipped
 */

/** @param {string} stdout */
function lastJson(stdout) {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line);
}

/**
 * Rows { collective, ranks, accuracy, imagesPerSecond, commUs: { c128, c256 } }, and what was skipped and why.
 * @param {{ quick: boolean }} options
 * @returns {{ rows: ParallelRow[], skipped: Skipped[] }}
 */
export function dataParallelRows({ quick }) {
  /** @type {Skipped[]} */
  const skipped = [];
  if (!existsSync(DEMO)) return { rows: [], skipped: [{ impl: 'data-parallel', reason: `${DEMO} not built (npm run build)` }] };
  const size = quick ? ['--epochs', '1', '--train', '1280', '--test', '200'] : ['--epochs', '2', '--train', '4000', '--test', '1000'];
  /** @type {ParallelRow[]} */
  const rows = [];
  const threads = spawnSync(process.execPath, [DEMO, '--json', '--workers', '2', ...size], { encoding: 'utf8', timeout: 1_800_000 });
  if (threads.status === 0) rows.push(...lastJson(threads.stdout).filter((/** @type {ParallelRow} */ r) => r.collective !== 'none (one process, whole batch)'));
  else skipped.push({ impl: 'data-parallel/worker_threads', reason: `demo/dist/parallel.js failed: ${threads.stderr.slice(-300)}` });
  const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (mpirun.status !== 0 || !existsSync(MPI_ADDON)) {
    skipped.push({ impl: 'data-parallel/mpi', reason: 'no mpirun or no MPI addon (npm run build:mpi)' });
    return { rows, skipped };
  }
  for (const np of [1, 2]) {
    // --mca mpi_yield_when_idle 1: a waiting rank yields its core instead of spinning (2 ranks share 2 cores with the rest).
    const r = spawnSync(
      'mpirun',
      ['--allow-run-as-root', '--oversubscribe', '--mca', 'mpi_yield_when_idle', '1', '-np', String(np), process.execPath, DEMO, '--mpi', '--json', ...size],
      { encoding: 'utf8', timeout: 1_800_000 },
    );
    if (r.status === 0) rows.push(lastJson(r.stdout));
    else skipped.push({ impl: `data-parallel/mpi/${np}`, reason: `mpirun failed: ${r.stderr.slice(-300)}` });
  }
  return { rows, skipped };
}

/** @param {ParallelRow[]} rows */
export function formatParallel(rows) {
  const head = ['collective', 'ranks', 'accuracy', 'images/s', 'comm C=128 us', 'comm C=256 us'];
  const body = rows.map((r) => [
    r.collective,
    String(r.ranks),
    `${(r.accuracy * 100).toFixed(2)}%`,
    r.imagesPerSecond.toFixed(0),
    r.commUs.c128.toFixed(0),
    r.commUs.c256.toFixed(0),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (/** @type {string[]} */ cells) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [fmt(head), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(fmt)].join('\n');
}
