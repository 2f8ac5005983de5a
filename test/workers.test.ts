/**
 * worker_threads: the addon is context-aware (one instance per thread, no
 * mutable statics but the thread pool and the ISA choice, both shared and
 * safe): it loads in several workers at once, and four workers training at
 * the same time — sync and async calls, above the size that wakes the pool,
 * each changing the process-wide thread count under the others' feet — get
 * bitwise the results the same jobs get one after another. A worker loaded
 * and terminated again and again leaves the others working.
 *
 * The workers import the compiled package (dist/; `npm test` builds it first).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { expect, it } from 'vitest';
import { backendInfo } from '../lib/index.js';

const dist = new URL('../dist/index.js', import.meta.url);

/**
 * One training job, the same text in every worker: BatchNorm2d in NCHW and
 * NHWC, float32 and float64, forward (training and eval) and backward, sync
 * and async, on 8·16·48·48 = 294 912 elements (≥ 2¹⁸: the pool runs). Posts
 * a SHA-256 of the bytes of every output, running statistic and gradient.
 */
const JOB = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const bn = await import(workerData.dist);
  const { seed, threads } = workerData;
  let a = seed >>> 0;
  const rand = () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const hash = require('node:crypto').createHash('sha256');
  const keep = (arr) => hash.update(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
  for (const [layout, dtype] of [['NCHW', 'float32'], ['NHWC', 'float64']]) {
    const T = dtype === 'float64' ? Float64Array : Float32Array;
    const C = 16, shape = layout === 'NCHW' ? [8, C, 48, 48] : [8, 48, 48, C], numel = 8 * C * 48 * 48;
    const m = new bn.BatchNorm2d(C, { layout, dtype, momentum: 0.2 });
    const x0 = new T(numel), dy0 = new T(numel);
    for (let i = 0; i < numel; i++) { x0[i] = 3 * rand() - 1 + seed; dy0[i] = rand() - 0.5; }
    for (let step = 0; step < 3; step++) {
      bn.setNumThreads(threads[step % threads.length]);
      const x = { data: x0.map((v, i) => (i % 7 === step ? v * 2 : v)), shape };
      const dy = { data: dy0, shape };
      m.train();
      const y = step % 2 ? await m.forwardAsync(x) : m.forward(x);
      const dx = step % 2 ? m.backward(dy) : await m.backwardAsync(dy);
      m.eval();
      const z = step % 2 ? m.forward(x) : await m.forwardAsync(x);
      for (const arr of [y.data, dx.data, z.data, m.runningMean, m.runningVar, m.weight.grad, m.bias.grad]) keep(arr);
    }
  }
  parentPort.postMessage({ info: bn.backendInfo(), digest: hash.digest('hex') });
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
`;

interface Result {
  info: { backend: string; isa: string };
  digest: string;
}

function run(seed: number, threads: number[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const w = new Worker(JOB, { eval: true, workerData: { dist: dist.href, seed, threads } });
    w.once('message', (m) => {
      if (m.error) reject(new Error(m.error));
      else resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
    w.once('exit', (code) => code !== 0 && code !== 1 && reject(new Error(`worker exited with ${code}`)));
  });
}

it('the compiled package is there (npm test builds it first)', () => {
  expect(existsSync(fileURLToPath(dist)), 'dist/index.js: run `npx tsc -p tsconfig.json`').toBe(true);
});

it('four workers training at once get bitwise the results of the same jobs run one after another', async () => {
  const jobs = [
    [1, [1, 2]],
    [2, [2, 1, 3]],
    [3, [4]],
    [4, [1]],
  ] as Array<[number, number[]]>;
  const serial: Result[] = [];
  for (const [seed, threads] of jobs) serial.push(await run(seed, threads));
  const concurrent = await Promise.all(jobs.map(([seed, threads]) => run(seed, threads)));
  for (let i = 0; i < jobs.length; i++) {
    expect(concurrent[i].info.backend).toBe(backendInfo().backend);
    expect(concurrent[i].info.isa).toBe(backendInfo().isa);
    expect(concurrent[i].digest, `job ${i}: concurrent and serial results differ`).toBe(serial[i].digest);
  }
  // Different seeds, different results (the comparison is not vacuous).
  expect(new Set(serial.map((r) => r.digest)).size).toBe(jobs.length);
}, 180_000);

it('loads in workers started and terminated one after another while another trains', async () => {
  const long = run(5, [2]);
  for (let i = 0; i < 6; i++) {
    const w = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads'); import(workerData.dist).then((bn) => parentPort.postMessage(bn.backendInfo().backend));`,
      {
        eval: true,
        workerData: { dist: dist.href },
      },
    );
    const [backend] = await new Promise<unknown[]>((resolve, reject) => {
      w.once('message', (m) => resolve([m]));
      w.once('error', reject);
    });
    expect(backend).toBe(backendInfo().backend);
    await w.terminate();
  }
  const again = await run(5, [2]);
  expect((await long).digest).toBe(again.digest);
}, 180_000);
