#!/usr/bin/env node
// The norms beside BatchNorm (issue 20's rows): LayerNorm, RMSNorm, GroupNorm
// and InstanceNorm2d, forward (training statistics) and backward, native per
// thread count vs the pure-JS path, hot or --cold (caches evicted before each
// timed call), against this machine's copy bandwidth.
//
//   node bench/norms.mjs [--cold] [--json FILE] [--filter REGEX] [--threads 1,2] [--iters N] [--rounds R] [--no-js] [--no-wasm] [--peers]
//
// One child process per backend (the package chooses it once per process):
// `BATCHNORM_BACKEND=native|wasm|js node bench/norms.mjs --worker '{...}'`;
// --rounds R alternates them R times and reports the median of the rounds
// (bench/lib/norm-rows.mjs, which `npm run bench` uses too). Each
// row times the functional form with `out` (no allocation of the output):
// the median of N calls after 2 warm-ups. Needs dist/ (npx tsc -p tsconfig.json).
// --peers adds PyTorch 1.13 (bench/peers/torch_norms.py, Debian's python3-torch;
// hot caches only) per thread count.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { copyBandwidth } from './lib/copybw.mjs';
import { fillUniform, makeEvictor, median, parseCommandLine, timeCallsSync } from './lib/common.mjs';
import { deriveNormColumns, formatNormRows, normRows } from './lib/norm-rows.mjs';

/**
 * @typedef {{ norm: 'layerNorm' | 'rmsNorm' | 'groupNorm' | 'instanceNorm', shape: number[], arg: number }} NormRow
 * @typedef {{ cold: boolean, filter?: string, threads: number[], iters: number }} Config
 * @typedef {{ key: string, impl: string, norm: string, op: string, shape: number[], threads: number, medianMs: number, minMs?: number, iters?: number, gbps?: number, mode?: string, note?: string }} Row
 */

/** Rows: the norm, PyTorch's shape, the norm's own argument (normalized size, groups; 0 for InstanceNorm). @type {NormRow[]} */
export const NORM_ROWS = [
  { norm: 'layerNorm', shape: [4096, 768], arg: 768 },
  { norm: 'layerNorm', shape: [4096, 4096], arg: 4096 },
  { norm: 'layerNorm', shape: [64, 64], arg: 64 },
  // Two long rows: fewer rows than threads, each split across the pool (groupnorm.h's forward_split, backward_split).
  { norm: 'layerNorm', shape: [2, 1 << 22], arg: 1 << 22 },
  { norm: 'rmsNorm', shape: [4096, 4096], arg: 4096 },
  { norm: 'groupNorm', shape: [32, 64, 56, 56], arg: 32 },
  { norm: 'groupNorm', shape: [8, 256, 28, 28], arg: 32 },
  { norm: 'instanceNorm', shape: [8, 32, 128, 128], arg: 0 },
];
// Bytes a pass must move per element: forward reads x and writes y, backward reads x and dy and writes dx.
/** @param {string} op */
const bytesPerElement = (op) => (op === 'forward' ? 8 : 12);

const HELP = `usage: node bench/norms.mjs [--cold] [--json FILE] [--filter REGEX] [--threads 1,2] [--iters N] [--rounds R] [--no-js] [--no-wasm] [--peers]`;

/**
 * The forward and backward calls of one row, on fixed tensors, through the functional forms with `out`.
 * @param {typeof import('batchnorm')} lib
 * @param {NormRow} row
 * @returns {{ forward: () => unknown, backward: () => unknown }}
 */
function calls(lib, row) {
  const n = row.shape.reduce((a, b) => a * b, 1);
  const C = row.norm === 'layerNorm' || row.norm === 'rmsNorm' ? row.shape[row.shape.length - 1] : row.shape[1];
  const X = { data: fillUniform(new Float32Array(n), 1), shape: row.shape };
  const DY = { data: fillUniform(new Float32Array(n), 2, -1, 1), shape: row.shape };
  const y = new Float32Array(n),
    dx = new Float32Array(n);
  const weight = fillUniform(new Float32Array(C), 3, -1.5, 1.5),
    bias = fillUniform(new Float32Array(C), 4, -1, 1);
  if (row.norm === 'layerNorm') {
    const f = lib.layerNorm(X, row.arg, { weight, bias, out: y });
    return {
      forward: () => lib.layerNorm(X, row.arg, { weight, bias, out: y }),
      backward: () => lib.layerNormBackward(DY, X, row.arg, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd, out: dx }),
    };
  }
  if (row.norm === 'rmsNorm') {
    const f = lib.rmsNorm(X, row.arg, { weight, out: y });
    return {
      forward: () => lib.rmsNorm(X, row.arg, { weight, out: y }),
      backward: () => lib.rmsNormBackward(DY, X, row.arg, { weight, saveInvstd: f.saveInvstd, out: dx }),
    };
  }
  if (row.norm === 'groupNorm') {
    const f = lib.groupNorm(X, row.arg, { weight, bias, out: y });
    return {
      forward: () => lib.groupNorm(X, row.arg, { weight, bias, out: y }),
      backward: () => lib.groupNormBackward(DY, X, row.arg, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd, out: dx }),
    };
  }
  const f = lib.instanceNorm(X, null, null, { weight, bias, out: y });
  return {
    forward: () => lib.instanceNorm(X, null, null, { weight, bias, out: y }),
    backward: () => lib.instanceNormBackward(DY, X, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd, out: dx }),
  };
}

/** @param {Config} cfg */
async function worker(cfg) {
  const lib = await import('batchnorm');
  const info = lib.backendInfo();
  const evict = cfg.cold ? makeEvictor() : null;
  const filter = cfg.filter ? new RegExp(cfg.filter) : null;
  const threads = info.backend === 'native' ? cfg.threads : [1];
  /** @type {Row[]} */
  const out = [];
  for (const row of NORM_ROWS) {
    const fns = calls(lib, row),
      n = row.shape.reduce((a, b) => a * b, 1);
    for (const op of /** @type {const} */ (['forward', 'backward'])) {
      const key = `${info.backend}/${row.norm}/${op}/${row.shape.join('x')}`;
      if (filter && !filter.test(key)) continue;
      for (const t of threads) {
        lib.setNumThreads(t);
        // The JS path on the large rows takes 50-300 ms a call: fewer calls.
        const iters = /** @type {number} */ (info.backend === 'native' ? cfg.iters : Math.max(3, Math.min(cfg.iters, Math.round(2e7 / n))));
        const ms = timeCallsSync(fns[op], { iters, warmup: 2, cold: !!evict, evict: () => (evict ? evict(t) : 0) });
        const medianMs = median(ms);
        out.push({
          key: `${key}/t${t}`,
          impl: info.backend,
          norm: row.norm,
          op,
          shape: row.shape,
          threads: t,
          medianMs,
          minMs: Math.min(...ms),
          iters: iters ?? 0,
          gbps: (n * bytesPerElement(op)) / medianMs / 1e6,
          mode: evict ? 'cold' : 'hot',
        });
        process.stderr.write(`  ${key}/t${t}  ${medianMs.toFixed(3)} ms\n`);
      }
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

async function main() {
  const args = parseCommandLine(
    {
      defaults: { cold: false, js: true, wasm: true, peers: false, help: false },
      flags: ['cold', 'js', 'wasm', 'peers', 'help'],
      options: ['json', 'filter', 'threads', 'iters', 'rounds'],
    },
    HELP,
  );
  const N = os.availableParallelism();
  const cfg = {
    cold: args.cold,
    filter: args.filter,
    threads: args.threads ? args.threads.split(',').map(Number) : [...new Set([1, N])],
    iters: Number(args.iters ?? 15),
    rounds: Math.max(1, Number(args.rounds ?? 1) | 0),
    peers: args.peers,
    backends: ['native', ...(args.wasm ? ['wasm'] : []), ...(args.js ? ['js'] : [])],
  };
  /** @type {Record<number, { gbps: number }>} */
  const copy = {};
  for (const t of cfg.threads) copy[t] = await copyBandwidth({ threads: t });
  const { rows, skipped } = normRows(cfg);
  deriveNormColumns(rows, copy);
  process.stdout.write(
    `${formatNormRows(rows)}\n\ncopy bandwidth: ${Object.entries(copy)
      .map(([t, c]) => `${t} thread${t === '1' ? '' : 's'} ${c.gbps.toFixed(1)} GB/s`)
      .join(', ')} (${cfg.cold ? 'cold' : 'hot'} caches, ${cfg.rounds} round${cfg.rounds > 1 ? 's' : ''})\n`,
  );
  for (const s of skipped) process.stdout.write(`skipped ${s.impl}: ${s.reason}\n`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ when: new Date().toISOString(), cfg, copy, skipped, rows }, null, 1));
}

if (process.argv[2] === '--worker') await worker(JSON.parse(process.argv[3]));
else await main();
