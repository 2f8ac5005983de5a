#!/usr/bin/env node
// BatchNorm followed by a ReLU, three ways, in alternating bursts (ab.mjs's
// method: the host's noise falls on all three alike; each ratio is the median
// over bursts of the per-burst ratios, with their range):
//   plain     BatchNorm2d forward-training / backward, the baseline
//   fused     BatchNorm2d({ activation: 'relu' }): relu(bn(x)) and its backward
//   separate  plain BatchNorm, then a ReLU pass of its own (forward: y = max(y, 0)
//             over y; backward: g = dy·(y > 0), then the plain backward of g)
// All three through the module API with `out` buffers, on the backend that
// BATCHNORM_BACKEND selects (native or js).
//
//   node bench/fused.mjs --shape 32,64,56,56 --bursts 21
//   BATCHNORM_BACKEND=js node bench/fused.mjs --shape 32,64,56,56 --bursts 7
import { BatchNorm2d, backendInfo, setNumThreads } from 'batchnorm';
import { fillUniform, median, parseCommandLine } from './lib/common.mjs';

const HELP = `usage: node bench/fused.mjs [options]
  --shape N,C,H,W     default 32,64,56,56
  --layout L          nchw (default) or nhwc
  --threads T         default 2
  --bursts K          default 21`;
const args = parseCommandLine(
  { defaults: { shape: '32,64,56,56', layout: 'nchw', threads: '2', bursts: '21' }, options: ['shape', 'layout', 'threads', 'bursts'], flags: ['help'] },
  HELP,
);
setNumThreads(Number(args.threads));
const dims = args.shape.split(',').map(Number);
const nhwc = args.layout === 'nhwc';
const shape = nhwc ? [dims[0], dims[2], dims[3], dims[1]] : dims;
const n = dims.reduce((/** @type {number} */ a, /** @type {number} */ b) => a * b, 1),
  C = dims[1];
const X = { data: new Float32Array(n), shape },
  DY = { data: new Float32Array(n), shape };
fillUniform(X.data, 1, -1, 3);
fillUniform(DY.data, 2, -1, 1);
const out = new Float32Array(n),
  dxOut = new Float32Array(n),
  g = { data: new Float32Array(n), shape };
const make = (/** @type {'relu' | null} */ activation) => new BatchNorm2d(C, { activation, layout: nhwc ? 'NHWC' : 'NCHW' });
const plain = make(null),
  fused = make('relu'),
  separate = make(null);

/** @param {Float32Array} y */
function relu(y) {
  for (let i = 0; i < y.length; i++) if (y[i] < 0) y[i] = 0;
}
/** @param {Float32Array} dy @param {Float32Array} y @param {Float32Array} into */
function mask(dy, y, into) {
  for (let i = 0; i < dy.length; i++) into[i] = y[i] > 0 ? dy[i] : 0;
}

/** @type {Record<string, Record<string, () => unknown>>} */
const variants = {
  'forward-training': {
    plain: () => plain.forward(X, { out }),
    fused: () => fused.forward(X, { out }),
    separate: () => relu(separate.forward(X, { out }).data),
  },
  backward: {
    plain: () => plain.backward(DY, { out: dxOut, retainGraph: true }),
    fused: () => fused.backward(DY, { out: dxOut, retainGraph: true }),
    separate: () => {
      mask(DY.data, out, g.data);
      return separate.backward(g, { out: dxOut, retainGraph: true });
    },
  },
};

const us = (/** @type {bigint} */ t0) => Number(process.hrtime.bigint() - t0) / 1e3;
const per = Math.max(2, Math.min(100, Math.round(1e7 / n)));
const info = backendInfo();
console.log(`${info.backend}/${info.isa} threads ${args.threads}, (${dims}) ${args.layout}, ${args.bursts} bursts of ${per} calls`);
for (const [op, fns] of Object.entries(variants)) {
  const names = Object.keys(fns),
    times = names.map(() => /** @type {number[]} */ ([]));
  // The backward rows differentiate a forward of the same module (kept with retainGraph).
  if (op === 'backward') {
    plain.forward(X, { out });
    separate.forward(X, { out });
    relu(out);
    fused.forward(X, { out: new Float32Array(n) });
  }
  for (let k = 0; k < Number(args.bursts); k++) {
    const order = names.map((_, i) => (i + k) % names.length); // rotate who goes first
    for (const j of order) {
      fns[names[j]]();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < per; i++) fns[names[j]]();
      times[j].push(us(t0) / per);
    }
  }
  // Per burst, each variant's time over plain's: the median, and the range over the bursts.
  const ratios = (/** @type {number} */ j) => times[j].map((t, i) => t / times[0][i]);
  const range = (/** @type {number[]} */ r) => `${Math.min(...r).toFixed(2)}-${Math.max(...r).toFixed(2)}`;
  console.log(
    `${op}: ` +
      names
        .map((name, j) => `${name} ${(median(times[j]) / 1e3).toFixed(3)} ms${j ? ` (${median(ratios(j)).toFixed(3)}x plain, range ${range(ratios(j))})` : ''}`)
        .join(', '),
  );
}
