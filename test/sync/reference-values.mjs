// The batches of the SyncBatchNorm tests and their comparison, in plain
// JavaScript so that worker_threads and MPI processes share them.

/** Splits of `n` samples over `ranks` ranks: equal (when it divides), unequal, one rank empty. */
export function splits(n, ranks) {
  const out = [];
  if (n % ranks === 0) out.push({ name: 'equal', sizes: Array(ranks).fill(n / ranks) });
  if (ranks > 1) {
    const unequal = Array.from({ length: ranks }, (_, r) => r + 1);
    unequal[ranks - 1] += n - unequal.reduce((a, b) => a + b, 0);
    out.push({ name: 'unequal', sizes: unequal });
    const empty = Array.from({ length: ranks }, (_, r) => (r === 1 ? 0 : Math.floor(n / (ranks - 1))));
    empty[0] += n - empty.reduce((a, b) => a + b, 0);
    out.push({ name: 'one empty', sizes: empty });
  }
  return out;
}

/** Seeded uniform values in [offset − 1, offset + 1) (mulberry32). */
export function values(count, seed, offset = 0) {
  let a = seed >>> 0;
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = 2 * (((t ^ (t >>> 14)) >>> 0) / 4294967296) - 1 + offset;
  }
  return out;
}

/** Samples [from, to) (dimension 0) of a row-major array of `shape`. */
export function slice(data, shape, from, to) {
  const row = shape.slice(1).reduce((a, b) => a * b, 1);
  return Array.from({ length: (to - from) * row }, (_, i) => data[from * row + i]);
}

/** The worst |a − b| / (1 + |b|) over two arrays (Infinity for different lengths or a NaN). */
export function worst(a, b) {
  if (a.length !== b.length) return Infinity;
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return Number.isNaN(w) ? Infinity : w;
}

/** The cases the thread and process tests run for `ranks` ranks: a few shapes, every split. */
export function casesFor(ranks) {
  const shapes = [
    { shape: [12, 5], layout: 'channelsFirst', dtype: 'float32' },
    { shape: [12, 4, 3, 5], layout: 'channelsFirst', dtype: 'float32' },
    { shape: [12, 3, 5, 4], layout: 'channelsLast', dtype: 'float32' },
    { shape: [12, 2, 3, 2, 2], layout: 'channelsFirst', dtype: 'float64' },
  ];
  return shapes.flatMap((base, i) => splits(base.shape[0], ranks).map(({ name, sizes }) => ({ ...base, sizes, seed: 100 + i, name })));
}
