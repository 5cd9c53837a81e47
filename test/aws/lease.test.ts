// A message that finds its pair's lease held is never lost: it is dropped only when the holder
// already does its work, otherwise sent back to its queue with a delay. First the pure rule, then
// both collisions (the hourly sync and the daily deep verify) through the real handlers and SDK
// clients against dynalite and local-aws-sqs, with two real registries; the secondary sits behind
// a proxy that slows one request, so that the holder holds the lease while the other message arrives.
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { MIN_DEFER_MS, whenLeaseHeld, type LeaseHolder, type LeaseWork } from '../../shared/jobs/lease-decision.js';
import { SyncMessage, newRecord, parseQueued, type RepositoryRecord } from '../../shared/jobs/index.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { startRegistryPair, type RegistryPair } from '../support/registry.js';
import { deleteBlob, pushImage, readTags } from '../support/seed.js';
import { drain, importHandlers, lambdaContext, pollOnce, queueDepth, sqsRecord, type Handlers } from './support/event-source.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';

const NOW = Date.parse('2030-01-01T00:00:00Z');
const key = { repository: 'g/p', secondary: 'eu' };

describe('whenLeaseHeld: drop only when the holder already does the work, else defer', () => {
  const held = (holder: LeaseHolder | undefined, expiresIn = 300_000): RepositoryRecord => ({
    ...newRecord(key, NOW),
    leaseOwner: 'other',
    leaseExpiresAt: NOW + expiresIn,
    ...(holder ? { leaseHolder: holder } : {}),
  });
  const sync = (deep: boolean, startedAt: number): LeaseHolder => ({ kind: 'sync', deep, startedAt });
  const verify = (deep: boolean, startedAt: number): LeaseHolder => ({ kind: 'verify', deep, startedAt });
  const work = (kind: LeaseWork['kind'], deep: boolean, requestedAt: number): LeaseWork => ({ kind, deep, requestedAt });

  it.each([
    ['a duplicate delivery of the sync that holds the lease', work('sync', false, NOW - 2_000), held(sync(false, NOW - 1_000)), 'drop'],
    ['a sync requested the moment the holder started', work('sync', false, NOW - 1_000), held(sync(false, NOW - 1_000)), 'drop'],
    ['a shallow sync behind a deep one', work('sync', false, NOW - 2_000), held(sync(true, NOW - 1_000)), 'drop'],
    ['a shallow verify behind a deep one', work('verify', false, NOW - 2_000), held(verify(true, NOW - 1_000)), 'drop'],
    ['a deep verify behind a deep one', work('verify', true, NOW - 2_000), held(verify(true, NOW - 1_000)), 'drop'],
    ['a sync requested after the holder started (it may not see the change)', work('sync', false, NOW - 500), held(sync(false, NOW - 1_000)), 'defer'],
    ['a sync behind a verify', work('sync', false, NOW - 2_000), held(verify(true, NOW - 1_000)), 'defer'],
    ['a verify behind a sync', work('verify', false, NOW - 2_000), held(sync(true, NOW - 1_000)), 'defer'],
    ['a deep verify behind a sync', work('verify', true, NOW - 2_000), held(sync(false, NOW - 1_000)), 'defer'],
    ['a deep verify behind a shallow verify', work('verify', true, NOW - 2_000), held(verify(false, NOW - 1_000)), 'defer'],
    ['a deep sync behind a shallow sync', work('sync', true, NOW - 2_000), held(sync(false, NOW - 1_000)), 'defer'],
    [
      'a sync with a raised prune limit behind one under the default',
      { ...work('sync', false, NOW - 2_000), maxPrune: 1 },
      held(sync(false, NOW - 1_000)),
      'defer',
    ],
    [
      'a sync under the default behind one with a raised prune limit',
      work('sync', false, NOW - 2_000),
      held({ ...sync(false, NOW - 1_000), maxPrune: 1 }),
      'drop',
    ],
    ['a holder that does not say what it does', work('sync', false, NOW - 2_000), held(undefined), 'defer'],
    ['a lease released since the attempt to take it', work('sync', false, NOW - 2_000), newRecord(key, NOW), 'defer'],
  ] as const)('%s: %s', (_name, asked, record, expected) => {
    expect(whenLeaseHeld(asked, record, NOW).kind).toBe(expected);
  });

  it.each([
    ['a holder that has just started: the shortest deferral', held(verify(true, NOW - 300)), MIN_DEFER_MS],
    ['a holder that has run a minute: about a minute more', held(verify(true, NOW - 60_000)), 60_000],
    ['a holder whose lease ends sooner: until then', held(verify(true, NOW - 60_000), 2_000), 2_000],
    ['a lease about to expire: one second', held(verify(true, NOW - 60_000), 200), 1_000],
    ['a holder that does not say what it does', held(undefined), MIN_DEFER_MS],
    ['a lease already released: one second', newRecord(key, NOW), 1_000],
  ])('waits %s', (_name, record, delayMs) => {
    expect(whenLeaseHeld(work('sync', false, NOW), record, NOW)).toEqual({ kind: 'defer', delayMs });
  });
});

describe('parseQueued: when a queued message was requested', () => {
  const body = JSON.stringify(key);
  it("is its own requestedAt, else the queue's SentTimestamp, else unknown (the job then takes now)", () => {
    expect(parseQueued(SyncMessage, JSON.stringify({ ...key, requestedAt: 5 }), '9')).toEqual({ ...key, requestedAt: 5 });
    expect(parseQueued(SyncMessage, body, '1893456000000')).toEqual({ ...key, requestedAt: 1893456000000 });
    expect(parseQueued(SyncMessage, body, undefined)).toEqual(key);
  });
});

describe('messages that find the lease held, on the local AWS stack', () => {
  let aws: LocalAws;
  let registries: RegistryPair;
  let proxy: FaultProxy;
  let handlers: Handlers;
  let output: string[] = [];

  beforeAll(async () => {
    // No redrive in these tests: a failure would show as a message in flight and fail the drain.
    [aws, registries] = await Promise.all([startLocalAws({ visibilityTimeout: 30 }), startRegistryPair()]);
    proxy = await startFaultProxy(registries.secondary.url);
    Object.assign(process.env, aws.env(), {
      GEO_SYNC_PRIMARY_URL: registries.primary.url,
      GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'eu', url: proxy.url }]),
      POWERTOOLS_LOG_LEVEL: 'INFO',
    });
    // Keep what the functions print (JSON logs and EMF metrics) to assert on it.
    for (const stream of [process.stdout, process.stderr])
      vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => (output.push(String(chunk)), true));
    handlers = await importHandlers();
  });

  afterAll(async () => {
    vi.restoreAllMocks();
    await proxy?.stop();
    await Promise.all([aws?.stop(), registries?.stop()]);
  });

  beforeEach(() => {
    output = [];
    proxy.setRule(() => undefined);
  });

  const P = () => registries.primary.url;
  const S = () => registries.secondary.url;
  const queues = () => ({
    sync: { name: 'sync', url: aws.queues.sync.url, arn: aws.queues.sync.arn, handler: handlers.sync },
    verify: { name: 'verify', url: aws.queues.verify.url, arn: aws.queues.verify.arn, handler: handlers.verify },
  });
  const sources = () => Object.values(queues());
  const item = async (repository: string) => (await aws.items()).find((i) => i.repository === repository && i.secondary === 'eu');
  const lines = () =>
    output
      .join('')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  /** The sum of one metric over every EMF document the functions printed since the test began. */
  const metric = (name: string) =>
    lines()
      .filter((l) => '_aws' in l && name in l)
      .flatMap((l) => [l[name]].flat())
      .reduce((sum: number, value) => sum + Number(value), 0);
  /** Holds the secondary's tag listing of `repository` back once, so whoever reads it holds the lease meanwhile. */
  const slowOnce = (repository: string, ms = 2_000) => {
    let armed = true;
    proxy.setRule((request) =>
      armed && request.method === 'GET' && request.path.startsWith(`/v2/${repository}/tags/list`) ? ((armed = false), { kind: 'delay', ms }) : undefined,
    );
  };
  const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) => {
    for (const end = Date.now() + timeoutMs; !(await check());) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  const leaseTaken = (repository: string) => until(`the lease on ${repository}`, async () => (await item(repository))?.leaseOwner !== undefined);
  const send = (queueUrl: string, message: object) => aws.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(message) }));

  it('a sync that finds a verification holding the lease is sent again with a delay, and syncs once the verification is done', async () => {
    const repository = 'collide/sync';
    await pushImage(P(), repository, 'a');
    await pushImage(P(), repository, 'b');
    const message = { repository, secondary: 'eu' };
    slowOnce(repository);

    const verifying = handlers.verify({ Records: [sqsRecord('verify-1', 'r', JSON.stringify(message), aws.queues.verify.arn)] }, lambdaContext());
    await leaseTaken(repository);
    await send(aws.queues.sync.url, message); // the hourly sync arrives meanwhile
    const delivery = await pollOnce(aws.sqs, aws.queues.sync.url, aws.queues.sync.arn, handlers.sync);

    expect(delivery).toEqual({ received: 1, failed: 0 });
    expect((await queueDepth(aws.sqs, aws.queues.sync.url)).delayed).toBe(1);
    expect(lines().find((l) => l.message === 'sync deferred: lease held')).toMatchObject({
      repository,
      holder: { kind: 'verify', deep: false },
      delaySeconds: MIN_DEFER_MS / 1000,
    });
    expect(metric('SyncDeferred')).toBe(1);
    expect(metric('SyncLeaseBusy')).toBe(0);
    expect(await readTags(S(), repository)).toEqual({});

    await verifying;
    expect(await item(repository)).toMatchObject({ verifyState: 'mismatch', differences: { missing: 2 } });
    await until('the deferred sync', async () => (await queueDepth(aws.sqs, aws.queues.sync.url)).delayed === 0);
    const stats = await drain(aws.sqs, sources());

    expect(stats.sync!.messages).toBe(1);
    expect(await readTags(S(), repository)).toEqual(await readTags(P(), repository));
    const after = await item(repository);
    expect(after).toMatchObject({ syncState: 'synced', verifyState: 'synced', lastSync: { copied: 2 } });
    expect(after).not.toHaveProperty('leaseOwner');
    expect(after).not.toHaveProperty('leaseHolder');
  });

  it('a deep verification that finds a sync holding the lease is sent again with a delay, then runs and finds what only a deep check sees', async () => {
    const repository = 'collide/deep';
    await pushImage(P(), repository, 'v1');
    const copy = await pushImage(S(), repository, 'v1'); // the same bytes: the same digests as the primary's
    await send(aws.queues.sync.url, { repository, secondary: 'eu' });
    await drain(aws.sqs, sources());
    expect(await item(repository)).toMatchObject({ syncState: 'synced', verifyState: 'synced' });
    // A layer lost on the secondary: the tags still match, only a deep verification notices.
    await deleteBlob(S(), repository, copy.layerDigests[0]!);
    slowOnce(repository);
    output = [];

    const syncing = handlers.sync(
      { Records: [sqsRecord('sync-1', 'r', JSON.stringify({ repository, secondary: 'eu' }), aws.queues.sync.arn)] },
      lambdaContext(),
    );
    await leaseTaken(repository);
    await send(aws.queues.verify.url, { repository, secondary: 'eu', deep: true }); // the daily deep verification arrives meanwhile
    const delivery = await pollOnce(aws.sqs, aws.queues.verify.url, aws.queues.verify.arn, handlers.verify);

    expect(delivery).toEqual({ received: 1, failed: 0 });
    expect((await queueDepth(aws.sqs, aws.queues.verify.url)).delayed).toBe(1);
    expect(lines().find((l) => l.message === 'verify deferred: lease held')).toMatchObject({ repository, holder: { kind: 'sync', deep: false } });
    expect(metric('VerifyDeferred')).toBe(1);
    expect(metric('VerifyLeaseBusy')).toBe(0);

    await syncing;
    // The sync wrote nothing to a pair already verified, so it sends no verification of its own.
    expect(await item(repository)).toMatchObject({ syncState: 'synced', verifyState: 'synced', lastSync: { copied: 0, repaired: 0, removed: 0 } });
    expect((await queueDepth(aws.sqs, aws.queues.verify.url)).visible).toBe(0);
    await until('the deferred verification', async () => (await queueDepth(aws.sqs, aws.queues.verify.url)).delayed === 0);
    const stats = await drain(aws.sqs, sources());

    expect(stats.verify!.messages).toBe(1);
    const after = (await item(repository))!;
    expect(after).toMatchObject({ verifyState: 'mismatch', differences: { missing: 0, extra: 0, mismatched: 0 } });
    const checksum = after.checksum as { primary: string; secondary: string };
    expect(checksum.secondary).toBe(checksum.primary);
    expect(lines().filter((l) => l.message === 'verified' && l.repository === repository)).toEqual([
      expect.objectContaining({ deep: true, status: 'mismatch' }),
    ]);
    expect(after).not.toHaveProperty('leaseHolder');
  });

  it('a duplicate delivery of the sync that holds the lease is dropped, not deferred', async () => {
    const repository = 'collide/dup';
    await pushImage(P(), repository, 'a');
    // One SQS message delivered twice: the same body and SentTimestamp.
    const record = sqsRecord('same-id', 'r', JSON.stringify({ repository, secondary: 'eu' }), aws.queues.sync.arn);
    slowOnce(repository);

    const first = handlers.sync({ Records: [record] }, lambdaContext());
    await leaseTaken(repository);
    const second = await handlers.sync({ Records: [record] }, lambdaContext());

    expect(second).toEqual({ batchItemFailures: [] });
    expect(await queueDepth(aws.sqs, aws.queues.sync.url)).toMatchObject({ visible: 0, delayed: 0 });
    expect(lines().filter((l) => l.message === 'sync skipped: lease held by another invocation')).toEqual([
      expect.objectContaining({ repository, holder: { kind: 'sync', deep: false, startedAt: expect.any(Number) } }),
    ]);
    expect(metric('SyncLeaseBusy')).toBe(1);
    expect(metric('SyncDeferred')).toBe(0);
    expect(await first).toEqual({ batchItemFailures: [] });
    expect(await item(repository)).toMatchObject({ syncState: 'synced', lastSync: { copied: 1 } });
    expect(await readTags(S(), repository)).toEqual(await readTags(P(), repository));
    await drain(aws.sqs, sources());
  });
});
