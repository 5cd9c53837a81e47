/**
 * The one sync pipeline: plan (read, plan, guard) → apply (copy, repair, referrers, remove) →
 * confirm → the outcome each reader's caller reports. A reader says what is read (every tag of a
 * repository, or a few named tags), how the primary is asked again, and the policy that goes with
 * it; the stages never ask which kind of run they are in. `syncRepository` (repository.ts) and
 * `syncTags` (targeted-sync.ts) are the two readers in front of it.
 */
import type { Deadline } from './deadline.js';
import { GeoSyncError, errorMessage } from './errors.js';
import type { EngineLogger } from './log.js';
import type { Repository } from './oci.js';
import type { Plan, PrimaryTagMap } from './planner.js';
import type { ReferrersDone } from './referrers-plan.js';
import type { ManifestHead, Registry } from './registry/registry.js';
import { cancelUploads, type Replicator, type ReplicationStats } from './replicate.js';
import { applyStage } from './sync-apply.js';
import { planStage, type Pair, type PlannedSync } from './sync-plan.js';
import type { TagFailure, TagSkip, WriteOutcome } from './sync-report.js';
import type { RemovalOutcome, RemovalRefused } from './tag-removal.js';
import type { TagScope } from './scope.js';
import type { UploadSession } from './upload-session.js';

/** Both sides as a reader found them, and the tags the read itself settled. */
export interface SidesRead {
  /** The primary's tags; a digest may be left unread (undefined) for a tag the secondary lacks: its copy fetches it. */
  primaryTags: Map<string, string | undefined>;
  secondaryTags: Map<string, string>;
  /** What the secondary's HEADs told of each manifest (type, size): tag removal uses it. */
  secondaryHeads: ManifestHead[];
  /** The secondary did not have the repository at all. */
  secondaryIsNew: boolean;
  /** Tags the read could not settle (no proof of absence, say): neither planned nor touched. */
  failed: TagFailure[];
  /** Tags the primary changed while they were read. */
  skipped: TagSkip[];
  /** Tags the deadline came before. */
  notStarted: string[];
  /** Manifests named by digest (referrers an event pushed or deleted): their subjects' referrers are made exact too. */
  subjects?: string[];
  /** Every tag the secondary listed (a full read only), the tag-schema index tags among them. */
  listedTags?: ReadonlySet<string>;
  /** The secondary's tags outside the scope, with their digests: never planned, and what they point at is never removed. */
  outOfScope?: ReadonlyMap<string, string>;
}

/**
 * How a run acts on what its reader read: the only ways a full sync and an event sync differ
 * past the read. A reader of every tag can weigh removals against the whole and owns the run's
 * upload sessions; a reader of a few named tags can do neither.
 */
export interface ReadPolicy {
  /** Every tag was read: the prune guard weighs the removals against the secondary's whole. */
  pruneGuard: boolean;
  /** Upload sessions the run did not reach are its own, cancelled at the end; else they belong to other tags' blobs and are kept. */
  ownsUnreachedUploads: boolean;
  /** Where the plan is logged: a full sync logs it; an event job's one line is its outcome, so its plan is for debugging. */
  planLog: 'info' | 'debug';
  /** A read-only secondary is found out before any write (a probe a few named tags do not pay for). */
  probeBeforeWrites: boolean;
  /** A run the deadline cut is continued whole by the next (which reads everything again): it is 'incomplete', whatever else it met. */
  continuesWhole: boolean;
}

/** What a reader brings to the pipeline: what it reads, and the policy that goes with it. */
export interface SyncReader {
  readonly policy: ReadPolicy;
  read(deadline: Deadline): Promise<SidesRead>;
  /** Just before an extra tag is removed: whether the primary has it now after all. */
  appearedOnPrimary(tag: string): Promise<boolean>;
  /**
   * After the writes, the primary asked again: each tag no longer as the run left it. `planned` is
   * the primary as read with each written tag at its written digest; `written` the tags written
   * (null: removed).
   */
  changesOnPrimary(planned: PrimaryTagMap, written: ReadonlyMap<string, string | null>): Promise<TagSkip[]>;
}

export interface PipelineOptions {
  dryRun: boolean;
  deep: boolean;
  maxPrune: number;
  deadline: number | undefined;
  concurrency: number;
  logger: EngineLogger;
  uploads: readonly UploadSession[];
  onUploadProgress: ((sessions: UploadSession[]) => Promise<void>) | undefined;
  onProgress: ((progress: { done: number; total: number; bytes: number }) => void) | undefined;
  /** Sync the referrers (OCI 1.1) of what the tags reach, where the primary serves the API. */
  referrers: boolean;
  /** The tags the secondary keeps; the others are never copied, repaired or removed. */
  tags: TagScope;
}

/** What the pipeline did, step by step; each reader shapes its report from it. */
export interface PipelineOutcome {
  read: SidesRead;
  plan: Plan;
  guard: string | undefined;
  writes: WriteOutcome;
  removals: RemovalOutcome;
  /** The extra tags left because the secondary refuses deletes (found up front or mid-run). */
  removalRefused: RemovalRefused | undefined;
  /** Tags the primary changed during the run (from the confirmation), not named elsewhere already. */
  changed: TagSkip[];
  /** Tags neither done nor failed: the deadline came first, or their big blob is still being copied. */
  notStarted: string[];
  deep: { failed: TagFailure[]; missing: Replicator['missing'] } | undefined;
  outOfTime: boolean;
  uploads: UploadSession[];
  stats: ReplicationStats;
  /** Absent where referrers are off or the primary does not serve the API. */
  referrers: ReferrersDone | undefined;
}

export async function runSyncPipeline(
  primary: Registry,
  secondary: Registry,
  repository: Repository,
  reader: SyncReader,
  options: PipelineOptions,
): Promise<PipelineOutcome> {
  const pair = { primary, secondary, repository };
  const planned = await planStage(pair, reader, options);
  // A dry run is the plan itself: nothing below runs.
  if (options.dryRun) return planned.outcome;
  const primaryNow = await applyStage(pair, planned, reader, options);
  await confirmStage(pair, planned, reader, primaryNow, options.logger);
  return planned.outcome;
}

/**
 * The confirm stage: the primary asked again about what was written (an empty plan wrote nothing
 * that could mix with changes on the primary), then the upload sessions settled. A run that reads
 * only some tags keeps the sessions it did not reach (they belong to other tags' blobs), as when out of time.
 */
async function confirmStage(pair: Pair, planned: PlannedSync, reader: SyncReader, primaryNow: PrimaryTagMap, logger: EngineLogger): Promise<void> {
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
