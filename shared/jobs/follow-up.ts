/**
 * The one follow-up policy of a sync job, full or targeted: from what the job left, the messages
 * that come next. Pure: `followUps` decides, `sendFollowUps` sends and logs.
 */
import type { TagSyncReport } from '../engine/index.js';
import type { EventJob, SyncMessage, VerifyMessage } from './messages.js';
import type { Runtime } from './ports.js';
import { FIRST_TAGS, needsAPerson, retryDelayMs, type RepositoryRecord, type RetryPolicy } from './record.js';
import { delaySeconds } from './timing.js';

/** Runs of one event job's tags before what is left becomes a full sync of the repository. */
export const MAX_ATTEMPTS = 5;

/**
 * What comes after a job. continue: the deadline came, the next invocation goes on; retry: after a
 * backoff, what failed; requeue: tags to look at again (changed on the primary, not reached,
 * unsettled); escalate: an event job that keeps failing becomes a full sync; verify: a sync that
 * wrote is verified; leave: nothing is sent, and the log says why.
 */
export type FollowUp =
  | { kind: 'continue' | 'escalate' | 'requeue' | 'retry'; message: SyncMessage; delaySeconds?: number; why?: string; fields?: Record<string, unknown> }
  | { kind: 'verify'; message: VerifyMessage }
  | { kind: 'leave'; why: string; fields: Record<string, unknown> };

/** What a sync job left: a full sync's next record, or an event job's report (none: the job threw). */
export type JobLeft = { kind: 'full'; message: SyncMessage; next: RepositoryRecord } | { kind: 'event'; message: EventJob; report: TagSyncReport | undefined };

/** When the job ended, and how a retry is spaced. */
export interface FollowUpContext {
  now: number;
  retry: RetryPolicy;
  random: () => number;
}

/** The one follow-up policy: what the job left decides what is sent next. */
export function followUps(left: JobLeft, context: FollowUpContext): FollowUp[] {
  return left.kind === 'full' ? afterFullSync(left.message, left.next, context) : afterEventJob(left.message, left.report, context);
}

function afterFullSync(message: SyncMessage, next: RepositoryRecord, context: FollowUpContext): FollowUp[] {
  const key = { repository: next.repository, secondary: next.secondary };
  if (next.syncState === 'pending') {
    // Out of time: the next invocation re-plans from what the secondary holds now, under the same prune limit.
    const maxPrune = message.maxPrune !== undefined ? { maxPrune: message.maxPrune } : {};
    return [
      { kind: 'continue', message: { ...key, ...(message.deep ? { deep: true } : {}), ...maxPrune, continuation: Math.max(1, next.continuations ?? 1) } },
    ];
  }
  if (next.syncState === 'failed') {
    // A retry runs under the default prune limit: a human's higher limit was for that moment.
    return [{ kind: 'retry', message: { ...key, retry: next.retryCount }, delaySeconds: delaySeconds(Date.parse(next.nextRetryAt!) - context.now) }];
  }
  // Verify after every sync that wrote, until a pair has been verified once, and after a held
  // guard or refused deletes (no retry follows those): the verification names the tags left.
  if (next.syncState !== 'synced' || next.verifyState !== 'synced') return [{ kind: 'verify', message: key }];
  return [];
}

/**
 * The tags and digests an event job leaves: tags the deadline did not reach go again at once; those
 * the primary changed meanwhile go again at once, and failed ones after a backoff, both counting an
 * attempt; digests not done (the engine does not tell failed from not reached) go as failed tags
 * do; past MAX_ATTEMPTS the repository gets a full sync instead. Unsettled tags (the primary did
 * not show a pushed digest yet) are looked at again after a second, MAX_ATTEMPTS times at most:
 * each run already made them what the primary holds, so an event that never comes true (stale,
 * or forged) ends there. Refused deletes wait for a human. A job that threw leaves everything.
 */
function afterEventJob(message: EventJob, report: TagSyncReport | undefined, context: FollowUpContext): FollowUp[] {
  const pair = { repository: message.repository, secondary: message.secondary };
  const attempt = (message.attempt ?? 1) + 1;
  const again = (work: { tags?: string[]; digests?: string[] }, next: number | undefined) => againMessage(message, work, next, context.now);
  // A tag only a person can clear (an immutable tag) is named once and left, never retried in a loop.
  const refused = report ? report.failed.filter(needsAPerson) : [];
  const failed = report ? report.failed.filter((f) => !needsAPerson(f)).map((f) => f.tag) : (message.tags ?? []);
  const digestsLeft = report ? report.digestsLeft : (message.digests ?? []);
  const changed = report?.skipped.map((s) => s.tag) ?? [];
  const unsettled = report?.unsettled ?? [];
  const sent: FollowUp[] = [];
  if (refused.length > 0)
    sent.push({
      kind: 'leave',
      why: 'the secondary refuses these tags and no retry will change that; left for a person',
      fields: { ...pair, tags: refused.slice(0, FIRST_TAGS).map((f) => f.tag), code: refused[0]!.code, error: refused[0]!.error },
    });
  if (report && report.notStarted.length > 0) sent.push({ kind: 'requeue', message: again({ tags: report.notStarted }, message.attempt) });
  if (unsettled.length > 0 && attempt > MAX_ATTEMPTS)
    sent.push({
      kind: 'leave',
      why: 'the primary never showed the digest a push announced; left as the primary holds it',
      fields: { ...pair, tags: unsettled.slice(0, FIRST_TAGS) },
    });
  else if (unsettled.length > 0) sent.push({ kind: 'requeue', message: again({ tags: unsettled }, attempt), delaySeconds: 1 });
  if (failed.length + changed.length + digestsLeft.length === 0) return sent;
  if (attempt > MAX_ATTEMPTS) {
    const fields = {
      ...pair,
      attempts: message.attempt,
      tags: failed.length + changed.length,
      ...(digestsLeft.length > 0 ? { digests: digestsLeft.length } : {}),
    };
    return [
      ...sent,
      { kind: 'escalate', message: { ...pair, force: true }, why: 'event job gave up on its tags; a full sync of the repository follows', fields },
    ];
  }
  if (changed.length > 0) sent.push({ kind: 'requeue', message: again({ tags: changed }, attempt) });
  if (failed.length + digestsLeft.length > 0) {
    const delay = delaySeconds(retryDelayMs(attempt - 1, context.retry, context.random));
    sent.push({ kind: 'retry', message: again({ tags: failed, digests: digestsLeft }, attempt), delaySeconds: delay });
  }
  return sent;
}

/** An event job for some of a job's work, carrying its earliest event and the digests pushed for its tags. */
function againMessage(
  message: EventJob,
  { tags = [], digests = [] }: { tags?: string[]; digests?: string[] },
  attempt: number | undefined,
  now: number,
): SyncMessage {
  const pushed = Object.entries(message.pushed ?? {}).filter(([tag]) => tags.includes(tag));
  return {
    repository: message.repository,
    secondary: message.secondary,
    ...(message.eventAt !== undefined ? { eventAt: message.eventAt } : {}),
    requestedAt: now,
    ...(tags.length > 0 ? { tags, ...(pushed.length > 0 ? { pushed: Object.fromEntries(pushed) } : {}) } : {}),
    ...(digests.length > 0 ? { digests } : {}),
    ...(attempt ? { attempt } : {}),
  };
}

/** Sends each follow-up in order (a verify to the verify queue, the others to the sync queue) and logs what is left or escalated. */
export async function sendFollowUps(sent: readonly FollowUp[], runtime: Runtime): Promise<void> {
  for (const followUp of sent) {
    if (followUp.kind === 'leave') runtime.logger.warn(followUp.why, followUp.fields);
    else if (followUp.kind === 'verify') await runtime.verifyQueue.send([followUp.message]);
    else {
      if (followUp.kind === 'escalate') runtime.logger.warn(followUp.why!, followUp.fields);
      if (followUp.delaySeconds === undefined) await runtime.syncQueue.send([followUp.message]);
      else await runtime.syncQueue.send([followUp.message], { delaySeconds: followUp.delaySeconds });
    }
  }
}
