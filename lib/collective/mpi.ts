/**
 * MpiCollective: a Collective over MPI_COMM_WORLD, for processes on one or
 * many machines started by `mpirun -np N node train.mjs`. It needs the
 * optional MPI addon (native/mpi/, built by `npm run build:mpi` where MPI is
 * installed); the rest of the package works without it.
 *
 *     import { MpiCollective, SyncBatchNorm } from 'batchnorm';
 *     const collective = MpiCollective.init();   // MPI_Init on the addon's MPI thread
 *     const bn = new SyncBatchNorm(64, collective);
 *
 * The MPI calls run on one dedicated thread of the addon, in the order they
 * were made: the event loop keeps running while a collective is in flight.
 * allReduceSum is an MPI_Allgather whose slices are added in rank order
 * here, so that every rank gets identical bits (MPI_Allreduce may round
 * differently on different ranks). Every call first exchanges each rank's op
 * and length, so that mismatched calls reject on every rank.
 *
 * Under root, mpirun needs `--allow-run-as-root`; with more ranks than cores,
 * `--oversubscribe`.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { typeError } from '../check.js';
import { sumInRankOrder, type Collective } from './collective.js';

interface MpiAddon {
  init(): { rank: number; worldSize: number };
  allGather(op: 1 | 2 | 3, data: Float64Array): Promise<Float64Array>;
  mpiVersion: string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const HOW_TO_BUILD =
  'install MPI (Debian: apt-get install -y libopenmpi-dev openmpi-bin) and build the addon with `npm run build:mpi` (scripts/build-mpi.sh), or set BATCHNORM_MPI_ADDON to its path';

/** Where the addon is: BATCHNORM_MPI_ADDON, else native/mpi/build/Release/batchnorm_mpi.node. */
export function mpiAddonPath(): string {
  return process.env.BATCHNORM_MPI_ADDON || join(root, 'native', 'mpi', 'build', 'Release', 'batchnorm_mpi.node');
}

let loaded: { addon: MpiAddon | null; why: string } | null = null;

function load(): { addon: MpiAddon | null; why: string } {
  if (loaded) return loaded;
  const path = mpiAddonPath();
  if (!existsSync(path)) loaded = { addon: null, why: `no MPI addon at ${path}` };
  else {
    try {
      loaded = { addon: require(path) as MpiAddon, why: '' };
    } catch (e) {
      loaded = { addon: null, why: `${path} failed to load: ${(e as Error).message}` };
    }
  }
  return loaded;
}

const OP = { allGather: 1, allReduceSum: 2, invalid: 3 } as const;

export class MpiCollective implements Collective {
  readonly rank: number;
  readonly worldSize: number;
  readonly #addon: MpiAddon;
  static #instance: MpiCollective | null = null;

  /** Whether the MPI addon is built and loads (MPI itself starts only with init()). */
  static available(): boolean {
    return load().addon !== null;
  }

  /**
   * Starts MPI (once per process; later calls return the same collective) and
   * returns the collective of MPI_COMM_WORLD. Without the addon: an Error
   * saying how to build it. A process not started by mpirun is a group of one.
   */
  static init(): MpiCollective {
    if (MpiCollective.#instance) return MpiCollective.#instance;
    const { addon, why } = load();
    if (!addon) throw new Error(`MpiCollective needs the optional MPI addon, which is unavailable: ${why}. To fix, ${HOW_TO_BUILD}.`);
    const { rank, worldSize } = addon.init();
    MpiCollective.#instance = new MpiCollective(addon, rank, worldSize);
    return MpiCollective.#instance;
  }

  private constructor(addon: MpiAddon, rank: number, worldSize: number) {
    this.#addon = addon;
    this.rank = rank;
    this.worldSize = worldSize;
  }

  /** The version of the MPI standard the library implements, e.g. "3.1". */
  get mpiVersion(): string {
    return this.#addon.mpiVersion;
  }

  allGather(data: Float64Array): Promise<Float64Array> {
    return this.#call('allGather', data);
  }

  async allReduceSum(data: Float64Array): Promise<Float64Array> {
    return sumInRankOrder(await this.#call('allReduceSum', data), this.worldSize);
  }

  /** A bad argument still takes part (as an invalid call), so that the other ranks reject instead of waiting. */
  #call(op: 'allGather' | 'allReduceSum', data: unknown): Promise<Float64Array> {
    if (data instanceof Float64Array) return this.#addon.allGather(OP[op], data);
    const error = typeError(`data of ${op}`, 'a Float64Array', data);
    return this.#addon.allGather(OP.invalid, new Float64Array(0)).then(
      () => Promise.reject(error),
      () => Promise.reject(error),
    );
  }
}
