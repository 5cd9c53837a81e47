// Event jobs under the pair's lease, with the embedded queue and the file store, against two real
// registries: what is recorded, what a held lease does, and where the tags and digests left go.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_ATTEMPTS, processEventJob, runSyncJob, type EventJob } from '../shared/jobs/sync.js';
import { jobsForHints } from '../shared/jobs/events/coalesce.js';
import { whenLeaseHeld } from '../shared/jobs/lease-decision.js';
import { FileStateStore } from '../shared/local/file-store.js';
import { MemoryQueue } from '../shared/local/memory-queue.js';
import { SyncMessage, parseMessage, type VerifyMessage, type FanOutRequest } from '../shared/jobs/messages.js';
import type { Runtime } from '../shared/jobs/ports.js';
import { newRecord } from '../shared/jobs/record.js';
import { openRegistries } from '../shared/jobs/registries.js';
import { EVERYTHING, jsonLogger, syncTags } from '../shared/engine/index.js';
import { unscoped } from './support/scopes.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';

// The real engine, watched: a test can see what a job asks of it, or have it leave digests once.
vi.mock('../shared/engine/index.js', async (importOriginal) => {
  const engine = await importOriginal<typeof import('../shared/engine/index.js')>();
  return { ...engine, syncTags: vi.fn(engine.syncTags) };
});
const engineSyncTags = vi.mocked(syncTags).getMockImplementation()!;

let registries: RegistryPair;
let primaryProxy: FaultProxy;
let stateDir: string;
const BUDGET = { remainingMs: 60_000 };

beforeAll(async () => {
  registries = await startRegistryPair();
  primaryProxy = await startFaultProxy(registries.primary.url);
  stateDir = mkdtempSync(join(tmpdir(), 'event-job-'));
});
afterAll(async () => {
  await primaryProxy?.stop();
  await registries?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

/** A runtime as `geo-sync listen` builds one: embedded queues, the file store, logs and metrics kept for assertions. */
function localRuntime(now = Date.now) {
  const lines: Record<string, unknown>[] = [];
  const metrics: { name: string; value: number; unit?: string }[] = [];
  const syncQueue = new MemoryQueue<SyncMessage>(now);
  const sent: { message: SyncMessage; delaySeconds?: number }[] = [];
  const queue = {
    send: async (messages: SyncMessage[], options: { delaySeconds?: number } = {}) => {
      for (const message of messages) sent.push({ message, ...(options.delaySeconds ? { delaySeconds: options.delaySeconds } : {}) });
      await syncQueue.send(messages, options);
    },
  };
  const runtime: Runtime = {
    store: new FileStateStore(stateDir),
    syncQueue: queue,
    verifyQueue: new MemoryQueue<VerifyMessage>(now),
    fanOutQueue: new MemoryQueue<FanOutRequest>(now),
    logger: jsonLogger('info', (line) => void lines.push(JSON.parse(line) as Record<string, unknown>)),
    metrics: { add: (name, value, unit) => void metrics.push({ name, value, ...(unit ? { unit } : {}) }) },
    clock: now,
    random: () => 0.5,
    retry: { baseMs: 10_000, capMs: 60_000 },
    concurrency: 4,
  };
  return { runtime, lines, metrics, sent };
}

function clients(primaryUrl = registries.primary.url) {
  return openRegistries({ primary: { url: primaryUrl }, secondaries: [{ name: 'eu', endpoint: { url: registries.secondary.url }, scope: EVERYTHING }] });
}

const P = () => registries.primary.url;
const S = () => registries.secondary.url;

describe('an event job', () => {
  it("makes its tags exact, records the last event and its lag, and leaves the full sync's state alone", async () => {
    const repository = 'jobs/copy';
    await pushImage(P(), repository, 'v1');
    await pushImage(P(), repository, 'v2', { seed: 'v2' });
    const { runtime, lines, metrics, sent } = localRuntime();
    const eventAt = Date.now() - 1500;
    const open = clients();

    const outcome = await processEventJob({ repository, secondary: 'eu', tags: ['v1', 'v2'], eventAt, requestedAt: Date.now() }, open, runtime, BUDGET).finally(
      () => open.close(),
    );

    expect(outcome.kind).toBe('synced');
    expect(await readTags(S(), repository)).toEqual(await readTags(P(), repository));
    const record = await runtime.store.get({ repository, secondary: 'eu' });
    expect(record).toMatchObject({
      syncState: 'pending',
      verifyState: 'pending',
      lastEvent: { at: new Date(eventAt).toISOString(), status: 'synced', tags: 2, copied: 2, firstTags: ['v1', 'v2'] },
    });
    expect(record!.lagSeconds).toBeGreaterThanOrEqual(1.5);
    expect(record).not.toHaveProperty('leaseOwner');
    const replicated = lines.filter((l) => l.message === 'replicated');
    expect(replicated).toEqual([
      expect.objectContaining({ repository, secondary: 'eu', status: 'synced', copied: ['v1', 'v2'], lagSeconds: record!.lagSeconds }),
    ]);
    expect(metrics).toContainEqual({ name: 'ReplicationLagSeconds', value: record!.lagSeconds, unit: 'Seconds' });
    expect(sent).toEqual([]);
  });

  it('runSyncJob sends a message without tags to the full sync', async () => {
    const repository = 'jobs/full';
    await pushImage(P(), repository, 'v1');
    const { runtime } = localRuntime();
    const open = clients();
    const outcome = await runSyncJob({ repository, secondary: 'eu' }, open, runtime, BUDGET).finally(() => open.close());
    expect(outcome.kind).toBe('synced');
    expect((await runtime.store.get({ repository, secondary: 'eu' }))!.syncState).toBe('synced');
  });

  it('sends a tag the primary moved during the job back to the queue at once, as one more attempt', async () => {
    const repository = 'jobs/moved';
    await pushImage(P(), repository, 'v1');
    let moved: Promise<unknown> | undefined;
    primaryProxy.setRule(({ method, path }) => {
      // The closing HEAD on the primary: the tag moves just before it is asked.
      if (
        moved ||
        method !== 'HEAD' ||
        !path.endsWith(`/${repository}/manifests/v1`) ||
        primaryProxy.log.filter((r) => r.path.endsWith(`/${repository}/manifests/v1`)).length < 2
      )
        return undefined;
      moved = pushImage(P(), repository, 'v1', { seed: 'newer' });
      return { kind: 'delay', ms: 300 };
    });
    const { runtime, sent } = localRuntime();
    const open = clients(primaryProxy.url);
    const eventAt = Date.now() - 100;
    try {
      const outcome = await processEventJob({ repository, secondary: 'eu', tags: ['v1'], eventAt }, open, runtime, BUDGET);
      expect(outcome.kind).toBe('differences');
    } finally {
      primaryProxy.setRule(() => undefined);
      await moved;
      await open.close();
    }
    expect(sent).toEqual([{ message: { repository, secondary: 'eu', tags: ['v1'], eventAt, requestedAt: expect.any(Number), attempt: 2 } }]);
    const again = clients();
    await runSyncJob(sent[0]!.message, again, localRuntime().runtime, BUDGET).finally(() => again.close());
    expect(await readTags(S(), repository)).toEqual(await readTags(P(), repository));
  });

  it('looks again after a second at a tag whose primary does not show the pushed digest yet, and records no lag until it does', async () => {
    const repository = 'jobs/unsettled';
    await pushImage(P(), repository, 'v1');
    const announced = `sha256:${'c'.repeat(64)}`;
    const { runtime, sent, metrics } = localRuntime();
    const open = clients();

    const outcome = await processEventJob(
      { repository, secondary: 'eu', tags: ['v1'], pushed: { v1: announced }, eventAt: 5, attempt: MAX_ATTEMPTS - 1 },
      open,
      runtime,
      BUDGET,
    );
    const last = await processEventJob(
      { repository, secondary: 'eu', tags: ['v1'], pushed: { v1: announced }, eventAt: 5, attempt: MAX_ATTEMPTS },
      open,
      runtime,
      BUDGET,
    ).finally(() => open.close());

    expect(outcome.kind).toBe('synced');
    expect(last.kind).toBe('synced');
    // Once, then no more: each run already made the tag what the primary holds.
    expect(sent).toEqual([
      {
        message: { repository, secondary: 'eu', tags: ['v1'], pushed: { v1: announced }, eventAt: 5, requestedAt: expect.any(Number), attempt: MAX_ATTEMPTS },
        delaySeconds: 1,
      },
    ]);
    expect(metrics.filter((m) => m.name === 'ReplicationLagSeconds')).toEqual([]);
    expect(await readTags(S(), repository)).toEqual(await readTags(P(), repository));
  });

  it('sends failed tags back after a backoff, and past its attempts asks for a full sync instead', async () => {
    const repository = 'jobs/refused';
    // The primary refuses every request for this repository: a final answer, not retried.
    primaryProxy.setRule(({ path }) => (path.includes(repository) ? { kind: 'status', status: 403 } : undefined));
    const { runtime, sent, lines } = localRuntime();
    const open = clients(primaryProxy.url);
    const job: EventJob = { repository, secondary: 'eu', tags: ['v1'], eventAt: 1 };
    try {
      expect((await processEventJob(job, open, runtime, BUDGET)).kind).toBe('failed');
      expect((await processEventJob({ ...job, attempt: MAX_ATTEMPTS }, open, runtime, BUDGET)).kind).toBe('failed');
    } finally {
      primaryProxy.setRule(() => undefined);
      await open.close();
    }
    expect(sent).toEqual([
      { message: { repository, secondary: 'eu', tags: ['v1'], eventAt: 1, requestedAt: expect.any(Number), attempt: 2 }, delaySeconds: 8 },
      { message: { repository, secondary: 'eu', force: true } },
    ]);
    expect((await runtime.store.get({ repository, secondary: 'eu' }))!.lastEvent).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/authentication refused/),
    });
    expect(lines.some((l) => l.message === 'event job gave up on its tags; a full sync of the repository follows')).toBe(true);
  });
});

describe('an event job naming digests (referrers pushed or deleted by digest)', () => {
  const D1 = `sha256:${'d'.repeat(64)}`;
  const D2 = `sha256:${'e'.repeat(64)}`;

  it('runs with digests alone: from the hint through the queue to the engine, and records the last event', async () => {
    const repository = 'jobs/digests';
    await pushImage(P(), repository, 'v1');
    const [job] = jobsForHints({ hints: [], digests: [{ repository, digest: D1, action: 'push', at: Date.now() - 500 }] }, unscoped('eu'), Date.now()).jobs;
    const queued = parseMessage(SyncMessage, JSON.stringify(job));
    expect(queued).toEqual(job);
    const { runtime, lines, sent } = localRuntime();
    const open = clients();
    vi.mocked(syncTags).mockClear();

    const outcome = await runSyncJob(queued, open, runtime, BUDGET).finally(() => open.close());

    expect(outcome.kind).toBe('synced');
    expect(vi.mocked(syncTags)).toHaveBeenCalledWith(expect.anything(), expect.anything(), repository, [], expect.objectContaining({ digests: [D1] }));
    expect((await runtime.store.get({ repository, secondary: 'eu' }))!.lastEvent).toMatchObject({ status: 'synced', tags: 0, digests: 1 });
    expect(lines.filter((l) => l.message === 'replicated')).toEqual([expect.objectContaining({ repository, tags: 0, digests: 1 })]);
    expect(sent).toEqual([]);
  });

  it('sends the digests left back after a backoff with one more attempt, and past its attempts asks for a full sync', async () => {
    const repository = 'jobs/digests-left';
    vi.mocked(syncTags).mockImplementation(async (...args) => ({ ...(await engineSyncTags(...args)), digestsLeft: [D2] }));
    const { runtime, sent, lines } = localRuntime();
    const open = clients();
    const job: EventJob = { repository, secondary: 'eu', digests: [D1, D2], eventAt: 1 };
    try {
      await processEventJob(job, open, runtime, BUDGET);
      await processEventJob({ ...job, attempt: MAX_ATTEMPTS }, open, runtime, BUDGET);
    } finally {
      vi.mocked(syncTags).mockImplementation(engineSyncTags);
      await open.close();
    }
    expect(sent).toEqual([
      { message: { repository, secondary: 'eu', digests: [D2], eventAt: 1, requestedAt: expect.any(Number), attempt: 2 }, delaySeconds: 8 },
      { message: { repository, secondary: 'eu', force: true } },
    ]);
    const record = await runtime.store.get({ repository, secondary: 'eu' });
    expect(record!.lastEvent).toMatchObject({ digests: 2, error: '1 digest(s) not done; sent again' });
    expect(record).not.toHaveProperty('lagSeconds');
    expect(lines.find((l) => l.message === 'event job gave up on its tags; a full sync of the repository follows')).toMatchObject({ digests: 1 });
  });

  it('on a job that threw, sends its digests back with its tags', async () => {
    const repository = 'jobs/digests-threw';
    vi.mocked(syncTags).mockRejectedValueOnce(new Error('engine fell over'));
    const { runtime, sent } = localRuntime();
    const open = clients();
    const job: EventJob = { repository, secondary: 'eu', tags: ['v1'], digests: [D1], eventAt: 1 };
    expect((await processEventJob(job, open, runtime, BUDGET).finally(() => open.close())).kind).toBe('failed');
    expect(sent).toEqual([
      { message: { repository, secondary: 'eu', tags: ['v1'], digests: [D1], eventAt: 1, requestedAt: expect.any(Number), attempt: 2 }, delaySeconds: 8 },
    ]);
    expect((await runtime.store.get({ repository, secondary: 'eu' }))!.lastEvent).toMatchObject({
      status: 'failed',
      tags: 1,
      digests: 1,
      error: 'engine fell over',
    });
  });
});

describe("an event job meets the pair's lease held", () => {
  const key = { repository: 'jobs/leased', secondary: 'eu' };
  const job: EventJob = { ...key, tags: ['v1'], eventAt: 1_000, requestedAt: 2_000 };

  it('by a full sync started after the event: dropped, that sync covers it', () => {
    const record = { ...newRecord(key, 0), leaseOwner: 'x', leaseExpiresAt: 10_000, leaseHolder: { kind: 'sync' as const, deep: false, startedAt: 3_000 } };
    expect(whenLeaseHeld({ kind: 'sync', deep: false, requestedAt: job.requestedAt! }, record, 4_000)).toEqual({ kind: 'drop' });
  });

  it('by another event job: deferred about a second, never dropped, even when it started later', () => {
    const record = {
      ...newRecord(key, 0),
      leaseOwner: 'x',
      leaseExpiresAt: 100_000,
      leaseHolder: { kind: 'sync' as const, deep: false, startedAt: 3_000, targeted: true },
    };
    expect(whenLeaseHeld({ kind: 'sync', deep: false, requestedAt: job.requestedAt! }, record, 3_200)).toEqual({ kind: 'defer', delayMs: 1_000 });
    // A full sync behind an event job is deferred too: the event job read only its own tags.
    expect(whenLeaseHeld({ kind: 'sync', deep: false, requestedAt: 1_000 }, record, 3_200).kind).toBe('defer');
  });

  it('on the file store: goes back to the queue with its tags and times, after a second', async () => {
    const { runtime, sent } = localRuntime();
    const now = Date.now();
    await runtime.store.acquireLease(key, { owner: 'holder', expiresAt: now + 60_000 }, now, {
      leaseHolder: { kind: 'sync', deep: false, startedAt: now, targeted: true },
    });
    const open = clients();
    const outcome = await processEventJob(job, open, runtime, BUDGET).finally(() => open.close());
    expect(outcome).toEqual({ kind: 'deferred', delaySeconds: 1 });
    expect(sent).toEqual([{ message: job, delaySeconds: 1 }]);
  });
});
