/**
 * Non-finite input propagates as in PyTorch: no exception, no crash, and the
 * damage stays in its channel. NaN (or ±Inf) in one channel's input makes that
 * channel's batch statistics, output, running statistics and input gradient
 * NaN in training, while every other channel stays finite; in eval (and in the
 * frozen backward) y and dx are elementwise, so only the bad elements go bad.
 * Runs on both paths (vitest projects 'native' and 'js'), both dtypes, both
 * layouts, and sizes that take one block / the multi-block, multi-thread route
 * of the native kernels.
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm2d, backendInfo, batchNorm, batchNormBackward } from '../../lib/index.js';
import type { FloatArray } from '../../lib/index.js';
import { randn } from '../helpers.js';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

it(`runs on the ${process.env.BATCHNORM_BACKEND} path`, () => {
  expect(backendInfo().backend).toBe(process.env.BATCHNORM_BACKEND);
});

const C = 4,
  BAD_CH = 2,
  OTHER_CH = 1;
/** [N, H, W]: 10 values per channel (one block), and 3·240·100 = 72 000 per channel (288 000 elements ≥ 2¹⁸: blocks, units, threads). */
const SIZES = [
  [2, 1, 5],
  [3, 240, 100],
] as const;

interface Setup {
  T: Ctor;
  channelsLast: boolean;
  n: number;
  s: number;
  shape: number[];
}

function setups(): Array<[string, Setup]> {
  const out: Array<[string, Setup]> = [];
  for (const T of [Float32Array, Float64Array])
    for (const channelsLast of [false, true])
      for (const [n, h, w] of SIZES)
        out.push([
          `${T.name} ${channelsLast ? 'NHWC' : 'NCHW'} ${n}x${C}x${h}x${w}`,
          { T, channelsLast, n, s: h * w, shape: channelsLast ? [n, h, w, C] : [n, C, h, w] },
        ]);
  return out;
}

function idx(u: Setup, i: number, ch: number, j: number): number {
  return u.channelsLast ? (i * u.s + j) * C + ch : (i * C + ch) * u.s + j;
}

/** Whether every value of channel ch satisfies p. */
function channelEvery(u: Setup, a: ArrayLike<number>, ch: number, p: (v: number) => boolean): boolean {
  for (let i = 0; i < u.n; i++) for (let j = 0; j < u.s; j++) if (!p(a[idx(u, i, ch, j)])) return false;
  return true;
}

const cache = new Map<string, FloatArray>();
/** Normal values (mean 0.5, std 2), a fresh copy each call. */
function data(u: Setup, seed: number): FloatArray {
  const key = `${u.T.name} ${u.n} ${u.s} ${seed}`;
  if (!cache.has(key)) cache.set(key, randn(u.n * C * u.s, seed, 0.5, 2, u.T));
  return cache.get(key)!.slice();
}

/** A position inside channel ch, away from the block edges. */
function spot(u: Setup, ch: number): number {
  return idx(u, u.n - 1, ch, Math.floor(u.s / 2));
}

const isNaN_ = Number.isNaN;
const nonFinite = (v: number) => !Number.isFinite(v);
function allFinite(v: ArrayLike<number>): boolean {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
  return true;
}

/** Channel ch all NaN (or all non-finite); every other channel finite. */
function expectChannelNaN(u: Setup, a: ArrayLike<number>, ch: number, what: string, nanOnly = true): void {
  for (let k = 0; k < C; k++) {
    if (k === ch) expect(channelEvery(u, a, k, nanOnly ? isNaN_ : nonFinite), `${what}: channel ${k} all ${nanOnly ? 'NaN' : 'non-finite'}`).toBe(true);
    else expect(channelEvery(u, a, k, Number.isFinite), `${what}: channel ${k} finite`).toBe(true);
  }
}

/** Exactly the element at `at` is non-finite (of the given kind), the rest finite. */
function expectOnlyAt(a: ArrayLike<number>, at: number, expected: number, what: string): void {
  expect(Object.is(a[at], expected) || (Number.isNaN(expected) && Number.isNaN(a[at])), `${what}[${at}] is ${a[at]}, expected ${expected}`).toBe(true);
  for (let i = 0; i < a.length; i++) if (i !== at && !Number.isFinite(a[i])) expect.fail(`${what}[${i}] is ${a[i]}, expected finite`);
}

/** Per-channel array: entry ch satisfies `bad`, the others are finite. */
function expectEntry(a: ArrayLike<number>, ch: number, bad: (v: number) => boolean, what: string): void {
  for (let k = 0; k < a.length; k++) {
    if (k === ch) expect(bad(a[k]), `${what}[${k}] is ${a[k]}`).toBe(true);
    else expect(Number.isFinite(a[k]), `${what}[${k}] is ${a[k]}, expected finite`).toBe(true);
  }
}

describe.each(setups())('%s', (_label, u) => {
  const layout = u.channelsLast ? 'NHWC' : 'NCHW';

  it.each([NaN, Infinity, -Infinity])('%s in one channel of x: training forward, backward, then eval', (bad) => {
    const bn = new BatchNorm2d(C, { layout, dtype: u.T === Float64Array ? 'float64' : 'float32' });
    const x = data(u, 1);
    x[spot(u, BAD_CH)] = bad;
    const shape = u.shape;
    const y = bn.forward({ data: x, shape });
    expectChannelNaN(u, y.data, BAD_CH, 'y');
    // PyTorch: mean = Σx/m (NaN, or ±Inf for an infinity), var = Σ(x − mean)²/m = NaN.
    expectEntry(bn.runningVar!, BAD_CH, isNaN_, 'runningVar');
    expectEntry(bn.runningMean!, BAD_CH, Number.isNaN(bad) ? isNaN_ : nonFinite, 'runningMean');
    expect(bn.numBatchesTracked).toBe(1);

    // Backward through the batch statistics: Σdy is finite, Σdy·x̂ and every dx of the channel NaN.
    const dy = data(u, 2);
    const dx = bn.backward({ data: dy, shape });
    expectChannelNaN(u, dx.data, BAD_CH, 'dx');
    expectEntry(bn.weight!.grad!, BAD_CH, isNaN_, 'weight.grad');
    expect(allFinite(bn.bias!.grad!), 'bias.grad finite').toBe(true);

    // Eval with the poisoned running statistics: the whole channel is NaN, the rest finite.
    bn.eval();
    const z = bn.forward({ data: data(u, 3), shape });
    expectChannelNaN(u, z.data, BAD_CH, 'eval y');
  });

  it.each([NaN, Infinity, -Infinity])('%s in one element of x in eval: only that element of y; frozen backward', (bad) => {
    const bn = new BatchNorm2d(C, { layout, dtype: u.T === Float64Array ? 'float64' : 'float32' });
    bn.runningMean!.set([0.5, -1, 2, 0.25]);
    bn.runningVar!.set([1, 4, 0.5, 2]);
    bn.eval();
    const x = data(u, 4),
      at = spot(u, BAD_CH);
    x[at] = bad;
    const y = bn.forward({ data: x, shape: u.shape });
    expectOnlyAt(y.data, at, bad, 'y'); // weight 1 > 0: the sign of an infinity survives
    // Frozen backward: dx = dy·γ·invstd never reads x (finite); dγ = Σdy·x̂ of the channel is not finite.
    const dx = bn.backward({ data: data(u, 5), shape: u.shape });
    expect(allFinite(dx.data), 'dx finite').toBe(true);
    expectEntry(bn.weight!.grad!, BAD_CH, nonFinite, 'weight.grad');
    expect(allFinite(bn.bias!.grad!), 'bias.grad finite').toBe(true);
  });

  it.each([NaN, Infinity])('%s in one element of dy: training and frozen backward', (bad) => {
    const x = { data: data(u, 6), shape: u.shape };
    const dyData = data(u, 7),
      at = spot(u, OTHER_CH);
    dyData[at] = bad;
    const dy = { data: dyData, shape: u.shape };
    // Training: Σdy and Σdy·x̂ of the channel go bad, and with them its whole dx
    // (NaN for a NaN; for an infinity dy − Σdy/m − x̂·Σdy·x̂/m is ±Inf or Inf − Inf = NaN).
    const f = batchNorm(x, null, null, { training: true, layout });
    const g = batchNormBackward(dy, x, { saveMean: f.saveMean, saveInvstd: f.saveInvstd, training: true, layout });
    expectChannelNaN(u, g.gradInput.data, OTHER_CH, 'dx', Number.isNaN(bad));
    expectEntry(g.gradBias, OTHER_CH, (v) => Object.is(v, bad) || (Number.isNaN(bad) && Number.isNaN(v)), 'gradBias');
    expectEntry(g.gradWeight, OTHER_CH, nonFinite, 'gradWeight');
    // Frozen: dx = dy·k1 is elementwise.
    const h = batchNormBackward(dy, x, { saveMean: f.saveMean, saveInvstd: f.saveInvstd, training: false, layout });
    expectOnlyAt(h.gradInput.data, at, bad, 'frozen dx');
    expectEntry(h.gradBias, OTHER_CH, nonFinite, 'frozen gradBias');
  });

  it('NaN in the functional forward: saveMean and saveInvstd of that channel, running statistics updated to NaN', () => {
    const x = data(u, 8);
    x[spot(u, BAD_CH)] = NaN;
    const rm = new u.T(C),
      rv = new u.T(C).fill(1);
    const r = batchNorm({ data: x, shape: u.shape }, rm, rv, { training: true, layout, momentum: 0.1 });
    expectChannelNaN(u, r.data, BAD_CH, 'y');
    expectEntry(r.saveMean, BAD_CH, isNaN_, 'saveMean');
    expectEntry(r.saveInvstd, BAD_CH, isNaN_, 'saveInvstd');
    expectEntry(rm, BAD_CH, isNaN_, 'runningMean');
    expectEntry(rv, BAD_CH, isNaN_, 'runningVar');
  });

  it('NaN in the weight or bias of one channel: only that channel of y', () => {
    const x = { data: data(u, 9), shape: u.shape };
    for (const which of ['weight', 'bias'] as const) {
      const p = new u.T(C).fill(which === 'weight' ? 1 : 0);
      p[BAD_CH] = NaN;
      for (const training of [true, false]) {
        const r = batchNorm(x, new u.T(C), new u.T(C).fill(1), { training, layout, [which]: p });
        expectChannelNaN(u, r.data, BAD_CH, `${which} NaN, training ${training}: y`);
      }
    }
  });
});
