#!/usr/bin/env node
// Hashes every output of every op of one addon build over a grid of shapes:
// a kernel refactoring that must keep the same bits (issue 19) runs this at
// the old and at the new commit and compares the hashes.
//
//   node bench/hash-outputs.mjs [path/to/batchnorm.node]   (default build/Release/batchnorm.node)
//
// For each ISA this CPU runs (scalar, avx2, avx512, neon; forced with
// BATCHNORM_ISA in a child process), float32 and float64, NCHW and NHWC,
// threads 1, 2 and 3: forward-training (running statistics with the unbiased
// and the biased update, none; weight and bias given or null; in place),
// forward-eval, backward (batch and frozen statistics; weight null; dx and the
// gradients null). Shapes reach every path: (N, C) rows, short NCHW planes,
// odd sizes, planes longer than a unit of work, tensors past kFuseFrom,
// kPrefetchBytes and kStreamBytes, outputs one element off alignment, and
// data that trips the fallbacks (a large mean with a small spread, channels
// drifting along the batch, non-finite values).
//
// Prints one SHA-256 per ISA and one over all of them (the line to compare).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * @typedef {import('../dist/backend/native.js').Addon} Addon
 * @typedef {import('../dist/backend/kernels.js').FloatArray} FloatArray
 * @typedef {{ new (length: number): FloatArray, from(src: ArrayLike<number>): FloatArray, from<U>(src: ArrayLike<U>, map: (v: U, i: number) => number): FloatArray, readonly name: string }} FloatArrayConstructor
 *   Float32Array or Float64Array, as one type (the union's `from` overloads do not resolve).
 * @typedef {'u' | 'shift' | 'drift' | 'nonfinite'} Data
 */

const addonPath = resolve(process.argv[2] ?? 'build/Release/batchnorm.node');

// [N, C, S, channelsLast, data]: data 'u' uniform in [1, 3), 'shift' mean 100
// std ~0.01, 'drift' each sample's mean moves, 'nonfinite' inf/NaN in some channels.
/** @type {Array<[number, number, number, boolean, Data]>} */
const SHAPES = [
  [2, 3, 5, false, 'u'],
  [2, 3, 5, true, 'u'],
  [7, 5, 1, false, 'u'],
  [256, 512, 1, true, 'u'],
  [1000, 37, 1, true, 'shift'],
  [1, 3, 1, true, 'u'],
  [32, 512, 16, false, 'u'],
  [64, 16, 64, false, 'u'],
  [64, 16, 64, true, 'u'],
  [517, 7, 3, false, 'drift'],
  [521, 7, 20, false, 'drift'],
  [33, 7, 4, false, 'nonfinite'],
  [3, 17, 437, false, 'u'],
  [3, 17, 437, true, 'drift'],
  [5, 3, 4099, false, 'shift'],
  [2, 8, 16387, false, 'drift'],
  [2, 8, 16387, true, 'u'],
  [2, 3, 50001, false, 'nonfinite'],
  [4, 19, 3449, true, 'nonfinite'],
  [2100, 35, 1, true, 'drift'],
  [8, 16, 16384, false, 'u'],
  [8, 16, 16384, true, 'u'],
  [4, 32, 24577, false, 'shift'],
  [4, 32, 24577, true, 'u'],
];
const THREADS = [1, 2, 3];

function child() {
  const require = createRequire(import.meta.url);
  /** @type {Addon} */
  const addon = require(addonPath);
  const isa = addon.info().isa;
  if (isa !== process.env.BATCHNORM_ISA) throw new Error(`asked for ${process.env.BATCHNORM_ISA}, got ${isa}`);
  const hash = createHash('sha256');
  /**
   * @param {string} label
   * @param {Array<FloatArray | null>} arrays
   */
  const put = (label, arrays) => {
    hash.update(label);
    for (const a of arrays) if (a) hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  };
  for (const Arr of /** @type {FloatArrayConstructor[]} */ ([Float32Array, Float64Array])) {
    for (const [N, C, S, last, kind] of SHAPES) {
      const n = N * C * S;
      let seed = 12345 + n + C;
      const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
      const chan = (/** @type {number} */ i) => (last ? i % C : Math.floor(i / S) % C);
      const sample = (/** @type {number} */ i) => Math.floor(i / (C * S));
      // One element past the start of its buffer: outputs off vector alignment.
      const make = (/** @type {number} */ len, off = 0) => new Arr(len + off).subarray(off);
      const x = make(n);
      for (let i = 0; i < n; i++) {
        const r = rand();
        x[i] = kind === 'shift' ? 100 + (r - 0.5) * 0.02 * (1 + chan(i)) : kind === 'drift' ? sample(i) * 3.7 + r * (1 + (chan(i) % 3)) : r * 2 + 1;
      }
      if (kind === 'nonfinite') {
        for (const [c, v] of [
          [0, Infinity],
          [1, -Infinity],
          [1 % C, Infinity],
          [2 % C, NaN],
        ]) {
          const i = last ? 3 * C + c : (1 * C + c) * S + 2;
          x[i] = v;
        }
        if (C > 3) x[last ? C + 3 : 3 * S] = 1e36; // a float32 sum that overflows
      }
      const dy = make(n);
      for (let i = 0; i < n; i++) dy[i] = rand() * 2 - 1 + (kind === 'shift' ? 0.5 : 0);
      const per = (/** @type {(c: number) => number} */ f) => Arr.from({ length: C }, (_, c) => f(c));
      const weight = per((c) => 0.5 + 0.1 * c - (c % 4 === 3 ? 1.7 : 0)),
        bias = per((c) => 0.25 - 0.05 * c);
      for (const threads of THREADS) {
        addon.setNumThreads(threads);
        const tag = `${Arr.name} ${N},${C},${S} ${last ? 'nhwc' : 'nchw'} t${threads}`;
        let k = 0;
        const variants = [
          { w: weight, b: bias, running: true, unbiased: true, inPlace: false },
          { w: null, b: null, running: true, unbiased: false, inPlace: false },
          { w: weight, b: null, running: false, unbiased: true, inPlace: n < 1 << 20 },
        ];
        /** @type {{ sm: FloatArray, si: FloatArray, rm: FloatArray | null, rv: FloatArray | null } | undefined} */
        let saved;
        for (const v of variants) {
          const xin = v.inPlace ? Arr.from(x) : x;
          const y = v.inPlace ? xin : make(n, 1);
          const rm = v.running ? per((c) => 0.1 * c) : null,
            rv = v.running ? per((c) => 1 + 0.2 * c) : null;
          const sm = make(C),
            si = make(C);
          addon.forwardTraining(xin, y, v.w, v.b, rm, rv, sm, si, N, C, S, last, 1e-5, 0.1, v.unbiased);
          put(`${tag} ft${k++}`, [y, rm, rv, sm, si]);
          saved ??= { sm, si, rm, rv };
        }
        if (!saved?.rm || !saved.rv) throw new Error('the first variant keeps running statistics: forward-eval reads them');
        for (const [w, b] of [
          [weight, bias],
          [null, null],
        ]) {
          const y = make(n, 1);
          addon.forwardEval(x, y, w, b, saved.rm, saved.rv, N, C, S, last, 1e-3);
          put(`${tag} fe${k++}`, [y]);
        }
        /** @type {Array<[batch: boolean, w: FloatArray | null, grads: boolean, withDx: boolean]>} */
        const backwards = [
          [true, weight, true, true],
          [false, weight, true, true],
          [true, null, true, true],
          [true, weight, false, true],
          [true, weight, true, false],
          [false, null, false, true],
        ];
        for (const [batch, w, grads, withDx] of backwards) {
          const dx = withDx ? make(n, 1) : null,
            gw = grads ? make(C) : null,
            gb = grads ? make(C) : null;
          addon.backward(x, dy, dx, w, saved.sm, saved.si, gw, gb, N, C, S, last, batch);
          put(`${tag} bw${k++}`, [dx, gw, gb]);
        }
      }
    }
  }
  process.stdout.write(hash.digest('hex') + '\n');
}

function main() {
  const require = createRequire(import.meta.url);
  const isas = require(addonPath).info().capabilities;
  const all = createHash('sha256');
  for (const isa of isas) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), addonPath], {
      env: { ...process.env, BATCHNORM_ISA: isa, HASH_OUTPUTS_CHILD: '1' },
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) throw new Error(`${isa}: ${r.stderr}`);
    const h = r.stdout.trim();
    console.log(`${isa.padEnd(7)} ${h}`);
    all.update(`${isa} ${h}\n`);
  }
  console.log(`all     ${all.digest('hex')}  (${isas.join(', ')}; ${SHAPES.length} shapes x float32/float64 x threads ${THREADS.join(',')})`);
}

if (process.env.HASH_OUTPUTS_CHILD) child();
else main();
