/**
 * Async safety, in child processes (node --expose-gc) so that a crash is an
 * exit status here, not a dead test runner:
 * - an in-flight async call keeps its buffers alive: inputs the caller
 *   dropped survive forced full GCs (with freed memory reused for NaN-filled
 *   garbage) until the call settles, the results are bitwise the sync ones
 *   (arrays of 12.6 and 25 MB, whose outputs take the streaming stores),
 *   and afterwards the addon lets them go (no leaked references);
 * - async calls with bad input reject (never throw), in the middle of it all;
 * - terminating a worker with calls in flight, a worker exiting itself, and
 *   the process exiting with calls in flight do not crash the process.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// Tests here run Node child processes: seconds each on a quiet machine. Each
// test states its limit, generous enough for every core being busy with other
// work; a child is killed a little before, so that a hang fails with its output.
const TEST_MS = 180_000,
  CHILD_MS = 150_000;

const root = fileURLToPath(new URL('..', import.meta.url));

function node(script: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: CHILD_MS,
  });
  return r;
}

const PRELUDE = `
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
const addon = createRequire(resolve('package.json'))(resolve(process.env.BATCHNORM_ADDON || 'build/Release/batchnorm.node'));
const bn = await import(resolve('dist/index.js').replace(/^/, 'file://'));
if (bn.backendInfo().backend !== 'native') throw new Error('expected the native path, got ' + bn.backendInfo().backend);
const tick = () => new Promise((r) => setImmediate(r));
function fill(a, seed) { let s = seed >>> 0; for (let i = 0; i < a.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; a[i] = (s / 4294967296) * 4 - 2 + (i % 9); } return a; }
function same(a, b) { return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)); }
`;

it(
  'in-flight async calls keep dropped buffers alive under GC pressure, give the sync results, then release them',
  () => {
    const script = `${PRELUDE}
const n = 4, c = 8, s = 3 << 15, numel = n * c * s;            // 3M values per array: x and y reach kStreamBytes (24 MB) in float32 too
const CALLS = 12;
const calls = [];
let rejected = 0;
for (let i = 0; i < CALLS; i++) {
  const T = i % 3 === 2 ? Float64Array : Float32Array;
  // Inputs: referenced here only for the expected result; dropped before the async call runs.
  const x = fill(new T(numel), i + 1), dy = fill(new T(numel), 100 + i), w = fill(new T(c), 7), b = fill(new T(c), 8);
  const mean = fill(new T(c), 9), v = new T(c).fill(2), invstd = new T(c).fill(0.5);
  const op = ['forwardTraining', 'forwardEval', 'backward'][i % 3];
  const out = () => ({ y: new T(numel), sm: new T(c), si: new T(c), gw: new T(c), gb: new T(c) });
  const args = (x, dy, w, b, mean, v, invstd, o) =>
    op === 'forwardTraining' ? [x, o.y, w, b, null, null, o.sm, o.si, n, c, s, i % 2 === 0, 1e-5, 0.1]
    : op === 'forwardEval' ? [x, o.y, w, b, mean, v, n, c, s, false, 1e-5]
    : [x, dy, o.y, w, mean, invstd, o.gw, o.gb, n, c, s, true, true];
  const want = out();
  addon[op](...args(x, dy, w, b, mean, v, invstd, want));
  const got = out();
  const copied = args(...[x, dy, w, b, mean, v, invstd].map((a) => a.slice()), got);
  const outputs = new Set(Object.values(got));
  const refs = copied.filter((a) => ArrayBuffer.isView(a) && !outputs.has(a)).map((a) => new WeakRef(a));
  const call = { i, op, want, got, refs, done: false };
  call.promise = addon[op + 'Async'](...copied).then(() => { call.done = true; });
  copied.length = 0;
  calls.push(call);
  // Bad input in the middle: a rejected promise, never a throw.
  const bad = addon.forwardTrainingAsync(x, new T(numel - 1), null, null, null, null, new T(c), new T(c), n, c, s, false, 1e-5, 0.1);
  bad.then(() => { throw new Error('bad input resolved'); }, (e) => { if (e instanceof RangeError) rejected++; else throw e; });
}
let gcs = 0, checks = 0;
while (calls.some((k) => !k.done)) {
  await tick();
  globalThis.gc();
  gcs++;
  const junk = [];
  for (let k = 0; k < 3; k++) junk.push(new Float32Array(numel).fill(NaN));
  for (const k of calls) {
    if (k.done) continue;
    for (const r of k.refs) if (r.deref() === undefined) { console.error('call ' + k.i + ' (' + k.op + '): an input was collected while the call was in flight'); process.exit(2); }
    checks++;
  }
}
await Promise.all(calls.map((k) => k.promise));
for (const k of calls)
  for (const key of Object.keys(k.want))
    if (!same(k.got[key], k.want[key])) { console.error('call ' + k.i + ' (' + k.op + '): ' + key + ' differs from the sync result'); process.exit(3); }
// Settled: the addon has dropped its references, so the inputs can go.
const refs = calls.flatMap((k) => k.refs);
calls.length = 0;
for (let k = 0; k < 6 && refs.some((r) => r.deref() !== undefined); k++) { await tick(); globalThis.gc(); }
const alive = refs.filter((r) => r.deref() !== undefined).length;
await tick();
console.log(JSON.stringify({ gcs, checks, rejected, alive }));
`;
    // One libuv thread: the calls queue up behind each other, so GCs run while most are pending.
    const r = node(script, { UV_THREADPOOL_SIZE: '1' });
    expect(r.status, `exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.checks, 'GCs ran while calls were in flight').toBeGreaterThanOrEqual(5);
    expect(out.rejected).toBe(12);
    expect(out.alive, 'inputs still referenced after every call settled').toBe(0);
  },
  TEST_MS,
);

it(
  'the public async API under GC pressure: the same results as sync',
  () => {
    const script = `${PRELUDE}
const shape = [8, 16, 64, 64], numel = 8 * 16 * 64 * 64;
const jobs = [];
for (let i = 0; i < 6; i++) {
  const x = { data: fill(new Float32Array(numel), i), shape }, dy = { data: fill(new Float32Array(numel), 50 + i), shape };
  const f = bn.batchNorm(x, null, null, { training: true });
  const g = bn.batchNormBackward(dy, x, { saveMean: f.saveMean, saveInvstd: f.saveInvstd, training: true });
  const m = new bn.BatchNorm2d(16), want = m.forward(x).data;
  jobs.push((async () => {
    const fa = await bn.batchNormAsync({ data: x.data.slice(), shape }, null, null, { training: true });
    const ga = await bn.batchNormBackwardAsync({ data: dy.data.slice(), shape }, { data: x.data.slice(), shape }, { saveMean: fa.saveMean, saveInvstd: fa.saveInvstd, training: true });
    const ma = await new bn.BatchNorm2d(16).forwardAsync({ data: x.data.slice(), shape });
    return same(fa.data, f.data) && same(ga.gradInput.data, g.gradInput.data) && same(ga.gradWeight, g.gradWeight) && same(ma.data, want);
  })());
}
let settled = false;
const all = Promise.all(jobs).finally(() => { settled = true; });
while (!settled) { await tick(); globalThis.gc(); new Float32Array(numel).fill(NaN); }
console.log(JSON.stringify({ ok: (await all).every(Boolean) }));
`;
    const r = node(script, { UV_THREADPOOL_SIZE: '2' });
    expect(r.status, `exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!).ok).toBe(true);
  },
  TEST_MS,
);

it(
  'terminating workers with calls in flight, a worker exiting itself, and the process exiting with calls in flight do not crash',
  () => {
    const script = `${PRELUDE}
import { Worker } from 'node:worker_threads';
const JOB = \`
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.dist).then(async (bn) => {
  const shape = [8, 16, 128, 128], numel = 8 * 16 * 128 * 128;
  const x = { data: new Float32Array(numel).map((_, i) => i % 13), shape };
  const m = new bn.BatchNorm2d(16);
  const inFlight = [];
  const more = () => { for (let i = 0; i < 6; i++) inFlight.push(bn.batchNormAsync({ data: x.data.slice(), shape }, null, null, { training: true }), bn.batchNormBackwardAsync(x, x, { saveMean: new Float32Array(16), saveInvstd: new Float32Array(16).fill(1), training: true })); };
  more();
  parentPort.postMessage('busy');
  if (workerData.exitSelf) process.exit(0);
  for (;;) { await Promise.all(inFlight.splice(0)); more(); await m.forwardAsync(x); }
});\`;
const dist = resolve('dist/index.js').replace(/^/, 'file://');
for (let round = 0; round < 6; round++) {
  const w = new Worker(JOB, { eval: true, execArgv: [], workerData: { dist, exitSelf: round === 5 } });
  const exited = new Promise((r) => w.once('exit', r));
  await new Promise((res, rej) => { w.once('message', res); w.once('error', rej); });
  if (round % 2) await new Promise((r) => setTimeout(r, 3));
  if (round < 5) await w.terminate();
  await exited;
}
// The main thread's addon instance still works.
const x = { data: fill(new Float32Array(2 * 3 * 100), 1), shape: [2, 3, 100] };
const y = await bn.batchNormAsync(x, null, null, { training: true });
if (!y.data.every(Number.isFinite)) process.exit(5);
// Exit with calls in flight.
const big = { data: fill(new Float32Array(1 << 22), 2), shape: [16, 16, 128, 128] };
for (let i = 0; i < 8; i++) bn.batchNormAsync({ data: big.data.slice(), shape: big.shape }, null, null, { training: true });
console.log('ok');
process.exit(0);
`;
    const r = node(script);
    expect(r.status, `exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
  },
  TEST_MS,
);

// Node-API pins the typed-array objects of an in-flight call, not their memory,
// so the async forms refuse what JS could shrink meanwhile: resizable buffers.
// (Transferring a buffer away during an async call is documented as not allowed.)
it(
  'async forms refuse resizable buffers, on both paths, before anything runs',
  async () => {
    const script = `${PRELUDE}
const { jsKernels } = await import('./dist/backend/js.js');
const n = 4, c = 8, s = 1 << 18, numel = n * c * s;
const x = new Float32Array(new ArrayBuffer(numel * 4, { maxByteLength: numel * 4 })).fill(1);
const y = new Float32Array(numel);
const out = [];
for (const k of [addon, jsKernels]) {
  const p = k.forwardTrainingAsync(x, y, null, null, null, null, new Float32Array(c), new Float32Array(c), n, c, s, false, 1e-5, 0.1);
  x.buffer.resize(0);   // would leave an in-flight kernel reading decommitted pages
  out.push(await p.then(() => 'resolved', (e) => e.constructor.name + ': ' + e.message));
  x.buffer.resize(numel * 4);
}
// The sync forms take resizable buffers: no JS runs during the call.
addon.forwardTraining(x, y, null, null, null, null, new Float32Array(c), new Float32Array(c), n, c, s, false, 1e-5, 0.1);
console.log(JSON.stringify(out));
`;
    const r = node(script);
    expect(r.status, `exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`).toBe(0);
    const [native, js] = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(native).toMatch(/^TypeError: Expected a Float32Array of length 8388608 for x but received one backed by a resizable ArrayBuffer/);
    // The JS path checks when it runs (next turn), after the resize here: it sees the new length.
    expect(js).toBe('RangeError: Expected a Float32Array of length 8388608 for x but received a Float32Array of length 0');
  },
  TEST_MS,
);
