// The bench's table: one row per figure (ours, the peer, their ratio, the goal), printed as
// Markdown, and a CPU profile summary printed under it.
import type { ProfileSummary } from './profile.js';

export interface Row {
  size: number | 'all';
  measure: string;
  unit: string;
  ours: number;
  peer?: number;
  peerName: string;
  /** ours / peer. */
  ratio?: number;
  target: string;
  meets?: boolean;
}

export function formatTable(rows: Row[]): string {
  const header = ['tags', 'measure', 'ours', 'peer', 'ours/peer', 'target', 'meets'];
  const body = rows.map((r) => [
    String(r.size),
    r.measure,
    value(r.ours, r.unit),
    r.peer === undefined ? '-' : `${value(r.peer, r.unit)} (${r.peerName})`,
    r.ratio === undefined ? '-' : `${r.ratio.toFixed(r.ratio < 0.1 ? 3 : 2)}x`,
    r.target,
    r.meets === undefined ? '' : r.meets ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((line) => line[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

export function formatProfile(name: string, summary: ProfileSummary): string {
  const list = (entries: ProfileSummary['byFile']) =>
    entries.map((e) => `    ${String(e.ms).padStart(6)} ms ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.name}`).join('\n');
  return `cpu profile: ${name} (${summary.totalMs} ms wall in the profiled process)\n  self time by file:\n${list(summary.byFile)}\n  self time by function:\n${list(summary.byFunction)}\n`;
}

function value(n: number, unit: string): string {
  if (unit === 's') return `${n.toFixed(n < 10 ? 2 : 1)} s`;
  if (unit === 'req/tag') return `${n.toFixed(3)}/tag`;
  if (unit === 'req/manifest') return `${n.toFixed(2)}/manifest`;
  if (unit === 'req/1000 tags') return `${n.toFixed(1)}/1000 tags`;
  if (unit === 'MB') return `${n.toFixed(0)} MB`;
  return `${Math.round(n)} ${unit}`;
}
