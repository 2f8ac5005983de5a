/** Issue 19 item 5: errors that say how to fix the mistakes new users make. */
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, batchNorm } from '../../lib/index.js';
import { randn } from '../helpers.js';

describe('errors that say how to fix the mistake', () => {
  it('a tf.Tensor-like input: pass { data: t.dataSync(), shape: t.shape }, channels-last', () => {
    const t = { shape: [2, 4, 4, 3], dtype: 'float32', dataSync: () => new Float32Array(96), data: async () => new Float32Array(96) };
    expect(() => new BatchNorm2d(3).forward(t as any)).toThrow(
      "Expected a tensor { data, shape } for input but received a tf.Tensor: pass { data: t.dataSync(), shape: t.shape }, and layout: 'NHWC', since TF.js is channels-last",
    );
    expect(() => batchNorm(t as any, null, null, { training: true })).toThrow(
      /received a tf.Tensor: pass \{ data: t.dataSync\(\), shape: t.shape \}, and layout: 'channelsLast'/,
    );
  });

  it('a tensor without shape says the shape is missing', () => {
    expect(() => new BatchNorm1d(3).forward({ data: new Float32Array(6) } as any)).toThrow(
      'Expected an array of non-negative integers for input.shape but received undefined: the tensor has no shape; pass { data, shape: [N, C, ...] }',
    );
  });

  it('a channel mismatch whose last dimension is C suggests the channels-last layout of that rank', () => {
    expect(() => new BatchNorm2d(3).forward({ data: new Float32Array(2 * 4 * 4 * 3), shape: [2, 4, 4, 3] })).toThrow(
      "BatchNorm2d expected input with 3 channels: expected shape [N, 3, H, W] (layout NCHW) but received [2, 4, 4, 3]: its last dimension is 3; if the input is channels-last (as TF.js'), pass layout: 'NHWC'",
    );
    expect(() => new BatchNorm1d(5).forward({ data: new Float32Array(2 * 7 * 5), shape: [2, 7, 5] })).toThrow(/pass layout: 'NLC'/);
    expect(() => new BatchNorm3d(2).forward({ data: new Float32Array(2 * 3 * 3 * 3 * 2), shape: [2, 3, 3, 3, 2] })).toThrow(/pass layout: 'NDHWC'/);
    // No hint when the last dimension is not C either.
    expect(() => new BatchNorm2d(3).forward({ data: new Float32Array(2 * 4 * 4 * 5), shape: [2, 4, 4, 5] })).toThrow(/received \[2, 4, 4, 5\]$/);
    // Functional: the per-channel arrays' length is the last dimension.
    const rm = new Float32Array(3),
      rv = new Float32Array(3).fill(1);
    expect(() => batchNorm({ data: randn(96, 1) as Float32Array, shape: [2, 4, 4, 3] }, rm, rv, { training: true })).toThrow(
      "Expected a Float32Array of length 4 for runningMean but received a Float32Array of length 3: the input's last dimension is 3; if the input is channels-last (as TF.js'), pass layout: 'NHWC'",
    );
  });

  it('weight: bn.weight (a parameter object) in the functional form suggests bn.weight.data', () => {
    const bn = new BatchNorm2d(3),
      x = { data: randn(48, 2) as Float32Array, shape: [4, 3, 2, 2] };
    expect(() => batchNorm(x, null, null, { training: true, weight: bn.weight as any })).toThrow(
      "Expected a Float32Array of length 3 or null for weight but received a Parameter { data, grad }: pass the parameter's array, weight.data (e.g. bn.weight.data)",
    );
    expect(() => batchNorm(x, null, null, { training: true, bias: bn.bias as any })).toThrow(/pass the parameter's array, bias.data \(e.g. bn.bias.data\)/);
  });

  it('a bad dtype or layout echoes the value', () => {
    expect(() => new BatchNorm2d(3, { dtype: 'float16' as any })).toThrow(`Expected 'float32' or 'float64' for dtype but received the string "float16"`);
    expect(() => batchNorm({ data: new Float32Array(6), shape: [2, 3] }, null, null, { training: true, layout: 'nhwc' as any })).toThrow(
      /for layout but received the string "nhwc"/,
    );
  });
});
