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
  /** Steps at which `shift` and `gradients` were recorded. */
  steps: number[];
  /** Which hidden unit's pre-activations `shift` follows: block (0-based) and unit. */
  shiftUnit: { block: number; unit: number };
  /** [quantile][record]: QUANTILES of that unit's pre-activation over a fixed batch of test images. */
  shift: { batchNorm: number[][]; plain: number[][] };
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
  const lo = Math.floor(pos), hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * A 10-layer MLP (9 hidden layers of `width`) with and without BatchNorm, at
 * PyTorch's default init: the scale of the activations layer by layer at the
 * start (also at He's init and above it), then training, recording about
 * `records` times the pre-activation quantiles of one unit and the gradient
 * norm of every layer.
 */
export function depth(base: Base, options: { width?: number; layers?: number; records?: number } = {}): Depth {
  const width = options.width ?? 128, layers = options.layers ?? 10;
  const hidden = Array<number>(layers - 1).fill(width);
  const { data } = base;
  const sizes = [data.train.features, ...hidden, data.classes];
  const initScale = TORCH_DEFAULT_INIT;
  // A fixed batch of 256 test images probes the models: at the start and during training.
  const probeN = Math.min(256, data.test.n);
  const probe = data.test.images.subarray(0, probeN * data.test.features);

  const variants: Array<Omit<StartScale, 'std'>> = [
    { name: 'with BatchNorm (PyTorch default init)', batchNorm: true, initScale },
    { name: 'without, PyTorch default init (He ×0.41)', batchNorm: false, initScale },
    { name: 'without, He init', batchNorm: false, initScale: 1 },
    { name: 'without, He ×1.5', batchNorm: false, initScale: 1.5 },
  ];
  const startScale = variants.map((v) => {
    // The weights train() would start from: the same seed, the same draws.
    const model = mlp(sizes, { batchNorm: v.batchNorm, rng: new Rng(base.seed).fork(), initScale: v.initScale }).train();
    return { ...v, std: reluInputs(model, probe, probeN).map(std) };
  });

  const every = Math.max(1, Math.floor((Math.floor(data.train.n / base.batchSize) * base.epochs) / (options.records ?? 60)));
  const steps: number[] = [];
  const shiftUnit = { block: layers - 2, unit: 0 };
  const record = (shift: number[][], gradients: number[][], isMain: boolean) => (step: number, model: Net) => {
    if (step % every !== 0) return;
    if (isMain) steps.push(step);
    const linears = model.layers.filter((l): l is Linear => l instanceof Linear);
    linears.forEach((l, i) => {
      const g = l.weight.grad;
      let s = 0;
      for (let j = 0; j < g.length; j++) s += g[j] * g[j];
      (gradients[i] ??= []).push(Math.sqrt(s));
    });
    // The probe in training mode, as the next layer sees its inputs during training; the running statistics are put back.
    const saved = model.saveRunningStats();
    const inputs = reluInputs(model, probe, probeN)[shiftUnit.block];
    model.restoreRunningStats(saved);
    const values = Float64Array.from({ length: probeN }, (_, r) => inputs[r * width + shiftUnit.unit]).sort();
    QUANTILES.forEach((q, i) => (shift[i] ??= []).push(quantile(values, q)));
  };
  const shift = { batchNorm: [] as number[][], plain: [] as number[][] };
  const gradients = { batchNorm: [] as number[][], plain: [] as number[][] };
  const common = { ...base, hidden, initScale };
  const bn = train({ ...common, label: `${layers} layers with BatchNorm`, batchNorm: true, onStep: record(shift.batchNorm, gradients.batchNorm, true) });
  const plain = train({ ...common, label: `${layers} layers without`, batchNorm: false, onStep: record(shift.plain, gradients.plain, false) });
  return { hidden, initScale, startScale, runs: { batchNorm: bn, plain }, steps, shiftUnit, shift, gradients };
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
