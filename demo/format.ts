/** Number and HTML formatting, and the colors, shared by the demo's charts, prose and terminal summary. */

export const pct = (a: number): string => `${(100 * a).toFixed(1)}%`;
export const ms = (v: number): string => (v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function num(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3)) return v.toExponential(1).replace('e+', 'e');
  return String(Number(v.toPrecision(digits)));
}

/** The colors of the charts, and of the words that name their series in the prose. */
export const COLORS = { bn: '#2563eb', plain: '#dc2626', eval: '#059669', channels: ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#db2777'] };
