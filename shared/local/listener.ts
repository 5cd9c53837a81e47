/**
 * `geo-sync listen`: the event path on one machine. An HTTP endpoint takes the primary's
 * notifications (POST /events) and answers at once; the tags they name gather per (repository,
 * secondary) and leave as event jobs, one per pair at a time, through the same use-cases, embedded
 * queue and file store as `geo-sync run`. A periodic exact reconcile of every repository is the
 * safety net for events lost on the way.
 */
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_CONCURRENCY, GeoSyncError, errorMessage, invalidInput, type EngineLogger, type Endpoints } from '../engine/index.js';
import {
  MAX_BODY_BYTES,
  PendingTags,
  SyncMessage,
  answerBody,
  checkHeaders,
  fanOut,
  isEventJob,
  openRegistries,
  pairKey,
  processVerifyMessage,
  readBody,
  registryCatalog,
  runSyncJob,
  tooLarge,
  type FanOutRequest,
  type Queue,
  type Runtime,
  type VerifyMessage,
  type WebhookAnswer,
} from '../jobs/index.js';
import { FileStateStore } from './file-store.js';
import { acquireRepositoryLock } from './lock.js';
import { MemoryQueue } from './memory-queue.js';

/** A job's budget, as `geo-sync run` gives one (an event job caps its own lease much shorter). */
const FULL_BUDGET = { remainingMs: 60 * 60_000 };
/** How often the embedded queue is looked at for deferred and retried work coming due. */
const TICK_MS = 100;
/** How long shutdown waits for jobs in flight before handing back what they were doing. */
const SHUTDOWN_GRACE_MS = 30_000;
/** Where event jobs not done at shutdown are kept for the next start. */
const HANDED_BACK = 'pending-events.json';

export interface ListenOptions {
  endpoints: Endpoints;
  stateDir: string;
  /** The bearer token the registry sends; required. */
  token: string;
  host: string;
  /** 0: any free port (the URL says which). */
  port: number;
  /** Period of the exact reconcile of every repository, ms; 0 turns it off. It also runs at start. */
  reconcileEveryMs: number;
  /** Pairs worked on at once. */
  workers?: number;
  /** Parallel registry requests per job. */
  concurrency?: number;
  logger: EngineLogger;
  retry?: Runtime['retry'];
}

export interface Listener {
  /** http://host:port */
  url: string;
  /** Stops taking events, finishes the jobs in flight (or hands them back), keeps what is pending for the next start. */
  close(): Promise<{ handedBack: number }>;
}

interface Job {
  key: string;
  /** The event job's message, kept to hand back if shutdown comes before it finishes. */
  eventJob?: SyncMessage;
  run: () => Promise<void>;
}

export async function startListener(options: ListenOptions): Promise<Listener> {
  if (options.token.trim() === '')
    throw invalidInput('MISSING_CONFIG', 'no webhook token: set GEO_SYNC_WEBHOOK_TOKEN (the registry sends it as "Authorization: Bearer <token>")');
  const { logger } = options;
  const workers = options.workers ?? 4;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const secondaries = options.endpoints.secondaries.map((s) => s.name);
  const syncQueue = new MemoryQueue<SyncMessage>();
  const verifyQueue = new MemoryQueue<VerifyMessage>();
  const runtime: Runtime = {
    store: new FileStateStore(options.stateDir),
    syncQueue,
    verifyQueue,
    fanOutQueue: new MemoryQueue<FanOutRequest>(),
    logger,
    metrics: { add: () => undefined },
    clock: Date.now,
    random: Math.random,
    retry: options.retry ?? { baseMs: 60_000, capMs: 6 * 3600_000 },
    concurrency,
  };
  const pending = new PendingTags();
  /** Full syncs and verifications waiting, per pair, in order. */
  const waiting = new Map<string, (SyncMessage | (VerifyMessage & { verify: true }))[]>();
  /** Pairs with a job in flight, and its event job message if it is one. */
  const running = new Map<string, SyncMessage | undefined>();
  /** The reconcile in progress: walking the catalog, then waiting for the full syncs it sent. */
  const reconcile = { running: false, walking: false, outstanding: new Set<string>(), startedAt: 0 };
  let closing = false;

  const openClients = () => openRegistries(options.endpoints, { concurrency, logger });

  /** One job for one pair, under the same per-repository lock as `geo-sync sync` and `run`. */
  const runMessage = async (message: SyncMessage): Promise<void> => {
    const registries = openClients();
    let unlock: (() => void) | undefined;
    /** False while the message is still to be done (deferred): the reconcile waits for it. */
    let settled = true;
    try {
      try {
        unlock = acquireRepositoryLock(registries.secondary(message.secondary).host, message.repository);
      } catch (error) {
        if (!(error instanceof GeoSyncError) || error.code !== 'SYNC_IN_PROGRESS') throw error;
        // Another geo-sync is on this repository: this job waits its turn, it is not dropped.
        await syncQueue.send([message], { delaySeconds: 1 });
        settled = false;
        return;
      }
      const outcome = await runSyncJob(message, registries, runtime, FULL_BUDGET);
      settled = outcome.kind !== 'deferred' && !(outcome.kind === 'skipped' && outcome.reason === 'deferred');
    } finally {
      unlock?.();
      await registries.close();
      const key = pairKey(message);
      if (settled && !isEventJob(message) && reconcile.outstanding.delete(key) && reconcile.outstanding.size === 0 && !reconcile.walking) reconcileFinished();
    }
  };

  /** The next job for a pair: its event tags first (the fast path), then a full sync, then a verification. */
  const nextJob = (key: string): Job | undefined => {
    const tags = pending.take(key);
    if (tags) return { key, ...(isEventJob(tags) ? { eventJob: tags } : {}), run: () => runMessage(tags) };
    const queue = waiting.get(key);
    const message = queue?.shift();
    if (queue && queue.length === 0) waiting.delete(key);
    if (!message) return undefined;
    if ('verify' in message) {
      const { verify: _v, ...verify } = message;
      return { key, run: () => verifyPair(verify) };
    }
    return { key, run: () => runMessage(message as SyncMessage) };
  };

  const verifyPair = async (message: VerifyMessage): Promise<void> => {
    const registries = openClients();
    try {
      await processVerifyMessage(message, registries, runtime, FULL_BUDGET);
    } finally {
      await registries.close();
    }
  };

  const enqueueWaiting = (message: SyncMessage | (VerifyMessage & { verify: true })) => {
    const key = pairKey(message);
    const queue = waiting.get(key);
    if (queue) queue.push(message);
    else waiting.set(key, [message]);
  };

  /** Takes what came due off the embedded queues, then starts a job for each idle pair with work, up to `workers`. */
  const pump = () => {
    if (closing) return;
    for (let message = syncQueue.take(); message; message = syncQueue.take()) {
      if (isEventJob(message)) pending.addMessage(message, Date.now());
      else enqueueWaiting(message);
    }
    for (let message = verifyQueue.take(); message; message = verifyQueue.take()) enqueueWaiting({ ...message, verify: true });
    for (const key of [...pending.keys(), ...waiting.keys()]) {
      if (running.size >= workers) return;
      if (running.has(key)) continue;
      const job = nextJob(key);
      if (!job) continue;
      start(job);
    }
  };

  const inFlight = new Set<Promise<void>>();
  const start = (job: Job) => {
    running.set(job.key, job.eventJob);
    const run = job
      .run()
      .catch((error: unknown) => logger.error('job rejected', { pair: job.key.replace('\0', '/'), error: errorMessage(error) }))
      .finally(() => {
        running.delete(job.key);
        inFlight.delete(run);
        pump();
      });
    inFlight.add(run);
  };

  // --- The exact reconcile: every repository of the primary, through the same queue. -----------
  const reconcileFinished = () => {
    logger.info('reconcile finished', { seconds: (Date.now() - reconcile.startedAt) / 1000 });
    reconcile.running = false;
  };
  const runReconcile = async () => {
    if (closing) return;
    if (reconcile.running) {
      logger.info('reconcile skipped: the previous one is still running', { pairsLeft: reconcile.outstanding.size });
      return;
    }
    reconcile.running = true;
    reconcile.walking = true;
    reconcile.startedAt = Date.now();
    logger.info('reconcile started');
    const fanOutQueue = new MemoryQueue<FanOutRequest>();
    const into: Queue<SyncMessage> = {
      send: async (messages) => {
        for (const message of messages) {
          reconcile.outstanding.add(pairKey(message));
          enqueueWaiting(message);
        }
      },
    };
    const registries = openClients();
    try {
      // Forced: every pair is synced now, whatever its retry backoff, as `geo-sync run` does.
      let request: FanOutRequest | undefined = { target: 'sync', force: true };
      while (request && !closing) {
        await fanOut(request, registryCatalog(registries), secondaries, { ...runtime, syncQueue: into, fanOutQueue }, FULL_BUDGET);
        request = fanOutQueue.take();
      }
      logger.info('reconcile: every repository of the primary sent to sync', { pairs: reconcile.outstanding.size });
    } catch (error) {
      logger.error("reconcile failed: the primary's catalog could not be read", { error: errorMessage(error) });
    } finally {
      reconcile.walking = false;
      await registries.close();
    }
    if (reconcile.outstanding.size === 0) reconcileFinished();
    pump();
  };

  // --- Work handed back by the last run. ---------------------------------------------------------
  const handedBackPath = join(options.stateDir, HANDED_BACK);
  const restored = restore(handedBackPath, logger);
  for (const message of restored) {
    if (isEventJob(message)) pending.addMessage(message, Date.now());
    else enqueueWaiting(message);
  }
  if (restored.length > 0) logger.info('event jobs handed back by the last run restored', { jobs: restored.length });

  // --- The endpoint. ------------------------------------------------------------------------------
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.error('webhook request failed', { error: errorMessage(error) });
      if (!res.headersSent) respond(res, 500, JSON.stringify({ error: 'internal error' }), true);
    });
  });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      return respond(
        res,
        200,
        JSON.stringify({ status: closing ? 'stopping' : 'ok', pendingTags: pending.tagCount, running: running.size, reconciling: reconcile.running }),
        false,
      );
    }
    if (path !== '/events') return respond(res, 404, JSON.stringify({ error: 'not found' }), true);
    if (req.method !== 'POST') return respond(res, 405, JSON.stringify({ error: 'POST only' }), true, { allow: 'POST' });
    // The registry keeps an event and sends it again: shutting down loses nothing.
    if (closing) return respond(res, 503, JSON.stringify({ error: 'shutting down' }), true, { 'retry-after': '1' });
    const receivedAt = Date.now();
    const early = checkHeaders(
      { authorization: req.headers.authorization, contentType: req.headers['content-type'], contentLength: req.headers['content-length'] },
      options.token,
    );
    if (early) return refuse(req, res, early);
    const body = await readCapped(req);
    const answer = body ? readBody(body, receivedAt) : tooLarge();
    if (answer.status !== 200) return refuse(req, res, answer);
    respond(res, 200, answerBody(answer), false);
    for (const invalid of answer.read.invalid) logger.warn('event ignored: invalid', invalid);
    if (answer.read.hints.length > 0) {
      pending.addHints(answer.read.hints, secondaries, receivedAt);
      pump();
    }
  };
  const refuse = (req: IncomingMessage, res: ServerResponse, answer: WebhookAnswer) => {
    logger.warn('webhook request refused', { status: answer.status, reason: answer.status === 200 ? '' : answer.error, remote: req.socket.remoteAddress });
    // The body may be unread: answer, then close the connection rather than read the rest.
    respond(res, answer.status, answerBody(answer), true, answer.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  logger.info('listening', { url: `${url}/events`, secondaries, reconcileEverySeconds: options.reconcileEveryMs / 1000 });

  const tick = setInterval(pump, TICK_MS);
  const reconcileTimer = options.reconcileEveryMs > 0 ? setInterval(() => void runReconcile(), options.reconcileEveryMs) : undefined;
  if (options.reconcileEveryMs > 0) void runReconcile();
  pump();

  return {
    url,
    async close() {
      closing = true;
      clearInterval(tick);
      if (reconcileTimer) clearInterval(reconcileTimer);
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const settled = await Promise.race([
        Promise.all([...inFlight]).then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), SHUTDOWN_GRACE_MS).unref()),
      ]);
      // What is not done: pending and queued event jobs, and (past the grace) those still running.
      const unfinished = settled ? [] : [...running.values()].filter((message): message is SyncMessage => message !== undefined);
      const left = [...pending.drain(), ...syncQueue.drain().filter(isEventJob), ...unfinished];
      handBack(handedBackPath, left, logger);
      server.closeAllConnections();
      await stopped;
      return { handedBack: left.length };
    },
  };
}

function respond(res: ServerResponse, status: number, body: string, close: boolean, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...(close ? { connection: 'close' } : {}),
    ...headers,
  });
  res.end(body);
}

/** The whole body, or undefined as soon as it passes MAX_BODY_BYTES (the rest is never read). */
function readCapped(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
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
