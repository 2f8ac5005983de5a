/**
 * `npm run demo`: trains an MLP on MNIST with and without BatchNorm and shows
 * what BatchNorm does, in the fifteen experiments of catalog.ts, on the terminal and in
 * demo-report/index.html. `node demo/dist/main.js --help` lists the options.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { backendInfo } from 'batchnorm';
import { loadData, type Data } from './data.js';
import { EXPERIMENTS, parseOnly } from './catalog.js';
import { pitfall, train, type OptimizerName, type Pitfall, type RunResult } from './experiments.js';
import * as lessons from './lessons.js';
import type { Net } from './model.js';
import { makeProgress } from './progress.js';
import { dashboardRecorder, type Dashboard } from './monitoring.js';
import { lstmExperiment } from './lstm.js';
import { smallBatches } from './norms.js';
import { renderHtml, summarizeRun, terminalSummary, type LessonsSummary, type Summary } from './report.js';
import { timeBackend, type TimingOptions } from './timing.js';

export type { Summary } from './report.js';

export interface DemoOptions {
  /** Smaller data and fewer epochs: under a minute. */
  quick?: boolean;
  seed?: number;
  epochs?: number;
  /** Learning rate of experiment 1 (and of the pitfall and running-statistics experiments). */
  lr?: number;
  optimizer?: OptimizerName;
  /** Learning rates of experiment 2. */
  sweep?: number[];
  batchSize?: number;
  /** Training images (0: all). */
  trainSize?: number;
  /** Test images (0: all). */
  testSize?: number;
  /** A directory of IDX files instead of the `mnist` package's digits. */
  dataDir?: string;
  /** Where the report goes (default demo-report). */
  outDir?: string;
  /** Time the native and JS paths in child processes (default true). */
  timing?: boolean;
  /** Experiment 6: the small CNN with and without BatchNorm2d (default true). */
  cnn?: boolean;
  /** The experiments to run, by number (catalog.ts); default all. */
  only?: Iterable<number>;
  /** Test batch sizes for the train-mode pitfall. */
  pitfallBatchSizes?: number[];
  /** Progress bars on a terminal (default: when stdout is a TTY). */
  progress?: boolean;
  /** Where progress lines and the summary go; null: nowhere (default console.log). */
  log?: ((line: string) => void) | null;
  /** Shown in the report's footer. */
  commandLine?: string;
}

const DEFAULTS = {
  full: { trainSize: 8000, testSize: 2000, epochs: 6 },
  quick: { trainSize: 2000, testSize: 500, epochs: 2 },
  /** Experiment 1: the pair is also trained from this many other seeds, for the band of its accuracy chart. */
  bandSeeds: { full: 2, quick: 2 },
  /** Experiment 13: training images and epochs of each of its 15 runs (batches of 2 make many steps). */
  norms: { full: { trainSize: 1200, epochs: 2 }, quick: { trainSize: 500, epochs: 1 }, batchSizes: [2, 4, 8, 32, 64] },
  /** Experiment 14: the LSTM's size, data and Adam's rate (the recurrent loops are the demo's slowest code). */
  lstm: {
    full: { hidden: 32, trainSize: 2000, testSize: 500, epochs: 2 },
    quick: { hidden: 16, trainSize: 384, testSize: 200, epochs: 1 },
    lr: 0.01,
  },
  sgd: { lr: 0.1, sweep: [0.01, 0.1, 0.5, 1.0], quickSweep: [0.1, 1.0] },
  adam: { lr: 0.001, sweep: [0.0003, 0.001, 0.01, 0.1], quickSweep: [0.001, 0.1] },
};

const HELP = `Usage: npm run demo -- [options]    (or: node demo/dist/main.js [options])

Trains an MLP 784-256-128-10 (Linear → BatchNorm1d → ReLU blocks) on MNIST with
and without BatchNorm, and writes a report with one chart per experiment
(number, name for --only, what it shows):
${EXPERIMENTS.map((e) => `  ${String(e.n).padStart(2)}. ${e.name.padEnd(10)} ${e.title}`).join('\n')}

Options:
  --quick             ${DEFAULTS.quick.trainSize} training / ${DEFAULTS.quick.testSize} test images, ${DEFAULTS.quick.epochs} epochs, the sweep
                      only at ${DEFAULTS.sgd.quickSweep.join(' and ')} (Adam ${DEFAULTS.adam.quickSweep.join(' and ')})
  --seed N            seed of weights, data split and batch order (default 42)
  --epochs N          epochs per run (default ${DEFAULTS.full.epochs}; --quick: ${DEFAULTS.quick.epochs})
  --lr X              learning rate of experiment 1 (default ${DEFAULTS.sgd.lr}; Adam ${DEFAULTS.adam.lr})
  --optimizer NAME    sgd (with momentum 0.9, the default) or adam
  --sweep X,Y,...     learning rates of experiment 2 (default ${DEFAULTS.sgd.sweep.join(',')};
                      Adam ${DEFAULTS.adam.sweep.join(',')})
  --batch-size N      mini-batch size (default 64)
  --train N           training images (default ${DEFAULTS.full.trainSize}; 0: all)
  --test N            test images (default ${DEFAULTS.full.testSize}; 0: all)
  --data DIR          read IDX files from DIR (train-images-idx3-ubyte[.gz], train-labels-…,
                      t10k-images-…, t10k-labels-…) instead of the MNIST digits of the npm
                      package "mnist"; e.g. Fashion-MNIST from Debian's dataset-fashion-mnist:
                      --data /usr/share/datasets/fashion-mnist
  --out DIR           report directory (default demo-report)
  --only LIST         run only these experiments, by number or name: --only 1,3,init
  --no-timing         skip experiment 5 (the child processes that time each backend)
  --no-cnn            skip experiments 6 and 11 (the CNN)

  --no-progress       no progress bars
  -h, --help          this text

Sizes of their own: experiment 1 also trains its pair from ${DEFAULTS.bandSeeds.full} more seeds (the band);
13 trains 15 MLPs on the first ${DEFAULTS.norms.full.trainSize} training images for ${DEFAULTS.norms.full.epochs} epochs (--quick: ${DEFAULTS.norms.quick.trainSize}, ${DEFAULTS.norms.quick.epochs});
14 trains three LSTMs of ${DEFAULTS.lstm.full.hidden} units on ${DEFAULTS.lstm.full.trainSize} images for ${DEFAULTS.lstm.full.epochs} epochs with Adam ${DEFAULTS.lstm.lr}
(--quick: ${DEFAULTS.lstm.quick.hidden} units, ${DEFAULTS.lstm.quick.trainSize} images, ${DEFAULTS.lstm.quick.epochs} epoch).

Environment: BATCHNORM_BACKEND=native|wasm|js chooses the backend of the training runs.`;

function checkPositiveInt(name: string, v: number, allowZero = false): void {
  if (!Number.isInteger(v) || v < (allowZero ? 0 : 1)) throw new RangeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${v}`);
}

/** The options of a run, with every default filled in and checked. */
interface Config {
  quick: boolean;
  optimizer: OptimizerName;
  seed: number;
  epochs: number;
  lr: number;
  batchSize: number;
  trainSize: number;
  testSize: number;
  sweep: number[];
  only: Set<number>;
  pitfallSizes: number[];
  log: ((line: string) => void) | null;
  outDir: string;
  showProgress: boolean;
}

function resolveConfig(options: DemoOptions): Config {
  const quick = options.quick ?? false;
  const size = quick ? DEFAULTS.quick : DEFAULTS.full;
  const optimizer = options.optimizer ?? 'sgd';
  if (optimizer !== 'sgd' && optimizer !== 'adam') throw new RangeError(`optimizer must be sgd or adam, got ${String(optimizer)}`);
  const seed = options.seed ?? 42;
  const epochs = options.epochs ?? size.epochs;
  const lr = options.lr ?? DEFAULTS[optimizer].lr;
  const batchSize = options.batchSize ?? 64;
  const trainSize = options.trainSize ?? size.trainSize;
  const testSize = options.testSize ?? size.testSize;
  const sweep = [...new Set([...(options.sweep ?? DEFAULTS[optimizer][quick ? 'quickSweep' : 'sweep']), lr])].sort((a, b) => a - b);
  const pitfallSizes = options.pitfallBatchSizes ?? [2, 4, 8, 16, 32, 64, 256];
  const log = options.log === undefined ? (line: string) => console.log(line) : options.log;
  const outDir = resolve(options.outDir ?? 'demo-report');
  checkPositiveInt('seed', seed, true);
  checkPositiveInt('epochs', epochs);
  checkPositiveInt('batch size', batchSize);
  if (batchSize < 2) throw new RangeError('batch size must be at least 2: BatchNorm needs more than one value per channel in training mode');
  checkPositiveInt('train', trainSize, true);
  checkPositiveInt('test', testSize, true);
  for (const r of sweep) if (!(r > 0) || !Number.isFinite(r)) throw new RangeError(`learning rates must be positive, got ${r}`);
  const showProgress = options.progress ?? (process.stdout.isTTY === true && log !== null);
  const only = new Set(options.only ?? EXPERIMENTS.map((e) => e.n));
  for (const n of only) if (!EXPERIMENTS.some((e) => e.n === n)) throw new RangeError(`only: experiment ${n} does not exist (1-${EXPERIMENTS.length})`);
  if (options.timing === false) only.delete(5);
  if (options.cnn === false) {
    only.delete(6);
    only.delete(11);
  }
  return { quick, optimizer, seed, epochs, lr, batchSize, trainSize, testSize, sweep, only, pitfallSizes, log, outDir, showProgress };
}

/** One learning rate, trained with and without BatchNorm from the same weights and batches. */
interface Pair {
  lr: number;
  batchNorm: RunResult;
  plain: RunResult;
}

const fmt = (x: number): string => String(x);

/**
 * Experiments 1, 2 and 4 share their training: the MLP with and without
 * BatchNorm at every learning rate of the sweep. The pair at the main rate is
 * experiment 1, and its BatchNorm run records the running statistics of a few
 * channels (experiment 4).
 */
function trainSweep(
  cfg: Config,
  data: Data,
  rates: number[],
  withShift: boolean,
  withMonitor: boolean,
): { runs: Pair[]; shift: { batchNorm: lessons.Shift; plain: lessons.Shift } | null; dashboard: Dashboard | null } {
  const progress = makeProgress(cfg.showProgress, cfg.log);
  const runs: Pair[] = [];
  // Experiment 9 follows one unit of the second hidden layer of the main pair, about 40 times a run
  // (each record is a forward of 256 probe images: about four steps' forward passes).
  const every = lessons.recordEvery(data, cfg.batchSize, cfg.epochs, 40);
  const probe = lessons.probeOf(data);
  const recorders = withShift ? { batchNorm: lessons.shiftRecorder(probe, 1, 0, every), plain: lessons.shiftRecorder(probe, 1, 0, every) } : null;
  // Experiment 15 reads the package's monitor on the BatchNorms of the main BatchNorm run, about 60 times.
  const dash = withMonitor ? dashboardRecorder(lessons.recordEvery(data, cfg.batchSize, cfg.epochs, 60)) : null;
  const bnOnStep = (step: number, model: Net): void => {
    dash?.onStep(step);
    recorders?.batchNorm.onStep(step, model);
  };
  try {
    for (const r of rates) {
      const common = { data, lr: r, optimizer: cfg.optimizer, epochs: cfg.epochs, batchSize: cfg.batchSize, seed: cfg.seed };
      const main = r === cfg.lr;
      const bn = train({
        ...common,
        label: `lr ${fmt(r)} with BatchNorm`,
        batchNorm: true,
        watchChannels: main ? [0, 1, 2, 3] : undefined,
        onModel: main && dash ? (m) => dash.attach(m) : undefined,
        onStep: main ? bnOnStep : undefined,
        progress: progress.sink,
      });
      const plain = train({
        ...common,
        label: `lr ${fmt(r)} without`,
        batchNorm: false,
        onStep: main ? recorders?.plain.onStep : undefined,
        progress: progress.sink,
      });
      runs.push({ lr: r, batchNorm: bn, plain });
    }
  } finally {
    dash?.remove();
    progress.stop();
  }
  return { runs, shift: recorders && { batchNorm: recorders.batchNorm.shift, plain: recorders.plain.shift }, dashboard: dash?.dashboard ?? null };
}

/** Experiment 1's band: the pair at the main rate from other seeds (weights, batch order; the same data). */
function otherSeeds(cfg: Config, data: Data): Array<{ seed: number; batchNorm: number[]; plain: number[] }> {
  const progress = makeProgress(cfg.showProgress, cfg.log);
  try {
    return Array.from({ length: DEFAULTS.bandSeeds[cfg.quick ? 'quick' : 'full'] }, (_, i) => {
      const seed = cfg.seed + 1 + i;
      const common = { data, lr: cfg.lr, optimizer: cfg.optimizer, epochs: cfg.epochs, batchSize: cfg.batchSize, seed, progress: progress.sink };
      const bn = train({ ...common, label: `seed ${seed} with BatchNorm`, batchNorm: true });
      const plain = train({ ...common, label: `seed ${seed} without`, batchNorm: false });
      return { seed, batchNorm: bn.epochAccuracy, plain: plain.epochAccuracy };
    });
  } finally {
    progress.stop();
  }
}

/** Experiment 3: the BatchNorm model of experiment 1 tested in train mode with small batches vs in eval mode. */
function trainModePitfall(cfg: Config, data: Data, main: Pair): Pitfall {
  return pitfall(
    main.batchNorm.model,
    data.test,
    cfg.pitfallSizes.filter((b) => b >= 2 && b <= data.test.n),
  );
}

/** Experiment 5: one epoch per backend, each in a child process. */
function timeBackends(cfg: Config, dataDir: string | undefined): Summary['timing'] {
  cfg.log?.('Timing one epoch on the native path and on the pure-JS path (child processes)…');
  const topts: TimingOptions = {
    dataDir,
    trainSize: cfg.trainSize,
    testSize: Math.min(cfg.testSize || 1000, 1000),
    seed: cfg.seed,
    batchSize: cfg.batchSize,
    lr: cfg.lr,
    optimizer: cfg.optimizer,
    warmupSteps: 20,
  };
  return { native: timeBackend('native', topts), js: timeBackend('js', topts) };
}

/** Experiment 6: the small CNN, with and without BatchNorm, at the main rate and at the sweep's highest. */
function trainCnn(cfg: Config, data: Data, rates: number[]): Pair[] {
  const progress = makeProgress(cfg.showProgress, cfg.log);
  const runs: Pair[] = [];
  try {
    for (const r of rates) {
      const common = { data, arch: 'cnn' as const, lr: r, optimizer: cfg.optimizer, epochs: cfg.epochs, batchSize: cfg.batchSize, seed: cfg.seed };
      const bn = train({ ...common, label: `CNN lr ${fmt(r)} with BatchNorm`, batchNorm: true, progress: progress.sink });
      const plain = train({ ...common, label: `CNN lr ${fmt(r)} without`, batchNorm: false, progress: progress.sink });
      runs.push({ lr: r, batchNorm: bn, plain });
    }
  } finally {
    progress.stop();
  }
  return runs;
}

const summarizePair = (r: Pair) => ({ lr: r.lr, batchNorm: summarizeRun(r.batchNorm), plain: summarizeRun(r.plain) });

/** Experiments 7, 8, 10, 11, 12, 13 and 14; `main` and `cnnMain` are the runs at the main rate, reused where they fit. */
function runLessons(cfg: Config, data: Data, main: Pair | null, cnnMain: Pair | null): Omit<LessonsSummary, 'shift' | 'monitor'> {
  const on = (n: number): boolean => cfg.only.has(n);
  const progress = makeProgress(cfg.showProgress, cfg.log);
  const base: lessons.Base = {
    data,
    lr: cfg.lr,
    optimizer: cfg.optimizer,
    epochs: cfg.epochs,
    batchSize: cfg.batchSize,
    seed: cfg.seed,
    progress: progress.sink,
  };
  const s = (r: RunResult) => summarizeRun(r);
  try {
    const init = on(7) ? lessons.initSensitivity(base, [0.1, 10]) : null;
    const depth = on(8) || on(10) ? lessons.depth(base) : null;
    const placement = on(11) ? lessons.placement({ ...base }, cnnMain ? { before: cnnMain.batchNorm, plain: cnnMain.plain } : {}) : null;
    const dropout = on(12) ? lessons.dropout(base, 0.3, main ?? {}) : null;
    const size = cfg.quick ? 'quick' : 'full';
    const norms = on(13)
      ? smallBatches(base, { batchSizes: DEFAULTS.norms.batchSizes, trainSize: DEFAULTS.norms[size].trainSize, epochs: DEFAULTS.norms[size].epochs })
      : null;
    const lstm = on(14)
      ? lstmExperiment(data, { ...DEFAULTS.lstm[size], batchSize: cfg.batchSize, lr: DEFAULTS.lstm.lr, seed: cfg.seed, progress: progress.sink })
      : null;
    return {
      init: init && { scales: init.scales, runs: init.runs.map((r) => ({ scale: r.scale, batchNorm: s(r.batchNorm), plain: s(r.plain) })) },
      depth: depth && {
        hidden: depth.hidden,
        initScale: depth.initScale,
        startScale: depth.startScale,
        batchNorm: s(depth.runs.batchNorm),
        plain: s(depth.runs.plain),
        stepLoss: { batchNorm: depth.runs.batchNorm.stepLoss, plain: depth.runs.plain.stepLoss },
        stepsPerEpoch: depth.runs.batchNorm.stepsPerEpoch,
        steps: depth.steps,
        gradients: depth.gradients,
      },
      placement: placement && { before: s(placement.before), after: s(placement.after), plain: s(placement.plain) },
      dropout: dropout && dropout.map((d) => ({ name: d.name, batchNorm: d.batchNorm, dropout: d.dropout, trainAccuracy: d.trainAccuracy, run: s(d.run) })),
      norms: norms && {
        batchSizes: norms.batchSizes,
        epochs: norms.epochs,
        trainSize: norms.trainSize,
        lr: norms.lr,
        runs: norms.runs.map((r) => ({ norm: r.norm, batchSize: r.batchSize, lr: r.lr, run: s(r.run) })),
      },
      lstm,
    };
  } finally {
    progress.stop();
  }
}

/** Runs the experiments and writes the report; resolves to the numbers it shows. */
export async function runDemo(options: DemoOptions = {}): Promise<Summary> {
  const t0 = performance.now();
  const cfg = resolveConfig(options);
  const info = backendInfo();
  const data = loadData({ dir: options.dataDir, trainSize: cfg.trainSize, testSize: cfg.testSize, seed: cfg.seed });
  cfg.log?.(
    `batchnorm ${info.version} (${info.backend}${info.backend === 'native' ? `, ${info.isa}, ${info.threads} threads` : ''}) · ${data.name}: ${data.train.n} training / ${data.test.n} test images · ${cfg.optimizer === 'adam' ? 'Adam' : 'SGD momentum 0.9'} · batch ${cfg.batchSize} · ${cfg.epochs} epochs · seed ${cfg.seed}`,
  );

  const on = (n: number): boolean => cfg.only.has(n);
  // Experiments 1-4, 9, 12 and 15 share the MLP pair at the main rate; the sweep adds the other rates.
  const sweep = [1, 2, 3, 4, 9, 12, 15].some(on) ? trainSweep(cfg, data, on(2) ? cfg.sweep : [cfg.lr], on(9), on(15)) : null;
  const runs = sweep?.runs ?? null;
  const main = runs?.find((r) => r.lr === cfg.lr) ?? null;
  // Experiment 6 trains the CNN at the main rate and the sweep's highest; experiment 11 reuses the first.
  const cnnRuns = on(6) || on(11) ? trainCnn(cfg, data, on(6) ? [...new Set([cfg.lr, cfg.sweep[cfg.sweep.length - 1]])] : [cfg.lr]) : null;
  const pit = main && on(3) ? trainModePitfall(cfg, data, main) : null;
  const rest = runLessons(cfg, data, main, cnnRuns?.find((r) => r.lr === cfg.lr) ?? null);
  const timing = on(5) ? timeBackends(cfg, options.dataDir) : null;

  const watch = main?.batchNorm.watch ?? null;
  const summary: Summary = {
    data: { name: data.name, source: data.source, trainSize: data.train.n, testSize: data.test.n, features: data.train.features, classes: data.classes },
    config: {
      seed: cfg.seed,
      epochs: cfg.epochs,
      batchSize: cfg.batchSize,
      optimizer: cfg.optimizer,
      lr: cfg.lr,
      sweep: cfg.sweep,
      quick: cfg.quick,
      only: [...cfg.only].sort((a, b) => a - b),
    },
    backend: info,
    comparison: main && on(1) ? { lr: cfg.lr, batchNorm: summarizeRun(main.batchNorm), plain: summarizeRun(main.plain), seeds: otherSeeds(cfg, data) } : null,
    sweep: runs && on(2) ? runs.map(summarizePair) : null,
    pitfall: pit,
    runningStats:
      watch && on(4)
        ? {
            channels: watch.channels,
            steps: watch.steps.length,
            finalMean: watch.runningMean.map((s) => s[s.length - 1] ?? 0),
            finalVar: watch.runningVar.map((s) => s[s.length - 1] ?? 1),
          }
        : null,
    timing,
    cnn: cnnRuns && on(6) ? { description: cnnRuns[0].batchNorm.model.description, runs: cnnRuns.map(summarizePair) } : null,
    lessons: {
      ...rest,
      shift: sweep?.shift ? { ...sweep.shift, stepsPerEpoch: main!.batchNorm.stepsPerEpoch } : null,
      monitor: sweep?.dashboard ? { ...sweep.dashboard, stepsPerEpoch: main!.batchNorm.stepsPerEpoch } : null,
    },
    reportPath: join(cfg.outDir, 'index.html'),
    seconds: 0,
  };
  summary.seconds = (performance.now() - t0) / 1000;
  mkdirSync(cfg.outDir, { recursive: true });
  const commandLine = options.commandLine ?? `runDemo(${JSON.stringify({ ...options, log: undefined })})`;
  writeFileSync(summary.reportPath, renderHtml({ summary, comparison: main && { batchNorm: main.batchNorm, plain: main.plain }, watch, commandLine }));
  writeFileSync(join(cfg.outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  cfg.log?.('');
  cfg.log?.(terminalSummary(summary));
  cfg.log?.('');
  cfg.log?.(`Report: ${summary.reportPath}  (${summary.seconds.toFixed(1)} s)`);
  return summary;
}

function parseList(name: string, s: string): number[] {
  const v = s.split(',').map((x) => Number(x.trim()));
  if (v.some((x) => !Number.isFinite(x))) throw new RangeError(`--${name} expects numbers separated by commas, got "${s}"`);
  return v;
}

function parseNumber(name: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v)) throw new RangeError(`--${name} expects a number, got "${s}"`);
  return v;
}

/** The command line: parses the options and runs the demo. */
export async function cli(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean' },
        seed: { type: 'string' },
        epochs: { type: 'string' },
        lr: { type: 'string' },
        optimizer: { type: 'string' },
        sweep: { type: 'string' },
        'batch-size': { type: 'string' },
        train: { type: 'string' },
        test: { type: 'string' },
        data: { type: 'string' },
        out: { type: 'string' },
        only: { type: 'string' },
        'no-timing': { type: 'boolean' },
        'no-cnn': { type: 'boolean' },
        'no-progress': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  try {
    await runDemo({
      quick: values.quick,
      seed: parseNumber('seed', values.seed),
      epochs: parseNumber('epochs', values.epochs),
      lr: parseNumber('lr', values.lr),
      optimizer: values.optimizer as OptimizerName | undefined,
      sweep: values.sweep === undefined ? undefined : parseList('sweep', values.sweep),
      batchSize: parseNumber('batch-size', values['batch-size']),
      trainSize: parseNumber('train', values.train),
      testSize: parseNumber('test', values.test),
      dataDir: values.data,
      outDir: values.out,
      only: values.only === undefined ? undefined : parseOnly(values.only),
      timing: !values['no-timing'],
      cnn: !values['no-cnn'],
      progress: values['no-progress'] ? false : undefined,
      commandLine: ['npm run demo', ...(argv.length ? ['--', ...argv] : [])].join(' '),
    });
    return 0;
  } catch (e) {
    console.error(`demo: ${(e as Error).message}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await cli(process.argv.slice(2));
}
