/**
 * Training runs and the experiments built on them: BatchNorm vs none at one
 * learning rate, a learning-rate sweep, the train-mode-at-test-time pitfall,
 * and the running statistics over training.
 */
import type { Data, Dataset } from './data.js';
import { BatchNormLayer, cnn, mlp, type Net } from './model.js';
import { Adam, SGD, softmaxCrossEntropy, argmaxRow, type Optimizer } from './nn.js';
import { Rng } from './rng.js';

export type OptimizerName = 'sgd' | 'adam';

/** What a progress display is told about a run. */
export interface ProgressSink {
  start(label: string, totalSteps: number): RunProgress;
}
export interface RunProgress {
  update(step: number, info: { epoch: number; loss: number }): void;
  done(info: { accuracy: number; diverged: boolean; ms: number }): void;
}

export const silentProgress: ProgressSink = { start: () => ({ update() {}, done() {} }) };

export interface TrainConfig {
  label: string;
  data: Data;
  batchNorm: boolean;
  lr: number;
  optimizer: OptimizerName;
  /** SGD's momentum (default 0.9). */
  momentum?: number;
  epochs: number;
  batchSize: number;
  seed: number;
  /** The MLP (default) or the small CNN. */
  arch?: 'mlp' | 'cnn';
  /** Hidden layer sizes of the MLP; default [256, 128]. */
  hidden?: number[];
  /** MLP with batchNorm: GroupNorm or LayerNorm instead of BatchNorm1d. */
  norm?: 'group' | 'layer';
  /** Multiplies the initial weights' He standard deviation (MLP; default 1). */
  initScale?: number;
  /** Dropout probability after each ReLU (MLP; default 0). */
  dropout?: number;
  /** CNN: Conv → ReLU → BatchNorm2d instead of Conv → BatchNorm2d → ReLU. */
  bnAfterRelu?: boolean;
  /** Record the running statistics of these channels of the first BatchNorm at every step. */
  watchChannels?: number[];
  /** Called with the model before its first step. */
  onModel?: (model: Net) => void;
  /** Called after every optimizer step (the gradients of the step are still there). */
  onStep?: (step: number, model: Net) => void;
  progress?: ProgressSink;
}

/** Running and batch statistics of a few channels of the first BatchNorm, one entry per training step. */
export interface Watch {
  channels: number[];
  /** Step (1-based) of each record. */
  steps: number[];
  /** [channel][record] */
  runningMean: number[][];
  runningVar: number[][];
  batchMean: number[][];
  batchVar: number[][];
}

export interface RunResult {
  label: string;
  batchNorm: boolean;
  lr: number;
  optimizer: OptimizerName;
  /** Training loss of every step (NaN after a divergence). */
  stepLoss: number[];
  stepsPerEpoch: number;
  /** Test accuracy (eval mode) after each epoch. */
  epochAccuracy: number[];
  /** Mean training loss of each epoch. */
  epochLoss: number[];
  finalAccuracy: number;
  /**
   * Training failed: the loss became NaN or infinite (training stops there),
   * or the model ended near chance (test accuracy below twice 1/k).
   */
  diverged: boolean;
  /** The step whose loss was not finite, if any. */
  divergedAtStep: number | null;
  /** Largest training loss of any step. */
  peakLoss: number;
  ms: number;
  model: Net;
  watch: Watch | null;
}

export function makeOptimizer(model: Net, name: OptimizerName, lr: number, momentum = 0.9): Optimizer {
  return name === 'adam' ? new Adam(model.parameters(), lr) : new SGD(model.parameters(), lr, momentum);
}

/** Copies rows `order[from..from+n)` of a dataset into the batch buffers. */
function gather(ds: Dataset, order: Uint32Array, from: number, n: number, x: Float32Array, y: Uint8Array): void {
  const f = ds.features;
  for (let i = 0; i < n; i++) {
    const src = order[from + i];
    x.set(ds.images.subarray(src * f, (src + 1) * f), i * f);
    y[i] = ds.labels[src];
  }
}

/**
 * Splits n rows into batches of `size`; a last batch of a single row (which
 * BatchNorm cannot normalize in training mode) joins the one before.
 */
export function batchBounds(n: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < n; s += size) out.push([s, Math.min(n, s + size)]);
  if (out.length > 1 && out[out.length - 1][1] - out[out.length - 1][0] === 1) {
    const last = out.pop()!;
    out[out.length - 1][1] = last[1];
  }
  return out;
}

/**
 * Accuracy on a dataset in batches of `batchSize`, in the model's current
 * mode. In training mode BatchNorm normalizes each batch with its own
 * statistics (and updates the running ones, which this function puts back).
 */
export function accuracy(model: Net, ds: Dataset, batchSize: number): number {
  const saved = model.saveRunningStats();
  const k = model.classes;
  let correct = 0;
  for (const [s, e] of batchBounds(ds.n, batchSize)) {
    const n = e - s;
    const logits = model.forward(ds.images.subarray(s * ds.features, e * ds.features), n);
    for (let i = 0; i < n; i++) if (argmaxRow(logits, i, k) === ds.labels[s + i]) correct++;
  }
  model.restoreRunningStats(saved);
  return correct / ds.n;
}

/** Trains one model; stops early if the loss stops being finite. */
export function train(cfg: TrainConfig): RunResult {
  const t0 = performance.now();
  const { data, batchSize } = cfg;
  const ds = data.train;
  const rng = new Rng(cfg.seed);
  // Same seed: the BatchNorm model and the plain one start from the same Linear weights and see the same batches.
  const model =
    cfg.arch === 'cnn'
      ? cnn(ds.height, ds.width, data.classes, { batchNorm: cfg.batchNorm, rng: rng.fork(), bnAfterRelu: cfg.bnAfterRelu })
      : mlp([ds.features, ...(cfg.hidden ?? [256, 128]), data.classes], {
          batchNorm: cfg.batchNorm,
          rng: rng.fork(),
          initScale: cfg.initScale,
          dropout: cfg.dropout,
          norm: cfg.norm,
        });
  cfg.onModel?.(model);
  const order = new Uint32Array(ds.n).map((_, i) => i);
  const shuffleRng = rng.fork();
  const opt = makeOptimizer(model, cfg.optimizer, cfg.lr, cfg.momentum);
  const x = new Float32Array(batchSize * ds.features);
  const y = new Uint8Array(batchSize);
  const dlogits = new Float32Array(batchSize * data.classes);
  const bounds = batchBounds(ds.n, batchSize).filter(([s, e]) => e - s <= batchSize);
  const stepsPerEpoch = bounds.length;
  const totalSteps = stepsPerEpoch * cfg.epochs;
  const progress = (cfg.progress ?? silentProgress).start(cfg.label, totalSteps);

  const bnLayer = model.layers.find((l): l is BatchNormLayer => l instanceof BatchNormLayer && l.spatial === null) ?? null;
  const watch: Watch | null =
    bnLayer && cfg.watchChannels
      ? {
          channels: cfg.watchChannels,
          steps: [],
          runningMean: cfg.watchChannels.map(() => []),
          runningVar: cfg.watchChannels.map(() => []),
          batchMean: cfg.watchChannels.map(() => []),
          batchVar: cfg.watchChannels.map(() => []),
        }
      : null;

  const stepLoss: number[] = [];
  const epochAccuracy: number[] = [];
  const epochLoss: number[] = [];
  let nonFinite = false,
    divergedAtStep: number | null = null,
    step = 0;

  for (let epoch = 0; epoch < cfg.epochs && !nonFinite; epoch++) {
    model.train();
    shuffleRng.shuffle(order);
    let sum = 0,
      count = 0;
    for (const [s, e] of bounds) {
      const n = e - s;
      gather(ds, order, s, n, x, y);
      opt.zeroGrad();
      const xb = n === batchSize ? x : x.subarray(0, n * ds.features);
      const logits = model.forward(xb, n);
      const g = n === batchSize ? dlogits : dlogits.subarray(0, n * data.classes);
      const { loss } = softmaxCrossEntropy(logits, y, n, data.classes, g);
      step++;
      stepLoss.push(loss);
      if (!Number.isFinite(loss)) {
        nonFinite = true;
        divergedAtStep = step;
        break;
      }
      model.backward(g, n);
      opt.step();
      sum += loss;
      count++;
      if (watch && bnLayer) recordWatch(watch, step, bnLayer, n);
      cfg.onStep?.(step, model);
      progress.update(step, { epoch: epoch + 1, loss });
    }
    epochLoss.push(count ? sum / count : NaN);
    model.eval();
    epochAccuracy.push(accuracy(model, data.test, 256));
  }
  model.eval();
  const finalAccuracy = accuracy(model, data.test, 256);
  while (epochAccuracy.length < cfg.epochs) epochAccuracy.push(finalAccuracy);
  while (epochLoss.length < cfg.epochs) epochLoss.push(NaN);
  const peakLoss = stepLoss.reduce((m, v) => (v > m || Number.isNaN(v) ? v : m), -Infinity);
  const diverged = nonFinite || finalAccuracy < 2 / data.classes;
  const ms = performance.now() - t0;
  progress.done({ accuracy: finalAccuracy, diverged, ms });
  return {
    label: cfg.label,
    batchNorm: cfg.batchNorm,
    lr: cfg.lr,
    optimizer: cfg.optimizer,
    stepLoss,
    stepsPerEpoch,
    epochAccuracy,
    epochLoss,
    finalAccuracy,
    diverged,
    divergedAtStep,
    peakLoss,
    ms,
    model,
    watch,
  };
}

function recordWatch(w: Watch, step: number, layer: BatchNormLayer, n: number): void {
  const bn = layer.bn;
  const input = layer.lastInput;
  const C = layer.channels;
  w.steps.push(step);
  w.channels.forEach((c, i) => {
    w.runningMean[i].push(bn.runningMean![c]);
    w.runningVar[i].push(bn.runningVar![c]);
    let m = 0,
      v = 0;
    if (input) {
      for (let r = 0; r < n; r++) m += input[r * C + c];
      m /= n;
      for (let r = 0; r < n; r++) v += (input[r * C + c] - m) ** 2;
      v /= n - 1; // unbiased, as the running variance is updated with
    }
    w.batchMean[i].push(m);
    w.batchVar[i].push(v);
  });
}

/** Experiment 3: test accuracy in eval mode vs in training mode with small test batches. */
export interface Pitfall {
  evalAccuracy: number;
  evalBatchSize: number;
  trainMode: Array<{ batchSize: number; accuracy: number }>;
}

export function pitfall(model: Net, test: Dataset, batchSizes: number[]): Pitfall {
  model.eval();
  const evalAccuracy = accuracy(model, test, 256);
  model.train();
  const trainMode = batchSizes.map((batchSize) => ({ batchSize, accuracy: accuracy(model, test, batchSize) }));
  model.eval();
  return { evalAccuracy, evalBatchSize: 256, trainMode };
}
