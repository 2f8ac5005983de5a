/**
 * Issue 26: a call that throws changes nothing, inputs are read once, and no
 * misuse can corrupt the heap. One test (or more) per item of the issue, run
 * on both backends (vitest's native and js projects); the thread-pool shrink
 * is in test/threads.test.ts (the pool is the addon's).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, backendInfo, batchNorm, batchNormAsync, batchNormBackward, fromKeras, type StateDict } from '../../lib/index.js';
import { randn } from '../helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

const x4 = (seed = 1, shape = [4, 3, 2, 2]) => ({
  data: randn(
    shape.reduce((a, b) => a * b, 1),
    seed,
    1,
    2,
  ) as Float32Array<ArrayBuffer>,
  shape,
});

/** Everything a module holds that a call may change, as JSON (NaN-safe). */
function moduleState(bn: BatchNorm2d | BatchNorm1d): string {
  const arr = (a: ArrayLike<number> | null | undefined) => (a ? Array.from(a, String) : null);
  return JSON.stringify({
    rm: arr(bn.runningMean),
    rv: arr(bn.runningVar),
    n: bn.numBatchesTracked,
    w: arr(bn.weight?.data),
    b: arr(bn.bias?.data),
    gw: arr(bn.weight?.grad),
    gb: arr(bn.bias?.grad),
  });
}

/** A shape array whose elements (and iterator) behave as `get` says; reads counted. */
function hostileShape(dims: number[], get: (i: number, read: number) => number, iterator?: () => never): { shape: number[]; reads: number[] } {
  const reads = dims.map(() => 0),
    shape: number[] = [];
  dims.forEach((_, i) => Object.defineProperty(shape, i, { enumerable: true, get: () => get(i, ++reads[i]) }));
  if (iterator) Object.defineProperty(shape, Symbol.iterator, { value: iterator });
  return { shape, reads };
}

describe('1. a buffer transferred while an async call holds it', () => {
  // In a child process, so that heap corruption is an exit status here. Before
  // the fix: SIGSEGV / SIGABRT in 1-6 of 6 processes, and `out` detached.
  // A buffer an async call holds is marked untransferable: Node 20's
  // structuredClone then copies it, Node 21 and later refuse the transfer
  // (DataCloneError). Either way the caller's arrays stay attached.
  it("never corrupts the process: the transfer copies or is refused, the call finishes into the caller's arrays", () => {
    const script = `
      import { resolve } from 'node:path';
      const bn = await import('file://' + resolve('dist/index.js'));
      const transfer = (buffer) => {
        try {
          return structuredClone(buffer, { transfer: [buffer] });
        } catch (e) {
          if (e.name !== 'DataCloneError') throw e;
          return null;
        }
      };
      const shape = [8, 16, 48, 48], numel = shape.reduce((a, b) => a * b, 1);
      let good = 0;
      for (let i = 0; i < 12; i++) {
        const x = { data: new Float32Array(numel).map((_, k) => Math.sin(k + i)), shape }, out = new Float32Array(numel);
        const want = bn.batchNorm(x, null, null, { training: true }).data;
        const p = bn.batchNormAsync(x, null, null, { training: true, out });
        const copies = [transfer(out.buffer)];
        if (i % 2) copies.push(transfer(x.data.buffer));
        copies.length = 0;
        globalThis.gc?.();
        const r = await p;
        if (out.length === numel && x.data.length === numel && Buffer.from(r.data.buffer).equals(Buffer.from(want.buffer)) && r.data === out) good++;
        // The module's async forms too, forward and backward.
        const m = new bn.BatchNorm2d(16), dy = { data: x.data.map(Math.cos), shape };
        const q = m.forwardAsync(x);
        transfer(x.data.buffer);
        await q;
        const g = m.backwardAsync(dy);
        transfer(dy.data.buffer);
        await g;
        if (x.data.length !== numel || dy.data.length !== numel) throw new Error('a buffer held by an async call was detached');
      }
      console.log(JSON.stringify({ good }));
    `;
    for (let run = 0; run < 3; run++) {
      const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
        cwd: root,
        env: process.env,
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(r.signal, r.stderr).toBeNull();
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).good).toBe(12);
    }
  }, 400_000);
});

describe("2. backward after the forward's input was detached", () => {
  it('throws, naming the detached input, and changes nothing', () => {
    const m = new BatchNorm2d(3),
      x = x4(),
      dy = x4(2);
    m.forward(x);
    structuredClone(x.data.buffer, { transfer: [x.data.buffer] });
    const before = moduleState(m);
    expect(() => m.backward(dy)).toThrow(TypeError);
    expect(() => m.backward(dy)).toThrow(
      /the last forward's input \(input.data\) still readable for BatchNorm2d.backward\(\) but received one whose buffer was detached/,
    );
    expect(moduleState(m)).toBe(before);
  });
});

describe('3. a throwing call changes nothing', () => {
  it('(a) a running statistic assigned a plain array is refused at once, naming the fix', () => {
    const m = new BatchNorm2d(3);
    m.forward(x4());
    const before = moduleState(m);
    expect(() => (m.runningMean = [0, 0, 0] as any)).toThrow(TypeError);
    expect(() => (m.runningMean = [0, 0, 0] as any)).toThrow(
      'Expected a Float32Array or Float64Array of length 3, or null for BatchNorm2d.runningMean but received an Array: assign a typed array (runningMean = Float32Array.from(values)), or load values with loadStateDict',
    );
    expect(() => (m.runningVar = new Float32Array(2))).toThrow(RangeError);
    expect(moduleState(m)).toBe(before);
    m.forward(x4(3));
    expect(m.numBatchesTracked).toBe(2);
  });

  it('(b) a shape whose iterator throws is read by index; one whose element throws changes nothing', () => {
    const ref = new BatchNorm2d(3),
      m = new BatchNorm2d(3),
      x = x4();
    const yRef = ref.forward(x);
    const { shape } = hostileShape(
      [4, 3, 2, 2],
      (i) => x.shape[i],
      () => {
        throw new Error('iterated');
      },
    );
    const y = m.forward({ data: x.data, shape });
    expect(Array.from(y.data)).toEqual(Array.from(yRef.data));
    expect(moduleState(m)).toBe(moduleState(ref));
    const before = moduleState(m);
    const bad = hostileShape([4, 3, 2, 2], (i) => {
      if (i === 3) throw new Error('unreadable');
      return x.shape[i];
    });
    expect(() => m.forward({ data: x.data, shape: bad.shape })).toThrow('unreadable');
    expect(moduleState(m)).toBe(before);
  });

  it('(c) running statistics cannot be swapped while forwardAsync runs; the call commits once', async () => {
    const m = new BatchNorm2d(3),
      ref = new BatchNorm2d(3),
      x = x4();
    ref.forward(x);
    const p = m.forwardAsync(x);
    expect(() => (m.runningMean = null)).toThrow(/BatchNorm2d.runningMean assigned while forwardAsync\(\) is still running; await it first/);
    expect(() => (m.runningVar = null)).toThrow(/assigned while forwardAsync/);
    expect(() => (m.numBatchesTracked = 5)).toThrow(/assigned while forwardAsync/);
    await p;
    expect(moduleState(m)).toBe(moduleState(ref));
  });

  it('(d) functional options are read once: a getter that throws on a second read changes nothing and is not reached', async () => {
    for (const async of [false, true]) {
      const rm = new Float32Array(3),
        rv = new Float32Array(3).fill(1),
        out = new Float32Array(48);
      const reads: Record<string, number> = {};
      const options: Record<string, unknown> = {};
      for (const [k, v] of Object.entries({ training: true, eps: 1e-5, momentum: 0.1, out, layout: 'NCHW' }))
        Object.defineProperty(options, k, {
          enumerable: true,
          get: () => {
            reads[k] = (reads[k] ?? 0) + 1;
            if (reads[k] > 1) throw new Error(`${k} read twice`);
            return v;
          },
        });
      const r = async ? await batchNormAsync(x4(), rm, rv, options as any) : batchNorm(x4(), rm, rv, options as any);
      expect(reads).toEqual({ training: 1, eps: 1, momentum: 1, out: 1, layout: 1 });
      expect(r.data).toBe(out);
      const want = batchNorm(x4(), new Float32Array(3), new Float32Array(3).fill(1), { training: true });
      expect(Array.from(out)).toEqual(Array.from(want.data));
    }
  });
});

describe("4. backward writing dx over the forward's input", () => {
  it('is allowed; another forward of that input throws at its backward instead of reading the overwritten input', () => {
    const m = new BatchNorm2d(3),
      ref = new BatchNorm2d(3),
      x = x4(),
      dy = x4(2);
    ref.forward({ data: x.data.slice(), shape: x.shape });
    const want = ref.backward(dy);
    const first = m.forward(x);
    m.forward(x);
    const dx = m.backward(dy, { out: x.data });
    expect(dx.data).toBe(x.data);
    expect(Array.from(dx.data)).toEqual(Array.from(want.data));
    const before = moduleState(m);
    expect(() => m.backward(dy, { of: first })).toThrow(/needs the input of the forward given as of, which a backward overwrote/);
    expect(() => m.backward(dy)).toThrow(/already called for the last forward/);
    expect(moduleState(m)).toBe(before);
    expect(Array.from(m.weight.grad!)).toEqual(Array.from(ref.weight.grad!));
  });
});

describe('5. options mutated while batchNormAsync runs', () => {
  it('y and saveInvstd both use the eps the call was given', async () => {
    const rm = Float32Array.of(0.5, -1, 2),
      rv = Float32Array.of(1, 4, 0.5);
    const options = { eps: 1e-5, training: false };
    const p = batchNormAsync(x4(), rm, rv, options);
    options.eps = 0.5;
    options.training = true;
    const r = await p;
    const want = batchNorm(x4(), rm, rv, { eps: 1e-5 });
    expect(Array.from(r.saveInvstd)).toEqual(Array.from(want.saveInvstd));
    expect(Array.from(r.data)).toEqual(Array.from(want.data));
  });
});

describe('6. concurrent functional training calls sharing running statistics', () => {
  it('run one after another: no update is lost; a sync call meanwhile is refused', async () => {
    const x = x4(5, [8, 4, 4, 4]),
      calls = 300;
    const rmS = new Float32Array(4),
      rvS = new Float32Array(4).fill(1);
    for (let i = 0; i < calls; i++) batchNorm(x, rmS, rvS, { training: true, momentum: 1e-3 });
    const rm = new Float32Array(4),
      rv = new Float32Array(4).fill(1);
    const all = Promise.all(Array.from({ length: calls }, () => batchNormAsync(x, rm, rv, { training: true, momentum: 1e-3 })));
    expect(() => batchNorm(x, rm, rv, { training: true })).toThrow(
      /runningMean or runningVar that a batchNormAsync\(\) \(or forwardAsync\(\)\) training call is still updating; await it first/,
    );
    expect(() => batchNorm(x, rm, rv)).toThrow(/still updating/);
    await all;
    expect(Array.from(rm)).toEqual(Array.from(rmS));
    expect(Array.from(rv)).toEqual(Array.from(rvS));
    // An eval call after them reads the final statistics.
    const e = await batchNormAsync(x, rm, rv);
    expect(Array.from(e.saveMean)).toEqual(Array.from(rmS));
  }, 60_000);
});

describe('7. the shape is read once', () => {
  it('a shape whose elements change on later reads: module, forwardAsync and functional agree with the first read', async () => {
    const x = x4(7, [4, 3, 2, 2]);
    const lying = () => hostileShape([4, 3, 2, 2], (i, read) => (read === 1 ? x.shape[i] : [2, 3, 4, 2][i]));
    for (const form of ['forward', 'forwardAsync', 'batchNorm'] as const) {
      const ref = new BatchNorm2d(3),
        m = new BatchNorm2d(3),
        dy = x4(8);
      const want = ref.forward(x),
        wantDx = ref.backward(dy);
      const { shape, reads } = lying();
      const y =
        form === 'forward'
          ? m.forward({ data: x.data, shape })
          : form === 'forwardAsync'
            ? await m.forwardAsync({ data: x.data, shape })
            : batchNorm({ data: x.data, shape }, m.runningMean, m.runningVar, { training: true });
      expect(reads, form).toEqual([1, 1, 1, 1]);
      expect(y.shape, form).toEqual([4, 3, 2, 2]);
      expect(Array.from(y.data), form).toEqual(Array.from(want.data));
      if (form !== 'batchNorm') expect(Array.from(m.backward(dy).data), form).toEqual(Array.from(wantDx.data));
    }
  });
});

describe('8. re-entrant calls on a module', () => {
  it('a shape getter calling forward during forward is refused; the outer forward saves its own statistics', () => {
    const m = new BatchNorm2d(3),
      ref = new BatchNorm2d(3),
      x1 = x4(9),
      x2 = x4(10),
      dy = x4(11);
    ref.forward(x1);
    const want = ref.backward(dy);
    let inner: unknown = null;
    const { shape } = hostileShape([4, 3, 2, 2], (i) => {
      if (i === 0 && inner === null) {
        try {
          m.forward(x2);
          inner = 'ran';
        } catch (e) {
          inner = e;
        }
      }
      return x1.shape[i];
    });
    m.forward({ data: x1.data, shape });
    expect(String(inner)).toMatch(/BatchNorm2d.forward\(\) called while forward\(\) is still running; await it first/);
    expect(Array.from(m.backward(dy).data)).toEqual(Array.from(want.data));
    expect(moduleState(m)).toBe(moduleState(ref));
  });
});

describe('9. the JSON round trip with a NaN running statistic', () => {
  it('loads null as NaN', () => {
    const a = new BatchNorm2d(3);
    a.forward(x4());
    a.runningVar!.set([NaN, 2, 3]);
    const b = new BatchNorm2d(3);
    b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())) as StateDict);
    expect(Number.isNaN(b.runningVar![0])).toBe(true);
    expect(moduleState(b)).toBe(moduleState(a));
    expect(() => b.loadStateDict({ ...a.stateDict(), running_mean: [1, 'x', 3] as any })).toThrow(
      'Expected a number (or null for NaN, as JSON writes it) for running_mean[1] but received a string',
    );
  });
});

describe('10. hostile arrays are read through the intrinsic getters', () => {
  it('an out whose own buffer property lies still overlaps weight.grad', () => {
    const m = new BatchNorm1d(4),
      x = { data: randn(8, 12) as Float32Array, shape: [2, 4] };
    m.forward(x);
    m.backward(x);
    // weight.grad is elements 6..9 of a buffer, out elements 0..7 of it, with an own `buffer` saying otherwise.
    const shared = new Float32Array(10),
      grad = new Float32Array(shared.buffer, 24, 4);
    grad.set(m.weight.grad!);
    m.weight.grad = grad;
    m.forward(x);
    const out = new Float32Array(shared.buffer, 0, 8);
    Object.defineProperty(out, 'buffer', { value: new ArrayBuffer(32) });
    const before = moduleState(m);
    expect(() => m.backward(x, { out })).toThrow("Expected out not to share memory with the module's weight.grad, but it overlaps it");
    expect(() => batchNormBackward(x, x, { saveMean: new Float32Array(4), saveInvstd: new Float32Array(4), out, gradWeightOut: grad })).toThrow(/share memory/);
    expect(moduleState(m)).toBe(before);
  });

  it('a Float32Array whose own length lies is measured by its real length', () => {
    const data = randn(12, 13) as Float32Array;
    Object.defineProperty(data, 'length', { value: 24 });
    const rm = new Float32Array(3),
      rv = new Float32Array(3).fill(1);
    expect(() => batchNorm({ data, shape: [8, 3] }, rm, rv, { training: true })).toThrow(
      'Expected 24 elements for shape [8, 3] for input.data but received a Float32Array of length 12',
    );
    expect(Array.from(rm)).toEqual([0, 0, 0]);
    expect(Array.from(rv)).toEqual([1, 1, 1]);
  });
});

describe('11. every message names the argument, what was expected and what came', () => {
  it('a Proxy around a typed array', () => {
    const data = new Proxy(new Float32Array(6), {});
    expect(() => batchNorm({ data, shape: [2, 3] }, null, null, { training: true })).toThrow(
      'Expected a Float32Array or Float64Array for input.data but received an object that looks like a typed array but is not one (a Proxy or a subclass instance without storage)',
    );
  });

  it('a Float32Array from another realm (vm) is a Float32Array', () => {
    const other = vm.runInNewContext('new Float32Array([1, 2, 3, 4, 5, 6])') as Float32Array;
    expect(other instanceof Float32Array).toBe(false);
    const r = batchNorm({ data: other, shape: [2, 3] }, null, null, { training: true });
    const want = batchNorm({ data: Float32Array.of(1, 2, 3, 4, 5, 6), shape: [2, 3] }, null, null, { training: true });
    expect(Array.from(r.data)).toEqual(Array.from(want.data));
  });

  it('fromKeras(null), a resizable buffer in forwardAsync, an empty input of 2^33 channels', async () => {
    expect(() => fromKeras(null as any)).toThrow('Expected an options object for fromKeras but received null');
    const buf = new (ArrayBuffer as any)(48, { maxByteLength: 96 });
    await expect(new BatchNorm2d(3).forwardAsync({ data: new Float32Array(buf), shape: [4, 3, 1, 1] })).rejects.toThrow(
      'Expected a Float32Array of length 12 for input.data but received one backed by a resizable ArrayBuffer, which an async call cannot hold (use the sync form)',
    );
    expect(() => batchNorm({ data: new Float32Array(0), shape: [0, 2 ** 33] }, null, null, { training: true })).toThrow(
      /Expected a channel count that fits a typed array .* for input.shape but received shape with 8589934592 channels/,
    );
  });
});

describe('12. lenient acceptance', () => {
  it('options that are not objects, unknown option keys, layout null are refused', () => {
    const m = new BatchNorm2d(3),
      x = x4();
    const before = moduleState(m);
    expect(() => m.forward(x, 'abc' as any)).toThrow('Expected an options object for BatchNorm2d.forward but received a string');
    expect(() => m.forward(x, { output: new Float32Array(48) } as any)).toThrow(
      'Expected only the options out, residual for BatchNorm2d.forward but received an unknown option "output"',
    );
    expect(() => m.loadStateDict(m.stateDict(), [] as any)).toThrow('Expected an options object for BatchNorm2d.loadStateDict but received an Array');
    expect(() => fromKeras(0 as any)).toThrow('Expected an options object for fromKeras but received the number 0');
    expect(() => batchNorm(x, null, null, { training: true, layout: null as any })).toThrow(
      'Expected one of NC, NCL, NLC, NCHW, NHWC, NCDHW, NDHWC, channelsFirst, channelsLast for layout but received null',
    );
    expect(() => batchNorm(x, null, null, { training: true, epsilon: 1e-3 } as any)).toThrow(/unknown option "epsilon": did you mean eps\?/);
    expect(() => new BatchNorm2d(3, { epsilon: 1e-3 } as any)).toThrow(TypeError);
    expect(() => new BatchNorm2d(3, { eps: 2 ** 53 })).toThrow(RangeError);
    expect(moduleState(m)).toBe(before);
  });
});

describe('issue 19 item 7: eps = 0', () => {
  // PyTorch 1.13 (CPU), a constant channel (7) with eps 0, weight [2, -3, 4], bias [0.5, 0.25, -1]
  // (/usr/bin/python3 with torch, nn.BatchNorm2d(3, eps=0.0) in training, float64 and channels-last float32):
  // y of that channel is its bias 0.25 (0 without bias), its dx 0, its weight gradient 0, its bias
  // gradient Σdy: ATen's InvStd gives invstd 0 (not 1/√0) for a variance of 0 with eps 0.
  it('is accepted; a constant channel gives what PyTorch gives: invstd 0, y = bias, zero gradients', async () => {
    for (const [shape, layout] of [
      [[4, 3, 1, 1], 'NCHW'],
      [[4, 3, 7, 5], 'NCHW'],
      [[2, 3, 64, 64], 'NCHW'],
      [[8, 5, 5, 3], 'NHWC'],
      [[4, 3, 40, 40], 'NHWC'],
    ] as const) {
      const numel = shape.reduce((a: number, b) => a * b, 1),
        c = layout === 'NHWC' ? shape[3] : shape[1];
      const channelOf = (i: number) => (layout === 'NHWC' ? i % c : Math.floor(i / (numel / shape[0] / c)) % c);
      for (const T of [Float32Array, Float64Array]) {
        const label = `${shape} ${layout} ${T.name}`;
        const data = randn(numel, 14, 0, 1, T),
          dyData = randn(numel, 15, 0, 1, T);
        for (let i = 0; i < numel; i++) if (channelOf(i) === 1) data[i] = 7;
        const m = new BatchNorm2d(c, { eps: 0, layout, dtype: T === Float64Array ? 'float64' : 'float32' });
        m.weight.data.set(Array.from({ length: c }, (_, k) => k - 1.5));
        m.bias.data.set(Array.from({ length: c }, (_, k) => 0.25 * (k + 1)));
        const y = layout === 'NHWC' ? m.forward({ data, shape }) : await m.forwardAsync({ data, shape });
        const dx = m.backward({ data: dyData, shape });
        const r = batchNorm({ data, shape }, null, null, { training: true, eps: 0, layout });
        expect(r.saveInvstd[1], label).toBe(0);
        expect(Number.isFinite(r.saveInvstd[0]) && r.saveInvstd[0] > 0, label).toBe(true);
        let wrong = 0,
          sumDy = 0;
        for (let i = 0; i < numel; i++) {
          if (channelOf(i) !== 1) {
            if (!Number.isFinite(y.data[i]) || !Number.isFinite(dx.data[i])) wrong++;
            continue;
          }
          sumDy += dyData[i];
          if (y.data[i] !== m.bias.data[1] || r.data[i] !== 0 || dx.data[i] !== 0) wrong++;
        }
        expect(wrong, `${label}: the constant channel is its bias, its dx 0; the others finite`).toBe(0);
        expect(m.weight.grad![1], label).toBe(0);
        expect(m.bias.grad![1], label).toBeCloseTo(sumDy, T === Float64Array ? 9 : 3);
        expect(m.runningVar![1], label).toBeCloseTo(0.9, 6);
        // Eval with a running variance of 0 and eps 0 divides by 0, as PyTorch: not finite.
        const e = batchNorm({ data, shape }, new T(c).fill(7), new T(c), { eps: 0, layout });
        expect(Number.isNaN(e.data[layout === 'NHWC' ? 1 : numel / shape[0] / c]), label).toBe(true);
      }
    }
    expect(String(new BatchNorm2d(2, { eps: 0 }))).toBe('BatchNorm2d(2, eps=0.0, momentum=0.1, affine=True, track_running_stats=True)');
    expect(backendInfo().backend).toBe(process.env.BATCHNORM_BACKEND);
  }, 60_000);
});

describe('typed arrays from the functional backward', () => {
  it('batchNormBackward refuses a parameter object for weight, naming the fix', () => {
    const m = new BatchNorm2d(3),
      x = x4();
    const y = batchNorm(x, null, null, { training: true });
    expect(() => batchNormBackward(x4(2), x, { weight: m.weight as any, saveMean: y.saveMean, saveInvstd: y.saveInvstd })).toThrow(
      "Expected a Float32Array of length 3 or null for weight but received a Parameter { data, grad }: pass the parameter's array, weight.data (e.g. bn.weight.data)",
    );
  });
});
