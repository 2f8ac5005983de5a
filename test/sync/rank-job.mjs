// One rank's part of a SyncBatchNorm test, and the same steps on the whole
// batch through one BatchNorm: plain JavaScript, so that worker_threads and
// MPI processes run exactly what the in-thread tests run. `pkg` is the
// package (lib/ in vitest, dist/ in workers and processes).
import { slice, values } from './reference-values.mjs';

const channelsOf = (c) => (c.layout === 'channelsLast' ? c.shape[c.shape.length - 1] : c.shape[1]);

function data(c) {
  const T = c.dtype === 'float64' ? Float64Array : Float32Array;
  const numel = c.shape.reduce((a, b) => a * b, 1);
  return { T, x: T.from(values(numel, c.seed, 3)), dy: T.from(values(numel, c.seed + 1)) };
}

function init(m, C) {
  for (let i = 0; i < C; i++) {
    m.weight.data[i] = 1 + 0.1 * i;
    m.bias.data[i] = 0.05 * i - 0.1;
  }
}

const TWO_STEPS = 2;

/** What a test compares: the outputs as plain numbers, and the module's gradients and statistics. */
function result(m, y, dx, z) {
  return {
    y: Array.from(y.data),
    dx: Array.from(dx.data),
    z: Array.from(z.data),
    weightGrad: Array.from(m.weight.grad),
    biasGrad: Array.from(m.bias.grad),
    runningMean: Array.from(m.runningMean),
    runningVar: Array.from(m.runningVar),
    numBatchesTracked: m.numBatchesTracked,
  };
}

/** Two training steps (forward, backward) and an eval forward of this rank's slice; the gradients summed over ranks. */
export async function runRank(pkg, collective, c, { convert = false } = {}) {
  const { T, x, dy } = data(c);
  const C = channelsOf(c);
  const from = c.sizes.slice(0, collective.rank).reduce((a, b) => a + b, 0),
    to = from + c.sizes[collective.rank];
  const shape = [to - from, ...c.shape.slice(1)];
  const xs = { data: T.from(slice(x, c.shape, from, to)), shape };
  const dys = { data: T.from(slice(dy, c.shape, from, to)), shape };
  const options = { layout: c.layout, dtype: c.dtype, momentum: 0.2 };
  const m = convert ? pkg.SyncBatchNorm.convert(new pkg.BatchNorm2d(C, options), collective) : new pkg.SyncBatchNorm(C, collective, options);
  init(m, C);
  let y, dx;
  for (let step = 0; step < TWO_STEPS; step++) {
    y = await m.forward(xs);
    dx = await m.backward(dys);
  }
  await pkg.allReduceGradients(m.parameters(), collective, { op: 'sum' });
  m.eval();
  const z = await m.forward(xs);
  return result(m, y, dx, z);
}

/** The same steps on the whole batch through one BatchNorm1d/2d/3d. */
export function runWhole(pkg, c) {
  const { x, dy } = data(c);
  const C = channelsOf(c);
  const Module = c.shape.length <= 3 ? pkg.BatchNorm1d : c.shape.length === 4 ? pkg.BatchNorm2d : pkg.BatchNorm3d;
  const m = new Module(C, { layout: c.layout, dtype: c.dtype, momentum: 0.2 });
  init(m, C);
  let y, dx;
  for (let step = 0; step < TWO_STEPS; step++) {
    y = m.forward({ data: x, shape: c.shape });
    dx = m.backward({ data: dy, shape: c.shape });
  }
  m.eval();
  const z = m.forward({ data: x, shape: c.shape });
  return result(m, y, dx, z);
}
