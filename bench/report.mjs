#!/usr/bin/env node
// Regenerates bench/results/RESULTS.md and bench/results/results.svg from run.mjs's JSON.
//
//   node bench/report.mjs RUN.json [MORE.json ...] [--md bench/results/RESULTS.md] [--svg bench/results/results.svg]
//
// The first file is the main run (chart, summary tables); each further file
// (e.g. a --cold run) adds its own summary section and full table.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BYTES_PER_ELEMENT, OPS, SHAPES } from './lib/common.mjs';

/**
 * @typedef {import('./lib/common.mjs').Row} Row
 * @typedef {import('./lib/common.mjs').Op} Op
 * @typedef {{ threadCounts: number[], cold: boolean, command: string, date: string, seconds: number, machine: Record<string, any>, [field: string]: any }} Meta
 * @typedef {{ file: string, meta: Meta, copy: Record<number, { gbps: number, startGbps: number, endGbps: number }>, skipped?: Array<{ impl: string, key?: string, reason: string }>, rows: Row[] }} Run
 *   One JSON file of run.mjs, and the path it was read from.
 * @typedef {{ shape: string, layout: string, label: string, note: string }} Case
 * @typedef {{ id: string, label: string, short: string, color?: string | null, get: (c: Case, op: Op) => Row | undefined }} Series
 *   One implementation compared: a column of the tables, a bar of the chart.
 */

const HERE = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
/** @type {string[]} */
const files = [];
let mdPath = join(HERE, 'results', 'RESULTS.md'),
  svgPath = join(HERE, 'results', 'results.svg');
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--md') mdPath = resolve(argv[++i]);
  else if (argv[i] === '--svg') svgPath = resolve(argv[++i]);
  else if (argv[i] === '--help') {
    console.log('usage: node bench/report.mjs RUN.json [MORE.json ...] [--md FILE] [--svg FILE]');
    process.exit(0);
  } else files.push(argv[i]);
}
if (!files.length) {
  console.error('usage: node bench/report.mjs RUN.json [MORE.json ...] [--md FILE] [--svg FILE]');
  process.exit(2);
}
/** @type {Run[]} */
const runs = files.map((f) => ({ file: f, ...JSON.parse(readFileSync(f, 'utf8')) }));
const main = runs[0];
const M = main.meta.machine;

// ---------------------------------------------------------------- series

/** @type {Case[]} */
const CASES = SHAPES.flatMap((s) =>
  s.layouts.map((layout) => ({ shape: s.id, layout, label: `${s.id.replace(/x/g, '×')} ${layout.toUpperCase()}`, note: s.note })),
);
const ISA_ORDER = ['avx512', 'avx2', 'scalar'];

/**
 * The implementations compared, as columns (tables) and bars (chart), for one run.
 * @param {Run} run
 * @returns {Series[]}
 */
function seriesOf(run) {
  const rows = run.rows;
  const N = Math.max(...run.meta.threadCounts);
  const isas = ISA_ORDER.filter((i) => rows.some((r) => r.impl === 'native' && r.isa === i));
  const has = (/** @type {(r: Row) => boolean} */ p) => rows.some(p);
  /** @type {Series[]} */
  const S = [];
  /** @type {(pred: (r: Row, c: Case) => boolean) => Series['get']} */
  const pick = (pred) => (c, op) => rows.filter((r) => r.op === op && r.shape === c.shape && pred(r, c)).sort((a, b) => a.medianMs - b.medianMs)[0];
  for (const [i, isa] of isas.entries()) {
    for (const t of i === 0 ? [...new Set([N, 1])] : [N]) {
      if (!has((r) => r.impl === 'native' && r.isa === isa && r.threads === t)) continue;
      S.push({
        id: `native-${isa}-t${t}`,
        label: `batchnorm ${isa}, ${T(t)}`,
        short: `${isa} ×${t}`,
        color: null,
        get: pick((r, c) => r.impl === 'native' && r.isa === isa && r.threads === t && r.api === 'functional' && r.layout === c.layout),
      });
    }
  }
  if (has((r) => r.impl === 'js'))
    S.push({
      id: 'js',
      label: 'batchnorm pure JS, 1 thread',
      short: 'pure JS',
      get: pick((r, c) => r.impl === 'js' && r.api === 'functional' && r.layout === c.layout),
    });
  /** @type {(impl: string, label: string, short: string, extra?: (r: Row, c: Case) => boolean, threads?: number) => void} */
  const peer = (impl, label, short, extra = () => true, threads = N) => {
    const get = pick((r, c) => r.impl === impl && r.threads === threads && extra(r, c));
    if (OPS.some((op) => CASES.some((c) => get(c, op)))) S.push({ id: `${impl}-${short}`, label, short, get });
  };
  const ver = (/** @type {string} */ impl) => rows.find((r) => r.impl === impl)?.version ?? '';
  const torchIsas = [...new Set(rows.filter((r) => r.impl === 'pytorch').map((r) => r.isa))];
  peer(
    'pytorch',
    `PyTorch ${ver('pytorch')}, ${T(N)}${torchIsas.length > 1 ? ` (best of ${torchIsas.join('/')})` : ''}`,
    'PyTorch',
    (r, c) => r.layout === c.layout,
  );
  peer('onednn', `oneDNN ${ver('onednn')}, same layout, ${T(N)}`, 'oneDNN', (r, c) => r.layout === c.layout);
  peer('onednn', `oneDNN ${ver('onednn')}, nChw16c (blocked), ${T(N)}`, 'oneDNN 16c', (r, c) => r.layout === 'nchw16c' && c.layout === 'nchw');
  peer('onnxruntime', `onnxruntime-node ${ver('onnxruntime')}, ${T(N)}`, 'ORT', (r, c) => r.layout === c.layout);
  peer('tfjs-wasm', `TF.js ${ver('tfjs-wasm')} wasm, 1 thread`, 'TF.js wasm', (r, c) => r.layout === c.layout, 1);
  peer('tfjs-cpu', `TF.js ${ver('tfjs-cpu')} cpu, 1 thread`, 'TF.js cpu', (r, c) => r.layout === c.layout, 1);
  const palette = ['#1f4e99', '#5b8fd9', '#2a9d8f', '#8ab17d', '#e9c46a', '#e76f51', '#9b5de5', '#c77dff', '#6c757d', '#f4a261', '#bc6c25', '#adb5bd'];
  S.forEach((s, i) => (s.color = palette[i % palette.length]));
  return S;
}

// ---------------------------------------------------------------- formatting

const fgb = (/** @type {number} */ g) => (g >= 10 ? g.toFixed(1) : g >= 1 ? g.toFixed(2) : g.toPrecision(2));
const fms = (/** @type {number} */ ms) =>
  ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms >= 0.1 ? ms.toFixed(3) : ms.toFixed(4);
const esc = (/** @type {unknown} */ s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const T = (/** @type {number} */ t) => (t === 1 ? '1 thread' : `${t} threads`);

/** @param {Run} run */
function machineLines(run) {
  const m = run.meta.machine;
  return [
    `- **CPU**: ${m.cpu} (${m.cpuFamilyModel}), ${m.cpus} vCPUs${m.hypervisor ? ' under a hypervisor (KVM), shared host' : ''}; SIMD: ${m.simdFlags.join(', ')}`,
    `- **Caches**: ${m.caches.join('; ')}`,
    `- **Memory**: ${m.memGiB} GiB; **OS**: ${m.os}`,
    `- **Node** ${m.node} (V8 ${m.v8}); **batchnorm** ${m.package} (commit ${m.commit ?? '?'}${m.dirty ? ', uncommitted changes' : ''}); addon ISAs: ${(run.meta.capabilities ?? []).join(', ') || 'n/a'}`,
    `- **Other load**: load average ${m.loadavg.join(', ')} at the start, ${(run.meta.loadavgEnd ?? []).join(', ') || '?'} at the end; CPUs busy with other processes just before the run ${run.meta.backgroundCpusStart ?? '?'}, just after ${run.meta.backgroundCpusEnd ?? '?'} (of ${m.cpus})`,
  ];
}

/**
 * The commit a run measured, as run.mjs recorded it (`git rev-parse HEAD`; dirty: tracked files differed from it).
 * @param {Run} run
 */
function measuredCommit(run) {
  const m = run.meta.machine;
  if (!m.commit) return 'an unknown commit (not run from a git checkout)';
  return `commit \`${m.commit}\`${m.dirty ? ' with uncommitted changes to tracked files (the figures may not match any commit)' : ' (clean tree)'}`;
}

/** @param {Run} run */
function copyLine(run) {
  return run.meta.threadCounts
    .map(
      (/** @type {number} */ t) =>
        `${T(t)} **${run.copy[t].gbps.toFixed(1)} GB/s** (start ${run.copy[t].startGbps.toFixed(1)}, end ${run.copy[t].endGbps.toFixed(1)})`,
    )
    .join('; ');
}

/**
 * @param {Run} run
 * @param {Op} op
 */
function pivot(run, op) {
  const S = seriesOf(run);
  const lines = [`| ${op} | ${S.map((s) => s.short).join(' | ')} |`, `|---|${S.map(() => '---:').join('|')}|`];
  for (const c of CASES) {
    const cells = S.map((s) => {
      const r = s.get(c, op);
      return r ? `${fms(r.medianMs)} ms<br>**${fgb(r.gbps)}**` : '–';
    });
    if (cells.every((x) => x === '–')) continue;
    lines.push(`| ${c.label} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** @param {Run} run */
function legend(run) {
  return seriesOf(run)
    .map((s) => `**${s.short}**: ${s.label}`)
    .join(' · ');
}

/** @param {Run} run */
function fullTable(run) {
  const head = '| impl | api | isa | thr | op | shape | layout | median ms | GB/s | % copy | × vs JS | samples |';
  const sep = '|---|---|---|---:|---|---|---|---:|---:|---:|---:|---:|';
  const body = run.rows.map(
    (r) =>
      `| ${r.impl} | ${r.api} | ${r.isaDetail && r.impl === 'onednn' ? `${r.isa} (${r.isaDetail})` : r.isa} | ${r.threads} | ${r.op} | ${r.shape} | ${r.layout} | ${fms(r.medianMs)} | ${fgb(r.gbps)} | ${r.pctCopy.toFixed(0)}% | ${r.vsJs == null ? '' : (r.vsJs < 1 ? r.vsJs.toPrecision(2) : r.vsJs.toFixed(1)) + '×'} | ${r.samples}${r.callsPerSample > 1 ? `×${r.callsPerSample}` : ''} |`,
  );
  return [head, sep, ...body].join('\n');
}

/** @param {Run} run */
function speedupSummary(run) {
  // Median over the cases of native (best ISA, all threads, functional) ÷ JS, and vs each peer at the same thread count.
  const S = seriesOf(run);
  const best = S[0];
  if (!best || !best.id.startsWith('native')) return '';
  /** @type {string[]} */
  const out = [];
  for (const s of S.slice(1)) {
    /** @type {number[]} */
    const ratios = [];
    for (const op of OPS)
      for (const c of CASES) {
        const a = best.get(c, op),
          b = s.get(c, op);
        if (a && b) ratios.push(b.medianMs / a.medianMs);
      }
    if (!ratios.length) continue;
    ratios.sort((x, y) => x - y);
    const med = ratios[ratios.length >> 1];
    out.push(`| ${s.label} | ${ratios.length} | ${med.toFixed(2)}× | ${ratios[0].toFixed(2)}× | ${ratios[ratios.length - 1].toFixed(2)}× |`);
  }
  return [
    `Time of each implementation ÷ time of **${best.label}** (functional API), over the cases both ran (> 1: batchnorm is faster):`,
    '',
    '| vs | cases | median | min | max |',
    '|---|---:|---:|---:|---:|',
    ...out,
  ].join('\n');
}

// ---------------------------------------------------------------- SVG

/** @param {Run} run */
function svgChart(run) {
  const S = seriesOf(run);
  const N = Math.max(...run.meta.threadCounts);
  const cases = CASES.filter((c) => OPS.some((op) => S.some((s) => s.get(c, op))));
  const W = 1180,
    left = 64,
    right = 16,
    panelH = 250,
    top = 96,
    gapY = 70,
    bottomPad = 40;
  // Legend layout first: its height moves the panels down.
  /** @type {Array<[number, number]>} */
  const legendPos = [];
  let lx = left,
    ly = 60;
  for (const s of S) {
    const w = 16 + s.label.length * 5.9 + 14;
    if (lx + w > W - right) {
      lx = left;
      ly += 16;
    }
    legendPos.push([lx, ly]);
    lx += w;
  }
  const topY = Math.max(top, ly + 36);
  const H = topY + OPS.length * (panelH + gapY) + bottomPad - gapY + 20;
  const groupW = (W - left - right) / cases.length;
  const barW = Math.max(3, Math.min(14, (groupW - 14) / S.length));
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(
    `<text x="${left}" y="22" font-size="15" font-weight="bold">BatchNorm throughput, GB/s (higher is better) — ${esc(M.cpu)}, ${M.cpus} vCPUs, ${run.meta.cold ? 'cold caches' : 'hot caches'}</text>`,
  );
  out.push(
    `<text x="${left}" y="40" fill="#444">Effective GB/s: forward 8 B/element (read x, write y), backward 12 B/element (read x, dy; write dx). Dashed: copy bandwidth (${run.meta.threadCounts.map((t) => `${T(t)} ${run.copy[t].gbps.toFixed(1)}`).join(', ')} GB/s). ${esc(run.meta.date.slice(0, 10))}.</text>`,
  );
  S.forEach((s, i) => {
    const [x, y] = legendPos[i];
    out.push(`<rect x="${x}" y="${y - 9}" width="11" height="11" fill="${s.color}"/><text x="${x + 15}" y="${y}">${esc(s.label)}</text>`);
  });
  OPS.forEach((op, p) => {
    const y0 = topY + p * (panelH + gapY);
    const vals = cases.flatMap((c) => S.map((s) => s.get(c, op)?.gbps ?? 0));
    const copyMax = Math.max(...run.meta.threadCounts.map((t) => run.copy[t].gbps));
    const vmax = Math.max(...vals, copyMax) * 1.08;
    const step = [5, 10, 20, 25, 50, 100, 200].find((s) => vmax / s <= 8) ?? 500;
    const ymax = Math.ceil(vmax / step) * step;
    const Y = (/** @type {number} */ v) => y0 + panelH - (v / ymax) * panelH;
    out.push(
      `<text x="${left}" y="${y0 - 10}" font-size="13" font-weight="bold">${op}${op === 'backward' ? (S.some((x) => x.id.startsWith('tfjs')) ? ' (TF.js: forward + backward via tf.grads)' : '') : op === 'forward-eval' ? '' : ' (batch statistics + running-stat update)'}</text>`,
    );
    for (let v = 0; v <= ymax; v += step) {
      out.push(`<line x1="${left}" x2="${W - right}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${left - 6}" y="${Y(v) + 4}" text-anchor="end" fill="#555">${v}</text>`);
    }
    out.push(`<text transform="translate(${left - 44} ${y0 + panelH / 2}) rotate(-90)" text-anchor="middle" fill="#555">GB/s</text>`);
    cases.forEach((c, g) => {
      const gx = left + g * groupW + (groupW - barW * S.length) / 2;
      S.forEach((s, k) => {
        const r = s.get(c, op);
        if (!r) return;
        const v = Math.min(r.gbps, ymax);
        out.push(
          `<rect x="${(gx + k * barW).toFixed(1)}" y="${Y(v).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(y0 + panelH - Y(v)).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.label} — ${c.label} ${op}: ${fgb(r.gbps)} GB/s, ${fms(r.medianMs)} ms`)}</title></rect>`,
        );
      });
      out.push(`<text x="${left + g * groupW + groupW / 2}" y="${y0 + panelH + 15}" text-anchor="middle">${esc(c.label)}</text>`);
      out.push(`<text x="${left + g * groupW + groupW / 2}" y="${y0 + panelH + 28}" text-anchor="middle" fill="#777" font-size="10">${esc(c.note)}</text>`);
    });
    for (const t of run.meta.threadCounts) {
      const y = Y(run.copy[t].gbps);
      out.push(`<line x1="${left}" x2="${W - right}" y1="${y}" y2="${y}" stroke="#d62828" stroke-dasharray="${t === 1 ? '3 3' : '8 4'}" stroke-width="1.2"/>`);
      out.push(`<text x="${W - right - 2}" y="${t === 1 ? y + 11 : y - 3}" text-anchor="end" fill="#d62828" font-size="10">copy, ${T(t)}</text>`);
    }
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y0 + panelH}" y2="${y0 + panelH}" stroke="#333"/>`);
  });
  void N;
  out.push('</svg>');
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------- Markdown

/**
 * @param {Run} run
 * @param {boolean} isMain
 */
function section(run, isMain) {
  const N = Math.max(...run.meta.threadCounts);
  const s = [];
  s.push(`## ${run.meta.cold ? 'Cold caches' : 'Hot caches'}${isMain ? '' : ` (${basename(run.file)})`}`);
  s.push('');
  s.push(
    `Command: \`${run.meta.command}\` — ${run.meta.date}, ${run.rows.length} rows in ${Math.round(run.meta.seconds)} s. ` +
      (run.meta.cold
        ? "Before each timed call 128 MiB of other memory was read and written (not timed), split across as many threads as the row uses (the peers' harnesses: their OpenMP threads), so the tensors come from DRAM."
        : 'The same buffers every call: tensors up to ~L3 size (32 MB) partly stay in cache, so small shapes exceed the DRAM copy bandwidth.'),
  );
  s.push('');
  s.push(`Copy bandwidth in this run: ${copyLine(run)}.`);
  s.push('');
  s.push(speedupSummary(run));
  s.push('');
  for (const op of OPS) {
    s.push(`### ${op}: median time and **GB/s**`);
    s.push('');
    s.push(pivot(run, op));
    s.push('');
  }
  s.push(legend(run) + '. Package columns use the functional API with `out` buffers (the module API is within noise of it: see the full table).');
  s.push('');
  if (run.skipped?.length) {
    s.push('Skipped: ' + run.skipped.map((x) => `${x.impl}${x.key ? ` ${x.key}` : ''} (${x.reason})`).join('; ') + '.');
    s.push('');
  }
  s.push(`<details><summary>All ${run.rows.length} rows (${run.meta.cold ? 'cold' : 'hot'})</summary>`);
  s.push('');
  s.push(fullTable(run));
  s.push('');
  s.push('</details>');
  s.push('');
  void N;
  return s.join('\n');
}

const runCmd = (/** @type {Run} */ r) => {
  const opts = r.meta.command
    .replace(/^node bench\/run\.mjs\s*/, '')
    .replace(/--json\s+\S+/, '')
    .replace(/\s+/g, ' ')
    .trim();
  return `node bench/run.mjs ${opts ? opts + ' ' : ''}--json ${relative(process.cwd(), resolve(r.file))}`;
};
const regen = `${runs.map(runCmd).join(' && ')} && node bench/report.mjs ${runs.map((r) => relative(process.cwd(), resolve(r.file))).join(' ')}`;
const peersVersions = [
  ...new Map(
    runs
      .flatMap((r) => r.rows)
      .filter((r) => r.version)
      .map((r) => [r.impl, `${r.impl} ${r.version}`]),
  ).values(),
];

const md = [];
md.push('# Benchmark results');
md.push('');
const commits = [...new Set(runs.map(measuredCommit))];
const where = (/** @type {Run} */ r) => `\`${relative(dirname(mdPath), resolve(r.file))}\``;
md.push(`Generated by \`node bench/report.mjs\` on ${new Date().toISOString().slice(0, 10)} from ${runs.map(where).join(', ')}.`);
md.push(commits.length === 1 ? `Measured at ${commits[0]}.` : `Measured at ${runs.map((r) => `${measuredCommit(r)} (${where(r)})`).join(', ')}.`);
md.push(`Regenerate everything (about ${Math.ceil(runs.reduce((a, r) => a + r.meta.seconds, 0) / 60)} min) with`);
md.push('');
md.push('```sh');
md.push('npm run bench:results');
md.push(`# = ${regen}`);
md.push('```');
md.push('');
md.push('## Machine');
md.push('');
md.push(...machineLines(main));
md.push(`- **Peers**: ${peersVersions.join(', ') || 'none'}`);
md.push('');
md.push('![GB/s per shape and implementation](results.svg)');
md.push('');
md.push('## How to read this');
md.push('');
md.push(
  [
    `- **median ms**: the median over samples. Package rows: benchmark.js (each sample is the mean of several calls; ${main.meta.settings.native.minSamples}+ samples, up to ${main.meta.settings.native.maxTime} s per row native, ${main.meta.settings.js.maxTime} s pure JS) in hot mode; a manual loop with one call per sample in cold mode. Peers: each call timed on its own (${main.meta.settings.peerIters} calls after ${main.meta.settings.peerWarmup} warm-up; TF.js wasm ${main.meta.settings.tfjsIters}, TF.js cpu ${main.meta.settings.slowIters}).`,
    ...(main.meta.repeat > 1
      ? [
          `- **Repeats**: each run made ${main.meta.repeat} passes over every row (TF.js cpu: one); a row shows its fastest pass, the least disturbed by other work on the host (all passes: \`passesMs\` in the JSON).`,
        ]
      : []),
    `- **GB/s**: the minimum traffic of the op ÷ time: ${Object.entries(BYTES_PER_ELEMENT)
      .map(([k, v]) => `${k} ${v} B/element`)
      .join(
        ', ',
      )}. The statistics pass of the training forward and backward re-reads x (and dy), so a fused single pass reaching 100% of copy is the ideal, not a given.`,
    `- **% copy**: that ÷ the copy bandwidth of the same run at the same thread count: \`Float32Array.prototype.set\` of 128 MiB into another 128 MiB buffer (8× the L3), on one thread and split across worker_threads over a SharedArrayBuffer; GB/s counts read + write, as the ops do. The higher of the medians measured at the start and at the end of the run. Hot rows of tensors that fit in the 32 MB L3 exceed 100%.`,
    `- **× vs JS**: the pure-JS path's time ÷ this row's time, same api, op, shape and layout (peers: vs the functional JS row; oneDNN nChw16c: vs NCHW).`,
    '- **Threads**: `setNumThreads(1)` and `setNumThreads(os.availableParallelism())`; the peers get the same counts (PyTorch `torch.set_num_threads`, oneDNN `omp_set_num_threads`, onnxruntime `intraOpNumThreads`). The pure-JS path and TF.js (wasm is single-threaded under Node, cpu is plain JS) run on one thread.',
    '- **Semantics** (float32): forward-training = batch statistics, normalize, affine, running mean/var update with the unbiased variance (oneDNN updates no running statistics; onnxruntime is inference only); forward-eval = running statistics; backward = dx, dγ, dβ from the saved mean and invstd. PyTorch: `native_batch_norm` / `native_batch_norm_backward` (allocates its outputs per call; the harness reuses warm pages). TF.js: NCHW with broadcasting ops (`tf.batchNorm` with [1,C,1,1] parameters is wrong on NCHW), NHWC and (N,C) with `tf.moments` + `tf.batchNorm`; its backward is `tf.grads`, which recomputes the forward, so it times forward + backward. onnxruntime: a one-node BatchNormalization model, `session.run` with a preallocated output (async: one `setImmediate` per call). Every Node peer is checked against a float64 reference before timing.',
    `- **Noise**: a shared 2-vCPU VM: other work on the host moves 2-thread results by up to 2× between runs (1-thread within 5–20%). OpenMP peers (PyTorch, oneDNN) degrade sharply at 2 threads when the other vCPU is busy (their barriers wait for a descheduled thread). Compare within one run.`,
  ].join('\n'),
);
md.push('');
runs.forEach((r, i) => md.push(section(r, i === 0)));

writeFileSync(mdPath, md.join('\n'));
writeFileSync(svgPath, svgChart(main));
console.log(`wrote ${relative(process.cwd(), mdPath)} and ${relative(process.cwd(), svgPath)}`);
