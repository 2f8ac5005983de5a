/**
 * What the TF.js tests share: TF.js with its cpu backend (quiet), comparisons
 * in TF.js' test style (absolute tolerance, as tfjs' expectArraysClose), and
 * a check that a piece of work really ran this package's kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { expect } from 'vitest';
import { randn as seededRandn } from '../helpers.js';

export { tf };

/** Starts TF.js on a backend; the cpu backend's "install tfjs-node" banner is muted. */
export async function useBackend(name: string): Promise<void> {
  const warn = console.warn;
  console.warn = () => {};
  try {
    expect(await tf.setBackend(name)).toBe(true);
    await tf.ready();
    tf.dispose(tf.add(tf.zeros([1]), 1)); // the banner comes with the backend's first write
  } finally {
    console.warn = warn;
  }
}

function valuesOf(t: tf.Tensor | ArrayLike<number>): number[] {
  return Array.from(t instanceof tf.Tensor ? t.dataSync() : t);
}

/** |actual − expected| ≤ eps element by element (TF.js' expectTensorsClose, default 1e-3), and equal shapes for tensors. */
export function expectClose(actual: tf.Tensor | ArrayLike<number>, expected: tf.Tensor | ArrayLike<number>, eps = 1e-3): void {
  if (actual instanceof tf.Tensor && expected instanceof tf.Tensor) expect(actual.shape).toEqual(expected.shape);
  const a = valuesOf(actual),
    e = valuesOf(expected);
  expect(a.length).toBe(e.length);
  const bad = a.findIndex((v, i) => !(Math.abs(v - e[i]) <= eps));
  if (bad !== -1)
    expect.fail(
      `element ${bad}: ${a[bad]} is not within ${eps} of ${e[bad]} (actual ${JSON.stringify(a.slice(0, 8))}…, expected ${JSON.stringify(e.slice(0, 8))}…)`,
    );
}

/** Like expectClose with a tolerance relative to the expected values' largest magnitude. */
export function expectRelClose(actual: tf.Tensor | ArrayLike<number>, expected: tf.Tensor | ArrayLike<number>, rel: number): void {
  const scale = Math.max(1, ...valuesOf(expected).map(Math.abs));
  expectClose(actual, expected, rel * scale);
}

/** Runs f and returns its result and the names of the kernels it ran (tf.profile). */
export async function kernelsRun<T>(f: () => T | Promise<T>): Promise<{ result: T; kernelNames: string[] }> {
  let result!: T;
  const info = await tf.profile(async () => {
    result = await f();
    return result as unknown as tf.TensorContainer;
  });
  return { result, kernelNames: info.kernelNames };
}

/** Seeded standard-normal float32 values (the package tests' generator). */
export function randn(n: number, seed: number, mean = 0, std = 1): Float32Array {
  return seededRandn(n, seed, mean, std) as Float32Array;
}
