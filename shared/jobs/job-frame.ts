/**
 * The frame every job runs in (sync, verify, event job): the pair's lease taken for the
 * invocation's budget, or the message deferred or dropped when another holds it; upload progress
 * saved under the lease; the next record written on release. Each job brings only its work.
 */
import { randomUUID } from 'node:crypto';
import { GeoSyncError, type UploadSession } from '../engine/index.js';
import { leaseHeld, type LeaseHeld } from './lease-held-message.js';
import type { SyncMessage, VerifyMessage } from './messages.js';
import type { Queue, Runtime } from './ports.js';
import type { RepositoryRecord } from './record.js';
import { LEASE_GRACE_MS } from './timing.js';

/** What a job's work gets from the frame. */
export interface Leased {
  /** The pair's record as the lease was taken. */
  record: RepositoryRecord;
  /** Saves upload sessions under the lease after each chunk (the invocation may be killed); throws LEASE_LOST once the lease is gone. */
  saveProgress(sessions: UploadSession[]): Promise<void>;
  /** The sessions as last saved: what a failed run leaves in the record for the next to resume. */
  readonly savedUploads: UploadSession[] | undefined;
}

export interface JobFrame<M extends SyncMessage | VerifyMessage> {
  kind: 'sync' | 'verify';
  /** How the job is named in its log lines ("sync", "verify", "event job"). */
  name: string;
  message: M;
  /** The queue a deferred message goes back to. */
  queue: Queue<M>;
  /** Ms the lease is taken for (before the grace). */
  leaseMs: number;
  /** The record's fields set as the lease is taken (who holds it, and for what). */
  holder: Partial<RepositoryRecord>;
}

/** The work ran and its record was written, or the lease expired first (`released: false`: a later job supersedes it). */
export type FrameOutcome<T> = { kind: 'ran'; released: boolean; next: RepositoryRecord; result: T } | LeaseHeld;

/**
 * Takes the pair's lease and runs `work`, which returns the next record and whatever the job
 * reports; the record is written only while the lease is still this invocation's.
 */
export async function underLease<M extends SyncMessage | VerifyMessage, T>(
  frame: JobFrame<M>,
  runtime: Runtime,
  now: number,
  work: (leased: Leased) => Promise<{ next: RepositoryRecord; result: T }>,
): Promise<FrameOutcome<T>> {
  const { store, logger } = runtime;
  const key = { repository: frame.message.repository, secondary: frame.message.secondary };
  const owner = randomUUID();
  const record = await store.acquireLease(key, { owner, expiresAt: now + frame.leaseMs + LEASE_GRACE_MS }, now, frame.holder);
  if (!record) return leaseHeld(frame.kind, frame.message, frame.queue, runtime, now);

  let savedUploads = record.uploads;
  const leased: Leased = {
    record,
    async saveProgress(sessions) {
      if (!(await store.saveProgress(key, owner, sessions)))
        throw new GeoSyncError('LEASE_LOST', `${key.repository}: the ${frame.name}'s lease was lost during a chunked upload`);
      savedUploads = sessions;
    },
    get savedUploads() {
      return savedUploads;
    },
  };
  const { next, result } = await work(leased);
  const released = await store.release(next, owner);
  if (!released) logger.warn(`${frame.name} lease expired before the result was recorded; a later ${frame.name} supersedes it`, key);
  return { kind: 'ran', released, next, result };
}
