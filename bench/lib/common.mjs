// Shared by the benchmark driver (run.mjs), its children (worker.mjs, node-peers.mjs)
// and the report (report.mjs): the shapes, the row keys, and small helpers.
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * @typedef {'forward-training' | 'forward-eval' | 'backward'} Op
 * @typedef {'nchw' | 'nhwc' | 'nc' | 'nchw16c'} Layout
 * @typedef {Float32Array | Float64Array} FloatArray
 * @typedef {{ shape: string, dims: number[], layout: Layout, op: Op }} Case
 * @typedef {{ impl: string, isa: string, threads: number, api: string, op: Op, shape: string, layout: Layout, dims: number[] }} RowSpec
 *   One row to time: what runs (impl, isa, threads, api) on which case.
 * @typedef {RowSpec & { [field: string]: any }} Row
 *   A row with its results (medianMs, gbps, passesMs, version, ...), as the JSON of run.mjs holds it.
 * @typedef {{ flags?: string[], options?: string[], optionalValue?: string[], defaults?: Record<string, string | boolean | undefined> }} ArgSpec
 * @typedef {Record<string, any>} Args
 *   Parsed arguments: a string for an option, a boolean for a flag, undefined when absent.
 * @typedef {{ iters: number, warmup: number, cold: boolean, evict: (threads?: number) => number }} TimingOptions
 */

/**
 * The shapes of the issue. `dims` is the logical (N, C, H, W) or (N, C) shape.
 * @type {Array<{ id: string, dims: number[], layouts: Layout[], note: string }>}
 */
export const SHAPES = [
  { id: '32x64x56x56', dims: [32, 64, 56, 56], layouts: ['nchw', 'nhwc'], note: 'ResNet-50 stage 1' },
  { id: '32x256x14x14', dims: [32, 256, 14, 14], layouts: ['nchw', 'nhwc'], note: 'ResNet-50 stage 3' },
  { id: '8x32x128x128', dims: [8, 32, 128, 128], layouts: ['nchw'], note: 'large spatial, few channels' },
  { id: '256x512', dims: [256, 512], layouts: ['nc'], note: 'BatchNorm1d' },
  { id: '64x16x8x8', dims: [64, 16, 8, 8], layouts: ['nchw'], note: 'small: call overhead' },
];

/** @type {Op[]} */
export const OPS = ['forward-training', 'forward-eval', 'backward'];

/** Bytes moved per element: forward reads x and writes y; backward reads x and dy and writes dx. */
export const BYTES_PER_ELEMENT = { 'forward-training': 8, 'forward-eval': 8, backward: 12 };

/** @param {readonly number[]} dims */
export const numel = (dims) => dims.reduce((a, b) => a * b, 1);

/**
 * The data's physical shape: [N, H, W, C] for channels-last.
 * @param {readonly number[]} dims
 * @param {Layout} layout
 */
export function physicalShape(dims, layout) {
  if (layout !== 'nhwc') return [...dims];
  const [n, c, ...sp] = dims;
  return [n, ...sp, c];
}

/**
 * `impl/isa/tT/api/op/shape/layout`, the string `--filter` matches.
 * @param {Omit<RowSpec, 'dims'>} r
 */
export function rowKey(r) {
  return `${r.impl}/${r.isa}/t${r.threads}/${r.api}/${r.op}/${r.shape}/${r.layout}`;
}

/**
 * Every (shape, layout, op) combination, in table order.
 * @returns {Generator<Case>}
 */
export function* cases() {
  for (const s of SHAPES) for (const layout of s.layouts) for (const op of OPS) yield { shape: s.id, dims: s.dims, layout, op };
}

/**
 * Row skeletons of the package itself for one (backend, isa) configuration.
 * @param {string} impl
 * @param {string} isa
 * @param {number[]} threadCounts
 */
export function packageRows(impl, isa, threadCounts) {
  /** @type {RowSpec[]} */
  const rows = [];
  for (const t of threadCounts)
    for (const c of cases())
      for (const api of ['module', 'functional']) rows.push({ impl, isa, threads: t, api, op: c.op, shape: c.shape, layout: c.layout, dims: c.dims });
  return rows;
}

/**
 * A deterministic fill: uniform in [lo, hi) from a 32-bit LCG (fast for 25 M elements).
 * @template {FloatArray} A
 * @param {A} a
 * @returns {A}
 */
export function fillUniform(a, seed = 1, lo = -2, hi = 2) {
  let s = seed >>> 0 || 1;
  const k = (hi - lo) / 4294967296;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = lo + s * k;
  }
  return a;
}

/** @param {readonly number[]} xs */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Cache eviction for `--cold`: read and write one float per cache line of a
 * 128 MiB buffer (4× the 32 MB L3). Regular stores, unlike a large memset
 * (non-temporal stores evict nothing). Not timed.
 *
 * `evict(threads)` splits the buffer among that many threads (this one and
 * threads - 1 helper worker_threads), as the PyTorch and oneDNN harnesses
 * evict on all their OpenMP threads: every core's caches then hold the same
 * kind of dirty lines whichever harness runs.
 */
export function makeEvictor(bytes = 128 << 20) {
  const buf = new Float32Array(new SharedArrayBuffer(bytes));
  // ctl: [round, threads of this round, helpers done]
  const ctl = new Int32Array(new SharedArrayBuffer(12));
  /** @type {Worker[]} */
  const helpers = [];
  const lines = buf.length / 16;
  let k = 0;
  return (threads = 1) => {
    while (helpers.length < threads - 1) {
      const id = helpers.length + 1;
      const src = `
        const { workerData: { buf, ctl, id } } = require('node:worker_threads');
        const lines = buf.length / 16;
        for (let seen = 0;;) {
          Atomics.wait(ctl, 0, seen);
          seen = Atomics.load(ctl, 0);
          const parts = Atomics.load(ctl, 1);
          if (id >= parts) continue;
          for (let i = Math.floor((lines * id) / parts) * 16, end = Math.floor((lines * (id + 1)) / parts) * 16; i < end; i += 16) buf[i] += seen;
          Atomics.add(ctl, 2, 1);
          Atomics.notify(ctl, 2);
        }`;
      const w = new Worker(src, { eval: true, workerData: { buf, ctl, id } });
      w.unref();
      helpers.push(w);
    }
    k++;
    Atomics.store(ctl, 1, threads);
    Atomics.store(ctl, 2, 0);
    Atomics.store(ctl, 0, k);
    Atomics.notify(ctl, 0);
    for (let i = 0, end = Math.floor(lines / threads) * 16; i < end; i += 16) buf[i] += k;
    for (let done; (done = Atomics.load(ctl, 2)) < threads - 1;) Atomics.wait(ctl, 2, done, 100);
    return buf[k & 1023];
  };
}

/**
 * Minimal argv parsing: --flag, --key value, --key=value.
 * @param {string[]} argv
 * @param {ArgSpec} spec
 * @returns {Args}
 */
export function parseArgs(argv, spec) {
  /** @type {Args} */
  const out = { ...spec.defaults };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const name = a.replace(/^--/, '');
    if (spec.flags?.includes(name)) out[name] = true;
    else if (spec.optionalValue?.includes(name)) out[name] = v ?? (argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[++i] : '');
    else if (name.startsWith('no-') && spec.flags?.includes(name.slice(3))) out[name.slice(3)] = false;
    else if (spec.options?.includes(name)) {
      if (v === undefined) v = argv[++i];
      if (v === undefined) throw new Error(`missing value for ${a}`);
      out[name] = v;
    } else throw new Error(`unknown argument ${argv[i]}`);
  }
  return out;
}

/**
 * The script's own command line (or `argv`), parsed with `spec` (which lists
 * the flag `help`): on a bad argument prints the error and `help` and exits
 * with 2; with --help prints `help` and exits with 0.
 * @param {ArgSpec} spec
 * @param {string} help
 * @returns {Args}
 */
export function parseCommandLine(spec, help, argv = process.argv.slice(2)) {
  let args;
  try {
    args = parseArgs(argv, spec);
  } catch (e) {
    console.error(`${/** @type {Error} */ (e).message}\n\n${help}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(help);
    process.exit(0);
  }
  return args;
}

/**
 * Times `fn` call by call (monotonic clock), evicting caches before each call when cold. Async-aware.
 * @param {() => unknown} fn
 * @param {TimingOptions} options
 */
export async function timeCalls(fn, { iters, warmup, cold, evict }) {
  for (let i = 0; i < warmup; i++) await fn();
  /** @type {number[]} */
  const ms = [];
  for (let i = 0; i < iters; i++) {
    if (cold) evict();
    const t0 = process.hrtime.bigint();
    await fn();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return ms;
}

/**
 * The same, for synchronous functions (no await between the clock reads).
 * @param {() => unknown} fn
 * @param {TimingOptions} options
 */
export function timeCallsSync(fn, { iters, warmup, cold, evict }) {
  for (let i = 0; i < warmup; i++) fn();
  /** @type {number[]} */
  const ms = [];
  for (let i = 0; i < iters; i++) {
    if (cold) evict();
    const t0 = process.hrtime.bigint();
    fn();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return ms;
}

/**
 * Naive float64 reference for the peers' self-check: training forward y and backward dx (NCHW or NHWC or NC).
 * @param {ArrayLike<number>} x
 * @param {ArrayLike<number>} dy
 * @param {readonly number[]} dims
 * @param {Layout} layout
 * @param {ArrayLike<number>} gamma
 * @param {ArrayLike<number>} beta
 * @param {number} eps
 */
export function reference(x, dy, dims, layout, gamma, beta, eps) {
  const [n, c, ...sp] = dims;
  const s = numel(sp);
  /** @type {(i: number, ch: number, j: number) => number} */
  const idx = layout === 'nhwc' ? (i, ch, j) => (i * s + j) * c + ch : (i, ch, j) => (i * c + ch) * s + j;
  const y = new Float64Array(x.length),
    dx = new Float64Array(x.length);
  const m = n * s;
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < s; j++) sum += x[idx(i, ch, j)];
    const mean = sum / m;
    let sq = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < s; j++) sq += (x[idx(i, ch, j)] - mean) ** 2;
    const invstd = 1 / Math.sqrt(sq / m + eps);
    let sdy = 0,
      sdyx = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < s; j++) {
        const k = idx(i, ch, j);
        const xh = (x[k] - mean) * invstd;
        y[k] = xh * gamma[ch] + beta[ch];
        sdy += dy[k];
        sdyx += dy[k] * xh;
      }
    for (let i = 0; i < n; i++)
      for (let j = 0; j < s; j++) {
        const k = idx(i, ch, j);
        const xh = (x[k] - mean) * invstd;
        dx[k] = gamma[ch] * invstd * (dy[k] - sdy / m - (xh * sdyx) / m);
      }
  }
  return { y, dx };
}

/**
 * @param {ArrayLike<number>} a
 * @param {ArrayLike<number>} b
 */
export function maxAbsDiff(a, b) {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/**
 * The peers, their API label, and which rows each can run.
 * @type {Record<string, { api: string, runner: 'harness' | 'node', singleThreaded?: boolean }>}
 */
export const PEERS = {
  pytorch: { api: 'aten', runner: 'harness' },
  onednn: { api: 'primitive', runner: 'harness' },
  'tfjs-wasm': { api: 'ops', runner: 'node', singleThreaded: true },
  'tfjs-cpu': { api: 'ops', runner: 'node', singleThreaded: true },
  onnxruntime: { api: 'session', runner: 'node' },
};

/**
 * Row skeletons of one peer. onnxruntime: inference only, channels-first only
 * (ONNX BatchNormalization). oneDNN: also its blocked nChw16c layout (its fast
 * path) for the 4-D shapes. TF.js: one thread (wasm is single-threaded under
 * Node, cpu is plain JS).
 * @param {string} impl
 * @param {string} isa
 * @param {number[]} threadCounts
 */
export function peerRows(impl, isa, threadCounts) {
  const p = PEERS[impl];
  /** @type {RowSpec[]} */
  const rows = [];
  for (const t of p.singleThreaded ? [1] : threadCounts)
    for (const c of cases()) {
      if (impl === 'onnxruntime' && (c.op !== 'forward-eval' || c.layout === 'nhwc')) continue;
      const base = { impl, isa, threads: t, api: p.api, op: c.op, shape: c.shape, dims: c.dims };
      rows.push({ ...base, layout: c.layout });
      if (impl === 'onednn' && c.layout === 'nchw' && c.dims.length === 4) rows.push({ ...base, layout: 'nchw16c' });
    }
  return rows;
}

/** The harnesses of bench/peers/ and the Python that runs the PyTorch one. */
export const PYTHON = '/usr/bin/python3';
export const TORCH_HARNESS = fileURLToPath(new URL('../peers/torch_bench.py', import.meta.url));
export const ONEDNN_HARNESS = fileURLToPath(new URL('../peers/build/onednn_bench', import.meta.url));

/**
 * [command, argv] that time one harness row (pytorch or onednn) `iters` times after `warmup` calls.
 * @param {Pick<RowSpec, 'impl' | 'threads' | 'op' | 'dims' | 'layout'>} r
 * @param {{ iters: number, warmup: number, cold: boolean }} options
 * @returns {[string, string[]]}
 */
export function harnessCommand(r, { iters, warmup, cold }) {
  const layout = r.layout === 'nc' ? 'nchw' : r.layout === 'nchw16c' ? 'blocked' : r.layout;
  const argv = [
    '--shape',
    r.dims.join(','),
    '--op',
    r.op,
    '--threads',
    String(r.threads),
    '--layout',
    layout,
    '--iters',
    String(iters),
    '--warmup',
    String(warmup),
  ];
  if (cold) argv.push('--cold');
  return r.impl === 'pytorch' ? [PYTHON, [TORCH_HARNESS, ...argv]] : [ONEDNN_HARNESS, argv];
}

/**
 * The last non-empty line of a child's stdout, parsed (libraries may print banners before it).
 * @param {string} stdout
 * @returns {any}
 */
export function lastJsonLine(stdout) {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'));
  if (!lines.length) throw new Error('no JSON line in the output');
  return JSON.parse(lines[lines.length - 1]);
}
