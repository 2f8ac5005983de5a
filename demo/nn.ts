/**
 * The rest of a small neural network, written for the demo: Linear, ReLU,
 * softmax cross-entropy, SGD with momentum and Adam. BatchNorm itself comes
 * from the package.
 *
 * Tensors are row-major Float32Arrays of `n` rows (the batch). Every layer
 * owns its output and gradient buffers and hands out views of them, so a
 * training step allocates (almost) nothing. Matrix products run in i-k-j
 * order: the innermost loop walks contiguous rows of both operands.
 */
import { Rng } from './rng.js';

export type FloatArray = Float32Array | Float64Array;

/** A learnable array and its gradient (null until the first backward), the package's shape of a parameter. */
export interface Param {
  data: FloatArray;
  grad: FloatArray | null;
}

/** What a model is made of: each layer maps n rows to n rows. */
export interface Layer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Returns a view of the layer's own buffer: valid until its next forward. */
  forward(x: Float32Array, n: number): Float32Array;
  /** Gradient w.r.t. the input of the last forward (null when `needInputGrad` is false); adds into parameter grads. */
  backward(dy: Float32Array, n: number, needInputGrad: boolean): Float32Array | null;
  parameters(): Param[];
  train(mode: boolean): void;
}

/** A growable Float32Array that hands out views of exactly n rows. */
export class RowBuffer {
  private buf = new Float32Array(0);
  private lastN = -1;
  private last = new Float32Array(0);
  constructor(readonly width: number) {}
  rows(n: number): Float32Array {
    if (n === this.lastN) return this.last;
    if (this.buf.length < n * this.width) this.buf = new Float32Array(n * this.width);
    this.lastN = n;
    this.last = this.buf.subarray(0, n * this.width);
    return this.last;
  }
}

/**
 * y = x·W + b, with W stored as [in, out] (the transpose of PyTorch's
 * [out, in]) so that the forward's inner loop runs along a row of W.
 * He (Kaiming normal) initialisation: W ~ N(0, 2 / in), b = 0; `initScale`
 * multiplies that standard deviation (PyTorch's default init of nn.Linear,
 * uniform ±1/√in, has std 1/√(3·in): He's times 1/√6).
 */
export class Linear implements Layer {
  readonly weight: Param & { grad: Float32Array };
  readonly bias: (Param & { grad: Float32Array }) | null;
  private x: Float32Array | null = null;
  private readonly y: RowBuffer;
  private readonly dx: RowBuffer;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    rng: Rng,
    options: { bias?: boolean; initScale?: number } = {},
  ) {
    const w = new Float32Array(inFeatures * outFeatures);
    const std = Math.sqrt(2 / inFeatures) * (options.initScale ?? 1);
    for (let i = 0; i < w.length; i++) w[i] = rng.normal() * std;
    this.weight = { data: w, grad: new Float32Array(w.length) };
    this.bias = options.bias === false ? null : { data: new Float32Array(outFeatures), grad: new Float32Array(outFeatures) };
    this.y = new RowBuffer(outFeatures);
    this.dx = new RowBuffer(inFeatures);
  }

  forward(x: Float32Array, n: number): Float32Array {
    const I = this.inFeatures,
      O = this.outFeatures;
    const W = this.weight.data as Float32Array;
    const b = this.bias?.data;
    const y = this.y.rows(n);
    for (let i = 0; i < n; i++) {
      const yo = i * O,
        xo = i * I;
      if (b) for (let j = 0; j < O; j++) y[yo + j] = b[j];
      else y.fill(0, yo, yo + O);
      for (let k = 0; k < I; k++) {
        const a = x[xo + k];
        if (a === 0) continue; // MNIST pixels and ReLU outputs are mostly zero
        const wo = k * O;
        for (let j = 0; j < O; j++) y[yo + j] += a * W[wo + j];
      }
    }
    this.x = x;
    return y;
  }

  backward(dy: Float32Array, n: number, needInputGrad: boolean): Float32Array | null {
    const x = this.x;
    if (!x) throw new Error('Linear.backward() needs a forward() first');
    const I = this.inFeatures,
      O = this.outFeatures;
    const W = this.weight.data as Float32Array;
    const gW = this.weight.grad;
    // dW[k, j] += Σ_i x[i, k] · dy[i, j]
    for (let i = 0; i < n; i++) {
      const xo = i * I,
        yo = i * O;
      for (let k = 0; k < I; k++) {
        const a = x[xo + k];
        if (a === 0) continue;
        const wo = k * O;
        for (let j = 0; j < O; j++) gW[wo + j] += a * dy[yo + j];
      }
    }
    if (this.bias) {
      const gb = this.bias.grad;
      for (let i = 0; i < n; i++) {
        const yo = i * O;
        for (let j = 0; j < O; j++) gb[j] += dy[yo + j];
      }
    }
    if (!needInputGrad) return null;
    // dx[i, k] = Σ_j dy[i, j] · W[k, j]: a dot product of two contiguous rows
    const dx = this.dx.rows(n);
    for (let i = 0; i < n; i++) {
      const xo = i * I,
        yo = i * O;
      for (let k = 0; k < I; k++) {
        const wo = k * O;
        let s = 0;
        for (let j = 0; j < O; j++) s += dy[yo + j] * W[wo + j];
        dx[xo + k] = s;
      }
    }
    return dx;
  }

  parameters(): Param[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  train(): void {}
}

/**
 * 2-D convolution over NCHW rows (each row one image of inC × H × W), with
 * PyTorch's weight layout [outC, inC, k, k], a stride and zero padding, as a
 * matrix product: im2col turns each image into cols[inC·k·k][outH·outW], and
 * y[outC][outH·outW] = W[outC][inC·k·k] · cols in i-k-j order, so the inner
 * loops run along whole output planes. He initialisation.
 */
export class Conv2d implements Layer {
  readonly weight: Param & { grad: Float32Array };
  readonly bias: (Param & { grad: Float32Array }) | null;
  readonly outH: number;
  readonly outW: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
  private x: Float32Array | null = null;
  private readonly y: RowBuffer;
  private readonly dx: RowBuffer;
  /** Per kernel row (column): the output rows (columns) that tap reaches inside the image. */
  private readonly rowsOf: Array<[number, number]>;
  private readonly colsOf: Array<[number, number]>;
  /** Taps per output pixel (inC·k·k) and output pixels per channel (outH·outW). */
  private readonly Q: number;
  private readonly P: number;
  /** The im2col matrices of the batch (kept for the backward) and one image's gradient of them. */
  private readonly cols: RowBuffer;
  private readonly dcols: Float32Array;

  constructor(
    readonly inC: number,
    readonly outC: number,
    readonly inH: number,
    readonly inW: number,
    readonly k: number,
    rng: Rng,
    readonly options: { stride?: number; padding?: number; bias?: boolean } = {},
  ) {
    const stride = options.stride ?? 1,
      pad = options.padding ?? 0;
    this.outH = Math.floor((inH + 2 * pad - k) / stride) + 1;
    this.outW = Math.floor((inW + 2 * pad - k) / stride) + 1;
    this.inFeatures = inC * inH * inW;
    this.outFeatures = outC * this.outH * this.outW;
    const w = new Float32Array(outC * inC * k * k);
    const std = Math.sqrt(2 / (inC * k * k));
    for (let i = 0; i < w.length; i++) w[i] = rng.normal() * std;
    this.weight = { data: w, grad: new Float32Array(w.length) };
    this.bias = options.bias === false ? null : { data: new Float32Array(outC), grad: new Float32Array(outC) };
    this.y = new RowBuffer(this.outFeatures);
    this.dx = new RowBuffer(this.inFeatures);
    this.rowsOf = Array.from({ length: k }, (_, t) => this.validRange(t, inH, this.outH));
    this.colsOf = Array.from({ length: k }, (_, t) => this.validRange(t, inW, this.outW));
    this.Q = inC * k * k;
    this.P = this.outH * this.outW;
    this.cols = new RowBuffer(this.Q * this.P);
    this.dcols = new Float32Array(this.Q * this.P);
  }

  /** Output positions [lo, hi) along one axis whose input position o·stride + tap − pad lies inside the image. */
  private validRange(tap: number, size: number, out: number): [number, number] {
    const s = this.options.stride ?? 1,
      p = this.options.padding ?? 0;
    return [Math.max(0, Math.ceil((p - tap) / s)), Math.min(out, Math.floor((size - 1 + p - tap) / s) + 1)];
  }

  /**
   * im2col, transposed: cols[q][p] for q = (ic, kh, kw) and p = (oy, ox), the
   * input pixel that tap q sees at output position p (0 in the padding).
   */
  private im2col(x: Float32Array, xo: number, cols: Float32Array, co: number): void {
    const { inC, inH, inW, outH, outW, k } = this;
    const s = this.options.stride ?? 1,
      p = this.options.padding ?? 0;
    const P = outH * outW;
    for (let ic = 0; ic < inC; ic++)
      for (let kh = 0; kh < k; kh++) {
        const [oy0, oy1] = this.rowsOf[kh];
        for (let kw = 0; kw < k; kw++) {
          const [ox0, ox1] = this.colsOf[kw];
          const q = co + ((ic * k + kh) * k + kw) * P;
          cols.fill(0, q, q + P);
          for (let oy = oy0; oy < oy1; oy++) {
            const xr = xo + ic * inH * inW + (oy * s + kh - p) * inW + kw - p,
              cr = q + oy * outW;
            for (let ox = ox0; ox < ox1; ox++) cols[cr + ox] = x[xr + ox * s];
          }
        }
      }
  }

  /** The adjoint of im2col: adds each tap's gradient back onto the input pixel it came from. */
  private col2im(dcols: Float32Array, dx: Float32Array, xo: number): void {
    const { inC, inH, inW, outH, outW, k } = this;
    const s = this.options.stride ?? 1,
      p = this.options.padding ?? 0;
    const P = outH * outW;
    for (let ic = 0; ic < inC; ic++)
      for (let kh = 0; kh < k; kh++) {
        const [oy0, oy1] = this.rowsOf[kh];
        for (let kw = 0; kw < k; kw++) {
          const [ox0, ox1] = this.colsOf[kw];
          const q = ((ic * k + kh) * k + kw) * P;
          for (let oy = oy0; oy < oy1; oy++) {
            const xr = xo + ic * inH * inW + (oy * s + kh - p) * inW + kw - p,
              cr = q + oy * outW;
            for (let ox = ox0; ox < ox1; ox++) dx[xr + ox * s] += dcols[cr + ox];
          }
        }
      }
  }

  forward(x: Float32Array, n: number): Float32Array {
    const { outC, inFeatures, outFeatures, Q, P } = this;
    const W = this.weight.data as Float32Array;
    const b = this.bias?.data;
    const y = this.y.rows(n);
    const cols = this.cols.rows(n);
    for (let i = 0; i < n; i++) {
      const co = i * Q * P;
      this.im2col(x, i * inFeatures, cols, co);
      // y[oc][p] = b[oc] + Σ_q W[oc][q] · cols[q][p], i-k-j order
      for (let oc = 0; oc < outC; oc++) {
        const yo = i * outFeatures + oc * P;
        y.fill(b ? b[oc] : 0, yo, yo + P);
        for (let q = 0; q < Q; q++) {
          const w = W[oc * Q + q];
          const cq = co + q * P;
          for (let j = 0; j < P; j++) y[yo + j] += w * cols[cq + j];
        }
      }
    }
    this.x = x;
    return y;
  }

  backward(dy: Float32Array, n: number, needInputGrad: boolean): Float32Array | null {
    if (!this.x) throw new Error('Conv2d.backward() needs a forward() first');
    const { outC, inFeatures, outFeatures, Q, P } = this;
    const W = this.weight.data as Float32Array;
    const gW = this.weight.grad;
    const gb = this.bias?.grad;
    const cols = this.cols.rows(n);
    const dcols = this.dcols;
    const dx = needInputGrad ? this.dx.rows(n).fill(0) : null;
    for (let i = 0; i < n; i++) {
      const co = i * Q * P;
      if (dx) dcols.fill(0);
      for (let oc = 0; oc < outC; oc++) {
        const yo = i * outFeatures + oc * P;
        if (gb) {
          let t = 0;
          for (let j = 0; j < P; j++) t += dy[yo + j];
          gb[oc] += t;
        }
        for (let q = 0; q < Q; q++) {
          // dW[oc][q] += Σ_p dy[oc][p] · cols[q][p];  dcols[q][p] += W[oc][q] · dy[oc][p]
          const cq = co + q * P,
            dq = q * P;
          let acc = 0;
          if (dx) {
            const w = W[oc * Q + q];
            for (let j = 0; j < P; j++) {
              const g = dy[yo + j];
              acc += g * cols[cq + j];
              dcols[dq + j] += w * g;
            }
          } else for (let j = 0; j < P; j++) acc += dy[yo + j] * cols[cq + j];
          gW[oc * Q + q] += acc;
        }
      }
      if (dx) this.col2im(dcols, dx, i * inFeatures);
    }
    return dx;
  }

  parameters(): Param[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  train(): void {}
}

/** max(x, 0); the backward passes the gradient where the output is positive. */
export class ReLU implements Layer {
  private readonly y: RowBuffer;
  private readonly dx: RowBuffer;
  private out: Float32Array | null = null;
  constructor(readonly inFeatures: number) {
    this.y = new RowBuffer(inFeatures);
    this.dx = new RowBuffer(inFeatures);
  }
  get outFeatures(): number {
    return this.inFeatures;
  }
  forward(x: Float32Array, n: number): Float32Array {
    const y = this.y.rows(n);
    for (let i = 0; i < y.length; i++) {
      const v = x[i];
      y[i] = v > 0 ? v : 0;
    }
    this.out = y;
    return y;
  }
  backward(dy: Float32Array, n: number): Float32Array {
    const y = this.out!;
    const dx = this.dx.rows(n);
    for (let i = 0; i < dx.length; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
    return dx;
  }
  parameters(): Param[] {
    return [];
  }
  train(): void {}
}

/**
 * Inverted dropout: in training mode each value is zeroed with probability p
 * and the others scaled by 1/(1 − p); in eval mode the identity.
 */
export class Dropout implements Layer {
  private readonly y: RowBuffer;
  private readonly dx: RowBuffer;
  private readonly keep: RowBuffer;
  private training = true;
  constructor(
    readonly inFeatures: number,
    readonly p: number,
    private readonly rng: Rng,
  ) {
    this.y = new RowBuffer(inFeatures);
    this.dx = new RowBuffer(inFeatures);
    this.keep = new RowBuffer(inFeatures);
  }
  get outFeatures(): number {
    return this.inFeatures;
  }
  forward(x: Float32Array, n: number): Float32Array {
    if (!this.training || this.p === 0) return x;
    const y = this.y.rows(n),
      keep = this.keep.rows(n);
    const scale = 1 / (1 - this.p);
    for (let i = 0; i < y.length; i++) {
      keep[i] = this.rng.next() < this.p ? 0 : scale;
      y[i] = x[i] * keep[i];
    }
    return y;
  }
  backward(dy: Float32Array, n: number): Float32Array {
    if (!this.training || this.p === 0) return dy;
    const dx = this.dx.rows(n),
      keep = this.keep.rows(n);
    for (let i = 0; i < dx.length; i++) dx[i] = dy[i] * keep[i];
    return dx;
  }
  parameters(): Param[] {
    return [];
  }
  train(mode: boolean): void {
    this.training = mode;
  }
}

/** Index of the largest of row i's k values (NaN never wins, so a diverged net predicts class 0). */
export function argmaxRow(logits: Float32Array, i: number, k: number): number {
  let best = 0,
    bv = -Infinity;
  for (let j = 0; j < k; j++) {
    const v = logits[i * k + j];
    if (v > bv) {
      bv = v;
      best = j;
    }
  }
  return best;
}

/**
 * Mean softmax cross-entropy over n rows of k logits, with the log-sum-exp
 * shifted by the row's maximum. Writes dL/dlogits = (softmax − onehot) / n
 * into `grad` when given. Returns the mean loss and the number of correct
 * predictions.
 */
export function softmaxCrossEntropy(
  logits: Float32Array,
  labels: Uint8Array,
  n: number,
  k: number,
  grad: Float32Array | null,
): { loss: number; correct: number } {
  let loss = 0,
    correct = 0;
  for (let i = 0; i < n; i++) {
    const o = i * k;
    let m = -Infinity;
    for (let j = 0; j < k; j++) if (logits[o + j] > m) m = logits[o + j];
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(logits[o + j] - m);
    const label = labels[i];
    loss += Math.log(sum) + m - logits[o + label];
    if (argmaxRow(logits, i, k) === label) correct++;
    if (grad) {
      for (let j = 0; j < k; j++) grad[o + j] = (Math.exp(logits[o + j] - m) / sum - (j === label ? 1 : 0)) / n;
    }
  }
  return { loss: loss / n, correct };
}

export interface Optimizer {
  readonly lr: number;
  step(): void;
  zeroGrad(): void;
}

function zero(params: Param[]): void {
  for (const p of params) p.grad?.fill(0);
}

/** SGD with (heavy-ball) momentum, PyTorch's form: v ← μ·v + g, p ← p − lr·v. */
export class SGD implements Optimizer {
  private readonly velocity: Float32Array[];
  constructor(
    private readonly params: Param[],
    readonly lr: number,
    readonly momentum = 0.9,
  ) {
    this.velocity = params.map((p) => new Float32Array(p.data.length));
  }
  step(): void {
    const { lr, momentum } = this;
    for (let q = 0; q < this.params.length; q++) {
      const p = this.params[q],
        g = p.grad,
        v = this.velocity[q];
      if (!g) continue;
      const d = p.data;
      for (let i = 0; i < d.length; i++) {
        const vi = momentum * v[i] + g[i];
        v[i] = vi;
        d[i] -= lr * vi;
      }
    }
  }
  zeroGrad(): void {
    zero(this.params);
  }
}

/** Adam (Kingma & Ba), with bias correction; β1 = 0.9, β2 = 0.999, ε = 1e-8. */
export class Adam implements Optimizer {
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private t = 0;
  constructor(
    private readonly params: Param[],
    readonly lr: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.m = params.map((p) => new Float32Array(p.data.length));
    this.v = params.map((p) => new Float32Array(p.data.length));
  }
  step(): void {
    this.t++;
    const { lr, beta1, beta2, eps } = this;
    const c1 = 1 - beta1 ** this.t,
      c2 = 1 - beta2 ** this.t;
    const stepSize = lr / c1,
      sc2 = Math.sqrt(c2);
    for (let q = 0; q < this.params.length; q++) {
      const p = this.params[q],
        g = p.grad;
      if (!g) continue;
      const d = p.data,
        m = this.m[q],
        v = this.v[q];
      for (let i = 0; i < d.length; i++) {
        const gi = g[i];
        const mi = beta1 * m[i] + (1 - beta1) * gi;
        const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        d[i] -= (stepSize * mi) / (Math.sqrt(vi) / sc2 + eps);
      }
    }
  }
  zeroGrad(): void {
    zero(this.params);
  }
}
