/** The confirm stage: the primary asked again about what the run wrote, so a mix of old and new is never called synced. */
import { GeoSyncError, errorMessage } from '../base/errors.js';
import type { EngineLogger } from '../base/log.js';
import type { Repository } from '../base/oci.js';
import type { PrimaryTagMap } from './planner.js';
import { cancelUploads } from './replicate.js';
import type { Pair, PlannedSync } from './plan.js';
import type { TagSkip } from './stages.js';
import type { PipelineOutcome, SyncReader } from './stages.js';

/**
 * The confirm stage: the primary asked again about what was written (an empty plan wrote nothing
 * that could mix with changes on the primary), then the upload sessions settled. A run that reads
 * only some tags keeps the sessions it did not reach (they belong to other tags' blobs), as when out of time.
 */
export async function confirmStage(pair: Pair, planned: PlannedSync, reader: SyncReader, primaryNow: PrimaryTagMap, logger: EngineLogger): Promise<void> {
  const { outcome, deadline, book } = planned;
  const written = new Map<string, string | null>([...outcome.writes.written, ...outcome.removals.removed.map((tag) => [tag, null] as const)]);
  if (written.size > 0 && !deadline.wasPassed) outcome.changed = notNamedYet(outcome, await confirm(reader, pair.repository, primaryNow, written));
  outcome.outOfTime = deadline.wasPassed;
  const keepOthers = deadline.wasPassed || !reader.policy.ownsUnreachedUploads;
  await cancelUploads(pair.secondary, pair.repository, book.released(keepOthers), 'no longer needed', logger);
  outcome.uploads = book.unfinished(keepOthers);
}

/**
 * The primary may gain, lose or move tags while we write: it is asked again, so the run says
 * 'differences', never 'synced' over a mix of the old and the new state. A primary that cannot be
 * asked fails the run: what was written stands, but nobody may call it synced.
 */
async function confirm(reader: SyncReader, repository: Repository, planned: PrimaryTagMap, written: ReadonlyMap<string, string | null>): Promise<TagSkip[]> {
  try {
    return await reader.changesOnPrimary(planned, written);
  } catch (error) {
    throw new GeoSyncError(
      'CONFIRMATION_FAILED',
      `${repository}: ${written.size} tag(s) written, but the primary could not be read again to confirm nothing changed meanwhile (${errorMessage(error)}); run again`,
      { retryable: error instanceof GeoSyncError && error.retryable, cause: error },
    );
  }
}

/** The confirmation's changes, but for tags already named as failed or skipped. */
function notNamedYet(outcome: PipelineOutcome, changes: TagSkip[]): TagSkip[] {
  const { read, writes, removals } = outcome;
  const named = new Set(
    [...read.failed, ...read.skipped, ...writes.failed, ...writes.skipped, ...removals.failed, ...removals.skipped].map((entry) => entry.tag),
  );
  return changes.filter((change) => !named.has(change.tag));
}

/**
 * Why a confirmation names a tag the run left at `expected` (null: absent; undefined: present,
 * digest unread) and the primary now holds at `now` (null: absent).
 */
export function changeOnPrimary(expected: string | null | undefined, now: string | null): string {
  const reason =
    now === null
      ? 'deleted on the primary during the sync'
      : expected === null
        ? 'added on the primary during the sync'
        : `moved on the primary during the sync (now ${now})`;
  return `${reason}; run again`;
}
