/**
 * Issue 21, items 3, 4 and 5: folding into the layer before (foldBatchNorm),
 * hooks and the monitor, and the module basics PyTorch users reach for.
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, foldBatchNorm, monitor, type Tensor } from '../../lib/index.js';
import { randn } from '../helpers.js';

type F = Float32Array | Float64Array;

/** Conv2d, stride 1, no padding: x [N, Cin, H, W], w [Cout, Cin/g, kh, kw]. */
function conv2d(x: Tensor<F>, w: Tensor<F>, b: F | null, groups: number): Tensor<Float64Array> {
  const [N, Cin, H, W] = x.shape,
    [Cout, cpg, kh, kw] = w.shape,
    OH = H - kh + 1,
    OW = W - kw + 1,
    opg = Cout / groups;
  const y = new Float64Array(N * Cout * OH * OW);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < Cout; o++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          let s = b ? b[o] : 0;
          for (let c = 0; c < cpg; c++)
            for (let p = 0; p < kh; p++)
              for (let q = 0; q < kw; q++)
                s += w.data[((o * cpg + c) * kh + p) * kw + q] * x.data[((n * Cin + Math.floor(o / opg) * cpg + c) * H + i + p) * W + j + q];
          y[((n * Cout + o) * OH + i) * OW + j] = s;
        }
  return { data: y, shape: [N, Cout, OH, OW] };
}

/** ConvTranspose2d, stride 1, no padding: x [N, Cin, H, W], w [Cin, Cout/g, kh, kw]. */
function convTranspose2d(x: Tensor<F>, w: Tensor<F>, b: F | null, groups: number): Tensor<Float64Array> {
  const [N, Cin, H, W] = x.shape,
    [, opg, kh, kw] = w.shape,
    Cout = opg * groups,
    OH = H + kh - 1,
    OW = W + kw - 1,
    ipg = Cin / groups;
  const y = new Float64Array(N * Cout * OH * OW);
  for (let n = 0; n < N; n++) for (let o = 0; o < Cout; o++) for (let k = 0; k < OH * OW; k++) y[(n * Cout + o) * OH * OW + k] = b ? b[o] : 0;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < Cin; c++)
      for (let jo = 0; jo < opg; jo++) {
        const o = Math.floor(c / ipg) * opg + jo;
        for (let i = 0; i < H; i++)
          for (let j = 0; j < W; j++)
            for (let p = 0; p < kh; p++)
              for (let q = 0; q < kw; q++)
                y[((n * Cout + o) * OH + i + p) * OW + j + q] += x.data[((n * Cin + c) * H + i) * W + j] * w.data[((c * opg + jo) * kh + p) * kw + q];
      }
  return { data: y, shape: [N, Cout, OH, OW] };
}

/** x [N, in] · w[out, in]ᵀ + b. */
function linear(x: Tensor<F>, w: Tensor<F>, b: F | null): Tensor<Float64Array> {
  const [N, I] = x.shape,
    [O] = w.shape,
    y = new Float64Array(N * O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      let s = b ? b[o] : 0;
      for (let k = 0; k < I; k++) s += x.data[n * I + k] * w.data[o * I + k];
      y[n * O + o] = s;
    }
  return { data: y, shape: [N, O] };
}

/** A BatchNorm in eval with random running statistics (and affine parameters). */
function trainedBn<M extends BatchNorm1d<boolean> | BatchNorm2d<boolean>>(bn: M, seed: number): M {
  const C = bn.numFeatures;
  bn.runningMean!.set(randn(C, seed, 0.3, 1));
  bn.runningVar!.set(Array.from(randn(C, seed + 1), (v) => 0.2 + v * v));
  bn.weight?.data.set(randn(C, seed + 2, 1, 0.5));
  bn.bias?.data.set(randn(C, seed + 3, 0, 0.5));
  bn.eval();
  return bn;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length).toBe(want.length);
  let err = 0,
    scale = 1;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  expect(err / scale).toBeLessThan(tol);
}

const f32 = (t: Tensor<Float64Array>) => ({ data: Float32Array.from(t.data), shape: t.shape });

describe('foldBatchNorm: the folded layer gives layer → BatchNorm(eval)', () => {
  const cases = [
    { name: 'Linear', affine: true, bias: true },
    { name: 'Linear without bias, BatchNorm without affine', affine: false, bias: false },
  ];
  for (const c of cases)
    it(c.name, () => {
      const x = { data: randn(5 * 6, 1) as Float32Array, shape: [5, 6] },
        w = { data: randn(4 * 6, 2) as Float32Array, shape: [4, 6] };
      const b = c.bias ? (randn(4, 3) as Float32Array) : null;
      const bn = trainedBn(new BatchNorm1d(4, { affine: c.affine }), 10);
      const want = bn.forward(f32(linear(x, w, b)));
      const folded = foldBatchNorm({ weight: w, bias: b }, bn);
      expect(folded.weight.data).toBeInstanceOf(Float32Array);
      expect(folded.bias).toBeInstanceOf(Float32Array);
      expect(folded.weight.shape).toEqual([4, 6]);
      expectClose(linear(x, folded.weight, folded.bias).data, want.data, 1e-5);
    });

  for (const groups of [1, 2])
    for (const transpose of [false, true])
      it(`${transpose ? 'ConvTranspose2d' : 'Conv2d'}, groups ${groups}${groups === 2 ? ', no bias' : ''}`, () => {
        const Cin = 4,
          Cout = 6,
          x = { data: randn(2 * Cin * 5 * 4, 4) as Float32Array, shape: [2, Cin, 5, 4] };
        const shape = transpose ? [Cin, Cout / groups, 3, 2] : [Cout, Cin / groups, 3, 2];
        const w = {
          data: randn(
            shape.reduce((a, b) => a * b),
            5,
          ) as Float32Array,
          shape,
        };
        const b = groups === 1 ? (randn(Cout, 6) as Float32Array) : null;
        const run = (wt: Tensor<F>, bb: F | null) => (transpose ? convTranspose2d(x, wt, bb, groups) : conv2d(x, wt, bb, groups));
        const bn = trainedBn(new BatchNorm2d(Cout), 20);
        const want = bn.forward(f32(run(w, b)));
        const folded = foldBatchNorm({ weight: w, bias: b }, bn, { transpose, groups });
        expectClose(run(folded.weight, folded.bias).data, want.data, 1e-5);
      });

  it('float64 in, float64 out; bad arguments throw naming them', () => {
    const w = { data: randn(12, 2, 0, 1, Float64Array) as Float64Array, shape: [3, 4] };
    const bn = trainedBn(new BatchNorm1d(3), 1);
    const f = foldBatchNorm({ weight: w }, bn);
    expect(f.weight.data).toBeInstanceOf(Float64Array);
    expect(f.bias).toBeInstanceOf(Float64Array);
    expect(() => foldBatchNorm({ weight: w }, new BatchNorm1d(4))).toThrow(
      /layer's 3 output channels \(weight.shape\[0\]\) to equal the numFeatures of BatchNorm1d \(4\); a transposed convolution needs \{ transpose: true \}/,
    );
    expect(() => foldBatchNorm({ weight: w }, new BatchNorm1d(3, { trackRunningStats: false }))).toThrow(/Expected running statistics/);
    expect(() => foldBatchNorm({ weight: w, bias: new Float64Array(2) }, bn)).toThrow(/layer.bias/);
    expect(() => foldBatchNorm({ weight: w }, bn, { transpose: true, groups: 2 })).toThrow(/Expected a divisor of layer.weight.shape\[0\]/);
    expect(() => foldBatchNorm({ weight: w }, bn, { group: 2 } as never)).toThrow(/group/);
  });
});

describe('hooks', () => {
  it('forward and backward hooks see (module, input, output) and (module, dx, dy); remove() unregisters', async () => {
    const bn = new BatchNorm1d(3),
      x = { data: randn(12, 1) as Float32Array, shape: [4, 3] },
      dy = { data: randn(12, 2) as Float32Array, shape: [4, 3] };
    const seen: string[] = [];
    const h1 = bn.registerForwardHook((m, input, output) => {
      expect(m).toBe(bn);
      expect(input).toBe(x);
      seen.push(`f${output.data.length}`);
    });
    const h2 = bn.registerBackwardHook((m, gradInput, gradOutput) => {
      expect(gradOutput).toBe(dy);
      seen.push(`b${gradInput.data.length}`);
    });
    const y = bn.forward(x);
    bn.backward(dy, { of: y });
    await bn.forwardAsync(x);
    await bn.backwardAsync(dy);
    expect(seen).toEqual(['f12', 'b12', 'f12', 'b12']);
    h1.remove();
    h1.remove();
    h2.remove();
    bn.forward(x);
    bn.backward(dy);
    expect(seen).toHaveLength(4);
    expect(() => bn.registerForwardHook(42 as never)).toThrow(/Expected a function for the forward hook but received the number 42/);
  });

  it('a hook does not run for a call that throws', () => {
    const bn = new BatchNorm1d(3);
    let calls = 0;
    bn.registerForwardHook(() => calls++);
    expect(() => bn.forward({ data: new Float32Array(8), shape: [2, 4] })).toThrow();
    expect(calls).toBe(0);
  });
});

describe('monitor', () => {
  it('records the output and gradient statistics of each call, as plain data', () => {
    const a = new BatchNorm1d(3),
      b = new BatchNorm1d(3);
    const mon = monitor({ a, b });
    const x = { data: randn(12, 1, 2, 3) as Float32Array, shape: [4, 3] },
      dy = { data: randn(12, 2) as Float32Array, shape: [4, 3] };
    const y = a.forward(x);
    b.forward(x);
    a.backward(dy, { of: y });
    const d = mon.data();
    expect(d.forward.map((r) => [r.module, r.call])).toEqual([
      ['a', 0],
      ['b', 0],
    ]);
    const vals = Array.from(y.data),
      n = vals.length,
      mean = vals.reduce((s, v) => s + v, 0) / n;
    expect(d.forward[0].mean).toBeCloseTo(mean, 6);
    expect(d.forward[0].std).toBeCloseTo(Math.sqrt(vals.reduce((s, v) => s + (v - mean) ** 2, 0) / n), 6);
    expect(d.forward[0].min).toBe(Math.min(...vals));
    expect(d.forward[0].max).toBe(Math.max(...vals));
    const g = Array.from(dy.data);
    expect(d.backward).toHaveLength(1);
    expect(d.backward[0].module).toBe('a');
    expect(d.backward[0].norm).toBeCloseTo(Math.sqrt(g.reduce((s, v) => s + v * v, 0)), 6);
    expect(d.backward[0].mean).toBeCloseTo(g.reduce((s, v) => s + v, 0) / g.length, 6);
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
    mon.remove();
    a.forward(x);
    expect(mon.forward).toHaveLength(2);
    mon.clear();
    expect(mon.data()).toEqual({ forward: [], backward: [] });
    expect(() => monitor([{} as never])).toThrow(/Expected a module/);
  });
});

describe('module basics', () => {
  it('namedParameters, resetParameters, resetRunningStats', () => {
    const bn = new BatchNorm1d(2);
    expect(bn.namedParameters()).toEqual([
      ['weight', bn.weight],
      ['bias', bn.bias],
    ]);
    expect(new BatchNorm1d(2, { affine: false }).namedParameters()).toEqual([]);
    bn.forward({ data: Float32Array.from([1, 2, 3, 5]), shape: [2, 2] });
    bn.weight.data.set([3, 4]);
    bn.bias.data.set([1, 1]);
    const rm = bn.runningMean;
    bn.resetRunningStats();
    expect(bn.runningMean).toBe(rm);
    expect([...bn.runningMean!, ...bn.runningVar!, bn.numBatchesTracked]).toEqual([0, 0, 1, 1, 0]);
    expect(Array.from(bn.weight.data)).toEqual([3, 4]);
    bn.forward({ data: Float32Array.from([1, 2, 3, 5]), shape: [2, 2] });
    bn.resetParameters();
    expect([...bn.weight.data, ...bn.bias.data, ...bn.runningMean!, bn.numBatchesTracked]).toEqual([1, 1, 0, 0, 0, 0, 0]);
  });

  it('requiresGrad false leaves .grad untouched, in training and in eval; the input gradient is the same', () => {
    const x = { data: randn(12, 1) as Float32Array, shape: [4, 3] },
      dy = { data: randn(12, 2) as Float32Array, shape: [4, 3] };
    for (const training of [true, false]) {
      const free = new BatchNorm1d(3).train(training),
        frozen = new BatchNorm1d(3).train(training);
      frozen.weight.requiresGrad = false;
      free.forward(x);
      frozen.forward(x);
      const want = free.backward(dy),
        got = frozen.backward(dy);
      expect(Array.from(got.data)).toEqual(Array.from(want.data));
      expect(frozen.weight.grad).toBeNull();
      expect(Array.from(frozen.bias.grad!)).toEqual(Array.from(free.bias.grad!));
      frozen.bias.requiresGrad = false;
      frozen.forward(x);
      expect(Array.from(frozen.backward(dy).data)).toEqual(Array.from(want.data));
      expect(frozen.weight.grad).toBeNull();
      expect(Array.from(frozen.bias.grad!)).toEqual(Array.from(free.bias.grad!));
    }
  });

  it('dtype reads the type; to() converts parameters, gradients and running statistics', () => {
    const bn = new BatchNorm2d(2);
    expect(bn.dtype).toBe('float32');
    const x = { data: randn(16, 1) as Float32Array, shape: [2, 2, 2, 2] };
    const y = bn.forward(x);
    bn.backward(x);
    const w = bn.weight;
    expect(bn.to('float64')).toBe(bn);
    expect(bn.dtype).toBe('float64');
    expect(bn.weight).toBe(w);
    for (const a of [bn.weight.data, bn.weight.grad, bn.bias.data, bn.bias.grad, bn.runningMean, bn.runningVar]) expect(a).toBeInstanceOf(Float64Array);
    expect(Array.from(bn.runningVar!)).toEqual(Array.from(Float32Array.from(bn.runningVar!)));
    expect(() => bn.backward(x, { of: y })).toThrow(/already called/);
    bn.forward({ data: Float64Array.from(x.data), shape: x.shape });
    bn.to('float32');
    expect(bn.runningMean).toBeInstanceOf(Float32Array);
    expect(() => bn.to('float16' as never)).toThrow(/float16/);
  });
});
