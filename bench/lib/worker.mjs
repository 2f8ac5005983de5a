// One (backend, ISA) configuration of the package, in its own process: the
// backend and ISA are chosen once per process from BATCHNORM_BACKEND and
// BATCHNORM_ISA. Spawned by run.mjs:
//
//   BATCHNORM_BACKEND=native BATCHNORM_ISA=avx2 node bench/lib/worker.mjs '{"threads":[1,2],...}'
//   node bench/lib/worker.mjs --probe          # prints {info, capabilities}
//
// Prints one JSON object on stdout ({ info, rows }); progress on stderr.
import Benchmark from 'benchmark';
import { BatchNorm1d, BatchNorm2d, batchNorm, batchNormBackward, backendInfo, capabilities, setNumThreads, getNumThreads } from 'batchnorm';
import { BYTES_PER_ELEMENT, fillUniform, makeEvictor, median, numel, packageRows, physicalShape, rowKey, timeCallsSync } from './common.mjs';

/**
 * @typedef {import('./common.mjs').Layout} Layout
 * @typedef {import('./common.mjs').RowSpec} RowSpec
 * @typedef {ReturnType<typeof makeData>} Data
 */

// Call the benchmarked function by reference: benchmark.js would otherwise
// decompile it into a loop, losing the closure it reads its tensors from.
Benchmark.support.decompilation = false;

if (process.argv[2] === '--probe') {
  process.stdout.write(JSON.stringify({ info: backendInfo(), capabilities: capabilities() }) + '\n');
  process.exit(0);
}

const cfg = JSON.parse(process.argv[2] ?? '{}');
const info = backendInfo();
const impl = info.backend; // 'native' | 'wasm' | 'js'
const wantedIsa = process.env.BATCHNORM_ISA;
if (impl === 'native' && wantedIsa && info.isa !== wantedIsa) {
  console.error(`worker: asked for BATCHNORM_ISA=${wantedIsa} but the addon runs ${info.isa}`);
  process.exit(3);
}
const threadCounts = impl === 'native' ? (cfg.threads ?? [1]) : [1]; // wasm and JS: one thread
const filter = cfg.filter ? new RegExp(cfg.filter) : null;
const rows = packageRows(impl, info.isa, threadCounts).filter((r) => !filter || filter.test(rowKey(r)));
const evict = cfg.cold ? makeEvictor() : null;

/** benchmark.js settings (seconds): smaller for the slow JS path and for --quick. */
const opts = cfg.bench ?? { minSamples: 10, maxTime: 1, minTime: 0.05 };

/**
 * @param {Layout} layout
 * @returns {import('batchnorm').Layout | undefined}
 */
function layoutOption(layout) {
  return layout === 'nhwc' ? 'NHWC' : layout === 'nchw' ? 'NCHW' : undefined;
}

/**
 * Tensors of one (shape, layout), shared by its rows.
 * @param {number[]} dims
 * @param {Layout} layout
 */
function makeData(dims, layout) {
  const n = numel(dims);
  const shape = physicalShape(dims, layout);
  const C = dims[1];
  const x = fillUniform(new Float32Array(n), 1);
  const dy = fillUniform(new Float32Array(n), 2, -1, 1);
  return {
    shape,
    C,
    X: { data: x, shape },
    DY: { data: dy, shape },
    out: new Float32Array(n).fill(0.5), // y (forward) — reused, as `out`
    dxOut: new Float32Array(n).fill(0.5), // dx (backward)
    gamma: fillUniform(new Float32Array(C), 3, 0.5, 1.5),
    beta: fillUniform(new Float32Array(C), 4, -1, 1),
    gw: new Float32Array(C),
    gb: new Float32Array(C),
  };
}

/**
 * The function one row times, after whatever setup it needs (not timed).
 * @param {RowSpec} r
 * @param {Data} d
 * @returns {() => unknown}
 */
function makeFn(r, d) {
  const layout = layoutOption(r.layout);
  if (r.api === 'module') {
    const m = r.dims.length === 2 ? new BatchNorm1d(d.C) : new BatchNorm2d(d.C, { layout });
    if (!m.weight || !m.bias) throw new Error('a default module has weight and bias');
    m.weight.data.set(d.gamma);
    m.bias.data.set(d.beta);
    const call = { out: d.out };
    m.train();
    if (r.op === 'forward-training') return () => m.forward(d.X, call);
    m.forward(d.X, call); // running statistics (eval) / saved statistics (backward)
    if (r.op === 'forward-eval') {
      m.eval();
      return () => m.forward(d.X, call);
    }
    const bcall = { out: d.dxOut, retainGraph: true }; // the same forward's backward, timed again and again
    return () => m.backward(d.DY, bcall);
  }
  const rm = new Float32Array(d.C),
    rv = new Float32Array(d.C).fill(1);
  const saveMeanOut = new Float32Array(d.C),
    saveInvstdOut = new Float32Array(d.C);
  const fopts = { weight: d.gamma, bias: d.beta, training: r.op !== 'forward-eval', momentum: 0.1, eps: 1e-5, out: d.out, saveMeanOut, saveInvstdOut, layout };
  if (r.op !== 'backward') {
    if (r.op === 'forward-eval') batchNorm(d.X, rm, rv, { ...fopts, training: true }); // realistic running stats
    return () => batchNorm(d.X, rm, rv, fopts);
  }
  const f = batchNorm(d.X, rm, rv, fopts);
  const bopts = {
    weight: d.gamma,
    saveMean: f.saveMean,
    saveInvstd: f.saveInvstd,
    training: true,
    out: d.dxOut,
    gradWeightOut: d.gw,
    gradBiasOut: d.gb,
    layout,
  };
  return () => batchNormBackward(d.DY, d.X, bopts);
}

/**
 * Times one row: benchmark.js (hot), or call by call with the caches evicted before each (cold).
 * @param {RowSpec} r
 * @param {() => unknown} fn
 */
function measure(r, fn) {
  if (evict) {
    const ev = evict;
    const ms = timeCallsSync(fn, { iters: cfg.coldIters ?? 15, warmup: 2, cold: true, evict: () => ev(r.threads) });
    return { medianMs: median(ms), minMs: Math.min(...ms), samples: ms.length, callsPerSample: 1, method: 'manual loop, caches evicted before each call' };
  }
  const b = new Benchmark(rowKey(r), fn, { ...opts, initCount: 1, delay: 0 });
  b.run();
  if (b.error) throw b.error;
  const s = b.stats.sample; // seconds per call, one entry per sample
  return {
    medianMs: median(s) * 1e3,
    minMs: Math.min(...s) * 1e3,
    samples: s.length,
    callsPerSample: b.count,
    rme: b.stats.rme,
    method: 'benchmark.js',
  };
}

/** @type {object[]} */
const out = [];
const t0 = Date.now();
let done = 0;
/** @type {Map<string, RowSpec[]>} */
const byData = new Map();
for (const r of rows) {
  const k = `${r.shape}/${r.layout}`;
  byData.set(k, [...(byData.get(k) ?? []), r]);
}
for (const group of byData.values()) {
  const d = makeData(group[0].dims, group[0].layout);
  for (const t of threadCounts) {
    setNumThreads(t);
    if (impl === 'native' && getNumThreads() !== t) throw new Error(`setNumThreads(${t}) did not take`);
    for (const r of group.filter((g) => g.threads === t)) {
      const fn = makeFn(r, d);
      const m = measure(r, fn);
      const bytes = numel(r.dims) * BYTES_PER_ELEMENT[r.op];
      const { dims, ...rest } = r;
      out.push({ ...rest, key: rowKey(r), dims, elements: numel(dims), bytes, mode: cfg.cold ? 'cold' : 'hot', ...m });
      done++;
      process.stderr.write(`  [${impl}/${info.isa}] ${done}/${rows.length} ${rowKey(r)}  ${m.medianMs.toFixed(3)} ms\n`);
    }
  }
}
process.stdout.write(JSON.stringify({ info: { ...backendInfo(), capabilities: capabilities() }, seconds: (Date.now() - t0) / 1e3, rows: out }) + '\n');
