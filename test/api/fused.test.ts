/**
 * Issue 21, item 1: relu(bn(x) + residual) in the modules and the functional
 * forms, training and eval, forward and backward (the residual's gradient
 * too), every rank, both layouts, float32 and float64, sync and async:
 * PyTorch autograd's values (test/fixtures/generate_fused.py).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  backendInfo,
  batchNorm,
  batchNormBackward,
  getNumThreads,
  setNumThreads,
  type FloatArray,
} from '../../lib/index.js';

interface Case {
  shape: number[];
  training: boolean;
  relu: boolean;
  residual: boolean;
  affine: boolean;
  init: { running_mean: number[]; running_var: number[]; weight: number[] | null; bias: number[] | null };
  x: number[];
  r: number[] | null;
  dy: number[];
  y: number[];
  dx: number[];
  dr: number[] | null;
  dweight: number[] | null;
  dbias: number[] | null;
  running_mean: number[];
  running_var: number[];
}
const { cases } = JSON.parse(readFileSync(new URL('../fixtures/fused.json', import.meta.url), 'utf8')) as { cases: Case[] };

/** Channels-first values to channels-last (N, …S, C), and the shape. */
function toLast(v: number[], shape: number[]): { v: number[]; shape: number[] } {
  const [N, C] = shape,
    S = shape.slice(2).reduce((a, b) => a * b, 1),
    out = new Array<number>(v.length);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) out[(n * S + s) * C + c] = v[(n * C + c) * S + s];
  return { v: out, shape: [N, ...shape.slice(2), C] };
}

function close(got: ArrayLike<number>, want: number[], tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  expect(err, what).toBeLessThan(tol);
}

const MODULES = { 2: BatchNorm1d, 3: BatchNorm1d, 4: BatchNorm2d, 5: BatchNorm3d } as const;
const LAST = { 2: 'NC', 3: 'NLC', 4: 'NHWC', 5: 'NDHWC' } as const;

const label = (c: Case) =>
  `${c.relu ? 'relu(' : ''}bn${c.shape.length - 2 || ''}(x)${c.residual ? ' + r' : ''}${c.relu ? ')' : ''} [${c.shape}] ${c.training ? 'training' : 'eval'}${c.affine ? '' : ', affine false'}`;

describe('fused ReLU and residual add: PyTorch autograd', () => {
  for (const c of cases)
    for (const last of [false, true])
      for (const [T, tol] of [
        [Float64Array, 1e-12],
        [Float32Array, 2e-5],
      ] as const)
        it(`${label(c)}${last ? ' channels-last' : ''} ${T.name}`, async () => {
          const rank = c.shape.length as 2 | 3 | 4 | 5;
          const lay = (v: number[]) => (last ? toLast(v, c.shape).v : v);
          const shape = last ? toLast(c.x, c.shape).shape : c.shape;
          const t = (v: number[]) => ({ data: T.from(lay(v)) as FloatArray, shape });
          const Module = MODULES[rank];
          const bn = new Module(c.shape[1], {
            activation: c.relu ? 'relu' : null,
            affine: c.affine,
            dtype: T === Float64Array ? 'float64' : 'float32',
            layout: last ? LAST[rank] : undefined,
          } as never);
          bn.runningMean!.set(c.init.running_mean);
          bn.runningVar!.set(c.init.running_var);
          if (c.affine) {
            bn.weight!.data.set(c.init.weight!);
            bn.bias!.data.set(c.init.bias!);
          }
          bn.train(c.training);
          const x = t(c.x),
            r = c.r ? t(c.r) : null,
            dy = t(c.dy);
          const y = rank === 4 && !last ? await bn.forwardAsync(x, { residual: r }) : bn.forward(x, { residual: r });
          close(y.data, lay(c.y), tol, 'y');
          close(bn.runningMean!, c.running_mean, tol, 'running_mean');
          close(bn.runningVar!, c.running_var, tol, 'running_var');
          const g = rank === 4 && !last ? await bn.backwardAsync(dy) : bn.backward(dy);
          close(g.data, lay(c.dx), tol, 'dx');
          if (c.dr) close(g.gradResidual!.data, lay(c.dr), tol, 'dr');
          else expect(g.gradResidual).toBeUndefined();
          if (c.affine) {
            close(bn.weight!.grad!, c.dweight!, tol, 'dweight');
            close(bn.bias!.grad!, c.dbias!, tol, 'dbias');
          }

          // The functional forms.
          const rm = T.from(c.init.running_mean),
            rv = T.from(c.init.running_var);
          const w = c.affine ? T.from(c.init.weight!) : null,
            b = c.affine ? T.from(c.init.bias!) : null;
          const layout = last ? 'channelsLast' : 'channelsFirst';
          const f = batchNorm(x, rm, rv, { weight: w, bias: b, training: c.training, layout, activation: c.relu ? 'relu' : null, residual: r });
          close(f.data, lay(c.y), tol, 'functional y');
          const fg = batchNormBackward(dy, x, {
            weight: w,
            saveMean: f.saveMean,
            saveInvstd: f.saveInvstd,
            training: c.training,
            layout,
            activation: c.relu ? 'relu' : null,
            output: f.data,
            residual: c.residual,
          });
          close(fg.gradInput.data, lay(c.dx), tol, 'functional dx');
          if (c.dr) close(fg.gradResidual!.data, lay(c.dr), tol, 'functional dr');
          if (c.affine) close(fg.gradWeight, c.dweight!, tol, 'functional dweight');
        });
});

describe('fused ReLU and residual: arguments', () => {
  const x = { data: Float32Array.from({ length: 24 }, (_, i) => Math.sin(i)), shape: [4, 3, 2, 1] };
  it('a residual of another shape or type, or one that is the output, is refused; a call that throws changes nothing', () => {
    const bn = new BatchNorm2d(3, { activation: 'relu' });
    expect(() => bn.forward(x, { residual: { data: new Float32Array(24), shape: [4, 3, 1, 2] } })).toThrow(
      /Expected residual of the input's shape \[4, 3, 2, 1\] but received shape \[4, 3, 1, 2\]/,
    );
    expect(() => bn.forward(x, { residual: { data: new Float64Array(24) as unknown as Float32Array, shape: x.shape } })).toThrow(TypeError);
    const out = new Float32Array(24);
    expect(() => bn.forward(x, { out, residual: { data: out, shape: x.shape } })).toThrow(/not to share memory/);
    expect(bn.numBatchesTracked).toBe(0);
    expect(() => new BatchNorm2d(3, { activation: 'gelu' as never })).toThrow(
      /Expected one of relu for activation of BatchNorm2d but received the string "gelu"/,
    );
    expect(() => batchNormBackward(x, x, { saveMean: new Float32Array(3), saveInvstd: new Float32Array(3), activation: 'relu' })).toThrow(/for output/);
  });

  it('the backward masks dy by the saved output: y written over in place by this package throws', () => {
    const bn = new BatchNorm2d(3, { activation: 'relu' }),
      xi = { data: x.data.slice(), shape: x.shape };
    bn.forward(xi, { out: xi.data });
    expect(() => bn.backward(x)).toThrow(/overwrote/);
  });
});

/**
 * The fused ops run inside the kernels' passes: on the native and WebAssembly
 * paths the fused forward is bitwise the plain forward's y followed by
 * max(y + r, 0) in the dtype, and the fused backward bitwise the plain
 * backward of dy·(y > 0) (whose mask is also the residual's gradient), on
 * shapes reaching each kernel path, for 1 and 2 threads (test/native/fused_test.cc
 * checks every ISA table). The pure-JS path computes y + r before rounding:
 * there, within float tolerance.
 */
describe('fused ReLU and residual add: the plain kernels followed by the separate passes', () => {
  const exact = backendInfo().backend !== 'js';
  const threadsBefore = getNumThreads();
  const shapes = [
    [37, 21],
    [6, 40, 5, 7],
    [40, 12, 3, 3],
    [3, 5, 37],
    [16, 8, 56, 56],
  ];
  const layouts = ['channelsFirst', 'channelsLast'] as const;
  for (const shape of shapes)
    for (const layout of layouts)
      for (const T of [Float32Array, Float64Array])
        it(`[${shape}] ${layout} ${T.name}`, () => {
          const numel = shape.reduce((a, b) => a * b, 1);
          const make = (n: number, f: (i: number) => number): FloatArray => {
            const a = new T(n);
            for (let i = 0; i < n; i++) a[i] = f(i);
            return a;
          };
          const map = (src: FloatArray, f: (v: number, i: number) => number) => make(src.length, (i) => f(src[i], i));
          const C = layout === 'channelsLast' ? shape[shape.length - 1] : shape[1];
          const v = (seed: number) => make(numel, (i) => Math.sin(i * 0.37 + seed) * (1 + (i % 5)));
          const x = { data: v(1), shape },
            r = { data: v(2), shape },
            dy = { data: v(3), shape };
          const weight = make(C, (c) => 1 + 0.1 * c),
            bias = make(C, (c) => 0.05 * c - 0.3);
          const round = (a: number) => (T === Float32Array ? Math.fround(a) : a);
          const eq = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => {
            if (exact) expect(Buffer.from((got as FloatArray).buffer).equals(Buffer.from((want as FloatArray).buffer)), what).toBe(true);
            else close(got, Array.from(want), T === Float32Array ? 1e-5 : 1e-12, what);
          };
          for (const threads of [1, 2]) {
            setNumThreads(threads);
            for (const training of [true, false]) {
              const rm = () => make(C, (c) => 0.01 * c),
                rv = () => make(C, (c) => 1 + 0.02 * c);
              const plain = batchNorm(x, rm(), rv(), { weight, bias, training, layout });
              const want = map(plain.data, (y, i) => Math.max(round(y + r.data[i]), 0));
              const fused = batchNorm(x, rm(), rv(), { weight, bias, training, layout, activation: 'relu', residual: r });
              eq(fused.data, want, `y, threads ${threads}, training ${training}`);
              const masked = { data: map(dy.data, (d, i) => (fused.data[i] > 0 ? d : 0)), shape };
              const common = { weight, saveMean: plain.saveMean, saveInvstd: plain.saveInvstd, training, layout };
              const pg = batchNormBackward(masked, x, common);
              const fg = batchNormBackward(dy, x, { ...common, activation: 'relu', output: fused.data, residual: true });
              eq(fg.gradInput.data, pg.gradInput.data, `dx, threads ${threads}, training ${training}`);
              eq(fg.gradWeight!, pg.gradWeight!, 'gradWeight');
              // The mask is exact on every path (dy or 0).
              expect(Buffer.from(fg.gradResidual!.data.buffer).equals(Buffer.from(masked.data.buffer)), 'gradResidual').toBe(true);
            }
          }
          setNumThreads(threadsBefore);
        }, 180_000);
});
