/**
 * The one vocabulary of outcomes. A sync report, a verify report, a record's sync state, the
 * one-word status of `geo-sync status` and the sync metrics all name their outcome from this list.
 */
export const STATUSES = [
  'synced',
  'differences',
  'failed',
  'incomplete',
  'guard-held',
  'deletes-refused',
  'tags-refused',
  'mismatch',
  'unverified',
  'pending',
  'started',
] as const;
export type Status = (typeof STATUSES)[number];

/** A sync report: synced; differences (a guard held or work was skipped); failed (some tags failed); incomplete (the deadline came first). */
export type SyncStatus = Extract<Status, 'synced' | 'differences' | 'failed' | 'incomplete'>;
/** A verify report: both checksums agree (and a deep check found nothing missing), or not. */
export type VerifyStatus = Extract<Status, 'synced' | 'mismatch'>;
/** A record's sync state: waiting, running, or how the last sync ended. */
export type SyncState = Extract<Status, 'pending' | 'started' | 'synced' | 'failed' | 'guard-held' | 'deletes-refused' | 'tags-refused'>;
/** What `geo-sync status` shows: the sync state, or once synced what verification found. */
export type OverallStatus = SyncState | Extract<Status, 'mismatch' | 'unverified'>;
