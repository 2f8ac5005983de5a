// One MPI rank of test/sync/mpi.test.ts:
//   mpirun -np N node test/sync/mpi-rank.mjs OUTDIR
// runs the group job over MpiCollective and writes OUTDIR/rank-<rank>.json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runGroupJob } from './group-job.mjs';

const pkg = await import(new URL('../../dist/index.js', import.meta.url).href);
const collective = pkg.MpiCollective.init();
const result = await runGroupJob(pkg, collective);
writeFileSync(join(process.argv[2], `rank-${collective.rank}.json`), JSON.stringify(result));
