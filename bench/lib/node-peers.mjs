// The Node.js peers, one per process: TensorFlow.js (wasm or cpu backend) and
// onnxruntime-node. Optional packages: when one is missing this prints
// { skipped: "why" } instead of rows. Spawned by run.mjs:
//
//   node bench/lib/node-peers.mjs '{"impl":"tfjs-wasm","threads":[1,2],"iters":15,"warmup":3,"cold":false,"filter":null}'
//
// Each call is timed individually (process.hrtime), median over `iters`, like
// the PyTorch/oneDNN harnesses. Before timing, each implementation is checked
// against a float64 reference on small tensors (result in `check`).
import { batchNormModel } from './onnx-model.mjs';
import {
  BYTES_PER_ELEMENT,
  fillUniform,
  makeEvictor,
  maxAbsDiff,
  median,
  numel,
  peerRows,
  physicalShape,
  reference,
  rowKey,
  timeCalls,
  timeCallsSync,
} from './common.mjs';

/**
 * @typedef {import('./common.mjs').Layout} Layout
 * @typedef {import('./common.mjs').RowSpec} RowSpec
 * @typedef {any} TfTensor  a TF.js tensor (TF.js is optional: its types are not installed)
 */

const cfg = JSON.parse(process.argv[2] ?? '{}');
const impl = cfg.impl;
const EPS = 1e-5,
  MOMENTUM = 0.1;
const evict = cfg.cold ? makeEvictor() : null;
const filter = cfg.filter ? new RegExp(cfg.filter) : null;
const log = (/** @type {string} */ s) => process.stderr.write(`  [${impl}] ${s}\n`);

/** @param {object} obj */
function emit(obj) {
  process.stdout.write('\n' + JSON.stringify(obj) + '\n');
}

/**
 * An optional package, or null when it is not installed.
 * @param {string} name
 * @returns {Promise<any>}
 */
async function tryImport(name) {
  try {
    return await import(name);
  } catch (e) {
    const err = /** @type {NodeJS.ErrnoException} */ (e);
    if (err.code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (module|package)/.test(err.message)) return null;
    throw e;
  }
}

/** @param {readonly number[]} dims */
function testData(dims, seed = 7) {
  const n = numel(dims),
    C = dims[1];
  return {
    x: fillUniform(new Float32Array(n), seed),
    dy: fillUniform(new Float32Array(n), seed + 1, -1, 1),
    gamma: fillUniform(new Float32Array(C), seed + 2, 0.5, 1.5),
    beta: fillUniform(new Float32Array(C), seed + 3, -1, 1),
  };
}

// ---------------------------------------------------------------- TensorFlow.js

/** @param {'wasm' | 'cpu'} backend */
async function tfjs(backend) {
  const tf = await tryImport('@tensorflow/tfjs');
  if (!tf) return { skipped: '@tensorflow/tfjs is not installed (optional; see bench/README.md)' };
  if (backend === 'wasm') {
    const wasm = await tryImport('@tensorflow/tfjs-backend-wasm');
    if (!wasm) return { skipped: '@tensorflow/tfjs-backend-wasm is not installed (optional; see bench/README.md)' };
  }
  const origLog = console.log; // the cpu backend prints a banner on stdout
  console.log = (...a) => process.stderr.write(a.join(' ') + '\n');
  if (!(await tf.setBackend(backend))) return { skipped: `tfjs backend ${backend} failed to initialise` };
  await tf.ready();
  console.log = origLog;
  const simd = backend === 'wasm' ? tf.env().getBool('WASM_HAS_SIMD_SUPPORT') : false;
  const threads = backend === 'wasm' ? tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') : false;
  const isaDetail = backend === 'wasm' ? `wasm${simd ? '+simd' : ''}${threads ? '+threads' : ', 1 thread'}` : 'plain JS';

  /**
   * The ops for one (dims, layout). NCHW: broadcasting ops with [1,C,1,1]
   * parameters (tf.batchNorm with [1,C,1,1] parameters on NCHW data is wrong:
   * it cycles them along the last axis). NHWC and (N,C): tf.batchNorm with
   * C-vectors, the fused kernel.
   * @param {readonly number[]} dims
   * @param {Layout} layout
   * @param {Float32Array} gamma
   * @param {Float32Array} beta
   */
  function ops(dims, layout, gamma, beta) {
    const C = dims[1];
    const count = numel(dims) / C;
    const nchw = layout === 'nchw';
    const axes = nchw ? [0, 2, 3] : layout === 'nhwc' ? [0, 1, 2] : [0];
    const pshape = nchw ? [1, C, 1, 1] : [C];
    const g = tf.tensor(gamma, pshape),
      b = tf.tensor(beta, pshape);
    /** @type {(x: TfTensor, mean: TfTensor, variance: TfTensor, g: TfTensor, b: TfTensor) => TfTensor} */
    const normalize = (x, mean, variance, g, b) => {
      if (!nchw) return tf.batchNorm(x, mean, variance, b, g, EPS);
      const scale = tf.rsqrt(variance.add(EPS)).mul(g);
      return x.mul(scale).add(b.sub(mean.mul(scale)));
    };
    /** @type {(x: TfTensor, g: TfTensor, b: TfTensor) => { y: TfTensor, mean: TfTensor, variance: TfTensor }} */
    const train = (x, g, b) => {
      const { mean, variance } = tf.moments(x, axes, nchw);
      return { y: normalize(x, mean, variance, g, b), mean, variance };
    };
    /** @type {{ rm: TfTensor, rv: TfTensor, out: TfTensor[] }} */
    const state = { rm: tf.keep(tf.zeros(pshape)), rv: tf.keep(tf.ones(pshape)), out: [] };
    const gradFn = tf.grads((/** @type {TfTensor} */ x, /** @type {TfTensor} */ g, /** @type {TfTensor} */ b) => train(x, g, b).y);
    /** @type {{ g: TfTensor, b: TfTensor, train: typeof train, gradFn: any, state: typeof state } & Record<import('./common.mjs').Op, (x: TfTensor, dy?: TfTensor) => void>} */
    const o = {
      g,
      b,
      train,
      gradFn,
      state,
      'forward-training': (x) => {
        const r = tf.tidy(() => {
          const { y, mean, variance } = train(x, g, b);
          const rm = state.rm.mul(1 - MOMENTUM).add(mean.mul(MOMENTUM));
          const rv = state.rv.mul(1 - MOMENTUM).add(variance.mul((MOMENTUM * count) / (count - 1)));
          return [y, rm, rv];
        });
        tf.dispose([...state.out, state.rm, state.rv]);
        [state.rm, state.rv] = [r[1], r[2]];
        state.out = [r[0]];
      },
      'forward-eval': (x) => {
        const y = tf.tidy(() => normalize(x, state.rm, state.rv, g, b));
        tf.dispose(state.out);
        state.out = [y];
      },
      // tf.grads records the forward and then runs the backward: both are timed.
      backward: (x, dy) => {
        const r = tf.tidy(() => gradFn([x, g, b], dy));
        tf.dispose(state.out);
        state.out = r;
      },
    };
    return o;
  }

  // Self-check against the float64 reference (training forward y, backward dx).
  /** @type {Record<string, { y: number, dx: number }>} */
  const check = {};
  /** @type {Array<[number[], Layout]>} */
  const checkCases = [
    [[4, 3, 5, 5], 'nchw'],
    [[4, 3, 5, 5], 'nhwc'],
    [[8, 6], 'nc'],
  ];
  for (const [dims, layout] of checkCases) {
    const d = testData(dims);
    const ref = reference(d.x, d.dy, dims, layout, d.gamma, d.beta, EPS);
    const shape = physicalShape(dims, layout);
    const o = ops(dims, layout, d.gamma, d.beta);
    const x = tf.tensor(d.x, shape),
      dy = tf.tensor(d.dy, shape);
    const y = tf.tidy(() => o.train(x, o.g, o.b).y).dataSync();
    const dx = tf.tidy(() => o.gradFn([x, o.g, o.b], dy)[0]).dataSync();
    check[layout] = { y: maxAbsDiff(y, ref.y), dx: maxAbsDiff(dx, ref.dx) };
  }
  const checkOk = Object.values(check).every((c) => c.y < 1e-3 && c.dx < 1e-3);
  log(`self-check ${checkOk ? 'ok' : 'FAILED'} ${JSON.stringify(check)}`);

  const rows = peerRows(impl, 'auto', [1]).filter((r) => !filter || filter.test(rowKey(r)));
  /** @type {object[]} */
  const out = [];
  let cur = /** @type {{ dk: string, d: ReturnType<typeof testData>, x: TfTensor, dy: TfTensor } | null} */ (null);
  for (const r of rows) {
    const dk = `${r.shape}/${r.layout}`;
    if (cur?.dk !== dk) {
      if (cur) tf.dispose([cur.x, cur.dy]);
      const d = testData(r.dims, 1);
      const shape = physicalShape(r.dims, r.layout);
      cur = { dk, d, x: tf.tensor(d.x, shape), dy: tf.tensor(d.dy, shape) };
    }
    const o = ops(r.dims, r.layout, cur.d.gamma, cur.d.beta);
    if (r.op !== 'forward-training') o['forward-training'](cur.x); // running stats
    const { x, dy } = cur;
    const fn = () => o[r.op](x, dy);
    const slow = backend === 'cpu';
    const ms = timeCallsSync(fn, {
      iters: slow ? (cfg.slowIters ?? 3) : cfg.iters,
      warmup: slow ? 1 : cfg.warmup,
      cold: cfg.cold,
      evict: () => /** @type {NonNullable<typeof evict>} */ (evict)(r.threads),
    });
    tf.dispose([o.g, o.b, o.state.rm, o.state.rv, ...o.state.out]);
    const notes = [
      r.layout === 'nchw' ? 'broadcasting ops, [1,C,1,1] parameters' : 'tf.moments + tf.batchNorm (fused kernel)',
      r.op === 'forward-training' ? 'includes running mean/var update' : '',
      r.op === 'backward' ? 'tf.grads: recomputes the forward, so forward + backward are timed together' : '',
      'outputs allocated per call (tfjs)',
    ].filter(Boolean);
    out.push(row(r, ms, { version: tf.version.tfjs, isaDetail, notes: notes.join('; '), check: checkOk ? 'ok' : `FAILED ${JSON.stringify(check)}` }));
    log(`${rowKey(r)}  ${median(ms).toFixed(3)} ms`);
  }
  return { version: tf.version.tfjs, isaDetail, check, rows: out };
}

// ---------------------------------------------------------------- onnxruntime-node

async function onnxruntime() {
  const ort = await tryImport('onnxruntime-node');
  if (!ort) return { skipped: 'onnxruntime-node is not installed (optional; see bench/README.md)' };
  const version = ort.env?.versions?.node ?? '?';

  /**
   * @param {number[]} dims
   * @param {Layout} layout
   * @param {ReturnType<typeof testData>} d
   * @param {Float32Array} rm
   * @param {Float32Array} rv
   * @param {number} threads
   */
  async function session(dims, layout, d, rm, rv, threads) {
    const model = batchNormModel({ shape: dims, scale: d.gamma, bias: d.beta, mean: rm, variance: rv, eps: EPS });
    return ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  }
  /** @type {(x: Float32Array, dims: number[], g: Float32Array, b: Float32Array, rm: Float32Array, rv: Float32Array) => Float64Array} */
  const evalRef = (x, dims, g, b, rm, rv) => {
    const C = dims[1],
      s = numel(dims.slice(2));
    return Float64Array.from(x, (v, i) => {
      const c = Math.floor(i / s) % C;
      return ((v - rm[c]) / Math.sqrt(rv[c] + EPS)) * g[c] + b[c];
    });
  };
  // Self-check: eval forward against float64, with preallocated output.
  /** @type {Record<string, { y: number }>} */
  const check = {};
  for (const dims of [
    [4, 3, 5, 5],
    [8, 6],
  ]) {
    const d = testData(dims);
    const rm = fillUniform(new Float32Array(dims[1]), 11, -0.5, 0.5),
      rv = fillUniform(new Float32Array(dims[1]), 12, 0.5, 2);
    const s = await session(dims, 'nchw', d, rm, rv, 1);
    const y = new Float32Array(d.x.length);
    await s.run({ X: new ort.Tensor('float32', d.x, dims) }, { Y: new ort.Tensor('float32', y, dims) });
    check[dims.length === 2 ? 'nc' : 'nchw'] = { y: maxAbsDiff(y, evalRef(d.x, dims, d.gamma, d.beta, rm, rv)) };
    await s.release();
  }
  const checkOk = Object.values(check).every((c) => c.y < 1e-3);
  log(`self-check ${checkOk ? 'ok' : 'FAILED'} ${JSON.stringify(check)}`);

  const rows = peerRows(impl, 'auto', cfg.threads).filter((r) => !filter || filter.test(rowKey(r)));
  /** @type {object[]} */
  const out = [];
  for (const r of rows) {
    const d = testData(r.dims, 1);
    const rm = fillUniform(new Float32Array(r.dims[1]), 11, -0.5, 0.5),
      rv = fillUniform(new Float32Array(r.dims[1]), 12, 0.5, 2);
    const s = await session(r.dims, r.layout, d, rm, rv, r.threads);
    const X = new ort.Tensor('float32', d.x, r.dims);
    const Y = new ort.Tensor('float32', new Float32Array(d.x.length), r.dims);
    const ms = await timeCalls(() => s.run({ X }, { Y }), {
      iters: cfg.iters,
      warmup: cfg.warmup,
      cold: cfg.cold,
      evict: () => /** @type {NonNullable<typeof evict>} */ (evict)(r.threads),
    });
    await s.release();
    out.push(
      row(r, ms, {
        version,
        isaDetail: 'MLAS (CPU EP)',
        notes:
          'InferenceSession.run (async: one setImmediate hop per call) with a preallocated output; one-node BatchNormalization model (opset 15, inference)',
        check: checkOk ? 'ok' : `FAILED ${JSON.stringify(check)}`,
      }),
    );
    log(`${rowKey(r)}  ${median(ms).toFixed(3)} ms`);
  }
  return { version, check, rows: out };
}

/**
 * A result row: the spec, its key and traffic, and the timing of its calls.
 * @param {RowSpec} r
 * @param {number[]} ms
 * @param {object} extra
 */
function row(r, ms, extra) {
  const { dims, ...rest } = r;
  return {
    ...rest,
    key: rowKey(r),
    dims,
    elements: numel(dims),
    bytes: numel(dims) * BYTES_PER_ELEMENT[r.op],
    mode: cfg.cold ? 'cold' : 'hot',
    medianMs: median(ms),
    minMs: Math.min(...ms),
    samples: ms.length,
    callsPerSample: 1,
    method: cfg.cold ? 'manual loop, caches evicted before each call' : 'manual loop, each call timed',
    ...extra,
  };
}

const result =
  impl === 'tfjs-wasm'
    ? await tfjs('wasm')
    : impl === 'tfjs-cpu'
      ? await tfjs('cpu')
      : impl === 'onnxruntime'
        ? await onnxruntime()
        : { skipped: `unknown peer ${impl}` };
emit({ impl, ...result });
process.exit(0);
