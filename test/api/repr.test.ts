/** Issue 19 item 6: modules print as PyTorch's do, and fromKeras' momentum is the decimal a user wrote. */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, fromKeras } from '../../lib/index.js';

describe('module repr', () => {
  it("String(bn) and util.inspect(bn) are PyTorch's repr", () => {
    const bn = new BatchNorm2d(64);
    expect(String(bn)).toBe('BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)');
    expect(inspect(bn)).toBe(String(bn));
    expect(`${bn}`).toBe(String(bn));
    expect(inspect({ layer: bn }, { breakLength: Infinity })).toBe(
      '{ layer: BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True) }',
    );
    // PyTorch 1.13: repr(nn.BatchNorm1d(3, eps=1e-3, momentum=None, affine=False, track_running_stats=False))
    expect(String(new BatchNorm1d(3, { eps: 1e-3, momentum: null, affine: false, trackRunningStats: false }))).toBe(
      'BatchNorm1d(3, eps=0.001, momentum=None, affine=False, track_running_stats=False)',
    );
    // Python's float repr: exponent form below 1e-4 (two exponent digits), '.0' on integral values.
    expect(String(new BatchNorm3d(8, { eps: 1e-4, momentum: 1 }))).toBe('BatchNorm3d(8, eps=0.0001, momentum=1.0, affine=True, track_running_stats=True)');
    expect(String(new BatchNorm3d(8, { eps: 2.5e-7, momentum: 0 }))).toBe('BatchNorm3d(8, eps=2.5e-07, momentum=0.0, affine=True, track_running_stats=True)');
    expect(String(new BatchNorm2d(2, fromKeras()))).toBe('BatchNorm2d(2, eps=0.001, momentum=0.01, affine=True, track_running_stats=True)');
  });

  it('keeps its internals private: no saved statistics or scratch among its keys', () => {
    const bn = new BatchNorm2d(2);
    bn.forward({ data: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), shape: [2, 2, 2, 1] });
    const keys = Object.keys(bn);
    for (const k of ['saved', 'gradScratch', 'pending', 'ctor']) expect(keys).not.toContain(k);
  });
});

describe('fromKeras momentum', () => {
  it.each([
    [0.99, 0.01],
    [0.9, 0.1],
    [0.999, 0.001],
    [0.5, 0.5],
    [0.9999999, 1e-7],
    [1, 0],
    [0, 1],
  ])('Keras %d is exactly %d here', (keras, torch) => {
    expect(fromKeras({ momentum: keras }).momentum).toBe(torch);
  });
});
