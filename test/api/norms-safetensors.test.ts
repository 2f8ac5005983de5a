/**
 * Safetensors files of the norms keep PyTorch's shapes: a LayerNorm((4, 5))
 * weight is [4, 5] in PyTorch's state dict, so it is [4, 5] in the file this
 * package writes, and a file PyTorch wrote (test/fixtures/norms.safetensors,
 * from generate_norms_safetensors.py) loads. Flat files (as written before
 * shapes were kept) load too; a transposed shape is refused as PyTorch does.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GroupNorm, InstanceNorm2d, LayerNorm, RMSNorm, readSafetensors, writeSafetensors } from '../../lib/index.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url));
const golden = JSON.parse(fixture('norms_safetensors.json').toString('utf8'));

/** The JSON header of a safetensors file. */
function header(bytes: Uint8Array): Record<string, { dtype: string; shape: number[] }> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
}

describe('safetensors keep the norms’ shapes', () => {
  it('writes a LayerNorm((4, 5)) weight as [4, 5] and reads it back', () => {
    const ln = new LayerNorm([4, 5]);
    ln.loadStateDict({ weight: Array.from({ length: 20 }, (_, i) => i / 4 - 2), bias: Array.from({ length: 20 }, (_, i) => 1 - i / 8) });
    const bytes = writeSafetensors(ln.stateDict());
    expect(header(bytes).weight).toMatchObject({ dtype: 'F32', shape: [4, 5] });
    expect(header(bytes).bias).toMatchObject({ dtype: 'F32', shape: [4, 5] });
    const sd = readSafetensors(bytes);
    expect((sd.weight as unknown as { shape: number[] }).shape).toEqual([4, 5]);
    const ln2 = new LayerNorm([4, 5]);
    ln2.loadStateDict(sd);
    expect(ln2.stateDict()).toEqual(ln.stateDict());
    // read → write is lossless: the same header
    expect(header(writeSafetensors(sd))).toEqual(header(bytes));
    // the shape stays out of JSON and of the keys
    expect(Object.keys(ln.stateDict().weight as object)).toHaveLength(20);
    expect(JSON.stringify(ln.stateDict())).toBe(JSON.stringify({ weight: Array.from(ln.weight!.data), bias: Array.from(ln.bias!.data) }));
  });

  it('writes every norm with the shape of its PyTorch state dict', () => {
    const shapes = (m: { stateDict(): object }) =>
      Object.fromEntries(
        Object.entries(header(writeSafetensors(m.stateDict() as any)))
          .filter(([k]) => k !== '__metadata__')
          .map(([k, v]) => [k, v.shape]),
      );
    expect(shapes(new LayerNorm([2, 3, 4], { dtype: 'float64' }))).toEqual({ weight: [2, 3, 4], bias: [2, 3, 4] });
    expect(shapes(new RMSNorm([3, 4]))).toEqual({ weight: [3, 4] });
    expect(shapes(new LayerNorm(7))).toEqual({ weight: [7], bias: [7] });
    expect(shapes(new GroupNorm(2, 6))).toEqual({ weight: [6], bias: [6] });
    expect(shapes(new InstanceNorm2d(3, { affine: true, trackRunningStats: true }))).toEqual({
      weight: [3],
      bias: [3],
      running_mean: [3],
      running_var: [3],
      num_batches_tracked: [],
    });
  });

  it('loads flat files (as written before shapes were kept) and refuses a transposed shape, changing nothing', () => {
    const ln = new LayerNorm([4, 5]);
    const w = Float32Array.from({ length: 20 }, (_, i) => i - 10),
      b = Float32Array.from({ length: 20 }, (_, i) => -i);
    const flat = writeSafetensors({ weight: w, bias: b });
    expect(header(flat).weight.shape).toEqual([20]);
    ln.loadStateDict(readSafetensors(flat));
    expect(ln.weight!.data).toEqual(w);
    const transposed = writeSafetensors({ weight: w, bias: b }, { shapes: { weight: [5, 4], bias: [4, 5] } });
    const fresh = new LayerNorm([4, 5]),
      before = JSON.stringify(fresh.stateDict());
    expect(() => fresh.loadStateDict(readSafetensors(transposed))).toThrow(
      'size mismatch for weight: copying a param with shape [5, 4] from checkpoint, the shape in current model is [4, 5].',
    );
    expect(JSON.stringify(fresh.stateDict())).toBe(before);
  });

  it('checks the shapes option', () => {
    const w = new Float32Array(6);
    expect(header(writeSafetensors({ w }, { shapes: { w: [2, 3] } })).w.shape).toEqual([2, 3]);
    expect(() => writeSafetensors({ w }, { shapes: { w: [4, 2] } })).toThrow(
      "Expected a shape of 6 elements (the array's length) for the shape of w but received [4, 2] (8 elements)",
    );
    expect(() => writeSafetensors({ w }, { shapes: { v: [6] } })).toThrow(RangeError);
    expect(() => writeSafetensors({ w }, { shapes: { w: [2, -3] } })).toThrow(TypeError);
    expect(() => writeSafetensors({ w }, { shape: {} } as any)).toThrow('unknown option "shape"');
  });

  it('loads a file PyTorch wrote (norms.safetensors): shapes, values, and the LayerNorm’s forward', () => {
    const bytes = fixture('norms.safetensors');
    const all = readSafetensors(bytes);
    for (const [key, t] of Object.entries(golden.tensors as Record<string, { shape: number[]; values: number[] }>)) {
      const v = all[key];
      if (t.shape.length === 0) expect(v).toBe(t.values[0]);
      else {
        expect((v as unknown as { shape: number[] }).shape).toEqual(t.shape);
        expect(Array.from(v as Float32Array)).toEqual(t.values);
      }
    }
    const ln = new LayerNorm([4, 5]);
    ln.loadStateDict(readSafetensors(bytes, { prefix: 'ln.' }));
    const f = golden.ln_forward;
    const y = ln.forward({ data: Float32Array.from(f.x), shape: f.shape }).data;
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(f.y[i], 5);
    new LayerNorm(6).loadStateDict(readSafetensors(bytes, { prefix: 'ln1.' }));
    new GroupNorm(2, 6).loadStateDict(readSafetensors(bytes, { prefix: 'gn.' }));
    const inorm = new InstanceNorm2d(3, { affine: true, trackRunningStats: true });
    inorm.loadStateDict(readSafetensors(bytes, { prefix: 'in.' }));
    expect(inorm.stateDict().num_batches_tracked).toBe(golden.tensors['in.num_batches_tracked'].values[0]); // 0: PyTorch's InstanceNorm does not count
    expect(Array.from(inorm.stateDict().running_var as Float32Array)).toEqual(golden.tensors['in.running_var'].values);
    // what this package writes back has PyTorch's shapes, key for key
    const again = header(writeSafetensors(all));
    for (const [key, t] of Object.entries(header(bytes))) if (key !== '__metadata__') expect(again[key].shape).toEqual(t.shape);
  });
});
