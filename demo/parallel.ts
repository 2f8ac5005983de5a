/**
 * Data-parallel training of the demo's MLP (784-256-128-10, Linear →
 * BatchNorm1d → ReLU): W ranks, each with a slice of every batch of 64, the
 * BatchNorms synchronized (SyncBatchNorm.convert) and the gradients summed
 * over the ranks (allReduceGradients, the loss being the mean over the whole
 * batch), so that with the same seed it trains like one process on the whole
 * batch: same initial weights, same batches, same statistics.
 *
 *   node demo/dist/parallel.js [--workers 2] [--epochs 2] [--train 4000] [--test 1000] [--seed 42] [--lr 0.1]
 *       one process on the whole batch, then 1 and W worker_threads (WorkerCollective)
 *   mpirun -np 2 node demo/dist/parallel.js --mpi [...]
 *       W MPI processes (MpiCollective; needs `npm run build:mpi`)
 *
 * Prints each run's test accuracy and training images per second, and the
 * cost of one SyncBatchNorm layer's communication (a forward's allGather of
 * 1 + 2C values and a backward's allReduceSum of 2C) per collective. `--json`
 * prints the figures as JSON instead.
 */
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { allReduceGradients, MpiCollective, SyncBatchNorm, WorkerCollective, type Collective, type WorkerGroup } from 'batchnorm';
import { loadData, type Data } from './data.js';
import { accuracy, batchBounds, train } from './experiments.js';
import { BatchNormLayer, mlp } from './model.js';
import { SGD, softmaxCrossEntropy } from './nn.js';
import { Rng } from './rng.js';

export interface ParallelOptions {
  epochs: number;
  trainSize: number;
  testSize: number;
  seed: number;
  lr: number;
  batchSize: number;
}

export interface RankResult {
  accuracy: number;
  /** Training time (no evaluation), ms. */
  ms: number;
  imagesPerSecond: number;
  /** Mean loss of each epoch over the whole batches. */
  epochLoss: number[];
}

const DEFAULTS: ParallelOptions = { epochs: 2, trainSize: 4000, testSize: 1000, seed: 42, lr: 0.1, batchSize: 64 };

/** Rows [lo, hi) of a batch of n rows that rank r of W takes. */
function sliceOf(n: number, r: number, W: number): [number, number] {
  return [Math.floor((n * r) / W), Math.floor((n * (r + 1)) / W)];
}

/**
 * This rank's part of data-parallel training: the same model, shuffles and
 * batches as experiments.ts's train() with the same seed (so one rank
 * reproduces it), each batch's rows split over the ranks.
 */
export async function trainRank(collective: Collective, data: Data, o: ParallelOptions): Promise<RankResult> {
  const { rank, worldSize: W } = collective;
  const ds = data.train,
    k = data.classes,
    f = ds.features;
  const rng = new Rng(o.seed);
  const model = mlp([f, 256, 128, k], { batchNorm: true, rng: rng.fork() });
  const shuffleRng = rng.fork();
  // Each BatchNorm of the model becomes a SyncBatchNorm sharing its parameters, statistics and mode.
  const sync = new Map(model.layers.filter((l): l is BatchNormLayer => l instanceof BatchNormLayer).map((l) => [l, SyncBatchNorm.convert(l.bn, collective)]));
  const opt = new SGD(model.parameters(), o.lr, 0.9);
  const order = new Uint32Array(ds.n).map((_, i) => i);
  const bounds = batchBounds(ds.n, o.batchSize).filter(([s, e]) => e - s <= o.batchSize);
  const x = new Float32Array(o.batchSize * f),
    y = new Uint8Array(o.batchSize),
    g = new Float32Array(o.batchSize * k);
  const epochLoss: number[] = [];
  let ms = 0,
    images = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    model.train();
    shuffleRng.shuffle(order);
    let lossSum = 0;
    const t0 = performance.now();
    for (const [s, e] of bounds) {
      const n = e - s,
        [lo, hi] = sliceOf(n, rank, W),
        m = hi - lo;
      for (let i = 0; i < m; i++) {
        const src = order[s + lo + i];
        x.set(ds.images.subarray(src * f, (src + 1) * f), i * f);
        y[i] = ds.labels[src];
      }
      opt.zeroGrad();
      let h: Float32Array = x.subarray(0, m * f);
      for (const layer of model.layers) {
        const bn = sync.get(layer as BatchNormLayer);
        h = bn ? ((await bn.forward({ data: h, shape: [m, layer.inFeatures] })).data as Float32Array) : layer.forward(h, m);
      }
      const grad = g.subarray(0, m * k);
      if (m > 0) {
        // The loss is the mean over the whole batch of n: this slice's gradient is (softmax − onehot) / n.
        lossSum += softmaxCrossEntropy(h, y, m, k, grad).loss * m;
        for (let i = 0; i < grad.length; i++) grad[i] *= m / n;
      }
      let d: Float32Array | null = grad;
      for (let i = model.layers.length - 1; i >= 0 && d; i--) {
        const layer = model.layers[i],
          bn = sync.get(layer as BatchNormLayer);
        d = bn ? ((await bn.backward({ data: d, shape: [m, layer.inFeatures] })).data as Float32Array) : layer.backward(d, m, i > 0);
      }
      // Every parameter's gradient over the whole batch: the sum of the slices'.
      await allReduceGradients(model.parameters(), collective, { op: 'sum' });
      opt.step();
      images += n;
    }
    ms += performance.now() - t0;
    const total = await collective.allReduceSum(Float64Array.of(lossSum));
    epochLoss.push(total[0] / bounds.reduce((a, [s, e]) => a + e - s, 0));
  }
  model.eval();
  return { accuracy: accuracy(model, data.test, 256), ms, imagesPerSecond: (images / ms) * 1000, epochLoss };
}

/** Microseconds of one SyncBatchNorm layer's communication (forward allGather of 1 + 2C, backward allReduceSum of 2C), median of `rounds`. */
export async function commCost(collective: Collective, channels: number, rounds = 200): Promise<number> {
  const gather = new Float64Array(1 + 2 * channels),
    sum = new Float64Array(2 * channels),
    times: number[] = [];
  for (let i = 0; i < rounds + 20; i++) {
    const t = performance.now();
    await collective.allGather(gather);
    await collective.allReduceSum(sum);
    if (i >= 20) times.push((performance.now() - t) * 1000);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

interface Job {
  group: WorkerGroup;
  rank: number;
  options: ParallelOptions;
}

async function workerMain(job: Job): Promise<void> {
  const collective = WorkerCollective.join(job.group, job.rank);
  const data = loadData({ trainSize: job.options.trainSize, testSize: job.options.testSize, seed: job.options.seed });
  const result = await trainRank(collective, data, job.options);
  const comm = { c128: await commCost(collective, 128), c256: await commCost(collective, 256) };
  parentPort!.postMessage({ rank: job.rank, result, comm });
}

/** W worker_threads over one WorkerCollective; rank 0's result. */
function runWorkers(W: number, options: ParallelOptions): Promise<{ result: RankResult; comm: { c128: number; c256: number } }> {
  // Slots of 2^18 values: the MLP's 235k gradients go in one round a step, not 15 of the default 16384.
  const group = WorkerCollective.createGroup(W, { slotLength: 1 << 18 });
  const file = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    for (let rank = 0; rank < W; rank++) {
      const w = new Worker(file, { workerData: { group, rank, options } satisfies Job });
      w.on('message', (m: { rank: number; result: RankResult; comm: { c128: number; c256: number } }) => {
        if (m.rank === 0) resolve(m);
        void w.terminate();
      });
      w.on('error', (e) => {
        WorkerCollective.abort(group);
        reject(e);
      });
    }
  });
}

function parseArgs(argv: string[]): { options: ParallelOptions; workers: number; mpi: boolean; json: boolean } {
  const options = { ...DEFAULTS };
  let workers = 2,
    mpi = false,
    json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i],
      v = () => Number(argv[++i]);
    if (a === '--workers') workers = v();
    else if (a === '--epochs') options.epochs = v();
    else if (a === '--train') options.trainSize = v();
    else if (a === '--test') options.testSize = v();
    else if (a === '--seed') options.seed = v();
    else if (a === '--lr') options.lr = v();
    else if (a === '--mpi') mpi = true;
    else if (a === '--json') json = true;
    else throw new Error(`unknown option ${a}; see the top of demo/parallel.ts`);
  }
  return { options, workers, mpi, json };
}

async function main(): Promise<void> {
  const { options, workers, mpi, json } = parseArgs(process.argv.slice(2));
  const data = () => loadData({ trainSize: options.trainSize, testSize: options.testSize, seed: options.seed });
  if (mpi) {
    const collective = MpiCollective.init();
    const result = await trainRank(collective, data(), options);
    const comm = { c128: await commCost(collective, 128), c256: await commCost(collective, 256) };
    if (collective.rank === 0) {
      const row = { collective: 'MPI', ranks: collective.worldSize, ...result, commUs: comm };
      console.log(
        json
          ? JSON.stringify(row)
          : `MPI, ${collective.worldSize} process(es): accuracy ${(result.accuracy * 100).toFixed(2)}%, ${result.imagesPerSecond.toFixed(0)} images/s; one SyncBatchNorm layer's communication: ${comm.c128.toFixed(0)} us (C = 128), ${comm.c256.toFixed(0)} us (C = 256)`,
      );
    }
    return;
  }
  const t0 = performance.now();
  const single = train({
    label: 'one process',
    data: data(),
    batchNorm: true,
    lr: options.lr,
    optimizer: 'sgd',
    epochs: options.epochs,
    batchSize: options.batchSize,
    seed: options.seed,
  });
  const singleMs = performance.now() - t0;
  const rows: Array<Record<string, unknown>> = [{ collective: 'none (one process, whole batch)', ranks: 1, accuracy: single.finalAccuracy }];
  if (!json) console.log(`one process, whole batch: accuracy ${(single.finalAccuracy * 100).toFixed(2)}% (${(singleMs / 1000).toFixed(1)} s with evaluation)`);
  for (const W of [...new Set([1, workers])]) {
    const { result, comm } = await runWorkers(W, options);
    rows.push({ collective: 'WorkerCollective', ranks: W, ...result, commUs: comm });
    if (!json)
      console.log(
        `${W} worker thread(s): accuracy ${(result.accuracy * 100).toFixed(2)}%, ${result.imagesPerSecond.toFixed(0)} images/s; one SyncBatchNorm layer's communication: ${comm.c128.toFixed(0)} us (C = 128), ${comm.c256.toFixed(0)} us (C = 256)`,
      );
  }
  if (json) console.log(JSON.stringify(rows));
}

if (!isMainThread && (workerData as Job | undefined)?.group) {
  void workerMain(workerData as Job);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
