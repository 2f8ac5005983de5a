/**
 * The report's sections for experiments 13 to 15 — the other norms at small
 * batches, the row-by-row LSTM, the monitor's dashboard — and their rows of the
 * summary table.
 */
import { titleOf } from './catalog.js';
import { COLORS, esc, num, pct } from './format.js';
import { lineChart, smoothCurve, type LessonsSummary, type Panel, type Summary } from './report.js';
import { NORMS, type NormKey } from './norms.js';

type Lessons = { [K in keyof LessonsSummary]: NonNullable<LessonsSummary[K]> };

const NORM_COLORS: Record<NormKey, string> = { batch: COLORS.bn, group: '#7c3aed', layer: '#059669' };
const percentAxis = { yDomain: [0, 1] as [number, number], yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1], yFormat: (v: number) => `${Math.round(v * 100)}%` };
const h2 = (n: number): string => `<h2>${n}. ${esc(titleOf(n))}</h2>`;
const span = (key: NormKey, text: string): string => `<span style="color:${NORM_COLORS[key]};font-weight:600">${text}</span>`;

// ---------------------------------------------------------------- 13

export function norms(x: Lessons['norms'], s: Summary): string {
  const at = (norm: NormKey, b: number): number => x.runs.find((r) => r.norm === norm && r.batchSize === b)!.run.finalAccuracy;
  const sizes = x.batchSizes;
  const lo = sizes[0],
    hi = sizes[sizes.length - 1];
  const range = (norm: NormKey): [number, number] => {
    const v = sizes.map((b) => at(norm, b));
    return [Math.min(...v), Math.max(...v)];
  };
  const [gLo, gHi] = range('group'),
    [lLo, lHi] = range('layer');
  const bnBest = Math.max(...sizes.map((b) => at('batch', b)));
  const others = (b: number): number => Math.max(at('group', b), at('layer', b));
  const smallBn = sizes.filter((b) => b < 8);
  const large = sizes.filter((b) => b >= 32);
  const bnLeadsLarge = large.length > 0 && large.every((b) => at('batch', b) >= others(b));
  const bnWorstSmall = at('batch', lo) < Math.min(at('group', lo), at('layer', lo)) - 0.05;
  const panel: Panel = {
    title: `Test accuracy after ${x.epochs} epoch${x.epochs === 1 ? '' : 's'} on ${x.trainSize.toLocaleString('en-US')} images, by training batch size`,
    xLabel: 'training batch size (log scale)',
    yLabel: 'test accuracy (eval mode)',
    xLog: true,
    xTicks: sizes,
    xDomain: [lo / 1.3, hi * 1.3],
    ...percentAxis,
    series: NORMS.map(({ key, name }) => ({
      name,
      color: NORM_COLORS[key],
      markers: true,
      dash: key === 'layer' ? '6 3' : undefined,
      points: sizes.map((b) => [b, at(key, b)] as [number, number]),
    })),
    notes: sizes.map((b) => ({ x: b, y: at('batch', b), text: pct(at('batch', b)), color: COLORS.bn, dy: at('batch', b) < 0.5 ? -10 : 18 })),
  };
  const rows = sizes
    .map(
      (b) =>
        `<tr><td>${b}</td><td>${num(x.runs.find((r) => r.batchSize === b)!.lr)}</td>${NORMS.map(({ key }) => `<td>${pct(at(key, b))}</td>`).join('')}</tr>`,
    )
    .join('');
  return `${h2(13)}
<p>The MLP of experiment 1 with each of the package's three norms in its hidden blocks (Linear → norm → ReLU): ${span('batch', 'BatchNorm1d')}, ${span('group', 'GroupNorm')} (32 groups of 8 and of 4 features) and ${span('layer', 'LayerNorm')}, trained on the first ${x.trainSize.toLocaleString('en-US')} training images for ${x.epochs} epoch${x.epochs === 1 ? '' : 's'} with mini-batches of ${sizes.join(', ')}, from the same weights and image order. The learning rate follows the batch (${x.lr}·B/64, the linear scaling rule), so every run moves the weights about as far per epoch. BatchNorm reaches ${pct(bnBest)} at its best and <span class="bn">${pct(at('batch', lo))}</span> at batches of ${lo} (${(100 * (bnBest - at('batch', lo))).toFixed(1)} points lower); GroupNorm stays between ${pct(gLo)} and ${pct(gHi)} at every batch size, LayerNorm between ${pct(lLo)} and ${pct(lHi)}. Why: BatchNorm normalizes each feature with the mean and variance of the batch, and a batch of ${smallBn.join(' or ')} gives estimates so noisy that training sees a different normalization at every step (with 2, every feature becomes exactly −1 or +1, see experiment 3); at test time eval mode uses running averages of those noisy statistics, which do not match what the layers were trained on. GroupNorm and LayerNorm compute their statistics over the features of each image alone: the batch size does not enter, and train and eval mode compute the same thing. ${
    bnWorstSmall
      ? `${bnLeadsLarge ? `BatchNorm is the best of the three at batches of ${large.join(' and ')} and the worst at ${lo}` : `BatchNorm is the worst of the three at batches of ${lo}`}: the lessons' rule — below about 8, use GroupNorm or LayerNorm — is what the blue line does. Between (${sizes.filter((b) => b > lo && b < 32).join(', ')}) the three are within a few points of each other here; with one seed, differences of a point or two are noise.`
      : `Here BatchNorm held up even at batches of ${lo}: with this few steps the effect is weaker than the lessons' rule (below about 8, use GroupNorm or LayerNorm) suggests.`
  }</p>
${lineChart([panel], { experiment: 13, title: titleOf(13), height: 380 })}
<table><thead><tr><th>batch size</th><th>lr</th>${NORMS.map(({ key, name }) => `<th style="color:${NORM_COLORS[key]}">${name}</th>`).join('')}</tr></thead><tbody>${rows}</tbody></table>`;
}

// ---------------------------------------------------------------- 14

const LSTM_NAMES = { none: 'no norm', batch: 'BatchNorm per step', layer: 'LayerNorm' } as const;
const LSTM_COLORS = { none: COLORS.plain, batch: COLORS.bn, layer: NORM_COLORS.layer } as const;

export function lstm(x: Lessons['lstm']): string {
  const run = (n: 'none' | 'batch' | 'layer') => x.runs.find((r) => r.norm === n)!;
  const none = run('none'),
    bn = run('batch'),
    ln = run('layer');
  const spe = none.stepsPerEpoch;
  const window = Math.max(3, Math.round(spe / 4));
  const loss: Panel = {
    title: `Training loss (moving average of ${window} steps)`,
    xLabel: 'epoch',
    yLabel: 'cross-entropy',
    xDomain: [0, x.epochs],
    series: x.runs.map((r) => ({ name: LSTM_NAMES[r.norm], color: LSTM_COLORS[r.norm], points: smoothCurve(r.stepLoss, spe, window) })),
  };
  const acc: Panel = {
    title: 'Test accuracy every half epoch (eval mode)',
    xLabel: 'epoch',
    yLabel: 'test accuracy',
    xDomain: [0, x.epochs],
    xTicks: Array.from({ length: 2 * x.epochs + 1 }, (_, i) => i / 2),
    ...percentAxis,
    series: x.runs.map((r) => ({
      name: LSTM_NAMES[r.norm],
      color: LSTM_COLORS[r.norm],
      markers: true,
      points: r.curve,
    })),
  };
  const evalGap = bn.trainModeAccuracy - bn.finalAccuracy;
  const ranking = [...x.runs].sort((a, b) => b.finalAccuracy - a.finalAccuracy).map((r) => `${LSTM_NAMES[r.norm]} ${pct(r.finalAccuracy)}`);
  return `${h2(14)}
<p>Seed 004's <code>BatchNormLSTM</code>: each image is a sequence of 28 rows of 28 pixels, read by an LSTM with ${x.hidden} hidden units; a Linear layer classifies the last hidden state. The BatchNorm variant normalizes the input's gate pre-activations (W<sub>x</sub>·x<sub>t</sub>) and the recurrent ones (W<sub>h</sub>·h<sub>t−1</sub>) with two BatchNorm1d modules called once per time step; backpropagation through time takes the 28 steps last-in first-out, each through the context its own forward returned (<code>bn.backward(dy, { of: y })</code>). LayerNorm normalizes the same two pre-activations of each image alone. ${x.trainSize.toLocaleString('en-US')} training images, ${x.epochs} epoch${x.epochs === 1 ? '' : 's'} of batches of ${x.batchSize}, Adam at ${x.lr}, the same initial weights; tested on ${x.testSize} images. After training: ${ranking.join(', ')}.${
    Math.max(...x.runs.map((r) => r.finalAccuracy)) < 0.5
      ? ' (This run is too short for an LSTM to learn much — an LSTM reading rows needs a few thousand images before its accuracy takes off — so these numbers are close to chance and say little; the default run trains 2,000 images for 2 epochs.)'
      : ''
  } ${
    ln.finalAccuracy > none.finalAccuracy
      ? 'Normalizing the gates keeps them out of the flat ends of the sigmoid and tanh whatever the scale of the weights, which speeds up early training. '
      : ''
  }BatchNorm's training-mode accuracy on the same test images (batches of 256, their own statistics) is ${pct(bn.trainModeAccuracy)}${Math.abs(evalGap) >= 0.01 ? `, ${(100 * Math.abs(evalGap)).toFixed(1)} points ${evalGap > 0 ? 'above' : 'below'} eval mode` : ', about the same as eval mode'}: the seed's model shares one pair of BatchNorm1d modules across all 28 steps, so its running statistics average the statistics of every step (and mostly of the last ones: momentum 0.1 over 28 calls a batch), while at step 1 the recurrent input is h<sub>0</sub> = 0 and its batch variance is exactly 0. This is why the lessons say "RNNs → use LayerNorm": batch statistics differ from time step to time step, and a BatchNorm-LSTM done right (Cooijmans et al., 2016) keeps separate statistics per step and starts γ at 0.1. LayerNorm has none of this: no running statistics, nothing shared across the batch.</p>
${lineChart([loss, acc], { experiment: 14, title: titleOf(14) })}`;
}

// ---------------------------------------------------------------- 15

export function dashboard(d: Lessons['monitor'], s: Summary): string {
  const metrics = [
    { key: 'outMean', title: 'output mean', y: 'mean', log: false },
    { key: 'outStd', title: 'output std', y: 'std', log: false },
    { key: 'gradNorm', title: 'gradient norm', y: '‖∂L/∂y‖ (log)', log: true },
    { key: 'gradStd', title: 'gradient std', y: 'std of ∂L/∂y (log)', log: true },
  ] as const;
  const epochs = s.config.epochs;
  const panels: Panel[] = d.layers.flatMap((layer, i) =>
    metrics.map((m) => ({
      title: `BN ${i + 1}: ${m.title}`,
      xLabel: 'epoch',
      yLabel: m.y,
      yLog: m.log,
      xDomain: [0, epochs] as [number, number],
      series: [
        {
          name: m.title,
          hideLegend: true,
          color: COLORS.channels[i % COLORS.channels.length],
          width: 1.6,
          points: d.steps.map((st, j) => [st / d.stepsPerEpoch, d[m.key][i][j]] as [number, number]),
        },
      ],
    })),
  );
  const first = (k: (typeof metrics)[number]['key'], i: number): number => d[k][i][0];
  const last = (k: (typeof metrics)[number]['key'], i: number): number => d[k][i][d[k][i].length - 1];
  const words = d.layers
    .map(
      (l, i) =>
        `${esc(l)}: output std ${num(first('outStd', i))} → ${num(last('outStd', i))}, mean ${num(first('outMean', i))} → ${num(last('outMean', i))}, gradient norm ${num(first('gradNorm', i))} → ${num(last('gradNorm', i))}`,
    )
    .join('; ');
  return `${h2(15)}
<p>What a training dashboard would show for the BatchNorm model of experiment 1: the package's <code>monitor(modules)</code> puts a forward hook and a backward hook on each BatchNorm1d and records, at every call, the mean and std of the module's output and the norm and std of the gradient that comes back into it (one pass, float64). The demo keeps one training step's record about ${d.steps.length} times over the run. ${words}. How to read it: right after BatchNorm each feature has mean 0 and std 1 before γ and β, so the output's mean and std over all features are the average β and (about) the root-mean-square γ — they move only as γ and β learn, slowly and smoothly; a jump there, or a std collapsing toward 0, is the first sign of a dead layer or a too-high learning rate. The gradient norm falls as the loss falls (each batch is better fitted); a gradient norm that grows by orders of magnitude, or becomes NaN, is a divergence on its way.</p>
${lineChart(panels, { experiment: 15, title: titleOf(15), columns: 4, height: 250 })}`;
}

// ---------------------------------------------------------------- summary rows

export function summaryRows(s: Summary): string[][] {
  const L = s.lessons;
  const rows: string[][] = [];
  if (L.norms)
    for (const b of L.norms.batchSizes) {
      const at = (n: NormKey): string => pct(L.norms!.runs.find((r) => r.norm === n && r.batchSize === b)!.run.finalAccuracy);
      rows.push([`13. batch ${b}`, at('batch'), '', `GroupNorm ${at('group')}, LayerNorm ${at('layer')}`]);
    }
  if (L.lstm) {
    const r = (n: 'none' | 'batch' | 'layer') => L.lstm!.runs.find((x) => x.norm === n)!;
    rows.push([
      `14. LSTM, rows`,
      pct(r('batch').finalAccuracy),
      pct(r('none').finalAccuracy),
      `LayerNorm ${pct(r('layer').finalAccuracy)}; BN in train mode ${pct(r('batch').trainModeAccuracy)}`,
    ]);
  }
  if (L.monitor)
    L.monitor.layers.forEach((l, i) => {
      const m = L.monitor!;
      const ends = (a: number[]): string => `${num(a[0])} → ${num(a[a.length - 1])}`;
      rows.push([`15. BN layer ${i + 1}`, `out std ${ends(m.outStd[i])}`, '', `grad norm ${ends(m.gradNorm[i])}`]);
    });
  return rows;
}
