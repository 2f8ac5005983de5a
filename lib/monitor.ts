/**
 * A ready-made activation and gradient monitor (seed 004's "Performance
 * Monitoring and Analysis"): forward and backward hooks on each module that
 * record, per call, the mean, std, min and max of the output and the norm,
 * mean and std of the output's gradient, each in one pass over the values
 * (Welford's update in float64). The records are plain data (JSON-ready).
 */
import type { BatchNormBase } from './batchnorm.js';
import { typeError } from './check.js';
import type { RemovableHandle } from './hooks.js';
import type { Tensor } from './tensor.js';

/** One forward: statistics of the output. std is the population one (divided by n). */
export interface ForwardRecord {
  module: string;
  /** This module's forward count, from 0. */
  call: number;
  mean: number;
  std: number;
  min: number;
  max: number;
}

/** One backward: statistics of the gradient of the output (dy). */
export interface BackwardRecord {
  module: string;
  call: number;
  /** Euclidean norm √Σdy². */
  norm: number;
  mean: number;
  std: number;
}

export interface Monitor {
  /** The records so far, in call order (the arrays the monitor appends to). */
  readonly forward: ForwardRecord[];
  readonly backward: BackwardRecord[];
  /** Plain copies: `{ forward, backward }`. */
  data(): { forward: ForwardRecord[]; backward: BackwardRecord[] };
  /** Forgets the records (the counts start again from 0). */
  clear(): void;
  /** Removes the hooks: the modules run as without a monitor. */
  remove(): void;
}

/** Mean, population std, min, max and Σv² of a, in one pass (Welford's update, float64). */
function moments(a: ArrayLike<number>): { mean: number; std: number; min: number; max: number; sumSq: number } {
  let mean = 0,
    m2 = 0,
    min = Infinity,
    max = -Infinity,
    sumSq = 0;
  const n = a.length;
  for (let i = 0; i < n; i++) {
    const v = a[i];
    const d = v - mean;
    mean += d / (i + 1);
    m2 += d * (v - mean);
    if (v < min) min = v;
    if (v > max) max = v;
    sumSq += v * v;
  }
  if (n === 0) return { mean: NaN, std: NaN, min: NaN, max: NaN, sumSq: 0 };
  return { mean, std: Math.sqrt(m2 / n), min, max, sumSq };
}

/**
 * Monitors `modules` (an array, named by index, or an object, named by key)
 * until `remove()`.
 */
export function monitor(modules: readonly BatchNormBase[] | Readonly<Record<string, BatchNormBase>>): Monitor {
  if (typeof modules !== 'object' || modules === null) throw typeError('modules', 'an array or an object of modules', modules);
  const entries = Object.entries(modules) as Array<[string, BatchNormBase]>;
  for (const [name, m] of entries)
    if (typeof m?.registerForwardHook !== 'function')
      throw typeError(`modules[${JSON.stringify(name)}]`, 'a module (BatchNorm1d, BatchNorm2d, BatchNorm3d)', m);
  const forward: ForwardRecord[] = [],
    backward: BackwardRecord[] = [];
  const counts = new Map<string, { f: number; b: number }>();
  const handles: RemovableHandle[] = [];
  for (const [name, m] of entries) {
    counts.set(name, { f: 0, b: 0 });
    handles.push(
      m.registerForwardHook((_m: unknown, _x: Tensor, y: Tensor) => {
        const { mean, std, min, max } = moments(y.data);
        forward.push({ module: name, call: counts.get(name)!.f++, mean, std, min, max });
      }),
      m.registerBackwardHook((_m: unknown, _dx: Tensor, dy: Tensor) => {
        const { mean, std, sumSq } = moments(dy.data);
        backward.push({ module: name, call: counts.get(name)!.b++, norm: Math.sqrt(sumSq), mean, std });
      }),
    );
  }
  return {
    forward,
    backward,
    data: () => ({ forward: forward.map((r) => ({ ...r })), backward: backward.map((r) => ({ ...r })) }),
    clear: () => {
      forward.length = 0;
      backward.length = 0;
      for (const c of counts.values()) c.f = c.b = 0;
    },
    remove: () => {
      for (const h of handles) h.remove();
    },
  };
}
