#!/usr/bin/env node
// Store policy judged where users meet it (issue 25, item 2): two builds of the
// addon, each call followed in the same timed region by a consumer that reads
// its output at once, as the next layer would. Both builds are loaded side by
// side and called on the same buffers in alternating bursts (A B, then B A,
// ...), as bench/ab.mjs does; the result is the median over bursts of B's time
// ÷ A's, per consumer, the consumers interleaved per burst.
//
// The builds differ by the store policy (native/kernels/memory.h, a build
// switch for this A/B only):
//
//   mkdir /tmp/plain && cp -r binding.gyp native package.json /tmp/plain && ln -s $PWD/node_modules /tmp/plain
//   (cd /tmp/plain && CPPFLAGS=-DBATCHNORM_STORES=1 node-gyp rebuild)     # plain stores everywhere
//   ... the same with =2 in /tmp/stream                                    # streaming stores wherever a pass can
//   node bench/consumer.mjs /tmp/plain/build/Release/batchnorm.node /tmp/stream/build/Release/batchnorm.node \
//     --shape 32,64,56,56 --op forward-training
//
// Consumers (each in the timed region, after the call):
//   none   the call alone (what bench/ab.mjs times)
//   sum    a JS sum over the output
//   relu   a JS ReLU over the output, in place
//   next   the next layer in native code: an eval BatchNorm of the output into
//          another array, always by build A (so that only the producer's stores differ)
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { median, parseCommandLine } from './lib/common.mjs';

const HELP = `usage: node bench/consumer.mjs A.node B.node [options]
  --shape N,C[,H,W]   default 32,64,56,56
  --op OP             forward-training (default), forward-eval or backward
  --layout L          nchw (default) or nhwc (channels-last)
  --threads T         default 2
  --bursts K          default 21 (each burst: enough calls for ~20 M values)
  --consumers LIST    default none,sum,relu,next
  --json              also print one line of JSON`;

const argv = process.argv.slice(2);
const files = argv.filter((a) => a.endsWith('.node'));
const args = parseCommandLine(
  {
    defaults: { shape: '32,64,56,56', op: 'forward-training', layout: 'nchw', threads: '2', bursts: '21', consumers: 'none,sum,relu,next', json: false },
    options: ['shape', 'op', 'layout', 'threads', 'bursts', 'consumers'],
    flags: ['help', 'json'],
  },
  HELP,
  argv.filter((a) => !a.endsWith('.node')),
);
const CONSUMERS = ['none', 'sum', 'relu', 'next'];
/** @type {string[]} */
const consumers = args.consumers.split(',');
if (files.length !== 2 || !['forward-training', 'forward-eval', 'backward'].includes(args.op) || !consumers.every((c) => CONSUMERS.includes(c))) {
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
  dx = new Float32Array(n).fill(0.5),
  z = new Float32Array(n);
const perChannel = (/** @type {number} */ v) => new Float32Array(C).fill(v);
const w = perChannel(1.2),
  b = perChannel(0.1),
  rm = perChannel(0),
  rv = perChannel(1),
  sm = perChannel(0),
  si = perChannel(0),
  gw = perChannel(0),
  gb = perChannel(0),
  one = perChannel(1),
  zero = perChannel(0);
addons[0].forwardTraining(x, y, w, b, rm, rv, sm, si, N, C, S, channelsLast, 1e-5, 0.1);
const output = args.op === 'backward' ? dx : y;
const calls = addons.map(
  (a) =>
    /** @type {Record<string, () => unknown>} */ ({
      'forward-training': () => a.forwardTraining(x, y, w, b, rm, rv, sm, si, N, C, S, channelsLast, 1e-5, 0.1),
      'forward-eval': () => a.forwardEval(x, y, w, b, sm, rv, N, C, S, channelsLast, 1e-5),
      backward: () => a.backward(x, dy, dx, w, sm, si, gw, gb, N, C, S, channelsLast, true),
    })[args.op],
);
let sink = 0;
/** @type {Record<string, () => void>} */
const consume = {
  none: () => {},
  sum: () => {
    let s = 0;
    for (let i = 0; i < n; i++) s += output[i];
    sink += s;
  },
  relu: () => {
    for (let i = 0; i < n; i++) if (output[i] < 0) output[i] = 0;
  },
  next: () => addons[0].forwardEval(output, z, one, zero, zero, one, N, C, S, channelsLast, 0),
};

const us = (/** @type {bigint} */ t0) => Number(process.hrtime.bigint() - t0) / 1e3;
/** @type {Record<string, [number[], number[]]>} */
const times = Object.fromEntries(consumers.map((c) => [c, [[], []]]));
const per = Math.max(3, Math.min(200, Math.round(2e7 / n)));
for (let k = 0; k < Number(args.bursts); k++) {
  for (const c of k % 2 ? [...consumers].reverse() : consumers) {
    const f = consume[c];
    for (const j of k % 2 ? [1, 0] : [0, 1]) {
      calls[j]();
      f();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < per; i++) {
        calls[j]();
        f();
      }
      times[c][j].push(us(t0) / per);
    }
  }
}
const layout = dims.length === 2 ? 'nc' : args.layout;
/** @type {Record<string, { a: number, b: number, ratio: number, bWon: number }>} */
const result = {};
for (const c of consumers) {
  const [ta, tb] = times[c];
  const ratios = ta.map((t, i) => tb[i] / t);
  result[c] = { a: median(ta), b: median(tb), ratio: median(ratios), bWon: ratios.filter((r) => r < 1).length };
  const r = result[c];
  console.log(
    `${args.op} ${args.shape} ${layout} threads ${args.threads}, consumer ${c.padEnd(4)}: A ${r.a.toFixed(1)} us, B ${r.b.toFixed(1)} us, B/A ${r.ratio.toFixed(3)} (range ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}, B faster in ${r.bWon} of ${ratios.length} bursts)`,
  );
}
if (sink === 0.5) console.log('');
if (args.json) console.log(JSON.stringify({ op: args.op, shape: dims, layout, threads: Number(args.threads), result }));
