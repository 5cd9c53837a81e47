// The pure decision for a message that finds its pair's lease held: drop or defer, and how long.
// Its twin lease-held-message.ts acts on it (reads the record, drops or re-sends, logs and counts).
// No request may be lost: the message is dropped only when the holder already does its work, else
// sent again later.
import { DEFAULT_MAX_PRUNE } from '../engine/index.js';
import type { RepositoryRecord } from './record.js';

export type LeaseHolder = NonNullable<RepositoryRecord['leaseHolder']>;

/** The work a message asks for, and when it was asked for (epoch ms). */
export interface LeaseWork {
  kind: LeaseHolder['kind'];
  deep: boolean;
  requestedAt: number;
  /** A sync's prune limit, when a human raised it: a holder under a lower limit may remove less. */
  maxPrune?: number;
}

export type WhenHeld = { kind: 'drop' } | { kind: 'defer'; delayMs: number };

/** A deferred message waits at least this long, so a holder that has only just started is not asked again at once. */
export const MIN_DEFER_MS = 5_000;
/** Even a lease about to expire (or already released) is asked again no sooner than this. */
const FLOOR_MS = 1_000;

/**
 * The holder does at least this work: the same kind, at least as deep, under at least the same
 * prune limit, and started no earlier than the request, so it reads both registries as they were
 * when the work was asked for, or later.
 * A duplicate delivery of the message that holds the lease is the usual case.
 */
export function holderCovers(holder: LeaseHolder, work: LeaseWork): boolean {
  const limit = (lease: { maxPrune?: number }) => lease.maxPrune ?? DEFAULT_MAX_PRUNE;
  // An event job (targeted) reads only its own tags: it covers no other work.
  return !holder.targeted && holder.kind === work.kind && (holder.deep || !work.deep) && limit(holder) >= limit(work) && holder.startedAt >= work.requestedAt;
}

/**
 * Drop when a live holder covers the work; otherwise defer: a sync behind a verify, a verify
 * behind a sync, a deep verify behind a shallow one, a request newer than the holder's start, or
 * a holder that does not say what it does.
 */
export function whenLeaseHeld(work: LeaseWork, record: RepositoryRecord | undefined, now: number): WhenHeld {
  const holder = record?.leaseHolder;
  const untilFree = (record?.leaseExpiresAt ?? now) - now;
  if (holder && untilFree >= 0 && holderCovers(holder, work)) return { kind: 'drop' };
  // Wait about as long as the holder has run so far: a short job is waited for briefly, and a
  // long one is not asked again often (each deferral about doubles the wait). Never past the lease.
  const ranMs = holder ? now - holder.startedAt : 0;
  // An event job holding it takes a second or so: asked again after a second, not five.
  const least = holder?.targeted ? FLOOR_MS : MIN_DEFER_MS;
  return { kind: 'defer', delayMs: Math.max(FLOOR_MS, Math.min(Math.max(ranMs, least), untilFree)) };
}
