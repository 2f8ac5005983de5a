/**
 * The words of the demo's report, one function per part of the page: each
 * returns the HTML of a heading and its paragraph, written from the numbers of
 * the run. renderHtml (report.ts) lays them out beside the charts and tables.
 */
import { COLORS, esc, ms, num, pct } from './format.js';
import type { RunSummary, Summary } from './report.js';

/** The page's title and the paragraph under it: the model, the data, the package. */
export function intro(s: Summary): string {
  const optimizer = s.config.optimizer === 'adam' ? 'Adam' : 'SGD with momentum 0.9';
  return `<h1>BatchNorm on ${esc(s.data.name)}: with and without</h1>
<p class="sub">An MLP ${s.data.features}-256-128-${s.data.classes} trained with ${optimizer}, mini-batches of ${s.config.batchSize}, on ${s.data.trainSize.toLocaleString('en-US')} training images and tested on ${s.data.testSize.toLocaleString('en-US')} others from ${esc(s.data.source)}. Blocks are Linear → <b>BatchNorm1d</b> → ReLU (<span class="bn">with BatchNorm</span>) or Linear → ReLU (<span class="plain">without</span>), from the same initial weights and the same batches. BatchNorm is the <code>batchnorm</code> package ${esc(s.backend.version)} (${esc(s.backend.backend)} backend${s.backend.backend === 'native' ? `, ${esc(s.backend.isa)}` : ''}); the rest is the demo's own TypeScript. Seed ${s.config.seed}.</p>`;
}

/** Experiment 1: with vs without BatchNorm at the same learning rate. */
export function comparison(s: Summary): string {
  const c = s.comparison!;
  return `<h2>1. With vs without BatchNorm at the same learning rate (${c.lr})</h2>
<p>Both models start from the same Linear weights and see the same batches. With BatchNorm each hidden layer's pre-activations are re-centred and re-scaled on every batch${lastLoss(c.batchNorm) < lastLoss(c.plain) ? `, and the training loss falls faster (last epoch: ${num(lastLoss(c.batchNorm))} vs ${num(lastLoss(c.plain))})` : ` (last epoch's training loss: ${num(lastLoss(c.batchNorm))} with, ${num(lastLoss(c.plain))} without)`}. After ${s.config.epochs} epoch${s.config.epochs === 1 ? '' : 's'} the test accuracy is <span class="bn">${pct(c.batchNorm.finalAccuracy)}</span> with BatchNorm and <span class="plain">${pct(c.plain.finalAccuracy)}</span> without.${crosses(c.batchNorm, c.plain) ? ' The accuracy lines cross: at a gentle rate both models end within a point or two of each other, which is about the noise between two seeds (initial weights, batch order) — the sweep below is where the difference is not noise.' : ''}${seedsText(c)}</p>`;
}

/** Experiment 2: the learning-rate sweep. */
export function sweep(s: Summary): string {
  const sweep = s.sweep!;
  const bestPlain = sweep.reduce((a, b) => (b.plain.finalAccuracy > a.plain.finalAccuracy ? b : a));
  const firstPlainDiverged = sweep.find((r) => r.plain.diverged);
  const firstBnDiverged = sweep.find((r) => r.batchNorm.diverged);
  return `<h2>2. Learning-rate sweep: where each model diverges</h2>
<p>The same training at learning rates ${sweep.map((r) => r.lr).join(', ')}. ${firstPlainDiverged ? `Without BatchNorm the model fails from lr ${firstPlainDiverged.lr} on: ${divergenceText(firstPlainDiverged.plain, s.data.classes)}.` : 'Without BatchNorm the model trained at every rate of this sweep.'} ${firstBnDiverged ? `With BatchNorm it fails from lr ${firstBnDiverged.lr} on: ${divergenceText(firstBnDiverged.batchNorm, s.data.classes)}.` : `With BatchNorm it trains at every rate here, because the scale of each layer's weights no longer sets the scale of its outputs.`} The best model without BatchNorm reached ${pct(bestPlain.plain.finalAccuracy)} (at lr ${bestPlain.lr}).</p>`;
}

/** Experiment 3: testing in train mode with small batches. */
export function pitfall(s: Summary): string {
  const p = s.pitfall!;
  const beat = p.trainMode.filter((t) => t.batchSize >= 32 && t.accuracy > p.evalAccuracy);
  const why = beat.length
    ? ` One number looks wrong and is not: at test batches of ${beat.map((t) => t.batchSize).join(' and ')}, train mode scores ${beat.map((t) => pct(t.accuracy)).join(' and ')}, above eval mode. A large test batch's own statistics are close to the population's <i>for the current weights</i>, while the running statistics are an exponential average (momentum 0.1) over the last few dozen training batches, taken while the weights were still changing — after a short run they lag behind the network. The gap is small, shrinks as training slows down, and is no reason to test in train mode: the prediction for one image would still depend on the rest of its batch.`
    : '';
  return `<h2>3. The pitfall: testing in train mode</h2>
<p>In training mode BatchNorm normalizes with the statistics of the batch in front of it; in eval mode with the running statistics gathered during training. Forgetting <code>model.eval()</code> before testing makes every prediction depend on the other images of its test batch. With a batch of 2, each feature is normalized to exactly −1 and +1 before γ and β (whatever the two images are), and with 4 the batch mean and variance are still very noisy, so most of the information the next layer relies on is lost and the accuracy collapses — while in eval mode the model gives <span style="color:${COLORS.eval};font-weight:600">${pct(p.evalAccuracy)}</span> whatever the batch size. (A batch of 1 cannot be normalized at all in training mode: PyTorch and this package throw.) Running the test set in train mode also overwrites the running statistics; the demo puts them back.${why}</p>`;
}

/** Experiment 4: the running statistics of a few channels. */
export function runningStats(s: Summary, channels: number[]): string {
  const r = s.runningStats!;
  return `<h2>4. Running mean and variance during training</h2>
<p>Channels ${channels.join(', ')} of the first BatchNorm1d (256 channels, after Linear 784→256), in the run of experiment 1. The running statistics start at mean 0 and variance 1 and follow each batch's statistics (faint) as an exponential moving average with momentum 0.1 (<code>running = 0.9·running + 0.1·batch</code>, with the unbiased batch variance, as PyTorch does), smoothing out the batch-to-batch noise; they drift as the weights before them learn. These are what eval mode normalizes with. After ${r.steps} steps: mean ${r.finalMean.map((v) => num(v)).join(', ')}; variance ${r.finalVar.map((v) => num(v)).join(', ')}.</p>`;
}

/** Experiment 5, before its chart: what is timed. */
export function timingIntro(): string {
  return `<h2>5. Time per epoch: native addon vs pure JS, and BatchNorm’s share</h2>
<p>The same epoch of the BatchNorm model, timed in a child process per backend (<code>BATCHNORM_BACKEND=native</code> and <code>=js</code>) after a warm-up.</p>`;
}

/** Experiment 5, after its chart: the times, or why a path was not measured. */
export function timingResult(t: Summary['timing']): string {
  if (!t) return '<p class="warn">Skipped (<code>--no-timing</code>).</p>';
  const n = t.native,
    j = t.js;
  const parts: string[] = [];
  if (n.ok && j.ok) {
    const bnSpeed = j.result.bnMs / Math.max(1e-9, n.result.bnMs);
    const epochSpeed = j.result.epochMs / Math.max(1e-9, n.result.epochMs);
    parts.push(
      `<p>The BatchNorm layers took <b>${ms(n.result.bnMs)}</b> per epoch on the native path (${esc(n.result.isa)}, ${n.result.threads} thread${n.result.threads === 1 ? '' : 's'}) and <b>${ms(j.result.bnMs)}</b> on the pure-JS path: <b>${bnSpeed.toFixed(1)}×</b> faster, over ${n.result.bnCalls} calls (${((1000 * n.result.bnMs) / n.result.bnCalls).toFixed(1)} µs vs ${((1000 * j.result.bnMs) / j.result.bnCalls).toFixed(1)} µs per call). The whole epoch — ${n.result.steps} steps over ${n.result.trainSize.toLocaleString('en-US')} images — took ${ms(n.result.epochMs)} vs ${ms(j.result.epochMs)} (${epochSpeed.toFixed(2)}×): in this small MLP most of the time goes to the demo's own matrix products in TypeScript, which are the same on both paths. BatchNorm is <b>${pct(n.result.bnMs / n.result.epochMs)}</b> of the native epoch and ${pct(j.result.bnMs / j.result.epochMs)} of the pure-JS one: even an infinitely fast BatchNorm could make this epoch at most ${(j.result.epochMs / Math.max(1e-9, j.result.epochMs - j.result.bnMs)).toFixed(2)}× faster than pure JS. The demo's ReLU is its own loop (part of the grey bar); the modules' <code>activation: 'relu'</code> option, which fuses it into BatchNorm's passes, is not timed here yet.</p>`,
    );
  }
  for (const r of [n, j])
    if (!r.ok) parts.push(`<p class="warn">The ${r.backend === 'native' ? 'native' : 'pure-JS'} path was not measured: ${esc(r.reason)}</p>`);
  return parts.join('\n');
}

/** Experiment 6: the small CNN. */
export function cnn(c: NonNullable<Summary['cnn']>): string {
  return `<h2>6. The same with a small CNN: Conv → BatchNorm2d → ReLU</h2>
<p>${esc(c.description)}; without BatchNorm the same layers without the BatchNorm ones. ${c.runs
    .map(
      (r) =>
        `At lr ${r.lr}: <span class="bn">${pct(r.batchNorm.finalAccuracy)}</span> with BatchNorm${r.batchNorm.diverged ? ' (diverged)' : ''}, <span class="plain">${pct(r.plain.finalAccuracy)}</span> without${r.plain.diverged ? ' (diverged)' : ''}.`,
    )
    .join(' ')} BatchNorm2d normalizes each channel over the batch and all its pixels, with the same running statistics and the same train/eval switch.</p>`;
}

/** The band of experiment 1: the final accuracies over every seed. */
function seedsText(c: NonNullable<Summary['comparison']>): string {
  if (!c.seeds.length) return '';
  const finals = (own: number, key: 'batchNorm' | 'plain'): number[] => [own, ...c.seeds.map((r) => r[key][r[key].length - 1])];
  const bn = finals(c.batchNorm.finalAccuracy, 'batchNorm'),
    plain = finals(c.plain.finalAccuracy, 'plain');
  const range = (v: number[]): string => `${pct(Math.min(...v))}–${pct(Math.max(...v))}`;
  const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
  return ` The shaded bands are the range over ${bn.length} seeds (${[c.seeds.length ? 'this one and ' : '', c.seeds.map((r) => r.seed).join(', ')].join('')}): final accuracy <span class="bn">${range(bn)}</span> with BatchNorm (mean ${pct(mean(bn))}) and <span class="plain">${range(plain)}</span> without (mean ${pct(mean(plain))})${Math.min(...bn) > Math.max(...plain) ? ' — the bands do not overlap at the end' : ' — where the bands overlap, one seed cannot tell the two models apart'}.`;
}

// ---------------------------------------------------------------- shared phrases

/** Whether the two runs' test accuracies swap order from one epoch to another. */
function crosses(a: RunSummary, b: RunSummary): boolean {
  const sign = a.epochAccuracy.map((v, i) => Math.sign(v - b.epochAccuracy[i])).filter((x) => x !== 0);
  return sign.some((x) => x !== sign[0]);
}

/** The training loss of a run's last epoch. */
function lastLoss(r: RunSummary): number {
  return r.epochLoss[r.epochLoss.length - 1];
}

/** How a run failed, in words: NaN at a step, or a blow-up that never recovers. */
function divergenceText(r: RunSummary, k: number): string {
  if (r.divergedAtStep !== null) return `the loss overflows to ${Number.isNaN(r.peakLoss) ? 'NaN' : 'infinity'} at step ${r.divergedAtStep}`;
  const blowUp =
    r.peakLoss > 3 * Math.log(k) ? `the training loss blows up (to ${num(r.peakLoss)}; a uniform guess scores ln ${k} = ${num(Math.log(k))}) and` : 'training';
  return `${blowUp} never recovers: the model ends near chance (${pct(r.finalAccuracy)} on the test set)`;
}
