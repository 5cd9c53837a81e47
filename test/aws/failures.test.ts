// What goes wrong, handled: poison messages, duplicate delivery, deadlines, registry outages.
// Real handlers and SDK clients against dynalite and local-aws-sqs, two real registries.
import { fixedRegistries } from '../support/scopes.js';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DynamoDbStateStore } from '../../shared/aws/dynamodb-store.js';
import { SqsQueue } from '../../shared/aws/sqs-queue.js';
import { RegistryClient, silentLogger } from '../../shared/engine/index.js';
import { noMetrics, processSyncMessage, type Runtime } from '../../shared/jobs/index.js';
import { startRegistryPair, type RegistryPair } from '../support/registry.js';
import { pushImage, readTags } from '../support/seed.js';
import { drain, lambdaContext, pollOnce, queueDepth, sqsRecord, importHandlers, type Handlers } from './support/event-source.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';

let aws: LocalAws;
let registries: RegistryPair;
let handlers: Handlers;
let logs: string[] = [];

beforeAll(async () => {
  // Failed messages come back after 1 s; the second failure dead-letters them.
  [aws, registries] = await Promise.all([startLocalAws({ visibilityTimeout: 1, maxReceiveCount: 2 }), startRegistryPair()]);
  Object.assign(process.env, aws.env(), {
    GEO_SYNC_PRIMARY_URL: registries.primary.url,
    GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'eu', url: registries.secondary.url }]),
    GEO_SYNC_CATALOG_PAGE_SIZE: '2',
    POWERTOOLS_LOG_LEVEL: 'INFO',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
  // Powertools writes info to stdout and warnings and errors to stderr: keep both to assert on.
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => (logs.push(String(chunk)), true));
  handlers = await importHandlers();
});

afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all([aws?.stop(), registries?.stop()]);
});

beforeEach(() => {
  logs = [];
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;
const syncSource = () => ({ name: 'sync', url: aws.queues.sync.url, arn: aws.queues.sync.arn, handler: handlers.sync, batchSize: 10 });
const verifySource = () => ({ name: 'verify', url: aws.queues.verify.url, arn: aws.queues.verify.arn, handler: handlers.verify, batchSize: 10 });
const item = async (repository: string) => (await aws.items()).find((i) => i.repository === repository && i.secondary === 'eu');
const logLines = () =>
  logs
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('poison messages', () => {
  it('fail alone in their batch and end in the dead-letter queue after the redrive limit', async () => {
    await pushImage(P(), 'ok/app', 'v1');
    const bodies = [
      '{"repository":"ok/app","secondary":"eu"}',
      'not json',
      '{"repository":"Bad//Name","secondary":"eu"}',
      '{"repository":"ok/app","secondary":"nowhere"}',
    ];
    await aws.sqs.send(
      new SendMessageBatchCommand({ QueueUrl: aws.queues.sync.url, Entries: bodies.map((MessageBody, i) => ({ Id: String(i), MessageBody })) }),
    );

    const first = await pollOnce(aws.sqs, aws.queues.sync.url, aws.queues.sync.arn, handlers.sync);
    await drain(aws.sqs, [syncSource(), verifySource()]);

    expect(first).toEqual({ received: 4, failed: 3 });
    expect(await readTags(S(), 'ok/app')).toEqual(await readTags(P(), 'ok/app'));
    expect(await item('ok/app')).toMatchObject({ syncState: 'synced', verifyState: 'synced' });
    const { Messages = [] } = await aws.sqs.send(new ReceiveMessageCommand({ QueueUrl: aws.queues.sync.deadLetterUrl, MaxNumberOfMessages: 10 }));
    expect(Messages.map((m) => m.Body).sort()).toEqual(bodies.slice(1).sort());
    const rejected = logLines().filter((l) => l.message === 'message rejected');
    expect(new Set(rejected.map((l) => l.code))).toEqual(new Set(['INVALID_MESSAGE', 'UNKNOWN_SECONDARY']));
    expect(rejected.map((l) => String(l.error))).toContain('message body is not valid JSON');
  });
});

describe('the lease', () => {
  it('lets only one of two concurrent deliveries of the same message sync', async () => {
    await pushImage(P(), 'dup/app', 'a');
    await pushImage(P(), 'dup/app', 'b');
    const record = sqsRecord('same-id', 'r', '{"repository":"dup/app","secondary":"eu"}', aws.queues.sync.arn);

    const results = await Promise.all([handlers.sync({ Records: [record] }, lambdaContext()), handlers.sync({ Records: [record] }, lambdaContext())]);

    expect(results).toEqual([{ batchItemFailures: [] }, { batchItemFailures: [] }]);
    expect(logLines().filter((l) => l.message === 'sync skipped: lease held by another invocation')).toHaveLength(1);
    expect((await queueDepth(aws.sqs, aws.queues.sync.url)).delayed).toBe(0); // dropped, not deferred
    // The winner's record stands: it copied both tags, and the loser wrote nothing over it.
    expect(await item('dup/app')).toMatchObject({ syncState: 'synced', lastSync: { copied: 2 } });
    expect(await readTags(S(), 'dup/app')).toEqual(await readTags(P(), 'dup/app'));
    await drain(aws.sqs, [syncSource(), verifySource()]);
  });

  it("is taken over once the holder's lease has expired, by the message that found it held", async () => {
    await pushImage(P(), 'lease/app', 'v1');
    const store = new DynamoDbStateStore(aws.dynamo, aws.table);
    const key = { repository: 'lease/app', secondary: 'eu' };
    await store.acquireLease(key, { owner: 'crashed-invocation', expiresAt: Date.now() + 1_500 }, Date.now());
    const event = { Records: [sqsRecord('m1', 'r', JSON.stringify(key), aws.queues.sync.arn)] };

    await handlers.sync(event, lambdaContext());
    expect(await item('lease/app')).toMatchObject({ leaseOwner: 'crashed-invocation' });
    // A holder that does not say what it does (it crashed, or ran an older version) is not trusted to cover the sync.
    expect((await queueDepth(aws.sqs, aws.queues.sync.url)).delayed).toBe(1);
    while ((await queueDepth(aws.sqs, aws.queues.sync.url)).delayed > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    await drain(aws.sqs, [syncSource(), verifySource()]);

    const after = await item('lease/app');
    expect(after).toMatchObject({ syncState: 'synced', verifyState: 'synced', lastSync: { copied: 1 } });
    expect(after).not.toHaveProperty('leaseOwner');
  });
});

describe('deadlines', () => {
  it('a sync out of time records its progress and continues in a new invocation that re-plans', async () => {
    for (const tag of ['1', '2', '3', '4', '5', '6']) await pushImage(P(), 'big/app', tag);
    const event = { Records: [sqsRecord('big', 'r', '{"repository":"big/app","secondary":"eu"}', aws.queues.sync.arn)] };

    const first = await handlers.sync(event, lambdaContext(1));

    expect(first).toEqual({ batchItemFailures: [] });
    expect(await item('big/app')).toMatchObject({ syncState: 'pending', continuations: 1, lastSync: { status: 'incomplete' } });
    const stats = await drain(aws.sqs, [syncSource(), verifySource()]);
    expect(stats.sync!.messages).toBe(1); // the continuation
    expect(await readTags(S(), 'big/app')).toEqual(await readTags(P(), 'big/app'));
    const done = await item('big/app');
    expect(done).toMatchObject({ syncState: 'synced', verifyState: 'synced', retryCount: 0 });
    expect(done).not.toHaveProperty('continuations');
  });

  it('a manual sync with maxPrune that runs out of time continues under the same prune limit', async () => {
    for (const tag of ['1', '2', '3']) await pushImage(P(), 'bigguard/app', tag);
    const extra = ['x1', 'x2', 'x3', 'x4', 'x5'];
    for (const tag of extra) await pushImage(S(), 'bigguard/app', tag, { seed: tag });

    const first = (await handlers.sync({ repository: 'bigguard/app', secondary: 'eu', maxPrune: 1 }, lambdaContext(1))) as { results: { outcome: string }[] };

    expect(first.results).toMatchObject([{ outcome: 'continued' }]);
    const stats = await drain(aws.sqs, [syncSource(), verifySource()]);
    expect(stats.sync!.messages).toBe(1); // the continuation: 5 of the 8 tags both sides hold would hold the guard at 0.5
    expect(await readTags(S(), 'bigguard/app')).toEqual(await readTags(P(), 'bigguard/app'));
    expect(await item('bigguard/app')).toMatchObject({ syncState: 'synced', lastSync: { removed: 5 } });
  });

  it('a catalog walk out of time checkpoints its cursor and continues on its own queue, each repository enqueued once', async () => {
    for (const name of ['walk/a', 'walk/b', 'walk/c']) await pushImage(P(), name, 'v1');
    const catalog = ((await (await fetch(`${P()}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
    const scheduled = { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} };

    const first = await handlers.fanOut(scheduled, lambdaContext(1));
    const overlapping = await handlers.fanOut(scheduled, lambdaContext());
    const checkpoint = (await aws.items()).find((i) => i.repository === '#fan-out' && i.secondary === 'sync');
    const stats = await drain(aws.sqs, [
      { name: 'fanOut', url: aws.queues.fanOut.url, arn: aws.queues.fanOut.arn, handler: handlers.fanOut, batchSize: 1, context: () => lambdaContext(1) },
    ]);

    expect(catalog.length).toBeGreaterThan(4);
    expect(first).toMatchObject({ kind: 'continued', enqueued: 2 });
    expect(overlapping).toMatchObject({ kind: 'skipped', reason: 'previous run in progress' });
    expect(checkpoint).toMatchObject({ cursor: catalog[1], enqueued: 2 });
    expect(checkpoint).not.toHaveProperty('finishedAt');
    expect(stats.fanOut!.invocations).toBe(Math.ceil(catalog.length / 2) - 1);
    const enqueued: string[] = [];
    for (let batch = await receiveAll(aws.queues.sync.url); batch.length > 0; batch = await receiveAll(aws.queues.sync.url)) enqueued.push(...batch);
    expect(enqueued.map((body) => (JSON.parse(body) as { repository: string }).repository).sort()).toEqual(catalog);
    expect((await aws.items()).find((i) => i.repository === '#fan-out' && i.secondary === 'sync')).toMatchObject({
      enqueued: catalog.length,
      finishedAt: expect.any(String),
    });
  });
});

describe('retry backoff after a failed sync', () => {
  it('grows with each failure, survives scheduled runs, drops stale retries, and resets only on success', async () => {
    await pushImage(P(), 'retry/app', 'v1');
    let now = Date.parse('2030-01-01T00:00:00Z');
    const live = new RegistryClient({ url: S() });
    const down = new RegistryClient({ url: 'http://127.0.0.1:1' }, { retries: 0 });
    const primary = new RegistryClient({ url: P() });
    let secondary: RegistryClient = down;
    const clients = fixedRegistries(primary, () => secondary);
    const runtime: Runtime = {
      store: new DynamoDbStateStore(aws.dynamo, aws.table),
      syncQueue: new SqsQueue(aws.sqs, aws.queues.sync.url),
      verifyQueue: new SqsQueue(aws.sqs, aws.queues.verify.url),
      fanOutQueue: new SqsQueue(aws.sqs, aws.queues.fanOut.url),
      logger: silentLogger,
      metrics: noMetrics,
      clock: () => now,
      random: () => 0.5, // equal jitter at its midpoint: 3/4 of each step
      retry: { baseMs: 60_000, capMs: 3_600_000 },
      concurrency: 4,
    };
    const budget = { remainingMs: 60_000 };
    const sync = (extra: { retry?: number } = {}) => processSyncMessage({ repository: 'retry/app', secondary: 'eu', ...extra }, clients, runtime, budget);
    const record = async () => (await item('retry/app'))!;
    try {
      expect(await sync()).toMatchObject({ kind: 'failed' });
      expect(await record()).toMatchObject({ syncState: 'failed', retryCount: 1, nextRetryAt: new Date(now + 45_000).toISOString() });
      expect(String((await record()).syncError)).toContain('127.0.0.1:1');
      expect((await queueDepth(aws.sqs, aws.queues.sync.url)).delayed).toBe(1); // the retry, delayed 45 s

      now += 10_000;
      expect(await sync()).toEqual({ kind: 'not-run', reason: 'backing-off' }); // a scheduled run during the backoff
      expect(await sync({ retry: 1 })).toEqual({ kind: 'not-run', reason: 'deferred' }); // the retry itself, early

      now += 50_000;
      expect(await sync({ retry: 1 })).toMatchObject({ kind: 'failed' });
      expect(await record()).toMatchObject({ retryCount: 2, nextRetryAt: new Date(now + 90_000).toISOString() });
      expect(await sync({ retry: 1 })).toEqual({ kind: 'not-run', reason: 'stale-retry' });

      secondary = live;
      now += 100_000;
      expect(await sync({ retry: 2 })).toMatchObject({ kind: 'synced' });
      const healed = await record();
      expect(healed).toMatchObject({ syncState: 'synced', retryCount: 0 });
      expect(healed).not.toHaveProperty('nextRetryAt');
      expect(healed).not.toHaveProperty('syncError');
    } finally {
      await Promise.all([live.close(), down.close(), primary.close()]);
    }
  });
});

/** Takes up to ten messages off the queue for good. */
async function receiveAll(queueUrl: string): Promise<string[]> {
  const { Messages = [] } = await aws.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 }));
  if (Messages.length > 0) {
    await aws.sqs.send(
      new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }),
    );
  }
  return Messages.map((m) => m.Body!);
}
