#!/usr/bin/env node
// A training loop's step, timed per step, as users meet it (issue 25, item 3):
// forward, a consumer that reads y at once (a sum over it, as the next layer
// would), backward, then the same consumer over dx. Three ways, alternating
// per round so that the host's noise falls on all alike:
//   module   BatchNorm2d with default options: forward(x), backward(dy), each
//            returning a new array (what most code calls)
//   reuse    the module with `out`: the step's y and dx arrays passed back in
//   out      the functional form with every output given (out, saveMeanOut,
//            saveInvstdOut, gradWeightOut, gradBiasOut): the kernels' cost
// Prints p50 and p99 per step (µs) per way, minor page faults per step, and module ÷ out.
//
//   node bench/train-loop.mjs [--shape 64,16,8,8] [--threads 1] [--steps 3000] [--rounds 5] [--json]
// --json: one last line of JSON ({ shape, threads, ways: { way: { p50, p99 } }, moduleOverOut }) for bench/run.mjs.
import { readFileSync } from 'node:fs';
import { batchNorm, batchNormBackward, BatchNorm2d, setNumThreads } from 'batchnorm';
import { fillUniform, median, parseCommandLine } from './lib/common.mjs';

const HELP = `usage: node bench/train-loop.mjs [--shape N,C,H,W] [--threads T] [--steps S] [--rounds R] [--json]`;
const args = parseCommandLine(
  {
    defaults: { shape: '64,16,8,8', threads: '1', steps: '3000', rounds: '5', json: false },
    options: ['shape', 'threads', 'steps', 'rounds'],
    flags: ['help', 'json'],
  },
  HELP,
  process.argv.slice(2),
);
const shape = args.shape.split(',').map(Number);
const [N, C, H, W] = shape,
  n = N * C * H * W;
setNumThreads(Number(args.threads));

const x = fillUniform(new Float32Array(n), 1),
  dy = fillUniform(new Float32Array(n), 2);
let sink = 0;
const consume = (/** @type {Float32Array} */ a) => {
  let s = 0;
  for (let i = 0; i < a.length; i += 1) s += a[i];
  sink += s;
};

function moduleWay() {
  const bn = new BatchNorm2d(C);
  return () => {
    const y = bn.forward({ data: x, shape });
    consume(y.data);
    const dx = bn.backward({ data: dy, shape });
    consume(dx.data);
  };
}
function reuseWay() {
  const bn = new BatchNorm2d(C);
  const y = new Float32Array(n),
    dx = new Float32Array(n);
  return () => {
    bn.forward({ data: x, shape }, { out: y });
    consume(y);
    bn.backward({ data: dy, shape }, { out: dx });
    consume(dx);
  };
}
function outWay() {
  const rm = new Float32Array(C),
    rv = new Float32Array(C).fill(1),
    w = new Float32Array(C).fill(1),
    b = new Float32Array(C);
  const y = new Float32Array(n),
    dx = new Float32Array(n),
    sm = new Float32Array(C),
    si = new Float32Array(C);
  const gw = new Float32Array(C),
    gb = new Float32Array(C);
  return () => {
    batchNorm({ data: x, shape }, rm, rv, { weight: w, bias: b, training: true, out: y, saveMeanOut: sm, saveInvstdOut: si });
    consume(y);
    batchNormBackward(
      { data: dy, shape },
      { data: x, shape },
      { weight: w, saveMean: sm, saveInvstd: si, training: true, out: dx, gradWeightOut: gw, gradBiasOut: gb },
    );
    consume(dx);
  };
}

/** @type {Record<string, () => void>} */
const ways = { module: moduleWay(), reuse: reuseWay(), out: outWay() };
/** @type {Record<string, Float64Array[]>} */
const times = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
// Minor page faults of this process so far (Linux; NaN elsewhere): a step that
// writes into memory the allocator has just taken from the kernel faults it in.
const minorFaults = () => {
  try {
    return Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);
  } catch {
    return NaN;
  }
};
/** @type {Record<string, number>} */
const faults = Object.fromEntries(Object.keys(ways).map((k) => [k, 0]));
const steps = Number(args.steps),
  rounds = Number(args.rounds);
for (const f of Object.values(ways)) for (let i = 0; i < 200; i++) f(); // warm-up
for (let r = 0; r < rounds; r++) {
  const order = Object.keys(ways);
  if (r % 2) order.reverse();
  for (const k of order) {
    const f = ways[k],
      t = new Float64Array(steps);
    const f0 = minorFaults();
    for (let i = 0; i < steps; i++) {
      const t0 = process.hrtime.bigint();
      f();
      t[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    }
    faults[k] += minorFaults() - f0;
    times[k].push(t);
  }
}
const pct = (/** @type {Float64Array} */ t, /** @type {number} */ p) => {
  const s = Float64Array.from(t).sort();
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
/** @type {Record<string, { p50: number[], p99: number[] }>} */
const per = {};
for (const [k, ts] of Object.entries(times)) {
  per[k] = { p50: ts.map((t) => pct(t, 0.5)), p99: ts.map((t) => pct(t, 0.99)) };
  const f = (/** @type {number[]} */ xs) => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
  console.log(
    `${k.padEnd(7)} p50 ${f(per[k].p50)} µs  p99 ${f(per[k].p99)} µs  p99/p50 ${(median(per[k].p99) / median(per[k].p50)).toFixed(2)}  page faults/step ${(faults[k] / (rounds * steps)).toFixed(1)}`,
  );
}
const ratio = (/** @type {string} */ a, /** @type {string} */ b) => median(per[a].p50.map((v, i) => v / per[b].p50[i]));
console.log(
  `${shape.join(',')} threads ${args.threads}, ${rounds} rounds of ${steps} steps: module/out p50 ${ratio('module', 'out').toFixed(2)}, reuse/out ${ratio('reuse', 'out').toFixed(2)}${sink === 1 ? ' ' : ''}`,
);
if (args.json) {
  const ways = Object.fromEntries(
    Object.entries(per).map(([k, v]) => [k, { p50: median(v.p50), p99: median(v.p99), faultsPerStep: faults[k] / (rounds * steps) }]),
  );
  console.log(JSON.stringify({ shape, threads: Number(args.threads), rounds, steps, ways, moduleOverOut: ratio('module', 'out') }));
}
