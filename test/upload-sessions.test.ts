// Chunked uploads, the pure parts: chunk sizing, which kept sessions to resume, keep or cancel,
// and how the record keeps them; plus the file store's saveProgress. No registry needed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SyncReport } from '../shared/engine/index.js';
import {
  CHUNK_TARGET_MS,
  FIRST_CHUNK_BYTES,
  MAX_CHUNK_BYTES,
  MIN_CHUNK_BYTES,
  SESSION_MAX_AGE_MS,
  UploadBook,
  nextChunkBytes,
  shownUploads,
  sortKeptSessions,
  uploadsAdvanced,
  type UploadSession,
} from '../shared/engine/sync/upload-session.js';
import { afterSync, afterSyncError, newRecord, MAX_CONTINUATIONS, type RepositoryRecord } from '../shared/jobs/record.js';
import { FileStateStore } from '../shared/local/file-store.js';

const MB = 1024 * 1024;
const NOW = Date.parse('2030-01-01T00:00:00Z');
const D = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const session = (n: number, offset: number, overrides: Partial<UploadSession> = {}): UploadSession => ({
  digest: D(n),
  location: `http://secondary/v2/a/blobs/uploads/u${n}?_state=s${offset}`,
  offset,
  size: 100 * MB,
  startedAt: NOW - 60_000,
  ...overrides,
});

describe('nextChunkBytes', () => {
  it.each([
    ['before any measurement', undefined, 60_000, 100 * MB, FIRST_CHUNK_BYTES],
    ['CHUNK_TARGET_MS of the measured throughput', 6 * MB, 60_000, 100 * MB, (6 * MB * CHUNK_TARGET_MS) / 1000],
    ['the time left when the deadline is nearer', 6 * MB, 2_000, 100 * MB, 12 * MB],
    ['at least MIN_CHUNK_BYTES on a crawling link', 10_000, 60_000, 100 * MB, MIN_CHUNK_BYTES],
    ['at least MIN_CHUNK_BYTES with the deadline at hand', 6 * MB, 0, 100 * MB, MIN_CHUNK_BYTES],
    ['at most MAX_CHUNK_BYTES on a fast link', 1000 * MB, 60_000, 10_000 * MB, MAX_CHUNK_BYTES],
    ['never past the end of the blob', 6 * MB, 60_000, 3 * MB, 3 * MB],
  ])('%s', (_name, bytesPerSecond, msLeft, remaining, expected) => {
    expect(nextChunkBytes({ bytesPerSecond, msLeft, remaining })).toBe(expected);
  });
});

describe('sortKeptSessions', () => {
  it('resumes fresh sessions by digest, cancels those past the age bound, and of two for one digest keeps the newer', () => {
    const old = session(1, 5 * MB, { startedAt: NOW - SESSION_MAX_AGE_MS - 1 });
    const fresh = session(2, 5 * MB);
    const older = session(3, 9 * MB, { startedAt: NOW - 120_000 });
    const newer = session(3, 1 * MB, { location: 'http://secondary/v2/a/blobs/uploads/other', startedAt: NOW - 1_000 });

    const sorted = sortKeptSessions([old, fresh, older, newer], NOW);

    expect([...sorted.resumable.values()]).toEqual([fresh, newer]);
    expect(sorted.stale).toEqual([old, older]);
  });
});

describe('uploadsAdvanced', () => {
  it.each([
    ['a session moved on', [session(1, 10 * MB)], [session(1, 40 * MB)], true],
    ['a first session with bytes', undefined, [session(1, 4 * MB)], true],
    ['nothing moved', [session(1, 10 * MB)], [session(1, 10 * MB)], false],
    ['a fresh session still behind the old one', [session(1, 80 * MB)], [session(1, 30 * MB, { location: 'new' })], false],
    ['no sessions at all', undefined, undefined, false],
  ])('%s: %s', (_name, before, after, expected) => {
    expect(uploadsAdvanced(before, after)).toBe(expected);
  });
});

describe('UploadBook', () => {
  it('saves every chunk with all sessions to keep, in order, and ends with what is left', async () => {
    const saves: UploadSession[][] = [];
    const unreached = session(2, 7 * MB);
    const book = new UploadBook([session(1, 10 * MB), unreached], NOW, async (sessions) => {
      saves.push(sessions);
    });

    const claimed = book.claim(D(1))!;
    await Promise.all([book.progress({ ...claimed, offset: 20 * MB }), book.progress({ ...claimed, offset: 30 * MB })]);

    expect(book.claim(D(1))).toBeUndefined(); // handed out once
    expect(saves.map((sessions) => sessions.map((s) => s.offset))).toEqual([
      [20 * MB, 7 * MB],
      [30 * MB, 7 * MB],
    ]);
    // Out of time: the unreached session is kept; a finished run released it.
    expect(book.unfinished(true).map((s) => s.offset)).toEqual([30 * MB, 7 * MB]);
    expect(book.unfinished(false).map((s) => s.offset)).toEqual([30 * MB]);
    expect(book.released(true)).toEqual([]);
    expect(book.released(false)).toEqual([unreached]);
  });

  it('releases the session of a blob found present, keeps nothing of a settled one, and never cancels the stale twice', () => {
    const stale = session(3, 1 * MB, { startedAt: NOW - SESSION_MAX_AGE_MS - 1 });
    const present = session(1, 10 * MB);
    const book = new UploadBook([present, session(2, 5 * MB), stale], NOW);

    book.present(D(1));
    book.claim(D(2));
    book.settle(D(2));

    expect(book.stale).toEqual([stale]);
    expect(book.unfinished(true)).toEqual([]);
    expect(book.released(true)).toEqual([present]);
  });
});

describe('afterSync with upload sessions', () => {
  const key = { repository: 'g/p', secondary: 'eu' };
  const policy = { baseMs: 1_000, capMs: 30_000 };
  const report = (overrides: Partial<SyncReport>): SyncReport => ({
    repository: 'g/p',
    status: 'incomplete',
    dryRun: false,
    plan: { copy: [{ tag: 'v1', primary: D(9) }], repair: [], remove: [] },
    done: { copied: [], repaired: [], removed: [] },
    failed: [],
    skipped: [],
    primaryTags: 1,
    secondaryTags: 0,
    bytesCopied: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    durationMs: 5,
    ...overrides,
  });
  const record = (overrides: Partial<RepositoryRecord> = {}): RepositoryRecord => ({ ...newRecord(key, NOW), ...overrides });

  it('keeps the unfinished sessions, and does not count a continuation whose upload advanced', () => {
    const next = afterSync(record({ continuations: 3, uploads: [session(1, 10 * MB)] }), report({ uploads: [session(1, 50 * MB)] }), NOW, policy, () => 0);
    expect(next).toMatchObject({ syncState: 'pending', continuations: 3, uploads: [session(1, 50 * MB)] });
  });

  it('counts a continuation that moved no upload, and fails at MAX_CONTINUATIONS as before', () => {
    const stuck = report({ uploads: [session(1, 10 * MB)] });
    expect(afterSync(record({ continuations: 3, uploads: [session(1, 10 * MB)] }), stuck, NOW, policy, () => 0)).toMatchObject({ continuations: 4 });
    const last = afterSync(record({ continuations: MAX_CONTINUATIONS, uploads: [session(1, 10 * MB)] }), stuck, NOW, policy, () => 0);
    expect(last).toMatchObject({ syncState: 'failed', uploads: [session(1, 10 * MB)] });
  });

  it('drops the field once nothing is unfinished', () => {
    const next = afterSync(
      record({ uploads: [session(1, 10 * MB)] }),
      report({ status: 'synced', done: { copied: ['v1'], repaired: [], removed: [] } }),
      NOW,
      policy,
      () => 0,
    );
    expect(next).toMatchObject({ syncState: 'synced' });
    expect(next).not.toHaveProperty('uploads');
  });

  it('keeps the sessions of a record whose sync threw, to resume after the retry', () => {
    const next = afterSyncError(record({ uploads: [session(1, 10 * MB)] }), new Error('registry down'), NOW, policy, () => 0);
    expect(next).toMatchObject({ syncState: 'failed', uploads: [session(1, 10 * MB)] });
  });
});

describe('saveProgress on the file store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'upload-progress-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the sessions only while the owner holds the lease, and removes the field when none are left', async () => {
    const store = new FileStateStore(dir);
    const key = { repository: 'progress/app', secondary: 'eu' };
    await store.acquireLease(key, { owner: 'me', expiresAt: NOW + 60_000 }, NOW);

    expect(await store.saveProgress(key, 'someone-else', [session(1, 5)])).toBe(false);
    expect(await store.get(key)).not.toHaveProperty('uploads');
    expect(await store.saveProgress(key, 'me', [session(1, 5)])).toBe(true);
    expect(await store.get(key)).toMatchObject({ uploads: [session(1, 5)], leaseOwner: 'me' });
    expect(await store.saveProgress(key, 'me', [])).toBe(true);
    expect(await store.get(key)).not.toHaveProperty('uploads');
  });
});

describe('shownUploads', () => {
  it('shows digest, offset, size and age, never the Location with its signed state', () => {
    const shown = shownUploads([session(1, 5 * MB)]);
    expect(shown).toEqual([{ digest: D(1), offset: 5 * MB, size: 100 * MB, startedAt: NOW - 60_000 }]);
    expect(JSON.stringify(shown)).not.toContain('_state');
  });
});
