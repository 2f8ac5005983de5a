/**
 * Experiment 5: time per training epoch of the BatchNorm model on the native
 * path and on the pure-JS path. The package picks its backend once, when it
 * loads (BATCHNORM_BACKEND=native|js), so each backend is timed in a child
 * process of its own: `node demo/dist/timing.js '<json options>'` prints one
 * JSON line.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { backendInfo } from 'batchnorm';
import { loadData } from './data.js';
import { batchBounds, makeOptimizer, type OptimizerName } from './experiments.js';
import { bnClock, mlp } from './model.js';
import { softmaxCrossEntropy } from './nn.js';
import { Rng } from './rng.js';

export interface TimingOptions {
  dataDir?: string;
  trainSize: number;
  testSize: number;
  seed: number;
  batchSize: number;
  lr: number;
  optimizer: OptimizerName;
  /** Untimed steps first, so that both paths are timed after the JIT has warmed up. */
  warmupSteps: number;
}

export interface TimingResult {
  backend: 'native' | 'wasm' | 'js';
  isa: string;
  threads: number;
  /** Wall time of one epoch of training (forward, backward, optimizer step), ms. */
  epochMs: number;
  /** The part of it spent inside BatchNorm forward and backward calls, ms. */
  bnMs: number;
  bnCalls: number;
  steps: number;
  trainSize: number;
}

export type BackendTiming = { ok: true; result: TimingResult } | { ok: false; backend: 'native' | 'js'; reason: string };

/** Times one epoch in this process, on whichever backend the package loaded. */
export function timeEpoch(o: TimingOptions): TimingResult {
  const data = loadData({ dir: o.dataDir, trainSize: o.trainSize, testSize: o.testSize, seed: o.seed });
  const ds = data.train;
  const rng = new Rng(o.seed);
  const model = mlp([ds.features, 256, 128, data.classes], { batchNorm: true, rng: rng.fork() });
  const opt = makeOptimizer(model, o.optimizer, o.lr);
  const bounds = batchBounds(ds.n, o.batchSize).filter(([s, e]) => e - s <= o.batchSize);
  const dlogits = new Float32Array(o.batchSize * data.classes);
  const step = (s: number, e: number): void => {
    const n = e - s;
    opt.zeroGrad();
    const logits = model.forward(ds.images.subarray(s * ds.features, e * ds.features), n);
    const g = dlogits.subarray(0, n * data.classes);
    softmaxCrossEntropy(logits, ds.labels.subarray(s, e), n, data.classes, g);
    model.backward(g, n);
    opt.step();
  };
  model.train();
  for (let i = 0; i < o.warmupSteps; i++) step(...bounds[i % bounds.length]);
  bnClock.ms = 0;
  bnClock.calls = 0;
  const t0 = performance.now();
  for (const [s, e] of bounds) step(s, e);
  const epochMs = performance.now() - t0;
  const info = backendInfo();
  return {
    backend: info.backend,
    isa: info.isa,
    threads: info.threads,
    epochMs,
    bnMs: bnClock.ms,
    bnCalls: bnClock.calls,
    steps: bounds.length,
    trainSize: ds.n,
  };
}

/** The compiled timing script next to this module: itself when compiled, dist/timing.js when run from the TypeScript source. */
export function timingScript(): string | null {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return here;
  const compiled = fileURLToPath(new URL('./dist/timing.js', import.meta.url));
  return existsSync(compiled) ? compiled : null;
}

/** Runs timeEpoch in a child process with BATCHNORM_BACKEND set; never throws. */
export function timeBackend(backend: 'native' | 'js', o: TimingOptions): BackendTiming {
  const script = timingScript();
  if (!script) return { ok: false, backend, reason: 'the compiled demo (demo/dist/timing.js) is missing: build it with `tsc -p demo`' };
  const child = spawnSync(process.execPath, [script, JSON.stringify(o)], {
    env: { ...process.env, BATCHNORM_BACKEND: backend },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (child.status === 0) {
    const line = child.stdout.trim().split('\n').pop() ?? '';
    try {
      return { ok: true, result: JSON.parse(line) as TimingResult };
    } catch {
      return { ok: false, backend, reason: `unexpected output from the timing process: ${line.slice(0, 200)}` };
    }
  }
  const err = (child.error?.message ?? child.stderr ?? '').trim();
  // Node prints the throwing source line first; the message is on the line that starts with the error's name.
  const message = err
    .split('\n')
    .find((l) => /^[A-Za-z]*Error: /.test(l))
    ?.replace(/^[A-Za-z]*Error: /, '');
  return { ok: false, backend, reason: (message ?? (err.split('\n')[0] || `exit code ${child.status}`)).slice(0, 400) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const options = JSON.parse(process.argv[2] ?? '{}') as TimingOptions;
  process.stdout.write(`${JSON.stringify(timeEpoch(options))}\n`);
}
