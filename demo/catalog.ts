/** The demo's experiments: number (the report's order), the name `--only` takes, and the title of its section. */
export const EXPERIMENTS = [
  { n: 1, name: 'compare', title: 'With vs without BatchNorm at the same learning rate' },
  { n: 2, name: 'sweep', title: 'A learning-rate sweep: where each model diverges' },
  { n: 3, name: 'pitfall', title: 'The pitfall: testing in train mode' },
  { n: 4, name: 'running', title: 'Running mean and variance during training' },
  { n: 5, name: 'speed', title: 'Time per epoch: native addon vs pure JS, and BatchNorm’s share' },
  { n: 6, name: 'cnn', title: 'A small CNN: Conv → BatchNorm2d → ReLU' },
  { n: 7, name: 'init', title: 'Sensitivity to the initial weights (×0.1, ×10)' },
  { n: 8, name: 'depth', title: 'Depth: a 10-layer MLP' },
  { n: 9, name: 'shift', title: 'Internal covariate shift made visible' },
  { n: 10, name: 'gradients', title: 'Gradient flow: the gradient norm of every layer' },
  { n: 11, name: 'placement', title: 'Placement: Conv → BN → ReLU vs Conv → ReLU → BN' },
  { n: 12, name: 'dropout', title: 'BatchNorm with dropout, and each alone' },
  { n: 13, name: 'norms', title: 'Small batches: BatchNorm vs GroupNorm vs LayerNorm' },
  { n: 14, name: 'lstm', title: 'BatchNorm in a recurrent network: an LSTM reading MNIST row by row' },
  { n: 15, name: 'monitor', title: 'Monitoring: each BatchNorm layer’s output and gradient over training' },
] as const;

export type ExperimentName = (typeof EXPERIMENTS)[number]['name'];

/** `--only 1,3,init`: the experiments' numbers, checked. */
export function parseOnly(spec: string): Set<number> {
  const out = new Set<number>();
  for (const part of spec.split(',').map((s) => s.trim())) {
    const e = EXPERIMENTS.find((x) => String(x.n) === part || x.name === part);
    if (!e)
      throw new RangeError(`--only expects experiment numbers 1-${EXPERIMENTS.length} or names (${EXPERIMENTS.map((x) => x.name).join(', ')}), got "${part}"`);
    out.add(e.n);
  }
  return out;
}

export function titleOf(n: number): string {
  return EXPERIMENTS.find((e) => e.n === n)!.title;
}
