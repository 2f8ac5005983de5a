#!/usr/bin/env node
// The WebAssembly kernels against the pure-JS ones in one process, in
// alternating rounds (so that a shared machine's load hits both alike), on
// (32,64,56,56) forward-training and backward, one thread, through the
// kernel interface (arguments checked, arrays copied in and out: all of a
// call's cost). Needs dist/ (npx tsc -p tsconfig.json) and wasm/batchnorm.wasm
// (npm run build:wasm).
//
//   node bench/wasm-ab.mjs [--rounds 8] [--layout nchw|nhwc]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jsKernels } from '../dist/backend/js.js';
import { loadWasm } from '../dist/backend/wasm.js';

/** @typedef {import('../dist/backend/kernels.js').Kernels} Kernels */

const { values: opt } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, layout: { type: 'string', default: 'nchw' } } });
const wasm = loadWasm(fileURLToPath(new URL('../wasm/batchnorm.wasm', import.meta.url)));
if (!wasm.kernels) throw new Error(wasm.why);
const N = 32,
  C = 64,
  S = 56 * 56,
  n = N * C * S,
  cl = opt.layout === 'nhwc';
const x = new Float32Array(n).map((_, i) => Math.sin(i) * 2),
  dy = new Float32Array(n).map((_, i) => Math.cos(i));
const y = new Float32Array(n),
  dx = new Float32Array(n),
  w = new Float32Array(C).fill(1.1),
  b = new Float32Array(C).fill(0.1);
const rm = new Float32Array(C),
  rv = new Float32Array(C).fill(1),
  sm = new Float32Array(C),
  si = new Float32Array(C),
  gw = new Float32Array(C),
  gb = new Float32Array(C);
/** @type {Record<string, (k: Kernels) => void>} */
const ops = {
  'forward-training': (k) => k.forwardTraining(x, y, w, b, rm, rv, sm, si, N, C, S, cl, 1e-5, 0.1),
  backward: (k) => k.backward(x, dy, dx, w, sm, si, gw, gb, N, C, S, cl, true),
};
// Warm-up: V8 compiles WebAssembly with its baseline compiler first and the optimizing one in the background.
for (let i = 0; i < 20; i++) for (const f of Object.values(ops)) f(wasm.kernels);
for (const f of Object.values(ops)) f(jsKernels);
/** @type {Record<'js' | 'wasm', Record<string, number[]>>} */
const ms = { js: {}, wasm: {} };
/** @type {Array<['js' | 'wasm', Kernels]>} */
const paths = [
  ['js', jsKernels],
  ['wasm', wasm.kernels],
];
for (let r = 0; r < Number(opt.rounds); r++)
  for (const [name, k] of paths)
    for (const [op, f] of Object.entries(ops)) {
      const t = performance.now();
      f(k);
      (ms[name][op] ??= []).push(performance.now() - t);
    }
const median = (/** @type {number[]} */ a) => [...a].sort((p, q) => p - q)[a.length >> 1];
for (const op of Object.keys(ops)) {
  const j = median(ms.js[op]),
    v = median(ms.wasm[op]);
  console.log(
    `(32,64,56,56) ${opt.layout} ${op}: js ${j.toFixed(1)} ms, wasm ${v.toFixed(1)} ms, wasm ${(j / v).toFixed(2)}x faster (medians of ${opt.rounds} alternating rounds)`,
  );
}
