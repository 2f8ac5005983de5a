/** State dicts (PyTorch keys, strict/non-strict, JSON round trip, safetensors), modes, options, Keras settings. */
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, batchNorm, fromKeras, readSafetensors, writeSafetensors } from '../../lib/index.js';
import { expectClose, randn, refMoments } from '../helpers.js';

function trainedBn(): BatchNorm2d {
  const bn = new BatchNorm2d(4);
  for (let i = 0; i < 3; i++) bn.forward({ data: randn(2 * 4 * 9, i, 1, 2) as Float32Array, shape: [2, 4, 3, 3] });
  return bn;
}

describe('stateDict / loadStateDict', () => {
  it('uses exactly PyTorch\'s keys, in PyTorch\'s order', () => {
    expect(Object.keys(new BatchNorm2d(3).stateDict())).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expect(Object.keys(new BatchNorm1d(3, { trackRunningStats: false }).stateDict())).toEqual(['weight', 'bias']);
    expect(Object.keys(new BatchNorm3d(3, { affine: false }).stateDict())).toEqual(['running_mean', 'running_var', 'num_batches_tracked']);
  });

  it('round-trips through JSON', () => {
    const a = trainedBn(), b = new BatchNorm2d(4);
    b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())));
    expect(b.stateDict()).toEqual(a.stateDict());
    expect(b.numBatchesTracked).toBe(3);
  });

  it('strict: missing and unexpected keys throw PyTorch\'s message and change nothing', () => {
    const bn = trainedBn(), before = JSON.stringify(bn.stateDict());
    const sd = { ...bn.stateDict(), extra: [1] } as Record<string, unknown>;
    delete sd.running_var;
    expect(() => bn.loadStateDict(sd as any)).toThrow('Error(s) in loading state_dict for BatchNorm2d: Missing key(s) in state_dict: "running_var". Unexpected key(s) in state_dict: "extra".');
    expect(JSON.stringify(bn.stateDict())).toBe(before);
    const r = bn.loadStateDict({ weight: [5, 5, 5, 5] }, { strict: false });
    expect(r.missingKeys).toEqual(['bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expect(Array.from(bn.weight!.data)).toEqual([5, 5, 5, 5]);
  });

  it('checks sizes even when not strict, before changing anything', () => {
    const bn = trainedBn(), before = JSON.stringify(bn.stateDict());
    expect(() => bn.loadStateDict({ weight: [1, 2, 3, 4], running_mean: [1, 2, 3] }, { strict: false })).toThrow(
      'size mismatch for running_mean: copying a param with shape [3] from checkpoint, the shape in current model is [4].',
    );
    expect(() => bn.loadStateDict({ ...bn.stateDict(), num_batches_tracked: -1 })).toThrow(/non-negative integer for num_batches_tracked/);
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
    const rm = bn.runningMean!, rv = bn.runningVar!;
    expectClose(yEval, Array.from(x.data, (v, i) => (v - rm[i % 2]) / Math.sqrt(rv[i % 2] + 1e-5)), 1e-5, 1e-5, 'eval');
    expect(bn.numBatchesTracked).toBe(1);
  });

  it('zeroGrad keeps the arrays; gradients accumulate until then', () => {
    const bn = new BatchNorm1d(2);
    expect(bn.weight!.grad).toBeNull();
    const x = { data: randn(8, 1) as Float32Array, shape: [4, 2] }, dy = { data: randn(8, 2) as Float32Array, shape: [4, 2] };
    bn.forward(x);
    bn.backward(dy);
    const g1 = Array.from(bn.bias!.grad!);
    bn.backward(dy);
    expectClose(bn.bias!.grad!, g1.map((v) => 2 * v), 1e-6, 1e-6, 'accumulated');
    const arr = bn.bias!.grad;
    bn.zeroGrad();
    expect(bn.bias!.grad).toBe(arr);
    expect(Array.from(arr!)).toEqual([0, 0]);
    expect(bn.parameters()).toEqual([bn.weight, bn.bias]);
  });

  it('out buffers are written and returned, so a loop does not allocate', () => {
    const bn = new BatchNorm2d(3);
    const x = { data: randn(2 * 3 * 4, 3) as Float32Array, shape: [2, 3, 2, 2] }, out = new Float32Array(24), dxOut = new Float32Array(24);
    expect(bn.forward(x, { out }).data).toBe(out);
    expect(bn.backward({ data: randn(24, 4) as Float32Array, shape: x.shape }, { out: dxOut }).data).toBe(dxOut);
  });

  it('Float64Array input gives float64 output with float32 parameters', () => {
    const bn = new BatchNorm2d(2);
    const x = { data: randn(2 * 2 * 5, 5, 0, 1, Float64Array) as Float64Array, shape: [2, 2, 5, 1] };
    const y = bn.forward(x);
    expect(y.data).toBeInstanceOf(Float64Array);
    expect(bn.runningMean).toBeInstanceOf(Float32Array);
    const dx = bn.backward({ data: randn(20, 6, 0, 1, Float64Array) as Float64Array, shape: x.shape });
    expect(dx.data).toBeInstanceOf(Float64Array);
    expect(bn.weight!.grad).toBeInstanceOf(Float32Array);
  });

  it('momentum null is a cumulative average; Keras settings keep the biased variance', () => {
    const bn = new BatchNorm1d(1, { momentum: null });
    const batches = [[1, 3], [5, 9], [0, 4]];
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
  });

  it('trackRunningStats false uses batch statistics in eval too', () => {
    const bn = new BatchNorm1d(2, { trackRunningStats: false }).eval();
    const x = { data: Float32Array.from([1, 10, 3, 30]), shape: [2, 2] };
    expectClose(bn.forward(x).data, [-1, -1, 1, 1], 1e-4, 1e-4, 'batch stats in eval');
    expect(bn.runningMean).toBeNull();
    expect(bn.numBatchesTracked).toBeNull();
  });

  it('functional batchNorm updates running statistics in training and returns the saved ones', () => {
    const rm = new Float32Array(2), rv = new Float32Array(2).fill(1);
    const r = batchNorm({ data: Float32Array.from([1, 10, 3, 30]), shape: [2, 2] }, rm, rv, { training: true, momentum: 0.5 });
    expectClose(rm, [1, 10], 1e-6, 1e-6, 'running mean');
    expectClose(r.saveMean, [2, 20], 1e-6, 1e-6, 'saved mean');
  });
});
