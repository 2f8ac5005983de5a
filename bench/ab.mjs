#!/usr/bin/env node
// A/B of two builds of the addon, in one process: how the kernel commits'
// figures were measured. Both .node files are loaded side by side (each has
// its own thread pool) and called on the same buffers in alternating bursts
// (A B, then B A, ...), so that the host's noise falls on both alike; the
// result is the median over bursts of B's time ÷ A's.
//
//   cp build/Release/batchnorm.node /tmp/a.node      # before the change
//   ... change, rebuild ...
//   node bench/ab.mjs /tmp/a.node build/Release/batchnorm.node --shape 32,256,14,14 --op forward-training
//
// --idle-ms T times single calls T ms apart instead (the pool's threads have
// gone to sleep by then): what a call after a pause costs. --cold times single
// calls with the caches evicted before each (128 MiB written, as run.mjs --cold).
// --busy K keeps K other processes spinning meanwhile: a server whose cores
// are not all free.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { makeEvictor, median, parseCommandLine } from './lib/common.mjs';

const HELP = `usage: node bench/ab.mjs A.node B.node [options]
  --shape N,C[,H,W]   default 32,64,56,56
  --op OP             forward-training (default), forward-eval or backward
  --layout L          nchw (default) or nhwc (channels-last)
  --threads T         default 2
  --bursts K          default 41 (each burst: enough calls for ~20 M values)
  --idle-ms T         time single calls T ms apart (default: bursts of back-to-back calls)
  --cold              time single calls, caches evicted before each
  --busy K            K other processes spin on the CPUs meanwhile (default 0)`;

const argv = process.argv.slice(2);
const files = argv.filter((a) => a.endsWith('.node'));
const spec = {
  defaults: { shape: '32,64,56,56', op: 'forward-training', layout: 'nchw', threads: '2', bursts: '41' },
  options: ['shape', 'op', 'layout', 'threads', 'bursts', 'idle-ms', 'busy'],
  flags: ['help', 'cold'],
};
const args = parseCommandLine(
  spec,
  HELP,
  argv.filter((a) => !a.endsWith('.node')),
);
if (files.length !== 2 || !['forward-training', 'forward-eval', 'backward'].includes(args.op)) {
  console.error(HELP);
  process.exit(2);
}

const require = createRequire(import.meta.url);
const addons = files.map((f) => require(resolve(f)));
for (const a of addons) a.setNumThreads(Number(args.threads));

/** @type {number[]} */
const dims = args.shape.split(',').map(Number);
const [N, C] = dims,
  S = dims.slice(2).reduce((a, b) => a * b, 1),
  n = N * C * S;
const channelsLast = args.layout === 'nhwc' || dims.length === 2;
let seed = 1;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
const x = new Float32Array(n).map(() => rand() * 2 + 1),
  dy = new Float32Array(n).map(() => rand() * 2 - 1);
const y = new Float32Array(n).fill(0.5),
  dx = new Float32Array(n).fill(0.5);
const perChannel = (/** @type {number} */ v) => new Float32Array(C).fill(v);
const w = perChannel(1.2),
  b = perChannel(0.1),
  rm = perChannel(0),
  rv = perChannel(1),
  sm = perChannel(0),
  si = perChannel(0),
  gw = perChannel(0),
  gb = perChannel(0);
addons[0].forwardTraining(x, y, w, b, rm, rv, sm, si, N, C, S, channelsLast, 1e-5, 0.1);
const calls = addons.map(
  (a) =>
    /** @type {Record<string, () => unknown>} */ ({
      'forward-training': () => a.forwardTraining(x, y, w, b, rm, rv, sm, si, N, C, S, channelsLast, 1e-5, 0.1),
      'forward-eval': () => a.forwardEval(x, y, w, b, sm, rv, N, C, S, channelsLast, 1e-5),
      backward: () => a.backward(x, dy, dx, w, sm, si, gw, gb, N, C, S, channelsLast, true),
    })[args.op],
);

const busy = Array.from({ length: Number(args.busy ?? 0) }, () => spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' }));
process.on('exit', () => busy.forEach((p) => p.kill())); // also on an error
if (busy.length) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300); // until they spin

const us = (/** @type {bigint} */ t0) => Number(process.hrtime.bigint() - t0) / 1e3;
/** @type {[number[], number[]]} */
const times = [[], []];
const single = args['idle-ms'] !== undefined || args.cold;
if (args.cold) {
  const evict = makeEvictor();
  for (let k = 0; k < 2 * Number(args.bursts); k++) {
    const j = (k >> 1) % 2 ? 1 - (k % 2) : k % 2; // A B, B A, A B, ...
    evict(Number(args.threads));
    const t0 = process.hrtime.bigint();
    calls[j]();
    times[j].push(us(t0));
  }
} else if (args['idle-ms'] !== undefined) {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let k = 0; k < 2 * Number(args.bursts); k++) {
    Atomics.wait(pause, 0, 0, Number(args['idle-ms']));
    const t0 = process.hrtime.bigint();
    calls[k % 2]();
    times[k % 2].push(us(t0));
  }
} else {
  const per = Math.max(3, Math.min(200, Math.round(2e7 / n)));
  for (let k = 0; k < Number(args.bursts); k++) {
    for (const j of k % 2 ? [1, 0] : [0, 1]) {
      calls[j]();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < per; i++) calls[j]();
      times[j].push(us(t0) / per);
    }
  }
}
const mode =
  (args.cold ? 'single calls, caches evicted' : args['idle-ms'] !== undefined ? `single calls ${args['idle-ms']} ms apart` : 'bursts') +
  (busy.length ? `, ${busy.length} busy` : '');
const ratio = single ? median(times[1]) / median(times[0]) : median(times[0].map((t, i) => times[1][i] / t));
console.log(
  `${args.op} ${args.shape} ${dims.length === 2 ? 'nc' : args.layout} threads ${args.threads}, ${mode}: A ${median(times[0]).toFixed(1)} us, B ${median(times[1]).toFixed(1)} us, B/A ${ratio.toFixed(3)}`,
);
busy.forEach((p) => p.kill());
