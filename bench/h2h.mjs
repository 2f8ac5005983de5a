#!/usr/bin/env node
// Head to head: the package against its fastest peer on the issue's rows,
// in alternating rounds. A full `run.mjs` measures every peer minutes after
// the package, so on a shared host a row can swing 2x between them; here
// each round runs the package's row and every peer's same row back to back
// (the package first in even rounds, last in odd ones), and the verdict is
// the median over rounds of (fastest peer's time ÷ the package's time).
//
//   node bench/h2h.mjs                      # the issue's six NCHW rows, all cores, 7 rounds
//   node bench/h2h.mjs --rounds 11 --threads 1 --filter 64x16
//
// The package: bench/lib/worker.mjs (functional API, benchmark.js, as run.mjs);
// peers: the harnesses of bench/peers/ (oneDNN in the same layout and in
// nChw16c, PyTorch's default dispatch and its AVX-512 kernels), as run.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ONEDNN_HARNESS, PYTHON, SHAPES, harnessCommand, lastJsonLine, median, parseCommandLine, rowKey } from './lib/common.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');

/** The rows of the issue's performance table (NCHW; (N, C) for the 1-d shape). */
/** @type {Array<[string, import('./lib/common.mjs').Op]>} */
const ISSUE_ROWS = [
  ['32x64x56x56', 'forward-training'],
  ['32x64x56x56', 'forward-eval'],
  ['32x64x56x56', 'backward'],
  ['32x256x14x14', 'forward-training'],
  ['256x512', 'forward-training'],
  ['64x16x8x8', 'forward-training'],
];

const HELP = `usage: node bench/h2h.mjs [options]
  --rounds K       rounds per row (default 7)
  --threads T      threads for every side (default: os.availableParallelism())
  --isa I          the package's ISA (default: the best the CPU has)
  --filter REGEX   only rows whose shape/op matches, e.g. '32x64x56x56/backward'
  --cold           caches evicted before each timed call (as run.mjs --cold)
  --json FILE      write every round's times`;

const args = parseCommandLine(
  {
    defaults: { rounds: '7', cold: false, help: false },
    flags: ['cold', 'help'],
    options: ['rounds', 'threads', 'isa', 'filter', 'json'],
  },
  HELP,
);
const rounds = Number(args.rounds);
const threads = Number(args.threads ?? os.availableParallelism());
if (!(Number.isInteger(rounds) && rounds >= 1 && Number.isInteger(threads) && threads >= 1)) {
  console.error(`--rounds and --threads take positive integers (got ${args.rounds}, ${args.threads})\n\n${HELP}`);
  process.exit(2);
}
const filterRe = args.filter ? new RegExp(args.filter) : null;
const cold = args.cold;
const note = (/** @type {string} */ s) => process.stderr.write(`${s}\n`);

/**
 * Runs a child to completion; its last JSON line.
 * @param {string} cmd
 * @param {string[]} argv
 * @param {Record<string, string>} env
 */
function run(cmd, argv, env = {}) {
  const r = spawnSync(cmd, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: exit ${r.status}${r.error ? ` (${r.error.message})` : ''}`);
  return lastJsonLine(r.stdout);
}

const probe = run(process.execPath, [join(HERE, 'lib', 'worker.mjs'), '--probe'], { BATCHNORM_BACKEND: 'native' });
const isa = args.isa ?? probe.capabilities[probe.capabilities.length - 1];
if (!probe.capabilities.includes(isa)) {
  console.error(`--isa ${isa}: this CPU runs ${probe.capabilities.join(', ')}`);
  process.exit(2);
}

/**
 * The peers to race: those installed (bench/peers/setup.sh).
 * @type {Array<{ label: string, impl: string, blocked?: boolean, env: Record<string, string> }>}
 */
const peers = [];
if (existsSync(ONEDNN_HARNESS)) peers.push({ label: 'oneDNN', impl: 'onednn', env: {} }, { label: 'oneDNN nChw16c', impl: 'onednn', blocked: true, env: {} });
if (spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) {
  peers.push({ label: 'PyTorch', impl: 'pytorch', env: {} });
  if (/\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8')))
    peers.push({ label: 'PyTorch avx512', impl: 'pytorch', env: { ATEN_CPU_CAPABILITY: 'avx512' } });
}
if (!peers.length) {
  console.error('no peer installed: run bash bench/peers/setup.sh');
  process.exit(2);
}

/**
 * The package's median time of one row, in a child (bench/lib/worker.mjs).
 * @param {string} shape
 * @param {import('./lib/common.mjs').Op} op
 * @param {import('./lib/common.mjs').Layout} layout
 * @returns {number}
 */
function oursMs(shape, op, layout) {
  const key = rowKey({ impl: 'native', isa, threads, api: 'functional', op, shape, layout });
  const cfg = { threads: [threads], filter: `^${key}$`, cold, coldIters: 20, bench: { minSamples: 10, maxTime: 0.5, minTime: 0.05 } };
  const rows = run(process.execPath, [join(HERE, 'lib', 'worker.mjs'), JSON.stringify(cfg)], { BATCHNORM_BACKEND: 'native', BATCHNORM_ISA: isa }).rows;
  if (rows.length !== 1) throw new Error(`worker: expected the row ${key}, got ${rows.length} rows`);
  return rows[0].medianMs;
}

/**
 * A peer's median time of the same row, in its harness.
 * @param {typeof peers[number]} p
 * @param {number[]} dims
 * @param {import('./lib/common.mjs').Op} op
 * @param {import('./lib/common.mjs').Layout} layout
 * @returns {number}
 */
function peerMs(p, dims, op, layout) {
  const r = { impl: p.impl, threads, op, dims, layout: p.blocked ? 'nchw16c' : layout };
  return run(...harnessCommand(r, { iters: 30, warmup: 5, cold }), p.env).median_ms;
}

const fmt = (/** @type {number} */ ms) => (ms < 0.1 ? ms.toFixed(4) : ms.toFixed(3));
/** @type {any[]} */
const results = [];
note(
  `head to head: native/${isa}, ${threads} thread${threads > 1 ? 's' : ''}, ${cold ? 'cold' : 'hot'}, ${rounds} rounds; peers ${peers.map((p) => p.label).join(', ')}`,
);
for (const [shape, op] of ISSUE_ROWS) {
  if (filterRe && !filterRe.test(`${shape}/${op}`)) continue;
  const dims = /** @type {(typeof SHAPES)[number]} */ (SHAPES.find((s) => s.id === shape)).dims;
  const layout = dims.length === 2 ? 'nc' : 'nchw';
  const racers = peers.filter((p) => !(p.blocked && dims.length !== 4));
  /** @type {Array<{ ours: number, peers: Record<string, number>, best: string, ratio: number }>} */
  const perRound = [];
  for (let k = 0; k < rounds; k++) {
    /** @type {Record<string, number>} */
    const peerTimes = {};
    const racePeers = () => racers.forEach((p) => (peerTimes[p.label] = peerMs(p, dims, op, layout)));
    let ours = 0;
    if (k % 2 === 0) ((ours = oursMs(shape, op, layout)), racePeers());
    else (racePeers(), (ours = oursMs(shape, op, layout)));
    const [bestLabel, bestMs] = Object.entries(peerTimes).sort((a, b) => a[1] - b[1])[0];
    perRound.push({ ours, peers: peerTimes, best: bestLabel, ratio: bestMs / ours });
    note(`  ${shape} ${op} round ${k + 1}: batchnorm ${fmt(ours)} ms, best peer ${bestLabel} ${fmt(bestMs)} ms, ratio ${(bestMs / ours).toFixed(2)}`);
  }
  const ratios = perRound.map((r) => r.ratio);
  const peerMedians = Object.fromEntries(racers.map((p) => [p.label, median(perRound.map((r) => r.peers[p.label]))]));
  results.push({
    shape,
    op,
    layout,
    oursMs: median(perRound.map((r) => r.ours)),
    peerMs: peerMedians,
    ratio: median(ratios),
    ratioMin: Math.min(...ratios),
    ratioMax: Math.max(...ratios),
    wins: ratios.filter((x) => x > 1).length,
    rounds: perRound,
  });
}

console.log(
  `\nnative/${isa}, ${threads} thread${threads > 1 ? 's' : ''}, ${cold ? 'cold' : 'hot'}, ${rounds} alternating rounds; medians in ms; ratio = fastest peer's time ÷ batchnorm's, per round (> 1: batchnorm faster)\n`,
);
console.log(`| row | batchnorm | ${peers.map((p) => p.label).join(' | ')} | ratio, median (range) | rounds won |`);
console.log(`|---|---|${peers.map(() => '---').join('|')}|---|---|`);
for (const r of results)
  console.log(
    `| ${r.shape} ${r.op} | ${fmt(r.oursMs)} | ${peers.map((p) => (r.peerMs[p.label] === undefined ? '—' : fmt(r.peerMs[p.label]))).join(' | ')} | ${r.ratio.toFixed(2)} (${r.ratioMin.toFixed(2)}–${r.ratioMax.toFixed(2)}) | ${r.wins}/${rounds} |`,
  );
if (args.json)
  writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), isa, threads, cold, rounds, loadavg: os.loadavg(), results }, null, 2) + '\n');
