/**
 * The demo's models: an MLP 784-256-128-10 of Linear → BatchNorm1d → ReLU
 * blocks, a small CNN of Conv → BatchNorm2d → ReLU blocks, and the same
 * without BatchNorm.
 */
import { BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm } from 'batchnorm';
import { Conv2d, Dropout, Linear, ReLU, RowBuffer, type Layer, type Param } from './nn.js';
import type { Rng } from './rng.js';

/** Time spent inside the package's BatchNorm calls (forward + backward), in ms. */
export const bnClock = { ms: 0, calls: 0 };

/** The package's BatchNorm1d (over [n, C]) or BatchNorm2d (over [n, C, H, W]) as a layer of the demo's network. */
export class BatchNormLayer implements Layer {
  readonly bn: BatchNorm1d | BatchNorm2d;
  readonly inFeatures: number;
  private readonly shape: number[];
  private readonly y: RowBuffer;
  private readonly dx: RowBuffer;
  /** The input of the last forward (the experiments read batch statistics from it). */
  lastInput: Float32Array | null = null;

  /** `spatial`: [H, W] for BatchNorm2d, omitted for BatchNorm1d. */
  constructor(
    readonly channels: number,
    readonly spatial: [number, number] | null = null,
  ) {
    const options = { eps: 1e-5, momentum: 0.1 };
    this.bn = spatial ? new BatchNorm2d(channels, options) : new BatchNorm1d(channels, options);
    this.shape = spatial ? [0, channels, ...spatial] : [0, channels];
    this.inFeatures = spatial ? channels * spatial[0] * spatial[1] : channels;
    this.y = new RowBuffer(this.inFeatures);
    this.dx = new RowBuffer(this.inFeatures);
  }
  get outFeatures(): number {
    return this.inFeatures;
  }
  private shapeOf(n: number): number[] {
    this.shape[0] = n;
    return this.shape;
  }
  forward(x: Float32Array, n: number): Float32Array {
    const t = performance.now();
    const out = this.y.rows(n);
    this.bn.forward({ data: x, shape: this.shapeOf(n) }, { out });
    this.lastInput = x;
    bnClock.ms += performance.now() - t;
    bnClock.calls++;
    return out;
  }
  backward(dy: Float32Array, n: number): Float32Array {
    const t = performance.now();
    const out = this.dx.rows(n);
    this.bn.backward({ data: dy, shape: this.shapeOf(n) }, { out });
    bnClock.ms += performance.now() - t;
    bnClock.calls++;
    return out;
  }
  parameters(): Param[] {
    return this.bn.parameters();
  }
  train(mode: boolean): void {
    this.bn.train(mode);
  }
}

/**
 * The package's GroupNorm or LayerNorm over [n, C] rows, as a layer: each row
 * normalized with its own statistics (over the C features for LayerNorm, over
 * each group of C/groups features for GroupNorm), so nothing depends on the
 * rest of the batch and train and eval mode compute the same.
 */
export class RowNormLayer implements Layer {
  readonly norm: GroupNorm | LayerNorm;
  private readonly shape: number[];
  private readonly y: RowBuffer;
  private readonly dx: RowBuffer;

  constructor(
    readonly channels: number,
    readonly kind: 'group' | 'layer',
    readonly groups = 32,
  ) {
    this.norm = kind === 'group' ? new GroupNorm(Math.min(groups, channels), channels) : new LayerNorm(channels);
    this.shape = [0, channels];
    this.y = new RowBuffer(channels);
    this.dx = new RowBuffer(channels);
  }
  get inFeatures(): number {
    return this.channels;
  }
  get outFeatures(): number {
    return this.channels;
  }
  forward(x: Float32Array, n: number): Float32Array {
    this.shape[0] = n;
    const out = this.y.rows(n);
    this.norm.forward({ data: x, shape: this.shape }, { out });
    return out;
  }
  backward(dy: Float32Array, n: number): Float32Array {
    this.shape[0] = n;
    const out = this.dx.rows(n);
    this.norm.backward({ data: dy, shape: this.shape }, { out });
    return out;
  }
  parameters(): Param[] {
    return this.norm.parameters();
  }
  train(mode: boolean): void {
    this.norm.train(mode);
  }
}

/** A stack of layers ending in logits. */
export class Net {
  readonly batchNorms: Array<BatchNorm1d | BatchNorm2d>;
  readonly inFeatures: number;

  constructor(
    readonly layers: Layer[],
    readonly classes: number,
    readonly description: string,
  ) {
    this.batchNorms = layers.filter((l): l is BatchNormLayer => l instanceof BatchNormLayer).map((l) => l.bn);
    this.inFeatures = layers[0].inFeatures;
  }

  get hasBatchNorm(): boolean {
    return this.batchNorms.length > 0;
  }

  /** Training mode (batch statistics) or eval mode (running statistics), as in PyTorch. */
  train(mode = true): this {
    for (const l of this.layers) l.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Logits for n rows of x (a view of the last layer's buffer). */
  forward(x: Float32Array, n: number): Float32Array {
    let h = x;
    for (const l of this.layers) h = l.forward(h, n);
    return h;
  }

  /** Backpropagates dL/dlogits; the first layer skips its (unused) input gradient. */
  backward(dlogits: Float32Array, n: number): void {
    let g: Float32Array | null = dlogits;
    for (let i = this.layers.length - 1; i >= 0 && g; i--) g = this.layers[i].backward(g, n, i > 0);
  }

  parameters(): Param[] {
    return this.layers.flatMap((l) => l.parameters());
  }

  /** Running statistics of every BatchNorm, to put back after an experiment that changes them. */
  saveRunningStats(): Array<{ mean: Float32Array; var: Float32Array; count: number }> {
    return this.batchNorms.map((bn) => ({
      mean: Float32Array.from(bn.runningMean!),
      var: Float32Array.from(bn.runningVar!),
      count: bn.numBatchesTracked ?? 0,
    }));
  }

  restoreRunningStats(saved: Array<{ mean: Float32Array; var: Float32Array; count: number }>): void {
    this.batchNorms.forEach((bn, i) => {
      bn.runningMean!.set(saved[i].mean);
      bn.runningVar!.set(saved[i].var);
      bn.numBatchesTracked = saved[i].count;
    });
  }
}

export interface MlpOptions {
  batchNorm: boolean;
  /** GroupNorm (32 groups) or LayerNorm in place of BatchNorm1d (default: BatchNorm1d when batchNorm). */
  norm?: 'group' | 'layer';
  rng: Rng;
  /** Multiplies the He standard deviation of every Linear's initial weights (default 1). */
  initScale?: number;
  /** Dropout probability after each ReLU (default 0: none). */
  dropout?: number;
}

/**
 * An MLP, `sizes` e.g. [784, 256, 128, 10]. With BatchNorm the hidden Linears
 * have no bias: the BatchNorm right after subtracts the mean, bias included,
 * and its own β takes that role (as PyTorch code writes bias=False).
 */
export function mlp(sizes: number[], options: MlpOptions): Net {
  const { batchNorm, rng, initScale = 1, dropout = 0, norm } = options;
  // Dropout draws from its own generator, made after the weights: a model with
  // dropout starts from the same weights as one without.
  const linears = sizes.slice(1).map((out, l) => new Linear(sizes[l], out, rng, { bias: l + 2 === sizes.length || !batchNorm, initScale }));
  const dropRng = dropout > 0 ? rng.fork() : null;
  const layers: Layer[] = [];
  linears.forEach((linear, l) => {
    layers.push(linear);
    if (l + 1 === linears.length) return;
    if (batchNorm) layers.push(norm ? new RowNormLayer(linear.outFeatures, norm) : new BatchNormLayer(linear.outFeatures));
    layers.push(new ReLU(linear.outFeatures));
    if (dropRng) layers.push(new Dropout(linear.outFeatures, dropout, dropRng));
  });
  const normName = norm === 'group' ? 'GroupNorm(32)' : norm === 'layer' ? 'LayerNorm' : 'BatchNorm1d';
  const block = [batchNorm ? `Linear → ${normName} → ReLU` : 'Linear → ReLU', dropout > 0 ? ` → Dropout(${dropout})` : ''].join('');
  const desc = `MLP ${sizes.join('-')}: ${block} blocks${initScale !== 1 ? `, initial weights ×${Number(initScale.toPrecision(3))}` : ''}`;
  return new Net(layers, sizes[sizes.length - 1], desc);
}

/**
 * A small CNN for one-channel images: two blocks of 3×3 convolution with
 * stride 2 (28×28 → 14×14 → 7×7), BatchNorm2d and ReLU, then a head of
 * Linear → BatchNorm1d → ReLU → Linear. Without BatchNorm, the same without
 * the BatchNorm layers (and with biases).
 */
export function cnn(
  height: number,
  width: number,
  classes: number,
  options: { batchNorm: boolean; rng: Rng; channels?: [number, number]; hidden?: number; bnAfterRelu?: boolean },
): Net {
  const { batchNorm, rng } = options;
  const after = batchNorm && options.bnAfterRelu === true;
  const [c1, c2] = options.channels ?? [8, 16];
  const hidden = options.hidden ?? 64;
  const layers: Layer[] = [];
  let c = 1,
    h = height,
    w = width;
  for (const oc of [c1, c2]) {
    // Conv → ReLU → BatchNorm keeps the conv's bias: the ReLU between them makes it count.
    const conv = new Conv2d(c, oc, h, w, 3, rng, { stride: 2, padding: 1, bias: !batchNorm || after });
    layers.push(conv);
    if (batchNorm && !after) layers.push(new BatchNormLayer(oc, [conv.outH, conv.outW]));
    layers.push(new ReLU(conv.outFeatures));
    if (after) layers.push(new BatchNormLayer(oc, [conv.outH, conv.outW]));
    c = oc;
    h = conv.outH;
    w = conv.outW;
  }
  layers.push(new Linear(c * h * w, hidden, rng, { bias: !batchNorm }));
  if (batchNorm) layers.push(new BatchNormLayer(hidden));
  layers.push(new ReLU(hidden));
  layers.push(new Linear(hidden, classes, rng));
  const bn2 = batchNorm ? ' → BatchNorm2d' : '',
    bn1 = batchNorm ? ' → BatchNorm1d' : '';
  const block = after ? 'Conv 3×3 stride 2 → ReLU → BatchNorm2d' : `Conv 3×3 stride 2${bn2} → ReLU`;
  const desc = `CNN: 2 × (${block}) with ${c1} and ${c2} channels, Linear ${c * h * w}→${hidden}${bn1} → ReLU → Linear ${hidden}→${classes}`;
  return new Net(layers, classes, desc);
}
