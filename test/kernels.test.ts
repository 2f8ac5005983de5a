/**
 * The three kernel implementations (native addon, WebAssembly, pure JS) against a float64
 * reference, over random shapes including odd ones, both memory orders, both
 * element types and subarray views.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { jsKernels } from '../lib/backend/js.js';
import type { FloatArray, Kernels } from '../lib/backend/kernels.js';
import { backendInfo, kernels as nativeKernels } from '../lib/backend/loader.js';
import { loadWasm } from '../lib/backend/wasm.js';
import { expectClose, randn, type FloatArrayConstructor, refBackward, refMoments, refNormalize, relError, rng, type Dims } from './helpers.js';

// The tests over many shapes, of 2^22 values or of a large tensor check
// millions of values against a float64 reference in JS: a second or so each
// on a quiet machine. They state a limit generous enough for every core being
// busy with other work.
const HEAVY_MS = 120_000;

// The WebAssembly kernels loaded directly (this project forces the native path).
const wasm = loadWasm(process.env.BATCHNORM_WASM || fileURLToPath(new URL('../wasm/batchnorm.wasm', import.meta.url)));
const paths: Array<[string, Kernels]> = [
  ['native', nativeKernels],
  ['wasm', wasm.kernels!],
  ['js', jsKernels],
];

it('runs the native path in this project, and has the WebAssembly kernels (scripts/build-wasm.sh)', () => {
  expect(backendInfo().backend).toBe('native');
  expect(wasm.why).toBe('');
});

/** Shapes (n, c, s): odd sizes, C = 1, N = 1 with s > 1, s = 1 ((N, C) input), and sizes above the parallel threshold. */
function shapes(): Array<[number, number, number]> {
  const fixed: Array<[number, number, number]> = [
    [1, 1, 2],
    [2, 1, 1],
    [1, 3, 35],
    [3, 1, 17],
    [5, 7, 1],
    [4, 3, 15],
    [2, 5, 33],
    [7, 16, 9],
    [1, 17, 513],
    [16, 32, 64],
    [8, 3, 1025],
    [64, 33, 1],
    [1, 2, 40_000],
    [3, 1, 20_000],
    [2, 100, 300],
  ];
  const r = rng(7);
  for (let k = 0; k < 12; k++) fixed.push([1 + Math.floor(r() * 9), 1 + Math.floor(r() * 40), 1 + Math.floor(r() * 300)]);
  return fixed;
}

/** A view into a larger buffer at an odd offset, so the kernels see byteOffset ≠ 0 and unaligned data. */
function view(T: FloatArrayConstructor, src: ArrayLike<number>, offset: number): FloatArray {
  const big = new T(src.length + offset + 3);
  const v = big.subarray(offset, offset + src.length);
  v.set(src);
  return v;
}

describe.each(paths)('%s kernels', (_name, k) => {
  for (const T of [Float32Array, Float64Array] as FloatArrayConstructor[]) {
    const f32 = T === Float32Array;
    const rtol = f32 ? 2e-5 : 1e-11,
      atol = f32 ? 2e-5 : 1e-11;
    for (const channelsLast of [false, true]) {
      it(
        `forward-training, forward-eval and backward match float64 (${T.name}, ${channelsLast ? 'channels-last' : 'NCHW'})`,
        () => {
          let seed = 1;
          for (const [n, c, s] of shapes()) {
            const d: Dims = { n, c, s, channelsLast };
            const tag = `${T.name} n=${n} c=${c} s=${s} ${channelsLast ? 'NHWC' : 'NCHW'}`;
            const numel = n * c * s;
            const x = view(T, randn(numel, seed++, 3, 2, T), 3);
            const w = randn(c, seed++, 1, 0.5, T),
              b = randn(c, seed++, 0, 1, T);
            const rm0 = randn(c, seed++, 0, 1, T),
              rv0 = T.from(randn(c, seed++, 0, 1, T), (v) => 0.5 + Math.abs(v));
            const y = view(T, new T(numel), 1),
              rm = rm0.slice(),
              rv = rv0.slice(),
              sm = new T(c),
              si = new T(c);
            k.forwardTraining(x, y, w, b, rm, rv, sm, si, n, c, s, channelsLast, 1e-5, 0.1);
            const { mean, variance } = refMoments(x, d);
            const m = n * s;
            expectClose(sm, mean, rtol, atol, `${tag} saveMean`);
            expectClose(
              si,
              Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5)),
              rtol,
              atol,
              `${tag} saveInvstd`,
            );
            expectClose(y, refNormalize(x, d, mean, variance, 1e-5, w, b), rtol, atol, `${tag} y`);
            expectClose(
              rm,
              Array.from(rm0, (v, i) => 0.9 * v + 0.1 * mean[i]),
              rtol,
              atol,
              `${tag} running_mean`,
            );
            expectClose(
              rv,
              Array.from(rv0, (v, i) => 0.9 * v + 0.1 * variance[i] * (m > 1 ? m / (m - 1) : 1)),
              rtol,
              atol,
              `${tag} running_var`,
            );

            const ye = new T(numel);
            k.forwardEval(x, ye, w, b, rm0, rv0, n, c, s, channelsLast, 1e-3);
            expectClose(ye, refNormalize(x, d, rm0, rv0, 1e-3, w, b), rtol, atol, `${tag} eval y`);

            const dy = view(T, randn(numel, seed++, 0, 1, T), 2);
            for (const batchStats of [true, false]) {
              const dx = new T(numel),
                gw = new T(c),
                gb = new T(c);
              k.backward(x, dy, dx, w, sm, si, gw, gb, n, c, s, channelsLast, batchStats);
              const ref = refBackward(x, dy, d, sm, si, w, batchStats);
              // dx of batch statistics subtracts nearly equal terms (all of them
              // cancel when m = 2): the error is measured against the terms' scale.
              let scale = 0;
              for (let i = 0; i < numel; i++) scale = Math.max(scale, Math.abs(dy[i]));
              scale *= Math.max(...Array.from(w, (v, i) => Math.abs(v * si[i])));
              let err = 0;
              for (let i = 0; i < numel; i++) err = Math.max(err, Math.abs(dx[i] - ref.dx[i]));
              expect(err / scale, `${tag} dx (batchStats ${batchStats})`).toBeLessThan(f32 ? 2e-5 : 1e-10);
              expect(relError(gw, ref.gw), `${tag} gradWeight`).toBeLessThan(f32 ? 2e-5 : 1e-10);
              expect(relError(gb, ref.gb), `${tag} gradBias`).toBeLessThan(f32 ? 2e-5 : 1e-10);
            }
          }
        },
        HEAVY_MS,
      );
    }
  }

  it('treats no affine, no running statistics and no dx as options of the same kernels', () => {
    const n = 4,
      c = 3,
      s = 10,
      x = randn(n * c * s, 11),
      y = new Float32Array(n * c * s),
      sm = new Float32Array(c),
      si = new Float32Array(c);
    k.forwardTraining(x, y, null, null, null, null, sm, si, n, c, s, false, 1e-5, 0.1);
    const d = { n, c, s, channelsLast: false };
    const { mean, variance } = refMoments(x, d);
    expectClose(y, refNormalize(x, d, mean, variance, 1e-5, null, null), 2e-5, 2e-5, 'y without affine');
    // Outputs start as a value no kernel computes here, so one left unwritten shows.
    const dy = randn(n * c * s, 12),
      sentinel = -1234.5;
    for (const batchStats of [true, false]) {
      const ref = refBackward(x, dy, d, sm, si, null, batchStats);
      // Gradients without dx.
      const gw = new Float32Array(c).fill(sentinel),
        gb = new Float32Array(c).fill(sentinel);
      k.backward(x, dy, null, null, sm, si, gw, gb, n, c, s, false, batchStats);
      expectClose(gw, ref.gw, 2e-5, 2e-5, `gradWeight without dx (batchStats ${batchStats})`);
      expectClose(gb, ref.gb, 2e-5, 2e-5, `gradBias without dx (batchStats ${batchStats})`);
      // dx without gradients (it still needs Σdy and Σdy·x̂ with batch statistics).
      const dx = new Float32Array(n * c * s).fill(sentinel);
      k.backward(x, dy, dx, null, sm, si, null, null, n, c, s, false, batchStats);
      expectClose(dx, ref.dx, 2e-5, 2e-5, `dx without gradients (batchStats ${batchStats})`);
    }
  });

  it('runs in place (y === x, dx === dy)', () => {
    const n = 3,
      c = 4,
      s = 50,
      x = randn(n * c * s, 13) as Float32Array,
      copy = x.slice();
    const sm = new Float32Array(c),
      si = new Float32Array(c),
      y = new Float32Array(n * c * s);
    k.forwardTraining(copy, y, null, null, null, null, sm, si, n, c, s, false, 1e-5, 0.1);
    k.forwardTraining(x, x, null, null, null, null, sm, si, n, c, s, false, 1e-5, 0.1);
    expect(x).toEqual(y);
    const dy = randn(n * c * s, 14) as Float32Array,
      dx = new Float32Array(n * c * s);
    k.backward(copy, dy, dx, null, sm, si, null, null, n, c, s, false, true);
    k.backward(copy, dy, dy, null, sm, si, null, null, n, c, s, false, true);
    expect(dy).toEqual(dx);
  });

  it('takes the mean off x before scaling: a large mean beside a small spread keeps the bias (forward) and dx (backward)', () => {
    for (const [v, layout] of [
      [1e8, false],
      [1e15, true],
    ] as const) {
      const n = 4,
        c = 2,
        s = 3,
        x = new Float32Array(n * c * s).fill(v),
        y = new Float32Array(n * c * s);
      const sm = new Float32Array(c),
        si = new Float32Array(c),
        bias = Float32Array.from([0.3, -2]);
      k.forwardTraining(x, y, null, bias, null, null, sm, si, n, c, s, layout, 1e-5, 0.1);
      expect(Array.from(new Set(Array.from(y, (e, i) => `${e}@${layout ? i % c : Math.floor(i / s) % c}`))).sort()).toEqual([
        `${Math.fround(-2)}@1`,
        `${Math.fround(0.3)}@0`,
      ]);
      k.forwardEval(x, y, null, bias, Float32Array.from([v, v]), Float32Array.from([1, 1]), n, c, s, layout, 1e-5);
      expect(new Set(y)).toEqual(new Set([Math.fround(0.3), Math.fround(-2)]));
    }
    // float64, mean 1e6, spread 1e-2: dx as accurate as the float64 reference, not 1e-10 off.
    const n = 8,
      c = 1,
      s = 64,
      x = randn(n * s, 31, 1e6, 1e-2, Float64Array) as Float64Array,
      dy = randn(n * s, 32, 0, 1, Float64Array) as Float64Array;
    const { mean, variance } = refMoments(x, { n, c, s, channelsLast: false });
    const invstd = Float64Array.from(variance, (q) => 1 / Math.sqrt(q + 1e-5));
    const dx = new Float64Array(n * s);
    k.backward(x, dy, dx, null, Float64Array.from(mean), invstd, null, null, n, c, s, false, true);
    const ref = refBackward(x, dy, { n, c, s, channelsLast: false }, mean, invstd, null, true);
    expect(relError(dx, ref.dx)).toBeLessThan(1e-13);
  });

  it('finite values whose float32 sums or squares overflow get exact statistics (the plain double passes)', () => {
    for (const layout of [false, true]) {
      // ±2e19: each squared deviation overflows float32; a constant 1e36: a block's rough sum does.
      const n = 4,
        c = 2,
        s = 16,
        x = new Float32Array(n * c * s),
        y = new Float32Array(n * c * s);
      for (let i = 0; i < x.length; i++) {
        const ch = layout ? i % c : Math.floor(i / s) % c,
          at = layout ? Math.floor(i / c) : i % s; // at: a position within the channel
        x[i] = ch === 0 ? (at % 2 ? 2e19 : -2e19) : 1e36;
      }
      const sm = new Float32Array(c),
        si = new Float32Array(c),
        bias = Float32Array.from([0, 0.3]);
      k.forwardTraining(x, y, null, bias, null, null, sm, si, n, c, s, layout, 1e-5, 0.1);
      expect(si[0]).toBe(Math.fround(1 / Math.sqrt(Math.fround(2e19) ** 2 + 1e-5)));
      expect(si[1]).toBe(Math.fround(1 / Math.sqrt(1e-5)));
      expect(new Set(y)).toEqual(new Set([-1, 1, Math.fround(0.3)]));
    }
  });

  it('channels-last sums stay within a few ulps where every float32 addition rounds (rows of ±d, dy = d)', () => {
    const d = Math.fround(1.43132483959198),
      n = 65536,
      c = 3;
    const x = new Float32Array(n * c).map((_, i) => (Math.floor(i / c) & 1 ? d : -d));
    const y = new Float32Array(n * c),
      sm = new Float32Array(c),
      si = new Float32Array(c);
    k.forwardTraining(x, y, null, null, null, null, sm, si, n, c, 1, true, 1e-5, 0.1);
    const invstd = 1 / Math.sqrt(d * d + 1e-5);
    expect(Math.abs(si[0] - invstd) / invstd).toBeLessThan(1e-7);
    const dy = new Float32Array(n * c).fill(d),
      gw = new Float32Array(c),
      gb = new Float32Array(c);
    k.backward(x, dy, new Float32Array(n * c), null, sm, si, gw, gb, n, c, 1, true, true);
    expect(Math.abs(gb[0] - n * d) / (n * d)).toBeLessThan(5e-7);
  });

  it('keeps the unbiased running variance optional (Keras keeps the biased one)', () => {
    const n = 2,
      c = 2,
      s = 3,
      x = randn(n * c * s, 15),
      y = new Float32Array(n * c * s),
      sm = new Float32Array(c),
      si = new Float32Array(c);
    const rm = new Float32Array(c),
      rv = new Float32Array(c);
    k.forwardTraining(x, y, null, null, rm, rv, sm, si, n, c, s, false, 1e-5, 1, false);
    const { variance } = refMoments(x, { n, c, s, channelsLast: false });
    expectClose(rv, variance, 1e-5, 1e-6, 'biased running_var');
  });

  describe('float64-quality statistics: 2^22 values, mean 100, std 0.01', () => {
    const m = 1 << 22;
    const x = randn(m, 99, 100, 0.01) as Float32Array;
    for (const [label, n, s, channelsLast] of [
      ['one NCHW channel', 1, m, false],
      ['(N, C) input', m, 1, false],
      ['channels-last', m, 1, true],
    ] as const) {
      it(
        label,
        () => {
          const d = { n, c: 1, s, channelsLast };
          const y = new Float32Array(m),
            sm = new Float32Array(1),
            si = new Float32Array(1);
          k.forwardTraining(x, y, null, null, null, null, sm, si, n, 1, s, channelsLast, 1e-8, 0.1);
          const { mean, variance } = refMoments(x, d);
          expect(Math.abs(sm[0] - mean[0]) / mean[0]).toBeLessThan(1e-6);
          const v = 1 / si[0] ** 2 - 1e-8;
          expect(Math.abs(v - variance[0]) / variance[0]).toBeLessThan(1e-6);
          // y is O(1): compare normwise against the float64 result.
          expect(relError(y, refNormalize(x, d, mean, variance, 1e-8, null, null))).toBeLessThan(1e-6);
        },
        HEAVY_MS,
      );
    }
  });
});

it(
  'native, WebAssembly and JS paths agree with each other on a large NCHW tensor',
  () => {
    const n = 8,
      c = 16,
      s = 4096,
      x = randn(n * c * s, 21, -2, 3);
    const out = paths.map(([, k]) => {
      const y = new Float32Array(n * c * s),
        sm = new Float32Array(c),
        si = new Float32Array(c);
      k.forwardTraining(x, y, null, null, null, null, sm, si, n, c, s, false, 1e-5, 0.1);
      return y;
    });
    expect(relError(out[0], out[2])).toBeLessThan(1e-6);
    expect(relError(out[1], out[2])).toBeLessThan(1e-6);
  },
  HEAVY_MS,
);

describe('the WebAssembly path copies large NCHW tensors a channel (eval: a group of samples) at a time', () => {
  // From 4 MiB, with planes of at least 2 KB (lib/backend/wasm.ts): the chunks must give what the whole tensor gives.
  const k = wasm.kernels!;
  // Bitwise equality of two large arrays (toEqual walks 2M elements slowly).
  const same = (a: FloatArray, b: FloatArray, what: string) =>
    expect(Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)), what).toBe(0);
  for (const T of [Float32Array, Float64Array] as FloatArrayConstructor[]) {
    it(
      `forward-training, eval and backward match float64, in place too (${T.name})`,
      () => {
        const f32 = T === Float32Array,
          tol = f32 ? 2e-5 : 1e-11;
        const n = 5,
          c = 3,
          s = (f32 ? 1 : 0.5) * 80_000,
          numel = n * c * s,
          d = { n, c, s, channelsLast: false };
        const x = view(T, randn(numel, 41, 3, 2, T), 1),
          w = randn(c, 42, 1, 0.5, T),
          b = randn(c, 43, 0, 1, T);
        const rm = randn(c, 44, 0, 1, T),
          rv = T.from(randn(c, 45, 0, 1, T), (v) => 0.5 + Math.abs(v)),
          rm0 = rm.slice(),
          rv0 = rv.slice();
        const y = new T(numel),
          sm = new T(c),
          si = new T(c);
        k.forwardTraining(x, y, w, b, rm, rv, sm, si, n, c, s, false, 1e-5, 0.1);
        const { mean, variance } = refMoments(x, d);
        expectClose(sm, mean, tol, tol, 'saveMean');
        expectClose(
          si,
          Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5)),
          tol,
          tol,
          'saveInvstd',
        );
        expectClose(y, refNormalize(x, d, mean, variance, 1e-5, w, b), tol, tol, 'y');
        expectClose(
          rm,
          Array.from(rm0, (v, i) => 0.9 * v + 0.1 * mean[i]),
          tol,
          tol,
          'running_mean',
        );
        expectClose(
          rv,
          Array.from(rv0, (v, i) => 0.9 * v + (0.1 * variance[i] * (n * s)) / (n * s - 1)),
          tol,
          tol,
          'running_var',
        );
        const inPlace = x.slice();
        k.forwardTraining(inPlace, inPlace, w, b, null, null, new T(c), new T(c), n, c, s, false, 1e-5, 0.1);
        same(inPlace, y, 'y in place');

        const ye = new T(numel);
        k.forwardEval(x, ye, w, b, rm0, rv0, n, c, s, false, 1e-3);
        expectClose(ye, refNormalize(x, d, rm0, rv0, 1e-3, w, b), tol, tol, 'eval y');
        const xe = x.slice();
        k.forwardEval(xe, xe, w, b, rm0, rv0, n, c, s, false, 1e-3);
        same(xe, ye, 'eval y in place');

        const dy = randn(numel, 46, 0, 1, T);
        for (const batchStats of [true, false]) {
          const dx = new T(numel),
            gw = new T(c),
            gb = new T(c);
          k.backward(x, dy, dx, w, sm, si, gw, gb, n, c, s, false, batchStats);
          const ref = refBackward(x, dy, d, sm, si, w, batchStats);
          expect(relError(dx, ref.dx), `dx (batchStats ${batchStats})`).toBeLessThan(f32 ? 2e-5 : 1e-10);
          expect(relError(gw, ref.gw), 'gradWeight').toBeLessThan(f32 ? 2e-5 : 1e-10);
          expect(relError(gb, ref.gb), 'gradBias').toBeLessThan(f32 ? 2e-5 : 1e-10);
          // dx over dy and over x give the same.
          const overDy = dy.slice(),
            overX = x.slice();
          k.backward(x, overDy, overDy, w, sm, si, null, null, n, c, s, false, batchStats);
          k.backward(overX, dy, overX, w, sm, si, null, null, n, c, s, false, batchStats);
          same(overDy, dx, 'dx over dy');
          same(overX, dx, 'dx over x');
        }
      },
      HEAVY_MS,
    );
  }
});
