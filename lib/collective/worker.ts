/**
 * WorkerCollective: a Collective for worker_threads (or several ranks in one
 * thread) over shared memory. The main thread creates the group's memory with
 * `WorkerCollective.createGroup(worldSize)` and hands that plain object to
 * each worker (workerData or postMessage: it holds SharedArrayBuffers, which
 * are shared, not copied); each worker joins with its rank:
 *
 *     // main thread
 *     const group = WorkerCollective.createGroup(2);
 *     for (let rank = 0; rank < 2; rank++) new Worker(file, { workerData: { group, rank } });
 *     // worker
 *     const collective = WorkerCollective.join(workerData.group, workerData.rank);
 *
 * How it works: each collective is one or more rounds of a barrier. In a
 * round every rank writes a header (op, total length, chunk length) and its
 * chunk of data into its own slot, then arrives at the barrier; the last rank
 * to arrive advances the generation and wakes the others
 * (`Atomics.notify`). Waiting is `Atomics.waitAsync`: no thread blocks and no
 * loop polls, so the event loop of a waiting rank keeps running. The slots
 * alternate between two halves by round parity, so that a fast rank's next
 * round cannot overwrite data a slow rank still reads (it cannot pass the next
 * barrier before every rank arrived there, after reading). Arrays longer than
 * the slot go in several rounds.
 *
 * Every rank reads every slot in rank order and computes the result itself:
 * allGather copies, allReduceSum adds in rank order, so every rank gets
 * identical bits. Every rank sees every header, so a mismatch (different
 * lengths or ops, or a rank whose argument was invalid) rejects on every rank
 * at once instead of hanging some of them.
 */
import { checkOptions, collectiveMismatchError, rangeError, typeError } from '../check.js';
import type { Collective } from './collective.js';

/** What `createGroup` returns: structured-cloneable, for workerData or postMessage. */
export interface WorkerGroup {
  readonly worldSize: number;
  /** Values per rank per round; longer arrays take several rounds. */
  readonly slotLength: number;
  /** Milliseconds a rank waits for the others before the group is aborted; 0: forever. */
  readonly timeoutMs: number;
  readonly control: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
}

export interface WorkerGroupOptions {
  /**
   * Float64 values each rank writes per round (default 16384, 128 KB).
   * Longer arrays take several rounds; the memory is 2 · worldSize · slotLength · 8 bytes.
   */
  slotLength?: number;
  /**
   * Milliseconds a rank waits at a round for the others before the group is
   * aborted (every pending and later call rejects). Default 0: wait forever,
   * as MPI does; set it when a worker can die without the main thread
   * noticing (otherwise call `WorkerCollective.abort(group)` from the
   * worker's 'error' or 'exit' handler).
   */
  timeoutMs?: number;
}

// The control words (Int32): the generation (rounds completed), the ranks
// arrived in the current round, the aborted flag, then one joined flag per
// rank, then per parity and rank a header of three words.
const GEN = 0,
  ARRIVED = 1,
  ABORTED = 2,
  JOINED = 3,
  HEADER = 3;
const OP_GATHER = 1,
  OP_SUM = 2,
  OP_INVALID = 3;
const OP_NAMES = ['', 'allGather', 'allReduceSum', 'an invalid call'];

type WaitAsync = (
  a: Int32Array,
  index: number,
  value: number,
  timeout?: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

function checkInteger(v: unknown, name: string, lo: number, hi: number, fix?: string): number {
  const expected = `an integer in [${lo}, ${hi}]`;
  if (typeof v !== 'number') throw typeError(name, expected, v);
  if (!Number.isInteger(v) || v < lo || v > hi) throw rangeError(name, expected, v, fix);
  return v;
}

function checkGroup(group: unknown): WorkerGroup {
  const g = group as WorkerGroup;
  if (
    typeof g !== 'object' ||
    g === null ||
    !(g.control instanceof SharedArrayBuffer) ||
    !(g.data instanceof SharedArrayBuffer) ||
    typeof g.worldSize !== 'number'
  )
    throw typeError(
      'group',
      'a group made by WorkerCollective.createGroup()',
      group,
      'create it once in the main thread and hand the same object to every worker',
    );
  return g;
}

export class WorkerCollective implements Collective {
  readonly rank: number;
  readonly worldSize: number;
  readonly #slot: number;
  readonly #timeoutMs: number;
  readonly #ctrl: Int32Array;
  readonly #data: Float64Array;
  /** Rounds this rank has completed: the generation it waits on next (the same on every rank). */
  #gen = 0;
  /** Calls run one after another, in the order they were made. */
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * The shared memory of a group of `worldSize` ranks, made once (in the main
   * thread) and handed to every rank.
   */
  static createGroup(worldSize: number, options: WorkerGroupOptions = {}): WorkerGroup {
    checkInteger(worldSize, 'worldSize', 1, 1 << 16);
    checkOptions(options, 'WorkerCollective.createGroup', ['slotLength', 'timeoutMs']);
    const slotLength = checkInteger(options.slotLength ?? 16384, 'slotLength', 1, 1 << 24);
    const timeoutMs = checkInteger(options.timeoutMs ?? 0, 'timeoutMs', 0, 2 ** 31 - 1);
    const control = new SharedArrayBuffer(4 * (JOINED + worldSize + 2 * worldSize * HEADER));
    const data = new SharedArrayBuffer(8 * 2 * worldSize * slotLength);
    return { worldSize, slotLength, timeoutMs, control, data };
  }

  /**
   * Joins `group` as `rank`: once per rank (a second join of a rank throws:
   * two members with one rank would wait for a missing one forever).
   */
  static join(group: WorkerGroup, rank: number): WorkerCollective {
    return new WorkerCollective(group, rank);
  }

  /**
   * Aborts the group: every pending and later call of every rank rejects.
   * For the main thread when a worker died (its 'error' or 'exit' event), so
   * that the others do not wait for it forever.
   */
  static abort(group: WorkerGroup): void {
    const ctrl = new Int32Array(checkGroup(group).control);
    Atomics.store(ctrl, ABORTED, 1);
    Atomics.notify(ctrl, GEN);
  }

  private constructor(group: WorkerGroup, rank: number) {
    const g = checkGroup(group);
    this.worldSize = g.worldSize;
    this.rank = checkInteger(rank, 'rank', 0, g.worldSize - 1, `the group has ${g.worldSize} ranks`);
    this.#slot = g.slotLength;
    this.#timeoutMs = g.timeoutMs;
    this.#ctrl = new Int32Array(g.control);
    this.#data = new Float64Array(g.data);
    if (Atomics.compareExchange(this.#ctrl, JOINED + rank, 0, 1) !== 0)
      throw rangeError('rank', 'a rank of this group that has not joined yet', rank, `rank ${rank} has already joined: give each worker its own rank`);
  }

  allGather(data: Float64Array): Promise<Float64Array> {
    return this.#enqueue(OP_GATHER, data);
  }

  allReduceSum(data: Float64Array): Promise<Float64Array> {
    return this.#enqueue(OP_SUM, data);
  }

  /** The input is copied now, so the caller may reuse it at once; calls run in order. */
  #enqueue(op: number, data: unknown): Promise<Float64Array> {
    let input: Float64Array | null = null,
      error: Error | null = null;
    if (!(data instanceof Float64Array)) error = typeError(`data of ${OP_NAMES[op]}`, 'a Float64Array', data);
    else if (data.length > 0x7fffffff) error = rangeError(`data of ${OP_NAMES[op]}`, 'a Float64Array of at most 2^31 - 1 values', data);
    else input = data.slice();
    const run = this.#tail.then(() => this.#run(error ? OP_INVALID : op, input ?? new Float64Array(0), error));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #run(op: number, input: Float64Array, error: Error | null): Promise<Float64Array> {
    const W = this.worldSize,
      total = input.length;
    const out = new Float64Array(op === OP_GATHER ? W * total : total);
    // A zero-length call still takes one round: the ranks check each other's headers.
    for (let start = 0; start === 0 || start < total; start += this.#slot) {
      const len = Math.min(this.#slot, total - start);
      const parity = this.#gen & 1,
        headers = JOINED + W + parity * W * HEADER;
      const mine = headers + this.rank * HEADER;
      this.#ctrl[mine] = op;
      this.#ctrl[mine + 1] = total;
      this.#ctrl[mine + 2] = len;
      const slots = parity * W * this.#slot;
      this.#data.set(input.subarray(start, start + len), slots + this.rank * this.#slot);
      await this.#barrier();
      this.#checkHeaders(headers, op, total, error);
      for (let r = 0; r < W; r++) {
        const slot = this.#data.subarray(slots + r * this.#slot, slots + r * this.#slot + len);
        if (op === OP_GATHER) out.set(slot, r * total + start);
        else if (r === 0) out.set(slot, start);
        else for (let i = 0; i < len; i++) out[start + i] += slot[i];
      }
    }
    return out;
  }

  /** Every rank sees the same headers, so every rank throws the same error (the invalid rank its own). */
  #checkHeaders(headers: number, op: number, total: number, error: Error | null): void {
    if (error) throw error;
    const ops: number[] = [],
      totals: number[] = [];
    for (let r = 0; r < this.worldSize; r++) {
      ops.push(this.#ctrl[headers + r * HEADER]);
      totals.push(this.#ctrl[headers + r * HEADER + 1]);
    }
    const bad = ops.indexOf(OP_INVALID);
    if (bad >= 0) throw new Error(`${OP_NAMES[op]} failed on rank ${this.rank} because rank ${bad}'s call was invalid (see the error on rank ${bad})`);
    if (ops.some((o) => o !== op))
      throw collectiveMismatchError(
        OP_NAMES[op],
        'collective',
        ops.map((o) => OP_NAMES[o]),
      );
    if (totals.some((t) => t !== total)) throw collectiveMismatchError(OP_NAMES[op], 'length', totals.map(String));
  }

  /** Arrive; the last to arrive advances the generation and wakes the others. */
  async #barrier(): Promise<void> {
    const ctrl = this.#ctrl,
      gen = this.#gen;
    this.#throwIfAborted();
    if (Atomics.add(ctrl, ARRIVED, 1) + 1 === this.worldSize) {
      Atomics.store(ctrl, ARRIVED, 0);
      Atomics.add(ctrl, GEN, 1);
      Atomics.notify(ctrl, GEN);
    } else {
      while (Atomics.load(ctrl, GEN) === gen) {
        this.#throwIfAborted();
        const w = waitAsync(ctrl, GEN, gen, this.#timeoutMs > 0 ? this.#timeoutMs : Infinity);
        let result: string;
        if (!w.async) result = w.value;
        else {
          // A pending waitAsync does not keep Node's event loop alive: a
          // worker with nothing else to do would exit mid-collective. A
          // timer that never fires holds it (it wakes nothing: no polling).
          const keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
          try {
            result = await w.value;
          } finally {
            clearInterval(keepAlive);
          }
        }
        if (result === 'timed-out' && Atomics.load(ctrl, GEN) === gen) {
          const arrived = Atomics.load(ctrl, ARRIVED);
          Atomics.store(ctrl, ABORTED, 1);
          Atomics.notify(ctrl, GEN);
          throw new Error(
            `WorkerCollective rank ${this.rank}: timed out after ${this.#timeoutMs} ms with ${arrived} of ${this.worldSize} ranks arrived; the group is aborted`,
          );
        }
      }
    }
    this.#gen = gen + 1;
  }

  #throwIfAborted(): void {
    if (Atomics.load(this.#ctrl, ABORTED))
      throw new Error(`WorkerCollective rank ${this.rank}: the group was aborted (a rank timed out, or WorkerCollective.abort was called)`);
  }
}
