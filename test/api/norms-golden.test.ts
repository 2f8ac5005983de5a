/**
 * PyTorch's own numbers for the norms beside BatchNorm (test/fixtures/norms.json,
 * made by generate_norms.py with torch 1.13): LayerNorm, GroupNorm and
 * InstanceNorm1d/2d/3d forward and backward with random, partly negative
 * weights, InstanceNorm's running statistics step by step, channels-last
 * layouts, PyTorch's error messages; RMSNorm against the generator's float64
 * reference (PyTorch 1.13 has no RMSNorm).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  GroupNorm,
  InstanceNorm1d,
  InstanceNorm2d,
  InstanceNorm3d,
  LayerNorm,
  RMSNorm,
  groupNorm,
  groupNormBackward,
  instanceNorm,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
} from '../../lib/index.js';
import type { FloatArray } from '../../lib/index.js';
import { expectClose, fromChannelsLast, toChannelsLast } from '../helpers.js';

const golden = JSON.parse(readFileSync(new URL('../fixtures/norms.json', import.meta.url), 'utf8'));

type Arr = number[] | null;
interface T {
  shape: number[];
  data: number[];
}
type Dtype = 'float32' | 'float64';
const ctorOf = (d: Dtype) => (d === 'float64' ? Float64Array : Float32Array);
const tolOf = (d: Dtype) => (d === 'float64' ? 1e-10 : 1e-5);
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/**
 * PyTorch 1.13 normalizes float32 as x·α + β with α = w·invstd, β = b − mean·α:
 * with a large mean beside a small spread (the offset cases) its own output
 * is off by a few ulps of |mean·α|. The comparison allows that rounding and
 * no more; the kernel tests check this package against float64.
 */
function atolFor(dtype: Dtype, x: ArrayLike<number>, invstd: ArrayLike<number>, weight: Arr, expected: ArrayLike<number>): number {
  const tol = tolOf(dtype);
  if (dtype === 'float64') return tol * Math.max(1, maxAbs(expected));
  return Math.max(tol, 4 * 2 ** -24 * maxAbs(x) * maxAbs(invstd) * (weight ? maxAbs(weight) : 1)) * Math.max(1, maxAbs(expected));
}

interface LNCase {
  name: string;
  normalized_shape: number[];
  eps: number;
  elementwise_affine: boolean;
  bias: boolean;
  dtype: Dtype;
  input: T;
  weight: Arr;
  bias_value: Arr;
  output: T;
  grad_output: T;
  grad_input: T;
  grad_weight: Arr;
  grad_bias: Arr;
}

describe.each(golden.layer_norm as LNCase[])('LayerNorm $name', (tc) => {
  const C = ctorOf(tc.dtype),
    tol = tolOf(tc.dtype);
  const x = () => ({ data: C.from(tc.input.data), shape: tc.input.shape });
  const dy = () => ({ data: C.from(tc.grad_output.data), shape: tc.grad_output.shape });

  it('functional: matches F.layer_norm and its gradients', () => {
    const weight = tc.weight ? C.from(tc.weight) : null,
      bias = tc.bias_value ? C.from(tc.bias_value) : null;
    const y = layerNorm(x(), tc.normalized_shape, { weight, bias, eps: tc.eps });
    expect(y.data).toBeInstanceOf(C);
    const atol = atolFor(tc.dtype, tc.input.data, y.saveInvstd, tc.weight, tc.output.data);
    expectClose(y.data, tc.output.data, tol, atol, 'output');
    const g = layerNormBackward(dy(), x(), tc.normalized_shape, { weight, saveMean: y.saveMean, saveInvstd: y.saveInvstd });
    expectClose(g.gradInput.data, tc.grad_input.data, tol, atolFor(tc.dtype, tc.input.data, y.saveInvstd, tc.weight, tc.grad_input.data), 'grad_input');
    if (tc.name === 'ln_shape_1') {
      // PyTorch #188372: one value per row normalizes to exactly 0, so Σdy·x̂ is exactly 0 (PyTorch 1.13 gives 3.2e-5).
      expect(Array.from(g.gradWeight!)).toEqual([0]);
    } else if (tc.grad_weight) {
      expectClose(g.gradWeight!, tc.grad_weight, tol, atolFor(tc.dtype, tc.input.data, y.saveInvstd, null, tc.grad_weight), 'grad_weight');
    }
    if (tc.grad_bias) expectClose(g.gradBias!, tc.grad_bias, tol, tol * Math.max(1, maxAbs(tc.grad_bias)), 'grad_bias');
    if (!tc.weight) expect(g.gradWeight).toBeNull();
  });

  it('module: matches torch.nn.LayerNorm, gradients accumulating over two backwards', () => {
    const ln = new LayerNorm(tc.normalized_shape, { eps: tc.eps, elementwiseAffine: tc.elementwise_affine, bias: tc.bias, dtype: tc.dtype });
    const sd: Record<string, number[]> = {};
    if (tc.weight) sd.weight = tc.weight;
    if (tc.bias_value) sd.bias = tc.bias_value;
    ln.loadStateDict(sd);
    const f = layerNorm(x(), tc.normalized_shape, {
      weight: tc.weight ? C.from(tc.weight) : null,
      bias: tc.bias_value ? C.from(tc.bias_value) : null,
      eps: tc.eps,
    });
    for (let round = 1; round <= 2; round++) {
      const y = ln.forward(x());
      expect(Array.from(y.data)).toEqual(Array.from(f.data));
      expectClose(y.data, tc.output.data, tol, atolFor(tc.dtype, tc.input.data, f.saveInvstd, tc.weight, tc.output.data), 'output');
      const dx = ln.backward(dy());
      expect(dx.shape).toEqual(tc.input.shape);
      expectClose(dx.data, tc.grad_input.data, tol, atolFor(tc.dtype, tc.input.data, f.saveInvstd, tc.weight, tc.grad_input.data), 'grad_input');
      if (tc.grad_weight && tc.name !== 'ln_shape_1')
        expectClose(
          ln.weight!.grad!,
          tc.grad_weight.map((v) => v * round),
          tol,
          atolFor(tc.dtype, tc.input.data, f.saveInvstd, null, tc.grad_weight) * round,
          'weight.grad',
        );
      if (tc.grad_bias)
        expectClose(
          ln.bias!.grad!,
          tc.grad_bias.map((v) => v * round),
          tol,
          tol * Math.max(1, maxAbs(tc.grad_bias)) * round,
          'bias.grad',
        );
    }
    expect(Object.keys(ln.stateDict())).toEqual(Object.keys(sd));
  });
});

interface RMSCase {
  name: string;
  normalized_shape: number[];
  eps: number | null;
  eps_used: number;
  elementwise_affine: boolean;
  dtype: Dtype;
  input: T;
  weight: Arr;
  output: T;
  grad_output: T;
  grad_input: T;
  grad_weight: Arr;
}

describe.each(golden.rms_norm as RMSCase[])('RMSNorm $name', (tc) => {
  const C = ctorOf(tc.dtype),
    tol = tolOf(tc.dtype);
  const x = () => ({ data: C.from(tc.input.data), shape: tc.input.shape });
  const dy = () => ({ data: C.from(tc.grad_output.data), shape: tc.grad_output.shape });
  for (const via of ['functional', 'module'] as const) {
    it(`${via}: matches the float64 reference of torch.nn.RMSNorm and its gradients`, () => {
      let y: FloatArray, dx: FloatArray, gw: FloatArray | null;
      if (via === 'functional') {
        const weight = tc.weight ? C.from(tc.weight) : null;
        const r = rmsNorm(x(), tc.normalized_shape, { weight, eps: tc.eps });
        const g = rmsNormBackward(dy(), x(), tc.normalized_shape, { weight, saveInvstd: r.saveInvstd });
        expect(g.gradBias).toBeNull();
        [y, dx, gw] = [r.data, g.gradInput.data, g.gradWeight];
      } else {
        const m = new RMSNorm(tc.normalized_shape, { eps: tc.eps, elementwiseAffine: tc.elementwise_affine, dtype: tc.dtype });
        if (tc.weight) m.loadStateDict({ weight: tc.weight });
        y = m.forward(x()).data;
        dx = m.backward(dy()).data;
        gw = m.weight?.grad ?? null;
      }
      expectClose(y, tc.output.data, tol, tol, 'output');
      expectClose(dx, tc.grad_input.data, tol, tol * Math.max(1, maxAbs(tc.grad_input.data)), 'grad_input');
      if (tc.grad_weight) expectClose(gw!, tc.grad_weight, tol, tol * Math.max(1, maxAbs(tc.grad_weight)), 'grad_weight');
    });
  }
});

interface GNCase {
  name: string;
  num_groups: number;
  num_channels: number;
  eps: number;
  affine: boolean;
  dtype: Dtype;
  input: T;
  weight: Arr;
  bias_value: Arr;
  output: T;
  grad_output: T;
  grad_input: T;
  grad_weight: Arr;
  grad_bias: Arr;
  state_dict: Record<string, number[]>;
}

describe.each(golden.group_norm as GNCase[])('GroupNorm $name', (tc) => {
  const C = ctorOf(tc.dtype),
    tol = tolOf(tc.dtype);
  for (const channelsLast of [false, true]) {
    const cl = channelsLast && tc.input.shape.length > 2;
    const view = (t: T) => (cl ? toChannelsLast(t.data, t.shape, C) : { data: C.from(t.data), shape: t.shape });
    const back = (a: FloatArray) => (cl ? fromChannelsLast(a, tc.input.shape) : a);
    it(`module${channelsLast ? ' (channels-last)' : ''}: matches torch.nn.GroupNorm and its gradients`, () => {
      const gn = new GroupNorm(tc.num_groups, tc.num_channels, {
        eps: tc.eps,
        affine: tc.affine,
        dtype: tc.dtype,
        layout: channelsLast ? 'channelsLast' : 'channelsFirst',
      });
      gn.loadStateDict(tc.state_dict);
      const y = gn.forward(view(tc.input));
      const fx = groupNorm(view(tc.input), tc.num_groups, {
        weight: tc.weight ? C.from(tc.weight) : null,
        bias: tc.bias_value ? C.from(tc.bias_value) : null,
        eps: tc.eps,
        layout: channelsLast ? 'channelsLast' : 'channelsFirst',
      });
      expect(Array.from(fx.data)).toEqual(Array.from(y.data));
      const atol = atolFor(tc.dtype, tc.input.data, fx.saveInvstd, tc.weight, tc.output.data);
      expectClose(back(y.data), tc.output.data, tol, atol, 'output');
      const dx = gn.backward(view(tc.grad_output));
      expectClose(back(dx.data), tc.grad_input.data, tol, atolFor(tc.dtype, tc.input.data, fx.saveInvstd, tc.weight, tc.grad_input.data), 'grad_input');
      if (tc.grad_weight)
        expectClose(gn.weight!.grad!, tc.grad_weight, tol, atolFor(tc.dtype, tc.input.data, fx.saveInvstd, null, tc.grad_weight), 'weight.grad');
      if (tc.grad_bias) expectClose(gn.bias!.grad!, tc.grad_bias, tol, tol * Math.max(1, maxAbs(tc.grad_bias)), 'bias.grad');
      const g = groupNormBackward(view(tc.grad_output), view(tc.input), tc.num_groups, {
        weight: tc.weight ? C.from(tc.weight) : null,
        saveMean: fx.saveMean,
        saveInvstd: fx.saveInvstd,
        layout: channelsLast ? 'channelsLast' : 'channelsFirst',
      });
      expect(Array.from(g.gradInput.data)).toEqual(Array.from(dx.data));
    });
  }
});

interface INStep {
  mode: 'train' | 'eval';
  input: T;
  output: T;
  grad_output: T | null;
  grad_input: T | null;
  weight_grad: Arr;
  bias_grad: Arr;
  zero_grad_before: boolean;
  state_after: { running_mean?: number[]; running_var?: number[]; num_batches_tracked?: number };
}
interface INCase {
  name: string;
  module: 'InstanceNorm1d' | 'InstanceNorm2d' | 'InstanceNorm3d';
  num_features: number;
  eps: number;
  momentum: number;
  affine: boolean;
  track_running_stats: boolean;
  dtype: Dtype;
  initial_state: Record<string, number[] | number>;
  steps: INStep[];
}
const Instance = { InstanceNorm1d, InstanceNorm2d, InstanceNorm3d } as const;

describe.each(golden.instance_norm as INCase[])('$module $name', (tc) => {
  const C = ctorOf(tc.dtype),
    tol = tolOf(tc.dtype);
  for (const channelsLast of [false, true]) {
    it(`matches PyTorch step by step${channelsLast ? ' (channels-last)' : ''}`, () => {
      const m = new Instance[tc.module](tc.num_features, {
        eps: tc.eps,
        momentum: tc.momentum,
        affine: tc.affine,
        trackRunningStats: tc.track_running_stats,
        dtype: tc.dtype,
        layout: channelsLast ? 'channelsLast' : 'channelsFirst',
      });
      m.loadStateDict(tc.initial_state);
      for (const [i, step] of tc.steps.entries()) {
        const at = `step ${i} (${step.mode})`;
        // Unbatched input (C, L…) is a batch of one; channels-last moves C last either way.
        const batched =
          step.input.shape.length === (tc.module === 'InstanceNorm1d' ? 2 : tc.module === 'InstanceNorm2d' ? 3 : 4)
            ? [1, ...step.input.shape]
            : step.input.shape;
        const unbatched = batched !== step.input.shape;
        const view = (t: T) => {
          if (!channelsLast) return { data: C.from(t.data), shape: t.shape };
          const v = toChannelsLast(t.data, batched, C);
          return { data: v.data, shape: unbatched ? v.shape.slice(1) : v.shape };
        };
        const back = (a: FloatArray) => (channelsLast ? fromChannelsLast(a, batched) : a);
        if (step.zero_grad_before) m.zeroGrad();
        m.train(step.mode === 'train');
        const y = m.forward(view(step.input));
        expect(y.shape).toEqual(view(step.input).shape);
        expectClose(back(y.data), step.output.data, tol, tol * 4, `${at} output`);
        if (step.grad_output) {
          const dx = m.backward(view(step.grad_output));
          expectClose(back(dx.data), step.grad_input!.data, tol, tol * 4, `${at} grad_input`);
        }
        if (step.weight_grad) expectClose(m.weight!.grad!, step.weight_grad, tol, tol * 4, `${at} weight.grad`);
        if (step.bias_grad) expectClose(m.bias!.grad!, step.bias_grad, tol, tol * 4, `${at} bias.grad`);
        const st = step.state_after;
        if (st.running_mean) expectClose(m.runningMean!, st.running_mean, tol, tol, `${at} running_mean`);
        if (st.running_var) expectClose(m.runningVar!, st.running_var, tol, tol, `${at} running_var`);
        if (st.num_batches_tracked !== undefined) expect(m.numBatchesTracked).toBe(st.num_batches_tracked);
        expect(Object.keys(m.stateDict()).sort()).toEqual(Object.keys({ ...tc.initial_state }).sort());
      }
    });
  }
});

describe("PyTorch's error messages", () => {
  const e = golden.errors;
  it('GroupNorm: channels not divisible by groups (module and functional)', () => {
    expect(() => new GroupNorm(e.group_norm_module_not_divisible.num_groups, e.group_norm_module_not_divisible.num_channels)).toThrow(
      e.group_norm_module_not_divisible.message,
    );
    const f = e.group_norm_functional_not_divisible;
    const x = { data: new Float32Array(f.input_shape.reduce((a: number, b: number) => a * b, 1)), shape: f.input_shape };
    expect(() => groupNorm(x, f.num_groups)).toThrow(RangeError);
    expect(() => groupNorm(x, f.num_groups)).toThrow(f.message);
  });

  it('InstanceNorm: training with one value per instance changes nothing', () => {
    for (const k of ['instance_norm_one_value_train', 'instance_norm2d_one_value_train']) {
      const c = e[k];
      const m = new Instance[c.module as keyof typeof Instance](c.num_features, { trackRunningStats: true, affine: true });
      const before = JSON.stringify(m.stateDict());
      const x = { data: new Float32Array(c.input_shape.reduce((a: number, b: number) => a * b, 1)).fill(1), shape: c.input_shape };
      const msg = c.message.replace(/torch\.Size\((\[[^\]]*\])\)/, '$1');
      expect(() => m.forward(x)).toThrow(RangeError);
      expect(() => m.forward(x)).toThrow(msg);
      expect(() => instanceNorm(x)).toThrow(msg);
      expect(JSON.stringify(m.stateDict())).toBe(before);
    }
  });

  it('LayerNorm: an input that does not end in normalizedShape', () => {
    const c = e.layer_norm_shape;
    const x = { data: new Float32Array(6), shape: c.input_shape };
    expect(() => new LayerNorm(c.normalized_shape).forward(x)).toThrow(c.message);
    expect(() => layerNorm(x, c.normalized_shape)).toThrow(c.message);
  });
});
