/** What one sync did: each step hands its outcome here, and the report is made once, at the end. */
import { isEmptyPlan, type Plan, type TagChange } from './planner.js';
import type { MissingObject, ReplicationStats } from './replicate.js';
import type { ReferrersDone } from './referrers.js';
import type { RemovalOutcome, RemovalRefused } from './tag-removal.js';
import type { SyncStatus } from './status.js';
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
}

export type TagFailure = { tag: string; error: string };
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

/** What the deep check found: trees that could not be checked, and objects missing on the secondary. */
export interface TreeCheck {
  failed: TagFailure[];
  missing: MissingObject[];
}

export class SyncReportBuilder {
  private readonly done: SyncReport['done'] = { copied: [], repaired: [], removed: [] };
  private readonly failed: TagFailure[] = [];
  private readonly skipped: TagSkip[] = [];
  private readonly written = new Map<string, string>();
  private refused: RemovalRefused | undefined;
  private deep: SyncReport['deep'];
  private incomplete = false;
  private uploads: UploadSession[] = [];
  private referrers: ReferrersDone | undefined;

  constructor(
    private readonly run: {
      repository: string;
      dryRun: boolean;
      plan: Plan;
      guard: string | undefined;
      primaryTags: number;
      secondaryTags: number;
      startedAt: number;
    },
  ) {}

  wrote(outcome: WriteOutcome): void {
    this.done.copied.push(...outcome.copied);
    this.done.repaired.push(...outcome.repaired);
    for (const [tag, digest] of outcome.written) this.written.set(tag, digest);
    this.skipped.push(...outcome.skipped);
    this.failed.push(...outcome.failed);
  }

  /** The extra tags left in place because the probe found the secondary refusing deletes. */
  refusedUpFront(refused: RemovalRefused): void {
    this.refused = refused;
  }

  removed(outcome: RemovalOutcome): void {
    this.done.removed.push(...outcome.removed);
    this.skipped.push(...outcome.skipped);
    this.failed.push(...outcome.failed);
    if (outcome.refused) this.refused = outcome.refused;
  }

  treesChecked(check: TreeCheck): void {
    this.failed.push(...check.failed);
    this.deep = { missing: check.missing };
  }

  /** Tags the primary changed during the run; one already named as failed or skipped is not named twice. */
  primaryChanged(changes: readonly TagSkip[]): void {
    const named = new Set([...this.skipped, ...this.failed].map((entry) => entry.tag));
    for (const change of changes) if (!named.has(change.tag)) this.skipped.push(change);
  }

  /** The deadline came first: the next run continues. */
  outOfTime(): void {
    this.incomplete = true;
  }

  /** Upload sessions to resume in the next run. */
  uploadsLeft(sessions: UploadSession[]): void {
    this.uploads = sessions;
  }

  /** What the referrer step planned and did. */
  referrersSynced(referrers: ReferrersDone): void {
    this.referrers = referrers;
  }

  get tagsWritten(): number {
    return this.done.copied.length + this.done.repaired.length + this.done.removed.length;
  }

  finish(stats: ReplicationStats): SyncReport {
    for (const list of [this.done.copied, this.done.repaired, this.done.removed]) list.sort();
    this.failed.sort((a, b) => (a.tag < b.tag ? -1 : 1));
    const { repository, dryRun, guard } = this.run;
    // Key order is the JSON's order, as `--json` has always printed it.
    const report: SyncReport = {
      repository,
      status: 'synced',
      dryRun,
      plan: this.planAsWritten(),
      done: this.done,
      failed: this.failed,
      skipped: this.skipped,
      ...(guard ? { guard: { reason: guard } } : {}),
      primaryTags: this.run.primaryTags,
      secondaryTags: this.run.secondaryTags,
      bytesCopied: stats.bytesCopied,
      blobsCopied: stats.blobsCopied,
      blobsMounted: stats.blobsMounted,
      durationMs: Date.now() - this.run.startedAt,
      ...(this.refused ? { removalRefused: this.refused } : {}),
      ...(this.deep ? { deep: this.deep } : {}),
      ...(this.uploads.length > 0 ? { uploads: this.uploads } : {}),
      ...(this.referrers ? { referrers: this.referrers } : {}),
    };
    report.status = this.incomplete ? 'incomplete' : syncStatus(report);
    return report;
  }

  /** The plan with each written tag at the digest it was written at. */
  private planAsWritten(): Plan {
    const { plan } = this.run;
    const asWritten = (change: TagChange): TagChange => {
      const digest = this.written.get(change.tag);
      return digest === undefined ? change : { ...change, primary: digest };
    };
    return { copy: plan.copy.map(asWritten), repair: plan.repair.map(asWritten), remove: plan.remove };
  }
}

function syncStatus(report: SyncReport): SyncReport['status'] {
  if (report.failed.length > 0 || (report.referrers?.done.failed.length ?? 0) > 0) return 'failed';
  if (report.dryRun) return isEmptyPlan(report.plan) && !report.deep?.missing.length && !referrersPlanned(report.referrers) ? 'synced' : 'differences';
  if (report.guard || report.removalRefused || report.skipped.length > 0 || referrersLeft(report.referrers)) return 'differences';
  return 'synced';
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
