// The norm rows of `npm run bench` and of bench/norms.mjs: LayerNorm, RMSNorm,
// GroupNorm and InstanceNorm2d (issue 20's shapes), forward with training
// statistics and backward, native per thread count, the WebAssembly path and
// the pure-JS path, PyTorch 1.13 alongside with `peers`. Each backend runs in
// its own child (`node bench/norms.mjs --worker CFG`: the package chooses its
// backend once per process); with `rounds` > 1 the children alternate
// (native, wasm, js, PyTorch, native, …) and a row's time is the median of its
// rounds' medians, so that a load that comes and goes on a shared machine
// touches every implementation alike.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PYTHON, median } from './common.mjs';

const NORMS = fileURLToPath(new URL('../norms.mjs', import.meta.url));
const TORCH_NORMS = fileURLToPath(new URL('../peers/torch_norms.py', import.meta.url));

/**
 * @typedef {{ key: string, impl: string, norm: string, op: string, shape: number[], threads: number, medianMs: number, minMs?: number, iters?: number, gbps?: number, mode?: string, note?: string, roundsMs?: number[], pctCopy?: number, vsJs?: number | null }} NormRow
 * @typedef {{ cold?: boolean, filter?: string, threads: number[], iters?: number, rounds?: number, peers?: boolean, backends?: string[] }} NormConfig
 */

/** Rows of one child's last stdout line, or null (its failure goes to `skipped`). */
function child(/** @type {string} */ cmd, /** @type {string[]} */ argv, /** @type {Record<string, string>} */ env) {
  const r = spawnSync(cmd, argv, { cwd: '/tmp', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return { rows: null, error: `status ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' / ')}` };
  const last = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '[]');
  return { rows: /** @type {NormRow[]} */ (Array.isArray(last) ? last : last.rows), error: null };
}

/**
 * Times every norm row: { rows, skipped }. Rows carry their median over rounds (`roundsMs` lists them).
 * @param {NormConfig} cfg
 * @returns {{ rows: NormRow[], skipped: Array<{ impl: string, reason: string }> }}
 */
export function normRows(cfg) {
  const { rounds = 1, peers = false, backends = ['native', 'wasm', 'js'] } = cfg;
  const workerCfg = { cold: !!cfg.cold, filter: cfg.filter, threads: cfg.threads, iters: cfg.iters ?? 15 };
  /** @type {Map<string, NormRow[]>} */
  const byKey = new Map();
  /** @type {Map<string, string>} */
  const failed = new Map();
  const add = (/** @type {NormRow[]} */ rows) => {
    for (const r of rows) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
  };
  for (let k = 0; k < rounds; k++) {
    for (const backend of backends) {
      if (failed.has(backend)) continue;
      const r = child(process.execPath, [NORMS, '--worker', JSON.stringify(workerCfg)], { BATCHNORM_BACKEND: backend });
      if (r.rows) add(r.rows);
      else failed.set(backend, `the ${backend} worker failed (${r.error})`);
    }
    if (peers && !cfg.cold)
      for (const t of cfg.threads) {
        if (failed.has('pytorch')) break;
        const filter = cfg.filter ? ['--filter', cfg.filter.replace(/^(native|wasm|js)\//, '')] : [];
        const r = child(PYTHON, [TORCH_NORMS, '--threads', String(t), '--iters', String(workerCfg.iters), ...filter], {});
        if (r.rows) add(r.rows);
        else failed.set('pytorch', `the PyTorch harness failed (${r.error}); is python3-torch installed?`);
      }
  }
  const skipped = [...failed].map(([impl, reason]) => ({ impl, reason }));
  if (peers && cfg.cold) skipped.push({ impl: 'pytorch', reason: 'the norm peers run with hot caches only' });
  const rows = [...byKey.values()].map((rs) => {
    const roundsMs = rs.map((r) => r.medianMs),
      medianMs = median(roundsMs);
    const r = rs[0];
    return { ...r, medianMs, minMs: Math.min(...rs.map((x) => x.minMs ?? x.medianMs)), roundsMs };
  });
  return { rows, skipped };
}

/**
 * Adds % of the copy bandwidth (same thread count; the highest counted one below for larger ones)
 * and the speed-up over the pure-JS row of the same norm, op and shape.
 * @param {NormRow[]} rows
 * @param {Record<number, { gbps: number }>} copy
 */
export function deriveNormColumns(rows, copy) {
  const counts = Object.keys(copy).map(Number);
  const copyFor = (/** @type {number} */ t) => copy[t]?.gbps ?? copy[Math.max(...counts.filter((x) => x <= t))]?.gbps;
  const js = new Map(rows.filter((r) => r.impl === 'js').map((r) => [`${r.norm}/${r.op}/${r.shape.join('x')}`, r]));
  for (const r of rows) {
    // Bytes a pass must move per element: forward reads x and writes y, backward reads x and dy and writes dx.
    r.gbps = (r.shape.reduce((a, b) => a * b, 1) * (r.op === 'forward' ? 8 : 12)) / r.medianMs / 1e6;
    const c = copyFor(r.threads);
    r.pctCopy = r.gbps !== undefined && c ? (100 * r.gbps) / c : undefined;
    const j = js.get(`${r.norm}/${r.op}/${r.shape.join('x')}`);
    r.vsJs = j ? j.medianMs / r.medianMs : null;
  }
  return rows;
}

const IMPLS = ['native', 'wasm', 'js', 'pytorch'];

/**
 * The table: one line per implementation and thread count, grouped by norm, shape and op.
 * @param {NormRow[]} rows
 */
export function formatNormRows(rows) {
  const order = (/** @type {NormRow} */ r) => `${r.norm}/${r.shape.join('x')}/${r.op}`;
  const groups = [...new Set(rows.map(order))];
  const sorted = [...rows].sort(
    (a, b) => groups.indexOf(order(a)) - groups.indexOf(order(b)) || IMPLS.indexOf(a.impl) - IMPLS.indexOf(b.impl) || a.threads - b.threads,
  );
  const head = ['impl', 'norm', 'thr', 'op', 'shape', 'median ms', 'GB/s', '% copy', '× vs JS', 'rounds ms'];
  const body = sorted.map((r) => [
    r.impl + (r.note ? ' *' : ''),
    r.norm,
    String(r.threads),
    r.op,
    r.shape.join('×'),
    r.medianMs < 1 ? r.medianMs.toFixed(4) : r.medianMs.toFixed(3),
    r.gbps === undefined ? '' : r.gbps.toFixed(1),
    r.pctCopy === undefined ? '' : r.pctCopy.toFixed(0) + '%',
    r.vsJs == null ? '' : r.vsJs.toFixed(1) + '×',
    (r.roundsMs ?? []).length > 1 ? (r.roundsMs ?? []).map((x) => x.toFixed(x < 1 ? 3 : 1)).join(' ') : '',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const right = new Set([2, 5, 6, 7, 8]);
  const fmt = (/** @type {string[]} */ cells) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(w[i]) : c.padEnd(w[i])))
      .join('  ')
      .trimEnd();
  const lines = [fmt(head), w.map((x) => '-'.repeat(x)).join('  ')];
  /** @type {string | null} */
  let prev = null;
  sorted.forEach((r, i) => {
    if (prev !== null && order(r) !== prev) lines.push('');
    prev = order(r);
    lines.push(fmt(body[i]));
  });
  lines.push(
    '',
    'norm rows: GB/s counts 8 B/element forward (x read, y written; training statistics), 12 B/element backward (x, dy read, dx written); ' +
      '% copy: of the same-run copy bandwidth at that thread count; × vs JS: pure-JS time ÷ this time.',
  );
  if (rows.some((r) => r.note))
    lines.push("* PyTorch's backward of RMSNorm (composed of its ops) and of InstanceNorm goes through autograd, its forward included.");
  return lines.join('\n');
}
