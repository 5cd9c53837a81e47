/** An event job cut to the secondary's scope: only the tags it keeps; nothing when none is left. */
import type { Scope } from '../../engine/index.js';
import type { EventJob, SyncMessage } from '../messages.js';

/**
 * The job as the scope leaves it. A referrer follows its subject's scope, and under a tag scope
 * only a full read tells which kept tags reach a subject: a job with digests there becomes a full
 * sync of the repository. Undefined: no work at all.
 */
export function eventJobInScope(job: EventJob, scope: Scope): SyncMessage | undefined {
  if (!scope.hasRepository(job.repository)) return undefined;
  if (job.digests && !scope.tags.all)
    return { repository: job.repository, secondary: job.secondary, force: true, ...(job.requestedAt !== undefined ? { requestedAt: job.requestedAt } : {}) };
  const tags = job.tags?.filter((tag) => scope.tags.has(tag));
  if (tags?.length === job.tags?.length) return job;
  const { tags: _all, pushed, ...rest } = job;
  const kept = Object.entries(pushed ?? {}).filter(([tag]) => scope.tags.has(tag));
  const scoped = { ...rest, ...(tags && tags.length > 0 ? { tags } : {}), ...(kept.length > 0 ? { pushed: Object.fromEntries(kept) } : {}) };
  return scoped.tags || scoped.digests ? scoped : undefined;
}
