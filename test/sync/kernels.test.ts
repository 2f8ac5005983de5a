/**
 * The native split-phase kernels (native/kernels/split_phase.h) against a
 * float64 reference and their pure-JS twins (lib/backend/split.ts), on every
 * ISA this CPU runs, over shapes that reach their paths: NCHW planes (long,
 * short, of one value), NHWC rows over several row blocks, sizes from which
 * the pool runs; a large mean with a tiny spread; a channel with an
 * infinity; and their argument checks.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { addon, capabilities } from '../../lib/backend/loader.js';
import { jsSplitKernels, splitKernels, type SplitKernels } from '../../lib/backend/split.js';
import { index, randn, type Dims } from '../helpers.js';

const native = addon as unknown as SplitKernels;

interface Shape extends Dims {
  name: string;
}
const SHAPES: Shape[] = [
  { name: 'NCHW (4, 3, 5, 7)', n: 4, c: 3, s: 35, channelsLast: false },
  { name: 'NCHW short planes (16, 8, 2, 2)', n: 16, c: 8, s: 4, channelsLast: false },
  { name: 'NCHW pool (8, 16, 32, 32)', n: 8, c: 16, s: 1024, channelsLast: false },
  { name: '(N, C) (300, 7)', n: 300, c: 7, s: 1, channelsLast: false },
  { name: 'NHWC (6, 5, 5, 9)', n: 6, c: 9, s: 25, channelsLast: true },
  { name: 'NHWC pool, several row blocks (32, 24, 24, 19)', n: 32, c: 19, s: 576, channelsLast: true },
];

function reference(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  d: Dims,
  mean: Float64Array,
  invstd: Float64Array,
  sumDy: Float64Array,
  sumDyXmu: Float64Array,
  count: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
) {
  const m = { mean: new Float64Array(d.c), m2: new Float64Array(d.c), sumDy: new Float64Array(d.c), sumDyXmu: new Float64Array(d.c) };
  const y = new Float64Array(x.length),
    dx = new Float64Array(x.length);
  for (let ch = 0; ch < d.c; ch++) {
    let s = 0;
    for (let i = 0; i < d.n; i++) for (let j = 0; j < d.s; j++) s += x[index(d, i, ch, j)];
    m.mean[ch] = s / (d.n * d.s);
    for (let i = 0; i < d.n; i++)
      for (let j = 0; j < d.s; j++) {
        const k = index(d, i, ch, j);
        m.m2[ch] += (x[k] - m.mean[ch]) ** 2;
        m.sumDy[ch] += dy[k];
        m.sumDyXmu[ch] += dy[k] * (x[k] - mean[ch]);
        y[k] = (x[k] - mean[ch]) * invstd[ch] * w[ch] + b[ch];
        dx[k] = w[ch] * invstd[ch] * (dy[k] - sumDy[ch] / count - ((x[k] - mean[ch]) * invstd[ch] ** 2 * sumDyXmu[ch]) / count);
      }
  }
  return { ...m, y, dx };
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>, scale = 1): number {
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / (scale + Math.abs(b[i])));
  return Number.isNaN(w) ? Infinity : w;
}

function run(
  k: SplitKernels,
  x: Float32Array | Float64Array,
  dy: typeof x,
  d: Dims,
  stats: { mean: Float64Array; invstd: Float64Array; sumDy: Float64Array; sumDyXmu: Float64Array; count: number },
  w: typeof x,
  b: typeof x,
) {
  const { n, c, s, channelsLast: cl } = d,
    T = x.constructor as Float32ArrayConstructor;
  const mean = new Float64Array(c),
    m2 = new Float64Array(c),
    sumDy = new Float64Array(c),
    sumDyXmu = new Float64Array(c);
  const y = new T(x.length),
    dx = new T(x.length);
  k.localMoments(x, mean, m2, n, c, s, cl);
  k.normalize(x, y, w, b, stats.mean, stats.invstd, n, c, s, cl);
  k.backwardReduce(x, dy, stats.mean, sumDy, sumDyXmu, n, c, s, cl);
  k.backwardElemt(x, dy, dx, w, stats.mean, stats.invstd, stats.sumDy, stats.sumDyXmu, stats.count, n, c, s, cl);
  return { mean, m2, sumDy, sumDyXmu, y, dx };
}

describe('native split-phase kernels', () => {
  it('the native path uses them', () => {
    expect(splitKernels).not.toBe(jsSplitKernels);
  });

  for (const dtype of ['float32', 'float64'] as const) {
    for (const d of SHAPES) {
      it(`${dtype} ${d.name}: the reference's statistics, sums, y and dx; the JS twins' too`, () => {
        const T = dtype === 'float64' ? Float64Array : Float32Array,
          numel = d.n * d.c * d.s;
        const x = randn(numel, 1, 100, 0.01, T),
          dy = randn(numel, 2, 0, 1, T);
        const w = T.from(Array.from({ length: d.c }, (_, i) => 1 + i / 10)),
          b = T.from(Array.from({ length: d.c }, (_, i) => i / 20));
        // Statistics "of the whole batch" near the slice's own, as after a combine.
        const stats = {
          mean: Float64Array.from({ length: d.c }, (_, i) => 100 + 1e-4 * i),
          invstd: Float64Array.from({ length: d.c }, (_, i) => 90 + i),
          sumDy: Float64Array.from({ length: d.c }, (_, i) => 3 - i),
          sumDyXmu: Float64Array.from({ length: d.c }, (_, i) => 0.01 * i - 0.02),
          count: 3 * d.n * d.s,
        };
        const ref = reference(x, dy, d, stats.mean, stats.invstd, stats.sumDy, stats.sumDyXmu, stats.count, w, b);
        const tol = dtype === 'float64' ? 1e-12 : 2e-6;
        for (const [name, k] of [
          ['native', native],
          ['js', jsSplitKernels],
        ] as const) {
          const r = run(k, x, dy, d, stats, w, b);
          expect(worst(r.mean, ref.mean), `${name} mean`).toBeLessThanOrEqual(1e-12);
          // M2 relative to the spread: a float32 channel of mean 100, std 0.01.
          expect(worst(r.m2, ref.m2, 1e-300), `${name} m2`).toBeLessThanOrEqual(dtype === 'float64' ? 1e-10 : 1e-5);
          expect(worst(r.sumDy, ref.sumDy), `${name} sumDy`).toBeLessThanOrEqual(tol * 10);
          expect(worst(r.sumDyXmu, ref.sumDyXmu, 1e-2), `${name} sumDyXmu`).toBeLessThanOrEqual(tol * 10);
          expect(worst(r.y, ref.y), `${name} y`).toBeLessThanOrEqual(tol);
          expect(worst(r.dx, ref.dx), `${name} dx`).toBeLessThanOrEqual(tol);
        }
      });
    }
  }

  it("a channel with an infinity gets PyTorch's statistics (mean inf, m2 NaN); the others are untouched", () => {
    const d: Dims = { n: 4, c: 3, s: 40, channelsLast: true },
      x = randn(480, 3);
    x[3 * 7 + 1] = Infinity;
    const mean = new Float64Array(3),
      m2 = new Float64Array(3),
      jm = new Float64Array(3),
      jm2 = new Float64Array(3);
    native.localMoments(x, mean, m2, d.n, d.c, d.s, true);
    jsSplitKernels.localMoments(x, jm, jm2, d.n, d.c, d.s, true);
    expect(mean[1]).toBe(Infinity);
    expect(m2[1]).toBeNaN();
    expect(jm[1]).toBe(Infinity);
    // float32 block sums (native) against double (JS), of values of mean 0 and std 1
    expect(worst([mean[0], mean[2]], [jm[0], jm[2]])).toBeLessThan(1e-6);
    expect(worst([m2[0], m2[2]], [jm2[0], jm2[2]])).toBeLessThan(1e-6);
  });

  it('checks its arguments as the other kernels do, writing nothing', () => {
    const x = new Float32Array(12),
      mean = new Float64Array(3).fill(7);
    expect(() => native.localMoments(x, new Float32Array(3) as unknown as Float64Array, mean, 2, 3, 2, false)).toThrow(
      new TypeError('Expected a Float64Array of length 3 for mean but received a Float32Array of length 3'),
    );
    expect(() => native.localMoments(x, mean, mean.subarray(1), 2, 3, 2, false)).toThrow(RangeError);
    expect(() => native.localMoments(x, mean, mean, 2, 3, 2, false)).toThrow(/Expected (mean|m2) not to share memory with (m2|mean), but it overlaps it/);
    expect(Array.from(mean)).toEqual([7, 7, 7]);
    const f = new Float64Array(3);
    expect(() => native.backwardElemt(x, x, new Float32Array(12), null, f, f, f, f, 3, 2, 3, 2, false)).toThrow(
      /Expected count \(the values per channel of the whole batch\) to be at least n \* s = 4 but received the number 3/,
    );
  });

  it('every ISA this CPU runs gives the same results within float32 rounding (BATCHNORM_ISA)', { timeout: 120_000 }, () => {
    const script = `
      const { splitKernels } = await import(${JSON.stringify(new URL('../../dist/backend/split.js', import.meta.url).href)});
      const n = 16, c = 19, s = 300, x = new Float32Array(n * c * s).map((_, i) => Math.sin(i) * 3 + 50), dy = x.map((v, i) => Math.cos(i));
      const out = [];
      for (const cl of [false, true]) {
        const mean = new Float64Array(c), m2 = new Float64Array(c), g = new Float64Array(c), h = new Float64Array(c), y = new Float32Array(x.length), dx = new Float32Array(x.length);
        splitKernels.localMoments(x, mean, m2, n, c, s, cl);
        const invstd = m2.map((v) => 1 / Math.sqrt(v / (n * s) + 1e-5));
        splitKernels.normalize(x, y, null, null, mean, invstd, n, c, s, cl);
        splitKernels.backwardReduce(x, dy, mean, g, h, n, c, s, cl);
        splitKernels.backwardElemt(x, dy, dx, null, mean, invstd, g, h, n * s, n, c, s, cl);
        out.push({ stats: [...mean, ...m2, ...y, ...dx], sums: [...g, ...h] });
      }
      console.log(JSON.stringify(out));`;
    const results = capabilities().map((isa) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, BATCHNORM_ISA: isa },
        timeout: 100_000,
        maxBuffer: 1 << 28,
      });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Array<{ stats: number[]; sums: number[] }>;
    });
    for (const r of results)
      for (const [i, layout] of r.entries()) {
        expect(worst(layout.stats, results[0][i].stats)).toBeLessThan(1e-6);
        // The sums of the backward add float32 partial sums (as the backward's do): each of the
        // 4800 terms (|dy·(x − mean)| ≤ 3) may carry a float32 rounding, whose order differs by ISA.
        for (let k = 0; k < layout.sums.length; k++) expect(Math.abs(layout.sums[k] - results[0][i].sums[k])).toBeLessThan(4800 * 3 * 2 ** -23);
      }
  });
});
