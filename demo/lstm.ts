/**
 * Experiment 14: the lessons' BatchNorm-LSTM (seed 004) on MNIST read row by
 * row — 28 steps of 28 pixels, the class from the last hidden state — with
 * per-step BatchNorm1d, with LayerNorm, and with no norm.
 *
 * The BatchNorm variant is the seed's model: two BatchNorm1d modules, one over
 * the input's gate pre-activations (Wx·x) and one over the recurrent ones
 * (Wh·h), each called once per time step. Backpropagation through time takes
 * the steps last-in first-out, each through the context its own forward
 * returned (`bn.backward(dy, { of: y })`, as test/api/lstm.test.ts does). The
 * LayerNorm variant normalizes the same two pre-activations per image with the
 * package's functional `layerNorm` and shared γ, β (Ba et al., 2016).
 */
import { BatchNorm1d, layerNorm, layerNormBackward, type Tensor } from 'batchnorm';
import type { Data, Dataset } from './data.js';
import type { ProgressSink } from './experiments.js';
import { silentProgress } from './experiments.js';
import { Adam, argmaxRow, softmaxCrossEntropy, type Param } from './nn.js';
import { head } from './norms.js';
import { Rng } from './rng.js';

export type LstmNorm = 'batch' | 'layer' | 'none';

type P = Param & { data: Float32Array; grad: Float32Array };

const param = (data: Float32Array): P => ({ data, grad: new Float32Array(data.length) });
const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** What one time step keeps for the backward. */
interface Step {
  xt: Float32Array;
  hPrev: Float32Array;
  cPrev: Float32Array;
  c: Float32Array;
  i: Float32Array;
  f: Float32Array;
  g: Float32Array;
  o: Float32Array;
  /** BatchNorm: the forward's results (the `of` contexts). LayerNorm: inputs and statistics. */
  bx?: Tensor<Float32Array>;
  bh?: Tensor<Float32Array>;
  lx?: { a: Float32Array; mean: Float32Array; invstd: Float32Array };
  lh?: { a: Float32Array; mean: Float32Array; invstd: Float32Array };
}

/** An LSTM over the rows of an image, then Linear(hidden → classes) on the last hidden state. */
export class RowLstm {
  readonly G: number;
  /** Weights stored [in, 4·hidden] (the gates i, f, g, o side by side), as the demo's Linear. */
  readonly wx: P;
  readonly bx: P;
  readonly wh: P;
  readonly bh: P;
  readonly wo: P;
  readonly bo: P;
  readonly bnX: BatchNorm1d | null = null;
  readonly bnH: BatchNorm1d | null = null;
  readonly ln: { gx: P; bx: P; gh: P; bh: P } | null = null;
  private steps: Step[] = [];
  private hLast = new Float32Array(0);

  constructor(
    readonly input: number,
    readonly hidden: number,
    readonly seqLen: number,
    readonly classes: number,
    readonly norm: LstmNorm,
    rng: Rng,
  ) {
    const H = hidden,
      G = 4 * H;
    this.G = G;
    // PyTorch's nn.LSTM init: uniform ±1/√hidden for every weight and bias.
    const u = (n: number, bound: number): Float32Array => Float32Array.from({ length: n }, () => (2 * rng.next() - 1) * bound);
    const k = 1 / Math.sqrt(H);
    this.wx = param(u(input * G, k));
    this.wh = param(u(H * G, k));
    this.bx = param(u(G, k));
    this.bh = param(u(G, k));
    this.wo = param(u(H * classes, k));
    this.bo = param(u(classes, k));
    if (norm === 'batch') {
      this.bnX = new BatchNorm1d(G);
      this.bnH = new BatchNorm1d(G);
    } else if (norm === 'layer') {
      const ones = (): P => param(new Float32Array(G).fill(1));
      this.ln = { gx: ones(), bx: param(new Float32Array(G)), gh: ones(), bh: param(new Float32Array(G)) };
    }
  }

  get description(): string {
    const n =
      this.norm === 'batch' ? ' with BatchNorm1d on Wx·x and on Wh·h at every step' : this.norm === 'layer' ? ' with LayerNorm on Wx·x and on Wh·h' : '';
    return `LSTM ${this.input}→${this.hidden} over ${this.seqLen} rows${n}, Linear ${this.hidden}→${this.classes} on the last hidden state`;
  }

  parameters(): Param[] {
    const own: Param[] = [this.wx, this.bx, this.wh, this.bh, this.wo, this.bo];
    if (this.bnX && this.bnH) own.push(...this.bnX.parameters(), ...this.bnH.parameters());
    if (this.ln) own.push(this.ln.gx, this.ln.bx, this.ln.gh, this.ln.bh);
    return own;
  }

  train(mode = true): this {
    this.bnX?.train(mode);
    this.bnH?.train(mode);
    return this;
  }

  /** a[b, q] = bias[q] + Σ_k x[b, k]·W[k, q] */
  private affine(x: Float32Array, B: number, K: number, W: Float32Array, bias: Float32Array): Float32Array {
    const G = this.G;
    const a = new Float32Array(B * G);
    for (let b = 0; b < B; b++) {
      const ao = b * G;
      a.set(bias, ao);
      for (let k = 0; k < K; k++) {
        const v = x[b * K + k];
        if (v === 0) continue;
        const wo = k * G;
        for (let q = 0; q < G; q++) a[ao + q] += v * W[wo + q];
      }
    }
    return a;
  }

  /** Normalizes one of the two pre-activations of a step (BatchNorm, LayerNorm or nothing) and records its context. */
  private normalize(a: Float32Array, B: number, which: 'x' | 'h', st: Step): Float32Array {
    const shape = [B, this.G];
    if (this.norm === 'batch') {
      const y = (which === 'x' ? this.bnX! : this.bnH!).forward({ data: a, shape });
      if (which === 'x') st.bx = y;
      else st.bh = y;
      return y.data;
    }
    if (this.norm === 'layer') {
      const ln = this.ln!;
      const r = layerNorm({ data: a, shape }, this.G, { weight: which === 'x' ? ln.gx.data : ln.gh.data, bias: which === 'x' ? ln.bx.data : ln.bh.data });
      const ctx = { a, mean: r.saveMean, invstd: r.saveInvstd };
      if (which === 'x') st.lx = ctx;
      else st.lh = ctx;
      return r.data;
    }
    return a;
  }

  /** Logits for B images (rows of seqLen·input pixels). */
  forward(images: Float32Array, B: number): Float32Array {
    const { input: I, hidden: H, seqLen: S, G } = this;
    let h = new Float32Array(B * H),
      c = new Float32Array(B * H);
    this.steps = [];
    for (let t = 0; t < S; t++) {
      const xt = new Float32Array(B * I);
      for (let b = 0; b < B; b++) xt.set(images.subarray(b * S * I + t * I, b * S * I + (t + 1) * I), b * I);
      const st = { xt, hPrev: h, cPrev: c } as Step;
      const nx = this.normalize(this.affine(xt, B, I, this.wx.data, this.bx.data), B, 'x', st);
      const nh = this.normalize(this.affine(h, B, H, this.wh.data, this.bh.data), B, 'h', st);
      const i = new Float32Array(B * H),
        f = new Float32Array(B * H),
        g = new Float32Array(B * H),
        o = new Float32Array(B * H),
        cNew = new Float32Array(B * H),
        hNew = new Float32Array(B * H);
      for (let b = 0; b < B; b++)
        for (let j = 0; j < H; j++) {
          const at = (q: number): number => nx[b * G + q * H + j] + nh[b * G + q * H + j];
          const k = b * H + j;
          i[k] = sigmoid(at(0));
          f[k] = sigmoid(at(1));
          g[k] = Math.tanh(at(2));
          o[k] = sigmoid(at(3));
          cNew[k] = f[k] * c[k] + i[k] * g[k];
          hNew[k] = o[k] * Math.tanh(cNew[k]);
        }
      Object.assign(st, { c: cNew, i, f, g, o });
      this.steps.push(st);
      h = hNew;
      c = cNew;
    }
    this.hLast = h;
    const K = this.classes;
    const logits = new Float32Array(B * K);
    for (let b = 0; b < B; b++)
      for (let q = 0; q < K; q++) {
        let s = this.bo.data[q];
        for (let j = 0; j < H; j++) s += h[b * H + j] * this.wo.data[j * K + q];
        logits[b * K + q] = s;
      }
    return logits;
  }

  /** The gradient of a pre-activation through its norm; adds the norm's parameter gradients. */
  private normBackward(dG: Float32Array, B: number, which: 'x' | 'h', st: Step): Float32Array {
    const shape = [B, this.G];
    if (this.norm === 'batch') return (which === 'x' ? this.bnX! : this.bnH!).backward({ data: dG, shape }, { of: which === 'x' ? st.bx! : st.bh! }).data;
    if (this.norm === 'layer') {
      const ln = this.ln!;
      const ctx = which === 'x' ? st.lx! : st.lh!;
      const [gamma, beta] = which === 'x' ? [ln.gx, ln.bx] : [ln.gh, ln.bh];
      const r = layerNormBackward({ data: dG, shape }, { data: ctx.a, shape }, this.G, { weight: gamma.data, saveMean: ctx.mean, saveInvstd: ctx.invstd });
      for (let q = 0; q < this.G; q++) {
        gamma.grad[q] += r.gradWeight![q];
        beta.grad[q] += r.gradBias![q];
      }
      return r.gradInput.data;
    }
    return dG;
  }

  /** Backpropagation through time of dL/dlogits; adds into every parameter's gradient. */
  backward(dlogits: Float32Array, B: number): void {
    const { input: I, hidden: H, G, classes: K } = this;
    let dh = new Float32Array(B * H);
    for (let b = 0; b < B; b++)
      for (let q = 0; q < K; q++) {
        const d = dlogits[b * K + q];
        this.bo.grad[q] += d;
        for (let j = 0; j < H; j++) {
          this.wo.grad[j * K + q] += this.hLast[b * H + j] * d;
          dh[b * H + j] += d * this.wo.data[j * K + q];
        }
      }
    let dcNext = new Float32Array(B * H);
    for (let t = this.steps.length - 1; t >= 0; t--) {
      const st = this.steps[t];
      const dG = new Float32Array(B * G),
        dcPrev = new Float32Array(B * H);
      for (let b = 0; b < B; b++)
        for (let j = 0; j < H; j++) {
          const k = b * H + j;
          const tc = Math.tanh(st.c[k]);
          const dc = dh[k] * st.o[k] * (1 - tc * tc) + dcNext[k];
          dG[b * G + j] = dc * st.g[k] * st.i[k] * (1 - st.i[k]);
          dG[b * G + H + j] = dc * st.cPrev[k] * st.f[k] * (1 - st.f[k]);
          dG[b * G + 2 * H + j] = dc * st.i[k] * (1 - st.g[k] * st.g[k]);
          dG[b * G + 3 * H + j] = dh[k] * tc * st.o[k] * (1 - st.o[k]);
          dcPrev[k] = dc * st.f[k];
        }
      const dax = this.normBackward(dG, B, 'x', st),
        dah = this.normBackward(dG, B, 'h', st);
      const dhPrev = new Float32Array(B * H);
      for (let b = 0; b < B; b++) {
        for (let q = 0; q < G; q++) {
          this.bx.grad[q] += dax[b * G + q];
          this.bh.grad[q] += dah[b * G + q];
        }
        for (let k = 0; k < I; k++) {
          const v = st.xt[b * I + k];
          if (v === 0) continue;
          const wo = k * G;
          for (let q = 0; q < G; q++) this.wx.grad[wo + q] += v * dax[b * G + q];
        }
        for (let k = 0; k < H; k++) {
          const v = st.hPrev[b * H + k];
          const wo = k * G;
          let s = 0;
          for (let q = 0; q < G; q++) {
            const d = dah[b * G + q];
            this.wh.grad[wo + q] += v * d;
            s += d * this.wh.data[wo + q];
          }
          dhPrev[b * H + k] = s;
        }
      }
      dh = dhPrev;
      dcNext = dcPrev;
    }
    this.steps = [];
  }
}

export interface LstmRun {
  norm: LstmNorm;
  description: string;
  /** Test accuracy (eval mode) after each epoch. */
  epochAccuracy: number[];
  /** [epoch, test accuracy] every half epoch. */
  curve: Array<[number, number]>;
  /** Test accuracy in training mode (batch statistics, batches of 256) at the end: what eval mode costs BatchNorm here. */
  trainModeAccuracy: number;
  finalAccuracy: number;
  stepLoss: number[];
  stepsPerEpoch: number;
  ms: number;
}

export interface LstmExperiment {
  hidden: number;
  trainSize: number;
  testSize: number;
  epochs: number;
  batchSize: number;
  lr: number;
  runs: LstmRun[];
}

function lstmAccuracy(model: RowLstm, ds: Dataset): number {
  let correct = 0;
  for (let s = 0; s < ds.n; s += 256) {
    const n = Math.min(256, ds.n - s);
    if (n < 2) break;
    const logits = model.forward(ds.images.subarray(s * ds.features, (s + n) * ds.features), n);
    for (let i = 0; i < n; i++) if (argmaxRow(logits, i, model.classes) === ds.labels[s + i]) correct++;
  }
  return correct / ds.n;
}

/** Saves and restores the running statistics of a model's BatchNorms (a train-mode test changes them). */
function withSavedStats<T>(model: RowLstm, f: () => T): T {
  const saved = [model.bnX, model.bnH].map(
    (bn) => bn && { m: Float32Array.from(bn.runningMean!), v: Float32Array.from(bn.runningVar!), n: bn.numBatchesTracked },
  );
  try {
    return f();
  } finally {
    [model.bnX, model.bnH].forEach((bn, i) => {
      const s = saved[i];
      if (!bn || !s) return;
      bn.runningMean!.set(s.m);
      bn.runningVar!.set(s.v);
      bn.numBatchesTracked = s.n;
    });
  }
}

/** The three LSTMs from the same weights and batches, trained with Adam. */
export function lstmExperiment(
  data: Data,
  options: { hidden: number; trainSize: number; testSize: number; epochs: number; batchSize: number; lr: number; seed: number; progress?: ProgressSink },
): LstmExperiment {
  const ds = data.train;
  const test = head(data.test, options.testSize);
  const n = Math.min(options.trainSize, ds.n);
  const { batchSize: B, hidden, epochs, lr, seed } = options;
  const side = ds.height;
  const runs = (['none', 'batch', 'layer'] as const).map((norm): LstmRun => {
    const t0 = performance.now();
    const rng = new Rng(seed);
    const model = new RowLstm(ds.width, hidden, side, data.classes, norm, rng.fork());
    const order = new Uint32Array(n).map((_, i) => i);
    const shuffle = rng.fork();
    const opt = new Adam(model.parameters(), lr);
    const stepsPerEpoch = Math.floor(n / B);
    const label = norm === 'batch' ? 'LSTM, BatchNorm per step' : norm === 'layer' ? 'LSTM, LayerNorm' : 'LSTM, no norm';
    const progress = (options.progress ?? silentProgress).start(label, stepsPerEpoch * epochs);
    const x = new Float32Array(B * ds.features),
      y = new Uint8Array(B),
      dlogits = new Float32Array(B * data.classes);
    const stepLoss: number[] = [],
      epochAccuracy: number[] = [],
      curve: Array<[number, number]> = [];
    const half = Math.max(1, Math.floor(stepsPerEpoch / 2));
    const evaluate = (): number => {
      model.train(false);
      const a = lstmAccuracy(model, test);
      curve.push([step / stepsPerEpoch, a]);
      model.train(true);
      return a;
    };
    let step = 0;
    for (let e = 0; e < epochs; e++) {
      model.train();
      shuffle.shuffle(order);
      for (let s = 0; s + B <= n; s += B) {
        for (let b = 0; b < B; b++) {
          const src = order[s + b];
          x.set(ds.images.subarray(src * ds.features, (src + 1) * ds.features), b * ds.features);
          y[b] = ds.labels[src];
        }
        for (const p of model.parameters()) p.grad?.fill(0);
        const logits = model.forward(x, B);
        const { loss } = softmaxCrossEntropy(logits, y, B, data.classes, dlogits);
        model.backward(dlogits, B);
        opt.step();
        stepLoss.push(loss);
        progress.update(++step, { epoch: e + 1, loss });
        if (step % half === 0 && step % stepsPerEpoch !== 0) evaluate();
      }
      epochAccuracy.push(evaluate());
    }
    const finalAccuracy = epochAccuracy[epochAccuracy.length - 1];
    const trainModeAccuracy = norm === 'batch' ? withSavedStats(model, () => lstmAccuracy(model.train(true), test)) : finalAccuracy;
    model.train(false);
    const ms = performance.now() - t0;
    progress.done({ accuracy: finalAccuracy, diverged: false, ms });
    return { norm, description: model.description, epochAccuracy, curve, trainModeAccuracy, finalAccuracy, stepLoss, stepsPerEpoch, ms };
  });
  return { hidden, trainSize: n, testSize: test.n, epochs, batchSize: B, lr, runs };
}
