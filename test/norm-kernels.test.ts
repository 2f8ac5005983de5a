/**
 * The native LayerNorm / RMSNorm / GroupNorm kernels (groupNormForward,
 * groupNormBackward) against a float64 reference, on every path groupnorm.h
 * chooses (rows with a weight per value, NCHW rows of planes, channels-last
 * columns), both dtypes, every ISA this CPU runs (forced in a child
 * process), and bitwise the same for any thread count.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { kernels } from '../lib/backend/loader.js';
import { jsNormKernels } from '../lib/backend/js-norms.js';
import type { NormKernels } from '../lib/backend/norm-kernels.js';
import type { FloatArray } from '../lib/index.js';
import { capabilities, getNumThreads, setNumThreads } from '../lib/index.js';
import { expectClose, randn } from './helpers.js';

const initial = getNumThreads();
afterAll(() => setNumThreads(initial));

type Case = readonly [label: string, n: number, c: number, s: number, groups: number, channelsLast: boolean, rms: boolean];
const cases: Case[] = [
  ['LayerNorm rows (D = 37)', 9, 37, 1, 1, false, false],
  ['LayerNorm, parallel rows (D = 768)', 200, 768, 1, 1, false, false],
  ['RMSNorm rows', 33, 64, 1, 1, false, true],
  ['GroupNorm NCHW', 3, 12, 49, 4, false, false],
  ['GroupNorm NCHW, one group of 70000 values per sample', 2, 2, 35000, 1, false, false],
  ['GroupNorm NCHW, parallel', 8, 32, 400, 8, false, false],
  ['GroupNorm channels-last', 3, 12, 49, 3, true, false],
  ['GroupNorm channels-last, groups = channels, parallel', 4, 20, 1000, 20, true, false],
  ['GroupNorm (N, C), two groups', 17, 10, 1, 2, true, false],
  ['RMS over NCHW groups', 2, 6, 20, 2, false, true],
  // Fewer rows than twice the threads, each long: a row's blocks split across the pool (groupnorm.h's
  // forward_split, backward_split); at 1 thread these two-row forwards take the row-parallel path, so
  // the thread-count test below also checks that both paths give the same bits.
  ['LayerNorm, two long rows split across the pool (D = 70001)', 2, 70001, 1, 1, false, false],
  ['RMSNorm, two long rows split across the pool (D = 40003)', 2, 40003, 1, 1, false, true],
  ['GroupNorm NCHW, two long groups split across the pool', 2, 2, 35001, 1, false, false],
  // From 4 MiB the WebAssembly path goes a group of samples at a time (wasm.ts): its gradients add up in float64.
  ['LayerNorm (1100, 1000), 4.4 MB: in groups of samples on the WebAssembly path', 1100, 1000, 1, 1, false, false],
  ['GroupNorm NCHW (37, 32, 900), 4.3 MB: in groups of samples on the WebAssembly path', 37, 32, 900, 8, false, false],
];

/** The float64 reference of norm-kernels.ts' formulas. */
function reference(x: ArrayLike<number>, dy: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, [, n, c, s, groups, cl, rms]: Case, eps: number) {
  const cg = c / groups,
    m = cg * s;
  const at = (i: number, ch: number, j: number) => (cl ? (i * s + j) * c + ch : (i * c + ch) * s + j);
  const y = new Float64Array(x.length),
    dx = new Float64Array(x.length),
    gw = new Float64Array(c),
    gb = new Float64Array(c);
  const mean = new Float64Array(n * groups),
    invstd = new Float64Array(n * groups);
  for (let i = 0; i < n; i++) {
    for (let g = 0; g < groups; g++) {
      const idx: number[] = [];
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) for (let j = 0; j < s; j++) idx.push(at(i, ch, j));
      const chOf = (k: number) => g * cg + Math.floor(k / s);
      let mu = 0;
      if (!rms) mu = idx.reduce((a, k) => a + x[k], 0) / m;
      const v = idx.reduce((a, k) => a + (x[k] - mu) ** 2, 0) / m,
        r = 1 / Math.sqrt(v + eps);
      ((mean[i * groups + g] = mu), (invstd[i * groups + g] = r));
      let g1 = 0,
        g2 = 0;
      idx.forEach((k, t) => {
        const ch = chOf(t),
          xh = (x[k] - mu) * r;
        y[k] = xh * w[ch] + b[ch];
        ((gw[ch] += dy[k] * xh), (gb[ch] += dy[k]));
        ((g1 += w[ch] * dy[k]), (g2 += w[ch] * dy[k] * xh));
      });
      idx.forEach((k, t) => {
        const ch = chOf(t),
          xh = (x[k] - mu) * r;
        dx[k] = r * (w[ch] * dy[k] - (rms ? 0 : g1 / m) - (xh * g2) / m);
      });
    }
  }
  return { y, dx, gw, gb, mean, invstd };
}

function inputs(tc: Case, seed: number) {
  const [, n, c, s] = tc;
  // Weights of both signs (a backward bug can hide behind weight = 1); x with an offset.
  return {
    x: randn(n * c * s, seed, 3, 2, Float64Array),
    dy: randn(n * c * s, seed + 1, 0, 1, Float64Array),
    w: randn(c, seed + 2, 0, 1, Float64Array),
    b: randn(c, seed + 3, 0, 1, Float64Array),
  };
}

function run(T: Float32ArrayConstructor | Float64ArrayConstructor, tc: Case, inp: ReturnType<typeof inputs>, eps: number, k: NormKernels = kernels) {
  const [, n, c, s, groups, cl, rms] = tc;
  const x = T.from(inp.x),
    dy = T.from(inp.dy),
    w = T.from(inp.w),
    b = T.from(inp.b);
  const y = new T(x.length),
    sm = new T(n * groups),
    si = new T(n * groups),
    dx = new T(x.length),
    gw = new T(c),
    gb = new T(c);
  k.groupNormForward(x, y, w, rms ? null : b, sm, si, n, c, s, groups, cl, eps, rms);
  k.groupNormBackward(x, dy, dx, w, sm, si, gw, gb, n, c, s, groups, cl, rms);
  return { y, sm, si, dx, gw, gb };
}

function check(out: Record<string, FloatArray>, tc: Case, inp: ReturnType<typeof inputs>, dtype: 'f32' | 'f64', eps: number): void {
  const ref = reference(inp.x, inp.dy, inp.w, tc[6] ? new Float64Array(tc[2]) : inp.b, tc, eps);
  const tol = dtype === 'f32' ? 2e-5 : 1e-11;
  const scale = (a: ArrayLike<number>) => {
    let mx = 1;
    for (let i = 0; i < a.length; i++) mx = Math.max(mx, Math.abs(a[i]));
    return mx;
  };
  expectClose(out.y, ref.y, tol, tol * scale(ref.y), `${tc[0]} ${dtype} y`);
  expectClose(out.sm, ref.mean, tol, tol * scale(ref.mean), `${tc[0]} ${dtype} mean`);
  expectClose(out.si, ref.invstd, tol, tol, `${tc[0]} ${dtype} invstd`);
  expectClose(out.dx, ref.dx, tol, tol * scale(ref.dx), `${tc[0]} ${dtype} dx`);
  expectClose(out.gw, ref.gw, tol, tol * scale(ref.gw) * 10, `${tc[0]} ${dtype} gradWeight`);
  expectClose(out.gb, ref.gb, tol, tol * scale(ref.gb) * 10, `${tc[0]} ${dtype} gradBias`);
}

describe.each(cases)('%s', (...tc) => {
  const inp = inputs(tc, 11);
  it('matches the float64 reference in float32 and float64', () => {
    check(run(Float32Array, tc, inp, 1e-5), tc, inp, 'f32', 1e-5);
    check(run(Float64Array, tc, inp, 1e-5), tc, inp, 'f64', 1e-5);
  });

  it('the pure-JS twins match it too', () => {
    check(run(Float32Array, tc, inp, 1e-5, jsNormKernels), tc, inp, 'f32', 1e-5);
    check(run(Float64Array, tc, inp, 1e-5, jsNormKernels), tc, inp, 'f64', 1e-5);
  });

  it('gives identical bits for 1, 2 and 3 threads', () => {
    const bits = [1, 2, 3].map((t) => {
      setNumThreads(t);
      const o = run(Float32Array, tc, inp, 1e-5);
      return Buffer.concat(Object.values(o).map((a) => Buffer.from(a.buffer))).toString('base64');
    });
    setNumThreads(initial);
    expect(bits[1]).toBe(bits[0]);
    expect(bits[2]).toBe(bits[0]);
  });
});

it('a long row alone (split across the pool) gives the bits it has among other rows', () => {
  const D = 70001;
  const one: Case = ['one row', 1, D, 1, 1, false, false],
    many: Case = ['17 rows', 17, D, 1, 1, false, false];
  const a = inputs(one, 5),
    b = inputs(many, 6);
  // Row 0 of the 17-row call (more rows than kGradRows: the row-parallel paths) is the one-row call's
  // row; dy of the other rows is 0, so the weight gradients agree too.
  (b.x.set(a.x), b.dy.fill(0), b.dy.set(a.dy), b.w.set(a.w), b.b.set(a.b));
  setNumThreads(1);
  for (const T of [Float32Array, Float64Array]) {
    const r1 = run(T, one, a, 1e-5),
      r2 = run(T, many, b, 1e-5);
    for (const key of ['y', 'dx'] as const) expect(Buffer.from(r1[key].buffer).equals(Buffer.from(r2[key].buffer, 0, D * T.BYTES_PER_ELEMENT))).toBe(true);
    for (const key of ['gw', 'gb'] as const) expect(Buffer.from(r1[key].buffer).equals(Buffer.from(r2[key].buffer))).toBe(true);
    expect([r1.sm[0], r1.si[0]]).toEqual([r2.sm[0], r2.si[0]]);
  }
  setNumThreads(initial);
}, 60_000);

/** The child runs dist/ with an ISA forced and prints every output of every case, both dtypes. */
const script = `
  const { kernels } = await import('./dist/backend/loader.js');
  const { readFileSync } = await import('node:fs');
  const [cases, all] = JSON.parse(readFileSync(0, 'utf8'));
  const out = cases.map(([, n, c, s, groups, cl, rms], k) => [Float32Array, Float64Array].map((T) => {
    const [x, dy, w, b] = all[k].map((a) => T.from(a));
    const y = new T(x.length), sm = new T(n * groups), si = new T(n * groups), dx = new T(x.length), gw = new T(c), gb = new T(c);
    kernels.groupNormForward(x, y, w, rms ? null : b, sm, si, n, c, s, groups, cl, 1e-5, rms);
    kernels.groupNormBackward(x, dy, dx, w, sm, si, gw, gb, n, c, s, groups, cl, rms);
    return { y: Array.from(y), sm: Array.from(sm), si: Array.from(si), dx: Array.from(dx), gw: Array.from(gw), gb: Array.from(gb) };
  }));
  process.stdout.write(JSON.stringify(out));
`;

it.each(capabilities())(
  'ISA %s (forced) matches the float64 reference',
  (isa) => {
    const small = cases.filter((tc) => tc[1] * tc[2] * tc[3] <= 20_000);
    const all = small.map((tc) => inputs(tc, 11)).map((i) => [i.x, i.dy, i.w, i.b].map((a) => Array.from(a)));
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      input: JSON.stringify([small, all]),
      cwd: new URL('..', import.meta.url),
      encoding: 'utf8',
      maxBuffer: 1 << 28,
      env: { ...process.env, BATCHNORM_ISA: isa, BATCHNORM_BACKEND: 'native' },
    });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as Array<Array<Record<string, number[]>>>;
    small.forEach((tc, k) => {
      const inp = inputs(tc, 11);
      const asT = (o: Record<string, number[]>, T: Float32ArrayConstructor | Float64ArrayConstructor) =>
        Object.fromEntries(Object.entries(o).map(([key, v]) => [key, T.from(v)]));
      check(asT(out[k][0], Float32Array), tc, inp, 'f32', 1e-5);
      check(asT(out[k][1], Float64Array), tc, inp, 'f64', 1e-5);
    });
  },
  120_000,
);
