#!/usr/bin/env node
// Soak: 10^5 forward/backward calls of mixed shapes, layouts, dtypes, sync and
// async, modules and functional forms, with some calls that throw; prints the
// process's RSS (and V8's heap and external memory) every 10^4 calls. Memory
// must be flat after warm-up: the script fails (exit 1) if the peak RSS of the
// second half of the run (after warm-up, call 2·10^4) exceeds that of the first
// half by more than --max-growth MiB (default 16). Not part of `npm test`.
//
//   npm run build && node --expose-gc test/soak/soak.mjs [--calls 100000] [--every 10000] [--max-growth 16]
//
// Uses the compiled package (dist/); BATCHNORM_BACKEND / BATCHNORM_ADDON apply
// as usual. With --expose-gc a full GC runs before each report, so the figures
// are live memory rather than GC timing.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bn = await import(pathToFileURL(join(root, 'dist', 'index.js')).href);
const { values } = parseArgs({
  options: { calls: { type: 'string', default: '100000' }, every: { type: 'string', default: '10000' }, 'max-growth': { type: 'string', default: '16' } },
});
const CALLS = Number(values.calls),
  EVERY = Number(values.every),
  MAX_GROWTH = Number(values['max-growth']);

let seed = 12345;
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
/** @type {<T>(a: readonly T[]) => T} */
const pick = (a) => a[Math.floor(rand() * a.length)];

/** @typedef {{ cls: string, shape: number[], layout: string, big?: boolean }} Shape */

// Mixed shapes: tiny (call overhead), medium, and a few above 2^18 elements (the thread pool).
/** @type {Shape[]} */
const SHAPES = [
  { cls: 'BatchNorm1d', shape: [16, 8], layout: 'NC' },
  { cls: 'BatchNorm1d', shape: [7, 5, 13], layout: 'NCL' },
  { cls: 'BatchNorm1d', shape: [7, 13, 5], layout: 'NLC' },
  { cls: 'BatchNorm2d', shape: [4, 3, 9, 11], layout: 'NCHW' },
  { cls: 'BatchNorm2d', shape: [8, 14, 14, 32], layout: 'NHWC' },
  { cls: 'BatchNorm2d', shape: [2, 64, 16, 16], layout: 'NCHW' },
  { cls: 'BatchNorm3d', shape: [2, 4, 3, 5, 7], layout: 'NCDHW' },
  { cls: 'BatchNorm3d', shape: [2, 3, 5, 7, 4], layout: 'NDHWC' },
  { cls: 'BatchNorm2d', shape: [4, 16, 64, 64], layout: 'NCHW', big: true },
  { cls: 'BatchNorm2d', shape: [4, 64, 32, 32], layout: 'NHWC', big: true },
];
const channelsOf = (/** @type {Shape} */ s) => (/^N.*C$/.test(s.layout) && s.layout !== 'NC' ? s.shape[s.shape.length - 1] : s.shape[1]);
const numelOf = (/** @type {Shape} */ s) => s.shape.reduce((a, b) => a * b, 1);

// Long-lived modules (as in a training loop) and fresh arrays per call (as in a data pipeline).
const modules = SHAPES.map((s) => ({
  s,
  m: { float32: new bn[s.cls](channelsOf(s), { layout: s.layout }), float64: new bn[s.cls](channelsOf(s), { layout: s.layout, dtype: 'float64' }) },
}));

/**
 * @param {Shape} s
 * @param {Float32ArrayConstructor | Float64ArrayConstructor} T
 */
function tensor(s, T) {
  const data = new T(numelOf(s));
  for (let i = 0; i < data.length; i++) data[i] = rand() * 4 - 2;
  return { data, shape: s.shape };
}

const mib = (/** @type {number} */ b) => (b / 1048576).toFixed(1);
const gc = globalThis.gc;
/** @type {Array<{ calls: number, rss: number }>} */
const reports = [];
/**
 * @param {number} calls
 * @param {number} t0
 */
function report(calls, t0) {
  gc?.();
  const m = process.memoryUsage();
  reports.push({ calls, rss: m.rss });
  console.log(
    `${String(calls).padStart(7)} calls  rss ${mib(m.rss).padStart(7)} MiB  heapUsed ${mib(m.heapUsed).padStart(6)} MiB  external ${mib(m.external).padStart(6)} MiB  arrayBuffers ${mib(m.arrayBuffers).padStart(6)} MiB  ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

console.log(`soak: ${CALLS} calls, backend ${JSON.stringify(bn.backendInfo())}, gc ${gc ? 'forced before each report' : 'not exposed (run with --expose-gc)'}`);
const t0 = performance.now();
report(0, t0);
let threw = 0,
  done = 0;
while (done < CALLS) {
  let { s, m } = pick(modules);
  if (s.big && rand() < 0.8) ({ s, m } = pick(modules.filter((e) => !e.s.big)));
  const dtype = rand() < 0.25 ? 'float64' : 'float32',
    T = dtype === 'float64' ? Float64Array : Float32Array;
  const mod = m[dtype];
  const x = tensor(s, T);
  const kind = rand();
  try {
    if (kind < 0.45) {
      // Module: forward (train or eval) then backward, sync or async.
      mod.train(rand() < 0.8);
      const async = rand() < 0.3;
      if (async) await mod.forwardAsync(x);
      else mod.forward(x, rand() < 0.3 ? { out: new T(x.data.length) } : {});
      done++;
      const dy = tensor(s, T);
      if (async) await mod.backwardAsync(dy);
      else mod.backward(dy);
      done++;
      if (rand() < 0.05) mod.zeroGrad();
    } else if (kind < 0.9) {
      // Functional: forward then backward.
      const c = channelsOf(s),
        layout = /^N.*C$/.test(s.layout) && s.layout !== 'NC' ? 'channelsLast' : 'channelsFirst';
      const rm = new T(c),
        rv = new T(c).fill(1);
      const training = rand() < 0.7;
      const async = rand() < 0.3;
      const opts = { training, layout, weight: new T(c).fill(1.5), bias: new T(c) };
      const r = async ? await bn.batchNormAsync(x, rm, rv, opts) : bn.batchNorm(x, rm, rv, opts);
      done++;
      const g = { saveMean: r.saveMean, saveInvstd: r.saveInvstd, training, layout };
      if (async) await bn.batchNormBackwardAsync(tensor(s, T), x, g);
      else bn.batchNormBackward(tensor(s, T), x, g);
      done++;
    } else {
      // Calls that throw (or reject): wrong length out, bad momentum, a detached buffer.
      const bad = pick([
        () => mod.forward(x, { out: new T(3) }),
        () => bn.batchNorm(x, null, null, { training: true, momentum: 2 }),
        () => bn.batchNormAsync(x, new T(1), new T(1), { training: true }),
        () => {
          const d = new T(8);
          structuredClone(d.buffer, { transfer: [d.buffer] });
          return bn.batchNorm({ data: d, shape: [2, 4] }, null, null, { training: true });
        },
      ]);
      try {
        await bad();
      } catch {
        threw++;
      }
      done++;
    }
  } catch (e) {
    console.error(`unexpected error after ${done} calls:`, e);
    process.exit(2);
  }
  if (Math.floor(done / EVERY) > reports.length - 1) report(done, t0);
}
// Flat after warm-up: the highest RSS of the second half of the run (the RSS moves with what the modules
// hold and with the allocator's free lists) may not exceed that of the first half after warm-up by more than
// the limit. A leak of 100 bytes per call would add about 4 MiB per half; the default limit allows the noise.
const after = reports.filter((r) => r.calls >= 2 * EVERY);
const half = after.length >> 1;
const max = (/** @type {typeof reports} */ rs) => Math.max(...rs.map((r) => r.rss));
const first = max(after.slice(0, Math.max(1, half))),
  second = max(after.slice(half));
const growth = (second - first) / 1048576;
console.log(
  `${done} calls (${threw} threw as they should) in ${((performance.now() - t0) / 1000).toFixed(1)} s; peak RSS after warm-up: ${mib(first)} MiB in the first half, ${mib(second)} MiB in the second: ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MiB (limit ${MAX_GROWTH})`,
);
if (growth > MAX_GROWTH) {
  console.error('RSS grew after warm-up: a leak?');
  process.exit(1);
}
