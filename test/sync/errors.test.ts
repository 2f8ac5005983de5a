/**
 * A bad collective — a rank out of range, ranks that disagree on the length
 * (different channel counts), a transport that resolves to the wrong length,
 * a rejected Promise — gives a clear error and changes nothing of the module:
 * running statistics, numBatchesTracked, gradients, and what the next
 * backward uses.
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm2d, SyncBatchNorm, WorkerCollective, type Collective } from '../../lib/index.js';

const x = { data: Float32Array.from({ length: 4 * 3 * 2 }, (_, i) => Math.sin(i) * 2 + 1), shape: [4, 3, 2, 1] };
const dy = { data: Float32Array.from({ length: 4 * 3 * 2 }, (_, i) => Math.cos(i)), shape: [4, 3, 2, 1] };

/** A group of one whose calls can be made to fail. */
function faulty(): Collective & { fail: 'reject' | 'short' | null } {
  const c = {
    rank: 0,
    worldSize: 1,
    fail: null as 'reject' | 'short' | null,
    async allGather(d: Float64Array) {
      if (c.fail === 'reject') throw new Error('connection reset');
      return c.fail === 'short' ? d.subarray(1) : d.slice();
    },
    async allReduceSum(d: Float64Array) {
      if (c.fail === 'reject') throw new Error('connection reset');
      return c.fail === 'short' ? d.subarray(1) : d.slice();
    },
  };
  return c;
}

function snapshot(m: SyncBatchNorm) {
  return JSON.stringify({ sd: m.stateDict(), wg: m.weight?.grad && Array.from(m.weight.grad), bg: m.bias?.grad && Array.from(m.bias.grad) });
}

describe('SyncBatchNorm with a bad collective', () => {
  it('a rank out of range: at construction, and before a call sends anything', async () => {
    const bad = { ...faulty(), rank: 1 };
    expect(() => new SyncBatchNorm(3, bad)).toThrow(
      new RangeError('Expected an integer in [0, 0] (worldSize 1) for collective.rank but received the number 1: give each member of the group its own rank'),
    );
    const m = new SyncBatchNorm(3, faulty());
    const before = snapshot(m);
    m.collective = bad;
    await expect(m.forward(x)).rejects.toThrow(RangeError);
    expect(snapshot(m)).toBe(before);
  });

  for (const fail of ['reject', 'short'] as const) {
    it(`a collective that ${fail === 'reject' ? 'rejects' : 'resolves to the wrong length'}: forward and backward change nothing, and work once it is fixed`, async () => {
      const c = faulty();
      const m = new SyncBatchNorm(3, c, { momentum: 0.5 });
      await m.forward(x);
      await m.backward(dy);
      const before = snapshot(m);
      c.fail = fail;
      const message =
        fail === 'reject'
          ? /collective.allGather \(rank 0 of 1\) rejected: connection reset/
          : /Expected a Float64Array of 7 values \(1 ranks × 7\) for collective.allGather's result but received a Float64Array of length 6/;
      await expect(m.forward({ data: x.data.map((v) => v * 3), shape: x.shape })).rejects.toThrow(message);
      expect(snapshot(m)).toBe(before);
      await expect(m.backward(dy)).rejects.toThrow(
        fail === 'reject' ? /collective.allReduceSum \(rank 0 of 1\) rejected: connection reset/ : /Expected a Float64Array of 6 values \(the input length\)/,
      );
      expect(snapshot(m)).toBe(before);
      c.fail = null;
      // The failed forward left the first one's statistics for the backward: its gradients again.
      const g0 = Array.from(m.weight!.grad!);
      await m.backward(dy);
      expect(Array.from(m.weight!.grad!)).toEqual(g0.map((v) => Math.fround(v + v)));
      expect(m.numBatchesTracked).toBe(1);
    });
  }

  it('ranks whose lengths differ (different channel counts) reject on every rank and change nothing', async () => {
    const g = WorkerCollective.createGroup(2);
    const a = new SyncBatchNorm(3, WorkerCollective.join(g, 0)),
      b = new SyncBatchNorm(2, WorkerCollective.join(g, 1));
    const before = [snapshot(a), snapshot(b)];
    const r = await Promise.allSettled([a.forward(x), b.forward({ data: x.data.subarray(0, 16), shape: [4, 2, 2, 1] })]);
    for (const s of r)
      expect(s.status === 'rejected' && String(s.reason)).toMatch(
        /rejected: Expected every rank to pass the same length to allGather, but the ranks passed 7 \(rank 0\), 5 \(rank 1\)/,
      );
    expect([snapshot(a), snapshot(b)]).toEqual(before);
  });

  it('one call at a time; unknown options; more than one value per channel over all ranks', async () => {
    const m = new SyncBatchNorm(3, faulty());
    const p = m.forward(x);
    await expect(m.forward(x)).rejects.toThrow('SyncBatchNorm.forward() called while forward() is still running; await it first');
    await p;
    expect(() => new SyncBatchNorm(3, faulty(), { epsilon: 1e-3 } as never)).toThrow(
      /Expected only the options eps, momentum, .* for SyncBatchNorm but received an unknown option "epsilon"/,
    );
    const before = snapshot(m);
    await expect(m.forward({ data: new Float32Array(3), shape: [1, 3] })).rejects.toThrow(
      /Expected more than 1 value per channel when training, got 1 over the 1 ranks/,
    );
    expect(snapshot(m)).toBe(before);
    await expect(m.forward({ data: new Float32Array(8), shape: [2, 4] })).rejects.toThrow(/SyncBatchNorm expected input with 3 channels/);
  });

  it("eval mode needs no communication, with the running statistics or (without them) the slice's own, as PyTorch's", async () => {
    const c = faulty();
    c.fail = 'reject';
    const m = new SyncBatchNorm(3, c).eval();
    const bn = new BatchNorm2d(3).eval();
    expect(Array.from((await m.forward(x)).data)).toEqual(Array.from(bn.forward(x).data));
    expect(Array.from((await m.backward(dy)).data)).toEqual(Array.from(bn.backward(dy).data));
    m.runningMean = m.runningVar = bn.runningMean = bn.runningVar = null;
    expect(Array.from((await m.forward(x)).data)).toEqual(Array.from(bn.forward(x).data));
    expect(Array.from((await m.backward(dy)).data)).toEqual(Array.from(bn.backward(dy).data));
    expect(Array.from(m.weight!.grad!)).toEqual(Array.from(bn.weight!.grad!));
  });

  it('convert shares the parameters and buffers with the BatchNorm, and walks nested objects', () => {
    const bn = new BatchNorm2d(3).eval();
    const model = { blocks: [{ bn }, { other: 1 }], head: bn };
    SyncBatchNorm.convert(model, faulty());
    const s = model.blocks[0].bn as unknown as SyncBatchNorm;
    expect(s).toBeInstanceOf(SyncBatchNorm);
    expect(model.head).toBeInstanceOf(SyncBatchNorm);
    expect(s.weight).toBe(bn.weight);
    expect(s.runningVar).toBe(bn.runningVar);
    expect(s.training).toBe(false);
  });
});
