/**
 * Native results are bitwise the same for any thread count (fixed units,
 * fixed merge order), and an idle pool sleeps.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { kernels } from '../lib/backend/loader.js';
import { getNumThreads, setNumThreads } from '../lib/index.js';
import { randn } from './helpers.js';

// The bitwise tests run large tensors on 1 to 5 threads, the others Node child
// processes: a second or two each on a quiet machine. Each states its limit,
// generous enough for every core being busy with other work; a child is killed
// a little before, so that a hang fails with its output.
const TEST_MS = 180_000,
  CHILD_MS = 150_000;

const initial = getNumThreads();
afterAll(() => setNumThreads(initial));

it('defaults to the available cores and validates setNumThreads', async () => {
  const os = await import('node:os');
  expect(initial).toBe(os.availableParallelism());
  expect(() => setNumThreads(0)).toThrow(RangeError);
  expect(() => setNumThreads(1.5)).toThrow(RangeError);
  expect(() => setNumThreads('2' as any)).toThrow(TypeError);
  // The same words on both paths.
  expect(() => setNumThreads(null as any)).toThrow('Expected a positive integer for n but received null');
  expect(() => setNumThreads(0)).toThrow('Expected a positive integer for n but received the number 0');
  expect(() => setNumThreads(2000)).toThrow('Expected a positive integer of at most 1024 for n but received the number 2000');
});

it.each([
  ['NCHW, many channels', 16, 64, 1000, false],
  ['NCHW, one channel (split within the channel)', 4, 1, 70_000, false],
  ['channels-last', 4000, 40, 1, true],
  ['NHWC', 8, 24, 900, true],
] as const)(
  '%s: identical bits for 1, 2, 3 and 5 threads',
  (_l, n, c, s, channelsLast) => {
    const numel = n * c * s,
      x = randn(numel, 1, 5, 3),
      dy = randn(numel, 2);
    const results = [1, 2, 3, 5].map((t) => {
      setNumThreads(t);
      const y = new Float32Array(numel),
        rm = new Float32Array(c),
        rv = new Float32Array(c).fill(1),
        sm = new Float32Array(c),
        si = new Float32Array(c);
      kernels.forwardTraining(x, y, null, null, rm, rv, sm, si, n, c, s, channelsLast, 1e-5, 0.1);
      const dx = new Float32Array(numel),
        gw = new Float32Array(c),
        gb = new Float32Array(c);
      kernels.backward(x, dy, dx, null, sm, si, gw, gb, n, c, s, channelsLast, true);
      return Buffer.concat([y, rm, rv, sm, si, dx, gw, gb].map((a) => Buffer.from(a.buffer)));
    });
    for (const r of results.slice(1)) expect(r.equals(results[0])).toBe(true);
  },
  TEST_MS,
);

// Workers poll for at most BATCHNORM_SPIN_US (50 us) after a region, then
// block: a process that has made parallel calls and then waits uses no CPU.
// In a child process, so that other test files' work does not count.
it.each([
  ['the default poll window', {}],
  ['BATCHNORM_SPIN_US=0', { BATCHNORM_SPIN_US: '0' }],
])(
  'an idle pool sleeps (%s)',
  (_l, env) => {
    const script = `
    import { createRequire } from 'node:module';
    import { resolve } from 'node:path';
    import { readFileSync } from 'node:fs';
    const threads = () => Number(readFileSync('/proc/self/status', 'utf8').match(/^Threads:\\s+(\\d+)/m)[1]);
    const addon = createRequire(resolve('package.json'))(resolve(process.env.BATCHNORM_ADDON || 'build/Release/batchnorm.node'));
    addon.setNumThreads(4);
    const n = 8, c = 16, s = 4096, x = new Float32Array(n * c * s).map((_, i) => Math.sin(i)), y = new Float32Array(x.length);
    const st = () => new Float32Array(c);
    const call = () => addon.forwardTraining(x, y, null, null, st(), st().fill(1), st(), st(), n, c, s, false, 1e-5, 0.1, true);
    const before = threads();
    const busy = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) call();
    const wall = performance.now() - t0, used = process.cpuUsage(busy), workers = threads() - before;
    await new Promise((r) => setTimeout(r, 50));
    const idle = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 400));
    const d = process.cpuUsage(idle);
    console.log(JSON.stringify({ idleMs: (d.user + d.system) / 1e3, busyMs: (used.user + used.system) / 1e3, wall, workers }));
  `;
    const root = fileURLToPath(new URL('..', import.meta.url));
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: CHILD_MS,
    });
    expect(r.stderr).toBe('');
    const m = JSON.parse(r.stdout);
    // 400 ms of waiting: a polling worker would burn about 400 ms of CPU.
    expect(m.idleMs).toBeLessThan(40);
    // The calls did run, and on the pool: its 3 workers (the caller is the 4th thread) were started by
    // them, so the idle figure is that of a pool that exists (Linux: /proc/self/status counts the threads).
    expect(m.busyMs).toBeGreaterThan(0);
    expect(m.workers).toBeGreaterThanOrEqual(3);
  },
  TEST_MS,
);

// A worker that has not woken when the caller finishes its own part leaves
// that part to the caller. With BATCHNORM_SPIN_US=0 every worker sleeps
// between regions, so the caller and a waking worker race for parts on
// every call: each part must run exactly once (a channel's running
// statistics updated twice would show), and a worker that loses must not
// run an ended region.
it(
  'a sleeping worker whose part the caller took: every part runs once, same bits',
  () => {
    const script = `
    import { createRequire } from 'node:module';
    import { resolve } from 'node:path';
    const addon = createRequire(resolve('package.json'))(resolve(process.env.BATCHNORM_ADDON || 'build/Release/batchnorm.node'));
    const n = 8, c = 64, s = 1024, x = new Float32Array(n * c * s).map((_, i) => Math.sin(i) * 3 + (i % 7)), dy = x.map((v, i) => Math.cos(i + v));
    const run = () => {
      const y = new Float32Array(x.length), rm = new Float32Array(c).fill(0.5), rv = new Float32Array(c).fill(2), sm = new Float32Array(c), si = new Float32Array(c);
      addon.forwardTraining(x, y, null, null, rm, rv, sm, si, n, c, s, false, 1e-5, 0.1, true);
      const dx = new Float32Array(x.length), gw = new Float32Array(c), gb = new Float32Array(c);
      addon.backward(x, dy, dx, null, sm, si, gw, gb, n, c, s, false, true);
      return Buffer.concat([y, rm, rv, sm, si, dx, gw, gb].map((a) => Buffer.from(a.buffer)));
    };
    addon.setNumThreads(1);
    const expected = run();
    addon.setNumThreads(2);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    let same = 0;
    for (let i = 0; i < 120; i++) {
      if (i % 3 === 0) Atomics.wait(pause, 0, 0, 1); // let the worker fall asleep
      if (run().equals(expected)) same++;
    }
    console.log(JSON.stringify({ same }));
  `;
    const root = fileURLToPath(new URL('..', import.meta.url));
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      env: { ...process.env, BATCHNORM_SPIN_US: '0' },
      encoding: 'utf8',
      timeout: CHILD_MS,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).same).toBe(120);
  },
  TEST_MS,
);

// A worker thread that cannot be created (here: no address space left for
// its stack) must not take the process down: the region runs on the threads
// the pool has, with the same bits, and getNumThreads() then reports those.
// In a child under `ulimit -v` (4 GB, as root's RLIMIT_NPROC does not bind):
// 1023 workers at 8 MB of stack each need 8 GB, so creation fails every time.
it(
  'a thread that cannot be created: same bits on the threads there are, no crash',
  () => {
    const script = `
    import { createRequire } from 'node:module';
    import { resolve } from 'node:path';
    const addon = createRequire(resolve('package.json'))(resolve(process.env.BATCHNORM_ADDON || 'build/Release/batchnorm.node'));
    const n = 2, c = 2048, s = 128, x = new Float32Array(n * c * s).map((_, i) => Math.sin(i) * 3 + (i % 7));
    const run = async (async) => {
      const y = new Float32Array(x.length), rm = new Float32Array(c), rv = new Float32Array(c).fill(1), sm = new Float32Array(c), si = new Float32Array(c);
      const args = [x, y, null, null, rm, rv, sm, si, n, c, s, false, 1e-5, 0.1, true];
      if (async) await addon.forwardTrainingAsync(...args);
      else addon.forwardTraining(...args);
      return Buffer.concat([y, rm, rv, sm, si].map((a) => Buffer.from(a.buffer)));
    };
    addon.setNumThreads(1);
    const expected = await run(true);  // also starts libuv's threads while there is room
    addon.setNumThreads(1024);
    const sync = (await run(false)).equals(expected), after = addon.getNumThreads();
    addon.setNumThreads(1024);
    const asked = addon.getNumThreads(), async = (await run(true)).equals(expected);
    console.log(JSON.stringify({ sync, async, after, asked, again: addon.getNumThreads() }));
  `;
    const root = fileURLToPath(new URL('..', import.meta.url));
    // ASan reserves terabytes of shadow address space and cannot start under
    // `ulimit -v`: in the sanitizer run (.ci/sanitize.sh preloads it), the child
    // runs the plain addon, uninstrumented, with the same checks.
    const env = { ...process.env };
    if (env.LD_PRELOAD?.includes('libasan')) (delete env.LD_PRELOAD, delete env.BATCHNORM_ADDON);
    const r = spawnSync('sh', ['-c', 'ulimit -s 8192 && ulimit -v 4000000 && exec "$0" --input-type=module -e "$1"', process.execPath, script], {
      cwd: root,
      env,
      encoding: 'utf8',
      timeout: CHILD_MS,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const m = JSON.parse(r.stdout);
    expect(m.sync).toBe(true);
    expect(m.async).toBe(true);
    expect(m.after).toBeGreaterThan(1);
    expect(m.after).toBeLessThan(1024);
    expect(m.asked).toBe(1024); // setNumThreads is taken as asked; the next region tries again
    expect(m.again).toBe(m.after);
  },
  TEST_MS,
);

// Issue 26: lowering the thread count ends the workers past it. Before, a
// pool grown to 64 kept its 63 workers after setNumThreads(2) (74 OS
// threads), and one grown to 1024 kept 1023. In a child process, so that the
// thread count is this pool's alone.
it('setNumThreads shrinks the pool: workers past the new count end, results keep their bits', () => {
  const script = `
    import { createRequire } from 'node:module';
    import { resolve } from 'node:path';
    import { readFileSync } from 'node:fs';
    const threads = () => Number(readFileSync('/proc/self/status', 'utf8').match(/^Threads:\\s+(\\d+)/m)[1]);
    const addon = createRequire(resolve('package.json'))(resolve(process.env.BATCHNORM_ADDON || 'build/Release/batchnorm.node'));
    const n = 64, c = 64, s = 1024, x = new Float32Array(n * c * s).map((_, i) => Math.sin(i)), y = new Float32Array(x.length);
    const run = () => {
      const st = () => new Float32Array(c);
      const rm = st(), rv = st().fill(1), sm = st(), si = st();
      addon.forwardTraining(x, y, null, null, rm, rv, sm, si, n, c, s, false, 1e-5, 0.1, true);
      return Buffer.concat([y, rm, rv, sm, si].map((a) => Buffer.from(a.buffer)));
    };
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const base = threads();
    addon.setNumThreads(1);
    const expected = run();
    const counts = {};
    let same = 0;
    for (const t of [64, 2, 1024, 3, 1, 64, 1]) {
      addon.setNumThreads(t);
      if (run().equals(expected)) same++;
      const grown = threads() - base;
      addon.setNumThreads(2);
      let after = threads() - base;
      for (let i = 0; i < 100 && after > 1; i++) { await sleep(20); after = threads() - base; }
      counts[t] = { grown, after };
    }
    console.log(JSON.stringify({ counts, same, now: addon.getNumThreads() }));
  `;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env: process.env, encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const m = JSON.parse(r.stdout);
  expect(m.same).toBe(7);
  expect(m.now).toBe(2);
  // The pool did grow past 2 (so that there was something to shrink), and came back to its one worker.
  expect(m.counts[64].grown).toBeGreaterThan(8);
  expect(m.counts[1024].grown).toBeGreaterThan(8);
  for (const t of [64, 1024, 3, 1]) expect(m.counts[t].after, `after ${t} threads, then 2`).toBeLessThanOrEqual(1);
}, 180_000);
