/**
 * Experiment 13: small batches. The MLP of experiment 1 with BatchNorm1d,
 * GroupNorm(32) or LayerNorm in its hidden blocks, trained at batch sizes from
 * 2 to 64. BatchNorm's batch statistics get noisy as the batch shrinks, and the
 * running statistics it tests with are averages of those noisy ones; GroupNorm
 * and LayerNorm normalize each image with its own statistics, whatever the batch.
 */
import type { Data, Dataset } from './data.js';
import { train, type RunResult } from './experiments.js';
import type { Base } from './lessons.js';

export const NORMS = [
  { key: 'batch', name: 'BatchNorm1d' },
  { key: 'group', name: 'GroupNorm(32)' },
  { key: 'layer', name: 'LayerNorm' },
] as const;

export type NormKey = (typeof NORMS)[number]['key'];

export interface SmallBatches {
  batchSizes: number[];
  epochs: number;
  /** Training images of every run (a subset: small batches make many steps). */
  trainSize: number;
  /** The learning rate at batch size 64; at B it is lr·B/64 (the linear scaling rule). */
  lr: number;
  runs: Array<{ norm: NormKey; batchSize: number; lr: number; run: RunResult }>;
}

/** The first n rows of a dataset (a view). */
export function head(ds: Dataset, n: number): Dataset {
  const m = Math.min(n, ds.n);
  return { ...ds, n: m, images: ds.images.subarray(0, m * ds.features), labels: ds.labels.subarray(0, m) };
}

/**
 * Every norm at every batch size, on the first `trainSize` training images, the
 * same epochs, initial weights and image order; the learning rate scales with
 * the batch (lr·B/64), so every run takes the same total step length per epoch.
 */
export function smallBatches(base: Base, options: { batchSizes: number[]; trainSize: number; epochs: number }): SmallBatches {
  const data: Data = { ...base.data, train: head(base.data.train, options.trainSize) };
  const runs = options.batchSizes.flatMap((batchSize) =>
    NORMS.map(({ key, name }) => {
      const lr = (base.lr * batchSize) / 64;
      const run = train({
        ...base,
        data,
        epochs: options.epochs,
        batchSize,
        lr,
        label: `${name}, batch ${batchSize}`,
        batchNorm: true,
        norm: key === 'batch' ? undefined : key,
      });
      return { norm: key, batchSize, lr, run };
    }),
  );
  return { batchSizes: options.batchSizes, epochs: options.epochs, trainSize: data.train.n, lr: base.lr, runs };
}
