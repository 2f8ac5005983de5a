/**
 * SyncBatchNorm over MPI: `mpirun -np N` processes (N = 1 to 4) running the
 * same group job as the worker_threads test over MpiCollective. These run
 * where MPI (mpirun) and the optional MPI addon (`npm run build:mpi`) are
 * present; elsewhere the test checks that MpiCollective.init() says what is
 * missing and how to build it. `.ci/mpi.sh` installs MPI, builds the addon and
 * runs this file with BATCHNORM_REQUIRE_MPI=1, which makes a missing MPI a failure.
 * The processes import the compiled package (dist/; `npm test` builds it first).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { MpiCollective } from '../../lib/index.js';
import { checkGroup } from './check-group.js';
import type { GroupResult } from './group-job.mjs';

function hasMpirun(): boolean {
  try {
    execFileSync('mpirun', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const haveMpi = hasMpirun() && MpiCollective.available();
const rankScript = fileURLToPath(new URL('./mpi-rank.mjs', import.meta.url));

if (process.env.BATCHNORM_REQUIRE_MPI === '1') {
  it('MPI and the MPI addon are present (BATCHNORM_REQUIRE_MPI=1)', () => {
    expect(hasMpirun(), 'mpirun on the PATH').toBe(true);
    expect(MpiCollective.available(), 'the MPI addon (npm run build:mpi)').toBe(true);
  });
}

if (haveMpi) {
  for (const ranks of [1, 2, 3, 4]) {
    it(`${ranks} MPI process(es)`, { timeout: 240_000 }, () => {
      const out = mkdtempSync(join(tmpdir(), 'batchnorm-mpi-'));
      try {
        // --allow-run-as-root: CI runs as root; --oversubscribe: more ranks than cores.
        const r = spawnSync('mpirun', ['--allow-run-as-root', '--oversubscribe', '-np', String(ranks), process.execPath, rankScript, out], {
          encoding: 'utf8',
          timeout: 200_000,
          env: { ...process.env, OMPI_MCA_rmaps_base_oversubscribe: '1' },
        });
        expect(r.status, `mpirun failed: ${r.error ?? ''}\n${r.stdout}\n${r.stderr}`).toBe(0);
        const byRank: GroupResult[] = Array.from(
          { length: ranks },
          (_, rank) => JSON.parse(readFileSync(join(out, `rank-${rank}.json`), 'utf8')) as GroupResult,
        );
        checkGroup(byRank);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });
  }
} else {
  it('without MPI or its addon, MpiCollective.init() says what is missing and how to build it', { timeout: 60_000 }, () => {
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import('${new URL('../../dist/index.js', import.meta.url).href}').then((p) => p.MpiCollective.init()).catch((e) => { console.log(e.message); })`,
      ],
      { encoding: 'utf8', env: { ...process.env, BATCHNORM_MPI_ADDON: join(tmpdir(), 'no-such-batchnorm_mpi.node') }, timeout: 50_000 },
    );
    expect(r.stdout).toMatch(
      /MpiCollective needs the optional MPI addon, which is unavailable: no MPI addon at .*no-such-batchnorm_mpi\.node\. To fix, install MPI .*npm run build:mpi/,
    );
  });
}
