/** Test helpers: a seeded generator, a float64 reference of the kernels' math, comparisons, and hand-made safetensors files. */
import type { FloatArray } from '../lib/backend/kernels.js';

/**
 * Float32Array's or Float64Array's constructor. Their union has no callable
 * `from(src, map)` or `new T(buffer, offset, length)` for a buffer of either
 * kind (TypeScript cannot merge two overload sets); this one type has the
 * calls the tests make, and both constructors are assignable to it.
 */
export interface FloatArrayConstructor {
  readonly BYTES_PER_ELEMENT: number;
  new (length: number): FloatArray;
  new (values: ArrayLike<number> | Iterable<number>): FloatArray;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): FloatArray;
  from(src: ArrayLike<number> | Iterable<number>): FloatArray;
  from<U>(src: ArrayLike<U> | Iterable<U>, map: (v: U, i: number) => number): FloatArray;
}

/** Deterministic uniform [0, 1) generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal values from a seeded generator (Box-Muller). */
export function randn(n: number, seed: number, mean = 0, std = 1, T: FloatArrayConstructor = Float32Array): FloatArray {
  const r = rng(seed);
  const out = new T(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

export interface Dims {
  n: number;
  c: number;
  s: number;
  channelsLast: boolean;
}

export function index(d: Dims, i: number, ch: number, j: number): number {
  return d.channelsLast ? (i * d.s + j) * d.c + ch : (i * d.c + ch) * d.s + j;
}

/** Per-channel mean and biased variance in float64, two passes. */
export function refMoments(x: ArrayLike<number>, d: Dims): { mean: Float64Array; variance: Float64Array } {
  const mean = new Float64Array(d.c),
    variance = new Float64Array(d.c),
    m = d.n * d.s;
  for (let ch = 0; ch < d.c; ch++) {
    let s = 0;
    for (let i = 0; i < d.n; i++) for (let j = 0; j < d.s; j++) s += x[index(d, i, ch, j)];
    const mu = s / m;
    let q = 0;
    for (let i = 0; i < d.n; i++) for (let j = 0; j < d.s; j++) q += (x[index(d, i, ch, j)] - mu) ** 2;
    mean[ch] = mu;
    variance[ch] = q / m;
  }
  return { mean, variance };
}

/** y = (x − mean)/√(var + eps)·w + b in float64. */
export function refNormalize(
  x: ArrayLike<number>,
  d: Dims,
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  eps: number,
  w: ArrayLike<number> | null,
  b: ArrayLike<number> | null,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let ch = 0; ch < d.c; ch++) {
    const is = 1 / Math.sqrt(variance[ch] + eps),
      ww = w ? w[ch] : 1,
      bb = b ? b[ch] : 0;
    for (let i = 0; i < d.n; i++)
      for (let j = 0; j < d.s; j++) {
        const k = index(d, i, ch, j);
        y[k] = (x[k] - mean[ch]) * is * ww + bb;
      }
  }
  return y;
}

/** Backward in float64 from given mean/invstd. */
export function refBackward(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  d: Dims,
  mean: ArrayLike<number>,
  invstd: ArrayLike<number>,
  w: ArrayLike<number> | null,
  batchStats: boolean,
) {
  const m = d.n * d.s,
    dx = new Float64Array(x.length),
    gw = new Float64Array(d.c),
    gb = new Float64Array(d.c);
  for (let ch = 0; ch < d.c; ch++) {
    let sdy = 0,
      sdyx = 0;
    for (let i = 0; i < d.n; i++)
      for (let j = 0; j < d.s; j++) {
        const k = index(d, i, ch, j);
        sdy += dy[k];
        sdyx += dy[k] * (x[k] - mean[ch]) * invstd[ch];
      }
    gw[ch] = sdyx;
    gb[ch] = sdy;
    const k1 = (w ? w[ch] : 1) * invstd[ch];
    for (let i = 0; i < d.n; i++)
      for (let j = 0; j < d.s; j++) {
        const k = index(d, i, ch, j);
        dx[k] = batchStats ? k1 * (dy[k] - sdy / m - ((x[k] - mean[ch]) * invstd[ch] * sdyx) / m) : dy[k] * k1;
      }
  }
  return { dx, gw, gb };
}

/** Max |a − b| / (atol + rtol·|b|) ≤ 1, with a message naming the worst element. */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what = ''): void {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} vs ${b.length}`);
  let worst = 0,
    at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  if (!(worst <= 1))
    throw new Error(`${what}: element ${at} is ${a[at]}, expected ${b[at]} (error ${worst.toFixed(2)}× the tolerance rtol ${rtol}, atol ${atol})`);
}

/** Max |a − b| / max |b|: a normwise relative error. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}

/** NC… → N…C: moves axis 1 last. */
export function toChannelsLast(data: ArrayLike<number>, shape: readonly number[], T: FloatArrayConstructor = Float32Array) {
  const [n, c] = shape,
    s = shape.slice(2).reduce((a, b) => a * b, 1);
  const out = new T(data.length);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let j = 0; j < s; j++) out[(i * s + j) * c + ch] = data[(i * c + ch) * s + j];
  return { data: out, shape: [n, ...shape.slice(2), c] };
}

/** N…C → NC…: the inverse of toChannelsLast (shape is the channels-first shape). */
export function fromChannelsLast(data: ArrayLike<number>, shape: readonly number[]): Float64Array {
  const [n, c] = shape,
    s = shape.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float64Array(data.length);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let j = 0; j < s; j++) out[(i * c + ch) * s + j] = data[(i * s + j) * c + ch];
  return out;
}

/**
 * A safetensors file made by hand (for headers and dtypes writeSafetensors
 * never writes): the 8-byte little-endian header length, the header text, then
 * the data bytes.
 */
export function safetensorsFile(header: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(header);
  const f = new Uint8Array(8 + json.length + data.length);
  new DataView(f.buffer).setBigUint64(0, BigInt(json.length), true);
  f.set(json, 8);
  f.set(data, 8 + json.length);
  return f;
}
