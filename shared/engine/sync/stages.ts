/** What the pipeline's stages hand each other: both sides as read, the reader and its policy, the options, the outcome. Types only. */
import type { Deadline } from '../base/deadline.js';
import type { EngineLogger } from '../base/log.js';
import type { Plan, PrimaryTagMap } from './planner.js';
import type { ReferrersDone } from '../referrers/index.js';
import type { ManifestHead } from '../registry/registry.js';
import type { Replicator, ReplicationStats } from './replicate.js';
import type { RemovalOutcome, RemovalRefused } from './tag-removal.js';
import type { TagScope } from '../config/scope.js';
import type { UploadSession } from './upload-session.js';

/** A tag that failed, and the error's code where only a person can clear it (TAG_IMMUTABLE: NEEDS_A_PERSON). */
export type TagFailure = { tag: string; error: string; code?: string };
export type TagSkip = { tag: string; reason: string };

/** What the write step did: tags copied and repaired, each with the digest it was written at. */
export interface WriteOutcome {
  copied: string[];
  repaired: string[];
  /** tag -> the primary's digest as copied (it may have moved since listing). */
  written: Map<string, string>;
  skipped: TagSkip[];
  failed: TagFailure[];
  /** Not reached before the deadline, or their big blob still being copied in chunks when it came. */
  notStarted: string[];
}

/** Both sides as a reader found them, and the tags the read itself settled. */
export interface SidesRead {
  /** The primary's tags; a digest may be left unread (undefined) for a tag the secondary lacks: its copy fetches it. */
  primaryTags: Map<string, string | undefined>;
  secondaryTags: Map<string, string>;
  /** What the secondary's HEADs told of each manifest (type, size): tag removal uses it. */
  secondaryHeads: ManifestHead[];
  /**
   * What the primary's HEADs told: which manifests are indexes where the secondary was not HEADed
   * (a secondary whose listing gives digests, as ECR's does). A digest's type is the same on both sides.
   */
  primaryHeads?: ManifestHead[];
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
