/**
 * The `Collective` contract: what SyncBatchNorm and allReduceGradients need
 * from a group of processes or threads, and nothing more — small enough to
 * implement over any transport (docs/collectives.md shows one over
 * MessagePorts). Two implementations ship: `WorkerCollective`
 * (worker_threads, shared memory) and `MpiCollective` (MPI, optional addon).
 *
 * Contract:
 * - `rank` is an integer in [0, worldSize); every rank of the group has a
 *   different one, and every rank calls the same collectives in the same
 *   order (as in MPI and torch.distributed).
 * - `allGather(data)` resolves to every rank's `data` concatenated in rank
 *   order (a new array of worldSize · data.length values). Every rank passes
 *   the same length; the input is not modified.
 * - `allReduceSum(data)` resolves to the elementwise sum over ranks, added in
 *   rank order (0 + 1 + 2 …), so that every rank gets identical bits (a tree
 *   or ring reduction would give each rank its own rounding). A new array.
 * - A failed collective rejects (on every rank, where the transport can tell
 *   them); it never resolves with partial data.
 */
import { checkCollective as check, checkOneOf, checkOptions, collectiveRejectedError, collectiveResultError, typeError } from '../check.js';

export interface Collective {
  /** This member's index in the group, 0 ≤ rank < worldSize. */
  readonly rank: number;
  /** Members in the group. */
  readonly worldSize: number;
  /** Every rank's data concatenated in rank order (worldSize · data.length values). */
  allGather(data: Float64Array): Promise<Float64Array>;
  /** The elementwise sum over ranks, added in rank order: identical bits on every rank. */
  allReduceSum(data: Float64Array): Promise<Float64Array>;
}

/**
 * Checks that `c` looks like a Collective (at construction and before every
 * use: a rank set out of range later must not send a wrong rank's data).
 */
export function checkCollective(c: unknown, name = 'collective'): Collective {
  check(c, name);
  return c as Collective;
}

/**
 * Runs one collective and checks what it resolved to: a Float64Array of
 * `expected` values. A transport that resolves with something else (a wrong
 * length: ranks that passed different lengths, or a rank that called another
 * collective) would otherwise feed garbage into the statistics.
 */
export async function runCollective(
  c: Collective,
  op: 'allGather' | 'allReduceSum',
  data: Float64Array,
  expected: number,
  name = 'collective',
): Promise<Float64Array> {
  let result: unknown;
  try {
    result = await c[op](data);
  } catch (e) {
    throw collectiveRejectedError(name, op, c.rank, c.worldSize, e);
  }
  if (!(result instanceof Float64Array) || result.length !== expected)
    throw collectiveResultError(name, op, expected, op === 'allGather' ? `${c.worldSize} ranks × ${data.length}` : 'the input length', result);
  return result;
}

/** `allReduceSum` from an `allGather`: the gathered slices added in rank order (identical bits on every rank). */
export function sumInRankOrder(gathered: Float64Array, worldSize: number): Float64Array {
  const len = gathered.length / worldSize,
    out = gathered.slice(0, len);
  for (let r = 1; r < worldSize; r++) {
    const off = r * len;
    for (let i = 0; i < len; i++) out[i] += gathered[off + i];
  }
  return out;
}

/** A parameter with a gradient, as the modules' `parameters()` give them (`grad` null: never had a backward). */
export interface GradParameter {
  data: Float32Array | Float64Array;
  grad: Float32Array | Float64Array | null;
}

export interface AllReduceGradientsOptions {
  /**
   * 'mean' (default): the gradients averaged over ranks, as PyTorch's
   * DistributedDataParallel does (each rank's loss is a mean over its own
   * slice); 'sum': added up (each rank's loss is its share of the whole
   * batch's loss).
   */
  op?: 'mean' | 'sum';
}

/**
 * Averages (or sums) the gradients of `parameters` over the ranks of
 * `collective`, in place, with one allReduceSum: every rank ends with
 * identical gradients, so identical optimizer steps keep the replicas equal.
 * Any parameters with `{ data, grad }` work (BatchNorm's, SyncBatchNorm's, a
 * Linear layer's). A parameter whose grad is null takes part with zeros and
 * gets a grad (a rank that skipped a layer still has to match the others).
 * Every rank must pass the same parameters in the same order. Nothing is
 * written if the collective fails.
 */
export async function allReduceGradients(parameters: Iterable<GradParameter>, collective: Collective, options: AllReduceGradientsOptions = {}): Promise<void> {
  const c = checkCollective(collective);
  checkOptions(options, 'allReduceGradients', ['op']);
  const op = options.op === undefined ? 'mean' : checkOneOf(options.op, 'op', ['mean', 'sum'] as const);
  if (parameters == null || typeof (parameters as Iterable<GradParameter>)[Symbol.iterator] !== 'function')
    throw typeError('parameters', 'an iterable of parameters { data, grad }', parameters);
  const params = [...parameters];
  let total = 0;
  params.forEach((p, i) => {
    if (typeof p !== 'object' || p === null || !(p.data instanceof Float32Array || p.data instanceof Float64Array))
      throw typeError(`parameters[${i}]`, 'a parameter { data: Float32Array | Float64Array, grad }', p);
    if (p.grad !== null && (p.grad?.constructor !== p.data.constructor || p.grad.length !== p.data.length))
      throw typeError(`parameters[${i}].grad`, `null or a ${p.data.constructor.name} of length ${p.data.length} (like its data)`, p.grad);
    total += p.data.length;
  });
  const flat = new Float64Array(total);
  let off = 0;
  for (const p of params) {
    if (p.grad) flat.set(p.grad, off);
    off += p.data.length;
  }
  const sum = await runCollective(c, 'allReduceSum', flat, total);
  const divisor = op === 'mean' ? c.worldSize : 1;
  off = 0;
  for (const p of params) {
    const g = p.grad ?? new (p.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(p.data.length);
    for (let i = 0; i < g.length; i++) g[i] = sum[off + i] / divisor;
    p.grad = g;
    off += p.data.length;
  }
}
