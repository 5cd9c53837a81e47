/**
 * The listener process behind `geo-sync listen` (the command and its options are `cli/listen.ts`):
 * the event path on one machine. The webhook server takes the primary's notifications and answers
 * at once; the tags and digests they name gather per (repository, secondary) in the pair scheduler and leave
 * as event jobs, through the same use-cases, embedded queues and file store as `geo-sync run`. A
 * periodic exact reconcile of every repository is the safety net for events lost on the way.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, openRegistry, type Registry, invalidInput, type EngineLogger, type Endpoints } from '../engine/index.js';
import {
  SyncMessage,
  isEventJob,
  openRegistries,
  parseDuration,
  processVerifyMessage,
  runSyncJob,
  type Registries,
  type Runtime,
  type WebhookToken,
  DEFAULT_READY_MAX_AGE,
  readinessReport,
  repositorySourceFrom,
  sourceCatalog,
} from '../jobs/index.js';
import { underRepositoryLock } from './lock.js';
import { PairScheduler, type PairJob } from './pair-scheduler.js';
import { Reconcile } from './reconcile.js';
import { ListenerMetrics } from './metrics.js';
import { LOCAL_BUDGET, localRuntime, type LocalRuntime } from './runtime.js';
import { serveWebhook, type WebhookServer } from './webhook-server.js';
import { renderStatusPage, statusPageData, type StatusPageData } from './status-page.js';

/** How often the embedded queues are looked at for deferred and retried work coming due. */
const TICK_MS = 100;
/** How long shutdown waits for jobs in flight before handing back what they were doing. */
const SHUTDOWN_GRACE_MS = 30_000;
/** Where event jobs not done at shutdown are kept for the next start. */
const HANDED_BACK = 'pending-events.json';
/** How long the status page waits for the primary's catalog before it answers from the records. */
const STATUS_CATALOG_TIMEOUT_MS = 5_000;

export interface ListenOptions {
  endpoints: Endpoints;
  stateDir: string;
  /** The bearer token the registry sends (Quay: in the path); required. */
  token: WebhookToken;
  /** The HMAC secret of GitHub's webhook; without it `/events/github` answers 404. */
  githubSecret?: WebhookToken;
  /** When set, a scrape of `/metrics` must carry it as a bearer token. */
  metricsToken?: WebhookToken;
  host: string;
  /** 0: any free port (the URL says which). */
  port: number;
  /** Period of the exact reconcile of every repository, ms; 0 turns it off. It also runs at start. */
  reconcileEveryMs: number;
  /** Pairs worked on at once. */
  workers?: number;
  /** Parallel registry requests per job. */
  concurrency?: number;
  /** Sync and verify OCI 1.1 referrers (default true). */
  referrers?: boolean;
  logger: EngineLogger;
  retry?: Runtime['retry'];
  /** How recent a verification must be for the status page to count its repository ready (default 25h, as `geo-sync ready`). */
  readyMaxAgeMs?: number;
}

export interface Listener {
  /** http://host:port */
  url: string;
  /** Stops taking events, finishes the jobs in flight (or hands them back), keeps what is pending for the next start. */
  close(): Promise<{ handedBack: number }>;
}

export async function startListener(options: ListenOptions): Promise<Listener> {
  const { logger } = options;
  if ((await options.token.current()).trim() === '')
    throw invalidInput('MISSING_CONFIG', 'no webhook token: set GEO_SYNC_WEBHOOK_TOKEN (the registry sends it as "Authorization: Bearer <token>")');
  const secondaries = options.endpoints.secondaries;
  const metrics = new ListenerMetrics(secondaries.map((s) => s.name));
  const runtime = localRuntime({
    stateDir: options.stateDir,
    logger,
    concurrency: options.concurrency,
    retry: options.retry,
    referrers: options.referrers,
    metrics: metrics.port,
  });
  const openClients = () => openRegistries(options.endpoints, { concurrency: runtime.concurrency, logger, observe: metrics.registryAnswer });
  const run = pairJobRunner(runtime, openClients, (message) => reconcile.settled(message));
  const scheduler = new PairScheduler({ workers: options.workers ?? 4, syncQueue: runtime.syncQueue, verifyQueue: runtime.verifyQueue, run, logger });
  const reconcile = new Reconcile({
    runtime,
    scheduler,
    openRegistries: openClients,
    secondaries,
    logger,
    onFinished: (outcome, seconds) => metrics.reconcileFinished(outcome, seconds),
  });
  metrics.watch({ counts: () => scheduler.counts, reconciling: () => reconcile.running });
  // Readiness asks the primary on a client of its own: one try, a short timeout, outside the request metrics.
  const probe = openRegistry(options.endpoints.primary, { retries: 0, concurrency: 1 });

  const handedBackPath = join(options.stateDir, HANDED_BACK);
  const restored = restore(handedBackPath, logger);
  for (const message of restored) scheduler.add(message);
  if (restored.length > 0) logger.info('event jobs handed back by the last run restored', { jobs: restored.length });

  const server = await serveListenerWebhook(options, { runtime, metrics, scheduler, reconcile, probe });
  const stopTimers = startTimers(options.reconcileEveryMs, scheduler, reconcile);
  return {
    url: server.url,
    async close() {
      const finishing = scheduler.stop(SHUTDOWN_GRACE_MS);
      stopTimers();
      server.stopTaking();
      const left = scheduler.unfinished(await finishing);
      handBack(handedBackPath, left, logger);
      await server.close();
      await probe.close();
      return { handedBack: left.length };
    },
  };
}

/**
 * Runs one job for one pair; a sync runs under the same per-repository lock as `geo-sync sync` and `run`.
 * `onSettled` hears of each full sync that is settled (not deferred), so the reconcile stops waiting for it.
 */
function pairJobRunner(runtime: LocalRuntime, openClients: () => Registries, onSettled: (message: SyncMessage) => void): (job: PairJob) => Promise<void> {
  return async (job) => {
    const registries = openClients();
    /** False while a sync is still to be done (deferred): the reconcile waits for it. A failed one is settled. */
    let settled = true;
    try {
      if (job.kind === 'verify') return void (await processVerifyMessage(job.message, registries, runtime, LOCAL_BUDGET));
      const { message } = job;
      settled = await underRepositoryLock(
        registries.secondary(message.secondary).host,
        registries.secondary(message.secondary).at(message.repository),
        async () => {
          const outcome = await runSyncJob(message, registries, runtime, LOCAL_BUDGET);
          return outcome.kind !== 'deferred' && !(outcome.kind === 'not-run' && outcome.reason === 'deferred');
        },
        // Another geo-sync is on this repository: this job waits its turn, it is not dropped.
        async () => (await runtime.syncQueue.send([message], { delaySeconds: 1 }), false),
      );
    } finally {
      await registries.close();
      if (job.kind === 'sync' && settled && !isEventJob(job.message)) onSettled(job.message);
    }
  };
}

/** The parts of a running listener its webhook server answers from. */
interface ListenerParts {
  runtime: LocalRuntime;
  metrics: ListenerMetrics;
  scheduler: PairScheduler;
  reconcile: Reconcile;
  probe: Registry;
}

/** Serves the webhook, health, readiness and metrics, and says where. */
async function serveListenerWebhook(options: ListenOptions, { runtime, metrics, scheduler, reconcile, probe }: ListenerParts): Promise<WebhookServer> {
  const { logger } = options;
  const secondaries = options.endpoints.secondaries;
  const server = await serveWebhook(
    {
      token: options.token,
      ...(options.githubSecret ? { githubSecret: options.githubSecret } : {}),
      logger,
      metrics: runtime.metrics,
      observer: metrics.webhook,
      clock: Date.now,
      health: () => ({ status: scheduler.stopped ? 'stopping' : 'ok', ...scheduler.counts, reconciling: reconcile.running }),
      closing: () => scheduler.stopped,
      take: (read, receivedAt) => scheduler.addHints(read, secondaries, receivedAt),
    },
    options,
    {
      metrics: { render: () => metrics.render(), ...(options.metricsToken ? { token: options.metricsToken } : {}) },
      ready: () => readiness(probe, () => scheduler.stopped),
      status: { data: () => statusData(options, runtime, probe), html: (data) => renderStatusPage(data as StatusPageData) },
    },
  );
  logger.info('listening', {
    url: `${server.url}/events`,
    formats: { distribution: '/events', harbor: '/events/harbor', quay: '/events/quay/<token>', ...(options.githubSecret ? { github: '/events/github' } : {}) },
    metrics: `${server.url}/metrics`,
    status: `${server.url}/status`,
    secondaries: secondaries.map((s) => s.name),
    reconcileEverySeconds: options.reconcileEveryMs / 1000,
  });
  return server;
}

/** Starts the queue tick and the periodic reconcile (which also runs at once); returns what stops both. */
function startTimers(reconcileEveryMs: number, scheduler: PairScheduler, reconcile: Reconcile): () => void {
  const tick = setInterval(() => scheduler.pump(), TICK_MS);
  const reconcileTimer = reconcileEveryMs > 0 ? setInterval(() => void reconcile.run(), reconcileEveryMs) : undefined;
  if (reconcileEveryMs > 0) void reconcile.run();
  scheduler.pump();
  return () => {
    clearInterval(tick);
    if (reconcileTimer) clearInterval(reconcileTimer);
  };
}

/** The status page's data: the records, and the primary's catalog on the probe's client (one try, no retries), or the records alone if it does not answer. */
async function statusData(options: ListenOptions, runtime: LocalRuntime, probe: Registry): Promise<StatusPageData> {
  const records = await runtime.store.list();
  const report = await readinessReport({
    secondaries: options.endpoints.secondaries,
    records,
    catalog: sourceCatalog(
      repositorySourceFrom(process.env),
      (page) => probe.listCatalogPage(page),
      () => probe.host,
    ),
    logger: options.logger,
    maxAgeMs: options.readyMaxAgeMs ?? parseDuration(DEFAULT_READY_MAX_AGE)!,
    catalogTimeoutMs: STATUS_CATALOG_TIMEOUT_MS,
  });
  return statusPageData(report, records, Date.now());
}

/** Ready: serving (not shutting down), and the primary answers `GET /v2/` (200, or 401 asking for credentials: it is there). */
async function readiness(probe: Registry, stopping: () => boolean): Promise<{ ready: boolean; primary: string }> {
  if (stopping()) return { ready: false, primary: 'not asked: shutting down' };
  try {
    await probe.ping({ timeoutMs: 5_000 });
    return { ready: true, primary: 'reachable' };
  } catch (error) {
    // The error names the host and the failure, never a credential.
    return { ready: false, primary: `unreachable: ${errorMessage(error)}` };
  }
}

function restore(path: string, logger: EngineLogger): SyncMessage[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  rmSync(path, { force: true });
  try {
    const parsed = JSON.parse(text) as unknown[];
    return parsed.flatMap((entry) => {
      const message = SyncMessage.safeParse(entry);
      return message.success ? [message.data] : [];
    });
  } catch (error) {
    logger.warn('event jobs handed back could not be read; the reconcile covers them', { path, error: errorMessage(error) });
    return [];
  }
}

function handBack(path: string, messages: SyncMessage[], logger: EngineLogger): void {
  if (messages.length === 0) return;
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${JSON.stringify(messages, null, 2)}\n`);
  logger.info('event jobs not done are kept for the next start', { jobs: messages.length, path });
}
