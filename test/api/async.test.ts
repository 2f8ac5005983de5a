/** Promise forms: same results as sync, rejections instead of throws, and the event loop keeps ticking (native path). */
import { expect, it } from 'vitest';
import { BatchNorm2d, backendInfo, batchNorm, batchNormAsync, batchNormBackward, batchNormBackwardAsync } from '../../lib/index.js';
import { randn } from '../helpers.js';

it('forwardAsync/backwardAsync give the sync results', async () => {
  const x = { data: randn(4 * 3 * 25, 1) as Float32Array, shape: [4, 3, 5, 5] },
    dy = { data: randn(300, 2) as Float32Array, shape: x.shape };
  const a = new BatchNorm2d(3),
    b = new BatchNorm2d(3);
  const ya = a.forward(x),
    yb = await b.forwardAsync(x);
  expect(yb.data).toEqual(ya.data);
  expect((await b.backwardAsync(dy)).data).toEqual(a.backward(dy).data);
  expect(b.stateDict()).toEqual(a.stateDict());
  expect(b.weight!.grad).toEqual(a.weight!.grad);
  // The functional forms: every output bitwise the sync one's, training and eval.
  const w = randn(3, 5) as Float32Array,
    bias = randn(3, 6) as Float32Array;
  for (const training of [true, false]) {
    const rmS = Float32Array.of(0.5, -1, 2),
      rvS = Float32Array.of(1, 4, 0.5),
      rmA = rmS.slice(),
      rvA = rvS.slice();
    const opts = { weight: w, bias, training, momentum: 0.3 };
    const s = batchNorm(x, rmS, rvS, opts),
      r = await batchNormAsync(x, rmA, rvA, opts);
    for (const key of ['data', 'saveMean', 'saveInvstd'] as const) expect(r[key], `batchNormAsync ${key} (training ${training})`).toEqual(s[key]);
    expect(rmA).toEqual(rmS);
    expect(rvA).toEqual(rvS);
    const bopts = { weight: w, saveMean: s.saveMean, saveInvstd: s.saveInvstd, training };
    const gs = batchNormBackward(dy, x, bopts),
      g = await batchNormBackwardAsync(dy, x, bopts);
    expect(g.gradInput.data, `batchNormBackwardAsync dx (training ${training})`).toEqual(gs.gradInput.data);
    expect(g.gradWeight).toEqual(gs.gradWeight);
    expect(g.gradBias).toEqual(gs.gradBias);
  }
});

it('rejects on bad input, changes nothing, and refuses overlapping calls on one module', async () => {
  const bn = new BatchNorm2d(3);
  const before = JSON.stringify(bn.stateDict());
  await expect(bn.forwardAsync({ data: new Float32Array(3), shape: [1, 3, 1, 1] })).rejects.toThrow(RangeError);
  await expect(bn.forwardAsync({ data: new Float32Array(12), shape: [2, 3, 2, 1] }, { out: new Float32Array(2) })).rejects.toThrow(/for out/);
  expect(JSON.stringify(bn.stateDict())).toBe(before);
  const x = { data: randn(2 * 3 * 50, 3) as Float32Array, shape: [2, 3, 10, 5] };
  const p = bn.forwardAsync(x);
  expect(() => bn.forward(x)).toThrow(/while forwardAsync\(\) is still running/);
  await p;
  expect(bn.numBatchesTracked).toBe(1);
});

it('keeps the event loop ticking during one long call', async () => {
  const shape = [64, 64, 64, 64],
    n = shape.reduce((a, b) => a * b, 1);
  const x = { data: randn(n, 4) as Float32Array, shape },
    out = new Float32Array(n);
  const bn = new BatchNorm2d(64);
  let turns = 0,
    running = true;
  const spin = () => {
    turns++;
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  const t0 = performance.now();
  await bn.forwardAsync(x, { out });
  const ms = performance.now() - t0;
  running = false;
  expect(bn.numBatchesTracked).toBe(1);
  // Off the event loop the loop turns all through the call (a turn takes
  // microseconds); a call on the loop would allow at most a couple.
  if (backendInfo().backend === 'native') expect(turns, `${turns} turns in ${ms.toFixed(1)} ms`).toBeGreaterThan(20);
}, 120_000);
