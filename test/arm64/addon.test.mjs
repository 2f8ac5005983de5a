// End-to-end test of the compiled addon, in plain node:test (vitest's native
// binaries are x64-only), so that .ci/arm64.sh can run it in the official
// arm64 node under qemu: `qemu-aarch64 node test/arm64/addon.test.mjs` (in
// process; `node --test` would spawn children, which qemu-user cannot start
// without binfmt_misc). Also runs natively: `node test/arm64/addon.test.mjs`.
// Needs dist/ (tsc) and build/Release/batchnorm.node. Inputs are tiny:
// emulated floating point is ~40x slower than native.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

process.env.BATCHNORM_BACKEND ??= 'native'; // a missing addon fails loudly instead of testing the JS path
const api = await import('../../dist/index.js');
const { jsKernels } = await import('../../dist/backend/js.js');
const addon = createRequire(import.meta.url)('../../build/Release/batchnorm.node');

// ------------------------------------------------------------------ helpers

/** Deterministic uniform [0, 1) (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function randn(T, len, seed, mean = 0, std = 1) {
  const r = rng(seed),
    out = new T(len);
  for (let i = 0; i < len; i++) out[i] = mean + std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}
const at = (d, i, ch, j) => (d.cl ? (i * d.s + j) * d.c + ch : (i * d.c + ch) * d.s + j);

/** max |got − want| ≤ rtol · max(max |want|, floor). */
function close(got, want, rtol, what, floor = 0) {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = floor,
    err = 0,
    where = -1;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  if (scale === 0) scale = 1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= err)) {
      err = e;
      where = i;
    }
  }
  assert.ok(err <= rtol * scale, `${what}: |err| ${err} at [${where}] (got ${got[where]}, want ${want[where]}) > ${rtol * scale}`);
}
const bits = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBits = (a, b, what) => assert.ok(bits(a).equals(bits(b)), `${what}: not bitwise equal`);

// -------------------------------------------------------- float64 reference

function refMoments(x, d) {
  const mean = new Float64Array(d.c),
    variance = new Float64Array(d.c),
    m = d.n * d.s;
  for (let ch = 0; ch < d.c; ch++) {
    let s = 0,
      q = 0;
    for (let i = 0; i < d.n; i++) for (let j = 0; j < d.s; j++) s += x[at(d, i, ch, j)];
    const mu = s / m;
    for (let i = 0; i < d.n; i++) for (let j = 0; j < d.s; j++) q += (x[at(d, i, ch, j)] - mu) ** 2;
    mean[ch] = mu;
    variance[ch] = q / m;
  }
  return { mean, variance };
}
function refAffine(x, d, mean, scale, shift) {
  const y = new Float64Array(x.length);
  for (let i = 0; i < d.n; i++)
    for (let ch = 0; ch < d.c; ch++)
      for (let j = 0; j < d.s; j++) {
        const k = at(d, i, ch, j);
        y[k] = (x[k] - mean[ch]) * scale[ch] + shift[ch];
      }
  return y;
}
function refBackward(x, dy, d, w, mean, invstd, batch) {
  const m = d.n * d.s,
    gw = new Float64Array(d.c),
    gb = new Float64Array(d.c),
    dx = new Float64Array(x.length);
  let dxScale = 0;
  for (let ch = 0; ch < d.c; ch++) {
    const wc = w ? w[ch] : 1,
      is = invstd[ch];
    for (let i = 0; i < d.n; i++)
      for (let j = 0; j < d.s; j++) {
        const k = at(d, i, ch, j);
        gb[ch] += dy[k];
        gw[ch] += dy[k] * (x[k] - mean[ch]) * is;
      }
    for (let i = 0; i < d.n; i++)
      for (let j = 0; j < d.s; j++) {
        const k = at(d, i, ch, j),
          xhat = (x[k] - mean[ch]) * is;
        dxScale = Math.max(dxScale, Math.abs(wc * is * dy[k]));
        dx[k] = batch ? wc * is * (dy[k] - gb[ch] / m - (xhat * gw[ch]) / m) : dy[k] * wc * is;
      }
  }
  return { dx, gw, gb, dxScale };
}

// ------------------------------------------------------------------- tests

const onArm = process.arch === 'arm64';
const forcedIsa = process.env.BATCHNORM_ISA || '';

test('the native backend loads, with the NEON kernels on arm64', () => {
  const info = api.backendInfo();
  assert.equal(info.backend, 'native');
  const caps = api.capabilities();
  assert.equal(caps[0], 'scalar');
  assert.deepEqual(addon.info().capabilities, caps);
  assert.equal(info.isa, forcedIsa || caps.at(-1));
  if (onArm) {
    assert.ok(caps.includes('neon'), `capabilities ${caps}`);
    assert.ok(!caps.some((c) => c.startsWith('avx')), `capabilities ${caps}`);
    if (!forcedIsa) assert.equal(info.isa, 'neon');
  }
  assert.ok(info.threads >= 1);
});

// (n, c, s, channelsLast): C = 1, N = 1, S = 1 ((N, C) input), C below, at
// and above the NEON lane counts (4 floats, 2 doubles), both memory orders.
const shapes = [
  [2, 3, 5, false],
  [2, 3, 5, true],
  [4, 5, 1, false],
  [4, 5, 1, true],
  [1, 1, 7, false],
  [3, 1, 9, true],
  [1, 6, 4, false],
  [3, 17, 9, false],
  [3, 17, 9, true],
  [2, 8, 33, true],
];

for (const T of [Float32Array, Float64Array]) {
  const rtol = T === Float32Array ? 1e-5 : 1e-12;
  const jsRtol = T === Float32Array ? 2e-6 : 1e-12;

  test(`forwardTraining, forwardEval, backward match float64 and the JS kernels (${T.name})`, () => {
    let seed = 1;
    for (const [n, c, s, cl] of shapes) {
      const d = { n, c, s, cl },
        tag = `${T.name} (${n},${c},${s}) ${cl ? 'NHWC' : 'NCHW'}`,
        len = n * c * s,
        m = n * s;
      const x = randn(T, len, seed++, 3, 2),
        dy = randn(T, len, seed++, 0.2, 1);
      const w = randn(T, c, seed++, 1, 0.5),
        b = randn(T, c, seed++);
      const rm0 = randn(T, c, seed++),
        rv0 = T.from(randn(T, c, seed++), (v) => 0.5 + Math.abs(v));
      const { mean, variance } = refMoments(x, d);
      const invstd = Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5));

      // training forward, native and JS
      const out = {};
      for (const [name, k] of [
        ['native', addon],
        ['js', jsKernels],
      ]) {
        const y = new T(len),
          rm = rm0.slice(),
          rv = rv0.slice(),
          sm = new T(c),
          si = new T(c);
        k.forwardTraining(x, y, w, b, rm, rv, sm, si, n, c, s, cl, 1e-5, 0.1);
        out[name] = { y, rm, rv, sm, si };
      }
      const o = out.native;
      close(o.sm, mean, rtol, `${tag} saveMean`);
      close(o.si, invstd, rtol, `${tag} saveInvstd`);
      close(
        o.y,
        refAffine(
          x,
          d,
          mean,
          invstd.map((v, ch) => v * w[ch]),
          b,
        ),
        rtol,
        `${tag} y`,
      );
      close(
        o.rm,
        Array.from(rm0, (v, ch) => 0.9 * v + 0.1 * mean[ch]),
        rtol,
        `${tag} runningMean`,
      );
      close(
        o.rv,
        Array.from(rv0, (v, ch) => 0.9 * v + 0.1 * variance[ch] * (m > 1 ? m / (m - 1) : 1)),
        rtol,
        `${tag} runningVar`,
      );
      for (const key of ['y', 'rm', 'rv', 'sm', 'si']) close(o[key], out.js[key], jsRtol * 10, `${tag} native vs js ${key}`);

      // training forward without weight, bias and running statistics; in place
      const y2 = x.slice(),
        sm2 = new T(c),
        si2 = new T(c);
      addon.forwardTraining(y2, y2, null, null, null, null, sm2, si2, n, c, s, cl, 1e-5, 0.1);
      close(y2, refAffine(x, d, mean, invstd, new Float64Array(c)), rtol, `${tag} y (no affine, in place)`);

      // eval forward
      const em = randn(T, c, seed++, 3, 0.1),
        ev = T.from(randn(T, c, seed++), (v) => 2 + v * v);
      const ye = new T(len),
        yj = new T(len);
      addon.forwardEval(x, ye, w, b, em, ev, n, c, s, cl, 1e-5);
      jsKernels.forwardEval(x, yj, w, b, em, ev, n, c, s, cl, 1e-5);
      close(
        ye,
        refAffine(
          x,
          d,
          em,
          Array.from(ev, (v, ch) => w[ch] / Math.sqrt(v + 1e-5)),
          b,
        ),
        rtol,
        `${tag} eval y`,
      );
      close(ye, yj, jsRtol * 10, `${tag} eval native vs js`);

      // backward, from the forward's statistics: batch and frozen, weight or null, dx or null
      for (const [batch, useW, useDx] of [
        [true, true, true],
        [false, true, true],
        [true, false, false],
        [false, false, true],
      ]) {
        const what = `${tag} backward batch=${batch} weight=${useW} dx=${useDx}`;
        const ww = useW ? w : null;
        const r = refBackward(x, dy, d, ww, o.sm, o.si, batch);
        const res = {};
        for (const [name, k] of [
          ['native', addon],
          ['js', jsKernels],
        ]) {
          const dx = useDx ? new T(len) : null,
            gw = new T(c),
            gb = new T(c);
          k.backward(x, dy, dx, ww, o.sm, o.si, gw, gb, n, c, s, cl, batch);
          res[name] = { dx, gw, gb };
        }
        const g = res.native;
        if (useDx) close(g.dx, r.dx, rtol, `${what} dx`, r.dxScale);
        close(g.gw, r.gw, rtol, `${what} gradWeight`);
        close(g.gb, r.gb, rtol, `${what} gradBias`);
        if (useDx) close(g.dx, res.js.dx, jsRtol * 10, `${what} native vs js dx`, r.dxScale);
        close(g.gw, res.js.gw, jsRtol * 10, `${what} native vs js gradWeight`);
        close(g.gb, res.js.gb, jsRtol * 10, `${what} native vs js gradBias`);
      }
    }
  });

  test(`the parallel paths: bitwise the same for 1 and 4 threads, sync and async (${T.name})`, async () => {
    // 72000 values: at or above the kernels' serial threshold (kSerialBelow, 2^16), so that the
    // work is split among the threads; below it every thread count runs the same serial code.
    const [n, c, s] = [2, 3, 12_000];
    const len = n * c * s,
      x = randn(T, len, 99, -1, 3),
      dy = randn(T, len, 98);
    const serialBelow = readFileSync(new URL('../../native/kernels/tuning.h', import.meta.url), 'utf8').match(/kSerialBelow = 1 << (\d+);/);
    assert.ok(serialBelow, 'kSerialBelow not found in native/kernels/tuning.h');
    assert.ok(len >= 2 ** Number(serialBelow[1]), `${len} values: below kSerialBelow (2^${serialBelow[1]}), the threads would not be used`);
    const before = api.getNumThreads();
    try {
      const runs = [];
      for (const [threads, async] of [
        [1, false],
        [4, false],
        [4, true],
      ]) {
        api.setNumThreads(threads);
        assert.equal(api.getNumThreads(), threads);
        const r = {};
        for (const cl of [false, true]) {
          const y = new T(len),
            sm = new T(c),
            si = new T(c),
            dx = new T(len),
            gw = new T(c),
            gb = new T(c);
          if (async) await addon.forwardTrainingAsync(x, y, null, null, null, null, sm, si, n, c, s, cl, 1e-5, 0.1);
          else addon.forwardTraining(x, y, null, null, null, null, sm, si, n, c, s, cl, 1e-5, 0.1);
          addon.backward(x, dy, dx, null, sm, si, gw, gb, n, c, s, cl, true);
          r[cl] = [y, sm, si, dx, gw, gb];
        }
        runs.push(r);
      }
      for (const cl of [false, true]) {
        const { mean } = refMoments(x, { n, c, s, cl });
        close(runs[0][cl][1], mean, T === Float32Array ? 1e-5 : 1e-12, `saveMean ${cl ? 'NHWC' : 'NCHW'}`);
        for (let k = 1; k < runs.length; k++) runs[0][cl].forEach((a, i) => sameBits(runs[k][cl][i], a, `run ${k} output ${i} ${cl ? 'NHWC' : 'NCHW'}`));
      }
    } finally {
      api.setNumThreads(before);
    }
  });
}

test('the public API runs on the addon', () => {
  const x = randn(Float32Array, 2 * 3 * 4, 5, 1, 2);
  const rm = new Float32Array(3),
    rv = new Float32Array(3).fill(1);
  const r = api.batchNorm({ data: x, shape: [2, 3, 2, 2] }, rm, rv, { training: true });
  const { mean, variance } = refMoments(x, { n: 2, c: 3, s: 4, cl: false });
  close(r.saveMean, mean, 1e-5, 'batchNorm saveMean');
  close(
    r.data,
    refAffine(
      x,
      { n: 2, c: 3, s: 4, cl: false },
      mean,
      Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5)),
      [0, 0, 0],
    ),
    1e-5,
    'batchNorm y',
  );
  assert.deepEqual(r.shape, [2, 3, 2, 2]);
});

test('bad arguments throw and write nothing', async () => {
  const x = new Float32Array(12),
    y = new Float32Array(12).fill(7),
    sm = new Float32Array(3),
    si = new Float32Array(3);
  // wrong length: RangeError
  assert.throws(() => addon.forwardTraining(x, new Float32Array(11), null, null, null, null, sm, si, 2, 3, 2, false, 1e-5, 0.1), RangeError);
  assert.throws(() => addon.forwardTraining(x, y, new Float32Array(2), null, null, null, sm, si, 2, 3, 2, false, 1e-5, 0.1), RangeError);
  assert.throws(() => addon.backward(x, new Float32Array(13), null, null, sm, si, null, null, 2, 3, 2, false, true), RangeError);
  await assert.rejects(addon.forwardEvalAsync(x, y, null, null, sm, new Float32Array(4), 2, 3, 2, false, 1e-5), RangeError);
  // mixed element types: TypeError
  assert.throws(() => addon.forwardTraining(x, new Float64Array(12), null, null, null, null, sm, si, 2, 3, 2, false, 1e-5, 0.1), TypeError);
  assert.ok(
    y.every((v) => v === 7),
    'y written by a call that threw',
  );
  assert.ok(sm.every((v) => v === 0) && si.every((v) => v === 0), 'statistics written by a call that threw');
});
