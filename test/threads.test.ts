/** Native results are bitwise the same for any thread count (fixed units, fixed merge order). */
import { afterAll, expect, it } from 'vitest';
import { kernels } from '../lib/backend/loader.js';
import { getNumThreads, setNumThreads } from '../lib/index.js';
import { randn } from './helpers.js';

const initial = getNumThreads();
afterAll(() => setNumThreads(initial));

it('defaults to the available cores and validates setNumThreads', async () => {
  const os = await import('node:os');
  expect(initial).toBe(os.availableParallelism());
  expect(() => setNumThreads(0)).toThrow(RangeError);
  expect(() => setNumThreads(1.5)).toThrow(RangeError);
  expect(() => setNumThreads('2' as any)).toThrow(TypeError);
});

it.each([
  ['NCHW, many channels', 16, 64, 1000, false],
  ['NCHW, one channel (split within the channel)', 4, 1, 70_000, false],
  ['channels-last', 4000, 40, 1, true],
  ['NHWC', 8, 24, 900, true],
] as const)('%s: identical bits for 1, 2, 3 and 5 threads', (_l, n, c, s, channelsLast) => {
  const numel = n * c * s, x = randn(numel, 1, 5, 3), dy = randn(numel, 2);
  const results = [1, 2, 3, 5].map((t) => {
    setNumThreads(t);
    const y = new Float32Array(numel), rm = new Float32Array(c), rv = new Float32Array(c).fill(1), sm = new Float32Array(c), si = new Float32Array(c);
    kernels.forwardTraining(x, y, null, null, rm, rv, sm, si, n, c, s, channelsLast, 1e-5, 0.1);
    const dx = new Float32Array(numel), gw = new Float32Array(c), gb = new Float32Array(c);
    kernels.backward(x, dy, dx, null, sm, si, gw, gb, n, c, s, channelsLast, true);
    return Buffer.concat([y, rm, rv, sm, si, dx, gw, gb].map((a) => Buffer.from(a.buffer)));
  });
  for (const r of results.slice(1)) expect(r.equals(results[0])).toBe(true);
});
