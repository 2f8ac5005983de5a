/**
 * The lessons' other experiments, each a set of training runs and the numbers
 * its chart needs: sensitivity to the initial weights, a 10-layer MLP (the
 * scale of its activations at the start, the distribution of one hidden
 * unit's pre-activations over training, the gradient norm of every layer),
 * where BatchNorm goes in a conv block, and BatchNorm with dropout.
 */
import type { Data } from './data.js';
import { accuracy, train, type OptimizerName, type ProgressSink, type RunResult } from './experiments.js';
import { mlp, type Net } from './model.js';
import { Linear, ReLU } from './nn.js';
import { Rng } from './rng.js';

/** What every run of an experiment shares. */
export interface Base {
  data: Data;
  lr: number;
  optimizer: OptimizerName;
  epochs: number;
  batchSize: number;
  seed: number;
  progress?: ProgressSink;
}

/** One model trained with and without BatchNorm, from the same weights and batches. */
export interface Pair {
  batchNorm: RunResult;
  plain: RunResult;
}

// ---------------------------------------------------------------- initialization

export interface InitSensitivity {
  /** The factors the He initialisation's standard deviation was multiplied by. */
  scales: number[];
  runs: Array<{ scale: number } & Pair>;
}

/** Both MLPs with every initial weight scaled by each factor. */
export function initSensitivity(base: Base, scales: number[]): InitSensitivity {
  const runs = scales.map((scale) => {
    const common = { ...base, initScale: scale };
    return {
      scale,
      batchNorm: train({ ...common, label: `init ×${scale} with BatchNorm`, batchNorm: true }),
      plain: train({ ...common, label: `init ×${scale} without`, batchNorm: false }),
    };
  });
  return { scales, runs };
}

// ---------------------------------------------------------------- depth

/** PyTorch's default init of nn.Linear (uniform ±1/√in: std 1/√(3·in)) relative to He's (std √(2/in)). */
export const TORCH_DEFAULT_INIT = 1 / Math.sqrt(6);

export const QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95];

export interface StartScale {
  name: string;
  batchNorm: boolean;
  initScale: number;
  /** Standard deviation of each block's ReLU input (BatchNorm's output, or the Linear's without), first block first. */
  std: number[];
}

export interface Depth {
  hidden: number[];
  initScale: number;
  /** The activations' scale, layer by layer, of untrained models on one batch. */
  startScale: StartScale[];
  /** The training runs at `initScale`. */
  runs: Pair;
  /** Steps at which `gradients` were recorded. */
  steps: number[];
  /** [layer][record]: ‖∂L/∂W‖₂ of each Linear, the input layer first. */
  gradients: { batchNorm: number[][]; plain: number[][] };
}

/** The input of every ReLU of an MLP for n rows of x, copied; in the model's current mode. */
export function reluInputs(model: Net, x: Float32Array, n: number): Float32Array[] {
  const out: Float32Array[] = [];
  let h = x;
  for (const layer of model.layers) {
    if (layer instanceof ReLU) out.push(Float32Array.from(h));
    h = layer.forward(h, n);
  }
  return out;
}

function std(a: Float32Array): number {
  let m = 0;
  for (const v of a) m += v;
  m /= a.length;
  let s = 0;
  for (const v of a) s += (v - m) ** 2;
  return Math.sqrt(s / a.length);
}

/** The q-quantile of sorted values, linearly interpolated (numpy's default). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos),
    hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** A fixed batch of (at most) 256 test images that probes a model during training. */
export function probeOf(data: Data): { x: Float32Array; n: number } {
  const n = Math.min(256, data.test.n);
  return { x: data.test.images.subarray(0, n * data.test.features), n };
}

/** Every how many steps to record so that a run of `epochs` makes about `records` records. */
export function recordEvery(data: Data, batchSize: number, epochs: number, records: number): number {
  return Math.max(1, Math.floor((Math.floor(data.train.n / batchSize) * epochs) / records));
}

/** Records, every `every` steps, the gradient norm of each Linear's weights: [layer][record]. */
export function gradientRecorder(every: number): { onStep: (step: number, model: Net) => void; steps: number[]; norms: number[][] } {
  const steps: number[] = [],
    norms: number[][] = [];
  const onStep = (step: number, model: Net): void => {
    if (step % every !== 0) return;
    steps.push(step);
    model.layers
      .filter((l): l is Linear => l instanceof Linear)
      .forEach((l, i) => {
        const g = l.weight.grad;
        let s = 0;
        for (let j = 0; j < g.length; j++) s += g[j] * g[j];
        (norms[i] ??= []).push(Math.sqrt(s));
      });
  };
  return { onStep, steps, norms };
}

export interface Shift {
  /** Which hidden unit: the ReLU input of block `block` (0-based), unit `unit`. */
  block: number;
  unit: number;
  steps: number[];
  /** [quantile][record]: QUANTILES of that unit's pre-activation over the probe batch. */
  quantiles: number[][];
}

/**
 * Records, every `every` steps, the QUANTILES of one hidden unit's ReLU input
 * over the probe batch, run in training mode (as the next layer sees its
 * inputs during training); the running statistics are put back.
 */
export function shiftRecorder(
  probe: { x: Float32Array; n: number },
  block: number,
  unit: number,
  every: number,
): { onStep: (step: number, model: Net) => void; shift: Shift } {
  const shift: Shift = { block, unit, steps: [], quantiles: QUANTILES.map(() => []) };
  const onStep = (step: number, model: Net): void => {
    if (step % every !== 0) return;
    const saved = model.saveRunningStats();
    const inputs = reluInputs(model, probe.x, probe.n)[block];
    model.restoreRunningStats(saved);
    const width = inputs.length / probe.n;
    const values = Float64Array.from({ length: probe.n }, (_, r) => inputs[r * width + unit]).sort();
    shift.steps.push(step);
    QUANTILES.forEach((q, i) => shift.quantiles[i].push(quantile(values, q)));
  };
  return { onStep, shift };
}

/**
 * A 10-layer MLP (9 hidden layers of `width`) with and without BatchNorm, at
 * PyTorch's default init: the scale of the activations layer by layer at the
 * start (also at He's init and above it), then training, recording about
 * `records` times the gradient norm of every layer.
 */
export function depth(base: Base, options: { width?: number; layers?: number; records?: number } = {}): Depth {
  const width = options.width ?? 128,
    layers = options.layers ?? 10;
  const hidden = Array<number>(layers - 1).fill(width);
  const { data } = base;
  const sizes = [data.train.features, ...hidden, data.classes];
  const initScale = TORCH_DEFAULT_INIT;
  const probe = probeOf(data);
  const variants: Array<Omit<StartScale, 'std'>> = [
    { name: 'BN, PyTorch init', batchNorm: true, initScale },
    { name: 'no BN, PyTorch init', batchNorm: false, initScale },
    { name: 'no BN, He init', batchNorm: false, initScale: 1 },
    { name: 'no BN, He ×1.5', batchNorm: false, initScale: 1.5 },
  ];
  const startScale = variants.map((v) => {
    // The weights train() would start from: the same seed, the same draws.
    const model = mlp(sizes, { batchNorm: v.batchNorm, rng: new Rng(base.seed).fork(), initScale: v.initScale }).train();
    return { ...v, std: reluInputs(model, probe.x, probe.n).map(std) };
  });
  const every = recordEvery(data, base.batchSize, base.epochs, options.records ?? 60);
  const gBn = gradientRecorder(every),
    gPlain = gradientRecorder(every);
  const common = { ...base, hidden, initScale };
  const bn = train({ ...common, label: `${layers} layers with BatchNorm`, batchNorm: true, onStep: gBn.onStep });
  const plain = train({ ...common, label: `${layers} layers without`, batchNorm: false, onStep: gPlain.onStep });
  return { hidden, initScale, startScale, runs: { batchNorm: bn, plain }, steps: gBn.steps, gradients: { batchNorm: gBn.norms, plain: gPlain.norms } };
}

// ---------------------------------------------------------------- placement

export interface Placement {
  /** Conv → BatchNorm2d → ReLU. */
  before: RunResult;
  /** Conv → ReLU → BatchNorm2d. */
  after: RunResult;
  /** No BatchNorm. */
  plain: RunResult;
}

/** The small CNN with BatchNorm before and after the ReLU (and without); `reuse` takes runs already trained with the same settings. */
export function placement(base: Base, reuse: Partial<Placement> = {}): Placement {
  const common = { ...base, arch: 'cnn' as const };
  return {
    before: reuse.before ?? train({ ...common, label: 'CNN Conv → BN → ReLU', batchNorm: true }),
    after: train({ ...common, label: 'CNN Conv → ReLU → BN', batchNorm: true, bnAfterRelu: true }),
    plain: reuse.plain ?? train({ ...common, label: 'CNN without BatchNorm', batchNorm: false }),
  };
}

// ---------------------------------------------------------------- dropout

export interface DropoutRun {
  name: string;
  batchNorm: boolean;
  dropout: number;
  run: RunResult;
  /** Accuracy on the training images (eval mode): the gap to the test accuracy is overfitting. */
  trainAccuracy: number;
}

/** The MLP with neither, BatchNorm, dropout, and both; `reuse` takes the runs without dropout when already trained. */
export function dropout(base: Base, p: number, reuse: Partial<Pair> = {}): DropoutRun[] {
  const variants: Array<{ name: string; batchNorm: boolean; dropout: number; reused?: RunResult }> = [
    { name: 'neither', batchNorm: false, dropout: 0, reused: reuse.plain },
    { name: 'BatchNorm', batchNorm: true, dropout: 0, reused: reuse.batchNorm },
    { name: `dropout ${p}`, batchNorm: false, dropout: p },
    { name: `BatchNorm + dropout ${p}`, batchNorm: true, dropout: p },
  ];
  return variants.map((v) => {
    const run = v.reused ?? train({ ...base, label: v.name, batchNorm: v.batchNorm, dropout: v.dropout });
    run.model.eval();
    return { name: v.name, batchNorm: v.batchNorm, dropout: v.dropout, run, trainAccuracy: accuracy(run.model, base.data.train, 256) };
  });
}
