#!/usr/bin/env node
// The TF.js drop-in (batchnorm/tfjs, issue 23): what a TF.js user gains.
//
//   node bench/tfjs.mjs                  # a few minutes: stock TF.js' convolution backward is slow
//   node bench/tfjs.mjs --quick          # 2 rounds, batch 4
//   node bench/tfjs.mjs --profile        # also where one CNN step's time goes, kernel by kernel
//   node bench/tfjs.mjs --threads 1 --json out.json
//
// Rows, each for stock TF.js on its pure-JS `cpu` backend, the drop-in on the
// opt-in backend `cpu-bn` (the cpu backend with this package's kernels), and
// TF.js' `wasm` backend for reference (single-threaded in Node):
//   - cnn-step: one training step (model.trainOnBatch: forward, loss,
//     backward, SGD update) of the small CNN of the tests
//     (bench/lib/tfjs-cnn.mjs: Conv2D → BatchNormalization → ReLU, twice,
//     then Dense), on a batch of 16×16 RGB images;
//   - mlp-step: the same for an MLP, 784 → Dense 256 → BatchNormalization →
//     ReLU → Dense 256 → BatchNormalization → ReLU → Dense 10, batch 8× the
//     CNN's: where the rest of the step is cheap in TF.js, the norm weighs more;
//   - bn-train: the BatchNormalization layer alone in training, forward and
//     backward from a given dy to dx, dgamma and dbeta (tf.engine().gradients),
//     on the input of the CNN's second normalization (batch × 16 × 16 × 32, NHWC);
//   - bn-infer: the same layer in inference (model.predict's path);
//   - ln-train: the LayerNormalization layer (default axis −1) forward and
//     backward, from a given dy to dx, dgamma and dbeta, on a transformer-like
//     batch × 64 × 256 (tokens × features);
//   - ln-infer: the same layer forward only (training and inference are the
//     same computation for a layer norm).
// The implementations run in alternating rounds in one process (the order
// turns every round), so that the host's other tenants weigh on all of them;
// a row's figure is the median of every timed call. Imports the compiled
// package by name: build first (npx tsc -p tsconfig.json, and the addon).
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { median, parseCommandLine } from './lib/common.mjs';
import { cnnData, smallCnn } from './lib/tfjs-cnn.mjs';

/**
 * @typedef {import('@tensorflow/tfjs-core').Tensor} Tensor
 * @typedef {'cnn-step' | 'mlp-step' | 'bn-train' | 'bn-infer' | 'ln-train' | 'ln-infer'} Row
 * @typedef {import('@tensorflow/tfjs-layers').layers.Layer} Layer
 * @typedef {{ id: string, backend: string, bn: (args: import('batchnorm/tfjs').BatchNormalizationLayerArgs) => Layer, ln: (args: import('batchnorm/tfjs').LayerNormalizationLayerArgs) => Layer, label: string }} Impl
 *   One implementation: a TF.js backend and the normalization layers' factories.
 */

const HELP = `usage: node bench/tfjs.mjs [options]
  --quick          2 rounds, batch 4 (default: 3 rounds, batch 8)
  --rounds K       rounds (each: every implementation, every row)
  --batch N        images per batch (default 8)
  --rows LIST      some of cnn-step,mlp-step,bn-train,bn-infer,ln-train,ln-infer (default: all)
  --profile        print the kernels taking most of one CNN step, per implementation
  --threads T      the package's threads (default: os.availableParallelism())
  --no-wasm        leave out TF.js wasm
  --json FILE      every timed call, the machine and the settings`;

const args = parseCommandLine(
  { defaults: { quick: false, wasm: true, help: false }, flags: ['quick', 'wasm', 'profile', 'help'], options: ['rounds', 'batch', 'threads', 'json', 'rows'] },
  HELP,
);
const rounds = Number(args.rounds ?? (args.quick ? 2 : 3));
const batch = Number(args.batch ?? (args.quick ? 4 : 8));
const threads = Number(args.threads ?? os.availableParallelism());
if (![rounds, batch, threads].every((v) => Number.isInteger(v) && v >= 1)) {
  console.error(`--rounds, --batch and --threads take positive integers\n\n${HELP}`);
  process.exit(2);
}
const note = (/** @type {string} */ s) => process.stderr.write(`${s}\n`);

/**
 * The module `load` imports, or null if it is not installed.
 * @template M
 * @param {() => Promise<M>} load
 * @returns {Promise<M | null>}
 */
async function tryImport(load) {
  try {
    return await load();
  } catch (e) {
    if (e instanceof Error && 'code' in e && e.code === 'ERR_MODULE_NOT_FOUND') return null;
    throw e;
  }
}

const tfCore = await tryImport(() => import('@tensorflow/tfjs-core'));
const tfLayers = await tryImport(() => import('@tensorflow/tfjs-layers'));
if (!tfCore || !tfLayers || !(await tryImport(() => import('@tensorflow/tfjs-backend-cpu')))) {
  console.log('skipped: @tensorflow/tfjs-core, -layers and -backend-cpu are not installed (dev dependencies: npm install)');
  process.exit(0);
}
// Narrowed once here: the functions below see them as present.
const tf = tfCore,
  tfl = tfLayers;
const wasm = args.wasm ? await tryImport(() => import('@tensorflow/tfjs-backend-wasm')) : null;
const { backendInfo, setNumThreads } = await import('batchnorm');
const { installTfjsKernels, batchNormalization, layerNormalization } = await import('batchnorm/tfjs');
setNumThreads(threads);
installTfjsKernels({ backend: 'cpu-bn' });

/** @type {Impl[]} */
const IMPLS = [
  {
    id: 'tfjs-cpu',
    backend: 'cpu',
    bn: (a) => tfl.layers.batchNormalization(a),
    ln: (a) => tfl.layers.layerNormalization(a),
    label: 'TF.js cpu (stock, pure JS)',
  },
  { id: 'batchnorm', backend: 'cpu-bn', bn: batchNormalization, ln: layerNormalization, label: 'batchnorm/tfjs (cpu-bn)' },
  ...(wasm
    ? [
        {
          id: 'tfjs-wasm',
          backend: 'wasm',
          bn: (/** @type {import('batchnorm/tfjs').BatchNormalizationLayerArgs} */ a) => tfl.layers.batchNormalization(a),
          ln: (/** @type {import('batchnorm/tfjs').LayerNormalizationLayerArgs} */ a) => tfl.layers.layerNormalization(a),
          label: 'TF.js wasm (stock)',
        },
      ]
    : []),
];

/** @param {string} backend */
async function use(backend) {
  const log = console.log,
    warn = console.warn; // the cpu backend's banner
  console.log = console.warn = () => {};
  try {
    if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} failed to initialise`);
    await tf.ready();
  } finally {
    ((console.log = log), (console.warn = warn));
  }
}

/**
 * Timed calls per row and round.
 * @type {Record<Row, number>}
 */
const CALLS = { 'cnn-step': 1, 'mlp-step': 3, 'bn-train': 3, 'bn-infer': 5, 'ln-train': 3, 'ln-infer': 5 };
/** @type {string[]} */
const rowNames = args.rows ? args.rows.split(',') : Object.keys(CALLS);
const isRow = /** @type {(r: string) => r is Row} */ ((r) => r in CALLS);
if (!rowNames.every(isRow)) {
  console.error(`--rows takes some of ${Object.keys(CALLS).join(',')} (got ${args.rows})\n\n${HELP}`);
  process.exit(2);
}
/** @type {readonly Row[]} */
const ROWS = rowNames;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const HW = 16,
  C2 = 32,
  TOKENS = 64,
  FEATURES = 256;

/**
 * Each implementation's models and tensors, made on its own backend.
 * @param {Impl} impl
 * @returns {Promise<Partial<Record<Row, () => unknown>>>} the rows it runs
 */
async function setUp(impl) {
  await use(impl.backend);
  const model = smallCnn(tfl, impl.bn, { height: HW, width: HW, channels: 3, filters: [16, C2], classes: 10 });
  model.compile({ loss: 'categoricalCrossentropy', optimizer: tf.train.sgd(0.01) });
  const { xs, ys } = cnnData(tf, batch, { height: HW, width: HW, channels: 3, classes: 10 });
  const shape = [batch, HW, HW, C2];
  const layer = impl.bn({});
  layer.build(shape);
  const x = tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 1)),
    dy = tf.randomNormal(shape, 0, 1, 'float32', 2);
  const wrt = [x, ...layer.trainableWeights.map((v) => v.read())];
  const lnShape = [batch, TOKENS, FEATURES];
  const ln = impl.ln({});
  ln.build(lnShape);
  const lnX = tf.variable(tf.randomNormal(lnShape, 0, 1, 'float32', 5)),
    lnDy = tf.randomNormal(lnShape, 0, 1, 'float32', 6);
  const lnWrt = [lnX, ...ln.trainableWeights.map((v) => v.read())];
  const mlp = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [784], units: 256, useBias: false }),
      impl.bn({}),
      tfl.layers.reLU(),
      tfl.layers.dense({ units: 256, useBias: false }),
      impl.bn({}),
      tfl.layers.reLU(),
      tfl.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
  mlp.compile({ loss: 'categoricalCrossentropy', optimizer: tf.train.sgd(0.01) });
  const mlpData = { xs: tf.randomUniform([8 * batch, 784], 0, 1, 'float32', 3), ys: tf.oneHot(tf.randomUniform([8 * batch], 0, 10, 'int32', 4), 10) };
  /** @type {Partial<Record<Row, () => unknown>>} */
  const rows = {
    'cnn-step': async () => tf.dispose(await model.trainOnBatch(xs, ys)),
    'mlp-step': async () => tf.dispose(await mlp.trainOnBatch(mlpData.xs, mlpData.ys)),
    'bn-train': () => {
      const { value, grads } = tf.engine().gradients(() => /** @type {Tensor} */ (layer.apply(x, { training: true })), wrt, dy);
      tf.dispose([value, ...grads]);
    },
    'bn-infer': () => tf.dispose(/** @type {Tensor} */ (layer.apply(x, { training: false }))),
    'ln-train': () => {
      const { value, grads } = tf.engine().gradients(() => /** @type {Tensor} */ (ln.apply(lnX, { training: true })), lnWrt, lnDy);
      tf.dispose([value, ...grads]);
    },
    'ln-infer': () => tf.dispose(/** @type {Tensor} */ (ln.apply(lnX))),
  };
  // Warm-up (kernels, allocations); a row the backend cannot run is left out, with the reason.
  for (const [row, f] of /** @type {Array<[Row, () => unknown]>} */ (Object.entries(rows)))
    if (!ROWS.includes(row)) delete rows[row];
    else
      try {
        await f();
      } catch (e) {
        delete rows[row];
        missing.push(`${impl.id} ${row}: ${e instanceof Error ? e.message : e}`);
      }
  if (args.profile && rows['cnn-step']) {
    const info = await tf.profile(() => model.trainOnBatch(xs, ys));
    /** @type {Record<string, number>} */
    const byKernel = {};
    for (const k of info.kernels) {
      const ms = await k.kernelTimeMs;
      if (typeof ms !== 'number') throw new Error(`TF.js could not time kernel ${k.name}: ${ms.error}`);
      byKernel[k.name] = (byKernel[k.name] ?? 0) + ms;
    }
    // The convolutions are TF.js' own code on both sides (the op wrappers, named in lower case, nest their kernels: left out).
    const kernels = Object.entries(byKernel).filter(([k]) => /^[A-Z_]/.test(k));
    const sum = (/** @type {Array<[string, number]>} */ list) => list.reduce((a, [, ms]) => a + ms, 0);
    const conv = sum(kernels.filter(([k]) => /Conv2D/.test(k)));
    const top = kernels.sort((a, b) => b[1] - a[1]).slice(0, 8);
    profiles.push(
      `${impl.id}: one step's kernels ${sum(kernels).toFixed(0)} ms, of which convolutions ${conv.toFixed(0)} ms and all else ${(sum(kernels) - conv).toFixed(0)} ms; most: ${top.map(([k, ms]) => `${k} ${ms.toFixed(0)}`).join(', ')}`,
    );
  }
  return rows;
}

note(`TF.js ${tf.version_core}; package ${JSON.stringify(backendInfo())} on ${threads} thread(s); batch ${batch}, ${rounds} rounds`);
/** @type {string[]} */
const missing = [];
/** @type {string[]} */
const profiles = [];
/** @type {Record<string, Partial<Record<Row, () => unknown>>>} */
const rowsOf = {};
for (const impl of IMPLS) rowsOf[impl.id] = await setUp(impl);
const fmt = (/** @type {number} */ ms) => (Number.isNaN(ms) ? 'n/a' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const med = (/** @type {string} */ id, /** @type {Row} */ row) => (times[id][row].length ? median(times[id][row]) : NaN);
/** @type {Record<string, Record<string, number[]>>} */
const times = Object.fromEntries(IMPLS.map((i) => [i.id, Object.fromEntries(ROWS.map((r) => [r, []]))]));
for (let round = 0; round < rounds; round++) {
  const order = round % 2 ? [...IMPLS].reverse() : IMPLS;
  for (const impl of order) {
    await use(impl.backend);
    for (const row of ROWS) {
      const f = rowsOf[impl.id][row]; // undefined: a row this implementation cannot run
      for (let k = 0; k < CALLS[row] && f; k++) {
        const t0 = now();
        await f();
        times[impl.id][row].push(now() - t0);
      }
    }
  }
  note(
    `round ${round + 1}/${rounds}: ${IMPLS.filter((i) => times[i.id][ROWS[0]].length)
      .map((i) => `${i.id} ${ROWS[0]} ${fmt(med(i.id, ROWS[0]))} ms`)
      .join(', ')}`,
  );
}

console.log(`\n| median ms (batch ${batch}) | ${IMPLS.map((i) => i.label).join(' | ')} | stock cpu ÷ batchnorm |`);
console.log(`|---|${IMPLS.map(() => '---|').join('')}---|`);
/** @type {Record<Row, string>} */
const WHAT = {
  'cnn-step': `CNN training step (trainOnBatch, ${batch}×${HW}×${HW}×3)`,
  'mlp-step': `MLP training step (trainOnBatch, ${8 * batch}×784)`,
  'bn-train': `BatchNormalization training, forward + backward (${batch}×${HW}×${HW}×${C2})`,
  'bn-infer': `BatchNormalization inference (${batch}×${HW}×${HW}×${C2})`,
  'ln-train': `LayerNormalization forward + backward (${batch}×${TOKENS}×${FEATURES}, axis −1)`,
  'ln-infer': `LayerNormalization forward (${batch}×${TOKENS}×${FEATURES}, axis −1)`,
};
for (const row of ROWS)
  console.log(`| ${WHAT[row]} | ${IMPLS.map((i) => fmt(med(i.id, row))).join(' | ')} | ${(med('tfjs-cpu', row) / med('batchnorm', row)).toFixed(1)}× |`);
for (const row of /** @type {Row[]} */ (['cnn-step', 'mlp-step']).filter((r) => ROWS.includes(r))) {
  const stock = med('tfjs-cpu', row),
    ours = med('batchnorm', row);
  console.log(
    `\n${WHAT[row]}: ${fmt(stock)} → ${fmt(ours)} ms (${((100 * (stock - ours)) / stock).toFixed(0)}% less); two normalization layers, the rest is TF.js' either way.`,
  );
}
for (const m of missing) console.log(`n/a: ${m}`);
for (const p of profiles) console.log(`profile: ${p}`);
if (args.json)
  writeFileSync(
    args.json,
    JSON.stringify(
      {
        missing,
        machine: { cpus: os.cpus()[0]?.model, cores: os.availableParallelism() },
        tfjs: tf.version_core,
        package: backendInfo(),
        threads,
        batch,
        rounds,
        times,
      },
      null,
      1,
    ),
  );
