/**
 * Job: list the primary's repositories (whole catalog, a prefix, or an explicit list) and
 * send one message per (repository, secondary) to the sync or verify queue. Catalog walks
 * checkpoint their cursor and continue in a fresh invocation before the deadline.
 */
import { randomUUID } from 'node:crypto';
import { GeoSyncError, validateRepositoryName, type EngineLogger } from '../engine/index.js';
import type { FanOutRequest, SyncMessage, VerifyMessage } from './messages.js';
import type { Budget, Runtime, ScopedSecondary } from './ports.js';
import type { FanOutCheckpoint } from './record.js';
import { WORK_FRACTION } from './timing.js';

export interface Catalog {
  page(options: { last?: string; pageSize?: number }): Promise<{ repositories: string[]; next?: string }>;
}

/**
 * A catalog that keeps the names of the pages it serves. When a walk in this invocation began at
 * the catalog's start and reached its end (a catalog-wide fan-out that did not continue elsewhere),
 * `listing` serves those names again without asking the primary: readiness after that fan-out
 * reads the fan-out's own listing instead of walking the catalog a second time.
 */
export class RecordingCatalog implements Catalog {
  private names: string[] = [];
  private fromStart = false;
  private complete = false;

  constructor(private readonly inner: Catalog) {}

  async page(options: { last?: string; pageSize?: number }): Promise<{ repositories: string[]; next?: string }> {
    const page = await this.inner.page(options);
    if (options.last === undefined) [this.names, this.fromStart, this.complete] = [[], true, false];
    if (this.fromStart) this.names.push(...page.repositories);
    if (this.fromStart && !page.next) this.complete = true;
    return page;
  }

  /** The whole catalog as one walk of this invocation listed it, or undefined when none covered it from start to end. */
  get listing(): Catalog | undefined {
    const names = this.names;
    return this.complete ? { page: async () => ({ repositories: names }) } : undefined;
  }
}

/** A catalog walk whose checkpoint has not moved for this long is considered stalled, and a new run may start. */
export const STALLED_AFTER_MS = 15 * 60_000;
/** Repositories per step of an explicit list, between deadline checks. */
const LIST_STEP = 500;

export type FanOutOutcome =
  | {
      kind: 'finished' | 'continued';
      runId: string;
      enqueued: number;
      /** Finished only: the secondaries whose scope kept none of the primary's repositories (never taken for an empty primary). */
      unmatched?: { secondary: string; scope: string }[];
    }
  | { kind: 'skipped'; reason: string };

export async function fanOut(
  request: FanOutRequest,
  catalog: Catalog,
  secondaries: readonly ScopedSecondary[],
  runtime: Runtime,
  budget: Budget,
  pageSize = 1000,
): Promise<FanOutOutcome> {
  const run = new FanOutRun(request, secondaries, runtime, budget);
  if (request.repositories) return fanOutList(run, request.repositories);
  const checkpoint = await takeCheckpoint(run);
  if ('kind' in checkpoint) return checkpoint;
  return walkCatalog(run, catalog, checkpoint, pageSize);
}

/** One invocation of a fan-out: what it has sent so far, and its two ends (finished, or continued in a fresh invocation). */
class FanOutRun {
  readonly started: number;
  readonly runId: string;
  /** Messages sent by this run, its earlier invocations included. */
  enqueued: number;
  /** Repositories each secondary's scope kept so far in this run (carried by its continuations). */
  private readonly kept: Record<string, number>;
  private readonly deadline: number;

  constructor(
    readonly request: FanOutRequest,
    private readonly secondaries: readonly ScopedSecondary[],
    readonly runtime: Runtime,
    budget: Budget,
  ) {
    this.started = runtime.clock();
    this.deadline = this.started + budget.remainingMs * WORK_FRACTION;
    this.runId = request.runId ?? randomUUID();
    this.enqueued = request.enqueued ?? 0;
    this.kept = { ...request.kept };
  }

  pastDeadline(): boolean {
    return this.runtime.clock() >= this.deadline;
  }

  async enqueue(repositories: string[]): Promise<void> {
    const { request, runtime, kept } = this;
    // One message per repository and secondary whose scope keeps it; the rest are no work at all.
    const pairs = repositories.flatMap((repository) =>
      this.secondaries.filter(({ scope }) => scope.hasRepository(repository)).map(({ name }) => ({ repository, secondary: name })),
    );
    for (const { secondary } of pairs) kept[secondary] = (kept[secondary] ?? 0) + 1;
    if (pairs.length === 0) return;
    if (request.target === 'verify') {
      const messages: VerifyMessage[] = pairs.map((pair) => ({ ...pair, ...(request.deep ? { deep: true } : {}) }));
      await runtime.verifyQueue.send(messages);
    } else {
      const extra = {
        ...(request.deep ? { deep: true } : {}),
        ...(request.force ? { force: true } : {}),
        ...(request.maxPrune !== undefined ? { maxPrune: request.maxPrune } : {}),
      };
      const messages: SyncMessage[] = pairs.map((pair) => ({ ...pair, ...extra }));
      await runtime.syncQueue.send(messages);
    }
    this.enqueued += pairs.length;
    runtime.metrics.add('MessagesEnqueued', pairs.length);
  }

  finish(): FanOutOutcome {
    const { request, runtime, runId, enqueued } = this;
    runtime.metrics.add('FanOutRunsCompleted', 1);
    const unmatched = this.secondaries
      .filter(({ name, scope }) => !scope.allRepositories && !this.kept[name])
      .map(({ name, scope }) => ({ secondary: name, scope: scope.text }));
    for (const entry of unmatched) {
      // Said aloud: a scope that keeps nothing is a configuration to look at, not an empty primary.
      runtime.logger.warn("a secondary's scope kept none of the primary's repositories: nothing was sent for it", { ...entry, runId, target: request.target });
    }
    runtime.logger.info('fan-out finished', { runId, target: request.target, enqueued, seconds: (runtime.clock() - this.started) / 1000 });
    return { kind: 'finished', runId, enqueued, ...(unmatched.length > 0 ? { unmatched } : {}) };
  }

  async continueLater(rest: Partial<FanOutRequest>): Promise<FanOutOutcome> {
    const { request, runtime, runId, enqueued, kept } = this;
    await runtime.fanOutQueue.send([{ ...request, ...rest, runId, enqueued, kept }]);
    runtime.logger.info('fan-out continues in a new invocation', { runId, enqueued, cursor: rest.cursor });
    return { kind: 'continued', runId, enqueued };
  }
}

/** An explicit list fits in one event, so its remainder is the continuation; no checkpoint needed. */
async function fanOutList(run: FanOutRun, repositories: string[]): Promise<FanOutOutcome> {
  for (let i = 0; i < repositories.length; i += LIST_STEP) {
    await run.enqueue(repositories.slice(i, i + LIST_STEP));
    const rest = repositories.slice(i + LIST_STEP);
    if (rest.length > 0 && run.pastDeadline()) return run.continueLater({ repositories: rest });
  }
  return run.finish();
}

/** The catalog walk's checkpoint: a fresh one for a new run, the stored one for a continuation; or why this run does not go on. */
async function takeCheckpoint({ request, runtime, runId, started }: FanOutRun): Promise<FanOutCheckpoint | FanOutOutcome> {
  const id = request.target + (request.prefix ? `:${request.prefix}` : '');
  const existing = await runtime.store.getCheckpoint(id);
  if (request.runId === undefined) {
    const live = existing && !existing.finishedAt && started - Date.parse(existing.updatedAt) < STALLED_AFTER_MS;
    if (live && !request.force) {
      runtime.logger.warn('fan-out skipped: the previous run is still in progress', { id, runId: existing.runId, cursor: existing.cursor });
      return { kind: 'skipped', reason: 'previous run in progress' };
    }
  } else if (existing?.runId !== request.runId) {
    runtime.logger.warn('fan-out continuation dropped: a newer run replaced it', { id, runId: request.runId });
    return { kind: 'skipped', reason: 'superseded' };
  }
  return request.runId ? existing! : { id, runId, enqueued: 0, startedAt: new Date(started).toISOString(), updatedAt: new Date(started).toISOString() };
}

/** Walks the catalog page by page from the checkpoint's cursor, checkpointing after each page. */
async function walkCatalog(run: FanOutRun, catalog: Catalog, checkpoint: FanOutCheckpoint, pageSize: number): Promise<FanOutOutcome> {
  const { request, runtime } = run;
  const prefix = request.prefix;
  let cursor = request.cursor ?? (prefix ? prefix.slice(0, -1) || undefined : undefined);
  for (;;) {
    const page = await catalog.page({ ...(cursor ? { last: cursor } : {}), pageSize });
    const inScope = page.repositories.filter((r) => (!prefix || r.startsWith(prefix)) && isValidName(r, runtime.logger));
    // The catalog is sorted, so a name past the prefix means the prefix's range is over.
    const pastPrefix = prefix !== undefined && page.repositories.some((r) => r > prefix && !r.startsWith(prefix));
    await run.enqueue(inScope);
    cursor = page.next;
    const done = !cursor || pastPrefix;
    const now = new Date(runtime.clock()).toISOString();
    Object.assign(checkpoint, { cursor, enqueued: run.enqueued, updatedAt: now }, done ? { finishedAt: now } : {});
    await runtime.store.putCheckpoint(checkpoint);
    if (done) return run.finish();
    if (run.pastDeadline()) return run.continueLater({ cursor });
  }
}

/**
 * The repositories each secondary's scope keeps, as the primary's catalog lists them now: the same
 * names a fan-out would send (invalid ones left out), without sending anything.
 */
export async function repositoriesInScope(
  catalog: Catalog,
  secondaries: readonly ScopedSecondary[],
  logger: EngineLogger,
  pageSize = 1000,
): Promise<Map<string, string[]>> {
  const kept = new Map(secondaries.map(({ name }) => [name, [] as string[]]));
  let cursor: string | undefined;
  do {
    const page = await catalog.page({ ...(cursor ? { last: cursor } : {}), pageSize });
    for (const repository of page.repositories.filter((r) => isValidName(r, logger)))
      for (const { name, scope } of secondaries) if (scope.hasRepository(repository)) kept.get(name)!.push(repository);
    cursor = page.next;
  } while (cursor);
  return kept;
}

/** A name the engine would refuse is logged and left out rather than poisoning the queue. */
function isValidName(name: string, logger: EngineLogger): boolean {
  try {
    validateRepositoryName(name);
    return true;
  } catch (error) {
    if (!(error instanceof GeoSyncError)) throw error;
    logger.warn('catalog lists an invalid repository name; skipped', { repository: name, error: error.message });
    return false;
  }
}
