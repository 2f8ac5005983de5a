/**
 * The report's sections for experiments 7 to 12 (lessons.ts): for each, the
 * paragraph written from the run's numbers and its chart; and their rows of the
 * summary table.
 */
import { titleOf } from './catalog.js';
import { COLORS, esc, num, pct } from './format.js';
import { lineChart, smoothCurve, type Panel, type Series, type LessonsSummary, type RunSummary, type Summary } from './report.js';
import { QUANTILES } from './lessons.js';

type Lessons = { [K in keyof LessonsSummary]: NonNullable<LessonsSummary[K]> };

const percentAxis = { yDomain: [0, 1] as [number, number], yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1], yFormat: (v: number) => `${Math.round(v * 100)}%` };

function epochTicks(epochs: number, from = 1): number[] {
  return Array.from({ length: epochs - from + 1 }, (_, i) => i + from).filter((e) => epochs <= 10 || e % Math.ceil(epochs / 10) === 0);
}

/** Test accuracy after each epoch, axis from 0 to 100%. */
function accuracyPanel(title: string, runs: Array<{ name: string; color: string; dash?: string; run: RunSummary }>): Panel {
  const epochs = Math.max(...runs.map((r) => r.run.epochAccuracy.length));
  return {
    title,
    xLabel: 'epoch',
    yLabel: 'test accuracy',
    xDomain: [1, Math.max(2, epochs)],
    xTicks: epochTicks(epochs),
    ...percentAxis,
    series: runs.map((r) => ({
      name: r.name,
      color: r.color,
      dash: r.dash,
      markers: true,
      points: r.run.epochAccuracy.map((a, i) => [i + 1, a] as [number, number]),
    })),
  };
}

const h2 = (n: number): string => `<h2>${n}. ${esc(titleOf(n))}</h2>`;
const acc = (r: RunSummary): string => `${pct(r.finalAccuracy)}${r.diverged ? ' (diverged)' : ''}`;

// ---------------------------------------------------------------- 7

export function init(x: Lessons['init'], s: Summary): string {
  const lo = x.runs.find((r) => r.scale < 1),
    hi = x.runs.find((r) => r.scale > 1);
  const words = [
    lo &&
      `With every weight ×${lo.scale} the signal shrinks ×${lo.scale} at each of the three layers: without BatchNorm the logits start ${num(1 / lo.scale ** 3)} times too small, the gradients of the first layers vanish with them, and after ${s.config.epochs} epochs the model is at <span class="plain">${acc(lo.plain)}</span>; with BatchNorm each layer's output is re-scaled to unit variance whatever the weights' scale, and it reaches <span class="bn">${acc(lo.batchNorm)}</span>.`,
    hi &&
      `With ×${hi.scale} the first training loss without BatchNorm is ${num(hi.plain.peakLoss)} (a uniform guess scores ${num(Math.log(s.data.classes))}): the huge logits make the first updates huge too, ${hi.plain.diverged ? `and the model never recovers (<span class="plain">${acc(hi.plain)}</span>)` : `and it ends at <span class="plain">${acc(hi.plain)}</span>`}; with BatchNorm only the last layer's scale still matters, and it reaches <span class="bn">${acc(hi.batchNorm)}</span>.`,
  ].filter(Boolean);
  const panels = x.runs.map((r) =>
    accuracyPanel(`initial weights ×${r.scale}`, [
      { name: 'with BatchNorm', color: COLORS.bn, run: r.batchNorm },
      { name: 'without', color: COLORS.plain, run: r.plain },
    ]),
  );
  return `${h2(7)}
<p>The MLP of experiment 1 at lr ${s.config.lr}, with every initial weight (He's init) multiplied by ${x.scales.join(' and by ')}. ${words.join(' ')}</p>
${lineChart(panels, { experiment: 7, title: titleOf(7) })}`;
}

// ---------------------------------------------------------------- 8

export function depth(d: Lessons['depth'], s: Summary): string {
  const layers = d.hidden.length + 1;
  const plainDefault = d.startScale.find((v) => !v.batchNorm && v.initScale === d.initScale)!;
  const last = (v: { std: number[] }): number => v.std[v.std.length - 1];
  const scale: Panel = {
    title: 'Pre-activation std per layer, before training',
    xLabel: 'hidden layer',
    yLabel: 'std (log scale)',
    yLog: true,
    xDomain: [1, d.hidden.length],
    xTicks: d.hidden.map((_, i) => i + 1),
    series: d.startScale.map((v, i) => ({
      name: v.name,
      color: v.batchNorm ? COLORS.bn : [COLORS.plain, '#d97706', '#7c3aed'][Math.max(0, i - 1) % 3],
      markers: true,
      points: v.std.map((y, l) => [l + 1, y] as [number, number]),
    })),
  };
  const spe = d.stepsPerEpoch;
  const window = Math.max(5, Math.round(spe / 5));
  const epochs = d.batchNorm.epochAccuracy.length;
  const loss: Panel = {
    title: `Training loss (moving average of ${window} steps)`,
    xLabel: 'epoch',
    yLabel: 'cross-entropy (log scale)',
    yLog: true,
    xDomain: [0, epochs],
    xTicks: epochTicks(epochs, 0),
    series: [
      { name: 'with BatchNorm', color: COLORS.bn, points: smoothCurve(d.stepLoss.batchNorm, spe, window) },
      { name: 'without', color: COLORS.plain, points: smoothCurve(d.stepLoss.plain, spe, window) },
    ],
  };
  return `${h2(8)}
<p>An MLP of ${layers} Linear layers (${d.hidden.length} hidden layers of ${d.hidden[0]}), started from PyTorch's default init of <code>nn.Linear</code> (uniform ±1/√fan_in: He's standard deviation ×${num(d.initScale)}). Left: the standard deviation of each hidden layer's pre-activations over 256 test images, before any training (PyTorch init: He's ×0.41). Without BatchNorm each layer multiplies the scale by about ${num(Math.exp(Math.log(last(plainDefault) / plainDefault.std[0]) / (plainDefault.std.length - 1)))}, and by layer ${d.hidden.length} it is ${num(last(plainDefault))}: the signal vanishes. He's init (×1) is exactly the scale that keeps it; ×1.5 makes it grow ×${num(last(d.startScale[3]) / d.startScale[3].std[0])} over the same depth. With BatchNorm every layer starts at 1, whatever the init. Right: training at lr ${s.config.lr}: <span class="bn">${acc(d.batchNorm)}</span> with BatchNorm, <span class="plain">${acc(d.plain)}</span> without${d.plain.diverged ? ' — the plain network barely moves from a uniform guess: its output, and so its gradients, are too small for SGD to get going in this many steps' : ''}.</p>
${lineChart([scale, loss], { experiment: 8, title: titleOf(8) })}`;
}

// ---------------------------------------------------------------- 9

export function shift(x: Lessons['shift'], s: Summary): string {
  const panel = (title: string, sh: (typeof x)['batchNorm'], color: string): Panel => {
    const label = (q: number): string => `${Math.round(q * 100)}th percentile`;
    const series: Series[] = QUANTILES.map((q, i) => ({
      name: q === 0.5 ? 'median' : label(q),
      color,
      width: q === 0.5 ? 2.5 : q === 0.25 || q === 0.75 ? 1.6 : 1,
      opacity: q === 0.5 ? 1 : q === 0.25 || q === 0.75 ? 0.7 : 0.4,
      dash: q === 0.05 || q === 0.95 ? '4 3' : undefined,
      hideLegend: q !== 0.5 && q !== 0.25 && q !== 0.05,
      points: sh.steps.map((st, j) => [st / x.stepsPerEpoch, sh.quantiles[i][j]] as [number, number]),
    }));
    series[1].name = '25th–75th';
    series[0].name = '5th–95th';
    return { title, xLabel: 'epoch', yLabel: 'pre-activation', series };
  };
  const spread = (sh: (typeof x)['batchNorm'], j: number): number => sh.quantiles[4][j] - sh.quantiles[0][j];
  const median = (sh: (typeof x)['batchNorm'], j: number): number => sh.quantiles[2][j];
  const end = x.plain.steps.length - 1;
  return `${h2(9)}
<p>The distribution of one hidden unit's pre-activation (unit ${x.plain.unit} of the second hidden layer, the input of its ReLU) over a fixed batch of 256 test images, recorded ${x.plain.steps.length} times during the runs of experiment 1; the lines are its 5th, 25th, 50th, 75th and 95th percentiles (the band the next layer sees). <span class="plain">Without BatchNorm</span> the distribution moves as the layers below learn: its median goes from ${num(median(x.plain, 0))} to ${num(median(x.plain, end))} and its 5–95% spread from ${num(spread(x.plain, 0))} to ${num(spread(x.plain, end))}, so the layer above keeps chasing a moving input — Ioffe and Szegedy's "internal covariate shift". <span class="bn">With BatchNorm</span> (the same unit after BatchNorm1d, probed in training mode) the distribution is pinned by γ and β, which move slowly: median ${num(median(x.batchNorm, 0))} → ${num(median(x.batchNorm, end))}, spread ${num(spread(x.batchNorm, 0))} → ${num(spread(x.batchNorm, end))}. (Whether reducing this shift is <i>why</i> BatchNorm helps is debated: Santurkar et al., 2018, credit a smoother loss landscape. The shift itself is plain to see.)</p>
${lineChart([panel('without BatchNorm', x.plain, COLORS.plain), panel('with BatchNorm', x.batchNorm, COLORS.bn)], { experiment: 9, title: titleOf(9) })}`;
}

// ---------------------------------------------------------------- 10

export function gradients(d: Lessons['depth'], s: Summary): string {
  const layerColors = (i: number, n: number): string => `hsl(${Math.round(220 - (200 * i) / Math.max(1, n - 1))} 70% 45%)`;
  const panel = (title: string, g: number[][]): Panel => ({
    title,
    xLabel: 'epoch',
    yLabel: '‖∂L/∂W‖ (log scale)',
    yLog: true,
    series: g.map((norms, i) => ({
      name: i === 0 ? 'layer 1 (input)' : i === g.length - 1 ? `layer ${g.length} (output)` : `layer ${i + 1}`,
      hideLegend: i !== 0 && i !== g.length - 1,
      color: layerColors(i, g.length),
      width: 1.5,
      points: d.steps.map((st, j) => [st / d.stepsPerEpoch, norms[j]] as [number, number]),
    })),
  });
  const first = (g: number[][]): number => g[0][0],
    lastLayer = (g: number[][]): number => g[g.length - 1][0];
  const all = [...d.gradients.batchNorm.flat(), ...d.gradients.plain.flat()].filter((v) => v > 0 && Number.isFinite(v));
  const yDomain: [number, number] = [Math.min(...all) / 1.5, Math.max(...all) * 1.5];
  const pb = panel('without BatchNorm', d.gradients.plain),
    pn = panel('with BatchNorm', d.gradients.batchNorm);
  pb.yDomain = pn.yDomain = yDomain;
  return `${h2(10)}
<p>The norm of each Linear layer's weight gradient during the runs of experiment 8 (same ${d.hidden.length + 1}-layer MLP, PyTorch's default init), colored from the input layer (blue) to the output layer (orange); both panels share the axis. <span class="plain">Without BatchNorm</span> the gradients are tiny — at the first record ${num(first(d.gradients.plain))} at the input layer and ${num(lastLayer(d.gradients.plain))} at the output layer — because the backward pass shrinks the signal layer by layer just as the forward did, and SGD makes almost no progress. <span class="bn">With BatchNorm</span> they are ${num(first(d.gradients.batchNorm))} and ${num(lastLayer(d.gradients.batchNorm))}: each BatchNorm divides the gradient by the batch's standard deviation on the way back, so every layer gets a usable signal.</p>
${lineChart([pb, pn], { experiment: 10, title: titleOf(10) })}`;
}

// ---------------------------------------------------------------- 11

export function placement(p: Lessons['placement'], s: Summary): string {
  const diff = p.before.finalAccuracy - p.after.finalAccuracy;
  return `${h2(11)}
<p>The small CNN of experiment 6 at lr ${s.config.lr}, with BatchNorm2d before the ReLU (the common order, as in ResNet) and after it. After ${s.config.epochs} epochs: <span class="bn">Conv → BN → ReLU ${acc(p.before)}</span>, <span style="color:#7c3aed;font-weight:600">Conv → ReLU → BN ${acc(p.after)}</span>, without BatchNorm <span class="plain">${acc(p.plain)}</span>. ${Math.abs(diff) < 0.01 ? 'The two orders are within a point of each other here: ' : diff > 0 ? `Before the ReLU is ${(100 * diff).toFixed(1)} points ahead here; ` : `After the ReLU is ${(-100 * diff).toFixed(1)} points ahead here; `}the lessons' "there is debate" is fair — both normalize, and with one seed and this few epochs a difference of a point or two is noise. Before the ReLU, BatchNorm centres the ReLU's input, so about half of each channel is active; after it, BatchNorm normalizes the ReLU's one-sided output for the next conv, and the conv keeps its bias.</p>
${lineChart(
  [
    accuracyPanel('test accuracy after each epoch', [
      { name: 'Conv → BN → ReLU', color: COLORS.bn, run: p.before },
      { name: 'Conv → ReLU → BN', color: '#7c3aed', run: p.after },
      { name: 'no BatchNorm', color: COLORS.plain, dash: '5 4', run: p.plain },
    ]),
  ],
  { experiment: 11, title: titleOf(11), height: 380 },
)}`;
}

// ---------------------------------------------------------------- 12

export function dropout(runs: Lessons['dropout'], s: Summary): string {
  const colors = [COLORS.plain, COLORS.bn, '#d97706', '#059669'];
  const rows = runs
    .map(
      (r, i) =>
        `<tr><td style="color:${colors[i]};font-weight:600">${esc(r.name)}</td><td>${pct(r.trainAccuracy)}</td><td>${pct(r.run.finalAccuracy)}</td><td>${(100 * (r.trainAccuracy - r.run.finalAccuracy)).toFixed(1)} points</td></tr>`,
    )
    .join('');
  const gap = (r: (typeof runs)[number]): number => r.trainAccuracy - r.run.finalAccuracy;
  const bn = runs[1],
    drop = runs[2],
    both = runs[3];
  return `${h2(12)}
<p>The MLP of experiment 1 at lr ${s.config.lr} with neither, BatchNorm, dropout (p = ${drop.dropout}, after each ReLU) and both. Dropout's noise regularizes: the gap between training and test accuracy (eval mode, both) is ${(100 * gap(drop)).toFixed(1)} points with dropout vs ${(100 * gap(bn)).toFixed(1)} with BatchNorm alone. BatchNorm's own regularization (the noise of the batch statistics) is milder. Together: test accuracy ${pct(both.run.finalAccuracy)}, gap ${(100 * gap(both)).toFixed(1)} points. The lessons warn that dropout before a BatchNorm shifts the variance the BatchNorm sees between training and eval (Li et al., 2019); here dropout comes after the ReLU, so the next BatchNorm normalizes the dropped-out activations in training and the full ones at eval, with running statistics gathered on the former — ${both.run.finalAccuracy >= bn.run.finalAccuracy ? 'at this rate it did not hurt' : 'which costs a little here'}.</p>
${lineChart(
  [
    accuracyPanel(
      'test accuracy after each epoch',
      runs.map((r, i) => ({ name: r.name, color: colors[i], run: r.run })),
    ),
  ],
  { experiment: 12, title: titleOf(12), height: 380 },
)}
<table><thead><tr><th></th><th>train accuracy</th><th>test accuracy</th><th>gap</th></tr></thead><tbody>${rows}</tbody></table>`;
}

// ---------------------------------------------------------------- summary rows

export function summaryRows(s: Summary): string[][] {
  const L = s.lessons;
  const a = (r: RunSummary): string => `${pct(r.finalAccuracy)}${r.diverged ? ' ✗' : ''}`;
  const rows: string[][] = [];
  for (const r of L.init?.runs ?? []) rows.push([`7. init ×${r.scale}`, a(r.batchNorm), a(r.plain), 'test accuracy']);
  if (L.depth) {
    const d = L.depth;
    const plainDefault = d.startScale.find((v) => !v.batchNorm && v.initScale === d.initScale)!;
    rows.push([
      `8. ${d.hidden.length + 1} layers`,
      a(d.batchNorm),
      a(d.plain),
      `layer ${d.hidden.length} std at start: ${num(plainDefault.std[plainDefault.std.length - 1])} without BN`,
    ]);
  }
  if (L.shift) {
    const q = (sh: typeof L.shift.plain, j: number): string => num(sh.quantiles[2][j]);
    const e = L.shift.plain.steps.length - 1;
    rows.push([
      `9. median pre-activation`,
      `${q(L.shift.batchNorm, 0)} → ${q(L.shift.batchNorm, e)}`,
      `${q(L.shift.plain, 0)} → ${q(L.shift.plain, e)}`,
      'one unit, over training',
    ]);
  }
  if (L.depth) rows.push([`10. ‖∂L/∂W₁‖ at start`, num(L.depth.gradients.batchNorm[0][0]), num(L.depth.gradients.plain[0][0]), 'input layer, 10-layer MLP']);
  if (L.placement) rows.push([`11. CNN BN before / after ReLU`, `${a(L.placement.before)} / ${a(L.placement.after)}`, a(L.placement.plain), 'test accuracy']);
  for (const r of L.dropout?.slice(2) ?? [])
    rows.push([`12. ${r.name}`, r.batchNorm ? a(r.run) : '', r.batchNorm ? '' : a(r.run), `train ${pct(r.trainAccuracy)}`]);
  return rows;
}
