/**
 * The known failures of other libraries' norms, as regression tests on both
 * backends: one-pass variance on rows far from 0 (PyTorch #40302, #51102),
 * folding the mean into a·x + b (a constant row must give exactly 0, #108072),
 * values near 1e30 (#178123), sequential float32 sums over a group of 3.8e7
 * values (#54293), a normalizedShape of (1,) (#188372); and gradients with
 * random, negative weights against finite differences.
 */
import { describe, expect, it } from 'vitest';
import {
  GroupNorm,
  InstanceNorm2d,
  LayerNorm,
  RMSNorm,
  groupNorm,
  groupNormBackward,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
} from '../../lib/index.js';
import { expectClose, randn, rng } from '../helpers.js';

/** Per-row mean and invstd in float64, two passes. */
function rowStats(x: ArrayLike<number>, rows: number, d: number, eps: number) {
  const mean = new Float64Array(rows),
    invstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[r * d + k];
    const mu = s / d;
    let q = 0;
    for (let k = 0; k < d; k++) q += (x[r * d + k] - mu) ** 2;
    mean[r] = mu;
    invstd[r] = 1 / Math.sqrt(q / d + eps);
  }
  return { mean, invstd };
}

function normalized(x: ArrayLike<number>, rows: number, d: number, mean: ArrayLike<number>, invstd: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) for (let k = 0; k < d; k++) y[r * d + k] = (x[r * d + k] - mean[r]) * invstd[r];
  return y;
}

describe('rows far from 0 (one-pass variance: PyTorch #40302, #51102)', () => {
  it.each([
    ['randn·0.01 + 100', 100, 0.01],
    ['mean 2000', 2000, 1],
    ['mean 1e4, std 1e-3', 1e4, 1e-3],
  ])('%s: LayerNorm and GroupNorm statistics and outputs to float64 precision', (_l, offset, std) => {
    const rows = 6,
      d = 4099;
    const x = randn(rows * d, 7, offset, std) as Float32Array;
    const ref = rowStats(x, rows, d, 1e-5),
      want = normalized(x, rows, d, ref.mean, ref.invstd);
    const y = layerNorm({ data: x, shape: [rows, d] }, d);
    expectClose(y.saveMean, ref.mean, 1e-7, 0, 'mean');
    expectClose(y.saveInvstd, ref.invstd, 1e-6, 0, 'invstd');
    expectClose(y.data, want, 1e-6, 1e-5, 'y');
    // The same rows as GroupNorm groups: (rows, 1, d) with one group, and NCHW (2, 3·…) with 3 groups.
    const g = groupNorm({ data: x, shape: [rows, 1, d] }, 1);
    expectClose(g.data, want, 1e-6, 1e-5, 'GroupNorm y');
    const g3 = groupNorm({ data: x, shape: [2, 3, d] }, 3);
    expectClose(g3.data, want, 1e-6, 1e-5, 'GroupNorm (3 groups) y');
  });
});

describe('constant rows give exactly 0 (PyTorch #108072)', () => {
  for (const T of [Float32Array, Float64Array]) {
    it.each([0.1, 1 / 3, 100.7, 2000, 1e8, -3.3e15])(`${T.name}: value %d, eps 1e-6`, (v) => {
      const d = 300,
        x = new T(4 * d).fill(v);
      for (const [y, what] of [
        [layerNorm({ data: x, shape: [4, d] }, d, { eps: 1e-6 }).data, 'LayerNorm'],
        [groupNorm({ data: x, shape: [4, 6, 50] }, 3, { eps: 1e-6 }).data, 'GroupNorm'],
        [groupNorm({ data: x, shape: [4, 50, 6] }, 3, { eps: 1e-6, layout: 'channelsLast' }).data, 'GroupNorm channels-last'],
        [new InstanceNorm2d(6, { eps: 1e-6 }).forward({ data: x, shape: [4, 6, 5, 10] }).data, 'InstanceNorm2d'],
      ] as const) {
        expect(
          Array.from(y).every((e) => e === 0),
          `${what}: ${Array.from(y).find((e) => e !== 0)}`,
        ).toBe(true);
      }
      // With a bias the output is the bias exactly.
      const bias = new T(d).fill(0.3);
      const yb = layerNorm({ data: x, shape: [4, d] }, d, { eps: 1e-6, bias }).data;
      expect(Array.from(yb).every((e) => e === bias[0])).toBe(true);
    });
  }
});

it('values near 1e30 keep a finite variance (PyTorch #178123)', () => {
  const rows = 4,
    d = 1000,
    r = rng(3);
  const x = Float32Array.from({ length: rows * d }, () => 1e30 * (1 + 0.5 * (r() - 0.5)));
  const ref = rowStats(x, rows, d, 1e-5);
  const y = layerNorm({ data: x, shape: [rows, d] }, d);
  for (const v of y.saveInvstd) expect(Number.isFinite(v) && v > 0).toBe(true);
  expectClose(y.saveInvstd, ref.invstd, 1e-6, 0, 'invstd');
  expectClose(y.data, normalized(x, rows, d, ref.mean, ref.invstd), 1e-5, 1e-5, 'y');
  const g = new GroupNorm(2, 4, { affine: false }).forward({ data: x, shape: [2, 4, 500] });
  expect(g.data.every((v) => Number.isFinite(v))).toBe(true);
  const rms = rmsNorm({ data: x, shape: [rows, d] }, d);
  expect(rms.data.every((v) => Number.isFinite(v) && Math.abs(v) < 2)).toBe(true);
});

it('a GroupNorm group of 3.8e7 values keeps float64 statistics (PyTorch #54293)', () => {
  // One group over (1, 2, 1.9e7): 152 MB of float32, normalized in place.
  const s = 19_000_000,
    x = new Float32Array(2 * s);
  let seed = 12345;
  for (let i = 0; i < x.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    x[i] = 1 + (seed >>> 8) / 2 ** 24 / 10; // 1 + U(0, 0.1): float32 sequential sums drift far off here
  }
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i];
  const mean = sum / x.length;
  let q = 0;
  for (let i = 0; i < x.length; i++) q += (x[i] - mean) ** 2;
  const invstd = 1 / Math.sqrt(q / x.length + 1e-5);
  const probe = [0, 1, s - 1, s, 2 * s - 1].map((i) => (x[i] - mean) * invstd);
  const r = groupNorm({ data: x, shape: [1, 2, s] }, 1, { out: x });
  expect(r.data).toBe(x);
  expect(Math.abs(r.saveMean[0] - mean) / mean).toBeLessThan(1e-7);
  expect(Math.abs(r.saveInvstd[0] - invstd) / invstd).toBeLessThan(1e-6);
  expectClose(
    [0, 1, s - 1, s, 2 * s - 1].map((i) => x[i]),
    probe,
    1e-5,
    1e-5,
    'y',
  );
}, 300_000);

it('normalizedShape (1,) gives y = bias, dx = 0 and a weight gradient of exactly 0 (PyTorch #188372)', () => {
  const ln = new LayerNorm(1);
  ln.loadStateDict({ weight: [-1.7], bias: [0.25] });
  const x = randn(50, 5, 3, 10) as Float32Array;
  const y = ln.forward({ data: x, shape: [50, 1] });
  expect(Array.from(y.data).every((v) => v === Math.fround(0.25))).toBe(true);
  const dy = randn(50, 6) as Float32Array;
  const dx = ln.backward({ data: dy, shape: [50, 1] });
  expect(Array.from(ln.weight!.grad!)).toEqual([0]);
  // dx is 0 up to the rounding of dy·w·invstd − Σ(dy·w)·invstd (invstd = 1/√eps here).
  const bound = ((1e-6 * 1.7 * 1) / Math.sqrt(1e-5)) * Math.max(...Array.from(dy, Math.abs));
  expect(Array.from(dx.data).every((v) => Math.abs(v) <= bound)).toBe(true);
});

/** Central differences of L = Σ y·dy in float64. */
function numericGrad(f: (x: Float64Array) => Float64Array, x: Float64Array, dy: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  const loss = (v: Float64Array) => f(v).reduce((a, y, i) => a + y * dy[i], 0);
  for (let i = 0; i < x.length; i++) {
    const p = x.slice(),
      m = x.slice();
    ((p[i] += h), (m[i] -= h));
    g[i] = (loss(p) - loss(m)) / (2 * h);
  }
  return g;
}

describe('gradients with random, negative weights match finite differences', () => {
  const w = (n: number, seed: number) => Float64Array.from(randn(n, seed, 0, 1.2, Float64Array));
  it('LayerNorm over (3, 4)', () => {
    const x = randn(2 * 12, 1, 0.5, 1, Float64Array) as Float64Array,
      dy = randn(24, 2, 0, 1, Float64Array) as Float64Array;
    const weight = w(12, 3),
      bias = w(12, 4);
    expect(weight.some((v) => v < 0)).toBe(true);
    const f = (v: Float64Array) => layerNorm({ data: v, shape: [2, 3, 4] }, [3, 4], { weight, bias }).data as Float64Array;
    const y = layerNorm({ data: x, shape: [2, 3, 4] }, [3, 4], { weight, bias });
    const g = layerNormBackward({ data: dy, shape: [2, 3, 4] }, { data: x, shape: [2, 3, 4] }, [3, 4], {
      weight,
      saveMean: y.saveMean,
      saveInvstd: y.saveInvstd,
    });
    expectClose(g.gradInput.data, numericGrad(f, x, dy), 1e-6, 1e-7, 'dx');
    const fw = (v: Float64Array) => layerNorm({ data: x, shape: [2, 3, 4] }, [3, 4], { weight: v, bias }).data as Float64Array;
    expectClose(g.gradWeight!, numericGrad(fw, weight, dy), 1e-6, 1e-7, 'dweight');
  });

  it('RMSNorm over (7,)', () => {
    const x = randn(21, 5, 0.3, 1, Float64Array) as Float64Array,
      dy = randn(21, 6, 0, 1, Float64Array) as Float64Array,
      weight = w(7, 7);
    const f = (v: Float64Array) => rmsNorm({ data: v, shape: [3, 7] }, 7, { weight }).data as Float64Array;
    const y = rmsNorm({ data: x, shape: [3, 7] }, 7, { weight });
    const g = rmsNormBackward({ data: dy, shape: [3, 7] }, { data: x, shape: [3, 7] }, 7, { weight, saveInvstd: y.saveInvstd });
    expectClose(g.gradInput.data, numericGrad(f, x, dy), 1e-6, 1e-7, 'dx');
    expectClose(
      g.gradWeight!,
      numericGrad((v) => rmsNorm({ data: x, shape: [3, 7] }, 7, { weight: v }).data as Float64Array, weight, dy),
      1e-6,
      1e-7,
      'dweight',
    );
  });

  for (const layout of ['channelsFirst', 'channelsLast'] as const) {
    it(`GroupNorm, 2 groups of (2, 4, 5), ${layout}`, () => {
      const shape = layout === 'channelsFirst' ? [2, 4, 5] : [2, 5, 4];
      const x = randn(40, 9, 1, 2, Float64Array) as Float64Array,
        dy = randn(40, 10, 0, 1, Float64Array) as Float64Array;
      const weight = w(4, 11),
        bias = w(4, 12);
      const f = (v: Float64Array) => groupNorm({ data: v, shape }, 2, { weight, bias, layout }).data as Float64Array;
      const y = groupNorm({ data: x, shape }, 2, { weight, bias, layout });
      const g = groupNormBackward({ data: dy, shape }, { data: x, shape }, 2, { weight, saveMean: y.saveMean, saveInvstd: y.saveInvstd, layout });
      expectClose(g.gradInput.data, numericGrad(f, x, dy), 1e-6, 1e-7, 'dx');
      expectClose(
        g.gradWeight!,
        numericGrad((v) => groupNorm({ data: x, shape }, 2, { weight: v, bias, layout }).data as Float64Array, weight, dy),
        1e-6,
        1e-7,
        'dweight',
      );
      expectClose(
        g.gradBias!,
        numericGrad((v) => groupNorm({ data: x, shape }, 2, { weight, bias: v, layout }).data as Float64Array, bias, dy),
        1e-6,
        1e-7,
        'dbias',
      );
    });
  }

  it('InstanceNorm2d with affine, channels-last, through the module', () => {
    const m = new InstanceNorm2d(3, { affine: true, layout: 'NHWC', dtype: 'float64' });
    const weight = w(3, 13),
      bias = w(3, 14);
    m.loadStateDict({ weight, bias });
    const shape = [2, 2, 3, 3],
      x = randn(36, 15, 0, 1, Float64Array) as Float64Array,
      dy = randn(36, 16, 0, 1, Float64Array) as Float64Array;
    const f = (v: Float64Array) =>
      new InstanceNorm2d(3, { affine: true, layout: 'NHWC', dtype: 'float64' }).forward({ data: v, shape }).data.map((e, i) => e * weight[i % 3] + bias[i % 3]);
    m.forward({ data: x, shape });
    const dx = m.backward({ data: dy, shape });
    expectClose(
      dx.data,
      numericGrad((v) => Float64Array.from(f(v)), x, dy),
      1e-6,
      1e-7,
      'dx',
    );
    expect(m.weight!.grad!.some((v) => v !== 0)).toBe(true);
  });

  it('RMSNorm module accumulates its weight gradient and has no bias', () => {
    const m = new RMSNorm(5, { dtype: 'float64' });
    expect(m.parameters()).toHaveLength(1);
    const x = { data: randn(10, 17, 0, 1, Float64Array), shape: [2, 5] },
      dy = { data: randn(10, 18, 0, 1, Float64Array), shape: [2, 5] };
    m.forward(x);
    m.backward(dy);
    const once = m.weight!.grad!.slice();
    m.forward(x);
    m.backward(dy);
    expectClose(
      m.weight!.grad!,
      once.map((v) => 2 * v),
      1e-12,
      1e-15,
      'accumulated',
    );
  });
});

describe('calls of 4 MiB and more (the WebAssembly path goes a group of samples at a time)', () => {
  /** The first `k` samples of a tensor, as a tensor of its own. */
  const head = (t: { data: Float32Array; shape: number[] }, k: number) => {
    const per = t.data.length / t.shape[0];
    return { data: t.data.slice(0, k * per), shape: [k, ...t.shape.slice(1)] };
  };
  const bits = (a: ArrayLike<number>, n: number) => Buffer.from(Float32Array.from(Array.prototype.slice.call(a, 0, n)).buffer).toString('base64');

  it.each([
    ['LayerNorm (1100, 1000)', [1100, 1000], 0],
    ['GroupNorm NCHW (37, 32, 30, 30), 8 groups', [37, 32, 30, 30], 8],
  ] as const)(
    '%s: y, dx and the statistics of each sample are those of a small call; the parameter gradients the float64 sums',
    (_, shape, groups) => {
      const n = shape.reduce((a, b) => a * b, 1),
        C = shape[1],
        k = 3;
      const x: { data: Float32Array; shape: number[] } = { data: randn(n, 31, 1.5, 2) as Float32Array, shape: [...shape] },
        dy = { data: randn(n, 32) as Float32Array, shape: [...shape] };
      const weight = randn(C, 33) as Float32Array,
        bias = randn(C, 34) as Float32Array;
      const forward = (t: typeof x) => (groups ? groupNorm(t, groups, { weight, bias }) : layerNorm(t, C, { weight, bias }));
      const backward = (g: typeof x, t: typeof x, f: ReturnType<typeof forward>) =>
        groups
          ? groupNormBackward(g, t, groups, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd })
          : layerNormBackward(g, t, C, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd });
      const big = forward(x),
        small = forward(head(x, k));
      const per = n / shape[0];
      expect(bits(big.data, k * per)).toBe(bits(small.data, k * per));
      expect(bits(big.saveInvstd, small.saveInvstd.length)).toBe(bits(small.saveInvstd, small.saveInvstd.length));
      const gBig = backward(dy, x, big),
        gSmall = backward(head(dy, k), head(x, k), small);
      expect(bits(gBig.gradInput.data, k * per)).toBe(bits(gSmall.gradInput.data, k * per));
      // The weight and bias gradients against float64 sums over every sample.
      const gw = new Float64Array(C),
        gb = new Float64Array(C);
      const s = groups ? per / C : 1,
        rows = groups ? shape[0] * groups : shape[0],
        m = n / rows;
      for (let r = 0; r < rows; r++) {
        const mean = big.saveMean[r],
          inv = big.saveInvstd[r];
        for (let j = 0; j < m; j++) {
          const i = r * m + j,
            ch = groups ? (((r % groups) * m + j) / s) | 0 : j;
          gw[ch] += dy.data[i] * (x.data[i] - mean) * inv;
          gb[ch] += dy.data[i];
        }
      }
      expectClose(gBig.gradWeight!, gw, 1e-4, 1e-3, 'gradWeight');
      expectClose(gBig.gradBias!, gb, 1e-4, 1e-3, 'gradBias');
    },
    120_000,
  );
});
