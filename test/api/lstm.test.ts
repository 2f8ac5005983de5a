/**
 * Issue 21, item 2: seed 004's BatchNorm-LSTM ("BatchNorm for Recurrent Neural
 * Networks": input 10, hidden 20, 15 steps, batch 32), written here with this
 * package's BatchNorm1d. Each BatchNorm runs once per time step; the backward
 * through time takes the steps last-in first-out, each through its own
 * forward's context (`backward(dy, { of })`). The gradient of every parameter
 * and the final running statistics are PyTorch's (test/fixtures/generate_lstm.py).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, type Tensor } from '../../lib/index.js';

const golden = JSON.parse(readFileSync(new URL('../fixtures/lstm.json', import.meta.url), 'utf8')) as {
  shape: { input: number; hidden: number; steps: number; batch: number };
  grad: Record<string, number[]>;
  buffers: Record<string, number[] | number>;
};

type F = Float32Array | Float64Array;
type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

/** generate_lstm.py's `fill`: multiples of 1/256 from a 32-bit integer hash. */
function fill(T: Ctor, n: number, seed: number, scale: number, offset = 0): F {
  const out = new T(n);
  for (let i = 0; i < n; i++) {
    let h = (Math.imul(i, 2654435761 | 0) + seed * 40503) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    h = Math.imul(h, 2246822519 | 0) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    out[i] = offset + (scale * ((h % 513) - 256)) / 256;
  }
  return out;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** y[b, o] = Σ_k a[b, k]·W[o, k] + bias[o]. */
function linear(T: Ctor, a: F, rows: number, W: F, bias: F, outF: number, inF: number): F {
  const y = new T(rows * outF);
  for (let b = 0; b < rows; b++)
    for (let o = 0; o < outF; o++) {
      let s = bias[o];
      for (let k = 0; k < inF; k++) s += a[b * inF + k] * W[o * inF + k];
      y[b * outF + o] = s;
    }
  return y;
}

function runLstm(T: Ctor) {
  const { input: I, hidden: H, steps: S, batch: B } = golden.shape;
  const G4 = 4 * H;
  const Wx = fill(T, G4 * I, 1, 0.3),
    bx = fill(T, G4, 2, 0.1),
    Wh = fill(T, G4 * H, 3, 0.2),
    bh = fill(T, G4, 4, 0.1);
  const dtype = T === Float64Array ? 'float64' : 'float32';
  const bnX = new BatchNorm1d(G4, { dtype }),
    bnH = new BatchNorm1d(G4, { dtype });
  bnX.weight.data.set(fill(T, G4, 5, 0.25, 1));
  bnX.bias.data.set(fill(T, G4, 6, 0.1));
  bnH.weight.data.set(fill(T, G4, 7, 0.25, 1));
  bnH.bias.data.set(fill(T, G4, 8, 0.1));
  const x = fill(T, B * S * I, 9, 1),
    g = fill(T, B * S * H, 10, 1);

  // Forward through the 15 steps, keeping what the backward needs.
  const steps: Array<{ xt: F; hPrev: F; cPrev: F; c: F; i: F; f: F; gg: F; o: F; rx: Tensor; rh: Tensor }> = [];
  let h: F = new T(B * H),
    c: F = new T(B * H);
  for (let t = 0; t < S; t++) {
    const xt = new T(B * I);
    for (let b = 0; b < B; b++) for (let k = 0; k < I; k++) xt[b * I + k] = x[(b * S + t) * I + k];
    const rx = bnX.forward({ data: linear(T, xt, B, Wx, bx, G4, I), shape: [B, G4] });
    const rh = bnH.forward({ data: linear(T, h, B, Wh, bh, G4, H), shape: [B, G4] });
    const i = new T(B * H),
      f = new T(B * H),
      gg = new T(B * H),
      o = new T(B * H),
      cNew = new T(B * H),
      hNew = new T(B * H);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < H; j++) {
        const at = (q: number) => rx.data[b * G4 + q * H + j] + rh.data[b * G4 + q * H + j];
        const k = b * H + j;
        i[k] = sigmoid(at(0));
        f[k] = sigmoid(at(1));
        gg[k] = Math.tanh(at(2));
        o[k] = sigmoid(at(3));
        cNew[k] = f[k] * c[k] + i[k] * gg[k];
        hNew[k] = o[k] * Math.tanh(cNew[k]);
      }
    steps.push({ xt, hPrev: h, cPrev: c, c: cNew, i, f, gg, o, rx, rh });
    h = hNew;
    c = cNew;
  }

  // Backward through time of loss = Σ outputs·G: the steps last-in first-out.
  const dWx = new Float64Array(G4 * I),
    dbx = new Float64Array(G4),
    dWh = new Float64Array(G4 * H),
    dbh = new Float64Array(G4);
  let dhNext = new Float64Array(B * H),
    dcNext = new Float64Array(B * H);
  for (let t = S - 1; t >= 0; t--) {
    const st = steps[t];
    const dGates = new T(B * G4),
      dc = new Float64Array(B * H);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < H; j++) {
        const k = b * H + j;
        const dh = g[(b * S + t) * H + j] + dhNext[k];
        const tc = Math.tanh(st.c[k]);
        dc[k] = dh * st.o[k] * (1 - tc * tc) + dcNext[k];
        dGates[b * G4 + j] = dc[k] * st.gg[k] * st.i[k] * (1 - st.i[k]);
        dGates[b * G4 + H + j] = dc[k] * st.cPrev[k] * st.f[k] * (1 - st.f[k]);
        dGates[b * G4 + 2 * H + j] = dc[k] * st.i[k] * (1 - st.gg[k] * st.gg[k]);
        dGates[b * G4 + 3 * H + j] = dh * tc * st.o[k] * (1 - st.o[k]);
      }
    const dy = { data: dGates, shape: [B, G4] };
    const dax = bnX.backward(dy, { of: st.rx }).data,
      dah = bnH.backward(dy, { of: st.rh }).data;
    dhNext = new Float64Array(B * H);
    dcNext = new Float64Array(B * H);
    for (let k = 0; k < B * H; k++) dcNext[k] = dc[k] * st.f[k];
    for (let b = 0; b < B; b++)
      for (let q = 0; q < G4; q++) {
        const ax = dax[b * G4 + q],
          ah = dah[b * G4 + q];
        dbx[q] += ax;
        dbh[q] += ah;
        for (let k = 0; k < I; k++) dWx[q * I + k] += ax * st.xt[b * I + k];
        for (let k = 0; k < H; k++) {
          dWh[q * H + k] += ah * st.hPrev[b * H + k];
          dhNext[b * H + k] += ah * Wh[q * H + k];
        }
      }
  }
  return {
    grad: {
      'wx.weight': dWx,
      'wx.bias': dbx,
      'wh.weight': dWh,
      'wh.bias': dbh,
      'bn_x.weight': bnX.weight.grad!,
      'bn_x.bias': bnX.bias.grad!,
      'bn_h.weight': bnH.weight.grad!,
      'bn_h.bias': bnH.bias.grad!,
    } as Record<string, ArrayLike<number>>,
    buffers: {
      'bn_x.running_mean': bnX.runningMean!,
      'bn_x.running_var': bnX.runningVar!,
      'bn_x.num_batches_tracked': bnX.numBatchesTracked!,
      'bn_h.running_mean': bnH.runningMean!,
      'bn_h.running_var': bnH.runningVar!,
      'bn_h.num_batches_tracked': bnH.numBatchesTracked!,
    } as Record<string, ArrayLike<number> | number>,
    modules: [bnX, bnH],
    steps,
  };
}

/**
 * Largest |got − want| over the largest |want| (at least 1: the biases before
 * a BatchNorm have gradient 0 — BatchNorm removes any shift — and PyTorch's
 * are rounding noise of 1e-14): one tolerance for a whole tensor.
 */
function relErr(got: ArrayLike<number>, want: number[]): number {
  expect(got.length).toBe(want.length);
  let err = 0,
    scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / Math.max(scale, 1);
}

describe("seed 004's BatchNorm-LSTM, backpropagated through 15 time steps", () => {
  for (const [T, tol] of [
    [Float64Array, 1e-10],
    [Float32Array, 2e-4],
  ] as const) {
    it(`gives PyTorch's gradients and running statistics (${T.name})`, () => {
      const run = runLstm(T);
      // The biases before a BatchNorm: their exact gradient is 0, and in
      // float32 what is left is the rounding of dx summed over the batch. At
      // step 0 bn_h's input is constant per channel (h0 = 0), so its dx is
      // scaled by 1/√eps ≈ 316: the float32 sum keeps about 1e-3 of noise
      // (PyTorch's float32 does the same); the weights' gradients are 65–75.
      const biasTol = T === Float32Array ? 5e-3 : tol;
      for (const [name, want] of Object.entries(golden.grad))
        expect(relErr(run.grad[name], want), name).toBeLessThan(name.startsWith('w') && name.endsWith('.bias') ? biasTol : tol);
      for (const [name, want] of Object.entries(golden.buffers)) {
        if (typeof want === 'number') expect(run.buffers[name]).toBe(want);
        else expect(relErr(run.buffers[name] as ArrayLike<number>, want), name).toBeLessThan(tol);
      }
      // Every context was differentiated once: a second backward of any step throws.
      const dy = { data: new T(golden.shape.batch * 4 * golden.shape.hidden), shape: [golden.shape.batch, 4 * golden.shape.hidden] };
      expect(() => run.modules[0].backward(dy, { of: run.steps[3].rx })).toThrow(/already called for the forward given as of/);
    }, 60_000);
  }
});
