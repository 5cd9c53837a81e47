/**
 * Could a secondary take the primary's place now? A pure answer from the records, the list of
 * repositories in each secondary's scope and the time: no I/O, so `geo-sync ready`, the listener's
 * status page and any other door compute it the same way.
 */
import { overallStatus, type RepositoryRecord } from './record.js';

/**
 * Where the repositories in scope came from: the primary's catalog now, the listing the fan-out
 * that came just before made of it (on AWS), or the records alone (the primary not asked, or not
 * answering).
 */
export type ScopeSource = 'primary' | 'fan-out' | 'records';

/** Why one repository keeps its secondary from ready, the most urgent first; `ready` when it does not. */
export const REPOSITORY_STATES = ['needs-human', 'failed', 'mismatch', 'never-verified', 'unverified', 'stale', 'ready'] as const;
export type RepositoryReadiness = (typeof REPOSITORY_STATES)[number];

export interface ReadinessInput {
  /** Each secondary with the repositories in its scope; `undefined`: take them from the records. */
  secondaries: { name: string; repositories?: readonly string[] }[];
  source: ScopeSource;
  /** Why the records were the source (`--offline`, or the primary's error). */
  sourceNote?: string;
  records: readonly RepositoryRecord[];
  now: number;
  /** How recent a verification must be for its repository to count as ready. */
  maxAgeMs: number;
}

export interface NotReadyRepository {
  repository: string;
  state: Exclude<RepositoryReadiness, 'ready'>;
  detail: string;
}

export interface SecondaryReadiness {
  secondary: string;
  /** ready: every repository verified synced within the window; unknown: nothing to tell it from. */
  status: 'ready' | 'not-ready' | 'unknown';
  source: ScopeSource;
  repositories: number;
  counts: Record<RepositoryReadiness, number>;
  /** The oldest verification among the repositories in scope (undefined: none verified). */
  oldestVerifiedAt?: string;
  oldestVerificationAgeSeconds?: number;
  lag: ReplicationLag;
  /** What keeps it from ready, the most urgent first. */
  notReady: NotReadyRepository[];
}

/** The lag of each repository's last event job that ended synced within the window: records keep only the last one per pair. */
export interface ReplicationLag {
  basis: 'last event job per repository, finished within the window';
  events: number;
  p50Seconds?: number;
  p99Seconds?: number;
}

export interface Readiness {
  /** 0 every secondary ready, 1 some not ready, 3 some could not be told. */
  exitCode: 0 | 1 | 3;
  source: ScopeSource;
  sourceNote?: string;
  maxAgeSeconds: number;
  at: string;
  /** Worst first: unknown, then not ready (most repositories not ready first), then ready. */
  secondaries: SecondaryReadiness[];
}

export function readiness(input: ReadinessInput): Readiness {
  const secondaries = input.secondaries.map((entry) => secondaryReadiness(entry, input)).sort(worstFirst);
  const statuses = secondaries.map((s) => s.status);
  const exitCode = statuses.includes('unknown') ? 3 : statuses.includes('not-ready') ? 1 : 0;
  const note = input.sourceNote ? { sourceNote: input.sourceNote } : {};
  return { exitCode, source: input.source, ...note, maxAgeSeconds: input.maxAgeMs / 1000, at: new Date(input.now).toISOString(), secondaries };
}

function secondaryReadiness(entry: ReadinessInput['secondaries'][number], input: ReadinessInput): SecondaryReadiness {
  const own = new Map(input.records.filter((r) => r.secondary === entry.name).map((r) => [r.repository, r]));
  const names = [...(entry.repositories ?? own.keys())].sort();
  const counts = Object.fromEntries(REPOSITORY_STATES.map((state) => [state, 0])) as Record<RepositoryReadiness, number>;
  const notReady: NotReadyRepository[] = [];
  for (const repository of names) {
    const record = own.get(repository);
    const state = repositoryReadiness(record, input.now, input.maxAgeMs);
    counts[state]++;
    if (state !== 'ready') notReady.push({ repository, state, detail: detailOf(state, record, input.now) });
  }
  notReady.sort((a, b) => REPOSITORY_STATES.indexOf(a.state) - REPOSITORY_STATES.indexOf(b.state) || a.repository.localeCompare(b.repository));
  const inScope = names.flatMap((name) => (own.has(name) ? [own.get(name)!] : []));
  const verified = inScope.flatMap((r) => (r.verifiedAt ? [r.verifiedAt] : [])).sort();
  const unknown = input.source === 'records' && names.length === 0;
  return {
    secondary: entry.name,
    status: unknown ? 'unknown' : notReady.length === 0 ? 'ready' : 'not-ready',
    source: input.source,
    repositories: names.length,
    counts,
    ...(verified[0] ? { oldestVerifiedAt: verified[0], oldestVerificationAgeSeconds: ageSeconds(verified[0], input.now) } : {}),
    lag: replicationLag(inScope, input.now, input.maxAgeMs),
    notReady,
  };
}

/** One repository's readiness on one secondary; no record at all is a repository never synced nor verified. */
export function repositoryReadiness(record: RepositoryRecord | undefined, now: number, maxAgeMs: number): RepositoryReadiness {
  if (!record) return 'never-verified';
  if (record.syncState === 'guard-held' || record.syncState === 'deletes-refused' || record.syncState === 'tags-refused') return 'needs-human';
  if (record.syncState === 'failed' || record.verifyState === 'failed') return 'failed';
  if (record.verifyState === 'mismatch') return 'mismatch';
  if (!record.verifiedAt) return 'never-verified';
  if (overallStatus(record) !== 'synced') return 'unverified';
  return now - Date.parse(record.verifiedAt) > maxAgeMs ? 'stale' : 'ready';
}

function detailOf(state: Exclude<RepositoryReadiness, 'ready'>, record: RepositoryRecord | undefined, now: number): string {
  if (!record) return 'never synced nor verified';
  switch (state) {
    case 'needs-human':
      return `${record.syncState}: ${record.syncError ?? 'a person decides'}`;
    case 'failed':
      return record.syncState === 'failed' ? `sync failed: ${record.syncError ?? 'no detail'}` : `verify failed: ${record.verifyError ?? 'no detail'}`;
    case 'mismatch':
      return `checksums differ (${differenceText(record)})`;
    case 'never-verified':
      return 'never verified';
    case 'unverified':
      return record.syncState === 'synced' ? 'written since its last verification' : `sync ${record.syncState}`;
    case 'stale':
      return `last verified ${Math.round(ageSeconds(record.verifiedAt!, now) / 3600)}h ago`;
  }
}

function differenceText(record: RepositoryRecord): string {
  const d = record.differences;
  if (!d) return 'no detail';
  const named = (what: string, count: number, first: string[]) =>
    count > 0 ? [`${what} ${count}${first.length ? `: ${first.slice(0, 3).join(', ')}` : ''}`] : [];
  const referrers = d.referrers ? d.referrers.missing + d.referrers.extra + d.referrers.mismatched : 0;
  const parts = [
    ...named('missing', d.missing, d.firstMissing),
    ...named('extra', d.extra, d.firstExtra),
    ...named('re-pointed', d.mismatched, d.firstMismatched),
    ...(referrers > 0 ? [`referrers ${referrers}`] : []),
  ];
  return parts.join('; ') || 'no tag differences recorded';
}

/** p50 and p99 (nearest rank) of the lag of each repository's last event job that ended synced within the window. */
export function replicationLag(records: readonly RepositoryRecord[], now: number, windowMs: number): ReplicationLag {
  const lags = records
    .filter((r) => r.lastEvent?.status === 'synced' && r.lagSeconds !== undefined && now - Date.parse(r.lastEvent.finishedAt) <= windowMs)
    .map((r) => r.lagSeconds!)
    .sort((a, b) => a - b);
  const basis = 'last event job per repository, finished within the window' as const;
  if (lags.length === 0) return { basis, events: 0 };
  return { basis, events: lags.length, p50Seconds: percentile(lags, 0.5), p99Seconds: percentile(lags, 0.99) };
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], fraction: number): number {
  const rank = Math.max(1, Math.ceil(fraction * sorted.length));
  return sorted[rank - 1]!;
}

function ageSeconds(iso: string, now: number): number {
  return Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
}

function worstFirst(a: SecondaryReadiness, b: SecondaryReadiness): number {
  const rank = { unknown: 0, 'not-ready': 1, ready: 2 } as const;
  return rank[a.status] - rank[b.status] || b.notReady.length - a.notReady.length || a.secondary.localeCompare(b.secondary);
}

/** `90m`, `25h`, `2d` as milliseconds; undefined for anything else. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d{1,6})([mhd])$/.exec(text.trim());
  if (!match) return undefined;
  const n = Number(match[1]);
  if (n === 0) return undefined;
  return n * { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'm' | 'h' | 'd'];
}
