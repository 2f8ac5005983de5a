/**
 * Property tests (fast-check) of both paths in one process: the native addon
 * (loaded directly from BATCHNORM_ADDON or build/Release; in the 'wasm'
 * project the WebAssembly kernels instead) against the pure-JS kernels, and
 * the public API instantiated twice (module graph re-imported with
 * BATCHNORM_BACKEND=native, or =wasm in the 'wasm' project, and =js).
 *
 * 1. Valid random calls — shapes, layouts, dtypes, magnitudes from denormal to
 *    1e30, constant channels, NaN/±Inf, null or given weight/bias/running
 *    statistics, in-place outputs, offset, SharedArrayBuffer- and resizable-
 *    buffer-backed views, sizes that take the multi-block and multi-thread
 *    routes: each path matches a float64 reference within a tolerance derived
 *    from the magnitudes involved (so the paths agree with each other), and
 *    non-finite results are of the same kind on both.
 * 2. Garbage kernel arguments — wrong types, lengths, dtypes, negative,
 *    fractional, NaN or huge dimensions (products that overflow 32 or 64 bits
 *    or wrap to the real length), detached buffers, fake typed arrays, aliasing
 *    between arguments, too few arguments: both paths throw the same error
 *    class (and words) or both succeed and agree; sync and async alike (async
 *    rejects, never throws); after a throw no array changed.
 * 3. The public API (functional, sync and async, and BatchNorm1d/2d/3d
 *    through training, backward, eval and frozen backward) on random valid
 *    input agrees across paths; garbage tensors, shapes, options and `out`s
 *    throw the same error on both and change nothing.
 *
 * Without a compiled addon the native side is the JS path again: the
 * properties then still hold against the reference. FC_SEED and FC_RUNS
 * (a multiplier) widen a run: `FC_SEED=$RANDOM FC_RUNS=20 npx vitest run test/api/property.test.ts`.
 */
import fc from 'fast-check';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { jsKernels } from '../../lib/backend/js.js';
import type { FloatArray, Kernels } from '../../lib/backend/kernels.js';
import { loadWasm } from '../../lib/backend/wasm.js';
import { rng, type FloatArrayConstructor as Ctor } from '../helpers.js';

type Api = typeof import('../../lib/index.js');

const root = fileURLToPath(new URL('../..', import.meta.url));
const addonPath = process.env.BATCHNORM_ADDON || join(root, 'build', 'Release', 'batchnorm.node');
const addon = existsSync(addonPath) ? (createRequire(import.meta.url)(addonPath) as Kernels) : null;
// The 'wasm' project puts the WebAssembly kernels where the addon is otherwise.
const onWasm = process.env.BATCHNORM_BACKEND === 'wasm';
const wasmPath = process.env.BATCHNORM_WASM || join(root, 'wasm', 'batchnorm.wasm');
const wasm = onWasm ? loadWasm(wasmPath) : null;
const native: Kernels = wasm?.kernels ?? addon ?? jsKernels;
const nativeName = onWasm ? 'wasm' : 'native';
// A different stream per vitest project, so that the runs of this file add up.
const SEED = Number(process.env.FC_SEED ?? 0x5eed) + (({ js: 1, wasm: 2 } as Record<string, number>)[process.env.BATCHNORM_BACKEND ?? ''] ?? 0);
const RUNS = Number(process.env.FC_RUNS ?? 1);
const runs = (n: number) => ({ seed: SEED, numRuns: Math.max(1, Math.round(n * RUNS)), endOnFailure: true });
// Each property runs hundreds of cases: seconds on a quiet machine. Its limit allows for every core
// being busy with other work, and grows with FC_RUNS.
const timeLimit = (ms: number) => ms * Math.max(1, RUNS);

it('has the addon whenever the native path is required', () => {
  if (process.env.BATCHNORM_BACKEND === 'native') expect(addon, `no addon at ${addonPath}`).not.toBeNull();
  if (onWasm) expect(wasm?.why).toBe('');
});

// ---------------------------------------------------------------- helpers

const unit = (T: Ctor) => (T === Float32Array ? 2 ** -24 : 2 ** -53);
/** Smallest positive subnormal of T: the absolute floor of every tolerance. */
const tiny = (T: Ctor) => (T === Float32Array ? 2 ** -149 : 2 ** -1074);

type Storage = 'plain' | 'offset' | 'shared' | 'sharedOffset' | 'resizable';

/** src in a T array living in the given kind of buffer (misaligned by `off` elements for the offset kinds). */
function place(T: Ctor, src: ArrayLike<number>, storage: Storage, off: number): FloatArray {
  const B = T.BYTES_PER_ELEMENT,
    len = src.length;
  let v: FloatArray;
  if (storage === 'plain') v = new T(len);
  else if (storage === 'resizable') v = new T(new (ArrayBuffer as any)(len * B, { maxByteLength: (len + 8) * B }));
  else {
    const pad = storage.endsWith('ffset') ? off : 0;
    const buf = storage.startsWith('shared') ? new SharedArrayBuffer((len + pad + 3) * B) : new ArrayBuffer((len + pad + 3) * B);
    v = new T(buf, pad * B, len);
  }
  v.set(src);
  return v;
}

function detached(T: Ctor, len: number): FloatArray {
  const a = new T(len);
  structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
  return a;
}

/** NaN, +Inf, -Inf or finite. */
const kind = (v: number) => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : 'finite');

/** |got − want| ≤ tol (+ a subnormal floor), elementwise; where want is not finite, got must be of the same kind. */
function checkClose(what: string, T: Ctor, got: ArrayLike<number>, want: ArrayLike<number>, tol: ArrayLike<number>): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i],
      w = want[i];
    if (!Number.isFinite(w) || !Number.isFinite(tol[i])) {
      if (!Number.isFinite(w) && kind(g) !== kind(w)) expect.fail(`${what}[${i}] is ${g}, expected ${w}`);
      continue;
    }
    const t = tol[i] + 4 * tiny(T);
    if (!(Math.abs(g - w) <= t)) expect.fail(`${what}[${i}] is ${g}, expected ${w} ± ${t}`);
  }
}

/**
 * The two paths' results, element by element: the same kind (NaN, ±Inf,
 * finite; or only finite or not with `kindOnly`), finite ones within twice the tolerance.
 */
function checkAgree(what: string, T: Ctor, a: ArrayLike<number>, b: ArrayLike<number>, tol: ArrayLike<number> | null, kindOnly = false): void {
  expect(a.length, `${what}: length`).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i],
      y = b[i];
    const kx = kind(x),
      ky = kind(y);
    if (kindOnly ? (kx === 'finite') !== (ky === 'finite') : kx !== ky) expect.fail(`${what}[${i}]: ${x} on one path, ${y} on the other`);
    if (kx !== 'finite' || ky !== 'finite') continue;
    const t = 2 * (tol ? tol[i] : K * unit(T) * Math.max(Math.abs(x), Math.abs(y))) + 4 * tiny(T);
    if (!Number.isFinite(t)) continue;
    if (!(Math.abs(x - y) <= t)) expect.fail(`${what}[${i}]: ${x} on one path, ${y} on the other (tolerance ${t})`);
  }
}

/** Bytes of every typed array in `values` (deep, one level into plain objects and arrays), to prove nothing changed. */
function snapshot(values: unknown[]): string[] {
  const out: string[] = [];
  const seen = new Set<unknown>();
  const visit = (v: unknown, depth: number) => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (ArrayBuffer.isView(v)) {
      if (v.byteLength === 0) out.push('empty');
      else out.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'));
      return;
    }
    if (depth > 2) return;
    for (const x of Array.isArray(v) ? v : Object.values(v as object)) visit(x, depth + 1);
  };
  for (const v of values) visit(v, 0);
  return out;
}

function outcome(f: () => unknown): { ok: true; value: unknown } | { ok: false; error: Error } {
  try {
    return { ok: true, value: f() };
  } catch (error) {
    return { ok: false, error: error as Error };
  }
}

async function outcomeAsync(f: () => unknown): Promise<{ ok: true; value: unknown } | { ok: false; error: Error }> {
  let p: unknown;
  try {
    p = f();
  } catch (error) {
    expect.fail(`an async form threw synchronously instead of rejecting: ${(error as Error).message}`);
  }
  expect(p, 'an async form returns a Promise').toBeInstanceOf(Promise);
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error: error as Error };
  }
}

/**
 * The words of the two paths' messages differ only in how they describe a
 * bigint, a symbol, a Proxy of a typed array or an object that merely inherits
 * from one (the JS path names it, or V8 complains about the receiver; the
 * binding says "a value of another type" or "an object"), and for a call with
 * too few arguments (the binding counts them; the JS path names the first one
 * missing): the error classes agree regardless.
 */
function sameError(a: Error, b: Error, exotic: Exotic): void {
  expect(a).toBeInstanceOf(Error);
  expect(b).toBeInstanceOf(Error);
  if (exotic !== 'class') expect(a.constructor.name, `${a.message} | ${b.message}`).toBe(b.constructor.name);
  if (!exotic) expect(a.message, `${a.message} | ${b.message}`).toBe(b.message);
}

/**
 * How far two paths' errors may differ: not at all, in words, or in class too — a call with too few
 * arguments, and an x that is a Proxy of a typed array or merely inherits from one: the JS path accepts
 * such an x as a typed array by `instanceof`, checks the dimensions next and may throw their RangeError
 * first; the binding's TypeError comes first. (Both throw: never a crash, never a write.)
 */
type Exotic = false | 'words' | 'class';

/** A label for any value, safe for proxies and detached arrays. */
function label(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (typeof v === 'bigint') return `${v}n`;
  try {
    if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as any).length})`;
  } catch {}
  return typeof v;
}

// ---------------------------------------------------- random valid cases

interface Values {
  dist: 'normal' | 'uniform' | 'constant' | 'two' | 'int';
  /** log10 of the magnitude of the channel means, and of the spread. */
  center: number;
  spread: number;
  seed: number;
}

function values(T: Ctor, len: number, c: number, layout: { n: number; s: number; channelsLast: boolean }, v: Values): FloatArray {
  const r = rng(v.seed),
    out = new T(len);
  const M = v.center <= -99 ? 0 : 10 ** v.center,
    S = 10 ** v.spread;
  const mean = Array.from({ length: c }, () => M * (2 * r() - 1)),
    std = Array.from({ length: c }, () => S * (0.2 + r()));
  const { n, s, channelsLast } = layout;
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let j = 0; j < s; j++) {
        const k = channelsLast ? (i * s + j) * c + ch : (i * c + ch) * s + j;
        let z: number;
        switch (v.dist) {
          case 'normal':
            z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
            break;
          case 'uniform':
            z = 2 * r() - 1;
            break;
          case 'constant':
            z = 0;
            break;
          case 'two':
            z = r() < 0.5 ? -1 : 1;
            break;
          default:
            z = Math.round(4 * (2 * r() - 1));
            break;
        }
        out[k] = mean[ch] + std[ch] * z;
      }
  return out;
}

const valuesArb = (f64: boolean) =>
  fc.record({
    dist: fc.constantFrom('normal', 'normal', 'uniform', 'constant', 'two', 'int'),
    // float32: spreads below 1e18, whose squares float32 partial sums can hold (see the report of the native
    // kernels' float32 range); float64 up to 1e150 (squares below the double range).
    center: fc.oneof(fc.constant(-100), fc.integer({ min: -6, max: 6 }), f64 ? fc.integer({ min: -300, max: 150 }) : fc.integer({ min: -42, max: 17 })),
    spread: fc.oneof(fc.integer({ min: -4, max: 4 }), f64 ? fc.integer({ min: -300, max: 150 }) : fc.integer({ min: -42, max: 17 })),
    seed: fc.integer(),
  }) as fc.Arbitrary<Values>;

const shapeArb = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 150 })) },
  // several blocks and units per channel, and at or above 2^18 elements: the pool.
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 16_000, max: 40_000 })) },
  // (N, C): many rows.
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 200, max: 5000 }), fc.integer({ min: 1, max: 70 }), fc.constant(1)) },
);

const badArb = fc.record({
  value: fc.constantFrom(NaN, Infinity, -Infinity),
  where: fc.constantFrom('x', 'dy', 'weight', 'bias', 'runningMean', 'runningVar', 'evalMean', 'evalVar', 'invstd'),
  at: fc.nat(),
});

const kernelCaseArb = fc
  .record({
    shape: shapeArb,
    channelsLast: fc.boolean(),
    f64: fc.boolean(),
    xv: fc.constant(null),
    seed: fc.integer(),
    weight: fc.constantFrom('none', 'ones', 'random', 'zero-one'),
    bias: fc.boolean(),
    running: fc.boolean(),
    eps: fc.constantFrom(1e-5, 1e-5, 1e-3, 0.5, 1e-12, 3, Infinity),
    momentum: fc.oneof(fc.constantFrom(0, 1, 0.1), fc.double({ min: 0, max: 1, noNaN: true })),
    unbiased: fc.constantFrom(true, false, undefined),
    storage: fc.constantFrom<Storage>('plain', 'plain', 'offset', 'shared', 'sharedOffset', 'resizable'),
    off: fc.integer({ min: 1, max: 7 }),
    inPlace: fc.boolean(),
    dx: fc.constantFrom('fresh', 'fresh', 'dy', 'x', 'null'),
    grads: fc.constantFrom('both', 'weight', 'bias', 'none'),
    useBatchStats: fc.boolean(),
    bad: fc.option(badArb, { freq: 6 }),
  })
  .chain((r) => valuesArb(r.f64).map((xv) => ({ ...r, xv })));

type KernelCase = typeof kernelCaseArb extends fc.Arbitrary<infer U> ? U : never;

/** Inputs of one case, as plain float64 copies of the T-rounded values (the kernels' actual inputs). */
function inputs(kc: KernelCase) {
  const T: Ctor = kc.f64 ? Float64Array : Float32Array;
  const [n, c, s] = kc.shape,
    numel = n * c * s,
    m = n * s;
  const r = rng(kc.seed);
  const rand = (len: number, lo: number, hi: number) => T.from({ length: len }, () => lo + (hi - lo) * r());
  const x = values(T, numel, c, { n, s, channelsLast: kc.channelsLast }, kc.xv);
  const dy = rand(numel, -2, 2);
  const weight =
    kc.weight === 'none' ? null : kc.weight === 'ones' ? new T(c).fill(1) : kc.weight === 'zero-one' ? T.from({ length: c }, (_, i) => i % 2) : rand(c, -2, 2);
  const bias = kc.bias ? rand(c, -3, 3) : null;
  const runningMean = kc.running ? rand(c, -1, 1) : null,
    runningVar = kc.running ? rand(c, 0, 3) : null;
  const evalMean = rand(c, -2, 2),
    evalVar = T.from(rand(c, 0, 4), (v, i) => (i % 5 === 3 ? 0 : v));
  const arrays: Record<string, FloatArray | null> = { x, dy, weight, bias, runningMean, runningVar, evalMean, evalVar };
  // Statistics the backward uses: the batch ones (float64, rounded to T), or frozen ones.
  const { mean, variance } = moments(x, n, c, s, kc.channelsLast);
  const bMean = kc.useBatchStats ? T.from(mean) : rand(c, -2, 2);
  const bInvstd = kc.useBatchStats ? T.from(variance, (v) => 1 / Math.sqrt(v + kc.eps)) : rand(c, 0.1, 3);
  arrays.bMean = bMean;
  arrays.invstd = bInvstd;
  if (kc.bad) {
    const a = arrays[kc.bad.where];
    if (a) a[kc.bad.at % a.length] = kc.bad.value;
  }
  return { T, n, c, s, m, numel, ...arrays, bMean, bInvstd } as {
    T: Ctor;
    n: number;
    c: number;
    s: number;
    m: number;
    numel: number;
    x: FloatArray;
    dy: FloatArray;
    weight: FloatArray | null;
    bias: FloatArray | null;
    runningMean: FloatArray | null;
    runningVar: FloatArray | null;
    evalMean: FloatArray;
    evalVar: FloatArray;
    bMean: FloatArray;
    bInvstd: FloatArray;
  };
}

type Inputs = ReturnType<typeof inputs>;

function at(channelsLast: boolean, c: number, s: number, i: number, ch: number, j: number): number {
  return channelsLast ? (i * s + j) * c + ch : (i * c + ch) * s + j;
}

/** Per-channel mean (corrected two-pass: accurate to the last bit for any data) and biased variance, in float64. */
function moments(x: ArrayLike<number>, n: number, c: number, s: number, channelsLast: boolean) {
  const mean = new Float64Array(c),
    variance = new Float64Array(c),
    maxAbs = new Float64Array(c),
    m = n * s;
  for (let ch = 0; ch < c; ch++) {
    let sum = 0,
      mx = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < s; j++) {
        const v = x[at(channelsLast, c, s, i, ch, j)];
        sum += v;
        mx = Math.max(mx, Math.abs(v));
      }
    let mu = sum / m,
      corr = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < s; j++) corr += x[at(channelsLast, c, s, i, ch, j)] - mu;
    mu += corr / m;
    let q = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < s; j++) q += (x[at(channelsLast, c, s, i, ch, j)] - mu) ** 2;
    mean[ch] = mu;
    variance[ch] = q / m;
    maxAbs[ch] = mx;
  }
  return { mean, variance, maxAbs };
}

/** k: units of roundoff a path may lose in a sum or an elementwise formula (float32 partial sums of blocks of up to 512 values). */
const K = 512;

/**
 * The float64 reference of the three kernels and, per output element, the
 * error a correct path may make (an absolute tolerance), from a model of
 * where roundoff enters:
 * - a path's mean may be off by δμ = (64 + m for float64)·u·max|x|: float32
 *   block sums on the native path; the JS path's plain float64 sum of m
 *   values (exact for float32 data, off by up to m ulps for float64 data);
 * - so its variance by 2δμ² + 16·u·max|x|·σ + (k + m for float64)·u·var: the
 *   square of the mean's error in a two-pass, the mean's error times σ in
 *   Chan's merge of block moments (the native path; relative u·|mean|/σ,
 *   visible with float64 data of mean/σ ≈ 1e6), sums' roundoff. A constant
 *   channel of large values may come out with a variance of a few ulps²,
 *   which eps alone decides against;
 * - the output's own rounding: k·u times the magnitudes in its formula.
 * Non-finite references are compared by kind (NaN, ±Inf) only.
 */
function reference(kc: KernelCase, inp: Inputs) {
  const { n, c, s, m, x, dy, weight, bias, runningMean, runningVar, evalMean, evalVar, bMean, bInvstd, T } = inp;
  const cl = kc.channelsLast,
    eps = kc.eps,
    mom = kc.momentum,
    unbiased = kc.unbiased ?? true;
  const { mean, variance, maxAbs } = moments(x, n, c, s, cl);
  const numel = x.length,
    u = unit(T),
    f = T === Float64Array ? 1 : 0,
    ks = K + f * m;
  const F = (len: number) => new Float64Array(len);
  const ft = { y: F(numel), yT: F(numel), sm: mean, smT: F(c), si: F(c), siT: F(c), rm: F(c), rmT: F(c), rv: F(c), rvT: F(c) };
  const fe = { y: F(numel), yT: F(numel) };
  const bw = { dx: F(numel), dxT: F(numel), gw: F(c), gwT: F(c), gb: F(c), gbT: F(c) };
  for (let ch = 0; ch < c; ch++) {
    const w = weight ? weight[ch] : 1,
      b = bias ? bias[ch] : 0,
      mu = mean[ch],
      v = variance[ch];
    // Training forward.
    const dmu = (64 + f * m) * u * maxAbs[ch];
    const noise = 2 * dmu * dmu + 16 * u * maxAbs[ch] * Math.sqrt(v) + ks * u * v;
    const invstd = 1 / Math.sqrt(v + eps),
      siHi = 1 / Math.sqrt(Math.max(0, v - noise) + eps),
      siLo = 1 / Math.sqrt(v + noise + eps);
    const dsi = siHi - siLo + K * u * invstd;
    const a = invstd * w;
    ft.smT[ch] = dmu + 2 * u * Math.abs(mu);
    ft.si[ch] = invstd;
    ft.siT[ch] = dsi;
    const corr = unbiased && m > 1 ? m / (m - 1) : 1;
    if (runningMean) {
      ft.rm[ch] = (1 - mom) * runningMean[ch] + mom * mu;
      ft.rmT[ch] = mom * dmu + K * u * ((1 - mom) * Math.abs(runningMean[ch]) + mom * Math.abs(mu));
    }
    if (runningVar) {
      ft.rv[ch] = (1 - mom) * runningVar[ch] + mom * v * corr;
      ft.rvT[ch] = mom * corr * noise + K * u * ((1 - mom) * Math.abs(runningVar[ch]) + mom * corr * v);
    }
    // Eval forward.
    const ae = w / Math.sqrt(evalVar[ch] + eps);
    // Backward from bMean, bInvstd.
    const bm = bMean[ch],
      bi = bInvstd[ch];
    let sdy = 0,
      sdyx = 0,
      sady = 0,
      sadyx = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < s; j++) {
        const k = at(cl, c, s, i, ch, j),
          xv = x[k],
          d = dy[k];
        ft.y[k] = (xv - mu) * a + b;
        ft.yT[k] = Math.abs(w) * (Math.abs(xv - mu) * dsi + siHi * dmu) + K * u * ((Math.abs(xv) + Math.abs(mu)) * Math.abs(a) + Math.abs(b));
        fe.y[k] = (xv - evalMean[ch]) * ae + b;
        fe.yT[k] = K * u * ((Math.abs(xv) + Math.abs(evalMean[ch])) * Math.abs(ae) + Math.abs(b));
        sdy += d;
        sdyx += d * (xv - bm);
        sady += Math.abs(d);
        sadyx += Math.abs(d * (xv - bm));
      }
    // (+ half a subnormal ulp per product dy·(x − mean): float32 products of subnormal differences keep few bits.)
    const gw = bi * sdyx,
      gwT = bi * (ks * u * sadyx + m * tiny(T)),
      gbT = ks * u * sady + m * tiny(T);
    bw.gb[ch] = sdy;
    bw.gbT[ch] = gbT;
    bw.gw[ch] = gw;
    bw.gwT[ch] = gwT;
    const k1 = w * bi,
      k2 = (k1 * bi * gw) / m;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < s; j++) {
        const k = at(cl, c, s, i, ch, j),
          xd = x[k] - bm;
        if (kc.useBatchStats) {
          bw.dx[k] = dy[k] * k1 - (k1 * sdy) / m - xd * k2;
          bw.dxT[k] =
            (Math.abs(k1) * (gbT + Math.abs(xd) * bi * bi * gwT)) / m +
            K * u * (Math.abs(dy[k] * k1) + Math.abs(k1 * sdy) / m + (Math.abs(x[k]) + Math.abs(bm)) * Math.abs(k2));
        } else {
          bw.dx[k] = dy[k] * k1;
          bw.dxT[k] = K * u * Math.abs(dy[k] * k1);
        }
      }
  }
  return { ft, fe, bw };
}

/** Runs the three kernels of a case on one path, on arrays of the case's storage; returns float64 copies of the outputs. */
async function runKernels(k: Kernels, kc: KernelCase, inp: Inputs, asyncForm: boolean) {
  const { T, n, c, s, numel } = inp;
  const put = (a: ArrayLike<number> | null) => (a === null ? null : place(T, a, kc.storage, kc.off));
  const sentinel = (len: number) => put(new T(len).fill(12345))!;
  const copy = (a: ArrayLike<number> | null) => (a === null ? null : Float64Array.from(a));
  const call = async (name: 'forwardTraining' | 'forwardEval' | 'backward', args: unknown[]) => {
    if (asyncForm) await (k as any)[`${name}Async`](...args);
    else (k as any)[name](...args);
  };
  // Training forward.
  const x1 = put(inp.x)!,
    y1 = kc.inPlace ? x1 : sentinel(numel);
  const rm = put(inp.runningMean),
    rv = put(inp.runningVar),
    sm = sentinel(c),
    si = sentinel(c);
  const ftArgs: unknown[] = [x1, y1, put(inp.weight), put(inp.bias), rm, rv, sm, si, n, c, s, kc.channelsLast, kc.eps, kc.momentum];
  if (kc.unbiased !== undefined) ftArgs.push(kc.unbiased);
  await call('forwardTraining', ftArgs);
  // Eval forward.
  const x2 = put(inp.x)!,
    y2 = kc.inPlace ? x2 : sentinel(numel);
  await call('forwardEval', [x2, y2, put(inp.weight), put(inp.bias), put(inp.evalMean), put(inp.evalVar), n, c, s, kc.channelsLast, kc.eps]);
  // Backward.
  const x3 = put(inp.x)!,
    dy = put(inp.dy)!;
  const dx = kc.dx === 'null' ? null : kc.dx === 'dy' ? dy : kc.dx === 'x' ? x3 : sentinel(numel);
  const gw = kc.grads === 'both' || kc.grads === 'weight' ? sentinel(c) : null,
    gb = kc.grads === 'both' || kc.grads === 'bias' ? sentinel(c) : null;
  await call('backward', [x3, dy, dx, put(inp.weight), put(inp.bMean), put(inp.bInvstd), gw, gb, n, c, s, kc.channelsLast, kc.useBatchStats]);
  return {
    ft: { y: copy(y1)!, sm: copy(sm)!, si: copy(si)!, rm: copy(rm), rv: copy(rv) },
    fe: { y: copy(y2)! },
    bw: { dx: copy(dx), gw: copy(gw), gb: copy(gb) },
  };
}

describe('kernels: random valid calls agree with the float64 reference and across paths', () => {
  it(
    'forwardTraining, forwardEval and backward, sync and async',
    async () => {
      await fc.assert(
        fc.asyncProperty(kernelCaseArb, fc.boolean(), async (kc, asyncWanted) => {
          // Async forms refuse resizable buffers (checked with the garbage below): valid calls on them are sync.
          const asyncForm = asyncWanted && kc.storage !== 'resizable';
          const inp = inputs(kc);
          const ref = reference(kc, inp);
          const a = await runKernels(native, kc, inp, asyncForm);
          const b = await runKernels(jsKernels, kc, inp, asyncForm);
          const T = inp.T;
          const finite = !kc.bad;
          for (const [tag, r] of [
            [nativeName, a],
            ['js', b],
          ] as const) {
            if (!finite) continue;
            checkClose(`${tag} y`, T, r.ft.y, ref.ft.y, ref.ft.yT);
            checkClose(`${tag} saveMean`, T, r.ft.sm, ref.ft.sm, ref.ft.smT);
            checkClose(`${tag} saveInvstd`, T, r.ft.si, ref.ft.si, ref.ft.siT);
            if (r.ft.rm) checkClose(`${tag} runningMean`, T, r.ft.rm, ref.ft.rm, ref.ft.rmT);
            if (r.ft.rv) checkClose(`${tag} runningVar`, T, r.ft.rv, ref.ft.rv, ref.ft.rvT);
            checkClose(`${tag} eval y`, T, r.fe.y, ref.fe.y, ref.fe.yT);
            if (r.bw.dx) checkClose(`${tag} dx`, T, r.bw.dx, ref.bw.dx, ref.bw.dxT);
            if (r.bw.gw) checkClose(`${tag} gradWeight`, T, r.bw.gw, ref.bw.gw, ref.bw.gwT);
            if (r.bw.gb) checkClose(`${tag} gradBias`, T, r.bw.gb, ref.bw.gb, ref.bw.gbT);
          }
          // Across paths, non-finite included. A NaN propagates to NaN through any algebra: with a NaN in the
          // input every result has the same kind on both paths. An infinity can meet Inf − Inf in one path's
          // algebra and not in the other's (PyTorch's own CPU and CUDA kernels differ the same way: CPU folds the
          // mean into the shift, y = x·a + (b − mean·a), CUDA computes (x − mean)·a + b), so then only finiteness
          // is compared. The same for a mean whose channel holds an infinity: +Inf on the JS path (Σx/m), NaN
          // on the native one (block shift).
          const inf = !!kc.bad && !Number.isNaN(kc.bad.value);
          checkAgree('y', T, a.ft.y, b.ft.y, ref.ft.yT, inf);
          checkAgree('saveMean', T, a.ft.sm, b.ft.sm, ref.ft.smT, true);
          checkAgree('saveInvstd', T, a.ft.si, b.ft.si, ref.ft.siT, inf);
          if (a.ft.rm) checkAgree('runningMean', T, a.ft.rm, b.ft.rm!, ref.ft.rmT, true);
          if (a.ft.rv) checkAgree('runningVar', T, a.ft.rv, b.ft.rv!, ref.ft.rvT, inf);
          checkAgree('eval y', T, a.fe.y, b.fe.y, ref.fe.yT, inf);
          if (a.bw.dx) checkAgree('dx', T, a.bw.dx, b.bw.dx!, ref.bw.dxT, inf);
          if (a.bw.gw) checkAgree('gradWeight', T, a.bw.gw, b.bw.gw!, ref.bw.gwT, inf);
          if (a.bw.gb) checkAgree('gradBias', T, a.bw.gb, b.bw.gb!, ref.bw.gbT, inf);
        }),
        runs(200),
      );
    },
    timeLimit(180_000),
  );
});

// ------------------------------------------------ garbage kernel arguments

type Op = 'forwardTraining' | 'forwardEval' | 'backward';
type ArgKind = 'numel' | 'c' | 'dim' | 'bool' | 'eps' | 'momentum';
/** name, kind, and for arrays whether it is positive data (variances, invstd). */
const SPECS: Record<Op, Array<[string, ArgKind, boolean?]>> = {
  forwardTraining: [
    ['x', 'numel'],
    ['y', 'numel'],
    ['weight', 'c'],
    ['bias', 'c'],
    ['runningMean', 'c'],
    ['runningVar', 'c', true],
    ['saveMean', 'c'],
    ['saveInvstd', 'c'],
    ['n', 'dim'],
    ['c', 'dim'],
    ['s', 'dim'],
    ['channelsLast', 'bool'],
    ['eps', 'eps'],
    ['momentum', 'momentum'],
    ['unbiased', 'bool'],
  ],
  forwardEval: [
    ['x', 'numel'],
    ['y', 'numel'],
    ['weight', 'c'],
    ['bias', 'c'],
    ['mean', 'c'],
    ['var', 'c', true],
    ['n', 'dim'],
    ['c', 'dim'],
    ['s', 'dim'],
    ['channelsLast', 'bool'],
    ['eps', 'eps'],
  ],
  backward: [
    ['x', 'numel'],
    ['dy', 'numel'],
    ['dx', 'numel'],
    ['weight', 'c'],
    ['mean', 'c'],
    ['invstd', 'c', true],
    ['gradWeight', 'c'],
    ['gradBias', 'c'],
    ['n', 'dim'],
    ['c', 'dim'],
    ['s', 'dim'],
    ['channelsLast', 'bool'],
    ['useBatchStats', 'bool'],
  ],
};

interface Ctx {
  T: Ctor;
  len: number;
  args: unknown[];
  pick: number;
}
type Garbage = { name: string; exotic?: boolean; fake?: boolean; make: (g: Ctx) => unknown };

const arrayArgs = (args: unknown[]) => args.filter((a): a is FloatArray => ArrayBuffer.isView(a) && (a instanceof Float32Array || a instanceof Float64Array));
const other = (T: Ctor): Ctor => (T === Float32Array ? Float64Array : Float32Array);

const GARBAGE: Garbage[] = [
  // Not typed arrays, not numbers.
  { name: 'undefined', make: () => undefined },
  { name: 'null', make: () => null },
  { name: 'true', make: () => true },
  { name: 'a string', make: () => '3' },
  { name: 'a bigint', exotic: true, make: () => 3n },
  { name: 'a symbol', exotic: true, make: () => Symbol('s') },
  { name: 'an object', make: () => ({ length: 3, 0: 1 }) },
  { name: 'an Array', make: (g) => Array.from({ length: g.len }, () => 1) },
  { name: 'a function', make: () => () => 1 },
  { name: 'a Number object', make: () => new Number(2) },
  { name: 'an ArrayBuffer', make: (g) => new ArrayBuffer(g.len * g.T.BYTES_PER_ELEMENT) },
  { name: 'a DataView', make: (g) => new DataView(new ArrayBuffer(g.len * g.T.BYTES_PER_ELEMENT)) },
  { name: 'a Proxy of a typed array', exotic: true, fake: true, make: (g) => new Proxy(new g.T(g.len), {}) },
  { name: 'an object inheriting from the typed array', exotic: true, fake: true, make: (g) => Object.create(g.T.prototype) },
  // Numbers that are no dimension, eps, momentum or boolean.
  ...[
    0,
    -0,
    -1,
    1.5,
    NaN,
    Infinity,
    -Infinity,
    2 ** 31,
    2 ** 32,
    2 ** 32 + 1,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 64,
    1e308,
    Number.MIN_VALUE,
    Number.MAX_SAFE_INTEGER,
    1 + 2 ** -52,
  ].map((v): Garbage => ({ name: `the number ${v}`, make: () => v })),
  // Typed arrays of the wrong kind or length, or in odd buffers.
  { name: 'the right type and length', make: (g) => new g.T(g.len).fill(0.5) },
  // Valid; described by its class name on the JS path and by its element type in the binding.
  {
    name: 'a subclass instance',
    exotic: true,
    make: (g) => {
      class Sub extends (g.T as Float32ArrayConstructor) {}
      return new Sub(g.len).fill(0.75);
    },
  },
  { name: 'a SharedArrayBuffer view at an offset', make: (g) => place(g.T, new Array(g.len).fill(0.25), 'sharedOffset', 3) },
  { name: 'an offset view', make: (g) => place(g.T, new Array(g.len).fill(1.25), 'offset', 1) },
  { name: 'a resizable-buffer view', make: (g) => place(g.T, new Array(g.len).fill(2), 'resizable', 0) },
  {
    name: 'a resizable-buffer view shrunk',
    make: (g) => {
      const a = place(g.T, new Array(g.len + 1).fill(2), 'resizable', 0);
      (a.buffer as any).resize(Math.max(0, g.len - 1) * g.T.BYTES_PER_ELEMENT);
      return a;
    },
  },
  {
    name: 'a fixed-length view out of bounds of its shrunk buffer',
    make: (g) => {
      const rab = new (ArrayBuffer as any)(g.len * g.T.BYTES_PER_ELEMENT, { maxByteLength: 4 * g.len * g.T.BYTES_PER_ELEMENT });
      const a = new g.T(rab, 0, g.len);
      rab.resize(0);
      return a;
    },
  },
  { name: 'the other float type', make: (g) => new (other(g.T))(g.len) },
  { name: 'an Int32Array', make: (g) => new Int32Array(g.len) },
  { name: 'a Uint8Array', make: (g) => new Uint8Array(g.len * g.T.BYTES_PER_ELEMENT) },
  { name: 'a BigInt64Array', make: (g) => new BigInt64Array(g.len) },
  { name: 'one element short', make: (g) => new g.T(Math.max(0, g.len - 1)) },
  { name: 'one element long', make: (g) => new g.T(g.len + 1) },
  { name: 'empty', make: (g) => new g.T(0) },
  { name: 'detached', make: (g) => detached(g.T, g.len) },
  // Aliasing.
  { name: 'x itself', make: (g) => g.args[0] },
  {
    name: 'another array argument',
    make: (g) => {
      const as = arrayArgs(g.args);
      return as.length ? as[g.pick % as.length] : null;
    },
  },
  {
    name: 'a view of another argument shifted by one element',
    make: (g) => {
      const as = arrayArgs(g.args).filter((a) => a.length > g.len);
      if (!as.length) return new g.T(g.len);
      const a = as[g.pick % as.length];
      return new (a.constructor as Ctor)(a.buffer, a.byteOffset + a.BYTES_PER_ELEMENT, g.len);
    },
  },
  {
    name: 'a disjoint view of the same buffer',
    make: (g) => {
      const a = new g.T(new SharedArrayBuffer(g.len * 2 * g.T.BYTES_PER_ELEMENT));
      return a.subarray(g.len);
    },
  },
];

/** Whole-call mutations: dimensions whose product overflows or wraps, argument counts. */
type CallMutation = 'none' | 'wrap32' | 'huge' | 'square' | 'truncate' | 'extra';

const garbageCaseArb = fc.record({
  op: fc.constantFrom<Op>('forwardTraining', 'forwardEval', 'backward'),
  f64: fc.boolean(),
  // Powers of two often, so that a product can be wrapped modulo 2^32.
  n: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constantFrom(1, 2, 4, 8)),
  c: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constantFrom(1, 2, 4)),
  s: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(1, 4, 16)),
  channelsLast: fc.boolean(),
  seed: fc.integer(),
  edits: fc.array(fc.record({ pos: fc.nat(20), garbage: fc.nat(GARBAGE.length - 1), pick: fc.nat() }), { minLength: 0, maxLength: 3 }),
  call: fc.constantFrom<CallMutation>('none', 'none', 'none', 'wrap32', 'huge', 'square', 'truncate', 'extra'),
  cut: fc.nat(15),
  asyncForm: fc.boolean(),
});

type GarbageCase = typeof garbageCaseArb extends fc.Arbitrary<infer U> ? U : never;

/** The arguments of a case: a valid call, then the edits. Deterministic: built once per path. */
function garbageCall(gc: GarbageCase): { args: unknown[]; exotic: Exotic; what: string[] } {
  const T: Ctor = gc.f64 ? Float64Array : Float32Array;
  const spec = SPECS[gc.op],
    r = rng(gc.seed);
  const { n, c, s } = gc,
    numel = n * c * s;
  const args: unknown[] = spec.map(([name, k, positive]) => {
    switch (k) {
      case 'numel':
        return T.from({ length: numel }, () => 3 * r() - 1);
      case 'c':
        return T.from({ length: c }, () => (positive ? 0.5 + r() : 2 * r() - 1));
      case 'dim':
        return name === 'n' ? n : name === 'c' ? c : s;
      case 'bool':
        return name === 'channelsLast' ? gc.channelsLast : r() < 0.5;
      case 'eps':
        return 1e-5;
      default:
        return 0.1;
    }
  });
  const what: string[] = [];
  let exotic: Exotic = false;
  for (const e of gc.edits) {
    const pos = e.pos % spec.length,
      [name, k] = spec[pos],
      g = GARBAGE[e.garbage];
    args[pos] = g.make({ T, len: k === 'numel' ? numel : c, args, pick: e.pick });
    if (g.exotic && exotic !== 'class') exotic = g.fake && pos === 0 ? 'class' : 'words';
    what.push(`${name} = ${g.name}`);
  }
  const dims = spec.findIndex(([name]) => name === 'n');
  switch (gc.call) {
    case 'wrap32': {
      // n' with n'·c·s = numel + 2^32: the product's low 32 bits are the arrays' length.
      const cs = c * s;
      if (2 ** 32 % cs === 0) args[dims] = n + 2 ** 32 / cs;
      else if (2 ** 32 % (n * s) === 0) args[dims + 1] = c + 2 ** 32 / (n * s);
      what.push(`dims wrapped: ${label(args[dims])} * ${label(args[dims + 1])} * ${label(args[dims + 2])}`);
      break;
    }
    case 'huge':
      args.splice(dims, 3, 2 ** 40, 2 ** 20, 2 ** 10);
      what.push('dims 2^40 * 2^20 * 2^10 (overflows int64)');
      break;
    case 'square':
      args.splice(dims, 3, 65536, 65536, 1);
      what.push('dims 65536 * 65536 * 1 (2^32)');
      break;
    // The binding counts its arguments first; the JS path finds the first missing one undefined (a TypeError too).
    case 'truncate':
      args.length = gc.cut % args.length;
      if (args.length < (gc.op === 'forwardEval' ? 11 : gc.op === 'backward' ? 13 : 14)) exotic = 'class';
      what.push(`only ${args.length} arguments`);
      break;
    case 'extra':
      args.push(1, 'extra', null);
      what.push('extra arguments');
      break;
  }
  return { args, exotic, what };
}

/** Distinct typed arrays among the arguments (the things a call may write). */
function viewsOf(args: unknown[]): ArrayBufferView[] {
  return [...new Set(args.filter((a): a is ArrayBufferView => ArrayBuffer.isView(a)))];
}

describe('kernels: garbage arguments throw the same error on both paths, or both succeed and agree', () => {
  it(
    'sync and async, nothing written by a call that throws',
    async () => {
      let threw = 0,
        passed = 0;
      await fc.assert(
        fc.asyncProperty(garbageCaseArb, async (gc) => {
          const results = [];
          let exotic: Exotic = false,
            what: string[] = [];
          for (const k of [native, jsKernels]) {
            const call = garbageCall(gc);
            exotic = call.exotic;
            what = call.what;
            const before = snapshot(viewsOf(call.args));
            const f = () => (k as any)[gc.asyncForm ? `${gc.op}Async` : gc.op](...call.args);
            const out = gc.asyncForm ? await outcomeAsync(f) : outcome(f);
            const after = snapshot(viewsOf(call.args));
            if (!out.ok) expect(after, `${gc.op}(${what.join(', ')}) threw ${out.error.message} but wrote`).toEqual(before);
            results.push({ out, views: viewsOf(call.args) });
          }
          const [a, b] = results;
          const label = `${gc.op}${gc.asyncForm ? 'Async' : ''}(${what.join(', ') || 'valid'})`;
          expect(
            a.out.ok,
            `${label}: ${nativeName} ${a.out.ok ? 'succeeded' : `threw ${(a.out as any).error.message}`}, js ${b.out.ok ? 'succeeded' : `threw ${(b.out as any).error.message}`}`,
          ).toBe(b.out.ok);
          if (!a.out.ok && !b.out.ok) {
            sameError(a.out.error, b.out.error, exotic);
            threw++;
            return;
          }
          passed++;
          expect(a.views.length, label).toBe(b.views.length);
          for (let i = 0; i < a.views.length; i++) {
            const x = a.views[i] as unknown as ArrayLike<number>,
              y = b.views[i] as unknown as ArrayLike<number>;
            if (typeof x[0] === 'bigint') continue;
            const T: Ctor = x instanceof Float64Array ? Float64Array : Float32Array;
            let scale = 1;
            for (let j = 0; j < y.length; j++) if (Number.isFinite(y[j])) scale = Math.max(scale, Math.abs(y[j]));
            checkAgree(
              `${label} argument ${i}`,
              T,
              x,
              y,
              Array.from({ length: y.length }, () => K * 16 * unit(T) * scale),
            );
          }
        }),
        runs(1500),
      );
      // Both kinds of outcome were exercised.
      expect(threw).toBeGreaterThan(250 * RUNS);
      expect(passed).toBeGreaterThan(50 * RUNS);
    },
    timeLimit(180_000),
  );
});

// ------------------------------------------------------------ public API

let apis: Array<[string, Api]> = [];

beforeAll(async () => {
  const load = async (backend: 'native' | 'wasm' | 'js'): Promise<Api> => {
    vi.resetModules();
    vi.stubEnv('BATCHNORM_BACKEND', backend);
    try {
      return await import('../../lib/index.js');
    } finally {
      vi.unstubAllEnvs();
    }
  };
  const js = await load('js');
  const first = onWasm ? 'wasm' : addon ? 'native' : null;
  apis = [
    [first ?? 'js (no addon)', first ? await load(first) : js],
    ['js', js],
  ];
  expect(apis[0][1].backendInfo().backend).toBe(first ?? 'js');
  expect(apis[1][1].backendInfo().backend).toBe('js');
});

type Mod = '1d' | '2d' | '3d';
const apiCaseArb = fc.record({
  mod: fc.constantFrom<Mod | 'functional'>('1d', '2d', '3d', 'functional'),
  rank1d: fc.constantFrom(2, 3),
  n: fc.integer({ min: 1, max: 4 }),
  c: fc.integer({ min: 1, max: 6 }),
  spatial: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 3, maxLength: 3 }),
  channelsLast: fc.boolean(),
  inputF64: fc.boolean(),
  moduleF64: fc.boolean(),
  eps: fc.constantFrom(1e-5, 1e-3, 0.1),
  momentum: fc.constantFrom<number | null>(0.1, 0, 1, 0.37, null),
  affine: fc.boolean(),
  track: fc.boolean(),
  unbiased: fc.boolean(),
  seed: fc.integer(),
  steps: fc.array(fc.constantFrom('train', 'train', 'backward', 'eval', 'backward', 'zeroGrad', 'reload'), { minLength: 1, maxLength: 6 }),
  asyncForm: fc.boolean(),
  out: fc.constantFrom('none', 'fresh', 'inPlace'),
});
type ApiCase = typeof apiCaseArb extends fc.Arbitrary<infer U> ? U : never;

function apiShape(ac: ApiCase): number[] {
  const sp =
    ac.mod === '1d'
      ? ac.rank1d === 3
        ? [ac.spatial[0]]
        : []
      : ac.mod === '2d'
        ? ac.spatial.slice(0, 2)
        : ac.mod === '3d'
          ? ac.spatial
          : ac.spatial.slice(0, 1 + (ac.seed & 1));
  return ac.channelsLast ? [ac.n, ...sp, ac.c] : [ac.n, ac.c, ...sp];
}

function layoutOf(ac: ApiCase): any {
  if (ac.mod === 'functional') return ac.channelsLast ? 'channelsLast' : 'channelsFirst';
  if (ac.mod === '1d') return ac.channelsLast ? 'NLC' : 'NCL';
  if (ac.mod === '2d') return ac.channelsLast ? 'NHWC' : 'NCHW';
  return ac.channelsLast ? 'NDHWC' : 'NCDHW';
}

/** What one step gave: its results (float64 copies) and the state after it, or the error it threw. */
type StepOutcome = Record<string, number[] | number | string | null>;

/** Runs a case's steps through one API instance; returns every result (float64 copies) or the error each step threw. */
async function runApi(api: Api, ac: ApiCase): Promise<Array<StepOutcome>> {
  const shape = apiShape(ac),
    numel = shape.reduce((a, b) => a * b, 1),
    T: Ctor = ac.inputF64 ? Float64Array : Float32Array;
  const r = rng(ac.seed);
  const fresh = (len: number, mu = 0, sd = 1) => T.from({ length: len }, () => mu + sd * (2 * r() - 1) * 1.7);
  const copy = (a: ArrayLike<number> | null | undefined) => (a ? Array.from(a) : null);
  const record: Array<StepOutcome> = [];
  const layout = layoutOf(ac);
  const outFor = (x: FloatArray) => (ac.out === 'none' ? undefined : ac.out === 'inPlace' ? x : new T(x.length));
  const attempt = async (f: () => Promise<StepOutcome>) => {
    try {
      record.push(await f());
    } catch (e) {
      record.push({ error: `${(e as Error).constructor.name}: ${(e as Error).message}` });
    }
  };
  if (ac.mod === 'functional') {
    const weight = ac.affine ? fresh(ac.c, 1, 0.5) : null,
      bias = ac.affine ? fresh(ac.c, 0, 1) : null;
    const rm = ac.track ? fresh(ac.c, 0, 1) : null,
      rv = ac.track ? T.from(fresh(ac.c, 1, 0.5), Math.abs) : null;
    let last: { saveMean: FloatArray; saveInvstd: FloatArray; x: { data: FloatArray; shape: number[] }; training: boolean } | null = null;
    for (const step of ac.steps) {
      await attempt(async (): Promise<StepOutcome> => {
        if (step === 'train' || step === 'eval') {
          const x = { data: fresh(numel, 2 * r() - 1, 1 + r()), shape };
          const xs = x.data.slice();
          const opts = {
            weight,
            bias,
            training: step === 'train',
            momentum: ac.momentum ?? 0.1,
            eps: ac.eps,
            layout,
            out: outFor(x.data),
            unbiasedRunningVar: ac.unbiased,
          };
          const res = ac.asyncForm ? await api.batchNormAsync(x, rm, rv, opts as any) : api.batchNorm(x, rm, rv, opts as any);
          last = { saveMean: res.saveMean, saveInvstd: res.saveInvstd, x: { data: xs, shape }, training: step === 'train' };
          return { y: copy(res.data), saveMean: copy(res.saveMean), saveInvstd: copy(res.saveInvstd), rm: copy(rm), rv: copy(rv) };
        }
        if (step === 'backward' && last) {
          const dy = { data: fresh(numel), shape };
          const opts = {
            weight,
            saveMean: last.saveMean,
            saveInvstd: last.saveInvstd,
            training: last.training,
            layout,
            out: ac.out === 'inPlace' ? dy.data : ac.out === 'fresh' ? new T(numel) : undefined,
          };
          const g = ac.asyncForm ? await api.batchNormBackwardAsync(dy, last.x, opts as any) : api.batchNormBackward(dy, last.x, opts as any);
          return { dx: copy(g.gradInput.data), gw: copy(g.gradWeight), gb: copy(g.gradBias) };
        }
        return {};
      });
    }
    return record;
  }
  const Cls = ac.mod === '1d' ? api.BatchNorm1d : ac.mod === '2d' ? api.BatchNorm2d : api.BatchNorm3d;
  const bn = new Cls(ac.c, {
    eps: ac.eps,
    momentum: ac.momentum,
    affine: ac.affine,
    trackRunningStats: ac.track,
    layout,
    dtype: ac.moduleF64 ? 'float64' : 'float32',
    unbiasedRunningVar: ac.unbiased,
  });
  const state = () => ({
    rm: copy(bn.runningMean),
    rv: copy(bn.runningVar),
    nbt: bn.numBatchesTracked,
    w: copy(bn.weight?.data),
    b: copy(bn.bias?.data),
    gw: copy(bn.weight?.grad),
    gb: copy(bn.bias?.grad),
  });
  for (const step of ac.steps) {
    await attempt(async () => {
      switch (step) {
        case 'train':
        case 'eval': {
          bn.train(step === 'train');
          const x = { data: fresh(numel, 2 * r() - 1, 1 + r()), shape };
          const y = ac.asyncForm ? await bn.forwardAsync(x, { out: outFor(x.data) }) : bn.forward(x, { out: outFor(x.data) });
          return { y: copy(y.data), ...state() };
        }
        case 'backward': {
          const dy = { data: fresh(numel), shape };
          const dx = ac.asyncForm ? await bn.backwardAsync(dy, { out: outFor(dy.data) }) : bn.backward(dy, { out: outFor(dy.data) });
          return { dx: copy(dx.data), ...state() };
        }
        case 'zeroGrad':
          bn.zeroGrad();
          return state();
        default: {
          const sd = JSON.parse(JSON.stringify(bn.stateDict(), (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v)));
          bn.loadStateDict(sd);
          return state();
        }
      }
    });
  }
  return record;
}

describe('public API: random valid use agrees across paths', () => {
  it(
    'BatchNorm1d/2d/3d and the functional forms, sync and async, through training, backward, eval, frozen backward',
    async () => {
      await fc.assert(
        fc.asyncProperty(apiCaseArb, async (ac) => {
          const [a, b] = [await runApi(apis[0][1], ac), await runApi(apis[1][1], ac)];
          expect(a.length).toBe(b.length);
          const T: Ctor = ac.inputF64 && (ac.mod === 'functional' || ac.moduleF64) ? Float64Array : Float32Array;
          for (let i = 0; i < a.length; i++) {
            expect(Object.keys(a[i]), `step ${i} (${ac.steps[i]})`).toEqual(Object.keys(b[i]));
            for (const key of Object.keys(a[i])) {
              const x = a[i][key],
                y = b[i][key];
              if (!Array.isArray(x) || !Array.isArray(y)) {
                expect(x, `step ${i} (${ac.steps[i]}) ${key}`).toEqual(y);
                continue;
              }
              let scale = 1;
              for (const v of y) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
              // Steps compound (running statistics, accumulated gradients): a little more than one call's roundoff.
              checkAgree(
                `step ${i} (${ac.steps[i]}) ${key}`,
                Float32Array,
                x,
                y,
                x.map(() => (T === Float64Array ? 1e-7 : 1) * 4e-5 * scale),
              );
            }
          }
        }),
        runs(300),
      );
    },
    timeLimit(180_000),
  );
});

/** One thing wrong with a valid public call. */
const API_GARBAGE: Array<[string, (g: { T: Ctor; x: FloatArray; shape: number[]; c: number; rm: FloatArray; rv: FloatArray }) => Record<string, unknown>]> = [
  ['no input', () => ({ input: null })],
  ['input without shape', (g) => ({ input: { data: g.x } })],
  ['data an Array', (g) => ({ input: { data: Array.from(g.x), shape: g.shape } })],
  ['data an Int32Array', (g) => ({ input: { data: new Int32Array(g.x.length), shape: g.shape } })],
  ['data detached', (g) => ({ input: { data: detached(g.T, g.x.length), shape: g.shape } })],
  ['data SharedArrayBuffer-backed', (g) => ({ input: { data: place(g.T, g.x, 'sharedOffset', 1), shape: g.shape } })],
  ['data a resizable-buffer view', (g) => ({ input: { data: place(g.T, g.x, 'resizable', 0), shape: g.shape } })],
  ['shape with NaN', (g) => ({ input: { data: g.x, shape: [NaN, ...g.shape.slice(1)] } })],
  ['shape negative', (g) => ({ input: { data: g.x, shape: [-g.shape[0], ...g.shape.slice(1)] } })],
  ['shape fractional', (g) => ({ input: { data: g.x, shape: [g.shape[0] + 0.5, ...g.shape.slice(1)] } })],
  ['shape with Infinity', (g) => ({ input: { data: g.x, shape: [Infinity, ...g.shape.slice(1)] } })],
  ['shape a string', (g) => ({ input: { data: g.x, shape: String(g.shape) } })],
  ['shape with a string', (g) => ({ input: { data: g.x, shape: g.shape.map(String) } })],
  // The product overflows 32 bits and wraps to the real length: 2^32 + numel.
  [
    'shape whose product wraps to the length',
    (g) => ({ input: { data: g.x, shape: [g.shape[0] + 2 ** 32 / (g.x.length / g.shape[0]), ...g.shape.slice(1)] } }),
  ],
  ['shape of 2^32 elements', (g) => ({ input: { data: g.x, shape: [65536, ...g.shape.slice(1, -1), 65536 * g.shape[g.shape.length - 1]] } })],
  ['shape of another rank', (g) => ({ input: { data: g.x, shape: [...g.shape, 1, 1, 1] } })],
  ['shape of rank 1', (g) => ({ input: { data: g.x, shape: [g.x.length] } })],
  ['out too short', (g) => ({ out: new g.T(g.x.length - 1) })],
  ['out of the other type', (g) => ({ out: new (other(g.T))(g.x.length) })],
  ['out detached', (g) => ({ out: detached(g.T, g.x.length) })],
  [
    'out overlapping x',
    (g) => {
      const b = new g.T(g.x.length + 1);
      b.set(g.x);
      return { input: { data: b.subarray(0, g.x.length), shape: g.shape }, out: b.subarray(1) };
    },
  ],
  ['out the running mean', (g) => ({ out: g.rm })],
  ['weight too long', (g) => ({ weight: new g.T(g.c + 1) })],
  ['weight an Array', (g) => ({ weight: new Array(g.c).fill(1) })],
  ['weight of the other type', (g) => ({ weight: new (other(g.T))(g.c) })],
  ['bias detached', (g) => ({ bias: detached(g.T, g.c) })],
  [
    'bias the same array as the weight (allowed: both read)',
    (g) => {
      const w = new g.T(g.c).fill(1);
      return { weight: w, bias: w };
    },
  ],
  ['runningMean the same array as runningVar', (g) => ({ rv: g.rm })],
  [
    'runningVar overlapping runningMean',
    (g) => {
      const b = new g.T(g.c + 1).fill(1);
      return { rm: b.subarray(0, g.c), rv: b.subarray(1) };
    },
  ],
  ['runningMean too short', (g) => ({ rm: new g.T(Math.max(0, g.c - 1)) })],
  ['runningVar null alone', () => ({ rv: null })],
  ['momentum NaN', () => ({ momentum: NaN })],
  ['momentum 2', () => ({ momentum: 2 })],
  ['momentum a string', () => ({ momentum: '0.1' })],
  ['eps 0', () => ({ eps: 0 })],
  ['eps negative', () => ({ eps: -1e-5 })],
  ['eps NaN', () => ({ eps: NaN })],
  ['layout bogus', () => ({ layout: 'NWHC' })],
  ['unbiasedRunningVar a string', () => ({ unbiasedRunningVar: 'no' })],
  [
    'one value per channel',
    (g) => ({
      input: { data: g.x.subarray(0, g.c), shape: g.shape.map((d, i) => (i === 0 ? 1 : d === g.c && (i === 1 || i === g.shape.length - 1) ? d : 1)) },
    }),
  ],
  ['saveMeanOut too short', (g) => ({ saveMeanOut: new g.T(Math.max(0, g.c - 1)) })],
  ['saveInvstdOut of the other type', (g) => ({ saveInvstdOut: new (other(g.T))(g.c) })],
  ['saveMeanOut the running variance', (g) => ({ saveMeanOut: g.rv })],
  [
    'saveInvstdOut the same array as saveMeanOut',
    (g) => {
      const a = new g.T(g.c);
      return { saveMeanOut: a, saveInvstdOut: a };
    },
  ],
  ['saveMeanOut and saveInvstdOut, both fresh (allowed)', (g) => ({ saveMeanOut: new g.T(g.c), saveInvstdOut: new g.T(g.c) })],
  ['saveMean too short', (g) => ({ saveMean: new g.T(Math.max(0, g.c - 1)) })],
  ['saveInvstd null', () => ({ saveInvstd: null })],
  ['saveInvstd an Int32Array', (g) => ({ saveInvstd: new Int32Array(g.c) })],
  ['gradOutput of another shape', (g) => ({ gradOutput: { data: new g.T(g.x.length), shape: [...g.shape].reverse() } })],
  ['gradOutput of the other type', (g) => ({ gradOutput: { data: new (other(g.T))(g.x.length), shape: g.shape } })],
  [
    'gradWeightOut the same array as gradBiasOut',
    (g) => {
      const a = new g.T(g.c);
      return { gradWeightOut: a, gradBiasOut: a };
    },
  ],
  ['gradWeightOut the saveMean', () => ({ gradWeightOut: 'saveMean' })],
  ['backward out the same array as gradOutput (allowed: in place)', () => ({ bout: 'dy' })],
  ['backward out overlapping x', () => ({ bout: 'x+1' })],
  ['options null', () => ({ options: null })],
];

const apiGarbageArb = fc.record({
  base: apiCaseArb,
  garbage: fc.nat(API_GARBAGE.length - 1),
  asyncForm: fc.boolean(),
});

/** Forward then backward through one API with one argument replaced; the outcome and whether anything changed on failure. */
async function garbageApiCall(api: Api, base0: ApiCase, gi: number, asyncForm: boolean) {
  const base = { ...base0, n: Math.max(2, base0.n) }; // a valid training call but for the garbage
  const shape = apiShape(base),
    numel = shape.reduce((a, b) => a * b, 1);
  const T: Ctor = base.inputF64 ? Float64Array : Float32Array,
    c = base.c,
    r = rng(base.seed);
  const x = T.from({ length: numel }, () => 3 * r() - 1);
  const rm = new T(c),
    rv = new T(c).fill(1);
  const g = API_GARBAGE[gi][1]({ T, x, shape, c, rm, rv });
  const layout = layoutOf(base);
  const input = 'input' in g ? g.input : { data: x, shape };
  const weight = 'weight' in g ? g.weight : new T(c).fill(1.5),
    bias = 'bias' in g ? g.bias : new T(c).fill(0.5);
  const rmA = ('rm' in g ? g.rm : rm) as FloatArray,
    rvA = ('rv' in g ? g.rv : rv) as FloatArray;
  const arrays = [x, rm, rv, rmA, rvA, weight, bias, g.out, (input as any)?.data, g.saveMeanOut, g.saveInvstdOut];
  const outcome1 = async (f: () => unknown) => (asyncForm ? outcomeAsync(f) : outcome(f));
  let before = snapshot(arrays);
  if (base.mod !== 'functional') {
    // The module's own checks, then its kernel calls with its own arrays: garbage reaches it through the input, out, and gradOutput.
    const Cls = base.mod === '1d' ? api.BatchNorm1d : base.mod === '2d' ? api.BatchNorm2d : api.BatchNorm3d;
    const bn = new Cls(c, { layout, dtype: base.moduleF64 ? 'float64' : 'float32' });
    const st = () => snapshot([bn.runningMean, bn.runningVar, bn.weight?.data, bn.bias?.data, bn.weight?.grad, bn.bias?.grad, bn.numBatchesTracked]);
    bn.forward({ data: x.slice(), shape });
    before = snapshot([...arrays, st()]);
    const fwd = await outcome1(() => (asyncForm ? bn.forwardAsync(input as any, { out: g.out as any }) : bn.forward(input as any, { out: g.out as any })));
    if (!fwd.ok) {
      expect(snapshot([...arrays, st()]), 'a forward that threw changed nothing').toEqual(before);
      expect(bn.numBatchesTracked).toBe(1);
    }
    const dy = ('gradOutput' in g ? g.gradOutput : { data: new T(numel).fill(0.25), shape }) as any;
    before = snapshot([...arrays, dy?.data, st()]);
    const bwd = await outcome1(() => (asyncForm ? bn.backwardAsync(dy, { out: g.out as any }) : bn.backward(dy, { out: g.out as any })));
    if (!bwd.ok) expect(snapshot([...arrays, dy?.data, st()]), 'a backward that threw changed nothing').toEqual(before);
    return { fwd, bwd, state: st() };
  }
  const opts: Record<string, unknown> = {
    weight,
    bias,
    training: true,
    momentum: 'momentum' in g ? g.momentum : 0.1,
    eps: 'eps' in g ? g.eps : 1e-5,
    layout: 'layout' in g ? g.layout : layout,
    out: g.out,
  };
  if ('unbiasedRunningVar' in g) opts.unbiasedRunningVar = g.unbiasedRunningVar;
  if ('saveMeanOut' in g) opts.saveMeanOut = g.saveMeanOut;
  if ('saveInvstdOut' in g) opts.saveInvstdOut = g.saveInvstdOut;
  const options = 'options' in g ? g.options : opts;
  const fwd = await outcome1(() =>
    asyncForm ? api.batchNormAsync(input as any, rmA, rvA, options as any) : api.batchNorm(input as any, rmA, rvA, options as any),
  );
  if (!fwd.ok) expect(snapshot(arrays), 'a forward that threw changed nothing').toEqual(before);
  const f = fwd.ok ? (fwd.value as any) : api.batchNorm({ data: x.slice(), shape }, null, null, { training: true, layout });
  const dy = ('gradOutput' in g ? g.gradOutput : { data: new T(numel).fill(0.25), shape }) as any;
  const saveMean = 'saveMean' in g ? g.saveMean : f.saveMean;
  const bopts: Record<string, unknown> = { weight, saveMean, saveInvstd: 'saveInvstd' in g ? g.saveInvstd : f.saveInvstd, training: true, layout };
  if ('gradWeightOut' in g) bopts.gradWeightOut = g.gradWeightOut === 'saveMean' ? saveMean : g.gradWeightOut;
  if ('gradBiasOut' in g) bopts.gradBiasOut = g.gradBiasOut;
  const xb = { data: x, shape };
  if (g.bout === 'dy') bopts.out = dy.data;
  if (g.bout === 'x+1') {
    const big = new T(numel + 1);
    big.set(x);
    xb.data = big.subarray(0, numel);
    bopts.out = big.subarray(1);
  }
  const barrays = [...arrays, dy?.data, xb.data, bopts.out, bopts.gradWeightOut, bopts.gradBiasOut, bopts.saveMean, bopts.saveInvstd];
  before = snapshot(barrays);
  const bwd = await outcome1(() =>
    asyncForm
      ? api.batchNormBackwardAsync(dy, xb as any, ('options' in g ? g.options : bopts) as any)
      : api.batchNormBackward(dy, xb as any, ('options' in g ? g.options : bopts) as any),
  );
  if (!bwd.ok) expect(snapshot(barrays), 'a backward that threw changed nothing').toEqual(before);
  return { fwd, bwd, state: snapshot([rmA, rvA]) };
}

describe('public API: garbage throws the same error on both paths and changes nothing', () => {
  it(
    'tensors, shapes, options, out, saved statistics and gradient buffers; sync and async',
    async () => {
      let threw = 0;
      await fc.assert(
        fc.asyncProperty(apiGarbageArb, async ({ base, garbage, asyncForm }) => {
          const [a, b] = [await garbageApiCall(apis[0][1], base, garbage, asyncForm), await garbageApiCall(apis[1][1], base, garbage, asyncForm)];
          const what = API_GARBAGE[garbage][0];
          for (const k of ['fwd', 'bwd'] as const) {
            const x = a[k],
              y = b[k];
            expect(
              x.ok,
              `${what}: ${k} ${x.ok ? 'succeeded' : (x as any).error.message} on one path, ${y.ok ? 'succeeded' : (y as any).error.message} on the other`,
            ).toBe(y.ok);
            if (!x.ok && !y.ok) {
              sameError(x.error, y.error, false);
              threw++;
            }
          }
        }),
        runs(600),
      );
      expect(threw).toBeGreaterThan(300 * RUNS);
    },
    timeLimit(180_000),
  );
});
