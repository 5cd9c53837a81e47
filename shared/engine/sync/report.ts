/** What one sync did, full or targeted: one report, made once from the pipeline's outcome, with one status. */
import type { TagFailure, TagSkip } from './stages.js';
import { byteOrder, isEmptyPlan, type Plan, type TagChange } from './planner.js';
import type { MissingObject } from './replicate.js';
import type { ReferrersDone } from '../referrers/index.js';
import type { PipelineOutcome, ReadPolicy } from './stages.js';
import type { RemovalRefused } from './tag-removal.js';
import type { SyncStatus } from '../base/status.js';
import type { UploadSession } from './upload-session.js';

export interface SyncReport {
  repository: string;
  /** The repository's name on the secondary, where a prefix places it elsewhere. */
  secondaryRepository?: string;
  /** synced: the secondary now matches; differences: a guard held or work was skipped; failed: some tags failed; incomplete: the deadline came first. */
  status: SyncStatus;
  dryRun: boolean;
  plan: Plan;
  done: { copied: string[]; repaired: string[]; removed: string[] };
  failed: TagFailure[];
  /** Tags left alone on purpose (the primary changed under us), with why. */
  skipped: TagSkip[];
  guard?: { reason: string };
  /**
   * The secondary refuses deletes (delete disabled in its storage config, or read-only): these
   * extra tags were left exactly as they were. The run still copied and repaired the rest.
   */
  removalRefused?: RemovalRefused;
  deep?: { missing: MissingObject[] };
  primaryTags: number;
  secondaryTags: number;
  bytesCopied: number;
  blobsCopied: number;
  blobsMounted: number;
  durationMs: number;
  /** Chunked uploads left unfinished (the deadline came mid-blob): the next run resumes them. Absent when none. */
  uploads?: UploadSession[];
  /** The referrers (OCI 1.1) of what the tags reach: planned, and done. Absent where the primary does not serve the API, or with referrers off. */
  referrers?: ReferrersDone;
  // A targeted run's own parts (an event job's): absent from a full sync's report.
  /** The tags asked for, each once, in byte order. */
  tags?: string[];
  /** Tags asked for that were already right on the secondary: nothing written. */
  unchanged?: string[];
  /** Not started before the deadline, or whose big blob was still being copied in chunks when it came. */
  notStarted?: string[];
  /**
   * Tags whose primary did not show the digest a push announced (registry 2.8 sends the event just
   * before it moves the tag; or the tag moved on since). Each is as the primary holds it now: look again.
   */
  unsettled?: string[];
  /** Digests asked for that are not done yet (failed, or not reached before the deadline): the job sends them again. */
  digestsLeft?: string[];
}

/** The report of a targeted run: the one report, its event parts present. */
export type TagSyncReport = SyncReport & Required<Pick<SyncReport, 'tags' | 'unchanged' | 'notStarted' | 'unsettled' | 'digestsLeft'>>;

/** What a targeted run was asked for, and what its reader can tell of it: the report's event parts come from these. */
export interface NamedWork {
  /** The tags asked for, each once, in byte order. */
  tags: string[];
  /** Digests a push announced for some tags: a tag read whose primary did not show its digest is `unsettled`. */
  announced: Readonly<Record<string, string>>;
  wasRead(tag: string): boolean;
  /** The digests asked for and not done yet. */
  digestsLeft: string[];
}

/**
 * The one report of a run, full or targeted, made once from the pipeline's outcome. `named`
 * adds a targeted run's own parts (the tags asked for, unchanged, unsettled, digests left).
 */
export function reportOf(
  outcome: PipelineOutcome,
  run: { repository: string; secondaryRepository: string | undefined; dryRun: boolean; startedAt: number; policy: ReadPolicy; named?: NamedWork },
): SyncReport {
  const { read, writes, removals, guard, stats } = outcome;
  const byTag = (a: { tag: string }, b: { tag: string }) => byteOrder(a.tag, b.tag);
  const refused = outcome.removalRefused;
  // Key order is the JSON's order, as `--json` has always printed it.
  const report: SyncReport = {
    repository: run.repository,
    status: 'synced',
    dryRun: run.dryRun,
    plan: planAsWritten(outcome.plan, writes.written),
    done: { copied: [...writes.copied].sort(byteOrder), repaired: [...writes.repaired].sort(byteOrder), removed: [...removals.removed].sort(byteOrder) },
    failed: [...read.failed, ...writes.failed, ...removals.failed, ...(outcome.deep?.failed ?? [])].sort(byTag),
    skipped: [...read.skipped, ...writes.skipped, ...removals.skipped, ...outcome.changed].sort(byTag),
    ...(guard ? { guard: { reason: guard } } : {}),
    primaryTags: read.primaryTags.size,
    secondaryTags: read.secondaryTags.size,
    bytesCopied: stats.bytesCopied,
    blobsCopied: stats.blobsCopied,
    blobsMounted: stats.blobsMounted,
    durationMs: Date.now() - run.startedAt,
    ...(refused ? { removalRefused: { ...refused, tags: [...refused.tags].sort(byteOrder) } } : {}),
    ...(outcome.deep ? { deep: { missing: outcome.deep.missing } } : {}),
    ...(outcome.uploads.length > 0 ? { uploads: outcome.uploads } : {}),
    ...(outcome.referrers ? { referrers: outcome.referrers } : {}),
    ...(run.secondaryRepository ? { secondaryRepository: run.secondaryRepository } : {}),
    ...(run.named ? namedParts(outcome, run.named) : {}),
  };
  if (run.named) report.unchanged = unchangedOf(report, run.named.tags);
  report.status = syncStatus(statusFacts(report, outcome.outOfTime && run.policy.continuesWhole, outcome.notStarted.length));
  return report;
}

/** A targeted run's own parts; `unchanged` is filled once the rest of the report is. */
function namedParts(outcome: PipelineOutcome, named: NamedWork): Pick<SyncReport, 'tags' | 'unchanged' | 'notStarted' | 'unsettled' | 'digestsLeft'> {
  const { read, writes, removals } = outcome;
  // The primary's digest of each tag as last seen: an announced digest it did not show is named, to be looked at again.
  const seen = new Map([...read.primaryTags, ...writes.written]);
  const settledOtherwise = new Set(
    [...read.failed, ...read.skipped, ...writes.failed, ...writes.skipped, ...removals.failed, ...removals.skipped, ...outcome.changed].map((e) => e.tag),
  );
  const unsettled = Object.entries(named.announced)
    .filter(([tag, digest]) => named.wasRead(tag) && (seen.get(tag) ?? null) !== digest && !settledOtherwise.has(tag))
    .map(([tag]) => tag);
  return {
    tags: named.tags,
    unchanged: [],
    notStarted: [...outcome.notStarted].sort(byteOrder),
    unsettled: unsettled.sort(byteOrder),
    digestsLeft: named.digestsLeft,
  };
}

/** The tags asked for that the run neither wrote nor named: already right on the secondary. */
function unchangedOf(report: SyncReport, tags: readonly string[]): string[] {
  const touched = new Set([
    ...report.done.copied,
    ...report.done.repaired,
    ...report.done.removed,
    ...report.failed.map((entry) => entry.tag),
    ...report.skipped.map((entry) => entry.tag),
    ...(report.notStarted ?? []),
    ...(report.removalRefused?.tags ?? []),
  ]);
  return tags.filter((tag) => !touched.has(tag));
}

/** The plan with each written tag at the digest it was written at. */
function planAsWritten(plan: Plan, written: ReadonlyMap<string, string>): Plan {
  const asWritten = (change: TagChange): TagChange => {
    const digest = written.get(change.tag);
    return digest === undefined ? change : { ...change, primary: digest };
  };
  return { copy: plan.copy.map(asWritten), repair: plan.repair.map(asWritten), remove: plan.remove };
}

/** What a run's status is decided by, each a plain fact of its report (a table of cases tests it). */
export interface StatusFacts {
  /** The deadline cut a run the next one continues whole (a full read): nothing else is judged yet. */
  continues: boolean;
  /** Tags, tree checks or referrers failed. */
  failed: boolean;
  /** Named work left for the next run: tags not started, digests not done. */
  left: boolean;
  dryRun: boolean;
  /** A dry run found something to do: tags, trees or referrers. */
  planned: boolean;
  /** Differences left on purpose: a guard held, deletes refused, tags changed on the primary, referrers kept. */
  differences: boolean;
}

/** The report's facts, as the one status function reads them. */
export function statusFacts(report: SyncReport, continues: boolean, notStarted: number): StatusFacts {
  return {
    continues,
    failed: report.failed.length > 0 || (report.referrers?.done.failed.length ?? 0) > 0,
    left: notStarted > 0 || (report.digestsLeft?.length ?? 0) > 0,
    dryRun: report.dryRun,
    planned: !isEmptyPlan(report.plan) || (report.deep?.missing.length ?? 0) > 0 || referrersPlanned(report.referrers),
    differences: report.guard !== undefined || report.removalRefused !== undefined || report.skipped.length > 0 || referrersLeft(report.referrers),
  };
}

/**
 * The one status of a run, full or targeted: incomplete when the deadline cut a run continued
 * whole; else failed when anything failed; incomplete when named work is left; a dry run is
 * differences when it planned anything; differences when some were left on purpose; else synced.
 */
export function syncStatus(facts: StatusFacts): SyncStatus {
  if (facts.continues) return 'incomplete';
  if (facts.failed) return 'failed';
  if (facts.left) return 'incomplete';
  if (facts.dryRun) return facts.planned ? 'differences' : 'synced';
  return facts.differences ? 'differences' : 'synced';
}
function referrersPlanned(referrers: ReferrersDone | undefined): boolean {
  if (!referrers) return false;
  const { copy, remove, mismatched, indexes } = referrers.plan;
  return copy.length + remove.length + mismatched.length + indexes.length > 0;
}

/** Referrers the secondary still differs by after the run: extra ones kept, or another artifactType. */
export function referrersLeft(referrers: ReferrersDone | undefined): boolean {
  return referrers !== undefined && (referrers.done.kept.length > 0 || referrers.plan.mismatched.length > 0);
}
