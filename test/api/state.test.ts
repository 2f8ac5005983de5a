/** State dicts (PyTorch keys, strict/non-strict, JSON round trip, safetensors), modes, options, Keras settings. */
import { describe, expect, it } from 'vitest';
import {
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  batchNorm,
  batchNormAsync,
  batchNormBackward,
  batchNormBackwardAsync,
  fromKeras,
  readSafetensors,
  writeSafetensors,
} from '../../lib/index.js';
import { expectClose, randn, refBackward, refMoments, refNormalize, safetensorsFile } from '../helpers.js';

function trainedBn(): BatchNorm2d {
  const bn = new BatchNorm2d(4);
  for (let i = 0; i < 3; i++) bn.forward({ data: randn(2 * 4 * 9, i, 1, 2) as Float32Array, shape: [2, 4, 3, 3] });
  return bn;
}

describe('stateDict / loadStateDict', () => {
  it("uses exactly PyTorch's keys, in PyTorch's order", () => {
    expect(Object.keys(new BatchNorm2d(3).stateDict())).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expect(Object.keys(new BatchNorm1d(3, { trackRunningStats: false }).stateDict())).toEqual(['weight', 'bias']);
    expect(Object.keys(new BatchNorm3d(3, { affine: false }).stateDict())).toEqual(['running_mean', 'running_var', 'num_batches_tracked']);
  });

  it('round-trips through JSON', () => {
    const a = trainedBn(),
      b = new BatchNorm2d(4);
    b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())));
    expect(b.stateDict()).toEqual(a.stateDict());
    expect(b.numBatchesTracked).toBe(3);
  });

  it("strict: missing and unexpected keys throw PyTorch's message and change nothing", () => {
    const bn = trainedBn(),
      before = JSON.stringify(bn.stateDict());
    const sd = { ...bn.stateDict(), extra: [1] } as Record<string, unknown>;
    delete sd.running_var;
    expect(() => bn.loadStateDict(sd as any)).toThrow(
      'Error(s) in loading state_dict for BatchNorm2d: Missing key(s) in state_dict: "running_var". Unexpected key(s) in state_dict: "extra".',
    );
    expect(JSON.stringify(bn.stateDict())).toBe(before);
    // A dict without num_batches_tracked sets it to 0, as PyTorch does for a plain dict (no version metadata).
    const r = bn.loadStateDict({ weight: [5, 5, 5, 5] }, { strict: false });
    expect(r.missingKeys).toEqual(['bias', 'running_mean', 'running_var']);
    expect(Array.from(bn.weight!.data)).toEqual([5, 5, 5, 5]);
    expect(bn.numBatchesTracked).toBe(0);
  });

  it('checks sizes even when not strict, before changing anything', () => {
    const bn = trainedBn(),
      before = JSON.stringify(bn.stateDict());
    expect(() => bn.loadStateDict({ weight: [1, 2, 3, 4], running_mean: [1, 2, 3] }, { strict: false })).toThrow(
      'size mismatch for running_mean: copying a param with shape [3] from checkpoint, the shape in current model is [4].',
    );
    for (const bad of [-1, 1.5, 2 ** 60, 2n ** 70n]) expect(() => bn.loadStateDict({ ...bn.stateDict(), num_batches_tracked: bad })).toThrow(RangeError);
    expect(() => bn.loadStateDict({ ...bn.stateDict(), num_batches_tracked: -1 })).toThrow(/non-negative integer .*for num_batches_tracked but received -1/);
    expect(() => bn.loadStateDict({ ...bn.stateDict(), num_batches_tracked: 'x' as any })).toThrow(TypeError);
    expect(() => bn.loadStateDict({ ...bn.stateDict(), bias: 'x' as any })).toThrow(TypeError);
    expect(JSON.stringify(bn.stateDict())).toBe(before);
  });

  it('writes safetensors that read back the same, with a prefix for whole-model files', () => {
    const bn = trainedBn();
    const model = Object.fromEntries(Object.entries(bn.stateDict()).map(([k, v]) => [`features.1.${k}`, v]));
    const bytes = writeSafetensors({ ...model, 'other.weight': new Float32Array([1, 2]) });
    const back = readSafetensors(bytes, { prefix: 'features.1.' });
    expect(back).toEqual(bn.stateDict());
    const fresh = new BatchNorm2d(4);
    fresh.loadStateDict(back);
    expect(fresh.stateDict()).toEqual(bn.stateDict());
    expect(() => readSafetensors(new Uint8Array(4))).toThrow(/at least 8 bytes/);
    // A float64 module's arrays are written as F64 and read back exactly (not through float32).
    const f64 = new BatchNorm1d(3, { dtype: 'float64' });
    f64.runningMean!.set([0.1, 1 / 3, Math.PI]);
    const back64 = readSafetensors(writeSafetensors(f64.stateDict()));
    expect(back64.running_mean).toBeInstanceOf(Float64Array);
    expect(Array.from(back64.running_mean as Float64Array)).toEqual([0.1, 1 / 3, Math.PI]);
    expect(back64.num_batches_tracked).toBe(0);
  });

  it('stateDict returns copies, and loadStateDict copies in: later writes to either side change nothing on the other', () => {
    const bn = trainedBn(),
      before = JSON.stringify(bn.stateDict());
    const sd = bn.stateDict();
    for (const v of Object.values(sd)) if (ArrayBuffer.isView(v)) (v as Float32Array).fill(42);
    expect(JSON.stringify(bn.stateDict())).toBe(before);
    const fresh = new BatchNorm2d(4);
    fresh.loadStateDict(sd);
    for (const v of Object.values(sd)) if (ArrayBuffer.isView(v)) (v as Float32Array).fill(7);
    expect(Array.from(fresh.runningMean!)).toEqual([42, 42, 42, 42]);
    expect(Array.from(fresh.weight!.data)).toEqual([42, 42, 42, 42]);
  });

  it('readSafetensors decodes every dtype it lists: F16 and BF16 (normal, subnormal, infinite, NaN) to float32, F64, integer tensors and scalars', () => {
    const bytes = (size: number, put: (dv: DataView) => void, count: number) => {
      const b = new Uint8Array(size * count);
      put(new DataView(b.buffer));
      return b;
    };
    const u16 = (v: number[]) => bytes(2, (dv) => v.forEach((e, i) => dv.setUint16(2 * i, e, true)), v.length);
    const entries: Array<[string, string, number[], Uint8Array]> = [
      // F16: 1, -2, 0x3555, the smallest and largest subnormals, the largest finite, -Inf, NaN, -0.
      ['h', 'F16', [9], u16([0x3c00, 0xc000, 0x3555, 0x0001, 0x03ff, 0x7bff, 0xfc00, 0x7e00, 0x8000])],
      // BF16: the high half of a float32: 1, -3, 0x3EAB0000, a float32 subnormal, ±Inf.
      ['bf', 'BF16', [2, 3], u16([0x3f80, 0xc040, 0x3eab, 0x0001, 0x7f80, 0xff80])],
      ['d', 'F64', [2], bytes(8, (dv) => (dv.setFloat64(0, 0.1, true), dv.setFloat64(8, -1 / 3, true)), 2)],
      ['l', 'I64', [2], bytes(8, (dv) => (dv.setBigInt64(0, -5n, true), dv.setBigInt64(8, 2n ** 40n, true)), 2)],
      ['count', 'I64', [], bytes(8, (dv) => dv.setBigInt64(0, 7n, true), 1)],
      ['i', 'I32', [2], bytes(4, (dv) => (dv.setInt32(0, -7, true), dv.setInt32(4, 2 ** 31 - 1, true)), 2)],
      ['s', 'I16', [1], bytes(2, (dv) => dv.setInt16(0, -300, true), 1)],
      ['b', 'I8', [3], Uint8Array.of(0xff, 0x80, 0x7f)],
      ['u', 'U8', [2], Uint8Array.of(0, 255)],
      ['flag', 'BOOL', [2], Uint8Array.of(1, 0)],
    ];
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, dtype, shape, b] of entries) {
      header[name] = { dtype, shape, data_offsets: [offset, offset + b.length] };
      offset += b.length;
    }
    const data = new Uint8Array(offset);
    for (const [name, , , b] of entries) data.set(b, (header[name] as { data_offsets: number[] }).data_offsets[0]);
    const sd = readSafetensors(safetensorsFile(JSON.stringify(header), data)) as Record<string, unknown>;
    expect(sd.h).toBeInstanceOf(Float32Array);
    expect(Array.from(sd.h as Float32Array)).toEqual([1, -2, 0.333251953125, 2 ** -24, 1023 * 2 ** -24, 65504, -Infinity, NaN, -0]);
    expect(sd.bf).toBeInstanceOf(Float32Array);
    expect(Array.from(sd.bf as Float32Array)).toEqual([1, -3, 0.333984375, 2 ** -133, Infinity, -Infinity]);
    expect(sd.d).toEqual(Float64Array.of(0.1, -1 / 3));
    expect(sd.l).toEqual(Float64Array.of(-5, 2 ** 40));
    expect(sd.count).toBe(7);
    expect(sd.i).toEqual(Float64Array.of(-7, 2 ** 31 - 1));
    expect(sd.s).toEqual(Float64Array.of(-300));
    expect(sd.b).toEqual(Float64Array.of(-1, -128, 127));
    expect(sd.u).toEqual(Float64Array.of(0, 255));
    expect(sd.flag).toEqual(Float64Array.of(1, 0));
    // A half-precision checkpoint loads into a float32 module.
    const bn = new BatchNorm1d(9, { trackRunningStats: false, affine: true });
    bn.loadStateDict({ weight: sd.h as Float32Array, bias: new Float32Array(9) });
    expect(Array.from(bn.weight!.data)).toEqual(Array.from(sd.h as Float32Array));
  });
});

describe('modes and options', () => {
  it('train()/eval() return this and switch between batch and running statistics', () => {
    const bn = new BatchNorm1d(2);
    expect(bn.eval()).toBe(bn);
    expect(bn.training).toBe(false);
    expect(bn.train()).toBe(bn);
    const x = { data: Float32Array.from([1, 10, 3, 30, 5, 50]), shape: [3, 2] };
    const yTrain = bn.forward(x).data;
    expectClose(yTrain, [-1.2247, -1.2247, 0, 0, 1.2247, 1.2247], 1e-4, 1e-4, 'train');
    bn.eval();
    const yEval = bn.forward(x).data;
    const rm = bn.runningMean!,
      rv = bn.runningVar!;
    expectClose(
      yEval,
      Array.from(x.data, (v, i) => (v - rm[i % 2]) / Math.sqrt(rv[i % 2] + 1e-5)),
      1e-5,
      1e-5,
      'eval',
    );
    expect(bn.numBatchesTracked).toBe(1);
  });

  it('zeroGrad keeps the arrays; gradients accumulate until then', () => {
    const bn = new BatchNorm1d(2);
    expect(bn.weight!.grad).toBeNull();
    const x = { data: randn(8, 1) as Float32Array, shape: [4, 2] },
      dy = { data: randn(8, 2) as Float32Array, shape: [4, 2] };
    bn.forward(x);
    bn.backward(dy);
    const g1 = Array.from(bn.bias!.grad!);
    bn.forward(x);
    bn.backward(dy);
    expectClose(
      bn.bias!.grad!,
      g1.map((v) => 2 * v),
      1e-6,
      1e-6,
      'accumulated',
    );
    const arr = bn.bias!.grad;
    bn.zeroGrad();
    expect(bn.bias!.grad).toBe(arr);
    expect(Array.from(arr!)).toEqual([0, 0]);
    expect(bn.parameters()).toEqual([bn.weight, bn.bias]);
  });

  it('out buffers are written and returned, so a loop does not allocate', () => {
    const bn = new BatchNorm2d(3);
    const x = { data: randn(2 * 3 * 4, 3) as Float32Array, shape: [2, 3, 2, 2] },
      out = new Float32Array(24),
      dxOut = new Float32Array(24);
    expect(bn.forward(x, { out }).data).toBe(out);
    expect(bn.backward({ data: randn(24, 4) as Float32Array, shape: x.shape }, { out: dxOut }).data).toBe(dxOut);
  });

  it('a module reuses its per-channel arrays between calls, with the results of fresh ones', async () => {
    // One module through forward/backward pairs (float32, float64, an empty batch, eval, async) against a
    // fresh module per pair given the same state: every dx and every .grad increment must match.
    const C = 3,
      shape = [4, C, 2, 2],
      numel = 48;
    const data = (seed: number, T: typeof Float32Array | typeof Float64Array) => T.from(randn(numel, seed));
    const steps: Array<{ T: typeof Float32Array | typeof Float64Array; empty?: boolean; eval?: boolean; async?: boolean }> = [
      { T: Float32Array },
      { T: Float32Array },
      { T: Float64Array },
      { T: Float32Array },
      { T: Float32Array, empty: true },
      { T: Float32Array, eval: true },
      { T: Float32Array, async: true },
    ];
    const bn = new BatchNorm2d(C);
    for (const [i, st] of steps.entries()) {
      const sh = st.empty ? [0, C, 2, 2] : shape;
      const x = { data: st.empty ? new st.T(0) : data(20 + i, st.T), shape: sh },
        dy = { data: st.empty ? new st.T(0) : data(40 + i, st.T), shape: sh };
      const fresh = new BatchNorm2d(C);
      fresh.loadStateDict(bn.stateDict());
      fresh.weight!.data.set(bn.weight!.data);
      (bn.train(!st.eval), fresh.train(!st.eval));
      const before = Array.from(bn.weight!.grad ?? new Float32Array(C)).concat(Array.from(bn.bias!.grad ?? new Float32Array(C)));
      const y = st.async ? await bn.forwardAsync(x) : bn.forward(x),
        yFresh = fresh.forward(x);
      const dx = st.async ? await bn.backwardAsync(dy) : bn.backward(dy),
        dxFresh = fresh.backward(dy);
      expect(Array.from(y.data), `step ${i}: y`).toEqual(Array.from(yFresh.data));
      expect(Array.from(dx.data), `step ${i}: dx`).toEqual(Array.from(dxFresh.data));
      const added = [...Array.from(bn.weight!.grad!), ...Array.from(bn.bias!.grad!)].map((v, k) => v - before[k]);
      expectClose(added, [...Array.from(fresh.weight!.grad!), ...Array.from(fresh.bias!.grad!)], 1e-6, 1e-6, `step ${i}: grad increments`);
      if (st.empty) expect(added).toEqual(new Array(2 * C).fill(0));
    }
  });

  it('Float64Array input gives float64 output with float32 parameters, whose statistics and gradients it still updates', () => {
    const bn = new BatchNorm2d(2);
    const x = { data: randn(2 * 2 * 5, 5, 0, 1, Float64Array) as Float64Array, shape: [2, 2, 5, 1] };
    const y = bn.forward(x);
    expect(y.data).toBeInstanceOf(Float64Array);
    expect(bn.runningMean).toBeInstanceOf(Float32Array);
    // The kernel works on float64 copies of the module's float32 arrays: the update must come back.
    const d = { n: 2, c: 2, s: 5, channelsLast: false },
      m = 10;
    const { mean, variance } = refMoments(x.data, d);
    const invstd = Float64Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5));
    expectClose(y.data, refNormalize(x.data, d, mean, variance, 1e-5, null, null), 1e-6, 1e-6, 'y');
    expectClose(
      bn.runningMean!,
      Array.from(mean, (v) => 0.1 * v),
      1e-6,
      1e-6,
      'runningMean',
    );
    expectClose(
      bn.runningVar!,
      Array.from(variance, (v) => 0.9 + (0.1 * v * m) / (m - 1)),
      1e-6,
      1e-6,
      'runningVar',
    );
    const dy = { data: randn(20, 6, 0, 1, Float64Array) as Float64Array, shape: x.shape };
    const dx = bn.backward(dy);
    expect(dx.data).toBeInstanceOf(Float64Array);
    expect(bn.weight!.grad).toBeInstanceOf(Float32Array);
    const ref = refBackward(x.data, dy.data, d, mean, invstd, null, true);
    expectClose(dx.data, ref.dx, 1e-6, 1e-6, 'dx');
    expectClose(bn.weight!.grad!, ref.gw, 1e-6, 1e-6, 'weight.grad');
    expectClose(bn.bias!.grad!, ref.gb, 1e-6, 1e-6, 'bias.grad');
    // The other way round: a float64 module and float32 input.
    const b64 = new BatchNorm2d(2, { dtype: 'float64', momentum: 0.5 }),
      x32 = Float32Array.from(x.data);
    b64.forward({ data: x32, shape: x.shape });
    const s32 = refMoments(x32, d);
    expect(b64.runningMean).toBeInstanceOf(Float64Array);
    expectClose(
      b64.runningMean!,
      Array.from(s32.mean, (v) => 0.5 * v),
      1e-6,
      1e-6,
      'float64 module runningMean',
    );
    expectClose(
      b64.runningVar!,
      Array.from(s32.variance, (v) => 0.5 + (0.5 * v * m) / (m - 1)),
      1e-6,
      1e-6,
      'float64 module runningVar',
    );
  });

  it('momentum null is a cumulative average; Keras settings keep the biased variance', () => {
    const bn = new BatchNorm1d(1, { momentum: null });
    const batches = [
      [1, 3],
      [5, 9],
      [0, 4],
    ];
    for (const b of batches) bn.forward({ data: Float32Array.from(b), shape: [2, 1] });
    expectClose(bn.runningMean!, [(2 + 7 + 2) / 3], 1e-6, 1e-6, 'cumulative mean');
    const k = new BatchNorm2d(1, fromKeras({ momentum: 0.9 }));
    expect(k.momentum).toBeCloseTo(0.1);
    expect(k.eps).toBe(1e-3);
    expect(k.layout).toBe('channelsLast');
    const x = { data: Float32Array.from([1, 2, 3, 6]), shape: [1, 2, 2, 1] };
    k.forward(x);
    const { variance } = refMoments(x.data, { n: 4, c: 1, s: 1, channelsLast: true });
    expectClose(k.runningVar!, [0.9 + 0.1 * variance[0]], 1e-6, 1e-6, 'biased moving variance');
    // Defaults (momentum 0.99, epsilon 1e-3, channels-last, affine); axis 1 is channels-first; no center and scale: no affine.
    expect(fromKeras()).toEqual({ momentum: 0.01, eps: 1e-3, affine: true, layout: 'channelsLast', unbiasedRunningVar: false });
    expect(fromKeras({ axis: 1, epsilon: 1e-5, momentum: 0.5 })).toMatchObject({ layout: 'channelsFirst', eps: 1e-5, momentum: 0.5 });
    const plain = new BatchNorm2d(3, fromKeras({ center: false, scale: false }));
    expect(plain.affine).toBe(false);
    expect(plain.weight).toBeNull();
    expect(() => fromKeras({ axis: 2 as any })).toThrow(RangeError);
    expect(() => fromKeras({ momentum: 1.5 })).toThrow(RangeError);
  });

  it('trackRunningStats false uses batch statistics in eval too', () => {
    const bn = new BatchNorm1d(2, { trackRunningStats: false }).eval();
    const x = { data: Float32Array.from([1, 10, 3, 30]), shape: [2, 2] };
    expectClose(bn.forward(x).data, [-1, -1, 1, 1], 1e-4, 1e-4, 'batch stats in eval');
    expect(bn.runningMean).toBeNull();
    expect(bn.numBatchesTracked).toBeNull();
    // Batch statistics need two values per channel in eval too (PyTorch passes training=True to F.batch_norm then).
    expect(() => bn.forward({ data: Float32Array.from([1, 10]), shape: [1, 2] })).toThrow(
      'Expected more than 1 value per channel when training, got input size [1, 2]',
    );
  });

  it('functional batchNorm updates running statistics in training and returns the saved ones', () => {
    // Channels [1, 3] and [10, 30]: means 2 and 20, biased variances 1 and 100, unbiased 2 and 200.
    // Momentum 0.25 (not 0.5, where both conventions agree) is the weight of the batch: running = 0.75·running + 0.25·batch.
    const x = { data: Float32Array.from([1, 10, 3, 30]), shape: [2, 2] };
    const rm = new Float32Array(2),
      rv = new Float32Array(2).fill(1);
    const r = batchNorm(x, rm, rv, { training: true, momentum: 0.25 });
    expectClose(rm, [0.5, 5], 1e-6, 1e-6, 'running mean');
    expectClose(rv, [0.75 + 0.25 * 2, 0.75 + 0.25 * 200], 1e-6, 1e-6, 'running var (unbiased)');
    expectClose(r.saveMean, [2, 20], 1e-6, 1e-6, 'saved mean');
    expectClose(r.saveInvstd, [1 / Math.sqrt(1 + 1e-5), 1 / Math.sqrt(100 + 1e-5)], 1e-6, 1e-6, 'saved invstd (biased)');
    // unbiasedRunningVar: false keeps the biased variance (Keras, TF.js).
    const rmB = new Float32Array(2),
      rvB = new Float32Array(2).fill(1);
    batchNorm(x, rmB, rvB, { training: true, momentum: 0.25, unbiasedRunningVar: false });
    expectClose(rvB, [0.75 + 0.25 * 1, 0.75 + 0.25 * 100], 1e-6, 1e-6, 'running var (biased)');
  });

  it('functional batchNorm writes saveMean and saveInvstd into saveMeanOut and saveInvstdOut, as it would allocate them', async () => {
    const x = { data: randn(3 * 4 * 5, 8) as Float32Array, shape: [3, 4, 5] };
    for (const training of [true, false]) {
      const rm = Float32Array.from([0.5, -1, 2, 0]),
        rv = Float32Array.from([1, 2, 0.5, 3]);
      const want = batchNorm(x, rm.slice(), rv.slice(), { training });
      for (const form of ['sync', 'async']) {
        const saveMeanOut = new Float32Array(4).fill(9),
          saveInvstdOut = new Float32Array(4).fill(9),
          out = new Float32Array(60);
        const opts = { training, out, saveMeanOut, saveInvstdOut };
        const r = form === 'sync' ? batchNorm(x, rm.slice(), rv.slice(), opts) : await batchNormAsync(x, rm.slice(), rv.slice(), opts);
        expect(r.saveMean, `${form}, training ${training}`).toBe(saveMeanOut);
        expect(r.saveInvstd).toBe(saveInvstdOut);
        expect(Array.from(saveMeanOut)).toEqual(Array.from(want.saveMean));
        expect(Array.from(saveInvstdOut)).toEqual(Array.from(want.saveInvstd));
        expect(Array.from(out)).toEqual(Array.from(want.data));
      }
    }
    // An empty batch in training writes zeros, as allocated arrays hold.
    const saveMeanOut = new Float32Array(4).fill(9),
      saveInvstdOut = new Float32Array(4).fill(9);
    batchNorm({ data: new Float32Array(0), shape: [0, 4] }, null, null, { training: true, saveMeanOut, saveInvstdOut });
    expect(Array.from(saveMeanOut).concat(Array.from(saveInvstdOut))).toEqual(new Array(8).fill(0));
  });
});

describe('module state: in place, aliasing, null buffers, async', () => {
  const x4 = () => ({ data: randn(4 * 3 * 2, 11, 0.5, 2) as Float32Array, shape: [4, 3, 2, 1] });
  const dy4 = () => ({ data: randn(4 * 3 * 2, 12) as Float32Array, shape: [4, 3, 2, 1] });
  const snapshot = (bn: BatchNorm2d) =>
    JSON.stringify({ sd: bn.stateDict(), gw: bn.weight!.grad && Array.from(bn.weight!.grad), gb: bn.bias!.grad && Array.from(bn.bias!.grad) });

  it('a forward in place (out: input.data) makes a backward that needs x throw, changing nothing', () => {
    const bn = new BatchNorm2d(3),
      x = x4();
    bn.forward(x, { out: x.data });
    const before = snapshot(bn);
    expect(() => bn.backward(dy4())).toThrow(/needs the input of the last forward, which a forward overwrote in place/);
    expect(snapshot(bn)).toBe(before);
    // Eval: the weight gradient still needs x ...
    const e = new BatchNorm2d(3).eval(),
      xe = x4();
    e.forward(xe, { out: xe.data });
    expect(() => e.backward(dy4())).toThrow(/overwrote/);
    // ... but without affine parameters the frozen backward reads only dy, so in place gives the same dx.
    const a = new BatchNorm2d(3, { affine: false }).eval(),
      b = new BatchNorm2d(3, { affine: false }).eval(),
      xa = x4(),
      xb = x4();
    a.forward(xa, { out: xa.data });
    b.forward(xb);
    expect(Array.from(a.backward(dy4()).data)).toEqual(Array.from(b.backward(dy4()).data));
  });

  it("out may not share memory with the module's parameters, gradients or running statistics", () => {
    const bn = new BatchNorm1d(3);
    const x = { data: randn(3, 13) as Float32Array, shape: [1, 3] },
      xs = { data: randn(6, 14) as Float32Array, shape: [2, 3] };
    bn.forward(xs);
    bn.backward(xs);
    const before = JSON.stringify({ sd: bn.stateDict(), g: Array.from(bn.weight!.grad!) });
    expect(() => bn.backward(xs, { out: new Float32Array(bn.weight!.grad!.buffer, 0, 6) })).toThrow(RangeError);
    for (const name of ['weight', 'bias', 'runningMean', 'runningVar'] as const) {
      const own = name === 'weight' || name === 'bias' ? bn[name]!.data : bn[name]!;
      bn.eval();
      expect(() => bn.forward(x, { out: own as Float32Array })).toThrow(`Expected out not to share memory with the module's ${name}, but it overlaps it`);
      bn.train();
    }
    expect(JSON.stringify({ sd: bn.stateDict(), g: Array.from(bn.weight!.grad!) })).toBe(before);
    // A float64 module's buffers reach the kernel as float32 copies: the module itself must catch this.
    const m = new BatchNorm1d(4, { dtype: 'float64' }).eval();
    const view = new Float32Array(m.runningMean!.buffer, 0, 4);
    expect(() => m.forward({ data: randn(4, 15) as Float32Array, shape: [1, 4] }, { out: view })).toThrow(/share memory with the module's runningMean/);
    expect(Array.from(m.runningMean!)).toEqual([0, 0, 0, 0]);
  });

  it("out overlapping the input (not in place) is refused under the user's names", () => {
    const bn = new BatchNorm1d(2),
      buf = new Float32Array(8).fill(1);
    const x = { data: buf.subarray(0, 6), shape: [3, 2] };
    expect(() => bn.forward(x, { out: buf.subarray(2, 8) })).toThrow(
      'Expected out not to share memory with input.data unless it is the same array (in place), but it overlaps it',
    );
    bn.forward(x, { out: new Float32Array(6) });
    const g = new Float32Array(8).fill(1),
      dy = { data: g.subarray(0, 6), shape: [3, 2] };
    expect(() => bn.backward(dy, { out: g.subarray(2, 8) })).toThrow(/Expected out not to share memory with gradOutput.data unless/);
    expect(() => bn.backward(dy, { out: buf.subarray(1, 7) })).toThrow(/with the last forward's input unless/);
    expect(bn.backward(dy, { out: dy.data }).data).toBe(dy.data);
  });

  it('a detached out, or one of the other float type, is named as such', () => {
    const bn = new BatchNorm1d(2),
      out = new Float32Array(4);
    structuredClone(out.buffer, { transfer: [out.buffer] });
    expect(() => bn.forward({ data: Float32Array.from([1, 2, 3, 4]), shape: [2, 2] }, { out })).toThrow(/for out but received one whose buffer is detached/);
    // The other float type is a TypeError, as in the functional forms.
    expect(() => bn.forward({ data: Float32Array.from([1, 2, 3, 4]), shape: [2, 2] }, { out: new Float64Array(4) as any })).toThrow(
      new TypeError('Expected a Float32Array of length 4 or null for out but received a Float64Array of length 4'),
    );
  });

  it("running statistics set to null: batch statistics in eval too, as PyTorch's running_mean = None", () => {
    const bn = new BatchNorm2d(3),
      ref = new BatchNorm2d(3, { trackRunningStats: false }).eval(),
      x = x4();
    bn.runningMean = null;
    bn.runningVar = null;
    bn.eval();
    expect(Array.from(bn.forward(x).data)).toEqual(Array.from(ref.forward(x).data));
    expect(bn.numBatchesTracked).toBe(0);
    // The backward goes through the batch statistics, as after a training forward.
    expect(Array.from(bn.backward(dy4()).data)).toEqual(Array.from(ref.backward(dy4()).data));
    // PyTorch's training forward still counts the batch with its running buffers None.
    bn.train().forward(x);
    expect(bn.numBatchesTracked).toBe(1);
    expect(Object.keys(bn.stateDict())).toEqual(['weight', 'bias', 'num_batches_tracked']);
    bn.runningVar = new Float32Array(3).fill(1);
    expect(() => bn.forward(x)).toThrow('Expected runningMean and runningVar of BatchNorm2d to be both arrays or both null but received null and an array');
    expect(bn.numBatchesTracked).toBe(1);
  });

  it('loadStateDict reads each value once: a getter or Proxy cannot change it between the check and the copy', () => {
    const bn = trainedBn(),
      before = JSON.stringify(bn.stateDict());
    let reads = 0;
    const once = new Proxy([1, 2, 3, 4], {
      get(t, p, r) {
        if (p === '0' && ++reads > 1) throw new Error('read twice');
        return Reflect.get(t, p, r);
      },
    });
    bn.loadStateDict({ ...bn.stateDict(), running_var: once });
    expect(Array.from(bn.runningVar!)).toEqual([1, 2, 3, 4]);
    // A value that throws when read leaves every key as it was.
    const bad = { ...JSON.parse(before), weight: [9, 9, 9, 9] };
    Object.defineProperty(bad, 'running_mean', {
      enumerable: true,
      get: () => {
        throw new Error('unreadable');
      },
    });
    bn.loadStateDict(JSON.parse(before));
    expect(() => bn.loadStateDict(bad)).toThrow('unreadable');
    expect(JSON.stringify(bn.stateDict())).toBe(before);
  });

  it('loadStateDict options are checked', () => {
    const bn = trainedBn();
    expect(() => bn.loadStateDict(bn.stateDict(), null as any)).toThrow(TypeError);
    expect(() => bn.loadStateDict(bn.stateDict(), { strict: 'no' as any })).toThrow('Expected a boolean for strict but received');
  });

  it('stateDict and loadStateDict refuse while an async forward is running, so the state stays consistent', async () => {
    const bn = trainedBn(),
      sd = bn.stateDict();
    const pending = bn.forwardAsync({ data: randn(2 * 4 * 9, 16, 3) as Float32Array, shape: [2, 4, 3, 3] });
    expect(() => bn.loadStateDict(sd)).toThrow('BatchNorm2d.loadStateDict() called while forwardAsync() is still running; await it first');
    expect(() => bn.stateDict()).toThrow(/stateDict\(\) called while forwardAsync\(\)/);
    await pending;
    expect(bn.numBatchesTracked).toBe(4);
    bn.loadStateDict(sd);
    expect(bn.numBatchesTracked).toBe(3);
  });

  it('constructor options of the wrong type are TypeErrors; a numFeatures too large to allocate is a RangeError', () => {
    expect(() => new BatchNorm1d(2, { eps: '1' as any })).toThrow(TypeError);
    expect(() => new BatchNorm1d(2, { momentum: '0.1' as any })).toThrow(TypeError);
    expect(() => new BatchNorm1d(2, { dtype: 'float16' as any })).toThrow(RangeError);
    expect(() => new BatchNorm1d(2, { dtype: 16 as any })).toThrow(TypeError);
    expect(() => new BatchNorm1d(2 ** 40)).toThrow(/small enough for float32 arrays .*for numFeatures of BatchNorm1d but received 1099511627776/);
  });
});

describe('empty batches (a dimension 0), as in PyTorch', () => {
  it('a module forward and backward on (0, C, H, W): empty results, running statistics kept, the batch counted', async () => {
    const bn = new BatchNorm2d(3);
    bn.forward({ data: randn(2 * 3 * 4, 21, 1, 2) as Float32Array, shape: [2, 3, 2, 2] });
    bn.backward({ data: randn(2 * 3 * 4, 22) as Float32Array, shape: [2, 3, 2, 2] });
    const rm = Array.from(bn.runningMean!),
      rv = Array.from(bn.runningVar!),
      gw = Array.from(bn.weight!.grad!);
    const empty = { data: new Float32Array(0), shape: [0, 3, 2, 2] };
    const y = bn.forward(empty);
    expect(y.data.length).toBe(0);
    expect(y.shape).toEqual([0, 3, 2, 2]);
    expect(bn.numBatchesTracked).toBe(2);
    expect(Array.from(bn.runningMean!)).toEqual(rm);
    expect(Array.from(bn.runningVar!)).toEqual(rv);
    const dx = bn.backward({ data: new Float32Array(0), shape: [0, 3, 2, 2] });
    expect(dx.data.length).toBe(0);
    expect(Array.from(bn.weight!.grad!)).toEqual(gw);
    expect((await bn.forwardAsync(empty)).data.length).toBe(0);
    expect(bn.numBatchesTracked).toBe(3);
    bn.eval();
    expect(bn.forward({ data: new Float32Array(0), shape: [4, 3, 0, 2] }).shape).toEqual([4, 3, 0, 2]);
    // A float64 module's running statistics stay exact (no round trip through a float32 input's type).
    const f64 = new BatchNorm1d(2, { dtype: 'float64' });
    f64.runningMean!.set([0.1, 0.2]);
    f64.forward({ data: new Float32Array(0), shape: [0, 2] });
    expect(Array.from(f64.runningMean!)).toEqual([0.1, 0.2]);
    // A fresh module's first gradients are zeros, as PyTorch's after an empty batch.
    const fresh = new BatchNorm1d(2);
    fresh.forward({ data: new Float64Array(0), shape: [2, 2, 0] });
    fresh.backward({ data: new Float64Array(0), shape: [2, 2, 0] });
    expect(Array.from(fresh.weight!.grad!)).toEqual([0, 0]);
    // One value per channel is still PyTorch's error; none is not.
    expect(() => fresh.train().forward({ data: new Float32Array(2), shape: [1, 2] })).toThrow(/more than 1 value per channel/);
  });

  it('functional forms: running statistics untouched, gradients zero (written into gradWeightOut too)', async () => {
    const rm = Float32Array.from([1, 2]),
      rv = Float32Array.from([3, 4]);
    const x = { data: new Float32Array(0), shape: [0, 2] };
    const r = batchNorm(x, rm, rv, { training: true, momentum: 0.5 });
    expect(r.data.length).toBe(0);
    expect(Array.from(rm)).toEqual([1, 2]);
    expect(Array.from(rv)).toEqual([3, 4]);
    expect((await batchNormAsync(x, rm, rv, { training: false })).data.length).toBe(0);
    const gradWeightOut = Float32Array.from([7, 7]),
      gradBiasOut = Float32Array.from([7, 7]);
    const g = batchNormBackward(x, x, { saveMean: r.saveMean, saveInvstd: r.saveInvstd, training: true, gradWeightOut, gradBiasOut });
    expect(g.gradInput.data.length).toBe(0);
    expect(Array.from(gradWeightOut)).toEqual([0, 0]);
    expect(Array.from(gradBiasOut)).toEqual([0, 0]);
    expect(Array.from((await batchNormBackwardAsync(x, x, { saveMean: r.saveMean, saveInvstd: r.saveInvstd })).gradBias)).toEqual([0, 0]);
  });
});
