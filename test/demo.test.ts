/**
 * The demo (`npm run demo`) on a small subset: 2,000 training and 500 test
 * images, 2 epochs. It checks what the report claims.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo, type Summary } from '../demo/main.js';
import { EXPERIMENTS, parseOnly } from '../demo/catalog.js';
import { loadData } from '../demo/data.js';
import { train } from '../demo/experiments.js';
import { timingScript } from '../demo/timing.js';
import { Conv2d, Linear, softmaxCrossEntropy, type Layer } from '../demo/nn.js';
import { RowLstm } from '../demo/lstm.js';
import { Rng } from '../demo/rng.js';
import { backendInfo } from '../lib/index.js';

describe('npm run demo (quick, on a small subset)', () => {
  const outDir = mkdtempSync(join(tmpdir(), 'batchnorm-demo-'));
  let summary: Summary;

  beforeAll(async () => {
    // The sweep keeps the two rates asserted below (the demo's default adds 0.01 and 0.5).
    summary = await runDemo({ quick: true, trainSize: 2000, testSize: 500, epochs: 2, seed: 7, sweep: [0.1, 1], outDir, log: null, progress: false });
  }, 1_800_000); // trains every experiment's models (fifteen experiments, a seed band, an LSTM) and times an epoch in child processes: the heaviest test by far; minutes on a loaded machine

  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  it('at a high learning rate, BatchNorm trains and the plain MLP does not', () => {
    const high = summary.sweep!.find((r) => r.lr === 1)!;
    expect(high).toBeDefined();
    expect(high.batchNorm.diverged).toBe(false);
    expect(high.plain.diverged).toBe(true);
    expect(high.batchNorm.finalAccuracy).toBeGreaterThan(0.7);
    expect(high.batchNorm.finalAccuracy - high.plain.finalAccuracy).toBeGreaterThanOrEqual(0.15);
    // At a gentle learning rate both train.
    const low = summary.sweep!.find((r) => r.lr === 0.1)!;
    expect(low.batchNorm.finalAccuracy).toBeGreaterThan(0.8);
    expect(low.plain.finalAccuracy).toBeGreaterThan(0.8);
  });

  it('eval mode beats train mode on small test batches', () => {
    // In train mode BatchNorm normalizes each test batch with that batch's own
    // mean and variance. With 2 images every feature becomes exactly ±1 (before
    // γ and β) whatever the images are, and with 4 the statistics are still
    // very noisy: the next layer gets inputs unlike those it was trained on
    // (batches of 64). Eval mode uses the running statistics instead.
    const { evalAccuracy, trainMode } = summary.pitfall!;
    const at = (b: number): number => trainMode.find((t) => t.batchSize === b)!.accuracy;
    expect(evalAccuracy).toBeGreaterThan(0.8);
    expect(evalAccuracy - at(2)).toBeGreaterThan(0.2);
    expect(evalAccuracy).toBeGreaterThan(at(4));
    // Larger test batches hurt less.
    expect(at(64)).toBeGreaterThan(at(2));
  });

  it('shows the same with a small CNN (Conv → BatchNorm2d → ReLU)', () => {
    const high = summary.cnn!.runs.find((r) => r.lr === 1)!;
    expect(high.batchNorm.finalAccuracy - high.plain.finalAccuracy).toBeGreaterThanOrEqual(0.15);
    const gentle = summary.cnn!.runs.find((r) => r.lr === 0.1)!;
    expect(gentle.plain.finalAccuracy).toBeGreaterThan(0.7);
  });

  it('tracks running statistics and writes a self-contained report with one chart per experiment', () => {
    expect(summary.runningStats!.steps).toBe(2 * Math.ceil(2000 / 64));
    expect(summary.runningStats!.finalVar.every((v) => v > 0 && Number.isFinite(v))).toBe(true);
    expect(existsSync(summary.reportPath)).toBe(true);
    const html = readFileSync(summary.reportPath, 'utf8');
    const svgs = html.match(/<svg\b[^>]*>/g) ?? [];
    expect(svgs).toHaveLength(EXPERIMENTS.length);
    for (const { n } of EXPERIMENTS) {
      expect(svgs.filter((s) => s.includes(`data-experiment="${n}"`))).toHaveLength(1);
      // The table of contents links every section.
      expect(html).toContain(`<a href="#experiment-${n}">`);
      expect(html).toContain(`<section id="experiment-${n}">`);
    }
    // Accuracy axes start at 0 or say that they are zoomed.
    expect(html).toContain('zoomed');
    // Nothing fetched from the network: no scripts, no external sources, stylesheets or fonts.
    expect(html).not.toMatch(/<script|<link|<img|@import|url\(|src=/i);
    expect(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/https?:/);
    expect(JSON.parse(readFileSync(join(outDir, 'summary.json'), 'utf8')).config.seed).toBe(7);
  });

  it('times both backends when the demo is built, and says why not otherwise', () => {
    const t = summary.timing!;
    expect(t).not.toBeNull();
    for (const [backend, r] of [
      ['native', t.native],
      ['js', t.js],
    ] as const) {
      if (r.ok) {
        // Each timing ran on the backend it is reported under.
        expect(r.result.backend).toBe(backend);
        expect(r.result.epochMs).toBeGreaterThan(0);
        expect(r.result.bnMs).toBeGreaterThan(0);
        expect(r.result.bnCalls).toBe(4 * r.result.steps);
      } else expect(r.reason).toMatch(/\w/);
    }
    if (timingScript()) {
      expect(t.js.ok).toBe(true);
      // This project runs with the addon (BATCHNORM_BACKEND=native): the native timing must run too.
      if (backendInfo().backend === 'native') expect(t.native.ok, t.native.ok ? '' : t.native.reason).toBe(true);
    }
  });
  it('7: with BatchNorm the initial scale barely matters; without, ×10 diverges and ×0.1 stalls', () => {
    const init = summary.lessons.init!;
    const x10 = init.runs.find((r) => r.scale === 10)!,
      x01 = init.runs.find((r) => r.scale === 0.1)!;
    expect(x10.plain.diverged).toBe(true);
    for (const r of [x10, x01]) expect(r.batchNorm.finalAccuracy).toBeGreaterThan(0.75);
    expect(x01.batchNorm.finalAccuracy - x01.plain.finalAccuracy).toBeGreaterThanOrEqual(0.1);
  });

  it("8: in a 10-layer MLP at PyTorch's default init the activations vanish without BatchNorm, and it does not train", () => {
    const d = summary.lessons.depth!;
    expect(d.hidden).toHaveLength(9);
    const [bn, torchDefault, he, above] = d.startScale;
    for (const v of bn.std) expect(v).toBeCloseTo(1, 1);
    expect(torchDefault.std[8] / torchDefault.std[0]).toBeLessThan(0.01); // ×0.41 per layer
    expect(he.std[8] / he.std[0]).toBeGreaterThan(0.3);
    expect(above.std[8] / above.std[0]).toBeGreaterThan(5);
    expect(d.plain.diverged).toBe(true); // near chance
    expect(d.batchNorm.finalAccuracy).toBeGreaterThan(0.6);
  });

  it("9: one unit's pre-activation quantiles are recorded over training, ordered", () => {
    const sh = summary.lessons.shift!;
    for (const r of [sh.batchNorm, sh.plain]) {
      expect(r.steps.length).toBeGreaterThan(10);
      for (let j = 0; j < r.steps.length; j++) for (let q = 1; q < 5; q++) expect(r.quantiles[q][j]).toBeGreaterThanOrEqual(r.quantiles[q - 1][j]);
    }
  });

  it("10: without BatchNorm the deep MLP's gradients are orders of magnitude smaller at every layer", () => {
    const g = summary.lessons.depth!.gradients;
    expect(g.batchNorm).toHaveLength(10);
    for (let l = 0; l < 10; l++) expect(g.plain[l][0]).toBeLessThan(0.01 * g.batchNorm[l][0]);
  });

  it('11 and 12: both placements train, and dropout narrows the train-test gap', () => {
    const p = summary.lessons.placement!;
    expect(p.before.finalAccuracy).toBeGreaterThan(0.7);
    expect(p.after.finalAccuracy).toBeGreaterThan(0.7);
    const [neither, bn, drop, both] = summary.lessons.dropout!;
    expect([neither.name, bn.name, drop.name, both.name]).toEqual(['neither', 'BatchNorm', 'dropout 0.3', 'BatchNorm + dropout 0.3']);
    const gap = (r: typeof bn): number => r.trainAccuracy - r.run.finalAccuracy;
    expect(gap(drop)).toBeLessThan(gap(bn));
    for (const r of [bn, drop, both]) expect(r.run.finalAccuracy).toBeGreaterThan(0.8);
  });

  it('1: the main pair is also trained from two other seeds, for the band', () => {
    const c = summary.comparison!;
    expect(c.seeds.map((r) => r.seed)).toEqual([8, 9]);
    for (const r of c.seeds) {
      expect(r.batchNorm).toHaveLength(2);
      expect(r.plain).toHaveLength(2);
      expect(r.batchNorm).not.toEqual(c.batchNorm.epochAccuracy);
    }
    expect(readFileSync(summary.reportPath, 'utf8')).toContain('bands: min–max of 3 seeds');
  });

  it('13: at batches of 2 BatchNorm falls well behind GroupNorm and LayerNorm, which do not degrade', () => {
    const n = summary.lessons.norms!;
    expect(n.batchSizes).toEqual([2, 4, 8, 32, 64]);
    const at = (norm: string, b: number): number => n.runs.find((r) => r.norm === norm && r.batchSize === b)!.run.finalAccuracy;
    const best = (norm: string): number => Math.max(...n.batchSizes.map((b) => at(norm, b)));
    expect(at('batch', 2)).toBeLessThan(best('batch') - 0.1);
    expect(at('batch', 2)).toBeLessThan(Math.min(at('group', 2), at('layer', 2)) - 0.05);
    for (const norm of ['group', 'layer']) expect(at(norm, 2)).toBeGreaterThan(best(norm) - 0.1);
  });

  it('14: the three LSTMs train from the same weights, and BatchNorm is tested in both modes', () => {
    const l = summary.lessons.lstm!;
    expect(l.runs.map((r) => r.norm)).toEqual(['none', 'batch', 'layer']);
    for (const r of l.runs) {
      expect(r.curve.length).toBeGreaterThanOrEqual(l.epochs);
      expect(r.stepLoss.every(Number.isFinite)).toBe(true);
      expect(r.finalAccuracy).toBeGreaterThan(0);
    }
    // From the same initial weights and batches, the first loss differs only by the norms (≈ ln 10 for all).
    for (const r of l.runs) expect(r.stepLoss[0]).toBeCloseTo(Math.log(10), 0);
    expect(l.runs[1].trainModeAccuracy).toBeGreaterThan(0);
  });

  it("15: the monitor recorded each BatchNorm layer's output and gradient over training", () => {
    const m = summary.lessons.monitor!;
    expect(m.layers).toHaveLength(2);
    expect(m.steps.length).toBeGreaterThan(10);
    for (let i = 0; i < 2; i++) {
      // Right after BatchNorm (γ ≈ 1, β ≈ 0 early on) the output's std over all features is about 1.
      expect(m.outStd[i][0]).toBeCloseTo(1, 1);
      expect(Math.abs(m.outMean[i][0])).toBeLessThan(0.05);
      for (const k of ['outStd', 'gradNorm', 'gradStd'] as const) expect(m[k][i].every((v) => v > 0 && Number.isFinite(v))).toBe(true);
    }
  });
});

describe('demo training', () => {
  it('is deterministic for a seed', () => {
    const data = loadData({ trainSize: 300, testSize: 100, seed: 3 });
    const run = () => train({ label: 'x', data, batchNorm: true, lr: 0.1, optimizer: 'sgd', epochs: 1, batchSize: 32, seed: 3 });
    const a = run(),
      b = run();
    expect(a.stepLoss).toEqual(b.stepLoss);
    expect(a.finalAccuracy).toBe(b.finalAccuracy);
    const other = train({ label: 'x', data, batchNorm: true, lr: 0.1, optimizer: 'sgd', epochs: 1, batchSize: 32, seed: 4 });
    expect(other.stepLoss).not.toEqual(a.stepLoss);
  }, 180_000); // three training runs
});

describe("the demo's own layers", () => {
  /** Central differences of L = Σ y·r against the analytic gradients of x and of every parameter. */
  function gradCheck(layer: Layer, n: number, rng: Rng): number {
    const x = new Float32Array(n * layer.inFeatures).map(() => rng.normal());
    const r = new Float32Array(n * layer.outFeatures).map(() => rng.normal());
    const loss = (): number => layer.forward(x, n).reduce((t, v, i) => t + v * r[i], 0);
    loss();
    for (const p of layer.parameters()) p.grad?.fill(0);
    const dx = Float32Array.from(layer.backward(r, n, true)!);
    let worst = 0;
    for (const [a, g] of [[x, dx], ...layer.parameters().map((p) => [p.data, p.grad!])] as Array<[Float32Array, Float32Array]>)
      for (let i = 0; i < a.length; i++) {
        const o = a[i];
        a[i] = o + 1e-2;
        const up = loss();
        a[i] = o - 1e-2;
        const down = loss();
        a[i] = o;
        worst = Math.max(worst, Math.abs((up - down) / 2e-2 - g[i]));
      }
    return worst;
  }

  it("the row-by-row LSTM's backpropagation through time is right with every norm (BatchNorm's per-step contexts included)", () => {
    for (const norm of ['none', 'batch', 'layer'] as const) {
      const rng = new Rng(5);
      const model = new RowLstm(3, 4, 5, 3, norm, rng);
      const B = 6;
      const x = new Float32Array(B * 15).map(() => rng.normal());
      const y = Uint8Array.from({ length: B }, (_, i) => i % 3);
      const saved = [model.bnX, model.bnH].map((bn) => bn && Float32Array.from(bn.runningMean!));
      const loss = (): number => softmaxCrossEntropy(model.forward(x, B), y, B, 3, null).loss;
      const dlogits = new Float32Array(B * 3);
      softmaxCrossEntropy(model.forward(x, B), y, B, 3, dlogits);
      for (const p of model.parameters()) p.grad?.fill(0);
      model.backward(dlogits, B);
      const params = model.parameters();
      let worst = 0,
        scale = 0;
      for (const p of params)
        for (let i = 0; i < p.data.length; i++) {
          const o = p.data[i];
          p.data[i] = o + 1e-2;
          const up = loss();
          p.data[i] = o - 1e-2;
          const down = loss();
          p.data[i] = o;
          worst = Math.max(worst, Math.abs((up - down) / 2e-2 - p.grad![i]));
          scale = Math.max(scale, Math.abs(p.grad![i]));
        }
      expect(scale, norm).toBeGreaterThan(0.01);
      expect(worst, norm).toBeLessThan(2e-3);
      if (saved[0]) expect(model.bnX!.runningMean).not.toEqual(saved[0]); // trained in training mode: the statistics moved
    }
  });

  it('Linear and Conv2d (stride, padding) have correct gradients', () => {
    const rng = new Rng(11);
    expect(gradCheck(new Linear(7, 5, rng), 3, rng)).toBeLessThan(1e-3);
    for (const [stride, padding] of [
      [1, 0],
      [2, 1],
      [1, 1],
    ])
      expect(gradCheck(new Conv2d(2, 3, 5, 6, 3, rng, { stride, padding }), 2, rng)).toBeLessThan(1e-3);
  });
});

describe('--only', () => {
  it('takes numbers and names, and refuses the others', () => {
    expect([...parseOnly('1,init, 9')].sort((a, b) => a - b)).toEqual([1, 7, 9]);
    expect(() => parseOnly('16')).toThrow(/--only expects experiment numbers 1-15 or names/);
    expect(() => parseOnly('speedy')).toThrow(/got "speedy"/);
  });

  it('runs only the experiments asked for, and the report has only their sections', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'batchnorm-demo-only-'));
    try {
      const s = await runDemo({ only: [3], trainSize: 500, testSize: 200, epochs: 1, seed: 1, outDir, log: null, progress: false });
      expect(s.pitfall).not.toBeNull();
      expect([s.comparison, s.sweep, s.runningStats, s.timing, s.cnn, ...Object.values(s.lessons)]).toEqual(Array(13).fill(null));
      const html = readFileSync(s.reportPath, 'utf8');
      expect(html.match(/<section id="experiment-\d+">/g)).toEqual(['<section id="experiment-3">']);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 180_000); // one small training run
});
