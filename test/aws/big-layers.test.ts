// Layers bigger than one invocation: a blob copied in chunks across invocations through the queue,
// its progress saved in the DynamoDB record after each chunk, a killed invocation resumed, stale
// upload sessions cancelled. Real handlers and SDK clients against dynalite and local SQS, two real
// registries, the secondary behind a bandwidth-limiting proxy that counts the bytes it forwards.
import { fixedRegistries } from '../support/scopes.js';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbStateStore } from '../../shared/aws/dynamodb-store.js';
import { SqsQueue } from '../../shared/aws/sqs-queue.js';
import { RegistryClient, jsonLogger, silentLogger, type UploadSession } from '../../shared/engine/index.js';
import { noMetrics, processSyncMessage, type Runtime, type StateStore } from '../../shared/jobs/index.js';
import { LEASE_GRACE_MS, WORK_FRACTION } from '../../shared/jobs/timing.js';
import { startRegistryPair, type RegistryPair } from '../support/registry.js';
import { openUploadSession, pushBigLayerImage, readTags } from '../support/seed.js';
import { startThrottleProxy, type ThrottleProxy } from '../support/throttle-proxy.js';
import { drain, importHandlers, lambdaContext, type Handlers } from './support/event-source.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';

const MB = 1024 * 1024;
/** The budget that puts the deadline 20 s out: the sync job starts work for WORK_FRACTION of it. */
const TWENTY_SECOND_DEADLINE_BUDGET = Math.ceil(20_000 / WORK_FRACTION);

let aws: LocalAws;
let registries: RegistryPair;
let slowLink: ThrottleProxy;
let handlers: Handlers;

beforeAll(async () => {
  [aws, registries] = await Promise.all([startLocalAws({ visibilityTimeout: 60 }), startRegistryPair()]);
  // 7 MB/s: a 300 MB layer needs about 45 s, three invocations with a 20 s deadline each.
  slowLink = await startThrottleProxy(registries.secondary.url, { bytesPerSecond: 7 * MB });
  Object.assign(process.env, aws.env(), {
    GEO_SYNC_PRIMARY_URL: registries.primary.url,
    GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'eu', url: slowLink.url }]),
    POWERTOOLS_LOG_LEVEL: 'WARN',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
  handlers = await importHandlers();
});

afterAll(async () => {
  await slowLink?.stop();
  await Promise.all([aws?.stop(), registries?.stop()]);
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;
const item = async (repository: string) => (await aws.items()).find((i) => i.repository === repository && i.secondary === 'eu');

const pushBigImage = (repository: string, tag: string, size: number) => pushBigLayerImage(P(), repository, tag, size, `${repository} layer`);

/** The sha256 of the blob as the secondary serves it, read straight from the registry (not through the proxy). */
async function servedDigest(repository: string, digest: string): Promise<string> {
  const response = await fetch(`${S()}/v2/${repository}/blobs/${digest}`);
  if (response.status !== 200 || !response.body) return `HTTP ${response.status}`;
  const hash = createHash('sha256');
  for await (const chunk of response.body) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

/** The registry's answer to a status request on an upload Location. */
async function sessionStatus(location: string): Promise<{ status: number; code?: string }> {
  const response = await fetch(location.replace(/^http:\/\/[^/]+/, S()));
  const text = await response.text();
  const code = text ? (JSON.parse(text) as { errors?: { code: string }[] }).errors?.[0]?.code : undefined;
  return { status: response.status, ...(code ? { code } : {}) };
}

/** Chunk uploads (PATCH) sent through a proxy, with where each started. */
const patches = (proxy: ThrottleProxy) =>
  proxy.log.filter((entry) => entry.method === 'PATCH').map((entry) => Number(/^(\d+)-/.exec(entry.contentRange ?? '')?.[1]));

describe('a layer bigger than one invocation', () => {
  it('is copied in chunks across invocations through the queue, with bytes sent at most 1.1x the layer', async () => {
    const size = 300 * MB;
    const image = await pushBigImage('ml/model', 'v1', size);
    await new SqsQueue(aws.sqs, aws.queues.sync.url).send([{ repository: 'ml/model', secondary: 'eu' }]);
    const before = slowLink.bytesUp;
    const started = Date.now();

    const stats = await drain(
      aws.sqs,
      [
        {
          name: 'sync',
          url: aws.queues.sync.url,
          arn: aws.queues.sync.arn,
          handler: handlers.sync,
          context: () => lambdaContext(TWENTY_SECOND_DEADLINE_BUDGET),
        },
        { name: 'verify', url: aws.queues.verify.url, arn: aws.queues.verify.arn, handler: handlers.verify },
      ],
      { timeoutMs: 150_000 },
    );

    const sent = slowLink.bytesUp - before;
    console.log(
      `300 MB layer: ${stats.sync!.invocations} sync invocations, ${(sent / size).toFixed(3)}x the layer sent, ${patches(slowLink).length} chunks, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(stats.sync!.invocations).toBeGreaterThanOrEqual(2);
    expect(await readTags(S(), 'ml/model')).toEqual({ v1: image.manifest });
    expect(await servedDigest('ml/model', image.layer)).toBe(image.layer);
    expect(sent).toBeLessThanOrEqual(1.1 * size);
    const record = await item('ml/model');
    expect(record).toMatchObject({ syncState: 'synced', verifyState: 'synced' });
    expect(record).not.toHaveProperty('uploads');
    expect(record).not.toHaveProperty('continuations');
  });
});

describe('a big layer arriving through a registry notification', () => {
  it("is copied in chunks by event jobs across invocations, each resuming the last one's upload", async () => {
    const size = 80 * MB;
    const image = await pushBigImage('ml/pushed', 'v1', size);
    // What the notify function queues for a push: an event job naming the tag and its digest.
    const now = Date.now();
    await new SqsQueue(aws.sqs, aws.queues.sync.url).send([
      { repository: 'ml/pushed', secondary: 'eu', tags: ['v1'], pushed: { v1: image.manifest }, eventAt: now, requestedAt: now },
    ]);
    const before = slowLink.bytesUp;
    const chunksBefore = patches(slowLink).length;

    // A 10-second budget: the event job starts work for 6 s of it, so 80 MB at 7 MB/s takes two or more.
    const stats = await drain(
      aws.sqs,
      [{ name: 'sync', url: aws.queues.sync.url, arn: aws.queues.sync.arn, handler: handlers.sync, context: () => lambdaContext(10_000) }],
      {
        timeoutMs: 90_000,
      },
    );

    const sent = slowLink.bytesUp - before;
    const starts = patches(slowLink).slice(chunksBefore);
    console.log(`80 MB layer by event jobs: ${stats.sync!.invocations} invocations, ${(sent / size).toFixed(3)}x the layer sent, ${starts.length} chunks`);
    expect(stats.sync!.invocations).toBeGreaterThanOrEqual(2);
    expect(await readTags(S(), 'ml/pushed')).toEqual({ v1: image.manifest });
    expect(await servedDigest('ml/pushed', image.layer)).toBe(image.layer);
    expect(sent).toBeLessThanOrEqual(1.1 * size);
    // One session from 0 to the end: every chunk starts where the one before ended, none from 0 again.
    expect(starts.filter((start) => start === 0)).toHaveLength(1);
    const record = await item('ml/pushed');
    expect(record?.lastEvent).toMatchObject({ status: 'synced', copied: 1 });
    expect(record).not.toHaveProperty('uploads');
  });
});

/** One invocation's world: its own registry clients, the secondary reached through `proxy`, the DynamoDB store wrapped by the test. */
function invocation(proxy: ThrottleProxy, store: StateStore, clock: () => number, primaryUrl = P()) {
  const primary = new RegistryClient({ url: primaryUrl });
  const secondary = new RegistryClient({ url: proxy.url }, { retries: 1, backoff: { baseMs: 50, capMs: 100 } });
  const clients = fixedRegistries(primary, () => secondary);
  const runtime: Runtime = {
    store,
    syncQueue: new SqsQueue(aws.sqs, aws.queues.sync.url),
    verifyQueue: { send: async () => undefined },
    fanOutQueue: new SqsQueue(aws.sqs, aws.queues.fanOut.url),
    logger: process.env.DEBUG_BIG ? jsonLogger('debug', (l) => process.stdout.write(l)) : silentLogger,
    metrics: noMetrics,
    clock,
    random: () => 0.5,
    retry: { baseMs: 60_000, capMs: 3_600_000 },
    concurrency: 4,
  };
  return { clients, runtime };
}

/** Resolves once the `n`-th chunk (PATCH) through `proxy` has sent its first megabyte and is still under way. */
async function chunkUnderWay(proxy: ThrottleProxy, n: number): Promise<void> {
  for (;;) {
    const chunk = proxy.log.filter((entry) => entry.method === 'PATCH')[n - 1];
    if (chunk && chunk.bytes >= MB) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A store through which an invocation dies: once `dead`, nothing it writes arrives (its calls
 * never return), as for a Lambda killed at its timeout. What it saved before stays.
 */
function mortalStore(store: StateStore): { store: StateStore; die(): void; saves: UploadSession[][] } {
  let dead = false;
  const never = new Promise<never>(() => undefined);
  const saves: UploadSession[][] = [];
  return {
    saves,
    die: () => (dead = true),
    store: {
      get: (key) => store.get(key),
      acquireLease: (...args) => store.acquireLease(...args),
      release: (record, owner) => (dead ? never : store.release(record, owner)),
      saveProgress: async (key, owner, uploads) => {
        if (dead) return never;
        const saved = await store.saveProgress(key, owner, uploads);
        saves.push(uploads);
        return saved;
      },
      list: () => store.list(),
      getCheckpoint: (id) => store.getCheckpoint(id),
      putCheckpoint: (checkpoint) => store.putCheckpoint(checkpoint),
    },
  };
}

describe('a killed invocation', () => {
  const size = 80 * MB;
  const budget = { remainingMs: 60_000 };

  it.each([
    { when: 'between chunks', resumes: true },
    { when: 'mid-chunk', resumes: false },
  ])('dies $when without recording its result; after its lease expires the next invocation finishes the copy', async ({ when, resumes }) => {
    const repository = `killed/${when.replace(/\W/g, '-')}`;
    const image = await pushBigImage(repository, 'v1', size);
    const key = { repository, secondary: 'eu' };
    const dynamo = new DynamoDbStateStore(aws.dynamo, aws.table);
    let skew = 0;
    const clock = () => Date.now() + skew;
    const link = await startThrottleProxy(S(), { bytesPerSecond: 24 * MB });
    const primaryIgnoringRange = await startThrottleProxy(P(), { bytesPerSecond: 10_000 * MB, ignoreRange: true });
    const doomed = mortalStore(dynamo);
    const a = invocation(link, doomed.store, clock);
    try {
      // The second chunk's progress is saved; then the invocation dies, before its next chunk or
      // during it: it writes nothing more and its connections close (the registry sees a PATCH cut).
      const died = new Promise<void>((resolve) => {
        const save = doomed.store.saveProgress;
        doomed.store.saveProgress = async (...args) => {
          const saved = await save(...args);
          if (doomed.saves.length === 2) {
            const kill = () => {
              doomed.die();
              void (a.clients.secondary('eu') as any).transport.dispatcher.destroy();
              void (a.clients.primary() as any).transport.dispatcher.destroy();
              resolve();
            };
            if (when === 'between chunks') kill();
            else void chunkUnderWay(link, doomed.saves.length + 1).then(kill);
          }
          return saved;
        };
      });
      void processSyncMessage({ repository, secondary: 'eu' }, a.clients, a.runtime, budget).catch(() => undefined);
      await died;
      const saved = (await dynamo.get(key))!;
      expect(saved).toMatchObject({ leaseOwner: expect.any(String), uploads: [{ digest: image.layer, size }] });
      const kept = saved.uploads![0]!;
      expect(kept.offset).toBeGreaterThan(0);
      expect(saved).not.toHaveProperty('lastSync');
      const sentBefore = link.bytesUp;
      const logBefore = link.log.length;

      // Its message comes back once the lease has expired (the clock moved past it). The primary
      // is read through a proxy that drops Range: the copy skips what the secondary holds.
      skew = budget.remainingMs + LEASE_GRACE_MS + 1_000;
      const b = invocation(link, dynamo, clock, primaryIgnoringRange.url);
      const outcome = await processSyncMessage({ repository, secondary: 'eu' }, b.clients, b.runtime, budget);

      const resumedAt = patches({ ...link, log: link.log.slice(logBefore) })[0]!;
      console.log(
        `killed ${when}: saved offset ${(kept.offset / MB).toFixed(1)} MB, next invocation's first chunk from ${(resumedAt / MB).toFixed(1)} MB, ${(link.bytesUp / size).toFixed(3)}x the layer sent in all`,
      );
      expect(outcome).toMatchObject({ kind: 'synced' });
      expect(await readTags(S(), repository)).toEqual({ v1: image.manifest });
      expect(await servedDigest(repository, image.layer)).toBe(image.layer);
      const record = await dynamo.get(key);
      expect(record).toMatchObject({ syncState: 'synced' });
      expect(record).not.toHaveProperty('uploads');
      if (resumes) {
        expect(resumedAt).toBe(kept.offset);
        expect(primaryIgnoringRange.log.find((entry) => entry.path.includes('/blobs/'))).toMatchObject({ method: 'GET', status: 200 });
        expect(link.bytesUp).toBeLessThanOrEqual(1.1 * size);
      } else {
        // Registry 2.8.2 invalidates a session whose PATCH was cut: the next invocation starts a fresh one.
        expect(await sessionStatus(kept.location)).toMatchObject({ status: 404 });
        expect(resumedAt).toBe(0);
        expect(link.bytesUp - sentBefore).toBeLessThanOrEqual(1.1 * size);
      }
    } finally {
      await Promise.all([link.stop(), primaryIgnoringRange.stop()]);
    }
  });
});

describe('kept upload sessions', () => {
  const size = 40 * MB;

  it.each([
    { case: 'older than the age bound is cancelled', ageMs: 25 * 3600_000, purged: false },
    { case: 'the registry no longer knows starts afresh', ageMs: 60_000, purged: true },
  ])('a session $case, and the blob is copied from the start', async ({ ageMs, purged }) => {
    const repository = purged ? 'kept/purged' : 'kept/stale';
    const image = await pushBigImage(repository, 'v1', size);
    const proxy = await startThrottleProxy(S(), { bytesPerSecond: 200 * MB });
    const location = await openUploadSession(proxy.url, repository, Buffer.alloc(2 * MB, 7));
    // The registry's purge of old uploads, on cue.
    if (purged) await fetch(location.replace(/^http:\/\/[^/]+/, S()), { method: 'DELETE' });
    const dynamo = new DynamoDbStateStore(aws.dynamo, aws.table);
    const key = { repository, secondary: 'eu' };
    // The record an earlier invocation left: the session saved under its lease, long expired.
    await dynamo.acquireLease(key, { owner: 'earlier', expiresAt: Date.now() - 1 }, Date.now() - 10);
    const session: UploadSession = { digest: image.layer, location, offset: 2 * MB, size, startedAt: Date.now() - ageMs };
    expect(await dynamo.saveProgress(key, 'earlier', [session])).toBe(true);
    try {
      const { clients, runtime } = invocation(proxy, dynamo, Date.now);

      const outcome = await processSyncMessage({ repository, secondary: 'eu' }, clients, runtime, { remainingMs: 120_000 });

      expect(outcome).toMatchObject({ kind: 'synced' });
      expect(await sessionStatus(location)).toMatchObject({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
      expect(patches(proxy)[0]).toBe(0);
      expect(proxy.log.filter((entry) => entry.method === 'DELETE' && entry.path.includes('/blobs/uploads/'))).toHaveLength(1);
      expect(await servedDigest(repository, image.layer)).toBe(image.layer);
      expect(await dynamo.get(key)).not.toHaveProperty('uploads');
    } finally {
      await proxy.stop();
    }
  });
});

describe('saveProgress on DynamoDB', () => {
  it('writes the sessions only while the owner holds the lease, and removes the field when none are left', async () => {
    const store = new DynamoDbStateStore(aws.dynamo, aws.table);
    const key = { repository: 'progress/app', secondary: 'eu' };
    const session: UploadSession = {
      digest: `sha256:${'a'.repeat(64)}`,
      location: 'http://r/v2/x/blobs/uploads/u?_state=s',
      offset: 5,
      size: 10,
      startedAt: 1,
    };
    await store.acquireLease(key, { owner: 'me', expiresAt: Date.now() + 60_000 }, Date.now());

    expect(await store.saveProgress(key, 'someone-else', [session])).toBe(false);
    expect(await store.get(key)).not.toHaveProperty('uploads');
    expect(await store.saveProgress(key, 'me', [session])).toBe(true);
    expect(await store.get(key)).toMatchObject({ uploads: [session], leaseOwner: 'me' });
    expect(await store.saveProgress(key, 'me', [])).toBe(true);
    expect(await store.get(key)).not.toHaveProperty('uploads');
  });
});
