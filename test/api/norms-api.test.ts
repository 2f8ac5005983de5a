/**
 * The norms' public surface beside the numbers: sync and async forms agree,
 * `out` buffers, dtypes, empty batches, state dicts under PyTorch's keys
 * (JSON and safetensors), PyTorch's repr, and the errors — each naming the
 * argument, what was expected and what came — after which nothing changed.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  GroupNorm,
  InstanceNorm1d,
  InstanceNorm2d,
  InstanceNorm3d,
  LayerNorm,
  RMSNorm,
  groupNorm,
  groupNormAsync,
  groupNormBackward,
  groupNormBackwardAsync,
  instanceNorm,
  instanceNormAsync,
  instanceNormBackward,
  instanceNormBackwardAsync,
  layerNorm,
  layerNormAsync,
  layerNormBackward,
  layerNormBackwardAsync,
  readSafetensors,
  rmsNorm,
  rmsNormAsync,
  rmsNormBackward,
  rmsNormBackwardAsync,
  writeSafetensors,
} from '../../lib/index.js';
import { randn } from '../helpers.js';

const x32 = (shape: number[], seed = 1, mean = 0.5, std = 2) => ({
  data: randn(
    shape.reduce((a, b) => a * b, 1),
    seed,
    mean,
    std,
  ) as Float32Array,
  shape,
});
const bits = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

describe('async forms give the sync results', () => {
  it('functional forms and their backwards', async () => {
    const x = x32([4, 6, 5]),
      dy = x32([4, 6, 5], 2),
      w = randn(6, 3) as Float32Array,
      b = randn(6, 4) as Float32Array;
    const ln = layerNorm(x, [6, 5]),
      lna = await layerNormAsync(x, [6, 5]);
    expect(bits(lna.data)).toBe(bits(ln.data));
    const lg = layerNormBackward(dy, x, [6, 5], { saveMean: ln.saveMean, saveInvstd: ln.saveInvstd });
    expect(bits((await layerNormBackwardAsync(dy, x, [6, 5], { saveMean: ln.saveMean, saveInvstd: ln.saveInvstd })).gradInput.data)).toBe(
      bits(lg.gradInput.data),
    );
    const r = rmsNorm(x, 5),
      ra = await rmsNormAsync(x, 5);
    expect(bits(ra.data)).toBe(bits(r.data));
    expect(bits((await rmsNormBackwardAsync(dy, x, 5, { saveInvstd: r.saveInvstd })).gradInput.data)).toBe(
      bits(rmsNormBackward(dy, x, 5, { saveInvstd: r.saveInvstd }).gradInput.data),
    );
    const g = groupNorm(x, 3, { weight: w, bias: b }),
      ga = await groupNormAsync(x, 3, { weight: w, bias: b });
    expect(bits(ga.data)).toBe(bits(g.data));
    const gg = groupNormBackward(dy, x, 3, { weight: w, saveMean: g.saveMean, saveInvstd: g.saveInvstd });
    const gga = await groupNormBackwardAsync(dy, x, 3, { weight: w, saveMean: g.saveMean, saveInvstd: g.saveInvstd });
    expect([bits(gga.gradInput.data), bits(gga.gradWeight!), bits(gga.gradBias!)]).toEqual([bits(gg.gradInput.data), bits(gg.gradWeight!), bits(gg.gradBias!)]);
    for (const layout of ['channelsFirst', 'channelsLast'] as const) {
      const rm = new Float32Array(layout === 'channelsFirst' ? 6 : 5),
        rv = new Float32Array(rm.length).fill(1),
        rm2 = rm.slice(),
        rv2 = rv.slice();
      const i = instanceNorm(x, rm, rv, { layout }),
        ia = await instanceNormAsync(x, rm2, rv2, { layout });
      expect([bits(ia.data), bits(rm2), bits(rv2)]).toEqual([bits(i.data), bits(rm), bits(rv)]);
      const ig = instanceNormBackward(dy, x, { saveMean: i.saveMean, saveInvstd: i.saveInvstd, layout });
      expect(bits((await instanceNormBackwardAsync(dy, x, { saveMean: i.saveMean, saveInvstd: i.saveInvstd, layout })).gradInput.data)).toBe(
        bits(ig.gradInput.data),
      );
    }
  });

  it('modules: forwardAsync/backwardAsync, and one call at a time', async () => {
    for (const make of [
      () => new LayerNorm(5),
      () => new RMSNorm(5),
      () => new GroupNorm(2, 4),
      () => new InstanceNorm1d(4, { affine: true, trackRunningStats: true }),
    ]) {
      const a = make(),
        b = make(),
        x = x32([3, 4, 5]),
        dy = x32([3, 4, 5], 9);
      const y = a.forward(x),
        dx = a.backward(dy);
      const p = b.forwardAsync(x);
      expect(() => b.forward(x)).toThrow(/called while forwardAsync\(\) is still running; await it first/);
      expect(bits((await p).data)).toBe(bits(y.data));
      expect(bits((await b.backwardAsync(dy)).data)).toBe(bits(dx.data));
      expect(JSON.stringify(b.stateDict())).toBe(JSON.stringify(a.stateDict()));
      expect(a.parameters().map((q) => bits(q.grad!))).toEqual(b.parameters().map((q) => bits(q.grad!)));
    }
  });

  it('an async form rejects on bad input instead of throwing', async () => {
    await expect(layerNormAsync({ data: new Float32Array(3), shape: [3] }, 4)).rejects.toThrow(RangeError);
    await expect(groupNormAsync(x32([2, 4]), 3)).rejects.toThrow('divisible by num_groups');
    await expect(new GroupNorm(2, 4).forwardAsync(x32([2, 6]))).rejects.toThrow('GroupNorm expected input with 4 channels');
  });
});

describe('out buffers, in place, dtypes, empty batches', () => {
  it("writes into out, in place too, and a module converts its parameters to the input's type", () => {
    const x = x32([4, 8]),
      out = new Float32Array(32);
    const y = layerNorm(x, 8, { out });
    expect(y.data).toBe(out);
    const inPlace = { data: x.data.slice(), shape: x.shape };
    layerNorm(inPlace, 8, { out: inPlace.data });
    expect(bits(inPlace.data)).toBe(bits(out));
    const m = new LayerNorm(8); // float32 parameters
    const y64 = m.forward({ data: Float64Array.from(x.data), shape: [4, 8] });
    expect(y64.data).toBeInstanceOf(Float64Array);
    m.backward({ data: new Float64Array(32).fill(1), shape: [4, 8] });
    expect(m.weight!.grad).toBeInstanceOf(Float32Array);
  });

  it("an out that overlaps the input, or a module's parameters, is refused", () => {
    const x = x32([4, 8]);
    expect(() => layerNorm(x, 8, { out: new Float32Array(x.data.buffer, 4, 32 - 1) as Float32Array })).toThrow(RangeError);
    const m = new GroupNorm(1, 32);
    expect(() => m.forward({ data: new Float32Array(32), shape: [1, 32] }, { out: m.weight!.data })).toThrow(
      "Expected out not to share memory with the module's weight",
    );
  });

  it('an empty batch runs no kernel and gives empty results and zero gradients', () => {
    const e = { data: new Float32Array(0), shape: [0, 4, 3] };
    expect(layerNorm(e, 3).data).toHaveLength(0);
    expect(groupNorm(e, 2).saveMean).toHaveLength(0);
    const g = groupNormBackward(e, e, 2, { weight: new Float32Array(4).fill(1), saveMean: new Float32Array(0), saveInvstd: new Float32Array(0) });
    expect(Array.from(g.gradWeight!)).toEqual([0, 0, 0, 0]);
    const m = new InstanceNorm1d(4, { trackRunningStats: true });
    expect(m.forward(e).shape).toEqual([0, 4, 3]);
    expect(Array.from(m.runningVar!)).toEqual([1, 1, 1, 1]);
  });

  it('InstanceNorm takes unbatched input and gives it back unbatched', () => {
    const m = new InstanceNorm2d(3, { affine: true });
    const y = m.forward(x32([3, 4, 4]));
    expect(y.shape).toEqual([3, 4, 4]);
    expect(m.backward(x32([3, 4, 4], 2)).shape).toEqual([3, 4, 4]);
    const batched = new InstanceNorm2d(3, { affine: true }).forward(x32([1, 3, 4, 4]));
    expect(bits(batched.data)).toBe(bits(y.data));
  });

  it('InstanceNorm in eval uses the running statistics only when it tracks them', () => {
    const x = x32([2, 3, 10]);
    const tracking = new InstanceNorm1d(3, { trackRunningStats: true });
    tracking.forward(x);
    const rm = tracking.runningMean!.slice();
    tracking.eval();
    const y = tracking.forward(x);
    expect(bits(tracking.runningMean!)).toBe(bits(rm)); // eval never updates them
    const want = instanceNorm(x, tracking.runningMean, tracking.runningVar, { useInputStats: false });
    expect(bits(y.data)).toBe(bits(want.data));
    const plain = new InstanceNorm1d(3).eval(); // no running statistics: the instance's own in eval too
    expect(bits(plain.forward(x).data)).toBe(bits(instanceNorm(x).data));
  });
});

describe('state dicts, safetensors, repr', () => {
  it("uses exactly PyTorch's keys", () => {
    expect(Object.keys(new LayerNorm([3, 4]).stateDict())).toEqual(['weight', 'bias']);
    expect(Object.keys(new LayerNorm(4, { bias: false }).stateDict())).toEqual(['weight']);
    expect(Object.keys(new LayerNorm(4, { elementwiseAffine: false }).stateDict())).toEqual([]);
    expect(Object.keys(new RMSNorm(4).stateDict())).toEqual(['weight']);
    expect(Object.keys(new GroupNorm(2, 4).stateDict())).toEqual(['weight', 'bias']);
    expect(Object.keys(new InstanceNorm2d(4).stateDict())).toEqual([]);
    expect(Object.keys(new InstanceNorm2d(4, { affine: true, trackRunningStats: true }).stateDict())).toEqual([
      'weight',
      'bias',
      'running_mean',
      'running_var',
      'num_batches_tracked',
    ]);
  });

  it('round-trips through JSON and safetensors', () => {
    const a = new InstanceNorm3d(2, { affine: true, trackRunningStats: true });
    a.forward(x32([2, 2, 2, 2, 3]));
    a.loadStateDict({ ...a.stateDict(), weight: [-0.5, 2] });
    const b = new InstanceNorm3d(2, { affine: true, trackRunningStats: true });
    b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())));
    expect(b.stateDict()).toEqual(a.stateDict());
    const c = new InstanceNorm3d(2, { affine: true, trackRunningStats: true });
    c.loadStateDict(readSafetensors(writeSafetensors(a.stateDict())));
    expect(c.stateDict()).toEqual(a.stateDict());
    const ln = new LayerNorm([2, 3]);
    ln.loadStateDict({ weight: [1, 2, 3, 4, 5, 6], bias: [0, 0, 0, 0, 0, -1] });
    const ln2 = new LayerNorm([2, 3]);
    ln2.loadStateDict(readSafetensors(writeSafetensors(ln.stateDict())));
    expect(ln2.stateDict()).toEqual(ln.stateDict());
  });

  it("strict keys and sizes, with PyTorch's messages, and nothing changes", () => {
    const gn = new GroupNorm(2, 4),
      before = JSON.stringify(gn.stateDict());
    expect(() => gn.loadStateDict({ weight: [1, 1, 1, 1] })).toThrow('Error(s) in loading state_dict for GroupNorm: Missing key(s) in state_dict: "bias".');
    expect(() => gn.loadStateDict({ weight: [2, 2, 2, 2], bias: [1, 1, 1] })).toThrow(
      'size mismatch for bias: copying a param with shape [3] from checkpoint, the shape in current model is [4].',
    );
    expect(() => new LayerNorm([2, 3]).loadStateDict({ weight: [1], bias: [1] })).toThrow('the shape in current model is [2, 3].');
    expect(JSON.stringify(gn.stateDict())).toBe(before);
    expect(gn.loadStateDict({ weight: [3, 3, 3, 3] }, { strict: false }).missingKeys).toEqual(['bias']);
  });

  it('prints as PyTorch does', () => {
    expect(String(new LayerNorm(768))).toBe('LayerNorm((768,), eps=1e-05, elementwise_affine=True)');
    expect(String(new LayerNorm([4, 5], { eps: 1e-6 }))).toBe('LayerNorm((4, 5), eps=1e-06, elementwise_affine=True)'); // str(torch.nn.LayerNorm((4, 5), eps=1e-6)) in PyTorch 1.13
    expect(String(new RMSNorm(4096))).toBe('RMSNorm((4096,), eps=None, elementwise_affine=True)');
    expect(String(new GroupNorm(32, 64))).toBe('GroupNorm(32, 64, eps=1e-05, affine=True)');
    expect(inspect(new InstanceNorm2d(32))).toBe('InstanceNorm2d(32, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)');
  });
});

describe('errors name the argument, the expectation and what came, and change nothing', () => {
  it('constructors', () => {
    expect(() => new LayerNorm(0)).toThrow(TypeError);
    expect(() => new LayerNorm([2, 1.5])).toThrow('Expected a positive integer or a non-empty array of them for normalizedShape but received [2, 1.5]');
    expect(() => new LayerNorm(4, { epsilon: 1e-3 } as any)).toThrow(
      'Expected only the options eps, elementwiseAffine, bias, dtype for LayerNorm but received an unknown option "epsilon"',
    );
    expect(() => new LayerNorm(4, { eps: -1 })).toThrow('Expected a number in [0, 1] for eps but received the number -1');
    expect(() => new GroupNorm(3, 4)).toThrow('num_channels must be divisible by num_groups');
    expect(() => new GroupNorm(2, 4, { affine: 'yes' } as any)).toThrow('Expected a boolean for affine but received a string');
    expect(() => new InstanceNorm1d(4, { momentum: 2 })).toThrow('Expected a number in [0, 1] for momentum but received the number 2');
    expect(() => new RMSNorm(4, { dtype: 'float16' } as any)).toThrow("Expected 'float32' or 'float64' for dtype but received the string \"float16\"");
    // eps = 0 is accepted, as in PyTorch: a constant row then gives NaN, as PyTorch's invstd = inf does.
    expect(Number.isNaN(layerNorm({ data: new Float32Array(4).fill(2), shape: [1, 4] }, 4, { eps: 0 }).data[0])).toBe(true);
    expect(Number.isNaN(groupNorm({ data: new Float32Array(8).fill(2), shape: [1, 2, 4] }, 1, { eps: 0 }).data[0])).toBe(true);
    // InstanceNorm is PyTorch's batch_norm, whose invstd is 0 where var and eps are: a constant instance gives its bias.
    const r = instanceNorm({ data: new Float32Array(8).fill(2), shape: [1, 2, 4] }, null, null, { eps: 0, bias: new Float32Array([0.5, -1]) });
    expect(Array.from(r.data)).toEqual([0.5, 0.5, 0.5, 0.5, -1, -1, -1, -1]);
    expect(Array.from(r.saveInvstd)).toEqual([0, 0]);
    const cl = instanceNorm({ data: new Float32Array(8).fill(2), shape: [1, 4, 2] }, null, null, {
      eps: 0,
      bias: new Float32Array([0.5, -1]),
      layout: 'channelsLast',
    });
    expect(Array.from(cl.data)).toEqual([0.5, -1, 0.5, -1, 0.5, -1, 0.5, -1]);
  });

  it('calls: shapes, types, options, backward before forward', () => {
    const ln = new LayerNorm(4);
    expect(() => ln.backward(x32([2, 4]))).toThrow('LayerNorm.backward() needs a forward() first');
    expect(() => ln.forward({ data: new Float32Array(6), shape: [2, 3] })).toThrow(
      'Given normalized_shape=[4], expected input with shape [*, 4], but got input of size[2, 3]',
    );
    expect(() => ln.forward({ data: [1, 2, 3, 4] as any, shape: [1, 4] })).toThrow(
      'Expected a Float32Array or Float64Array for input.data but received an Array',
    );
    expect(() => ln.forward(x32([2, 4]), { output: null } as any)).toThrow('received an unknown option "output"');
    expect(() => layerNorm(x32([2, 4]), 4, { weight: new Float32Array(3) })).toThrow(
      'Expected a Float32Array of length 4 for weight but received a Float32Array of length 3',
    );
    expect(() => layerNorm(x32([2, 4]), 4, { weight: new Float64Array(4) as any })).toThrow(TypeError);
    expect(() => groupNorm(x32([2, 4, 3]), 2, { layout: 'NWHC' as any })).toThrow(/Expected one of NC, NCL, .* for layout but received the string "NWHC"/);
    expect(() => groupNormBackward(x32([2, 4, 3]), x32([2, 4, 3]), 2, { saveMean: new Float32Array(3), saveInvstd: new Float32Array(4) })).toThrow(
      'Expected a Float32Array of length 4 for saveMean but received a Float32Array of length 3',
    );
    expect(() => layerNormBackward(x32([2, 5]), x32([2, 4]), 4, { saveMean: new Float32Array(2), saveInvstd: new Float32Array(2) })).toThrow(
      "Expected gradOutput of the input's shape [2, 4] but received shape [2, 5]",
    );
    expect(() => instanceNorm(x32([2, 4, 3]), null, null, { useInputStats: false })).toThrow('Expected runningMean and runningVar when useInputStats is false');
    expect(() => new InstanceNorm2d(2).forward(x32([2, 4, 3]))).not.toThrow(); // (C, H, W) unbatched
    expect(() => new InstanceNorm2d(4).forward(x32([2, 4]))).toThrow('InstanceNorm2d expected 3D or 4D input (got 2D input)');
    expect(() => new InstanceNorm2d(4).forward(x32([2, 5, 3, 3]))).toThrow(
      "InstanceNorm2d expected input's size at dim=1 to match num_features (4), but got: 5",
    );
  });

  it('a throwing call changes nothing: running statistics, gradients, outputs', () => {
    const m = new InstanceNorm1d(3, { affine: true, trackRunningStats: true });
    m.forward(x32([2, 3, 4]));
    m.backward(x32([2, 3, 4], 3));
    const state = JSON.stringify(m.stateDict()),
      grads = m.parameters().map((p) => bits(p.grad!));
    const out = new Float32Array(24).fill(7);
    expect(() => m.forward(x32([2, 3, 4]), { out: new Float32Array(23) })).toThrow(RangeError);
    expect(() => m.forward(x32([2, 3, 1]), { out: out.subarray(0, 6) })).toThrow('Expected more than 1 spatial element when training');
    expect(() => m.backward(x32([2, 3, 5]))).toThrow(RangeError);
    expect(JSON.stringify(m.stateDict())).toBe(state);
    expect(m.parameters().map((p) => bits(p.grad!))).toEqual(grads);
    expect(out.every((v) => v === 7)).toBe(true);
  });

  it('a backward after a forward that overwrote its input is refused', () => {
    const ln = new LayerNorm(4),
      x = x32([2, 4]);
    ln.forward(x, { out: x.data });
    expect(() => ln.backward(x32([2, 4]))).toThrow('needs the input of the last forward, which that forward overwrote');
  });
});
