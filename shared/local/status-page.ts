/**
 * The listener's status page (`GET /status`) and its data (`GET /status.json`): what a person reads
 * during an incident. Each secondary's readiness first, then what waits for a human, the
 * replication lag of the last hour as a small chart, then every repository's last sync and
 * verification with their age. Server-rendered HTML with its style inline: no external asset, no
 * script, readable as it comes. Every value from a record or a registry is escaped.
 */
import { overallStatus, type Readiness, type RepositoryRecord } from '../jobs/index.js';

/** The chart's window: the last hour of event jobs. */
export const LAG_WINDOW_MS = 3_600_000;

export interface StatusPageData {
  at: string;
  readiness: Readiness;
  /** Pairs no retry will change: a held guard, refused deletes, a mismatch. */
  needsHuman: { secondary: string; repository: string; state: string; detail: string }[];
  /** The last event job of each pair that finished within the last hour and ended synced (records keep only the last one per pair). */
  lag: { windowSeconds: number; basis: string; points: { at: string; seconds: number; secondary: string; repository: string }[] };
  repositories: RepositoryRow[];
}

export interface RepositoryRow {
  secondary: string;
  repository: string;
  status: string;
  lastSyncAt?: string;
  lastSyncAgeSeconds?: number;
  lastSync?: string;
  verifiedAt?: string;
  verifiedAgeSeconds?: number;
  verifyState: string;
}

export function statusPageData(readiness: Readiness, records: readonly RepositoryRecord[], now: number): StatusPageData {
  const needsHuman = readiness.secondaries.flatMap(({ secondary, notReady }) =>
    notReady.filter((r) => r.state === 'needs-human' || r.state === 'mismatch').map((r) => ({ secondary, ...r })),
  );
  const points = records
    .filter((r) => r.lastEvent?.status === 'synced' && r.lagSeconds !== undefined && now - Date.parse(r.lastEvent.finishedAt) <= LAG_WINDOW_MS)
    .map((r) => ({ at: r.lastEvent!.finishedAt, seconds: r.lagSeconds!, secondary: r.secondary, repository: r.repository }))
    .sort((a, b) => a.at.localeCompare(b.at));
  const repositories = [...records]
    .sort((a, b) => a.secondary.localeCompare(b.secondary) || a.repository.localeCompare(b.repository))
    .map((r) => repositoryRow(r, now));
  const basis = 'last event job per repository that ended synced within the hour';
  return { at: new Date(now).toISOString(), readiness, needsHuman, lag: { windowSeconds: LAG_WINDOW_MS / 1000, basis, points }, repositories };
}

function repositoryRow(record: RepositoryRecord, now: number): RepositoryRow {
  const ageOf = (iso: string) => Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const last = record.lastSync;
  return {
    secondary: record.secondary,
    repository: record.repository,
    status: overallStatus(record),
    ...(last
      ? {
          lastSyncAt: last.finishedAt,
          lastSyncAgeSeconds: ageOf(last.finishedAt),
          lastSync: `${last.status}: copied ${last.copied}, repaired ${last.repaired}, removed ${last.removed}`,
        }
      : {}),
    ...(record.verifiedAt ? { verifiedAt: record.verifiedAt, verifiedAgeSeconds: ageOf(record.verifiedAt) } : {}),
    verifyState: record.verifyState,
  };
}

/** `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem;color:#111;max-width:72rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:1.75rem 0 .5rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f3f3f3}.ready{color:#0a6b2d;font-weight:700}.not-ready{color:#a30d0d;font-weight:700}.unknown{color:#8a5a00;font-weight:700}
.muted{color:#555}#readiness td:last-child{white-space:nowrap}ul{padding-left:1.25rem}svg{border:1px solid #ccc;background:#fcfcfc}`;

export function renderStatusPage(data: StatusPageData): string {
  const report = data.readiness;
  const verdict = report.exitCode === 0 ? 'Every secondary is ready' : report.exitCode === 1 ? 'Not every secondary is ready' : 'Readiness cannot be told';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>geo-sync status: ${escapeHtml(verdict)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(verdict)}</h1>
<p class="muted">As of ${escapeHtml(data.at)}. A repository counts as ready when verified synced within ${escapeHtml(windowWords(report.maxAgeSeconds))} and nothing waits for a person. ${escapeHtml(sourceWords(report))}. Data: <a href="status.json">status.json</a>.</p>
${secondariesSection(report)}
${needsHumanSection(data.needsHuman)}
${lagSection(data)}
${repositoriesSection(data.repositories)}
</body></html>
`;
}

function secondariesSection(report: Readiness): string {
  const rows = report.secondaries.map((s) => {
    const c = s.counts;
    const word = { ready: 'ready', 'not-ready': 'not ready', unknown: 'unknown' }[s.status];
    const lag = s.lag.events === 0 ? 'no recent events' : `p50 ${s.lag.p50Seconds!.toFixed(1)} s, p99 ${s.lag.p99Seconds!.toFixed(1)} s (${s.lag.events})`;
    const oldest = s.oldestVerificationAgeSeconds === undefined ? 'none' : `${ageWords(s.oldestVerificationAgeSeconds)} ago`;
    const cells = [s.secondary, s.repositories, c.ready, c.mismatch, c.failed, c['needs-human'], c['never-verified'], c.unverified + c.stale, oldest, lag];
    return `<tr><td>${escapeHtml(cells[0])}</td><td class="${s.status}">${word}</td>${cells
      .slice(1)
      .map((cell) => `<td>${escapeHtml(cell)}</td>`)
      .join('')}</tr>`;
  });
  const heads = [
    'Secondary',
    'Readiness',
    'Repositories',
    'Verified synced',
    'Mismatched',
    'Failed',
    'Waiting for a human',
    'Never verified',
    'Changed or too old',
    'Oldest verification',
    'Lag',
  ];
  const blockers = report.secondaries.filter((s) => s.notReady.length > 0).map(blockerList);
  return `<section id="readiness"><h2>Readiness of each secondary</h2>
<table><thead><tr>${heads.map((h) => `<th scope="col">${h}</th>`).join('')}</tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
${blockers.join('\n')}</section>`;
}

/** What keeps one secondary from ready: the first 20 repositories, the most urgent first. */
function blockerList(s: Readiness['secondaries'][number]): string {
  const shown = s.notReady.slice(0, 20).map((r) => `<li><strong>${escapeHtml(r.repository)}</strong>: ${escapeHtml(r.state)}: ${escapeHtml(r.detail)}</li>`);
  const more = s.notReady.length > 20 ? `<li>and ${s.notReady.length - 20} more</li>` : '';
  return `<h3>What keeps ${escapeHtml(s.secondary)} from ready</h3><ul>${shown.join('')}${more}</ul>`;
}

function needsHumanSection(needs: StatusPageData['needsHuman']): string {
  const body =
    needs.length === 0
      ? '<p>Nothing waits for a person.</p>'
      : `<ul>${needs.map((n) => `<li><strong>${escapeHtml(n.secondary)} / ${escapeHtml(n.repository)}</strong>: ${escapeHtml(n.state)}: ${escapeHtml(n.detail)}</li>`).join('')}</ul>`;
  return `<section id="needs-human"><h2>Waiting for a human</h2>${body}</section>`;
}

function lagSection(data: StatusPageData): string {
  return `<section id="lag"><h2>Replication lag, last hour</h2>
<p class="muted">Seconds from the registry's event to the secondary holding its tags; one point per repository, its ${escapeHtml(data.lag.basis)}.</p>
${lagChart(data.lag.points, Date.parse(data.at))}</section>`;
}

/** A small SVG scatter of lag against time over the last hour; the axes labelled, the figures in its title for a screen reader. */
export function lagChart(points: StatusPageData['lag']['points'], now: number): string {
  const [width, height, left, bottom] = [560, 160, 48, 24];
  const top = Math.max(1, ...points.map((p) => p.seconds));
  const x = (iso: string) => left + ((Date.parse(iso) - (now - LAG_WINDOW_MS)) / LAG_WINDOW_MS) * (width - left - 8);
  const y = (seconds: number) => height - bottom - (seconds / top) * (height - bottom - 10);
  const dots = points.map(
    (p) =>
      `<circle cx="${x(p.at).toFixed(1)}" cy="${y(p.seconds).toFixed(1)}" r="4" fill="#1f5fa8"><title>${escapeHtml(p.secondary)} / ${escapeHtml(p.repository)}: ${p.seconds.toFixed(1)} s at ${escapeHtml(p.at)}</title></circle>`,
  );
  const line =
    points.length > 1
      ? `<polyline fill="none" stroke="#1f5fa8" stroke-opacity=".4" points="${points.map((p) => `${x(p.at).toFixed(1)},${y(p.seconds).toFixed(1)}`).join(' ')}"/>`
      : '';
  const label = points.length === 0 ? 'no event jobs in the last hour' : `${points.length} event jobs in the last hour, the largest lag ${top.toFixed(1)} s`;
  const empty = points.length === 0 ? `<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#555">no event jobs in the last hour</text>` : '';
  return `<svg id="lag-chart" role="img" aria-label="${escapeHtml(label)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">
<title>Replication lag: ${escapeHtml(label)}</title>
<line x1="${left}" y1="${height - bottom}" x2="${width - 8}" y2="${height - bottom}" stroke="#888"/><line x1="${left}" y1="10" x2="${left}" y2="${height - bottom}" stroke="#888"/>
<text x="${left - 4}" y="16" text-anchor="end" font-size="11">${top.toFixed(1)} s</text><text x="${left - 4}" y="${height - bottom}" text-anchor="end" font-size="11">0 s</text>
<text x="${left}" y="${height - 6}" font-size="11">60 min ago</text><text x="${width - 8}" y="${height - 6}" text-anchor="end" font-size="11">now</text>
${line}${dots.join('')}${empty}</svg>`;
}

function repositoriesSection(rows: RepositoryRow[]): string {
  const body = rows.map((r) => {
    const sync = r.lastSyncAt ? `${ageWords(r.lastSyncAgeSeconds!)} ago (${r.lastSync})` : 'never';
    const verify = r.verifiedAt ? `${r.verifyState}, ${ageWords(r.verifiedAgeSeconds!)} ago` : 'never';
    return `<tr>${[r.secondary, r.repository, r.status, sync, verify].map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`;
  });
  const empty = rows.length === 0 ? '<p>No repository recorded yet.</p>' : '';
  return `<section id="repositories"><h2>Repositories: last sync and verification</h2>${empty}
<table><thead><tr><th scope="col">Secondary</th><th scope="col">Repository</th><th scope="col">Status</th><th scope="col">Last sync</th><th scope="col">Last verification</th></tr></thead><tbody>
${body.join('\n')}
</tbody></table></section>`;
}

function sourceWords(report: Readiness): string {
  return {
    primary: "Repositories in scope as the primary's catalog lists them now",
    'fan-out': "Repositories in scope as the fan-out just before listed the primary's catalog",
    records: `Repositories in scope as the local records know them: ${report.sourceNote ?? 'the primary was not asked'}`,
  }[report.source];
}

function windowWords(seconds: number): string {
  return seconds % 3600 === 0 ? `${seconds / 3600} hours` : `${Math.round(seconds / 60)} minutes`;
}

function ageWords(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return seconds < 48 * 3600 ? `${Math.floor(seconds / 3600)} h` : `${Math.floor(seconds / 86_400)} d`;
}
