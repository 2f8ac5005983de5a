#!/usr/bin/env node
// The benchmark driver: native (each ISA the CPU has) vs WebAssembly vs pure-JS vs the peers,
// side by side, against this machine's copy bandwidth. See bench/README.md.
//
//   node bench/run.mjs [--quick] [--cold] [--json FILE] [--filter REGEX]
//                      [--peers | --no-peers] [--isa avx2,avx512] [--threads 1,2]
//
// One child process per (backend, ISA) — the package chooses both once per
// process from BATCHNORM_BACKEND / BATCHNORM_ISA — running bench/lib/worker.mjs;
// one per Node peer (bench/lib/node-peers.mjs); one per row for the PyTorch and
// oneDNN harnesses of bench/peers/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyBandwidth } from './lib/copybw.mjs';
import { dataParallelRows, formatParallel } from './lib/parallel.mjs';
import { deriveNormColumns, formatNormRows, normRows } from './lib/norm-rows.mjs';
/**
 * @typedef {import('./lib/common.mjs').Row} Row
 * @typedef {{ gbps: number, bestGbps: number, medianMs: number, threads: number, bytesCopied: number, reps: number }} Copy
 */
import {
  ONEDNN_HARNESS as ONEDNN,
  PEERS,
  PYTHON as PY,
  TORCH_HARNESS as TORCH,
  harnessCommand,
  lastJsonLine,
  numel,
  packageRows,
  parseCommandLine,
  peerRows,
  rowKey,
  BYTES_PER_ELEMENT,
} from './lib/common.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');

const HELP = `usage: node bench/run.mjs [options]
  --quick            < 1 min: few samples, the best ISA, the wasm and JS paths only, no peers unless --peers
  --cold             evict caches (write 128 MiB, on the row's thread count) before each timed call (manual timing loop); default hot
  --json FILE        write the rows and the run's metadata as JSON
  --filter REGEX     only rows whose key matches, e.g. 'avx512/t2/.*/32x64x56x56/nchw'
                     key: impl/isa/tT/api/op/shape/layout  (impl: native wasm js pytorch onednn tfjs-wasm tfjs-cpu onnxruntime)
  --peers, --no-peers  run the peers (default: yes, except with --quick)
  --isa LIST         native ISAs to run (default: all the CPU has; --quick: the best)
  --threads LIST     thread counts (default: 1 and os.availableParallelism())
  --repeat K         K passes over everything; each row keeps its best pass (least disturbed)
  --wait-idle [S]    first wait (up to S seconds, default 900) until other processes use < 0.2 CPUs
  --no-parallel      skip the data-parallel rows (SyncBatchNorm training on 1 and 2 worker threads / MPI processes)
  --no-tfjs-dropin   skip the TF.js drop-in rows (bench/tfjs.mjs: tf.layers models on stock cpu vs batchnorm/tfjs vs wasm)
  --no-norms         skip the LayerNorm / RMSNorm / GroupNorm / InstanceNorm rows (bench/norms.mjs runs them alone)
  --help`;

const args = parseCommandLine(
  {
    defaults: { quick: false, cold: false, peers: undefined, parallel: true, 'tfjs-dropin': true, norms: true, help: false },
    flags: ['quick', 'cold', 'peers', 'parallel', 'tfjs-dropin', 'norms', 'help'],
    options: ['json', 'filter', 'isa', 'threads', 'repeat'],
    optionalValue: ['wait-idle'],
  },
  HELP,
);
const quick = args.quick;
const cold = args.cold;
const peersOn = args.peers ?? !quick;
const filterRe = args.filter ? new RegExp(args.filter) : null;
const N = os.availableParallelism();
/** @type {number[]} */
const threadCounts = args.threads ? args.threads.split(',').map(Number) : [...new Set([1, N])];
const started = Date.now();
const note = (/** @type {string} */ s) => process.stderr.write(`${s}\n`);
/** @type {Array<{ impl: string, key?: string, reason: string }>} */
const skipped = [];

// Sampling settings (benchmark.js, seconds) and iteration counts (manual loops).
const SETTINGS = quick
  ? {
      native: { minSamples: 5, maxTime: 0.08, minTime: 0.02 },
      js: { minSamples: 3, maxTime: 0.05, minTime: 0.02 },
      coldIters: { native: 5, js: 3 },
      peerIters: 10,
      peerWarmup: 2,
      tfjsIters: 3,
      slowIters: 1,
    }
  : {
      native: { minSamples: 10, maxTime: 0.75, minTime: 0.05 },
      js: { minSamples: 5, maxTime: 1, minTime: 0.05 },
      coldIters: { native: 20, js: 5 },
      peerIters: 30,
      peerWarmup: 5,
      tfjsIters: 10,
      slowIters: 2,
    };

/**
 * Runs a child to completion, its stderr passed through.
 * @param {string} cmd
 * @param {string[]} argv
 * @param {{ env?: Record<string, string>, input?: string }} [options]
 */
function run(cmd, argv, { env = {}, input } = {}) {
  const r = spawnSync(cmd, argv, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    input,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout ?? '', error: r.error };
}

// ---------------------------------------------------------------- machine

/** @param {string} p */
function readText(p) {
  try {
    return readFileSync(p, 'utf8').trim();
  } catch {
    return null;
  }
}

function machine() {
  const cpuinfo = readText('/proc/cpuinfo') ?? '';
  const flags = (cpuinfo.match(/^flags\s*:\s*(.*)$/m)?.[1] ?? '').split(/\s+/);
  /** @type {string[]} */
  const caches = [];
  const base = '/sys/devices/system/cpu/cpu0/cache';
  if (existsSync(base))
    for (const d of readdirSync(base)
      .filter((d) => d.startsWith('index'))
      .sort()) {
      const level = readText(join(base, d, 'level')),
        type = readText(join(base, d, 'type')),
        size = readText(join(base, d, 'size'));
      const shared = readText(join(base, d, 'shared_cpu_list'));
      caches.push(`L${level}${type === 'Data' ? 'd' : type === 'Instruction' ? 'i' : ''} ${size} (cpus ${shared})`);
    }
  const git = (/** @type {string[]} */ a) => spawnSync('git', a, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() || null;
  return {
    cpu: os.cpus()[0]?.model ?? '?',
    cpus: os.cpus().length,
    availableParallelism: N,
    cpuFamilyModel: `family ${cpuinfo.match(/^cpu family\s*:\s*(\d+)/m)?.[1]} model ${cpuinfo.match(/^model\s*:\s*(\d+)/m)?.[1]}`,
    simdFlags: flags.filter((f) => /^(avx|avx2|fma|avx512f|avx512bw|avx512vl|avx512dq|avx512_bf16|avx512_vnni)$/.test(f)),
    hypervisor: flags.includes('hypervisor'),
    caches,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: (readText('/etc/os-release')?.match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1] ?? os.type()) + `, Linux ${os.release()}`,
    node: process.version,
    v8: process.versions.v8,
    package: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
    commit: git(['rev-parse', 'HEAD']),
    dirty: !!git(['status', '--porcelain', '--untracked-files=no']),
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

/** CPUs busy (all processes, including steal) over `ms`, from /proc/stat. */
function cpuBusy(ms = 2000) {
  const read = () => {
    const f = (readText('/proc/stat') ?? '').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { total, idle: (f[3] ?? 0) + (f[4] ?? 0) };
  };
  const a = read();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const b = read();
  const dt = b.total - a.total;
  return dt > 0 ? +(((dt - (b.idle - a.idle)) / dt) * os.cpus().length).toFixed(2) : null;
}

// ---------------------------------------------------------------- package rows

/** @param {Record<string, string>} env */
function probePackage(env) {
  const r = run(process.execPath, [join(HERE, 'lib', 'worker.mjs'), '--probe'], { env });
  if (r.status !== 0) return null;
  return lastJsonLine(r.stdout);
}

/**
 * The package's rows of one (backend, ISA), in a child (bench/lib/worker.mjs).
 * @param {Record<string, string>} env
 * @param {string} label
 * @param {string} impl
 * @param {string} isa
 * @param {{ bench: object, coldIters: number }} opts
 * @returns {Row[]}
 */
function runWorker(env, label, impl, isa, opts) {
  const rows = packageRows(impl, isa, impl === 'native' ? threadCounts : [1]);
  if (!rows.some((r) => !filterRe || filterRe.test(rowKey(r)))) return [];
  note(`${label}: ${rows.filter((r) => !filterRe || filterRe.test(rowKey(r))).length} rows`);
  const cfg = { threads: threadCounts, filter: args.filter ?? null, cold, coldIters: opts.coldIters, bench: opts.bench };
  waitIdle();
  const r = run(process.execPath, [join(HERE, 'lib', 'worker.mjs'), JSON.stringify(cfg)], { env });
  if (r.status !== 0) {
    skipped.push({ impl: label, reason: `worker exited with ${r.status}` });
    return [];
  }
  return lastJsonLine(r.stdout).rows;
}

// ---------------------------------------------------------------- peers

/** @param {Record<string, string>} env */
function torchCapability(env) {
  const r = spawnSync(PY, ['-c', 'import torch; print(torch.__version__); print(torch.__config__.show())'], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  if (r.status !== 0) return null;
  return { version: r.stdout.split('\n')[0], capability: r.stdout.match(/CPU capability usage:\s*(\S+)/)?.[1]?.toLowerCase() ?? 'default' };
}

/**
 * A harness peer's rows (PyTorch, oneDNN), one child per row.
 * @param {string} impl
 * @param {string} isa
 * @param {Record<string, string>} env
 * @returns {Row[]}
 */
function runHarness(impl, isa, env) {
  const rows = peerRows(impl, isa, threadCounts).filter((r) => !filterRe || filterRe.test(rowKey(r)));
  if (!rows.length) return [];
  note(`${impl}/${isa}: ${rows.length} rows`);
  /** @type {Row[]} */
  const out = [];
  for (const r of rows) {
    waitIdle(300, 300);
    const res = run(...harnessCommand(r, { iters: SETTINGS.peerIters, warmup: SETTINGS.peerWarmup, cold }), { env });
    if (res.status !== 0) {
      note(`  [${impl}] ${rowKey(r)}: exit ${res.status} (skipped)`);
      skipped.push({ impl, key: rowKey(r), reason: `harness exit ${res.status}` });
      continue;
    }
    const j = lastJsonLine(res.stdout);
    const { dims, ...rest } = r;
    const isaDetail =
      impl === 'onednn'
        ? (j.notes
            .match(/impl (\S+), isa (\S+)/)
            ?.slice(1)
            .join(', ') ?? '')
        : `ATen ${isa}`;
    out.push({
      ...rest,
      key: rowKey(r),
      dims,
      elements: numel(dims),
      bytes: numel(dims) * BYTES_PER_ELEMENT[r.op],
      mode: cold ? 'cold' : 'hot',
      medianMs: j.median_ms,
      minMs: j.min_ms,
      samples: j.samples,
      callsPerSample: 1,
      method: cold ? 'harness, caches evicted before each call' : 'harness, each call timed',
      version: j.version,
      isaDetail,
      notes: j.notes,
    });
    note(`  [${impl}/${isa}] ${out.length}/${rows.length} ${rowKey(r)}  ${j.median_ms.toFixed(3)} ms`);
  }
  return out;
}

/**
 * A Node peer's rows (TF.js, onnxruntime-node), in a child (bench/lib/node-peers.mjs).
 * @param {string} impl
 * @returns {Row[]}
 */
function runNodePeer(impl) {
  const rows = peerRows(impl, 'auto', threadCounts).filter((r) => !filterRe || filterRe.test(rowKey(r)));
  if (!rows.length) return [];
  if (impl === 'tfjs-cpu' && quick) {
    skipped.push({ impl, reason: 'skipped with --quick (TF.js cpu backend: about 1000x slower)' });
    return [];
  }
  note(`${impl}: ${rows.length} rows`);
  const cfg = {
    impl,
    threads: threadCounts,
    iters: impl.startsWith('tfjs') ? SETTINGS.tfjsIters : SETTINGS.peerIters,
    warmup: SETTINGS.peerWarmup,
    slowIters: SETTINGS.slowIters,
    cold,
    filter: args.filter ?? null,
  };
  waitIdle();
  const r = run(process.execPath, [join(HERE, 'lib', 'node-peers.mjs'), JSON.stringify(cfg)]);
  if (r.status !== 0) {
    skipped.push({ impl, reason: `node-peers exited with ${r.status}` });
    return [];
  }
  const j = lastJsonLine(r.stdout);
  if (j.skipped) {
    note(`  [${impl}] skipped: ${j.skipped}`);
    skipped.push({ impl, reason: j.skipped });
    return [];
  }
  return j.rows;
}

// ---------------------------------------------------------------- main

/** @type {Record<string, any>} */
const meta = {
  date: new Date().toISOString(),
  command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  quick,
  cold,
  peers: peersOn,
  filter: args.filter ?? null,
  threadCounts,
  settings: SETTINGS,
  machine: machine(),
};
const waitIdleOn = args['wait-idle'] !== undefined;
const waitLimit = Number(args['wait-idle']) || 900;
meta.busyBeforeChildren = [];
/**
 * With --wait-idle: wait until other processes use < 0.2 CPUs (sampled over
 * sampleMs), at most `limit` seconds. Called before the run and before each child.
 */
function waitIdle(sampleMs = 500, limit = waitLimit) {
  if (!waitIdleOn) return;
  const t0 = Date.now();
  let busy = cpuBusy(sampleMs);
  while (busy !== null && busy >= 0.2) {
    if ((Date.now() - t0) / 1e3 > limit) {
      note(`still ${busy} CPUs busy after ${limit} s: going on`);
      break;
    }
    note(`waiting for an idle machine: ${busy} CPUs busy`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000);
    busy = cpuBusy(2000);
  }
  meta.busyBeforeChildren.push(busy);
}
waitIdle(2000);
meta.backgroundCpusStart = cpuBusy(1000);
note(`batchnorm bench: ${quick ? 'quick' : 'full'}, ${cold ? 'cold' : 'hot'} caches, threads ${threadCounts.join(',')}, peers ${peersOn ? 'on' : 'off'}`);

/**
 * @param {string} when
 * @returns {Promise<Record<number, Copy>>}
 */
async function copyAll(when) {
  /** @type {Record<number, Copy>} */
  const res = {};
  for (const t of threadCounts) {
    res[t] = await copyBandwidth({ threads: t, reps: quick ? 6 : 15 });
    note(`copy bandwidth (${when}), ${t} thread${t > 1 ? 's' : ''}: ${res[t].gbps.toFixed(1)} GB/s (best ${res[t].bestGbps.toFixed(1)})`);
  }
  return res;
}
const copyStart = await copyAll('start');

const repeat = Math.max(1, Number(args.repeat ?? 1) | 0);
const probe = probePackage({ BATCHNORM_BACKEND: 'native' });
/** @type {string[]} */
let isas = [];
if (!probe) {
  skipped.push({ impl: 'native', reason: 'the native addon does not load (build it: npm rebuild / node-gyp rebuild)' });
  note('native: the addon does not load; skipping the native rows');
} else {
  meta.capabilities = probe.capabilities;
  isas = args.isa ? args.isa.split(',') : quick ? [probe.capabilities[probe.capabilities.length - 1]] : probe.capabilities;
  for (const isa of isas.filter((i) => !probe.capabilities.includes(i)))
    skipped.push({ impl: `native/${isa}`, reason: `not among this CPU's capabilities (${probe.capabilities.join(', ')})` });
  isas = isas.filter((i) => probe.capabilities.includes(i));
}
const wasmProbe = probePackage({ BATCHNORM_BACKEND: 'wasm' });
if (!wasmProbe) skipped.push({ impl: 'wasm', reason: 'the WebAssembly kernels do not load (build them: npm run build:wasm)' });
const torchDefault = peersOn && existsSync(TORCH) ? torchCapability({}) : null;
const torchAvx512 =
  torchDefault &&
  !quick &&
  torchDefault.capability !== 'avx512' &&
  /\bavx512f\b/.test(readText('/proc/cpuinfo') ?? '') &&
  torchCapability({ ATEN_CPU_CAPABILITY: 'avx512' })?.capability === 'avx512';
if (peersOn) {
  if (!torchDefault) skipped.push({ impl: 'pytorch', reason: `${PY} cannot import torch (run: bash bench/peers/setup.sh)` });
  if (!existsSync(ONEDNN)) skipped.push({ impl: 'onednn', reason: `${ONEDNN} not built (run: bash bench/peers/setup.sh)` });
} else skipped.push({ impl: 'peers', reason: quick ? 'not run with --quick (add --peers)' : 'not run (--no-peers)' });

/** One pass over every configuration. `first`: also the slow ones run only once (TF.js cpu). */
function pass(/** @type {boolean} */ first) {
  /** @type {Row[]} */
  const rows = [];
  for (const isa of isas)
    rows.push(
      ...runWorker({ BATCHNORM_BACKEND: 'native', BATCHNORM_ISA: isa }, `native/${isa}`, 'native', isa, {
        bench: SETTINGS.native,
        coldIters: SETTINGS.coldIters.native,
      }),
    );
  // The WebAssembly path (one thread) when wasm/batchnorm.wasm is built (npm run build:wasm).
  if (wasmProbe)
    rows.push(
      ...runWorker({ BATCHNORM_BACKEND: 'wasm' }, 'wasm', 'wasm', wasmProbe.info.isa, { bench: SETTINGS.native, coldIters: SETTINGS.coldIters.native }),
    );
  rows.push(...runWorker({ BATCHNORM_BACKEND: 'js' }, 'js', 'js', 'js', { bench: SETTINGS.js, coldIters: SETTINGS.coldIters.js }));
  if (!peersOn) return rows;
  // PyTorch: its default dispatch (AVX2 on this CPU) and, in a full run, its AVX-512 kernels.
  if (torchDefault) rows.push(...runHarness('pytorch', torchDefault.capability, {}));
  if (torchAvx512) rows.push(...runHarness('pytorch', 'avx512', { ATEN_CPU_CAPABILITY: 'avx512' }));
  if (existsSync(ONEDNN)) rows.push(...runHarness('onednn', 'auto', {}));
  for (const impl of Object.keys(PEERS).filter((p) => PEERS[p].runner === 'node' && (first || p !== 'tfjs-cpu'))) rows.push(...runNodePeer(impl));
  return rows;
}

/**
 * --repeat K: K passes over everything; each row keeps the pass with the lowest
 * median (the least disturbed on a shared machine) and lists all of them in `passesMs`.
 */
/** @type {Map<string, Row>} */
const best = new Map();
for (let k = 0; k < repeat; k++) {
  if (repeat > 1) note(`pass ${k + 1} of ${repeat}`);
  for (const r of pass(k === 0)) {
    const prev = best.get(r.key);
    const passesMs = [...(prev?.passesMs ?? []), r.medianMs];
    best.set(r.key, { ...(prev && prev.medianMs <= r.medianMs ? prev : r), passesMs });
  }
}
meta.repeat = repeat;
const rows = [...best.values()];

waitIdle();
const copyEnd = await copyAll('end');
meta.backgroundCpusEnd = cpuBusy(1000);
meta.loadavgEnd = os.loadavg().map((x) => +x.toFixed(2));

// ---------------------------------------------------------------- derived columns

/** The copy bandwidth per thread count: the higher of the start and end medians (the machine is shared). */
/** @type {Record<number, Copy & { startGbps: number, endGbps: number }>} */
const copy = {};
for (const t of threadCounts)
  copy[t] = { ...copyStart[t], gbps: Math.max(copyStart[t].gbps, copyEnd[t].gbps), startGbps: copyStart[t].gbps, endGbps: copyEnd[t].gbps };
const copyFor = (/** @type {number} */ t) => copy[t]?.gbps ?? copy[Math.max(...threadCounts.filter((x) => x <= t))]?.gbps;

const jsRow = new Map(rows.filter((r) => r.impl === 'js').map((r) => [`${r.api}/${r.op}/${r.shape}/${r.layout}`, r]));
for (const r of rows) {
  r.gbps = r.bytes / (r.medianMs / 1e3) / 1e9;
  r.pctCopy = (100 * r.gbps) / copyFor(r.threads);
  const api = r.impl === 'native' || r.impl === 'wasm' || r.impl === 'js' ? r.api : 'functional';
  const ref = jsRow.get(`${api}/${r.op}/${r.shape}/${r.layout === 'nchw16c' ? 'nchw' : r.layout}`);
  r.vsJs = ref ? ref.medianMs / r.medianMs : null;
}

// Table order: by shape, layout and op, then implementation.
const IMPL_ORDER = ['native', 'wasm', 'js', 'pytorch', 'onednn', 'onnxruntime', 'tfjs-wasm', 'tfjs-cpu'];
const ISA_RANK = (/** @type {string} */ isa) => {
  const i = ['scalar', 'avx2', 'avx512'].indexOf(isa);
  return i < 0 ? 9 : i;
};
const caseOrder = [...new Set(packageRows('x', 'x', [1]).map((r) => `${r.shape}/${r.layout}/${r.op}`))];
const ck = (/** @type {Row} */ r) => `${r.shape}/${r.layout === 'nchw16c' ? 'nchw' : r.layout}/${r.op}`;
rows.sort(
  (a, b) =>
    caseOrder.indexOf(ck(a)) - caseOrder.indexOf(ck(b)) ||
    IMPL_ORDER.indexOf(a.impl) - IMPL_ORDER.indexOf(b.impl) ||
    ISA_RANK(a.isa) - ISA_RANK(b.isa) ||
    a.threads - b.threads ||
    a.layout.localeCompare(b.layout) ||
    a.api.localeCompare(b.api),
);

// ---------------------------------------------------------------- output

/** @param {Row[]} rows */
function formatTable(rows) {
  const head = ['impl', 'api', 'isa', 'thr', 'op', 'shape', 'layout', 'median ms', 'GB/s', '% copy', '× vs JS'];
  const body = rows.map((r) => [
    r.impl,
    r.api,
    r.isa,
    String(r.threads),
    r.op,
    r.shape,
    r.layout,
    r.medianMs < 1 ? r.medianMs.toFixed(4) : r.medianMs.toFixed(3),
    r.gbps.toFixed(1),
    r.pctCopy.toFixed(0) + '%',
    r.vsJs == null ? '' : r.vsJs.toFixed(1) + '×',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const right = new Set([3, 7, 8, 9, 10]);
  const fmt = (/** @type {string[]} */ cells) => cells.map((c, i) => (right.has(i) ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ');
  const lines = [fmt(head), w.map((x) => '-'.repeat(x)).join('  ')];
  /** @type {string | null} */
  let prev = null;
  rows.forEach((r, i) => {
    if (prev !== null && ck(r) !== prev) lines.push('');
    prev = ck(r);
    lines.push(fmt(body[i]));
  });
  return lines.join('\n');
}

console.log(formatTable(rows));
console.log();
const parallel = args.parallel ? dataParallelRows({ quick }) : { rows: [], skipped: [{ impl: 'data-parallel', reason: 'not run (--no-parallel)' }] };
skipped.push(...parallel.skipped);
if (parallel.rows.length) {
  console.log("data-parallel training of the demo MLP (SyncBatchNorm, gradients all-reduced; comm: one layer's forward + backward communication, median):");
  console.log(formatParallel(parallel.rows));
  console.log();
}
// The training-loop row (bench/train-loop.mjs): a step as users write it, module API with default options vs the functional form with `out`.
const trainLoop = spawnSync(process.execPath, [join(HERE, 'train-loop.mjs'), '--json', ...(quick ? ['--steps', '500', '--rounds', '3'] : [])], {
  encoding: 'utf8',
  timeout: 900_000,
});
/** @type {{ ways: Record<string, { p50: number, p99: number, faultsPerStep: number }>, moduleOverOut: number } | null} */
const trainLoopRow = trainLoop.status === 0 ? lastJsonLine(trainLoop.stdout) : null;
if (trainLoopRow) {
  console.log('training loop (64,16,8,8), 1 thread, per step (forward, a sum over y, backward, a sum over dx), median of rounds:');
  for (const [way, r] of Object.entries(trainLoopRow.ways))
    console.log(`  ${way.padEnd(7)} p50 ${r.p50.toFixed(1)} us  p99 ${r.p99.toFixed(1)} us  page faults/step ${r.faultsPerStep.toFixed(1)}`);
  console.log(`  module ÷ out at p50: ${trainLoopRow.moduleOverOut.toFixed(2)}`);
  console.log();
} else skipped.push({ impl: 'train-loop', reason: `bench/train-loop.mjs failed: ${trainLoop.stderr.slice(-300)}` });
// The TF.js drop-in (batchnorm/tfjs): bench/tfjs.mjs in a child, its table as it prints it. With
// --quick only the layer rows: a training step of the CNN takes seconds per batch on stock TF.js cpu.
/** @type {unknown} */
let tfjsDropIn = null;
if (args['tfjs-dropin']) {
  const json = join(os.tmpdir(), `batchnorm-bench-tfjs-${process.pid}.json`);
  const tfjsArgs = [join(HERE, 'tfjs.mjs'), '--json', json, ...(quick ? ['--quick', '--rows', 'bn-train,bn-infer,ln-train,ln-infer'] : [])];
  note(`TF.js drop-in: bench/tfjs.mjs ${tfjsArgs.slice(3).join(' ')}`);
  waitIdle();
  const r = run(process.execPath, tfjsArgs);
  if (r.status !== 0) skipped.push({ impl: 'tfjs-dropin', reason: `bench/tfjs.mjs exited with ${r.status}` });
  else {
    console.log(`TF.js drop-in (batchnorm/tfjs; bench/tfjs.mjs${quick ? ' --quick' : ''}):${r.stdout.trimEnd()}\n`);
    tfjsDropIn = existsSync(json) ? JSON.parse(readFileSync(json, 'utf8')) : null;
  }
  if (existsSync(json)) rmSync(json);
} else skipped.push({ impl: 'tfjs-dropin', reason: 'not run (--no-tfjs-dropin)' });
// BatchNorm2d + ReLU (issue 21): plain BN, BN with the fused ReLU, and BN then a ReLU pass of its own,
// in alternating bursts (bench/fused.mjs), native and pure JS. Not with --filter (its rows are its own).
const fused = filterRe
  ? []
  : ['native', 'js'].map((backend) => {
      const r = run(process.execPath, [join(HERE, 'fused.mjs'), '--bursts', quick ? '5' : '15', '--threads', String(N)], {
        env: { BATCHNORM_BACKEND: backend },
      });
      if (r.status !== 0) skipped.push({ impl: `fused/${backend}`, reason: `bench/fused.mjs exited with ${r.status}` });
      return { backend, lines: r.stdout.trim().split('\n') };
    });
for (const f of fused) if (f.lines[0]) console.log(`BatchNorm2d + ReLU, fused vs plain vs a separate ReLU pass (bench/fused.mjs):\n${f.lines.join('\n')}\n`);
// The norms beside BatchNorm (bench/lib/norm-rows.mjs): their passes alternate as BatchNorm's do, against the same copy bandwidth.
const norms = args.norms
  ? normRows({ cold, filter: args.filter, threads: threadCounts, iters: quick ? 5 : 15, rounds: repeat, peers: peersOn })
  : { rows: [], skipped: [{ impl: 'norms', reason: 'not run (--no-norms)' }] };
skipped.push(...norms.skipped);
if (norms.rows.length) {
  console.log(formatNormRows(deriveNormColumns(norms.rows, copy)));
  console.log();
}
console.log(
  `copy bandwidth (Float32Array.prototype.set, 128 MiB, read+write counted): ${threadCounts.map((t) => `${t} thread${t > 1 ? 's' : ''} ${copy[t].gbps.toFixed(1)} GB/s`).join(', ')}`,
);
console.log(
  `GB/s: ${Object.entries(BYTES_PER_ELEMENT)
    .map(([k, v]) => `${k} ${v} B/element`)
    .join(
      ', ',
    )}; × vs JS = pure-JS time ÷ this time (same api/op/shape/layout; peers vs the functional JS row). Caches: ${cold ? 'cold (128 MiB written before each call)' : 'hot (same buffers every call)'}.`,
);
const tfjsBackward = rows.some((r) => r.impl.startsWith('tfjs') && r.op === 'backward');
if (tfjsBackward) console.log('tfjs backward rows time tf.grads, which recomputes the forward: forward + backward together.');
for (const s of skipped) console.log(`skipped ${s.impl}${s.key ? ` ${s.key}` : ''}: ${s.reason}`);
const seconds = (Date.now() - started) / 1e3;
console.log(`${rows.length} rows in ${seconds.toFixed(0)} s`);

if (args.json) {
  const file = resolve(process.cwd(), args.json);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    JSON.stringify(
      { meta: { ...meta, seconds }, copy, skipped, rows, dataParallel: parallel.rows, trainLoop: trainLoopRow, tfjsDropIn, fused, norms: norms.rows },
      null,
      1,
    ) + '\n',
  );
  note(`wrote ${file}`);
}
