#!/usr/bin/env node
// The norms beside BatchNorm (issue 20's rows): LayerNorm, RMSNorm, GroupNorm
// and InstanceNorm2d, forward (training statistics) and backward, native per
// thread count vs the pure-JS path, hot or --cold (caches evicted before each
// timed call), against this machine's copy bandwidth.
//
//   node bench/norms.mjs [--cold] [--json FILE] [--filter REGEX] [--threads 1,2] [--iters N] [--no-js] [--peers]
//
// One child process per backend (the package chooses it once per process):
// `BATCHNORM_BACKEND=native|js node bench/norms.mjs --worker '{...}'`. Each
// row times the functional form with `out` (no allocation of the output):
// the median of N calls after 2 warm-ups. Needs dist/ (npx tsc -p tsconfig.json).
// --peers adds PyTorch 1.13 (bench/peers/torch_norms.py, Debian's python3-torch;
// hot caches only) per thread count.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { copyBandwidth } from './copybw.mjs';
import { PYTHON, fillUniform, makeEvictor, median, parseCommandLine, timeCallsSync } from './common.mjs';

/** Rows: name, op family, shape (PyTorch's), the norm's own argument. */
export const NORM_ROWS = [
  { norm: 'layerNorm', shape: [4096, 768], arg: [768] },
  { norm: 'layerNorm', shape: [4096, 4096], arg: [4096] },
  { norm: 'layerNorm', shape: [64, 64], arg: [64] },
  { norm: 'rmsNorm', shape: [4096, 4096], arg: [4096] },
  { norm: 'groupNorm', shape: [32, 64, 56, 56], arg: 32 },
  { norm: 'groupNorm', shape: [8, 256, 28, 28], arg: 32 },
  { norm: 'instanceNorm', shape: [8, 32, 128, 128], arg: null },
];
// Bytes a pass must move per element: forward reads x and writes y, backward reads x and dy and writes dx.
const BYTES = { forward: 8, backward: 12 };

const HELP = `usage: node bench/norms.mjs [--cold] [--json FILE] [--filter REGEX] [--threads 1,2] [--iters N] [--no-js] [--peers]`;

async function worker(cfg) {
  const lib = await import('batchnorm');
  const info = lib.backendInfo();
  const evict = cfg.cold ? makeEvictor() : null;
  const filter = cfg.filter ? new RegExp(cfg.filter) : null;
  const threads = info.backend === 'js' ? [1] : cfg.threads;
  const out = [];
  for (const row of NORM_ROWS) {
    for (const op of ['forward', 'backward']) {
      const key = `${info.backend}/${row.norm}/${op}/${row.shape.join('x')}`;
      if (filter && !filter.test(key)) continue;
      const n = row.shape.reduce((a, b) => a * b, 1), C = row.norm === 'layerNorm' || row.norm === 'rmsNorm' ? row.shape.at(-1) : row.shape[1];
      const X = { data: fillUniform(new Float32Array(n), 1), shape: row.shape }, DY = { data: fillUniform(new Float32Array(n), 2, -1, 1), shape: row.shape };
      const y = new Float32Array(n), dx = new Float32Array(n);
      const weight = fillUniform(new Float32Array(C), 3, -1.5, 1.5), bias = fillUniform(new Float32Array(C), 4, -1, 1);
      const forward = {
        layerNorm: () => lib.layerNorm(X, row.arg, { weight, bias, out: y }),
        rmsNorm: () => lib.rmsNorm(X, row.arg, { weight, out: y }),
        groupNorm: () => lib.groupNorm(X, row.arg, { weight, bias, out: y }),
        instanceNorm: () => lib.instanceNorm(X, null, null, { weight, bias, out: y }),
      }[row.norm];
      const f = forward();
      const backward = {
        layerNorm: () => lib.layerNormBackward(DY, X, row.arg, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd, out: dx }),
        rmsNorm: () => lib.rmsNormBackward(DY, X, row.arg, { weight, saveInvstd: f.saveInvstd, out: dx }),
        groupNorm: () => lib.groupNormBackward(DY, X, row.arg, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd, out: dx }),
        instanceNorm: () => lib.instanceNormBackward(DY, X, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd, out: dx }),
      }[row.norm];
      const fn = op === 'forward' ? forward : backward;
      for (const t of threads) {
        lib.setNumThreads(t);
        // The JS path on the large rows takes 50-300 ms a call: fewer calls.
        const iters = info.backend === 'js' ? Math.max(3, Math.min(cfg.iters, Math.round(2e7 / n))) : cfg.iters;
        const ms = timeCallsSync(fn, { iters, warmup: 2, cold: !!evict, evict: () => evict(t) });
        const medianMs = median(ms);
        out.push({ key: `${key}/t${t}`, impl: info.backend, isa: info.isa, norm: row.norm, op, shape: row.shape, threads: t, medianMs, minMs: Math.min(...ms), iters,
          gbps: (n * BYTES[op]) / medianMs / 1e6, mode: evict ? 'cold' : 'hot' });
        process.stderr.write(`  ${key}/t${t}  ${medianMs.toFixed(3)} ms\n`);
      }
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

async function main() {
  const args = parseCommandLine({ defaults: { cold: false, js: true, peers: false, help: false }, flags: ['cold', 'js', 'peers', 'help'], options: ['json', 'filter', 'threads', 'iters'] }, HELP);
  const N = os.availableParallelism();
  const cfg = { cold: args.cold, filter: args.filter, threads: args.threads ? args.threads.split(',').map(Number) : [...new Set([1, N])], iters: Number(args.iters ?? 15) };
  const rows = [];
  for (const backend of args.js ? ['native', 'js'] : ['native']) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--worker', JSON.stringify(cfg)], {
      env: { ...process.env, BATCHNORM_BACKEND: backend }, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20,
    });
    if (r.status !== 0) throw new Error(`the ${backend} worker failed (status ${r.status})`);
    rows.push(...JSON.parse(r.stdout.trim().split('\n').at(-1)));
  }
  if (args.peers)
    for (const t of cfg.threads) {
      const torchFilter = cfg.filter ? ['--filter', cfg.filter.replace(/^(native|js)\//, '')] : [];
      const r = spawnSync(PYTHON, [fileURLToPath(new URL('./peers/torch_norms.py', import.meta.url)), '--threads', String(t), '--iters', String(cfg.iters), ...torchFilter], {
        cwd: '/tmp', stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20,
      });
      if (r.status !== 0) process.stderr.write(`PyTorch harness failed (status ${r.status}); is python3-torch installed?\n`);
      else rows.push(...JSON.parse(r.stdout.trim().split('\n').at(-1)).rows);
    }
  const copy = {};
  for (const t of cfg.threads) copy[t] = await copyBandwidth({ threads: t });
  const js = new Map(rows.filter((r) => r.impl === 'js').map((r) => [`${r.norm}/${r.op}/${r.shape.join('x')}`, r]));
  const torch = new Map(rows.filter((r) => r.impl === 'pytorch').map((r) => [`${r.norm}/${r.op}/${r.shape.join('x')}/${r.threads}`, r]));
  const lines = ['| norm | op | shape | threads | native ms | GB/s | % of copy | JS ms | native / JS speed-up | PyTorch ms |', '|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows.filter((x) => x.impl === 'native')) {
    const j = js.get(`${r.norm}/${r.op}/${r.shape.join('x')}`), p = torch.get(`${r.norm}/${r.op}/${r.shape.join('x')}/${r.threads}`);
    const cbw = copy[r.threads]?.gbps ?? copy[r.threads];
    lines.push(`| ${r.norm} | ${r.op} | ${r.shape.join('×')} | ${r.threads} | ${r.medianMs.toFixed(3)} | ${r.gbps.toFixed(1)} | ${typeof cbw === 'number' ? ((100 * r.gbps) / cbw).toFixed(0) + '%' : '?'} | ${j ? j.medianMs.toFixed(2) : '–'} | ${j ? (j.medianMs / r.medianMs).toFixed(1) + '×' : '–'} | ${p ? p.medianMs.toFixed(3) + (p.note ? ' *' : '') : '–'} |`);
  }
  if (torch.size) lines.push('', '\\* PyTorch\'s backward of RMSNorm (composed) and InstanceNorm goes through autograd, its forward included.');
  process.stdout.write(`${lines.join('\n')}\n\ncopy bandwidth: ${JSON.stringify(copy)} (${cfg.cold ? 'cold' : 'hot'} caches)\n`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ when: new Date().toISOString(), cfg, copy, rows }, null, 1));
}

if (process.argv[2] === '--worker') await worker(JSON.parse(process.argv[3]));
else await main();
