// Readiness on AWS, end to end on one machine: the real fan-out, sync and verify handlers against
// dynalite and local-aws-sqs, with a primary and two secondaries as real docker-registry processes.
// A catalog-wide fan-out that finishes emits each secondary's readiness (EMF on stdout, read back
// here); a direct {"action": "ready"} returns the report `geo-sync ready --json` prints.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DynamoDbStateStore } from '../../shared/aws/dynamodb-store.js';
import type { Readiness } from '../../shared/jobs/index.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { pushImage } from '../support/seed.js';
import { drain, lambdaContext, importHandlers, type Handlers } from './support/event-source.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';

let aws: LocalAws;
let primary: TestRegistry;
let eu: TestRegistry;
let us: TestRegistry;
let handlers: Handlers;
const output: string[] = [];

beforeAll(async () => {
  [aws, primary, eu, us] = await Promise.all([startLocalAws(), startRegistry(), startRegistry(), startRegistry()]);
  Object.assign(process.env, aws.env(), {
    GEO_SYNC_PRIMARY_URL: primary.url,
    // eu keeps every repository, us only app/**.
    GEO_SYNC_SECONDARIES: JSON.stringify([
      { name: 'eu', url: eu.url },
      { name: 'us', url: us.url, repositories: { include: ['app/**'] } },
    ]),
    GEO_SYNC_CATALOG_PAGE_SIZE: '2',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  });
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => (output.push(String(chunk)), true));
  for (const repository of ['app/one', 'app/two', 'tools/lint']) await pushImage(primary.url, repository, 'v1');
  handlers = await importHandlers();
});

afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all([aws?.stop(), primary?.stop(), eu?.stop(), us?.stop()]);
});

const sources = () => [
  { name: 'fanOut', url: aws.queues.fanOut.url, arn: aws.queues.fanOut.arn, handler: handlers.fanOut, batchSize: 1 },
  { name: 'sync', url: aws.queues.sync.url, arn: aws.queues.sync.arn, handler: handlers.sync, batchSize: 5 },
  { name: 'verify', url: aws.queues.verify.url, arn: aws.queues.verify.arn, handler: handlers.verify, batchSize: 10 },
];
const scheduledEvent = { version: '0', id: 'e', 'detail-type': 'Scheduled Event', source: 'aws.events', region: 'us-east-1', resources: [], detail: {} };

interface Emitted {
  secondary?: string;
  values: Record<string, number>;
  dimensions: string[][];
}
/** The EMF documents printed since `from`: each metric's value, with the dimension sets it was published under. */
function emittedSince(from: number): Emitted[] {
  return output
    .slice(from)
    .join('')
    .split('\n')
    .filter((line) => line.includes('"_aws"'))
    .map((line) => {
      const document = JSON.parse(line) as Record<string, unknown> & {
        _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
      };
      const [directive] = document._aws.CloudWatchMetrics;
      expect(directive!.Namespace).toBe('GeoRegistrySync');
      const values = Object.fromEntries(directive!.Metrics.map(({ Name }) => [Name, document[Name] as number]));
      return { ...(typeof document.secondary === 'string' ? { secondary: document.secondary } : {}), values, dimensions: directive!.Dimensions };
    });
}
/** Each secondary's readiness metrics and the no-dimension count, as the last fan-out emitted them. */
function readinessMetrics(from: number) {
  const emitted = emittedSince(from);
  const perSecondary: Record<string, Record<string, number>> = {};
  for (const { secondary, values, dimensions } of emitted.filter((e) => e.secondary !== undefined)) {
    expect(dimensions).toEqual([['service', 'secondary']]);
    Object.assign((perSecondary[secondary!] ??= {}), values);
  }
  const count = emitted.find((e) => 'SecondariesNotReady' in e.values);
  // The count has no secondary dimension: one alarm watches it whatever the secondaries are called.
  expect(count?.dimensions).toEqual([['service']]);
  return { perSecondary, secondariesNotReady: count?.values.SecondariesNotReady };
}
const ready = (request: Record<string, unknown> = {}) => handlers.fanOut({ action: 'ready', ...request }, lambdaContext()) as Promise<Readiness>;

describe('readiness on AWS', () => {
  it('a fan-out before any sync finds every repository in scope never verified, and says so per secondary', async () => {
    const from = output.length;
    expect(await handlers.fanOut(scheduledEvent, lambdaContext())).toMatchObject({ kind: 'finished', enqueued: 5 });

    const { perSecondary, secondariesNotReady } = readinessMetrics(from);
    expect(perSecondary).toEqual({ eu: { SecondaryReady: 0, RepositoriesNotReady: 3 }, us: { SecondaryReady: 0, RepositoriesNotReady: 2 } });
    expect(secondariesNotReady).toBe(2);
  });

  it('once synced and verified, both are ready: the direct report says so and the next fan-out emits it', async () => {
    await drain(aws.sqs, sources());
    const report = await ready();
    expect(report).toMatchObject({ exitCode: 0, source: 'primary', maxAgeSeconds: 25 * 3600 });
    expect(report.secondaries.map((s) => [s.secondary, s.status, s.repositories, s.counts.ready])).toEqual([
      ['eu', 'ready', 3, 3],
      ['us', 'ready', 2, 2],
    ]);
    expect(report.secondaries[0]!.oldestVerificationAgeSeconds).toBeLessThan(60);

    const from = output.length;
    // A verify run is catalog-wide too; readiness is read when it has sent its last message.
    expect(await handlers.fanOut({ target: 'verify' }, lambdaContext())).toMatchObject({ kind: 'finished' });
    const { perSecondary, secondariesNotReady } = readinessMetrics(from);
    expect(perSecondary.eu).toMatchObject({ SecondaryReady: 1, RepositoriesNotReady: 0 });
    expect(perSecondary.us).toMatchObject({ SecondaryReady: 1, RepositoriesNotReady: 0 });
    expect(perSecondary.eu!.OldestVerificationAge).toBeGreaterThanOrEqual(0);
    expect(secondariesNotReady).toBe(0);
    await drain(aws.sqs, sources());
  });

  it('a drifted secondary is not ready, named with its repository; the other stays ready', async () => {
    await pushImage(us.url, 'app/one', 'stray', { seed: 'stray' });
    await handlers.verify({ repository: 'app/one', secondary: 'us' }, lambdaContext());
    const report = await ready();

    expect(report.exitCode).toBe(1);
    // Worst first.
    expect(report.secondaries.map((s) => [s.secondary, s.status])).toEqual([
      ['us', 'not-ready'],
      ['eu', 'ready'],
    ]);
    expect(report.secondaries[0]!.notReady).toEqual([{ repository: 'app/one', state: 'mismatch', detail: expect.stringContaining('extra 1: stray') }]);

    const from = output.length;
    await handlers.fanOut({ target: 'verify' }, lambdaContext());
    const { perSecondary, secondariesNotReady } = readinessMetrics(from);
    expect(perSecondary.us).toMatchObject({ SecondaryReady: 0, RepositoriesNotReady: 1 });
    expect(perSecondary.eu).toMatchObject({ SecondaryReady: 1, RepositoriesNotReady: 0 });
    expect(secondariesNotReady).toBe(1);
    await drain(aws.sqs, sources());
  });

  it('asks about one secondary, or a shorter window; refuses an unknown secondary or a window that is no duration', async () => {
    const eu = await ready({ secondary: 'eu' });
    expect(eu).toMatchObject({ exitCode: 0, secondaries: [{ secondary: 'eu', status: 'ready' }] });
    expect(eu.secondaries).toHaveLength(1);

    // The window is the request's; a stale verification is told from a record's age in test/readiness.test.ts.
    const shortWindow = await ready({ maxAge: '90m', secondary: 'us' });
    expect(shortWindow).toMatchObject({ maxAgeSeconds: 5400, secondaries: [{ secondary: 'us', status: 'not-ready' }] });

    await expect(ready({ secondary: 'nowhere' })).rejects.toMatchObject({ code: 'UNKNOWN_SECONDARY' });
    await expect(ready({ maxAge: 'soon' })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await expect(ready({ maxAge: '0m' })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
  });

  it('a prefix or a list fan-out reads no readiness: it saw part of the catalog', async () => {
    const from = output.length;
    await handlers.fanOut({ prefix: 'app/' }, lambdaContext());
    await handlers.fanOut({ repositories: ['tools/lint'] }, lambdaContext());
    expect(emittedSince(from).filter((e) => 'SecondariesNotReady' in e.values || 'SecondaryReady' in e.values)).toEqual([]);
    await drain(aws.sqs, sources());
  });

  it("the store lists every pair's record by a scan, fan-out checkpoints left out", async () => {
    const records = await new DynamoDbStateStore(aws.dynamo, aws.table).list();
    expect(records.map((r) => `${r.repository} ${r.secondary}`)).toEqual(['app/one eu', 'app/one us', 'app/two eu', 'app/two us', 'tools/lint eu']);
    expect((await aws.items()).some((item) => item.repository === '#fan-out')).toBe(true);
  });
});

describe('readiness with the primary down', () => {
  it('is told from the records, said so: the primary may be the thing that is down', async () => {
    await primary.stop();
    const report = await ready();

    expect(report).toMatchObject({ source: 'records', sourceNote: expect.stringMatching(/^the primary could not be listed/) });
    // The prefix's sync above took the stray tag off us: both ready, their repositories as the records know them.
    expect(report.secondaries.map((s) => [s.secondary, s.status, s.repositories])).toEqual([
      ['eu', 'ready', 3],
      ['us', 'ready', 2],
    ]);
    expect(report.exitCode).toBe(0);
  });
});
