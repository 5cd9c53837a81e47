// The readiness answer as a pure function of records, the repositories in scope and the time.
import { describe, expect, it } from 'vitest';
import {
  RecordingCatalog,
  newRecord,
  parseDuration,
  percentile,
  readiness,
  replicationLag,
  repositoryReadiness,
  type Catalog,
  type RepositoryRecord,
} from '../shared/jobs/index.js';

const NOW = Date.parse('2026-12-07T12:00:00Z');
const HOUR = 3_600_000;
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();

function record(repository: string, fields: Partial<RepositoryRecord> = {}, secondary = 'dr'): RepositoryRecord {
  return { ...newRecord({ repository, secondary }, NOW - 48 * HOUR), ...fields };
}
const verified = (repository: string, agoMs = HOUR, secondary = 'dr') =>
  record(repository, { syncState: 'synced', verifyState: 'synced', verifiedAt: iso(agoMs), syncedAt: iso(agoMs) }, secondary);

describe('repositoryReadiness', () => {
  it.each<[string, RepositoryRecord | undefined, string]>([
    ['no record', undefined, 'never-verified'],
    ['synced, never verified', record('a', { syncState: 'synced' }), 'never-verified'],
    ['verified synced an hour ago', verified('a'), 'ready'],
    ['verified synced 26 hours ago', verified('a', 26 * HOUR), 'stale'],
    ['written since verified', record('a', { syncState: 'synced', verifyState: 'pending', verifiedAt: iso(HOUR) }), 'unverified'],
    ['sync pending after a verify', record('a', { syncState: 'pending', verifyState: 'synced', verifiedAt: iso(HOUR) }), 'unverified'],
    ['mismatch', record('a', { syncState: 'synced', verifyState: 'mismatch', verifiedAt: iso(HOUR) }), 'mismatch'],
    ['verify failed', record('a', { syncState: 'synced', verifyState: 'failed', verifiedAt: iso(HOUR), verifyError: 'boom' }), 'failed'],
    ['sync failed', record('a', { syncState: 'failed', verifyState: 'synced', verifiedAt: iso(HOUR) }), 'failed'],
    ['guard held', record('a', { syncState: 'guard-held', verifyState: 'synced', verifiedAt: iso(HOUR) }), 'needs-human'],
    ['tags refused (an immutable tag)', record('a', { syncState: 'tags-refused', verifyState: 'mismatch', verifiedAt: iso(HOUR) }), 'needs-human'],
    ['deletes refused', record('a', { syncState: 'deletes-refused', verifyState: 'mismatch', verifiedAt: iso(HOUR) }), 'needs-human'],
  ])('%s', (_, given, expected) => {
    expect(repositoryReadiness(given, NOW, 25 * HOUR)).toBe(expected);
  });
});

describe('readiness', () => {
  it.each<[string, Parameters<typeof readiness>[0], number, string[]]>([
    [
      'every repository verified in the window',
      { secondaries: [{ name: 'dr', repositories: ['a', 'b'] }], source: 'primary', records: [verified('a'), verified('b')], now: NOW, maxAgeMs: 25 * HOUR },
      0,
      ['ready'],
    ],
    [
      'a repository the primary lists that no record knows',
      { secondaries: [{ name: 'dr', repositories: ['a', 'b'] }], source: 'primary', records: [verified('a')], now: NOW, maxAgeMs: 25 * HOUR },
      1,
      ['not-ready'],
    ],
    [
      'records of repositories the primary no longer lists are left out',
      { secondaries: [{ name: 'dr', repositories: ['a'] }], source: 'primary', records: [verified('a'), record('gone')], now: NOW, maxAgeMs: 25 * HOUR },
      0,
      ['ready'],
    ],
    [
      'an empty primary: nothing to miss',
      { secondaries: [{ name: 'dr', repositories: [] }], source: 'primary', records: [], now: NOW, maxAgeMs: HOUR },
      0,
      ['ready'],
    ],
    [
      'from the records, none recorded: cannot tell',
      { secondaries: [{ name: 'dr' }], source: 'records', records: [], now: NOW, maxAgeMs: HOUR },
      3,
      ['unknown'],
    ],
    [
      'from the records',
      {
        secondaries: [{ name: 'dr' }, { name: 'eu' }],
        source: 'records',
        records: [verified('a'), verified('a', 30 * HOUR, 'eu')],
        now: NOW,
        maxAgeMs: 25 * HOUR,
      },
      1,
      ['not-ready', 'ready'],
    ],
  ])('%s', (_, input, exitCode, statuses) => {
    const report = readiness(input);
    expect(report.exitCode).toBe(exitCode);
    expect(report.secondaries.map((s) => s.status)).toEqual(statuses);
  });

  it('sorts the worst secondary first and, within one, the most urgent repository first; counts each state; the oldest verification', () => {
    const records = [
      verified('a', 2 * HOUR, 'east'),
      record('b', { syncState: 'guard-held', syncError: 'held', verifyState: 'synced', verifiedAt: iso(HOUR) }, 'west'),
      record(
        'a',
        {
          syncState: 'synced',
          verifyState: 'mismatch',
          verifiedAt: iso(3 * HOUR),
          differences: { missing: 1, extra: 0, mismatched: 0, firstMissing: ['v2'], firstExtra: [], firstMismatched: [] },
        },
        'west',
      ),
    ];
    const report = readiness({
      secondaries: [
        { name: 'east', repositories: ['a'] },
        { name: 'west', repositories: ['a', 'b', 'c'] },
      ],
      source: 'primary',
      records,
      now: NOW,
      maxAgeMs: 25 * HOUR,
    });
    const [west, east] = report.secondaries;
    expect(east).toMatchObject({ secondary: 'east', status: 'ready', oldestVerificationAgeSeconds: 7200 });
    expect(west!.notReady).toEqual([
      { repository: 'b', state: 'needs-human', detail: 'guard-held: held' },
      { repository: 'a', state: 'mismatch', detail: 'checksums differ (missing 1: v2)' },
      { repository: 'c', state: 'never-verified', detail: 'never synced nor verified' },
    ]);
    expect(west!.counts).toMatchObject({ ready: 0, 'needs-human': 1, mismatch: 1, 'never-verified': 1 });
    expect(west!.oldestVerifiedAt).toBe(iso(3 * HOUR));
  });
});

describe('replicationLag and percentile', () => {
  const evented = (repository: string, lagSeconds: number, finishedAgoMs: number, status: 'synced' | 'failed' = 'synced') =>
    record(repository, {
      lagSeconds,
      lastEvent: {
        at: iso(finishedAgoMs + lagSeconds * 1000),
        finishedAt: iso(finishedAgoMs),
        status,
        tags: 1,
        firstTags: ['v1'],
        copied: 1,
        repaired: 0,
        removed: 0,
      },
    });

  it('takes the synced last events within the window', () => {
    const records = [evented('a', 1, 60_000), evented('b', 3, 60_000), evented('c', 100, 60_000, 'failed'), evented('d', 50, 2 * HOUR), verified('e')];
    expect(replicationLag(records, NOW, HOUR)).toEqual({
      basis: 'last event job per repository, finished within the window',
      events: 2,
      p50Seconds: 1,
      p99Seconds: 3,
    });
    expect(replicationLag([], NOW, HOUR).events).toBe(0);
  });

  it.each([
    [[1], 0.5, 1],
    [[1, 2, 3, 4], 0.5, 2],
    [[1, 2, 3, 4], 0.99, 4],
    [Array.from({ length: 100 }, (_, i) => i + 1), 0.99, 99],
  ])('percentile(%j, %d) = %d', (values, fraction, expected) => {
    expect(percentile(values, fraction)).toBe(expected);
  });
});

describe('parseDuration', () => {
  it.each([
    ['90m', 90 * 60_000],
    ['25h', 25 * HOUR],
    ['2d', 48 * HOUR],
    [' 1h ', HOUR],
    ['0h', undefined],
    ['25', undefined],
    ['1w', undefined],
    ['1.5h', undefined],
    ['-1h', undefined],
  ])('%j', (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });
});

describe('RecordingCatalog (readiness after a fan-out reads its listing)', () => {
  /** A catalog of `names` served `size` at a time, counting the pages asked for. */
  function pagedCatalog(names: string[], size: number): Catalog & { pages: number } {
    const catalog = {
      pages: 0,
      async page({ last }: { last?: string }) {
        catalog.pages++;
        const from = last === undefined ? 0 : names.indexOf(last) + 1;
        const repositories = names.slice(from, from + size);
        return from + size < names.length ? { repositories, next: repositories.at(-1)! } : { repositories };
      },
    };
    return catalog;
  }
  const names = ['a/1', 'a/2', 'b/1', 'c/1', 'c/2'];

  it('serves a walk from the start to the end again, without asking the catalog', async () => {
    const inner = pagedCatalog(names, 2);
    const recording = new RecordingCatalog(inner);
    for (let page = await recording.page({}); page.next;) page = await recording.page({ last: page.next });
    expect(inner.pages).toBe(3);
    expect(await recording.listing!.page({})).toEqual({ repositories: names });
    expect(inner.pages).toBe(3);
  });

  it('has no listing for a walk that began at a cursor (a continued run) or stopped before the end', async () => {
    const continued = new RecordingCatalog(pagedCatalog(names, 2));
    for (let page = await continued.page({ last: 'a/2' }); page.next;) page = await continued.page({ last: page.next });
    expect(continued.listing).toBeUndefined();
    const stopped = new RecordingCatalog(pagedCatalog(names, 2));
    await stopped.page({});
    expect(stopped.listing).toBeUndefined();
  });
});
