/**
 * WorkerCollective (ranks in this thread; test/sync/workers.test.ts runs them
 * in worker_threads), the Collective checks and allReduceGradients.
 */
import { describe, expect, it } from 'vitest';
import { allReduceGradients, checkCollective, WorkerCollective, type Collective } from '../../lib/index.js';

function group(n: number, options?: Parameters<typeof WorkerCollective.createGroup>[1]): WorkerCollective[] {
  const g = WorkerCollective.createGroup(n, options);
  return Array.from({ length: n }, (_, r) => WorkerCollective.join(g, r));
}

describe('WorkerCollective', () => {
  it('allGather concatenates in rank order, over several rounds when the arrays are longer than a slot', async () => {
    const ranks = group(3, { slotLength: 4 });
    const data = ranks.map((c) => Float64Array.from({ length: 10 }, (_, i) => 100 * c.rank + i));
    const out = await Promise.all(ranks.map((c, r) => c.allGather(data[r])));
    const expected = [...data[0], ...data[1], ...data[2]];
    for (const o of out) expect(Array.from(o)).toEqual(expected);
    expect(Array.from(data[1]), 'the input is not modified').toEqual(Array.from({ length: 10 }, (_, i) => 100 + i));
  });

  it('allReduceSum adds in rank order: identical bits on every rank, those of ((a + b) + c)', async () => {
    const ranks = group(3, { slotLength: 3 });
    const values = [
      [0.1, 1e16, -1],
      [0.2, 1, 3e-17],
      [0.3, -1e16, 7],
    ];
    const out = await Promise.all(ranks.map((c, r) => c.allReduceSum(Float64Array.from(values[r]))));
    const expected = values[0].map((_, i) => values[0][i] + values[1][i] + values[2][i]);
    for (const o of out) expect(Array.from(o)).toEqual(expected);
  });

  it('zero-length calls and calls in a row (not awaited one by one) run in order', async () => {
    const ranks = group(2);
    const all = await Promise.all(
      ranks.map((c) => Promise.all([c.allGather(new Float64Array(0)), c.allReduceSum(Float64Array.of(c.rank + 1)), c.allGather(Float64Array.of(c.rank))])),
    );
    for (const [a, b, g] of all) {
      expect(a.length).toBe(0);
      expect(Array.from(b)).toEqual([3]);
      expect(Array.from(g)).toEqual([0, 1]);
    }
  });

  it('refuses a rank out of range, a rank joined twice, and a bad group', () => {
    const g = WorkerCollective.createGroup(2);
    expect(() => WorkerCollective.join(g, 2)).toThrow(
      new RangeError('Expected an integer in [0, 1] for rank but received the number 2: the group has 2 ranks'),
    );
    expect(() => WorkerCollective.join(g, -1)).toThrow(RangeError);
    expect(() => WorkerCollective.join(g, 0.5)).toThrow(RangeError);
    expect(() => WorkerCollective.join(g, '0' as unknown as number)).toThrow(TypeError);
    WorkerCollective.join(g, 0);
    expect(() => WorkerCollective.join(g, 0)).toThrow(/rank 0 has already joined: give each worker its own rank/);
    expect(() => WorkerCollective.join({} as never, 0)).toThrow(/Expected a group made by WorkerCollective.createGroup\(\) for group but received an object/);
    expect(() => WorkerCollective.createGroup(0)).toThrow(RangeError);
  });

  it('different lengths, different collectives and an invalid argument reject on every rank; the group then works on', async () => {
    const [a, b] = group(2);
    const lengths = await Promise.allSettled([a.allGather(new Float64Array(2)), b.allGather(new Float64Array(3))]);
    for (const r of lengths)
      expect(r.status === 'rejected' && String(r.reason)).toBe(
        'RangeError: Expected every rank to pass the same length to allGather, but the ranks passed 2 (rank 0), 3 (rank 1)',
      );
    const ops = await Promise.allSettled([a.allGather(new Float64Array(2)), b.allReduceSum(new Float64Array(2))]);
    for (const r of ops) expect(r.status === 'rejected' && String(r.reason)).toMatch(/the ranks called allGather \(rank 0\), allReduceSum \(rank 1\)/);
    const invalid = await Promise.allSettled([a.allReduceSum(new Float64Array(2)), b.allReduceSum(new Float32Array(2) as unknown as Float64Array)]);
    expect(invalid[0].status === 'rejected' && String(invalid[0].reason)).toBe(
      "Error: allReduceSum failed on rank 0 because rank 1's call was invalid (see the error on rank 1)",
    );
    expect(invalid[1].status === 'rejected' && String(invalid[1].reason)).toBe(
      'TypeError: Expected a Float64Array for data of allReduceSum but received a Float32Array of length 2',
    );
    const after = await Promise.all([a.allGather(Float64Array.of(1)), b.allGather(Float64Array.of(2))]);
    expect(Array.from(after[0])).toEqual([1, 2]);
  });

  it('a rank that never comes: the timeout aborts the group, and every later call rejects', { timeout: 30_000 }, async () => {
    const [a, b] = group(2, { timeoutMs: 50 });
    await expect(a.allGather(Float64Array.of(1))).rejects.toThrow(/rank 0: timed out after 50 ms with 1 of 2 ranks arrived; the group is aborted/);
    await expect(b.allGather(Float64Array.of(1))).rejects.toThrow(/the group was aborted/);
  });

  it('abort() wakes a waiting rank with an error', { timeout: 30_000 }, async () => {
    const g = WorkerCollective.createGroup(2);
    const a = WorkerCollective.join(g, 0);
    const pending = a.allReduceSum(Float64Array.of(1));
    setTimeout(() => WorkerCollective.abort(g), 20);
    await expect(pending).rejects.toThrow(/the group was aborted/);
  });
});

describe('checkCollective', () => {
  const ok = { rank: 0, worldSize: 2, allGather: async (d: Float64Array) => d, allReduceSum: async (d: Float64Array) => d };
  it('names what is wrong', () => {
    expect(checkCollective(ok)).toBe(ok);
    expect(() => checkCollective({ ...ok, rank: 2 })).toThrow(
      new RangeError('Expected an integer in [0, 1] (worldSize 2) for collective.rank but received the number 2: give each member of the group its own rank'),
    );
    expect(() => checkCollective({ ...ok, worldSize: 0 })).toThrow(
      new RangeError('Expected a positive integer for collective.worldSize but received the number 0'),
    );
    expect(() => checkCollective({ ...ok, allReduceSum: undefined })).toThrow(TypeError);
    expect(() => checkCollective(null)).toThrow(/Expected a Collective \{ rank, worldSize, allGather, allReduceSum \} for collective but received null/);
  });
});

describe('allReduceGradients', () => {
  it('averages (or sums) the gradients of any parameters; a null grad takes part as zeros', async () => {
    const ranks = group(3, { slotLength: 5 });
    const params = ranks.map((c) => [
      { data: new Float32Array(4), grad: Float32Array.of(1, 2, 3, 4).map((v) => v * (c.rank + 1)) },
      { data: new Float64Array(3), grad: c.rank === 1 ? null : Float64Array.of(0.5, 0.25, 3).map((v) => v + c.rank) },
    ]);
    await Promise.all(ranks.map((c, r) => allReduceGradients(params[r], c)));
    for (const p of params) {
      expect(Array.from(p[0].grad!)).toEqual([2, 4, 6, 8]);
      expect(Array.from(p[1].grad!)).toEqual([(0.5 + 2.5) / 3, (0.25 + 2.25) / 3, (3 + 5) / 3]);
      expect(p[1].grad).toBeInstanceOf(Float64Array);
    }
    await Promise.all(ranks.map((c, r) => allReduceGradients(params[r], c, { op: 'sum' })));
    expect(Array.from(params[2][0].grad!)).toEqual([6, 12, 18, 24]);
  });

  it('changes nothing when the collective rejects; refuses bad parameters and options', async () => {
    const failing: Collective = {
      rank: 0,
      worldSize: 2,
      allGather: () => Promise.reject(new Error('link down')),
      allReduceSum: () => Promise.reject(new Error('link down')),
    };
    const p = { data: new Float32Array(2), grad: Float32Array.of(1, 2) };
    await expect(allReduceGradients([p], failing)).rejects.toThrow('collective.allReduceSum (rank 0 of 2) rejected: link down');
    expect(Array.from(p.grad)).toEqual([1, 2]);
    await expect(allReduceGradients([{ data: new Float32Array(2), grad: new Float32Array(3) }], failing)).rejects.toThrow(
      'Expected null or a Float32Array of length 2 (like its data) for parameters[0].grad but received a Float32Array of length 3',
    );
    await expect(allReduceGradients([p], failing, { op: 'max' as 'sum' })).rejects.toThrow('Expected one of mean, sum for op but received the string "max"');
    const short: Collective = { ...failing, allReduceSum: async () => new Float64Array(1) };
    await expect(allReduceGradients([p], short)).rejects.toThrow(
      /Expected a Float64Array of 2 values \(the input length\) for collective.allReduceSum's result but received a Float64Array of length 1/,
    );
    expect(Array.from(p.grad)).toEqual([1, 2]);
  });
});
