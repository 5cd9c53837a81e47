// The pure state machine of one (repository, secondary): no I/O, no mocks.
import { describe, expect, it } from 'vitest';
import type { SyncReport } from '../../shared/engine.js';
import { admitSync, afterSync, afterSyncError, newRecord, overallStatus, retryDelayMs, MAX_CONTINUATIONS, type RepositoryRecord } from '../../shared/state/record.js';

const policy = { baseMs: 1_000, capMs: 30_000 };
const NOW = Date.parse('2030-01-01T00:00:00Z');
const key = { repository: 'g/p', secondary: 'eu' };

function report(overrides: Partial<SyncReport> = {}): SyncReport {
  return {
    repository: 'g/p', status: 'synced', dryRun: false, plan: { copy: [], repair: [], remove: [] },
    done: { copied: [], repaired: [], removed: [] }, failed: [], skipped: [], primaryTags: 1, secondaryTags: 1,
    bytesCopied: 0, blobsCopied: 0, blobsMounted: 0, durationMs: 5, ...overrides,
  };
}
const failedRecord = (retryCount: number, nextRetryAt: number): RepositoryRecord => ({ ...newRecord(key, NOW), syncState: 'failed', retryCount, nextRetryAt: new Date(nextRetryAt).toISOString() });

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
    expect(next).toMatchObject({ syncState: 'failed', retryCount: 4, syncError: '1 tag(s) failed, first x: boom', nextRetryAt: new Date(NOW + 4_000).toISOString() });
  });

  it('a held guard is a failure with the guard\'s reason', () => {
    const next = afterSync(newRecord(key, NOW), report({ status: 'differences', guard: { reason: 'would remove 9 of 10 tags' } }), NOW, policy, () => 0);
    expect(next).toMatchObject({ syncState: 'failed', retryCount: 1, syncError: 'guard held: would remove 9 of 10 tags' });
  });

  it('an incomplete run stays pending and counts continuations, up to a limit', () => {
    expect(afterSync(newRecord(key, NOW), report({ status: 'incomplete' }), NOW, policy, () => 0)).toMatchObject({ syncState: 'pending', continuations: 1, retryCount: 0 });
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
    [{ syncState: 'synced', verifyState: 'succeeded' }, 'synced'],
    [{ syncState: 'synced', verifyState: 'pending' }, 'unverified'],
    [{ syncState: 'synced', verifyState: 'failed' }, 'mismatch'],
    [{ syncState: 'failed', verifyState: 'succeeded' }, 'failed'],
    [{ syncState: 'started', verifyState: 'pending' }, 'started'],
  ] as const)('%o is %s', (states, expected) => {
    expect(overallStatus({ ...newRecord(key, NOW), ...states })).toBe(expected);
  });
});
