/**
 * Every error path of the kernels and of the public API: the right class, a
 * message naming the argument, what was expected and what came — and nothing
 * written, updated or counted by a call that threw.
 */
import { describe, expect, it } from 'vitest';
import { kernels } from '../../lib/backend/loader.js';
import {
  BatchNorm1d,
  BatchNorm2d,
  batchNorm,
  batchNormAsync,
  batchNormBackward,
  batchNormBackwardAsync,
  fromKeras,
  readSafetensors,
  writeSafetensors,
  getNumThreads,
  setNumThreads,
} from '../../lib/index.js';
import { expectClose, randn, refMoments, safetensorsFile } from '../helpers.js';

const N = 2,
  C = 3,
  S = 5,
  NUMEL = N * C * S;

/** Fresh arguments of a valid forwardTraining call. */
function ftArgs(): any[] {
  return [
    randn(NUMEL, 1),
    new Float32Array(NUMEL).fill(7),
    new Float32Array(C).fill(1),
    new Float32Array(C),
    new Float32Array(C).fill(0.5),
    new Float32Array(C).fill(2),
    new Float32Array(C).fill(9),
    new Float32Array(C).fill(9),
    N,
    C,
    S,
    false,
    1e-5,
    0.1,
  ];
}
function feArgs(): any[] {
  return [randn(NUMEL, 2), new Float32Array(NUMEL).fill(7), null, null, new Float32Array(C), new Float32Array(C).fill(1), N, C, S, true, 1e-5];
}
function bwArgs(): any[] {
  return [
    randn(NUMEL, 3),
    randn(NUMEL, 4),
    new Float32Array(NUMEL).fill(7),
    new Float32Array(C).fill(1),
    new Float32Array(C),
    new Float32Array(C).fill(1),
    new Float32Array(C).fill(9),
    new Float32Array(C).fill(9),
    N,
    C,
    S,
    false,
    true,
  ];
}

/** Deep copies of every typed array argument, to prove nothing changed. */
function snapshot(args: any[]): unknown[] {
  return args.map((a) => (!ArrayBuffer.isView(a) ? a : a.byteLength > 0 ? Array.from(a as Float32Array) : 'empty or detached'));
}

function detached(n: number): Float32Array {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

type Case = [string, number, unknown, ErrorConstructor, RegExp];
const forwardTrainingCases: Case[] = [
  ['x not a typed array', 0, [1, 2, 3], TypeError, /Float32Array or Float64Array for x but received an Array/],
  ['x Int32Array', 0, new Int32Array(NUMEL), TypeError, /for x but received an Int32Array of length 30/],
  ['x Uint8Array', 0, new Uint8Array(NUMEL), TypeError, /for x but received a Uint8Array of length 30/],
  ['y too short', 1, new Float32Array(NUMEL - 1), RangeError, /Float32Array of length 30 for y but received a Float32Array of length 29/],
  ['y of the other dtype', 1, new Float64Array(NUMEL), TypeError, /Float32Array of length 30 for y but received a Float64Array/],
  ['y detached', 1, detached(NUMEL), TypeError, /for y but received one whose buffer is detached/],
  ['weight wrong length', 2, new Float32Array(C + 1), RangeError, /length 3 for weight but received a Float32Array of length 4/],
  ['bias a number', 3, 5, TypeError, /Float32Array of length 3 or null for bias but received the number 5/],
  ['runningMean wrong length', 4, new Float32Array(1), RangeError, /for runningMean but received a Float32Array of length 1/],
  ['runningVar null alone', 5, null, TypeError, /runningMean and runningVar to be both arrays or both null/],
  ['saveMean missing', 6, undefined, TypeError, /for saveMean but received undefined/],
  ['n zero', 8, 0, RangeError, /positive integer for n but received the number 0/],
  ['c fractional', 9, 1.5, RangeError, /positive integer for c but received the number 1.5/],
  ['s NaN', 10, NaN, RangeError, /positive integer for s but received the number NaN/],
  ['s a string', 10, '5', TypeError, /positive integer for s but received a string/],
  ['channelsLast not boolean', 11, 1, TypeError, /boolean for channelsLast but received the number 1/],
  ['eps negative', 12, -1, RangeError, /eps to be a number in \[0, Infinity\] but received the number -1/],
  ['momentum above 1', 13, 1.5, RangeError, /momentum to be a number in \[0, 1\] but received the number 1.5/],
  ['n·c·s overflowing', 8, 2 ** 52, RangeError, /n \* c \* s to be at most 2\^53 but received 4503599627370496 \* 3 \* 5/],
];

describe('kernel argument checks', () => {
  it.each(forwardTrainingCases)('forwardTraining: %s', (_label, i, value, Err, message) => {
    const args = ftArgs();
    args[i] = value;
    const before = snapshot(args);
    expect(() => (kernels.forwardTraining as any)(...args)).toThrow(Err);
    expect(() => (kernels.forwardTraining as any)(...args)).toThrow(message);
    expect(snapshot(args)).toEqual(before);
  });

  it('rejects outputs that overlap inputs, except exact in-place', () => {
    const args = ftArgs();
    const buf = new Float32Array(NUMEL + 1);
    buf.set(args[0]);
    args[0] = buf.subarray(0, NUMEL);
    args[1] = buf.subarray(1, NUMEL + 1);
    const before = snapshot(args);
    expect(() => (kernels.forwardTraining as any)(...args)).toThrow(/y not to share memory with x unless it is the same array/);
    expect(snapshot(args)).toEqual(before);
    const b = ftArgs();
    b[5] = b[4];
    expect(() => (kernels.forwardTraining as any)(...b)).toThrow(/runningMean not to share memory with runningVar, but it overlaps it/);
  });

  it('forwardEval and backward check theirs the same way', () => {
    for (const [label, make, i, value, Err, message] of [
      ['eval var', feArgs, 5, new Float32Array(2), RangeError, /for var but received a Float32Array of length 2/],
      ['eval mean null', feArgs, 4, null, TypeError, /for mean but received null/],
      ['backward dy', bwArgs, 1, new Float64Array(NUMEL), TypeError, /for dy but received a Float64Array/],
      ['backward invstd', bwArgs, 5, null, TypeError, /for invstd but received null/],
      [
        'backward gradWeight overlapping gradBias',
        bwArgs,
        6,
        'alias',
        RangeError,
        /gradBias not to share memory with gradWeight|gradWeight not to share memory with gradBias/,
      ],
      ['backward useBatchStats', bwArgs, 12, 'yes', TypeError, /boolean for useBatchStats but received a string/],
    ] as const) {
      const args = (make as () => any[])();
      args[i as number] = value === 'alias' ? args[7] : value;
      const before = snapshot(args);
      const f = make === feArgs ? kernels.forwardEval : kernels.backward;
      expect(() => (f as any)(...args), label).toThrow(Err as ErrorConstructor);
      expect(() => (f as any)(...args), label).toThrow(message as RegExp);
      expect(snapshot(args), label).toEqual(before);
    }
  });

  it('accepts SharedArrayBuffer-backed and offset views: the results of plain arrays, nothing outside the views touched', () => {
    // The plain call, checked against the float64 statistics (saveMean and saveInvstd start at 9, y at 7).
    const plain = ftArgs();
    (kernels.forwardTraining as any)(...plain);
    const { mean, variance } = refMoments(plain[0], { n: N, c: C, s: S, channelsLast: false });
    expectClose(plain[6], mean, 1e-5, 1e-6, 'saveMean');
    expectClose(
      plain[7],
      Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5)),
      1e-5,
      1e-6,
      'saveInvstd',
    );
    for (const shared of [true, false]) {
      // Every array a view 4 (x), 3 (y) or 1 (the rest) elements into a larger buffer whose other elements
      // hold 1000: a kernel that reads or writes at the wrong place shows in the results or in the padding.
      const inView = (src: Float32Array, off: number) => {
        const buf = shared ? new SharedArrayBuffer((src.length + off + 4) * 4) : new ArrayBuffer((src.length + off + 4) * 4);
        const all = new Float32Array(buf).fill(1000),
          v = all.subarray(off, off + src.length);
        v.set(src);
        return { v, all, off };
      };
      const args = ftArgs();
      const views = args.map((a, i) => (a instanceof Float32Array ? inView(a, i === 0 ? 4 : i === 1 ? 3 : 1) : null));
      (kernels.forwardTraining as any)(...args.map((a, i) => views[i]?.v ?? a));
      for (const i of [1, 4, 5, 6, 7]) expect(Array.from(views[i]!.v), `${shared ? 'shared' : 'offset'} argument ${i}`).toEqual(Array.from(plain[i]));
      for (const w of views) {
        if (!w) continue;
        const outside = [...w.all.subarray(0, w.off), ...w.all.subarray(w.off + w.v.length)];
        expect(
          outside.every((e) => e === 1000),
          `${shared ? 'shared' : 'offset'}: padding unchanged`,
        ).toBe(true);
      }
    }
  });
});

describe('module and functional checks change nothing', () => {
  function trained(): BatchNorm2d {
    const bn = new BatchNorm2d(C);
    const x = { data: randn(NUMEL, 5) as Float32Array, shape: [N, C, 1, S] };
    bn.forward(x);
    bn.backward({ data: randn(NUMEL, 6) as Float32Array, shape: x.shape });
    bn.forward(x); // a forward waiting for its backward (each forward is differentiated once)
    return bn;
  }
  function state(bn: BatchNorm2d): string {
    return JSON.stringify({ sd: bn.stateDict(), gw: Array.from(bn.weight!.grad!), gb: Array.from(bn.bias!.grad!) });
  }

  it.each([
    [
      'a wrong rank',
      { data: new Float32Array(NUMEL), shape: [N, C, S] },
      RangeError,
      /BatchNorm2d expected 4D input \(got 3D input\): expected shape \[N, 3, H, W\] \(layout NCHW\)/,
    ],
    ['a wrong channel count', { data: new Float32Array(NUMEL), shape: [N, 5, 3, 1] }, RangeError, /expected input with 3 channels/],
    [
      'data shorter than the shape',
      { data: new Float32Array(NUMEL - 1), shape: [N, C, 1, S] },
      RangeError,
      /Expected 30 elements for shape \[2, 3, 1, 5\] for input.data but received a Float32Array of length 29/,
    ],
    [
      'a negative dimension',
      { data: new Float32Array(0), shape: [-2, C, 1, 1] },
      RangeError,
      /Expected an array of non-negative integers for input.shape but received \[-2, 3, 1, 1\]/,
    ],
    [
      'a shape with NaN',
      { data: new Float32Array(NUMEL), shape: [NaN, C, 1, S] },
      RangeError,
      /non-negative integers for input.shape but received \[NaN, 3, 1, 5\]/,
    ],
    ['an Array as data', { data: [1, 2], shape: [2, 1, 1, 1] }, TypeError, /Float32Array or Float64Array for input.data but received an Array/],
    ['no tensor', null, TypeError, /tensor \{ data, shape \} for input but received null/],
    [
      'one value per channel',
      { data: new Float32Array(C), shape: [1, C, 1, 1] },
      RangeError,
      /Expected more than 1 value per channel when training, got input size \[1, 3, 1, 1\]/,
    ],
  ] as const)('forward with %s', (_label, input, Err, message) => {
    const bn = trained();
    const before = state(bn);
    expect(() => bn.forward(input as any)).toThrow(Err);
    expect(() => bn.forward(input as any)).toThrow(message);
    expect(state(bn)).toBe(before);
  });

  it('a kernel-level failure (out of the wrong length) leaves running statistics and the counter alone', () => {
    const bn = trained();
    const before = state(bn);
    expect(() => bn.forward({ data: randn(NUMEL, 7) as Float32Array, shape: [N, C, 1, S] }, { out: new Float32Array(3) })).toThrow(
      /length 30 for out but received a Float32Array of length 3/,
    );
    expect(state(bn)).toBe(before);
  });

  it('backward before forward, with another shape or dtype, throws and changes nothing', () => {
    expect(() => new BatchNorm1d(3).backward({ data: new Float32Array(6), shape: [2, 3] })).toThrow(/needs a forward\(\) first/);
    const bn = trained();
    const before = state(bn);
    expect(() => bn.backward({ data: new Float32Array(NUMEL), shape: [N, C, S, 1] })).toThrow(RangeError);
    expect(() => bn.backward({ data: new Float64Array(NUMEL), shape: [N, C, 1, S] })).toThrow(TypeError);
    expect(state(bn)).toBe(before);
  });

  it('validates constructor options', () => {
    expect(() => new BatchNorm2d(0)).toThrow(/positive integer for numFeatures of BatchNorm2d but received the number 0/);
    expect(() => new BatchNorm2d(2.5)).toThrow(RangeError);
    expect(() => new BatchNorm2d('3' as any)).toThrow(TypeError);
    expect(() => new BatchNorm2d(3, { eps: -1 })).toThrow(/Expected a number in \[0, 1\] for eps but received the number -1/);
    expect(() => new BatchNorm2d(3, { momentum: -0.1 })).toThrow(/Expected a number in \[0, 1\] or null for momentum but received the number -0.1/);
    expect(() => new BatchNorm2d(3, { affine: 1 as any })).toThrow(/boolean for affine/);
    expect(() => new BatchNorm2d(3, { layout: 'NLC' })).toThrow(
      'Expected one of NCHW, NHWC, channelsFirst, channelsLast for layout of BatchNorm2d but received the string "NLC"',
    );
    expect(() => fromKeras({ center: false })).toThrow(/center and scale to be equal/);
  });

  it('functional: eval without running statistics and training with one value per channel throw', () => {
    const x = { data: new Float32Array(6), shape: [2, 3] };
    expect(() => batchNorm(x, null, null)).toThrow(/runningMean and runningVar when training is false/);
    const rm = new Float32Array(3),
      rv = new Float32Array(3).fill(1);
    expect(() => batchNorm({ data: new Float32Array(3), shape: [1, 3] }, rm, rv, { training: true })).toThrow(/more than 1 value per channel/);
    expect(Array.from(rm)).toEqual([0, 0, 0]);
    const y = batchNorm(x, rm, rv, { training: true });
    expect(() => batchNormBackward({ data: new Float32Array(3), shape: [1, 3] }, x, { saveMean: y.saveMean, saveInvstd: y.saveInvstd })).toThrow(
      /gradOutput of the input's shape \[2, 3\]/,
    );
  });
});

describe('checkFinite', () => {
  it('throws naming the first bad channel, and changes nothing; off by default', () => {
    const x = { data: randn(2 * 4 * 3, 8) as Float32Array, shape: [2, 4, 3, 1] };
    x.data[1 * 12 + 3 * 3 + 2] = Infinity; // n=1, channel 3
    x.data[1 * 12 + 2 * 3 + 0] = NaN; // n=1, channel 2: the first bad channel
    const bn = new BatchNorm2d(4, { checkFinite: true });
    const before = JSON.stringify(bn.stateDict());
    expect(() => bn.forward(x)).toThrow('Expected finite values in input (checkFinite) but channel 2 holds NaN at index [1, 2, 0, 0]');
    expect(JSON.stringify(bn.stateDict())).toBe(before);
    const nhwc = new BatchNorm2d(4, { checkFinite: true, layout: 'NHWC' });
    expect(() => nhwc.forward({ data: x.data, shape: [2, 3, 1, 4] })).toThrow(/channel 2 holds NaN at index \[1, 1, 0, 2\]/);
    const plain = new BatchNorm2d(4);
    expect(() => plain.forward(x)).not.toThrow();
    expect(Number.isNaN(plain.runningMean![2])).toBe(true);
    expect(Number.isFinite(plain.runningMean![0])).toBe(true);
    const ok = { data: randn(24, 9) as Float32Array, shape: [2, 4, 3, 1] };
    bn.forward(ok);
    const dy = { data: new Float32Array(24).fill(1), shape: ok.shape };
    dy.data[5] = -Infinity;
    expect(() => bn.backward(dy)).toThrow('Expected finite values in gradOutput (checkFinite) but channel 1 holds -Infinity at index [0, 1, 2, 0]');
    expect(bn.weight!.grad).toBeNull();
    expect(() => batchNorm({ data: Float32Array.of(1, NaN), shape: [2, 1] }, null, null, { training: true, checkFinite: true })).toThrow(/channel 0 holds NaN/);
  });
});

describe('functional option checks', () => {
  const input = () => ({ data: randn(NUMEL, 10) as Float32Array, shape: [N, C, S] });

  it.each([
    ['training the string "false"', { training: 'false' }, TypeError, /Expected a boolean for training but received a string/],
    ['training 1', { training: 1 }, TypeError, /Expected a boolean for training but received the number 1/],
    ['checkFinite a string', { training: true, checkFinite: 'yes' }, TypeError, /Expected a boolean for checkFinite but received a string/],
    ['unbiasedRunningVar 0', { training: true, unbiasedRunningVar: 0 }, TypeError, /Expected a boolean for unbiasedRunningVar but received the number 0/],
    ['eps -1 in eval', { eps: -1 }, RangeError, /Expected a number in \[0, 1\] for eps but received the number -1: it is added to the variance/],
    ['eps Infinity', { training: true, eps: Infinity }, RangeError, /Expected a number in \[0, 1\] for eps but received the number Infinity/],
    ['eps 2**53', { training: true, eps: 2 ** 53 }, RangeError, /Expected a number in \[0, 1\] for eps but received the number 9007199254740992/],
    ['eps a string', { eps: '1e-5' }, TypeError, /Expected a number in \[0, 1\] for eps but received a string/],
    ['momentum NaN', { training: true, momentum: NaN }, RangeError, /Expected a number in \[0, 1\] for momentum but received the number NaN/],
    ['momentum a string', { training: true, momentum: '0.1' }, TypeError, /Expected a number in \[0, 1\] for momentum but received a string/],
  ] as const)('batchNorm with %s throws and changes nothing; batchNormAsync rejects', async (_label, options, Err, message) => {
    const rm = new Float32Array(C).fill(0.5),
      rv = new Float32Array(C).fill(2),
      out = new Float32Array(NUMEL).fill(7);
    const state = () => JSON.stringify([rm, rv, out].map((a) => Array.from(a)));
    const before = state();
    expect(() => batchNorm(input(), rm, rv, { ...options, out } as any)).toThrow(Err);
    expect(() => batchNorm(input(), rm, rv, { ...options, out } as any)).toThrow(message);
    await expect(batchNormAsync(input(), rm, rv, { ...options, out } as any)).rejects.toThrow(message);
    expect(state()).toBe(before);
  });

  it('options must be an object, forward and backward alike', async () => {
    const rm = new Float32Array(C),
      rv = new Float32Array(C).fill(1);
    expect(() => batchNorm(input(), rm, rv, null as any)).toThrow(TypeError);
    expect(() => batchNorm(input(), rm, rv, null as any)).toThrow(/Expected an options object for batchNorm but received null/);
    await expect(batchNormAsync(input(), rm, rv, 'training' as any)).rejects.toThrow(/Expected an options object for batchNormAsync but received a string/);
    expect(() => batchNormBackward(input(), input(), null as any)).toThrow(/Expected an options object for batchNormBackward but received null/);
  });

  it('batchNormBackward checks training under its own name', async () => {
    const x = input(),
      y = batchNorm(x, null, null, { training: true });
    const options = { saveMean: y.saveMean, saveInvstd: y.saveInvstd, training: 'yes' } as any;
    expect(() => batchNormBackward(input(), x, options)).toThrow(TypeError);
    expect(() => batchNormBackward(input(), x, options)).toThrow(/Expected a boolean for training but received a string/);
    await expect(batchNormBackwardAsync(input(), x, options)).rejects.toThrow(/Expected a boolean for training but received a string/);
  });
});

describe('functional array checks name the arguments the user passed', () => {
  const input = () => ({ data: randn(NUMEL, 11) as Float32Array, shape: [N, C, S] });

  it.each([
    ['eval: runningMean an Array', false, { runningMean: [0, 0, 0] }, TypeError, /Expected a Float32Array of length 3 for runningMean but received an Array/],
    [
      'eval: runningVar too short',
      false,
      { runningVar: new Float32Array(2) },
      RangeError,
      /Expected a Float32Array of length 3 for runningVar but received a Float32Array of length 2/,
    ],
    [
      'training: runningVar of the other dtype',
      true,
      { runningVar: new Float64Array(C) },
      TypeError,
      /Float32Array of length 3 or null for runningVar but received a Float64Array of length 3/,
    ],
    [
      'out of the other dtype',
      true,
      { out: new Float64Array(NUMEL) },
      TypeError,
      /Float32Array of length 30 or null for out but received a Float64Array of length 30/,
    ],
    ['out too short', false, { out: new Float32Array(NUMEL - 1) }, RangeError, /Float32Array of length 30 for out but received a Float32Array of length 29/],
    ['weight too long', false, { weight: new Float32Array(C + 1) }, RangeError, /Float32Array of length 3 for weight but received a Float32Array of length 4/],
  ] as const)('batchNorm, %s', async (_label, training, args, Err, message) => {
    const rm = new Float32Array(C).fill(0.5),
      rv = new Float32Array(C).fill(2),
      out = new Float32Array(NUMEL).fill(7);
    const a: any = { runningMean: rm, runningVar: rv, out, ...args };
    const state = () => JSON.stringify([rm, rv, out].map((v) => Array.from(v)));
    const before = state();
    const call = () => batchNorm(input(), a.runningMean, a.runningVar, { training, out: a.out, weight: a.weight });
    expect(call).toThrow(Err);
    expect(call).toThrow(message);
    await expect(batchNormAsync(input(), a.runningMean, a.runningVar, { training, out: a.out, weight: a.weight })).rejects.toThrow(message);
    expect(state()).toBe(before);
  });

  it.each([
    [
      'saveMeanOut too short',
      true,
      () => ({ saveMeanOut: new Float32Array(C - 1) }),
      RangeError,
      /Float32Array of length 3 for saveMeanOut but received a Float32Array of length 2/,
    ],
    [
      'saveInvstdOut of the other dtype',
      false,
      () => ({ saveInvstdOut: new Float64Array(C) }),
      TypeError,
      /Float32Array of length 3 or null for saveInvstdOut but received a Float64Array of length 3/,
    ],
    [
      'saveMeanOut the runningVar, in eval',
      false,
      (a: any) => ({ saveMeanOut: a.runningVar }),
      RangeError,
      /Expected saveMeanOut not to share memory with runningVar, but it overlaps it/,
    ],
    [
      'saveInvstdOut overlapping the weight',
      true,
      (a: any) => ({ saveInvstdOut: a.buf.subarray(1, 1 + C), weight: a.buf.subarray(0, C) }),
      RangeError,
      /Expected saveInvstdOut not to share memory with weight, but it overlaps it/,
    ],
    [
      'saveInvstdOut the same array as saveMeanOut',
      true,
      (a: any) => ({ saveInvstdOut: a.saveMeanOut }),
      RangeError,
      /Expected saveInvstdOut not to share memory with saveMeanOut, but it overlaps it/,
    ],
    [
      'saveMeanOut inside out',
      true,
      (a: any) => ({ saveMeanOut: a.out.subarray(4, 4 + C) }),
      RangeError,
      /Expected saveMeanOut not to share memory with out, but it overlaps it/,
    ],
  ] as const)('batchNorm, %s', async (_label, training, args, Err, message) => {
    const rm = new Float32Array(C).fill(0.5),
      rv = new Float32Array(C).fill(2),
      out = new Float32Array(NUMEL).fill(7),
      buf = new Float32Array(C + 1).fill(1);
    const saveMeanOut = new Float32Array(C).fill(3),
      saveInvstdOut = new Float32Array(C).fill(4);
    const base: any = { runningMean: rm, runningVar: rv, out, buf, saveMeanOut, saveInvstdOut, weight: null };
    const a: any = { ...base, ...args(base) };
    const state = () => JSON.stringify([rm, rv, out, buf, saveMeanOut, saveInvstdOut].map((v) => Array.from(v)));
    const before = state();
    const options = { training, out: a.out, weight: a.weight, saveMeanOut: a.saveMeanOut, saveInvstdOut: a.saveInvstdOut };
    expect(() => batchNorm(input(), a.runningMean, a.runningVar, options)).toThrow(Err);
    expect(() => batchNorm(input(), a.runningMean, a.runningVar, options)).toThrow(message);
    await expect(batchNormAsync(input(), a.runningMean, a.runningVar, options)).rejects.toThrow(message);
    expect(state()).toBe(before);
  });

  it.each([
    [
      'gradOutput of the other dtype',
      { gradOutput: { data: new Float64Array(NUMEL), shape: [N, C, S] } },
      TypeError,
      /Float32Array of length 30 for gradOutput.data but received a Float64Array of length 30/,
    ],
    ['saveMean an Array', { saveMean: [0, 0, 0] }, TypeError, /Float32Array of length 3 for saveMean but received an Array/],
    ['saveInvstd missing', { saveInvstd: undefined }, TypeError, /Float32Array of length 3 for saveInvstd but received undefined/],
    ['out too short', { out: new Float32Array(NUMEL - 1) }, RangeError, /Float32Array of length 30 for out but received a Float32Array of length 29/],
    [
      'gradWeightOut too short',
      { gradWeightOut: new Float32Array(C - 1) },
      RangeError,
      /Float32Array of length 3 for gradWeightOut but received a Float32Array of length 2/,
    ],
    [
      'gradBiasOut of the other dtype',
      { gradBiasOut: new Float64Array(C) },
      TypeError,
      /Float32Array of length 3 or null for gradBiasOut but received a Float64Array of length 3/,
    ],
  ] as const)('batchNormBackward, %s', async (_label, args, Err, message) => {
    const x = input(),
      y = batchNorm(x, null, null, { training: true });
    const out = new Float32Array(NUMEL).fill(7),
      gradWeightOut = new Float32Array(C).fill(8),
      gradBiasOut = new Float32Array(C).fill(9);
    const a: any = {
      gradOutput: { data: randn(NUMEL, 12) as Float32Array, shape: [N, C, S] },
      saveMean: y.saveMean,
      saveInvstd: y.saveInvstd,
      out,
      gradWeightOut,
      gradBiasOut,
      ...args,
    };
    const state = () => JSON.stringify([out, gradWeightOut, gradBiasOut].map((v) => Array.from(v)));
    const before = state();
    const options = { training: true, saveMean: a.saveMean, saveInvstd: a.saveInvstd, out: a.out, gradWeightOut: a.gradWeightOut, gradBiasOut: a.gradBiasOut };
    expect(() => batchNormBackward(a.gradOutput, x, options)).toThrow(Err);
    expect(() => batchNormBackward(a.gradOutput, x, options)).toThrow(message);
    await expect(batchNormBackwardAsync(a.gradOutput, x, options)).rejects.toThrow(message);
    expect(state()).toBe(before);
  });
});

describe('readSafetensors checks the header', () => {
  /** A file with this header text and 16 data bytes. */
  const file = (header: string): Uint8Array => safetensorsFile(header, new Uint8Array(16));
  const entry = (fields: object) => JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16], ...fields } });

  it.each([
    ['a string header', '"x"', /Expected a JSON object for the safetensors header but received a string/],
    ['an array header', '[1, 2]', /Expected a JSON object for the safetensors header but received an Array/],
    ['a null entry', '{"w": null}', /Expected an object \{ dtype, shape, data_offsets \} for w but the file has null/],
    ['an entry without shape', entry({ shape: undefined }), /Expected a shape of non-negative integers for w but the file has undefined/],
    ['a shape that is a number', entry({ shape: 4 }), /Expected a shape of non-negative integers for w but the file has 4/],
    ['negative dims', entry({ shape: [-2, -2] }), /Expected a shape of non-negative integers for w but the file has \[-2,-2\]/],
    ['a fractional dim', entry({ shape: [0.5, 8] }), /Expected a shape of non-negative integers for w but the file has \[0.5,8\]/],
    ['dims as strings', entry({ shape: ['2', '2'] }), /Expected a shape of non-negative integers for w but the file has \["2","2"\]/],
    [
      'no data_offsets',
      entry({ data_offsets: undefined }),
      /Expected data_offsets of two non-negative integers \[begin, end\] for w but the file has undefined/,
    ],
    ['data_offsets a number', entry({ data_offsets: 5 }), /Expected data_offsets of two non-negative integers \[begin, end\] for w but the file has 5/],
    [
      'fractional data_offsets',
      entry({ data_offsets: [0.5, 16.5] }),
      /Expected data_offsets of two non-negative integers \[begin, end\] for w but the file has \[0.5,16.5\]/,
    ],
    [
      'the dtype "toString"',
      entry({ dtype: 'toString' }),
      /Expected a dtype of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL for w but the file has "toString"/,
    ],
    ['the dtype "constructor"', entry({ dtype: 'constructor' }), /for w but the file has "constructor"/],
  ])('%s: a RangeError saying what the file has', (_label, header, message) => {
    expect(() => readSafetensors(file(header))).toThrow(RangeError);
    expect(() => readSafetensors(file(header))).toThrow(message);
  });

  it('options must be an object and prefix a string', () => {
    expect(readSafetensors(file(entry({})))).toEqual({ w: new Float32Array(4) });
    expect(() => readSafetensors(file(entry({})), null as any)).toThrow(TypeError);
    expect(() => readSafetensors(file(entry({})), null as any)).toThrow(/Expected an options object for readSafetensors but received null/);
    expect(() => readSafetensors(file(entry({})), { prefix: 5 as any })).toThrow(TypeError);
    expect(() => readSafetensors(file(entry({})), { prefix: 5 as any })).toThrow(/Expected a string for prefix but received the number 5/);
  });
});

describe('writeSafetensors checks what it writes', () => {
  it('refuses values it would write wrongly, naming the key', () => {
    expect(() => writeSafetensors(null as any)).toThrow('Expected an object for the state dict but received null');
    expect(() => writeSafetensors({ w: 'abc' as any })).toThrow(TypeError);
    expect(() => writeSafetensors({ w: 'abc' as any })).toThrow(/for w but received a string/);
    expect(() => writeSafetensors({ w: [1, '2'] as any })).toThrow(TypeError);
    expect(() => writeSafetensors({ n: 1.5 })).toThrow("Expected an integer in int64's range for n but received 1.5");
    expect(() => writeSafetensors({ n: 2n ** 63n })).toThrow(RangeError);
  });

  it('a tensor named __proto__ and non-ASCII names round-trip; the data starts 8-byte aligned', () => {
    const sd = JSON.parse('{"__proto__": [1, 2], "größe": [3]}');
    const bytes = writeSafetensors(sd);
    expect(Number(new DataView(bytes.buffer).getBigUint64(0, true)) % 8).toBe(0);
    const back = readSafetensors(bytes);
    expect(Object.keys(back).sort()).toEqual(['__proto__', 'größe']);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Array.from(back['größe'] as Float32Array)).toEqual([3]);
  });
});

describe('setNumThreads', () => {
  it('says the same on the native and the JS path', () => {
    const before = getNumThreads();
    expect(() => setNumThreads(null as any)).toThrow(new TypeError('Expected a positive integer for n but received null'));
    expect(() => setNumThreads('2' as any)).toThrow(new TypeError('Expected a positive integer for n but received a string'));
    expect(() => setNumThreads(0)).toThrow(new RangeError('Expected a positive integer for n but received the number 0'));
    expect(() => setNumThreads(2000)).toThrow(new RangeError('Expected a positive integer of at most 1024 for n but received the number 2000'));
    expect(getNumThreads()).toBe(before);
  });
});
