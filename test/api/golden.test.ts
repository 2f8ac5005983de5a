/**
 * PyTorch's own numbers (test/fixtures/golden.json, made by generate.py with
 * torch 1.13): every module case step by step — forward, backward, gradient
 * accumulation, running statistics — in PyTorch's layout and again in
 * channels-last; the functional cases; PyTorch's error messages; a
 * safetensors file written from a PyTorch state dict.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, backendInfo, batchNorm, batchNormBackward, readSafetensors } from '../../lib/index.js';
import type { FloatArray } from '../../lib/index.js';
import { expectClose, fromChannelsLast, refMoments, toChannelsLast } from '../helpers.js';

const dir = new URL('../fixtures/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('golden.json', dir), 'utf8'));
const Modules = { BatchNorm1d, BatchNorm2d, BatchNorm3d } as const;

type Arr = number[] | null;
interface T {
  shape: number[];
  data: number[];
}
interface Step {
  mode: 'train' | 'eval';
  input: T;
  output: T;
  grad_output: T | null;
  grad_input: T | null;
  weight_grad: Arr;
  bias_grad: Arr;
  zero_grad_before: boolean;
  state_after: { running_mean: Arr; running_var: Arr; num_batches_tracked: number | null };
}
interface Case {
  name: string;
  module: keyof typeof Modules;
  num_features: number;
  eps: number;
  momentum: number | null;
  affine: boolean;
  track_running_stats: boolean;
  dtype: 'float32' | 'float64';
  initial_state: Record<string, Arr | number | null>;
  steps: Step[];
}

it('runs the backend this project forces', () => {
  expect(backendInfo().backend).toBe(process.env.BATCHNORM_BACKEND);
});

/**
 * PyTorch computes y = x·α + β in float32 (α = w·invstd, β = b − mean·α): with
 * a large mean and a small spread (the large-offset cases) the two terms
 * cancel and PyTorch's own output is off by a few ulps of |mean·α|. This
 * package keeps that precision (see the kernel tests against float64), so the
 * comparison allows PyTorch's rounding and no more.
 */
function pytorchError(tc: Case, step: Step, tol: number): number {
  if (tc.dtype === 'float64') return tol;
  const d = { n: step.input.shape[0], c: tc.num_features, s: step.input.data.length / step.input.shape[0] / tc.num_features, channelsLast: false };
  const { mean, variance } = refMoments(step.input.data, d);
  let worst = 0;
  for (let c = 0; c < d.c; c++)
    worst = Math.max(worst, (Math.abs(mean[c]) / Math.sqrt(variance[c] + tc.eps)) * Math.abs(Number((tc.initial_state.weight as number[] | null)?.[c] ?? 1)));
  return Math.max(tol, 4 * 2 ** -24 * worst);
}

const channelsLastOf = { BatchNorm1d: 'NLC', BatchNorm2d: 'NHWC', BatchNorm3d: 'NDHWC' } as const;

describe.each(golden.cases as Case[])('$name', (tc) => {
  const T = tc.dtype === 'float64' ? Float64Array : Float32Array;
  const tol = tc.dtype === 'float64' ? 1e-10 : 1e-5;
  for (const channelsLast of [false, true]) {
    it(channelsLast ? 'matches PyTorch in channels-last' : 'matches PyTorch', () => {
      const bn = new Modules[tc.module](tc.num_features, {
        eps: tc.eps,
        momentum: tc.momentum,
        affine: tc.affine,
        trackRunningStats: tc.track_running_stats,
        dtype: tc.dtype,
        layout: channelsLast ? channelsLastOf[tc.module] : undefined,
      });
      const init = Object.fromEntries(Object.entries(tc.initial_state).filter(([, v]) => v !== null)) as Record<string, number[] | number>;
      bn.loadStateDict(init);
      for (const [i, step] of tc.steps.entries()) {
        const at = `step ${i} (${step.mode})`;
        if (step.zero_grad_before) bn.zeroGrad();
        bn.train(step.mode === 'train');
        const cl = channelsLast && step.input.shape.length > 2;
        const x = cl ? toChannelsLast(step.input.data, step.input.shape, T) : { data: T.from(step.input.data), shape: step.input.shape };
        const y = bn.forward(x);
        expect(y.data).toBeInstanceOf(T);
        expectClose(cl ? fromChannelsLast(y.data, step.input.shape) : y.data, step.output.data, tol, pytorchError(tc, step, tol), `${at} output`);
        if (step.grad_output) {
          const dy = cl
            ? toChannelsLast(step.grad_output.data, step.grad_output.shape, T)
            : { data: T.from(step.grad_output.data), shape: step.grad_output.shape };
          const dx = bn.backward(dy);
          expectClose(cl ? fromChannelsLast(dx.data, step.input.shape) : dx.data, step.grad_input!.data, tol, tol, `${at} grad_input`);
        }
        // Σdy·x̂ in PyTorch's float32 carries the same cancellation as y.
        if (step.weight_grad) expectClose(bn.weight!.grad!, step.weight_grad, tol, pytorchError(tc, step, tol), `${at} weight.grad`);
        if (step.bias_grad) expectClose(bn.bias!.grad!, step.bias_grad, tol, tol, `${at} bias.grad`);
        if (!tc.affine) expect(bn.weight).toBeNull();
        const st = step.state_after;
        if (st.running_mean) expectClose(bn.runningMean!, st.running_mean, tol, tol, `${at} running_mean`);
        if (st.running_var) expectClose(bn.runningVar!, st.running_var, tol, tol, `${at} running_var`);
        expect(bn.numBatchesTracked).toBe(st.num_batches_tracked);
        if (!tc.track_running_stats) expect(bn.runningMean).toBeNull();
      }
    });
  }
});

interface FCase {
  name: string;
  dtype: 'float32' | 'float64';
  training: boolean;
  momentum: number;
  eps: number;
  input: T;
  running_mean: Arr;
  running_var: Arr;
  weight: Arr;
  bias: Arr;
  output: T;
  running_mean_after: Arr;
  running_var_after: Arr;
  grad_output: T;
  grad_input: T;
  grad_weight: Arr;
  grad_bias: Arr;
}

describe.each(golden.functional as FCase[])('functional $name', (fc) => {
  it('matches torch.nn.functional.batch_norm and its gradients', () => {
    const T = fc.dtype === 'float64' ? Float64Array : Float32Array;
    const tol = fc.dtype === 'float64' ? 1e-10 : 1e-5;
    const arr = (a: Arr): FloatArray | null => (a ? T.from(a) : null);
    const rm = arr(fc.running_mean),
      rv = arr(fc.running_var),
      weight = arr(fc.weight),
      bias = arr(fc.bias);
    const x = { data: T.from(fc.input.data), shape: fc.input.shape };
    const out = new T(x.data.length);
    const y = batchNorm(x, rm, rv, { weight, bias, training: fc.training, momentum: fc.momentum, eps: fc.eps, out });
    expect(y.data).toBe(out);
    expectClose(y.data, fc.output.data, tol, tol, 'output');
    if (fc.running_mean_after) expectClose(rm!, fc.running_mean_after, tol, tol, 'running_mean');
    if (fc.running_var_after) expectClose(rv!, fc.running_var_after, tol, tol, 'running_var');
    const g = batchNormBackward({ data: T.from(fc.grad_output.data), shape: fc.grad_output.shape }, x, {
      weight,
      saveMean: y.saveMean,
      saveInvstd: y.saveInvstd,
      training: fc.training,
    });
    expectClose(g.gradInput.data, fc.grad_input.data, tol, tol, 'grad_input');
    if (fc.grad_weight) expectClose(g.gradWeight, fc.grad_weight, tol, tol, 'grad_weight');
    if (fc.grad_bias) expectClose(g.gradBias, fc.grad_bias, tol, tol, 'grad_bias');
  });
});

interface ECase {
  name: string;
  module: keyof typeof Modules;
  num_features: number;
  input_shape: number[];
  mode: 'train' | 'eval';
  message: string;
}

describe.each(golden.errors as ECase[])('error $name', (ec) => {
  it('throws what PyTorch throws, and changes nothing', () => {
    const bn = new Modules[ec.module](ec.num_features).train(ec.mode === 'train');
    const before = JSON.stringify(bn.stateDict());
    const numel = ec.input_shape.reduce((a, b) => a * b, 1);
    const call = () => bn.forward({ data: new Float32Array(numel).fill(1), shape: ec.input_shape });
    expect(call).toThrow(RangeError);
    if (ec.message.startsWith('Expected more than 1 value per channel')) {
      expect(call).toThrow(ec.message.replace(/torch\.Size\((\[[^\]]*\])\)/, '$1'));
    } else if (ec.message.startsWith('expected')) {
      expect(call).toThrow(ec.message); // "expected 4D input (got 3D input)"
    } else {
      expect(call).toThrow(`expected input with ${ec.num_features} channels`);
    }
    expect(JSON.stringify(bn.stateDict())).toBe(before);
  });
});

it("loads a PyTorch state dict from safetensors and gives PyTorch's eval output", () => {
  const st = golden.safetensors;
  const sd = readSafetensors(readFileSync(new URL(st.file, dir)));
  expect(Object.keys(sd).sort()).toEqual(['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']);
  const bn = new BatchNorm2d(st.num_features, { eps: st.eps });
  bn.loadStateDict(sd);
  expect(bn.numBatchesTracked).toBe(st.state.num_batches_tracked);
  expect(Array.from(bn.runningVar!)).toEqual(st.state.running_var);
  const y = bn.eval().forward({ data: Float32Array.from(st.eval_input.data), shape: st.eval_input.shape });
  expectClose(y.data, st.eval_output.data, 1e-5, 1e-5, 'eval output');
});
