/**
 * Issue 21, item 2: per-call contexts. A module keeps what each forward
 * normalized with; `backward(dy, { of: y })` differentiates the forward that
 * returned y, in any order, each once (the last forward by default).
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d } from '../../lib/index.js';
import { randn } from '../helpers.js';

const t4 = (seed: number) => ({ data: randn(4 * 3 * 2 * 2, seed, 0.5, 2) as Float32Array, shape: [4, 3, 2, 2] });

describe('several forwards before their backwards', () => {
  it('interleaved backwards give what each forward alone gives, and the parameter gradients add up', () => {
    const m = new BatchNorm2d(3);
    m.weight.data.set([0.5, 1.5, -1]);
    const [x1, x2, x3, d1, d2, d3] = [1, 2, 3, 4, 5, 6].map(t4);
    const y1 = m.forward(x1),
      y2 = m.forward(x2),
      y3 = m.forward(x3);
    const g2 = m.backward(d2, { of: y2 }),
      g1 = m.backward(d1, { of: y1 }),
      g3 = m.backward(d3);
    const gw = new Float64Array(3);
    for (const [x, d, g] of [
      [x1, d1, g1],
      [x2, d2, g2],
      [x3, d3, g3],
    ] as const) {
      const r = new BatchNorm2d(3);
      r.weight.data.set([0.5, 1.5, -1]);
      r.forward(x);
      expect(Array.from(g.data)).toEqual(Array.from(r.backward(d).data));
      r.weight.grad!.forEach((v, i) => (gw[i] += v));
    }
    m.weight.grad!.forEach((v, i) => expect(v).toBeCloseTo(gw[i], 5));
    expect(m.numBatchesTracked).toBe(3);
  });

  it('an eval forward and a training forward keep their own statistics', () => {
    const m = new BatchNorm2d(3),
      x = t4(1),
      d = t4(2);
    const yt = m.forward(x);
    m.eval();
    const ye = m.forward(x);
    const ge = m.backward(d, { of: ye }),
      gt = m.backward(d, { of: yt });
    const rt = new BatchNorm2d(3),
      re = new BatchNorm2d(3);
    rt.forward(x);
    re.forward(x); // the same running statistics as m's after one training forward
    re.eval().forward(x);
    expect(Array.from(gt.data)).toEqual(Array.from(rt.backward(d).data));
    expect(Array.from(ge.data)).toEqual(Array.from(re.backward(d).data));
  });

  it('async forms take of too', async () => {
    const m = new BatchNorm1d(3),
      x1 = { data: randn(12, 1) as Float32Array, shape: [4, 3] },
      x2 = { data: randn(12, 2) as Float32Array, shape: [4, 3] };
    const d = { data: randn(12, 3) as Float32Array, shape: [4, 3] };
    const y1 = await m.forwardAsync(x1);
    await m.forwardAsync(x2);
    const g1 = await m.backwardAsync(d, { of: y1 });
    const r = new BatchNorm1d(3);
    r.forward(x1);
    expect(Array.from(g1.data)).toEqual(Array.from(r.backward(d).data));
    await expect(m.backwardAsync(d, { of: y1 })).rejects.toThrow(/already called/);
  });
});

describe('contexts refused, with the reason', () => {
  it('a second backward of one forward throws, changing nothing', () => {
    const m = new BatchNorm2d(3),
      y = m.forward(t4(1)),
      d = t4(2);
    m.backward(d);
    const grad = Array.from(m.weight.grad!);
    expect(() => m.backward(d)).toThrow(/BatchNorm2d.backward\(\) was already called for the last forward.*Trying to backward through the graph a second time/);
    expect(() => m.backward(d, { of: y })).toThrow(/already called for the forward given as of/);
    expect(Array.from(m.weight.grad!)).toEqual(grad);
  });

  it("retainGraph: true keeps the context for another backward, as PyTorch's retain_graph", () => {
    const m = new BatchNorm2d(3),
      x = t4(1),
      d = t4(2);
    m.forward(x);
    const g1 = m.backward(d, { retainGraph: true }),
      g2 = m.backward(d);
    expect(Array.from(g2.data)).toEqual(Array.from(g1.data));
    expect(() => m.backward(d)).toThrow(/already called/);
    expect(() => m.backward(d, { retainGraph: 1 as never })).toThrow(/boolean for retainGraph/);
  });

  it("of must be a result of this module's forward", () => {
    const m = new BatchNorm2d(3),
      other = new BatchNorm2d(3),
      d = t4(2);
    const y = m.forward(t4(1)),
      z = other.forward(t4(1));
    expect(() => m.backward(d, { of: z })).toThrow(TypeError);
    expect(() => m.backward(d, { of: z })).toThrow(/the result of a forward\(\) of another module/);
    expect(() => m.backward(d, { of: { data: y.data, shape: y.shape } })).toThrow(
      /Expected the result of a forward\(\) of this BatchNorm2d for of of BatchNorm2d.backward\(\) but received an object/,
    );
    expect(() => m.backward(d, { of: null as never })).toThrow(TypeError);
    expect(() => new BatchNorm2d(3).backward(d)).toThrow(/needs a forward\(\) first/);
    m.backward(d, { of: y });
  });

  it('a context whose input a later forward overwrote in place throws; the others still work', () => {
    const m = new BatchNorm2d(3),
      x = t4(1),
      d = t4(2);
    const y1 = m.forward(x),
      y2 = m.forward(t4(3));
    m.forward(x, { out: x.data });
    expect(() => m.backward(d, { of: y1 })).toThrow(/needs the input of the forward given as of, which a forward overwrote in place/);
    expect(() => m.backward(d)).toThrow(/needs the input of the last forward, which a forward overwrote in place/);
    expect(() => m.backward(d, { of: y2 })).not.toThrow();
  });

  it('a later forward writing its out over a saved input, or over a saved output the ReLU needs, makes that backward throw', () => {
    const m = new BatchNorm2d(3),
      buf = t4(1),
      d = t4(2);
    const y1 = m.forward(buf);
    m.forward(t4(3), { out: buf.data });
    expect(() => m.backward(d, { of: y1 })).toThrow(
      /needs the input of the forward given as of, which a later forward wrote its output over \(its out was that array\)/,
    );
    const r = new BatchNorm2d(3, { activation: 'relu' }),
      out = new Float32Array(48);
    const z1 = r.forward(t4(4), { out });
    r.forward(t4(5), { out });
    expect(() => r.backward(d, { of: z1 })).toThrow(/needs the output of the forward given as of, which a later forward wrote its output over/);
    expect(() => r.backward(d)).not.toThrow();
    // The common loop (one out, forward then backward) is unaffected.
    for (let i = 0; i < 3; i++) {
      r.forward(t4(6 + i), { out });
      r.backward(d);
    }
  });

  it('a context whose input was detached throws, naming it', () => {
    const m = new BatchNorm2d(3),
      x = t4(1),
      d = t4(2);
    const y = m.forward(x);
    m.forward(t4(3));
    structuredClone(x.data.buffer, { transfer: [x.data.buffer as ArrayBuffer] });
    expect(() => m.backward(d, { of: y })).toThrow(/that forward's input \(input.data\) still readable/);
    m.backward(d);
  });
});
