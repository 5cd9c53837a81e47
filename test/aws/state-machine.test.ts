// The pure state machine of one (repository, secondary): no I/O, no mocks.
import { describe, expect, it } from 'vitest';
import type { SyncReport } from '../../shared/engine/index.js';
import { DirectRequest, FanOutRequest, SyncMessage, parseInput } from '../../shared/jobs/index.js';
import {
  admitSync,
  afterSync,
  afterSyncError,
  newRecord,
  overallStatus,
  retryDelayMs,
  FIRST_TAGS,
  MAX_CONTINUATIONS,
  type RepositoryRecord,
} from '../../shared/jobs/record.js';

const policy = { baseMs: 1_000, capMs: 30_000 };
const NOW = Date.parse('2030-01-01T00:00:00Z');
const key = { repository: 'g/p', secondary: 'eu' };

function report(overrides: Partial<SyncReport> = {}): SyncReport {
  return {
    repository: 'g/p',
    status: 'synced',
    dryRun: false,
    plan: { copy: [], repair: [], remove: [] },
    done: { copied: [], repaired: [], removed: [] },
    failed: [],
    skipped: [],
    primaryTags: 1,
    secondaryTags: 1,
    bytesCopied: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    durationMs: 5,
    ...overrides,
  };
}
const failedRecord = (retryCount: number, nextRetryAt: number): RepositoryRecord => ({
  ...newRecord(key, NOW),
  syncState: 'failed',
  retryCount,
  nextRetryAt: new Date(nextRetryAt).toISOString(),
});

describe('retryDelayMs: capped exponential backoff with equal jitter', () => {
  it.each([
    [1, 500, 1_000],
    [2, 1_000, 2_000],
    [3, 2_000, 4_000],
    [5, 8_000, 16_000],
    [6, 15_000, 30_000],
    [40, 15_000, 30_000],
  ])('retry %i waits between %i and %i ms', (count, min, max) => {
    expect(retryDelayMs(count, policy, () => 0)).toBe(min);
    expect(retryDelayMs(count, policy, () => 1)).toBe(max);
  });
});

describe('admitSync', () => {
  it.each([
    ['a first sync', undefined, {}, { kind: 'run' }],
    ['a scheduled sync during the backoff', failedRecord(2, NOW + 5_000), {}, { kind: 'skip', reason: 'backing-off' }],
    ['a scheduled sync after the backoff', failedRecord(2, NOW - 1), {}, { kind: 'run' }],
    ['a manual (forced) sync during the backoff', failedRecord(2, NOW + 5_000), { force: true }, { kind: 'run' }],
    ['the due retry', failedRecord(2, NOW - 1), { retry: 2 }, { kind: 'run' }],
    ['an early retry', failedRecord(2, NOW + 5_000), { retry: 2 }, { kind: 'defer', delayMs: 5_000 }],
    ['a retry for an older failure', failedRecord(3, NOW - 1), { retry: 2 }, { kind: 'skip', reason: 'stale-retry' }],
    ['a retry after a success', { ...newRecord(key, NOW), syncState: 'synced' as const }, { retry: 1 }, { kind: 'skip', reason: 'stale-retry' }],
    ['a continuation', failedRecord(2, NOW + 5_000), { continuation: 1 }, { kind: 'run' }],
  ])('%s', (_name, record, extra, expected) => {
    expect(admitSync(record, { ...key, ...extra }, NOW)).toEqual(expected);
  });
});

describe('afterSync', () => {
  it('a success resets the retry count, clears the error and marks verification pending when it wrote', () => {
    const next = afterSync(failedRecord(3, NOW), report({ done: { copied: ['a'], repaired: [], removed: [] } }), NOW, policy, () => 0);
    expect(next).toMatchObject({ syncState: 'synced', retryCount: 0, verifyState: 'pending', lastSync: { copied: 1 } });
    expect(next).not.toHaveProperty('nextRetryAt');
    expect(next).not.toHaveProperty('syncError');
  });

  it('a failure counts up from the previous count and schedules the next retry', () => {
    const next = afterSync(failedRecord(3, NOW), report({ status: 'failed', failed: [{ tag: 'x', error: 'boom' }] }), NOW, policy, () => 0);
    expect(next).toMatchObject({
      syncState: 'failed',
      retryCount: 4,
      syncError: '1 tag(s) failed, first x: boom',
      nextRetryAt: new Date(NOW + 4_000).toISOString(),
    });
  });

  it('a held guard is recorded as guard-held with its reason: no retry, the retry count left as it was', () => {
    const next = afterSync(
      failedRecord(2, NOW + 5_000),
      report({ status: 'differences', guard: { reason: 'would remove 9 of 10 tags' }, done: { copied: ['a'], repaired: [], removed: [] } }),
      NOW,
      policy,
      () => 0,
    );
    expect(next).toMatchObject({
      syncState: 'guard-held',
      retryCount: 2,
      syncError: expect.stringMatching(
        /^would remove 9 of 10 tags\. Check the primary's tag listing, then raise the prune limit \(maxPrune in a manual invoke/,
      ),
      verifyState: 'pending',
      lastSync: { status: 'differences', copied: 1 },
    });
    expect(next).not.toHaveProperty('nextRetryAt');
    // The next scheduled run looks again at once; a retry scheduled before is stale.
    expect(admitSync(next, key, NOW)).toEqual({ kind: 'run' });
    expect(admitSync(next, { ...key, retry: 2 }, NOW)).toEqual({ kind: 'skip', reason: 'stale-retry' });
    expect(overallStatus({ ...next, verifyState: 'failed' })).toBe('guard-held');
  });

  it('refused deletes are recorded as deletes-refused, naming the tags left (at most FIRST_TAGS of them): no retry', () => {
    const tags = Array.from({ length: FIRST_TAGS + 2 }, (_, i) => `old-${String(i).padStart(2, '0')}`);
    const refused = { reason: 'the secondary refuses deletes (405 Method Not Allowed on DELETE)', tags };
    const next = afterSync(newRecord(key, NOW), report({ status: 'differences', removalRefused: refused }), NOW, policy, () => 0);
    expect(next).toMatchObject({ syncState: 'deletes-refused', retryCount: 0 });
    expect(next.syncError).toBe(
      `the secondary refuses deletes (405 Method Not Allowed on DELETE); 12 extra tag(s) left in place: ${tags.slice(0, FIRST_TAGS).join(', ')} and 2 more`,
    );
    expect(next).not.toHaveProperty('nextRetryAt');
    expect(admitSync(next, key, NOW)).toEqual({ kind: 'run' });
    expect(overallStatus({ ...next, verifyState: 'synced' })).toBe('deletes-refused');
  });

  it('a held guard wins over refused deletes; failed tags win over both, and are retried', () => {
    const both = report({ status: 'differences', guard: { reason: 'would remove 9 of 10 tags' }, removalRefused: { reason: 'deletes refused', tags: ['x'] } });
    expect(afterSync(newRecord(key, NOW), both, NOW, policy, () => 0)).toMatchObject({
      syncState: 'guard-held',
      syncError: expect.stringMatching(/^would remove 9 of 10 tags\. /),
    });
    const failing = report({ status: 'failed', failed: [{ tag: 't', error: 'boom' }], guard: { reason: 'would remove 9 of 10 tags' } });
    expect(afterSync(newRecord(key, NOW), failing, NOW, policy, () => 0)).toMatchObject({
      syncState: 'failed',
      retryCount: 1,
      syncError: '1 tag(s) failed, first t: boom; the prune guard also held: would remove 9 of 10 tags',
      nextRetryAt: new Date(NOW + 500).toISOString(),
    });
  });

  it('a success after a held guard clears the reason', () => {
    const held = afterSync(newRecord(key, NOW), report({ status: 'differences', guard: { reason: 'would remove 9 of 10 tags' } }), NOW, policy, () => 0);
    const next = afterSync(held, report({ done: { copied: [], repaired: [], removed: ['x'] } }), NOW, policy, () => 0);
    expect(next).toMatchObject({ syncState: 'synced', retryCount: 0 });
    expect(next).not.toHaveProperty('syncError');
  });

  it('an incomplete run stays pending and counts continuations, up to a limit', () => {
    expect(afterSync(newRecord(key, NOW), report({ status: 'incomplete' }), NOW, policy, () => 0)).toMatchObject({
      syncState: 'pending',
      continuations: 1,
      retryCount: 0,
    });
    const exhausted = afterSync({ ...newRecord(key, NOW), continuations: MAX_CONTINUATIONS }, report({ status: 'incomplete' }), NOW, policy, () => 0);
    expect(exhausted).toMatchObject({ syncState: 'failed', retryCount: 1 });
    expect(exhausted).not.toHaveProperty('continuations');
  });

  it('an error drops the lease and keeps only the message', () => {
    const next = afterSyncError({ ...newRecord(key, NOW), leaseOwner: 'me', leaseExpiresAt: NOW + 1 }, new Error('registry down'), NOW, policy, () => 0);
    expect(next).toMatchObject({ syncState: 'failed', syncError: 'registry down', retryCount: 1 });
    expect(next).not.toHaveProperty('leaseOwner');
  });
});

describe('overallStatus', () => {
  it.each([
    [{ syncState: 'synced', verifyState: 'synced' }, 'synced'],
    [{ syncState: 'synced', verifyState: 'pending' }, 'unverified'],
    [{ syncState: 'synced', verifyState: 'failed' }, 'mismatch'],
    [{ syncState: 'failed', verifyState: 'synced' }, 'failed'],
    [{ syncState: 'started', verifyState: 'pending' }, 'started'],
    [{ syncState: 'guard-held', verifyState: 'synced' }, 'guard-held'],
    [{ syncState: 'guard-held', verifyState: 'failed' }, 'guard-held'],
    [{ syncState: 'deletes-refused', verifyState: 'failed' }, 'deletes-refused'],
  ] as const)('%o is %s', (states, expected) => {
    expect(overallStatus({ ...newRecord(key, NOW), ...states })).toBe(expected);
  });
});

describe('maxPrune in messages and invocations', () => {
  type Schema = Parameters<typeof parseInput<unknown>>[0];
  it.each<[string, Schema, Record<string, unknown>]>([
    ['a sync message', SyncMessage, { ...key, maxPrune: 0.8 }],
    ['a manual sync invoke', DirectRequest, { repository: 'g/p', maxPrune: 1 }],
    ['a fan-out of syncs', FanOutRequest, { prefix: 'g/', maxPrune: 0 }],
  ])('%s accepts a number from 0 to 1', (_name, schema, input) => {
    expect(parseInput(schema, input)).toMatchObject({ maxPrune: input.maxPrune });
  });

  it.each<[Schema, unknown, RegExp]>([
    [SyncMessage, { ...key, maxPrune: 1.5 }, /maxPrune: maxPrune must be a number from 0 to 1/],
    [DirectRequest, { repository: 'g/p', maxPrune: -0.1 }, /maxPrune: maxPrune must be a number from 0 to 1/],
    [DirectRequest, { repository: 'g/p', maxPrune: '1' }, /maxPrune: maxPrune must be a number from 0 to 1/],
    [FanOutRequest, { target: 'verify', maxPrune: 1 }, /"maxPrune" applies to syncs only/],
  ])('rejects %#', (schema, input, message) => {
    expect(() => parseInput(schema, input)).toThrow(message);
  });
});
